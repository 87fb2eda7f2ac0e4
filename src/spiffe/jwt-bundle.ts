/**
 * JWT bundles (SPIFFE JWT-SVID, SPIFFE Trust Domain and Bundle §4): the JWT authorities
 * (public keys, by key ID) of one trust domain, and their JWK Set form as served by the
 * Workload API (`FetchJWTBundles`, one JWKS per trust domain).
 *
 * Errors: `ERR_BUNDLE_INVALID`.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { SpireEdgeError } from '../common/errors.js';
import type { JwtAuthority, JwtBundleSource } from './bundle-source.js';
import { type TrustDomain, toTrustDomain } from './id.js';

/** JWK members that carry private (or symmetric) key material (RFC 7518 §6). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'] as const;

/** Key types a JWT authority may have: the ones JWT-SVID's algorithms (§2.1) can use. */
export const JWT_AUTHORITY_KEY_TYPES: readonly string[] = ['EC', 'RSA'];

/** Curves a JWT authority may use (ES256, ES384, ES512). */
const JWT_CURVES = new Set(['P-256', 'P-384', 'P-521']);

// Imported public keys, keyed by the (frozen) JWK object of an authority.
const publicKeys = new WeakMap<object, KeyObject>();

function bundleError(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_BUNDLE_INVALID',
    message,
    cause === undefined ? {} : { cause: cause },
  );
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Builds a JWT authority from a public key, given as a `KeyObject` or as a JWK. The JWK is
 * checked (EC P-256/P-384/P-521 or RSA; no private members; the point/modulus must import)
 * and stored in canonical form: `kty`, `kid`, then `crv`/`x`/`y` or `n`/`e`, plus `alg` when
 * the input had one. Other members (`use`, `x5c`, …) are dropped.
 *
 * @throws TypeError when `keyId` is not a non-empty string, `key` is neither a public
 *   `KeyObject` nor an object.
 * @throws SpireEdgeError `ERR_BUNDLE_INVALID` when the JWK is not an acceptable public key.
 */
export function jwtAuthorityFromKey(
  keyId: string,
  key: KeyObject | Readonly<Record<string, unknown>>,
): JwtAuthority {
  if (typeof keyId !== 'string' || keyId === '') {
    throw new TypeError('JWT authority key ID must be a non-empty string');
  }
  let pub: KeyObject;
  let alg: string | undefined;
  if (isKeyObject(key)) {
    if (key.type !== 'public') throw new TypeError('JWT authority key must be a public key');
    pub = key;
  } else if (isPlainObject(key)) {
    pub = importPublicJwk(key, `JWT authority ${keyId}`);
    if (key['alg'] !== undefined) {
      if (typeof key['alg'] !== 'string') {
        throw bundleError(`JWT authority ${keyId}: alg must be a string`);
      }
      alg = key['alg'];
    }
  } else {
    throw new TypeError('JWT authority key must be a KeyObject or a JWK object');
  }
  const canonical = exportJwk(pub, `JWT authority ${keyId}`);
  if (!JWT_AUTHORITY_KEY_TYPES.includes(canonical.kty as string)) {
    throw bundleError(`JWT authority ${keyId}: key type ${canonical.kty} is not supported`);
  }
  if (canonical.kty === 'EC' && !JWT_CURVES.has(canonical.crv as string)) {
    throw bundleError(`JWT authority ${keyId}: curve ${canonical.crv} is not supported`);
  }
  const { kty, ...params } = canonical;
  const jwk: Record<string, unknown> = { kty, kid: keyId, ...params };
  if (alg !== undefined) jwk['alg'] = alg;
  Object.freeze(jwk);
  publicKeys.set(jwk, pub);
  return Object.freeze({ keyId, jwk });
}

/**
 * Throws when a JWK carries private or symmetric key material (`d`, `p`, `q`, `dp`, `dq`,
 * `qi`, `oth`, `k`, `priv`).
 *
 * @internal shared with spiffe-bundle.ts.
 */
export function assertNoPrivateMembers(
  jwk: Readonly<Record<string, unknown>>,
  where: string,
): void {
  for (const m of PRIVATE_MEMBERS) {
    if (Object.hasOwn(jwk, m)) throw bundleError(`${where}: holds private key member ${m}`);
  }
}

