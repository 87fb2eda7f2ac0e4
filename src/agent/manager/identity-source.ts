/**
 * The Workload API's {@link IdentitySource} over the agent store's in-memory snapshot: the
 * identities a workload's selectors earn (authorized entries with a cached X509-SVID), the
 * bundles, JWT-SVIDs through the {@link SvidCache}, and a change notification after every
 * committed store write. Nothing here touches LevelDB or the network on the request path.
 *
 * Readiness: ready at once when the store was opened warm (it held a bundle and a sync state, or
 * cached SVIDs: an agent restarted while the server is down serves immediately); otherwise once
 * the agent marks it ready after its first successful sync ({@link StoreIdentitySource.markReady}).
 * Until then the Workload API answers `Unavailable`, so a workload retries instead of hearing
 * "no identity issued" from an agent that has not asked the server yet.
 *
 * What it guarantees: an identity is offered only when the cached SVID carries the entry's
 * current SPIFFE ID (an entry whose ID changed waits for its new SVID). It returns expired SVIDs
 * too, as the {@link IdentitySource} contract asks: the Workload API filters by `expiresAt` when
 * it sends. JWT-SVIDs: see cache.ts (never expired).
 *
 * The X509-SVID cache's size limit (`x509_svid_cache_max_size`, cache.ts): with `svids`, an
 * open X509-SVID stream retains its selectors in the cache (`retain`), and while the limit
 * holds SVIDs back, a stream whose entries lack theirs waits for them (`pendingFor`).
 */
import { type Clock, systemClock } from '../../common/clock.js';
import type { AgentStoreSnapshot } from '../storage/agent-store.js';
import type { BundleRecord } from '../storage/records.js';
import {
  entryMatches,
  type IdentitySource,
  type JwtSvidToken,
  selectorKeys,
  type TrustDomainBundles,
  type WorkloadIdentity,
} from '../workload-api/identity-source.js';
import { formatSelector, type Selector } from '../workload-attestors/selector.js';
import type { JwtSvidSubject } from './cache.js';
import { trustDomainBundlesOf } from './convert.js';
import type { ManagedStore } from './managed-store.js';

/** Options of {@link StoreIdentitySource}. */
export interface StoreIdentitySourceOptions {
  readonly store: ManagedStore;
  /** Where JWT-SVIDs come from (the SVID cache). */
  readonly jwt: {
    fetchJwtSvid(
      subject: JwtSvidSubject,
      audience: readonly string[],
      signal?: AbortSignal,
    ): Promise<JwtSvidToken>;
  };
  /**
   * Ready at once (default: the store holds a bundle and a sync state or cached SVIDs, i.e. an
   * earlier run synced).
   */
  readonly readyAtStart?: boolean;
  /** Entry expiry checks. Default the system clock. */
  readonly clock?: Clock;
  /** The X509-SVID cache's size-limit hooks (the SVID cache); none: no limit applies. */
  readonly svids?: {
    retain(selectors: readonly Selector[], entryIds: readonly string[]): () => void;
    limited(): boolean;
  };
}

interface Candidate {
  readonly entryId: string;
  /** The entry's own expiry, epoch ms (0: none). */
  readonly entryExpiresAtMs: number;
  readonly selectors: readonly Selector[];
  /** Undefined while the entry has no SVID for its current SPIFFE ID. */
  readonly identity: WorkloadIdentity | undefined;
}

interface Index {
  readonly revision: number;
  /** Candidates by each of their selectors (`type:value`). */
  readonly bySelector: ReadonlyMap<string, readonly Candidate[]>;
  /**
   * What a selector set matched at this revision, by the JSON of the set's `type:value` texts
   * in the order given (see {@link MATCH_MEMO_LIMIT}).
   */
  readonly matched: Map<string, Matched>;
}

/** A selector set's candidates and, of those, the identities (one array, shared by callers). */
interface Matched {
  readonly candidates: readonly Candidate[];
  readonly identities: readonly WorkloadIdentity[];
}

/**
 * Selector sets remembered per store revision. Every Workload API call asks for its caller's
 * matches two or three times, and the callers of one gateway fall into a few selector sets
 * (one per uid, unit or container), so a call reuses its answer instead of walking the index;
 * past the limit the memo starts over (a gateway with more distinct callers than this only
 * loses the reuse). Returning the same `identities` array lets the Workload API keep its
 * encoded answer for it too (handlers.ts).
 */
const MATCH_MEMO_LIMIT = 512;

/** True when a snapshot holds what a warm start serves from. */
export function isWarmSnapshot(s: AgentStoreSnapshot): boolean {
  return s.bundle !== undefined && (s.sync !== undefined || s.x509Svids.size > 0);
}

/** An {@link IdentitySource} over the agent store (see the module docs). */
export class StoreIdentitySource implements IdentitySource {
  readonly #store: ManagedStore;
  readonly #jwt: StoreIdentitySourceOptions['jwt'];
  readonly #svids: StoreIdentitySourceOptions['svids'];
  readonly #clock: Clock;
  readonly #listeners = new Set<() => void>();
  readonly #unsubscribe: () => void;
  #ready: boolean;
  #index: Index | undefined;
  readonly #bundles = new WeakMap<BundleRecord, TrustDomainBundles>();

  constructor(options: StoreIdentitySourceOptions) {
    if (typeof options?.store?.onChange !== 'function') throw new TypeError('store is required');
    if (typeof options.jwt?.fetchJwtSvid !== 'function') throw new TypeError('jwt is required');
    this.#store = options.store;
    this.#jwt = options.jwt;
    this.#svids = options.svids;
    this.#clock = options.clock ?? systemClock;
    this.#ready = options.readyAtStart ?? isWarmSnapshot(options.store.snapshot);
    this.#unsubscribe = options.store.onChange(() => this.#notify());
  }

