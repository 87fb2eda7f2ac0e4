/**
 * SPIFFE ID matchers (go-spiffe's `spiffeid.Matcher`): used to authorize a peer after its SVID
 * has been verified. A matcher throws `ERR_SPIFFE_ID_UNEXPECTED` on mismatch.
 */
import { SpireEdgeError } from '../common/errors.js';
import { type SpiffeId, type TrustDomain, toSpiffeId, toTrustDomain } from './id.js';

/** Throws `ERR_SPIFFE_ID_UNEXPECTED` when the ID is not acceptable. */
export type SpiffeIdMatcher = (id: SpiffeId) => void;

function unexpected(id: SpiffeId, rule: string): SpireEdgeError {
  return new SpireEdgeError('ERR_SPIFFE_ID_UNEXPECTED', `unexpected ID ${id.toString()}: ${rule}`);
}

/** Accepts any SPIFFE ID. */
export function matchAny(): SpiffeIdMatcher {
  return () => {};
}

/** Accepts exactly `expected`. */
export function matchId(expected: SpiffeId | string): SpiffeIdMatcher {
  const e = toSpiffeId(expected);
  return (id) => {
    if (!id.equals(e)) throw unexpected(id, `expected ${e.toString()}`);
  };
}

/** Accepts any one of `expected`. */
export function matchOneOf(...expected: Array<SpiffeId | string>): SpiffeIdMatcher {
  const set = new Set(expected.map((e) => toSpiffeId(e).toString()));
  return (id) => {
    if (!set.has(id.toString())) throw unexpected(id, 'not one of the expected IDs');
  };
}

/** Accepts any ID in trust domain `td`. */
export function matchMemberOf(td: TrustDomain | string): SpiffeIdMatcher {
  const t = toTrustDomain(td);
  return (id) => {
    if (!id.memberOf(t)) throw unexpected(id, `not a member of trust domain ${t.name}`);
  };
}
