/**
 * List and count filters of the server APIs: the `Filter` messages of
 * `spire.api.server.entry.v1` and `spire.api.server.agent.v1` turned into datastore filters,
 * validated with SPIRE's rules (`pkg/server/api/entry/v1` and `agent/v1`). Pure: no I/O.
 *
 * Errors: `ERR_API_INVALID_ARGUMENT` naming the filter field.
 */

import type { agentv1, entryv1 } from '../../protocol/index.js';
import type { TrustDomain } from '../../spiffe/id.js';
import type { ListAttestedNodesFilter, ListEntriesFilter } from '../datastore/types.js';
import {
  idFromProto,
  invalidField,
  matchFromProto,
  selectorFilterFromProto,
  trustDomainFromString,
} from './convert.js';

/** The filter of ListEntries / CountEntries (the two messages have the same fields). */
export type EntryFilterProto =
  | entryv1.ListEntriesRequest_Filter
  | entryv1.CountEntriesRequest_Filter;

/**
 * The datastore filter of an entry list/count request. As in SPIRE: `by_spiffe_id` must be
 * a workload ID of our trust domain, `by_parent_id` a member; `by_selectors` and
 * `by_federates_with` need a non-empty set; `by_hint` and `by_downstream` are taken as given.
 *
 * @throws SpireEdgeError `ERR_API_INVALID_ARGUMENT` "invalid filter.<field>: …".
 */
export function entryFilterFromProto(
  td: TrustDomain,
  filter: EntryFilterProto | undefined,
): ListEntriesFilter {
  if (filter === undefined) return {};
  const out: {
    -readonly [K in keyof ListEntriesFilter]: ListEntriesFilter[K];
  } = {};
  if (filter.bySpiffeId !== undefined) {
    out.bySpiffeId = idFromProto(
      filter.bySpiffeId,
      'filter.by_spiffe_id',
      td,
      'workload',
    ).toString();
  }
  if (filter.byParentId !== undefined) {
    out.byParentId = idFromProto(filter.byParentId, 'filter.by_parent_id', td, 'member').toString();
  }
  if (filter.bySelectors !== undefined) {
    out.bySelectors = selectorFilterFromProto(filter.bySelectors, 'filter.by_selectors');
  }
  if (filter.byFederatesWith !== undefined) {
    const f = filter.byFederatesWith;
    const trustDomains = f.trustDomains.map(
      (t, i) => trustDomainFromString(t, `filter.by_federates_with.trust_domains[${i}]`).name,
    );
    if (trustDomains.length === 0) {
      throw invalidField('filter.by_federates_with', 'empty trust domain set');
    }
    out.byFederatesWith = {
      trustDomains,
      match: matchFromProto(f.match, 'filter.by_federates_with.match'),
    };
  }
  if (filter.byHint !== undefined) out.byHint = filter.byHint;
  if (filter.byDownstream !== undefined) out.byDownstream = filter.byDownstream;
  return out;
}

/** The filter of ListAgents / CountAgents. */
export type AgentFilterProto = agentv1.ListAgentsRequest_Filter | agentv1.CountAgentsRequest_Filter;

const GO_LAYOUT_RE =
  /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2}) [+-]\d{2}$/;

/**
 * Parses `by_expires_before` to seconds since the epoch. Accepted: the layout SPIRE's CLI
 * sends (Go `2006-01-02 15:04:05 -0700 -07`, e.g. `2026-03-01 12:00:00 +0000 +00`), RFC 3339
 * (`2026-03-01T12:00:00Z`), or whole seconds since the epoch. SPIRE ignores a value it
 * cannot parse; we refuse it.
 *
 * @throws SpireEdgeError `ERR_API_INVALID_ARGUMENT`.
 */
export function parseExpiresBefore(value: string, field = 'filter.by_expires_before'): number {
  const bad = () =>
    invalidField(
      field,
      `${JSON.stringify(value)} is not a time (use "2006-01-02 15:04:05 -0700 -07", RFC 3339 or epoch seconds)`,
    );
  if (/^\d{1,15}$/.test(value)) return Number(value);
  const go = GO_LAYOUT_RE.exec(value);
  let ms: number;
  if (go !== null) {
    const [, y, mo, d, h, mi, s, sign, oh, om] = go as unknown as string[];
    const n = (x: string | undefined) => Number(x);
    const month = n(mo);
    const day = n(d);
    if (month < 1 || month > 12 || day < 1 || day > 31 || n(h) > 23 || n(mi) > 59 || n(s) > 59) {
      throw bad();
    }
    const utc = Date.UTC(n(y), month - 1, day, n(h), n(mi), n(s));
    if (new Date(utc).getUTCDate() !== day) throw bad();
    const offset = (sign === '-' ? -1 : 1) * (n(oh) * 60 + n(om)) * 60_000;
    ms = utc - offset;
  } else if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.test(value)) {
    ms = Date.parse(value);
  } else {
    throw bad();
  }
  if (!Number.isFinite(ms)) throw bad();
  return Math.floor(ms / 1000);
}

/**
 * The datastore filter of an agent list/count request: `by_attestation_type` (empty = any),
 * `by_selector_match` (non-empty set), `by_banned`, `by_can_reattest`, `by_expires_before`
 * (see {@link parseExpiresBefore}).
 *
 * @throws SpireEdgeError `ERR_API_INVALID_ARGUMENT` "invalid filter.<field>: …".
 */
export function agentFilterFromProto(
  filter: AgentFilterProto | undefined,
): ListAttestedNodesFilter {
  if (filter === undefined) return {};
  const out: {
    -readonly [K in keyof ListAttestedNodesFilter]: ListAttestedNodesFilter[K];
  } = {};
  if (filter.byAttestationType !== '') out.byAttestationType = filter.byAttestationType;
  if (filter.bySelectorMatch !== undefined) {
    out.bySelectors = selectorFilterFromProto(filter.bySelectorMatch, 'filter.by_selector_match');
  }
  if (filter.byBanned !== undefined) out.byBanned = filter.byBanned;
  if (filter.byCanReattest !== undefined) out.byCanReattest = filter.byCanReattest;
  if (filter.byExpiresBefore !== '')
    out.byExpiresBefore = parseExpiresBefore(filter.byExpiresBefore);
  return out;
}
