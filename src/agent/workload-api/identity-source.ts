/**
 * `IdentitySource`: what the Workload API server needs from the agent's cache manager.
 * The server attests the caller into selectors, asks the source which identities those
 * selectors earn, and streams them; the source tells it when anything changes.
 *
 * Contract for implementers (the agent's cache manager; {@link MemoryIdentitySource} is the
 * reference implementation used in tests):
 *
 * - Every method except `fetchJwtSvid` is synchronous and cheap: it is called on every
 *   Workload API call and, for every open stream, after every change notification. Keep
 *   the current state in memory (LevelDB is for restarts).
 * - `ready()` turns true once the source can answer (bundle known, SVIDs loaded from the
 *   store or minted). Until then the server answers every call `Unavailable`. It is not
 *   expected to turn false again.
 * - `identitiesFor(selectors)` returns one identity per registration entry whose selector
 *   set is a non-empty subset of `selectors` ({@link entryMatches}) and that has an
 *   X509-SVID. Return it even when expired: the server filters by `expiresAt` at send
 *   time, orders by `entryId` and applies SPIRE's hint rule (one identity per non-empty
 *   hint, the oldest entry wins). It may return the same array for the same selectors while
 *   nothing changed (the server then reuses the X509-SVID answer it built for that array, see
 *   handlers.ts); it must never change an array it returned.
 * - `bundle()` is the agent's own trust domain's X.509 and JWT bundle; it must be callable
 *   once `ready()` is true.
 * - `federatedBundles(tds)` returns the bundles held for those trust domain names (entries'
 *   `federatesWith`); a trust domain without a bundle is simply absent from the map.
 * - `fetchJwtSvid(identity, audience)` returns a JWT-SVID for that identity and audience
 *   set (from a cache or from the server). It may reject (server unreachable and nothing
 *   cached): the caller gets `Unavailable`. A token past its `expiresAt` is never served.
 * - `subscribe(listener)` calls `listener()` (no arguments, synchronously or not) after ANY
 *   change of SVIDs, bundles or entries; spurious calls are fine (streams resend only
 *   when their answer changed). The returned function unsubscribes and must be idempotent.
 *   Listeners must not throw; an implementation should guard against it anyway.
 * - Optional, for an SVID cache with a size limit (SPIRE's `x509_svid_cache_max_size`):
 *   `retain(selectors)` is called when an X509-SVID stream opens and its result when the
 *   stream ends (keep those entries' SVIDs, mint missing ones soon); `pendingFor(selectors)`
 *   says that an entry the selectors match has no SVID yet because of the limit, and the
 *   stream then waits for the next change instead of answering without it.
 *
 * What the server trusts: everything the source returns (it is the agent's own state).
 * What the source must guarantee: that identities are issued for the selectors given,
 * and that the private key belongs to the certificate.
 */
import type { JwtBundle } from '../../spiffe/jwt-bundle.js';
import type { X509Bundle } from '../../spiffe/x509-bundle.js';
import { formatSelector, type Selector } from '../workload-attestors/selector.js';

/** One X509-SVID a workload may receive (one per registration entry). */
export interface WorkloadIdentity {
  /** The registration entry's ID (orders identities, breaks hint ties). */
  readonly entryId: string;
  /** The entry's creation time, seconds since the epoch (0 when unknown): oldest wins a hint tie. */
  readonly entryCreatedAt: number;
  /** The SVID's SPIFFE ID (`spiffe://td/path`). */
  readonly spiffeId: string;
  /** DER certificates, leaf first, then intermediates (not the root). */
  readonly certChain: readonly Uint8Array[];
  /** The leaf's private key, PKCS#8 DER. */
  readonly privateKeyPkcs8: Uint8Array;
  /** The entry's hint (`''` for none). */
  readonly hint: string;
  /** The leaf's notAfter: never served at or after this instant. */
  readonly expiresAt: Date;
  /** Trust domain names (`partner.example`) whose bundles this workload receives. */
  readonly federatesWith: readonly string[];
}

/** The X.509 and JWT bundles of one trust domain. */
export interface TrustDomainBundles {
  readonly x509: X509Bundle;
  readonly jwt: JwtBundle;
}

/** A JWT-SVID as a source hands it out. */
export interface JwtSvidToken {
  /** JWS compact serialization. */
  readonly token: string;
  readonly expiresAt: Date;
}

/** The agent state the Workload API serves from. See the module comment for the contract. */
export interface IdentitySource {
  /** False until the source can answer; the server answers `Unavailable` meanwhile. */
  ready(): boolean;
  /** Identities whose entry selectors are a non-empty subset of `selectors` (expired included). */
  identitiesFor(selectors: readonly Selector[]): readonly WorkloadIdentity[];
  /** The agent's own trust domain bundles. */
  bundle(): TrustDomainBundles;
  /** Bundles held for these trust domain names; unknown ones are absent. */
  federatedBundles(trustDomains: readonly string[]): ReadonlyMap<string, TrustDomainBundles>;
  /** A JWT-SVID for `identity` and `audience` (at least one value). */
  fetchJwtSvid(
    identity: WorkloadIdentity,
    audience: readonly string[],
    signal?: AbortSignal,
  ): Promise<JwtSvidToken>;
  /** Calls `listener` after any change; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
  /**
   * Optional (SPIRE's cache subscriber): an X509-SVID stream for `selectors` is open. A source
   * whose SVID cache has a size limit keeps the SVIDs of the entries these selectors match,
   * and mints the missing ones soon. Returns the release, called once when the stream ends.
   */
  retain?(selectors: readonly Selector[]): () => void;
  /**
   * Optional: true while an entry `selectors` match has no X509-SVID yet because the cache's
   * size limit held it back (it is being minted). The X509-SVID stream then waits for the
   * next change instead of answering without it.
   */
  pendingFor?(selectors: readonly Selector[]): boolean;
}

/**
 * SPIRE's workload-entry match rule: the entry's selectors are a non-empty subset of the
 * workload's (every entry selector was produced by some attestor). `workloadSelectors` may
 * be given as the set of their `type:value` texts ({@link selectorKeys}), to build it once
 * when matching many entries.
 */
export function entryMatches(
  entrySelectors: readonly Selector[],
  workloadSelectors: readonly Selector[] | ReadonlySet<string>,
): boolean {
  if (entrySelectors.length === 0) return false;
  const have =
    workloadSelectors instanceof Set
      ? (workloadSelectors as ReadonlySet<string>)
      : selectorKeys(workloadSelectors as readonly Selector[]);
  return entrySelectors.every((s) => have.has(formatSelector(s)));
}

/** The `type:value` texts of `selectors`, as a set (for {@link entryMatches}). */
export function selectorKeys(selectors: Iterable<Selector>): ReadonlySet<string> {
  const keys = new Set<string>();
  for (const s of selectors) keys.add(formatSelector(s));
  return keys;
}
