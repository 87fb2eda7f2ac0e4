/**
 * The filter flags shared by `entry show` and `entry count` (SPIRE's flags, usage texts,
 * defaults — `superset` for both match modes — and error texts), built into the API filter.
 *
 * SPIRE behaviour kept on purpose: the filter always carries `by_downstream` (false unless
 * `-downstream`), so downstream entries are listed only with `-downstream`.
 */
import { create } from '@bufbuild/protobuf';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { goQuote } from '../../../common/cli/go-quote.js';
import { types } from '../../../protocol/index.js';
import { cliFailure, idStringToProto, parseSelector } from '../util.js';

/** Defines the filter flags; `verb` is `show` or `count` (it appears in the usage texts). */
export function defineEntryFilterFlags(fs: FlagSet, verb: 'show' | 'count') {
  return {
    parentID: fs.string('parentID', '', `The Parent ID of the records to ${verb}`),
    spiffeID: fs.string('spiffeID', '', `The SPIFFE ID of the records to ${verb}`),
    downstream: fs.bool(
      'downstream',
      false,
      'A boolean value that, when set, indicates that the entry describes a downstream SPIRE server',
    ),
    selector: fs.strings(
      'selector',
      'A colon-delimited type:value selector. Can be used more than once',
    ),
    federatesWith: fs.strings(
      'federatesWith',
      'SPIFFE ID of a trust domain an entry is federate with. Can be used more than once',
    ),
    matchFederatesWithOn: fs.string(
      'matchFederatesWithOn',
      'superset',
      'The match mode used when filtering by federates with. Options: exact, any, superset and subset',
    ),
    matchSelectorsOn: fs.string(
      'matchSelectorsOn',
      'superset',
      'The match mode used when filtering by selectors. Options: exact, any, superset and subset',
    ),
    hint: fs.string('hint', '', `The Hint of the records to ${verb} (optional)`),
  };
}

/** The flags {@link defineEntryFilterFlags} returns. */
export type EntryFilterFlags = ReturnType<typeof defineEntryFilterFlags>;

const MATCH: Readonly<Record<string, types.SelectorMatch_MatchBehavior>> = {
  exact: types.SelectorMatch_MatchBehavior.MATCH_EXACT,
  any: types.SelectorMatch_MatchBehavior.MATCH_ANY,
  superset: types.SelectorMatch_MatchBehavior.MATCH_SUPERSET,
  subset: types.SelectorMatch_MatchBehavior.MATCH_SUBSET,
};

/**
 * A match mode name as the API enum value (the two match enums share values).
 *
 * @throws SpireEdgeError `ERR_CLI_COMMAND_FAILED` (`match behavior "x" unknown`).
 */
export function parseMatchBehavior(match: string): types.SelectorMatch_MatchBehavior {
  const m = MATCH[match];
  if (m === undefined) throw cliFailure(`match behavior ${goQuote(match)} unknown`);
  return m;
}

/** The API filter fields (same shape in ListEntries and CountEntries). */
export interface EntryFilter {
  bySpiffeId?: types.SPIFFEID;
  byParentId?: types.SPIFFEID;
  bySelectors?: types.SelectorMatch;
  byFederatesWith?: types.FederatesWithMatch;
  byHint?: string;
  byDownstream?: boolean;
}

/**
 * Builds the filter SPIRE builds, in SPIRE's order of checks (parent ID, SPIFFE ID, selectors,
 * federates-with, hint).
 *
 * @throws SpireEdgeError `ERR_CLI_COMMAND_FAILED` with SPIRE's texts.
 */
export function buildEntryFilter(f: EntryFilterFlags): EntryFilter {
  const filter: EntryFilter = {};
  if (f.parentID.value !== '') {
    try {
      filter.byParentId = idStringToProto(f.parentID.value);
    } catch (err) {
      throw cliFailure(
        `error parsing parent ID ${goQuote(f.parentID.value)}: ${(err as Error).message}`,
      );
    }
  }
  if (f.spiffeID.value !== '') {
    try {
      filter.bySpiffeId = idStringToProto(f.spiffeID.value);
    } catch (err) {
      throw cliFailure(
        `error parsing SPIFFE ID ${goQuote(f.spiffeID.value)}: ${(err as Error).message}`,
      );
    }
  }
  if (f.selector.value.length > 0) {
    const match = parseMatchBehavior(f.matchSelectorsOn.value);
    const selectors = f.selector.value.map((s) => {
      try {
        return parseSelector(s);
      } catch (err) {
        throw cliFailure(`error parsing selectors: ${(err as Error).message}`);
      }
    });
    filter.bySelectors = create(types.SelectorMatchSchema, { selectors, match });
  }
  if (f.federatesWith.value.length > 0) {
    const match = parseMatchBehavior(f.matchFederatesWithOn.value);
    filter.byFederatesWith = create(types.FederatesWithMatchSchema, {
      trustDomains: [...f.federatesWith.value],
      match: match as number as types.FederatesWithMatch_MatchBehavior,
    });
  }
  if (f.hint.value !== '') filter.byHint = f.hint.value;
  filter.byDownstream = f.downstream.value;
  return filter;
}
