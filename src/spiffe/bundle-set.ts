/**
 * Bundle sets: the bundles of several trust domains (one bundle per trust domain), as a
 * validator that federates holds them. A set is a source of X.509 and JWT authorities for
 * every trust domain it holds; verification functions accept a single bundle or a set.
 */
import type { JwtAuthority, JwtBundleSource, X509BundleSource } from './bundle-source.js';
import { type TrustDomain, toTrustDomain } from './id.js';
import type { JwtBundle } from './jwt-bundle.js';
import type { SpiffeBundle } from './spiffe-bundle.js';
import type { X509Bundle } from './x509-bundle.js';

/** Any bundle of one trust domain. */
export type Bundle = X509Bundle | JwtBundle | SpiffeBundle;

/**
 * The bundles of several trust domains, at most one per trust domain. To hold both X.509 and
 * JWT authorities for a trust domain, store a {@link SpiffeBundle}. A trust domain whose
 * bundle has no authorities of the asked kind yields `undefined` from the source methods,
 * exactly as an unknown trust domain does.
 *
 * The set keeps references: changes made to a stored bundle are visible through the set.
 */
export class BundleSet implements X509BundleSource, JwtBundleSource {
  readonly #bundles = new Map<string, Bundle>();

  constructor(bundles: Iterable<Bundle> = []) {
    for (const b of bundles) this.set(b);
  }

  /** Stores `bundle` for its trust domain, replacing any bundle held for it. */
  set(bundle: Bundle): void {
    this.#bundles.set(bundle.trustDomain.name, bundle);
  }

  /** The bundle of `td`, if any. */
  get(td: TrustDomain | string): Bundle | undefined {
    return this.#bundles.get(toTrustDomain(td).name);
  }

  /** True when a bundle is held for `td`. */
  has(td: TrustDomain | string): boolean {
    return this.#bundles.has(toTrustDomain(td).name);
  }

  /** Removes the bundle of `td`; true when there was one. */
  delete(td: TrustDomain | string): boolean {
    return this.#bundles.delete(toTrustDomain(td).name);
  }

  /** The number of trust domains held. */
  get size(): number {
    return this.#bundles.size;
  }

  /** The trust domains held, sorted by name. */
  trustDomains(): TrustDomain[] {
    return [...this.#bundles.values()]
      .map((b) => b.trustDomain)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The bundles held, sorted by trust domain name. */
  bundles(): Bundle[] {
    return this.trustDomains().map((td) => this.#bundles.get(td.name)!);
  }

  /** The X.509 authorities of `td`'s bundle; undefined when none is held or it has none. */
  getX509Authorities(td: TrustDomain): readonly Uint8Array[] | undefined {
    const b = this.#bundles.get(td.name);
    return b !== undefined && 'getX509Authorities' in b ? b.getX509Authorities(td) : undefined;
  }

  /** The JWT authorities of `td`'s bundle; undefined when none is held or it has none. */
  getJwtAuthorities(td: TrustDomain): ReadonlyMap<string, JwtAuthority> | undefined {
    const b = this.#bundles.get(td.name);
    return b !== undefined && 'getJwtAuthorities' in b ? b.getJwtAuthorities(td) : undefined;
  }
}
