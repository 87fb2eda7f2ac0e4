/**
 * Bundle sources: what verifiers need from a bundle or a set of bundles. A single bundle is a
 * source for its own trust domain; a bundle set is a source for every trust domain it holds.
 * Verification functions accept either (`bundles` arguments).
 */
import type { TrustDomain } from './id.js';

/** Anything that can give the X.509 authorities of a trust domain. */
export interface X509BundleSource {
  /** The X.509 authorities (DER certificates) of `td`, or undefined when unknown. */
  getX509Authorities(td: TrustDomain): readonly Uint8Array[] | undefined;
}

/** A JSON Web Key as held in a JWT bundle (public parameters only). */
export interface JwtAuthority {
  readonly keyId: string;
  /** The public key as a JWK (kty, crv/x/y or n/e, kid). */
  readonly jwk: Readonly<Record<string, unknown>>;
}

/** Anything that can give the JWT authorities of a trust domain. */
export interface JwtBundleSource {
  /** The JWT authorities of `td` keyed by key ID, or undefined when unknown. */
  getJwtAuthorities(td: TrustDomain): ReadonlyMap<string, JwtAuthority> | undefined;
}
