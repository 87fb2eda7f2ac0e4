/**
 * Registration of an enrolled device through the server's admin API (on the server host,
 * over the admin Unix socket): creates the node alias entry
 * `parent spiffe://<td>/spire/server, spiffeID <alias>, selector tpm:pub_hash:<hash>`.
 *
 * Idempotent: an alias entry already bound to the same `pub_hash` is success
 * (`already-registered`). An alias entry bound to another device (other `tpm:pub_hash`
 * selectors, or none) is refused with `ERR_ENROLL_ALIAS_CONFLICT` unless `replace` is set,
 * in which case its `tpm:pub_hash` selectors are replaced by this device's (other selectors
 * are kept).
 *
 * The alias rules themselves are alias-plan.ts's (shared with the server's enrollment
 * service, which applies them for devices enrolling with a provisioning token).
 *
 * Trusts: the admin API's answers; access control is the socket's (the server's).
 */
import { create } from '@bufbuild/protobuf';
import type { Client } from '@connectrpc/connect';
import { SpireEdgeError } from '../common/errors.js';
import { type entryv1, types } from '../protocol/index.js';
import { parseSpiffeId } from '../spiffe/id.js';
import {
  otherAliasesOf,
  outcomeOf,
  planAliasBinding,
  pubHashSelector,
  type RegisterOutcome,
} from './alias-plan.js';
import { SERVER_ID_PATH } from './record.js';

export type { RegisterOutcome } from './alias-plan.js';

/** Error codes of registration. */
export type EnrollErrorCode = 'ERR_ENROLL_ALIAS_CONFLICT' | 'ERR_ENROLL_REGISTER_FAILED';

/** The entry API calls registration needs (a connect client of `spire.api.server.entry.v1.Entry`). */
export type EntryClient = Pick<
  Client<typeof entryv1.Entry>,
  'listEntries' | 'batchCreateEntry' | 'batchUpdateEntry'
>;

/** The result of {@link registerDevice}. */
export interface RegisterResult {
  readonly outcome: RegisterOutcome;
  readonly entryId: string;
  /** The alias's previous `tpm:pub_hash` values (for `replaced`). */
  readonly previousPubHashes: readonly string[];
  /**
   * Other node alias IDs already bound to this same `pub_hash` (the device then holds all of
   * them): usually a mistake worth showing the operator, never changed here.
   */
  readonly otherAliases: readonly string[];
}

/** Options of {@link registerDevice}. */
export interface RegisterOptions {
  readonly client: EntryClient;
  /** The alias SPIFFE ID (`spiffe://example.org/gw/1`). */
  readonly spiffeId: string;
  /** The device's `pub_hash` (64 lower-case hex digits). */
  readonly pubHash: string;
  /** Rebind an alias that is bound to another device. */
  readonly replace?: boolean;
}

function failed(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_ENROLL_REGISTER_FAILED',
    message,
    cause === undefined ? {} : { cause },
  );
}

function idText(id: types.SPIFFEID | undefined): string {
  return `spiffe://${id?.trustDomain ?? ''}${id?.path ?? ''}`;
}

/**
 * Creates (or confirms, or with `replace` rebinds) the node alias entry; see the module
 * comment.
 *
 * @throws TypeError for a malformed `spiffeId` or `pubHash`.
 * @throws SpireEdgeError `ERR_ENROLL_ALIAS_CONFLICT` (alias bound to another device, or more
 *   than one alias entry), `ERR_ENROLL_REGISTER_FAILED` (the API refused or failed; the
 *   status as `cause`).
 */
export async function registerDevice(o: RegisterOptions): Promise<RegisterResult> {
  let alias: ReturnType<typeof parseSpiffeId>;
  try {
    alias = parseSpiffeId(o.spiffeId);
  } catch (err) {
    throw new TypeError(`spiffeID ${o.spiffeId}: ${(err as Error).message}`, { cause: err });
  }
  if (!/^[0-9a-f]{64}$/.test(o.pubHash)) throw new TypeError('pubHash must be 64 hex digits');
  const td = alias.trustDomain.name;
  const spiffeId = create(types.SPIFFEIDSchema, { trustDomain: td, path: alias.path });
  const parentId = create(types.SPIFFEIDSchema, { trustDomain: td, path: SERVER_ID_PATH });
  const selector = create(types.SelectorSchema, pubHashSelector(o.pubHash));

  /** Alias IDs of other node entries carrying this pub_hash (best effort: [] on failure). */
  const others = async (entryId: string): Promise<string[]> => {
    try {
      const resp = await o.client.listEntries({
        pageSize: 500,
        filter: {
          byParentId: parentId,
          bySelectors: create(types.SelectorMatchSchema, {
            selectors: [selector],
            match: types.SelectorMatch_MatchBehavior.MATCH_SUPERSET,
          }),
        },
      });
      return otherAliasesOf(
        resp.entries.map((e) => ({
          id: e.id,
          spiffeId: idText(e.spiffeId),
          selectors: e.selectors,
        })),
        entryId,
        o.pubHash,
      );
    } catch {
      return [];
    }
  };

  const existing: types.Entry[] = [];
  let pageToken = '';
  try {
    do {
      const resp = await o.client.listEntries({
        pageSize: 500,
        pageToken,
        filter: { bySpiffeId: spiffeId, byParentId: parentId },
      });
      existing.push(...resp.entries);
      pageToken = resp.nextPageToken;
    } while (pageToken !== '');
  } catch (err) {
    throw failed(`could not list entries for ${o.spiffeId}: ${(err as Error).message}`, err);
  }

  const plan = planAliasBinding({
    spiffeId: o.spiffeId,
    pubHash: o.pubHash,
    replace: o.replace === true,
    existing,
  });
  switch (plan.action) {
    case 'create': {
      const entry = create(types.EntrySchema, {
        parentId,
        spiffeId,
        selectors: plan.selectors.map((s) => create(types.SelectorSchema, s)),
      });
      const resp = await call(() => o.client.batchCreateEntry({ entries: [entry] }), 'create');
      const r = resp.results[0];
      if (r === undefined || (r.status?.code ?? 0) !== 0) {
        throw failed(`could not create the alias entry: ${r?.status?.message ?? 'no result'}`);
      }
      const entryId = r.entry?.id ?? '';
      return {
        outcome: outcomeOf(plan),
        entryId,
        previousPubHashes: [],
        otherAliases: await others(entryId),
      };
    }
    case 'keep':
      return {
        outcome: outcomeOf(plan),
        entryId: plan.entryId,
        previousPubHashes: [o.pubHash],
        otherAliases: await others(plan.entryId),
      };
    case 'replace': {
      const update = create(types.EntrySchema, {
        id: plan.entryId,
        selectors: plan.selectors.map((s) => create(types.SelectorSchema, s)),
      });
      const resp = await call(
        () =>
          o.client.batchUpdateEntry({
            entries: [update],
            inputMask: create(types.EntryMaskSchema, { selectors: true }),
          }),
        'update',
      );
      const r = resp.results[0];
      if (r === undefined || (r.status?.code ?? 0) !== 0) {
        throw failed(`could not update the alias entry: ${r?.status?.message ?? 'no result'}`);
      }
      return {
        outcome: outcomeOf(plan),
        entryId: plan.entryId,
        previousPubHashes: plan.previousPubHashes,
        otherAliases: await others(plan.entryId),
      };
    }
  }
}

async function call<T>(fn: () => Promise<T>, verb: string): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw failed(`could not ${verb} the alias entry: ${(err as Error).message}`, err);
  }
}
