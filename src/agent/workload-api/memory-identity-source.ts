/**
 * An in-memory {@link IdentitySource}: entries with their SVIDs, the own bundle and
 * federated bundles, all set by the owner, with change notification. The reference
 * implementation of the contract (tests, benchmarks, demos); the agent's cache manager
 * implements the same interface over its synced, persisted state.
 *
 * Errors: `ERR_WORKLOAD_JWT_SVID_UNAVAILABLE` from `fetchJwtSvid` when no minter was given.
 */
import { SpireEdgeError } from '../../common/errors.js';
import { toTrustDomain } from '../../spiffe/id.js';
import type { Selector } from '../workload-attestors/selector.js';
import {
  entryMatches,
  type IdentitySource,
  type JwtSvidToken,
  selectorKeys,
  type TrustDomainBundles,
  type WorkloadIdentity,
} from './identity-source.js';

/** An identity together with the selectors of its registration entry. */
export interface MemoryIdentityEntry extends WorkloadIdentity {
  /** The entry's selectors; a workload qualifies when they are a subset of its own. */
  readonly selectors: readonly Selector[];
}

/** Options of {@link MemoryIdentitySource}. */
export interface MemoryIdentitySourceOptions {
  /** The own trust domain's bundles. */
  readonly bundle: TrustDomainBundles;
  /** Initial readiness. Default true. */
  readonly ready?: boolean;
  /** Mints JWT-SVIDs; without it `fetchJwtSvid` rejects. */
  readonly mintJwtSvid?: (
    identity: WorkloadIdentity,
    audience: readonly string[],
    signal?: AbortSignal,
  ) => Promise<JwtSvidToken>;
  /**
   * Return the same `identitiesFor` array for the same selectors until an entry is added or
   * removed — also across bundle changes, unlike the agent's source — so that tests see the
   * Workload API reuse an answer only while it still holds. Default false (a new array each
   * call).
   */
  readonly stableArrays?: boolean;
}

/** An {@link IdentitySource} over state held in memory. Every setter notifies subscribers. */
export class MemoryIdentitySource implements IdentitySource {
  #ready: boolean;
  #bundle: TrustDomainBundles;
  readonly #entries = new Map<string, MemoryIdentityEntry>();
  readonly #federated = new Map<string, TrustDomainBundles>();
  readonly #listeners = new Set<() => void>();
  readonly #mint: MemoryIdentitySourceOptions['mintJwtSvid'];
  readonly #stable: Map<string, readonly WorkloadIdentity[]> | undefined;

  constructor(options: MemoryIdentitySourceOptions) {
    if (options?.bundle?.x509 === undefined || options.bundle.jwt === undefined) {
      throw new TypeError('bundle with x509 and jwt is required');
    }
    this.#bundle = options.bundle;
    this.#ready = options.ready ?? true;
    this.#mint = options.mintJwtSvid;
    this.#stable = options.stableArrays === true ? new Map() : undefined;
  }

  ready(): boolean {
    return this.#ready;
  }

  identitiesFor(selectors: readonly Selector[]): readonly WorkloadIdentity[] {
    const have = selectorKeys(selectors);
    const key = this.#stable === undefined ? '' : JSON.stringify([...have].sort());
    const known = this.#stable?.get(key);
    if (known !== undefined) return known;
    const out: WorkloadIdentity[] = [];
    for (const e of this.#entries.values()) {
      if (entryMatches(e.selectors, have)) out.push(e);
    }
    this.#stable?.set(key, out);
    return out;
  }

  bundle(): TrustDomainBundles {
    return this.#bundle;
  }

  federatedBundles(trustDomains: readonly string[]): ReadonlyMap<string, TrustDomainBundles> {
    const out = new Map<string, TrustDomainBundles>();
    for (const td of trustDomains) {
      const b = this.#federated.get(td);
      if (b !== undefined) out.set(td, b);
    }
    return out;
  }

  async fetchJwtSvid(
    identity: WorkloadIdentity,
    audience: readonly string[],
    signal?: AbortSignal,
  ): Promise<JwtSvidToken> {
    if (this.#mint === undefined) {
      throw new SpireEdgeError(
        'ERR_WORKLOAD_JWT_SVID_UNAVAILABLE',
        'this identity source mints no JWT-SVIDs',
      );
    }
    return this.#mint(identity, audience, signal);
  }

  subscribe(listener: () => void): () => void {
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    // A wrapper per subscription, so the same function subscribed twice is two subscriptions.
    const wrapped = () => listener();
    this.#listeners.add(wrapped);
    return () => {
      this.#listeners.delete(wrapped);
    };
  }

  /** Number of live subscriptions (tests check that streams unsubscribe). */
  get listenerCount(): number {
    return this.#listeners.size;
  }

  /** The entries held, in insertion order. */
  entries(): MemoryIdentityEntry[] {
    return [...this.#entries.values()];
  }

  setReady(ready: boolean): void {
    this.#ready = ready;
    this.#notify();
  }

  /** Adds or replaces the entry with `entry.entryId`. */
  upsert(entry: MemoryIdentityEntry): void {
    if (typeof entry?.entryId !== 'string' || entry.entryId === '') {
      throw new TypeError('entry.entryId must be a non-empty string');
    }
    this.#entries.set(entry.entryId, entry);
    this.#stable?.clear();
    this.#notify();
  }

  /** Removes an entry; true when there was one. */
  remove(entryId: string): boolean {
    const had = this.#entries.delete(entryId);
    if (had) {
      this.#stable?.clear();
      this.#notify();
    }
    return had;
  }

  setBundle(bundle: TrustDomainBundles): void {
    this.#bundle = bundle;
    this.#notify();
  }

  /** Sets the bundles of a federated trust domain (keyed by its name). */
  setFederatedBundle(bundle: TrustDomainBundles): void {
    this.#federated.set(toTrustDomain(bundle.x509.trustDomain).name, bundle);
    this.#notify();
  }

  removeFederatedBundle(trustDomain: string): boolean {
    const had = this.#federated.delete(trustDomain);
    if (had) this.#notify();
    return had;
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
