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
 */
import type { AgentStoreSnapshot } from '../storage/agent-store.js';
import type { BundleRecord } from '../storage/records.js';
import {
  entryMatches,
  type IdentitySource,
  type JwtSvidToken,
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
}

interface Candidate {
  readonly selectors: readonly Selector[];
  readonly identity: WorkloadIdentity;
}

interface Index {
  readonly revision: number;
  /** Candidates by each of their selectors (`type:value`). */
  readonly bySelector: ReadonlyMap<string, readonly Candidate[]>;
}

/** True when a snapshot holds what a warm start serves from. */
export function isWarmSnapshot(s: AgentStoreSnapshot): boolean {
  return s.bundle !== undefined && (s.sync !== undefined || s.x509Svids.size > 0);
}

/** An {@link IdentitySource} over the agent store (see the module docs). */
export class StoreIdentitySource implements IdentitySource {
  readonly #store: ManagedStore;
  readonly #jwt: StoreIdentitySourceOptions['jwt'];
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

  identitiesFor(selectors: readonly Selector[]): readonly WorkloadIdentity[] {
    const index = this.#currentIndex();
    const seen = new Set<Candidate>();
    const out: WorkloadIdentity[] = [];
    for (const s of selectors) {
      for (const c of index.bySelector.get(formatSelector(s)) ?? []) {
        if (seen.has(c)) continue;
        seen.add(c);
        if (entryMatches(c.selectors, selectors)) out.push(c.identity);
      }
    }
    return out;
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

  #currentIndex(): Index {
    const snap = this.#store.snapshot;
    if (this.#index?.revision === snap.revision) return this.#index;
    const bySelector = new Map<string, Candidate[]>();
    for (const entry of snap.entries.values()) {
      const svid = snap.x509Svids.get(entry.id);
      if (svid === undefined || svid.spiffeId !== entry.spiffeId || entry.selectors.length === 0) {
        continue;
      }
      const c: Candidate = {
        selectors: entry.selectors,
        identity: {
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
    this.#index = { revision: snap.revision, bySelector };
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