/**
 * Imports the public key of a JWK. Rejects private members and anything Node cannot import
 * as a public key.
 *
 * @internal shared with spiffe-bundle.ts.
 */
export function importPublicJwk(jwk: Readonly<Record<string, unknown>>, where: string): KeyObject {
  assertNoPrivateMembers(jwk, where);
  if (typeof jwk['kty'] !== 'string') throw bundleError(`${where}: kty is missing`);
  try {
    return createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  } catch (err) {
    throw bundleError(
      `${where}: cannot import ${jwk['kty']} public key: ${(err as Error).message}`,
      err,
    );
  }
}

function exportJwk(pub: KeyObject, where: string): Record<string, unknown> {
  try {
    return pub.export({ format: 'jwk' }) as Record<string, unknown>;
  } catch (err) {
    throw bundleError(`${where}: key cannot be expressed as a JWK`, err);
  }
}

function isKeyObject(v: unknown): v is KeyObject {
  return (
    typeof v === 'object' &&
    v !== null &&
    (v as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag] === 'KeyObject'
  );
}

/**
 * The public key of a JWT authority as a `KeyObject`, imported once per authority and cached.
 * Works for authorities built anywhere (not only by this module).
 *
 * @throws SpireEdgeError `ERR_BUNDLE_INVALID` when the authority's JWK does not import.
 */
export function jwtAuthorityPublicKey(authority: JwtAuthority): KeyObject {
  const cached = publicKeys.get(authority.jwk);
  if (cached !== undefined) return cached;
  const pub = importPublicJwk(authority.jwk, `JWT authority ${authority.keyId}`);
  publicKeys.set(authority.jwk, pub);
  return pub;
}

/** True when two JWT authorities have the same key ID and the same JWK members. */
export function jwtAuthorityEquals(a: JwtAuthority, b: JwtAuthority): boolean {
  if (a.keyId !== b.keyId) return false;
  const ka = Object.keys(a.jwk).sort();
  const kb = Object.keys(b.jwk).sort();
  return (
    ka.length === kb.length &&
    ka.every((k, i) => k === kb[i] && JSON.stringify(a.jwk[k]) === JSON.stringify(b.jwk[k]))
  );
}

/**
 * The JWT authorities of one trust domain. A source of JWT authorities for its own trust
 * domain only.
 */
export class JwtBundle implements JwtBundleSource {
  readonly trustDomain: TrustDomain;
  readonly #authorities = new Map<string, JwtAuthority>();

  /**
   * @param authorities initial authorities; each is re-checked and stored in canonical form.
   */
  constructor(trustDomain: TrustDomain | string, authorities: Iterable<JwtAuthority> = []) {
    this.trustDomain = toTrustDomain(trustDomain);
    for (const a of authorities) this.addJwtAuthority(a.keyId, a.jwk);
  }

  /** The authorities by key ID, in insertion order. */
  get jwtAuthorities(): ReadonlyMap<string, JwtAuthority> {
    return this.#authorities;
  }

  /**
   * Adds (or replaces) the authority with key ID `keyId`.
   *
   * @throws SpireEdgeError `ERR_BUNDLE_INVALID` when `key` is not an acceptable public key.
   */
  addJwtAuthority(keyId: string, key: KeyObject | Readonly<Record<string, unknown>>): JwtAuthority {
    const a = jwtAuthorityFromKey(keyId, key);
    this.#authorities.set(keyId, a);
    return a;
  }

  /** Removes the authority with key ID `keyId`; true when there was one. */
  removeJwtAuthority(keyId: string): boolean {
    return this.#authorities.delete(keyId);
  }

  /** The authority with key ID `keyId`, if any. */
  findJwtAuthority(keyId: string): JwtAuthority | undefined {
    return this.#authorities.get(keyId);
  }

  /** True when an authority with key ID `keyId` is present. */
  hasJwtAuthority(keyId: string): boolean {
    return this.#authorities.has(keyId);
  }