  ready(): boolean {
    return this.#ready && this.#store.snapshot.bundle !== undefined;
  }

  /** Turns readiness on (after the first successful sync); notifies subscribers. Idempotent. */
  markReady(): void {
    if (this.#ready) return;
    this.#ready = true;
    this.#notify();
  }

  /** The same array for the same selectors until the store changes (do not mutate it). */
  identitiesFor(selectors: readonly Selector[]): readonly WorkloadIdentity[] {
    return this.#matched(selectors).identities;
  }

  retain(selectors: readonly Selector[]): () => void {
    if (this.#svids === undefined) return () => {};
    return this.#svids.retain(
      selectors,
      this.#matched(selectors).candidates.map((c) => c.entryId),
    );
  }

  pendingFor(selectors: readonly Selector[]): boolean {
    if (this.#svids === undefined || !this.#svids.limited()) return false;
    const now = this.#clock.nowMs();
    // An entry past its own expiry is never minted: nothing to wait for.
    return this.#matched(selectors).candidates.some(
      (c) => c.identity === undefined && (c.entryExpiresAtMs === 0 || c.entryExpiresAtMs > now),
    );
  }

  bundle(): TrustDomainBundles {
    const snap = this.#store.snapshot;
    const record = snap.bundle ?? {
      trustDomain: snap.trustDomain,
      x509Authorities: [],
      jwtAuthorities: [],
      refreshHint: 0,
      sequenceNumber: 0,
    };
    return this.#bundlesOf(record);
  }

  federatedBundles(trustDomains: readonly string[]): ReadonlyMap<string, TrustDomainBundles> {
    const snap = this.#store.snapshot;
    const out = new Map<string, TrustDomainBundles>();
    for (const td of trustDomains) {
      const b = snap.federatedBundles.get(td);
      if (b !== undefined) out.set(td, this.#bundlesOf(b));
    }
    return out;
  }

  fetchJwtSvid(
    identity: WorkloadIdentity,
    audience: readonly string[],
    signal?: AbortSignal,
  ): Promise<JwtSvidToken> {
    return this.#jwt.fetchJwtSvid(
      { entryId: identity.entryId, spiffeId: identity.spiffeId },
      audience,
      signal,
    );
  }

  subscribe(listener: () => void): () => void {
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    const wrapped = () => listener();
    this.#listeners.add(wrapped);
    return () => {
      this.#listeners.delete(wrapped);
    };
  }

  /** Live subscriptions (tests check that streams unsubscribe). */
  get listenerCount(): number {
    return this.#listeners.size;
  }

  /** Stops following the store. */
  close(): void {
    this.#unsubscribe();
    this.#listeners.clear();
  }

  #bundlesOf(record: BundleRecord): TrustDomainBundles {
    let b = this.#bundles.get(record);
    if (b === undefined) {
      b = trustDomainBundlesOf(record);
      this.#bundles.set(record, b);
    }
    return b;
  }

  /**
   * The candidates (entries, with or without an SVID) whose selectors `selectors` cover, and
   * their identities; remembered for this store revision.
   */
  #matched(selectors: readonly Selector[]): Matched {
    const index = this.#currentIndex();
    const have = selectorKeys(selectors);
    // JSON, not a join: a selector value may hold any character, and two different sets must
    // never share a key.
    const key = JSON.stringify([...have]);
    const known = index.matched.get(key);
    if (known !== undefined) return known;
    const seen = new Set<Candidate>();
    const candidates: Candidate[] = [];
    const identities: WorkloadIdentity[] = [];
    for (const k of have) {
      for (const c of index.bySelector.get(k) ?? []) {
        if (seen.has(c)) continue;
        seen.add(c);
        if (!entryMatches(c.selectors, have)) continue;
        candidates.push(c);
        if (c.identity !== undefined) identities.push(c.identity);
      }
    }
    if (index.matched.size >= MATCH_MEMO_LIMIT) index.matched.clear();
    const m: Matched = { candidates, identities };
    index.matched.set(key, m);
    return m;
  }

  #currentIndex(): Index {
    const snap = this.#store.snapshot;
    if (this.#index?.revision === snap.revision) return this.#index;
    const bySelector = new Map<string, Candidate[]>();
    for (const entry of snap.entries.values()) {
      if (entry.selectors.length === 0) continue;
      const svid = snap.x509Svids.get(entry.id);
      const usable = svid !== undefined && svid.spiffeId === entry.spiffeId;
      const c: Candidate = {
        entryId: entry.id,
        entryExpiresAtMs: entry.expiresAt * 1000,
        selectors: entry.selectors,
        identity: !usable
          ? undefined
          : {
              entryId: entry.id,
              entryCreatedAt: entry.createdAt,
              spiffeId: svid.spiffeId,
              certChain: svid.certChain,
              privateKeyPkcs8: svid.privateKey,
              hint: entry.hint,
              expiresAt: new Date(svid.expiresAtMs),
              federatesWith: entry.federatesWith,
            },
      };
      for (const s of new Set(entry.selectors.map(formatSelector))) {
        let list = bySelector.get(s);
        if (list === undefined) {
          list = [];
          bySelector.set(s, list);
        }
        list.push(c);
      }
    }
    this.#index = { revision: snap.revision, bySelector, matched: new Map() };
    return this.#index;
  }

  #notify(): void {
    for (const l of [...this.#listeners]) {
      try {
        l();
      } catch {
        // a subscriber's failure is its own
      }
    }
  }
}