  /** The authorities when `td` is this bundle's trust domain, else undefined. */
  getJwtAuthorities(td: TrustDomain): ReadonlyMap<string, JwtAuthority> | undefined {
    return td.name === this.trustDomain.name ? this.#authorities : undefined;
  }

  /** The bundle as a JWK Set document (`{"keys":[…]}`, each key with its `kid`). */
  marshal(): string {
    return JSON.stringify({ keys: [...this.#authorities.values()].map((a) => a.jwk) });
  }

  /** True when both bundles have the same trust domain and the same authorities. */
  equals(other: JwtBundle): boolean {
    if (!this.trustDomain.equals(other.trustDomain)) return false;
    if (this.#authorities.size !== other.#authorities.size) return false;
    for (const [kid, a] of this.#authorities) {
      const b = other.#authorities.get(kid);
      if (b === undefined || !jwtAuthorityEquals(a, b)) return false;
    }
    return true;
  }
}

/**
 * Decodes a bundle document to a JSON object.
 *
 * @internal shared with spiffe-bundle.ts.
 */
export function decodeJsonDocument(
  data: string | Uint8Array,
  what: string,
): Record<string, unknown> {
  let text: string;
  if (typeof data === 'string') {
    text = data;
  } else if (data instanceof Uint8Array) {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(data);
    } catch (err) {
      throw bundleError(`${what} is not valid UTF-8`, err);
    }
  } else {
    throw new TypeError(`${what} must be a string or a Uint8Array`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw bundleError(`${what} is not valid JSON: ${(err as Error).message}`, err);
  }
  if (!isPlainObject(doc)) throw bundleError(`${what} must be a JSON object`);
  return doc;
}

/**
 * Reads the `keys` member of a JWK Set. A `null` value (Go's encoding of an empty list) is
 * an empty set; a missing member is an error (RFC 7517 §5, SPIFFE bundle §4.1.3).
 *
 * @internal shared with spiffe-bundle.ts.
 */
export function jwksKeys(doc: Record<string, unknown>, what: string): Record<string, unknown>[] {
  if (!Object.hasOwn(doc, 'keys')) throw bundleError(`${what}: keys member is missing`);
  const keys = doc['keys'];
  if (keys === null) return [];
  if (!Array.isArray(keys)) throw bundleError(`${what}: keys must be an array`);
  return keys.map((k, i) => {
    if (!isPlainObject(k)) throw bundleError(`${what}: key ${i} must be a JSON object`);
    return k;
  });
}

/**
 * Parses a JWT bundle from a JWK Set document (the Workload API `FetchJWTBundles` form).
 *
 * Every key must have a non-empty `kid` unique in the set, be an EC (P-256, P-384, P-521)
 * or RSA public key with no private members, and have no `use` other than `jwt-svid` or
 * `sig`. An empty `keys` array is an empty bundle. The trust domain is not in the document:
 * the caller must know which trust domain the JWKS belongs to (SPIFFE bundle §3).
 *
 * @throws SpireEdgeError `ERR_BUNDLE_INVALID`, naming the key and the broken rule.
 */
export function parseJwtBundle(
  trustDomain: TrustDomain | string,
  jwksJson: string | Uint8Array,
): JwtBundle {
  const td = toTrustDomain(trustDomain);
  const what = `JWT bundle for ${td.name}`;
  const keys = jwksKeys(decodeJsonDocument(jwksJson, what), what);
  const bundle = new JwtBundle(td);
  keys.forEach((key, i) => {
    const kid = key['kid'];
    if (typeof kid !== 'string' || kid === '') {
      throw bundleError(`${what}: key ${i} has no kid`);
    }
    const use = key['use'];
    if (use !== undefined && use !== 'jwt-svid' && use !== 'sig') {
      throw bundleError(`${what}: key ${kid} has use ${JSON.stringify(use)}, not jwt-svid`);
    }
    if (bundle.hasJwtAuthority(kid)) throw bundleError(`${what}: duplicate kid ${kid}`);
    try {
      bundle.addJwtAuthority(kid, key);
    } catch (err) {
      throw bundleError(`${what}: ${(err as Error).message}`, err);
    }
  });
  return bundle;
}
