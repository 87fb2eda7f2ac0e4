/**
 * SPIFFE bundles (SPIFFE Trust Domain and Bundle §3–§4): every authority of one trust domain
 * — X.509 authorities (CA certificates, `use` = `x509-svid`) and JWT authorities (public
 * keys by key ID, `use` = `jwt-svid`) — with the optional sequence number and refresh hint,
 * in the JWK Set form published on bundle endpoints and exchanged for federation.
 *
 * Errors: `ERR_BUNDLE_INVALID`.
 */
import { type KeyObject, X509Certificate } from 'node:crypto';
import { readWhole } from '../common/der.js';
import { SpireEdgeError } from '../common/errors.js';
import type { JwtAuthority, JwtBundleSource, X509BundleSource } from './bundle-source.js';
import { type TrustDomain, toTrustDomain } from './id.js';
import {
  assertNoPrivateMembers,
  decodeJsonDocument,
  importPublicJwk,
  JWT_AUTHORITY_KEY_TYPES,
  JwtBundle,
  jwksKeys,
  jwtAuthorityEquals,
  jwtAuthorityFromKey,
} from './jwt-bundle.js';
import { X509Bundle } from './x509-bundle.js';

/** The `use` value of X.509 authorities (X509-SVID §6). */
export const X509_SVID_USE = 'x509-svid';
/** The `use` value of JWT authorities (JWT-SVID bundle keys). */
export const JWT_SVID_USE = 'jwt-svid';

/** Key types an `x509-svid` entry may have (those Node can compare with a certificate key). */
const X509_KEY_TYPES = new Set(['EC', 'RSA', 'OKP']);
const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

interface X509Entry {
  readonly der: Uint8Array;
  /** The certificate's public key as JWK parameters (no `use`, no `x5c`). */
  readonly jwk: Readonly<Record<string, unknown>>;
}

function bundleError(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_BUNDLE_INVALID',
    message,
    cause === undefined ? {} : { cause: cause },
  );
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** Parses a certificate and returns it with its public key; throws ERR_BUNDLE_INVALID. */
function loadCertificate(der: Uint8Array, where: string): { der: Uint8Array; key: KeyObject } {
  if (!(der instanceof Uint8Array)) throw new TypeError('X.509 authority must be a Uint8Array');
  try {
    readWhole(der, 'certificate');
    return { der, key: new X509Certificate(der).publicKey };
  } catch (err) {
    throw bundleError(`${where}: not a valid certificate: ${(err as Error).message}`, err);
  }
}

function x509Entry(der: Uint8Array, where: string): X509Entry {
  const { key } = loadCertificate(der, where);
  let jwk: Record<string, unknown>;
  try {
    jwk = key.export({ format: 'jwk' }) as Record<string, unknown>;
  } catch (err) {
    throw bundleError(`${where}: certificate key cannot be expressed as a JWK`, err);
  }
  return { der, jwk: Object.freeze(jwk) };
}

function checkCounter(v: unknown, name: string, fail: (m: string) => Error): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw fail(`${name} must be a non-negative integer`);
  }
  if (!Number.isSafeInteger(v)) throw fail(`${name} exceeds 2^53-1 and cannot be held exactly`);
  return v;
}

/** What a {@link SpiffeBundle} starts with. */
export interface SpiffeBundleInit {
  /** DER CA certificates. */
  readonly x509Authorities?: Iterable<Uint8Array>;
  readonly jwtAuthorities?: Iterable<JwtAuthority>;
  /** `spiffe_sequence` (§4.1.1). */
  readonly sequenceNumber?: number | undefined;
  /** `spiffe_refresh_hint` in seconds (§4.1.2). */
  readonly refreshHint?: number | undefined;
}

/**
 * A SPIFFE bundle: the X.509 and JWT authorities of one trust domain. A source of both kinds
 * of authorities for its own trust domain only.
 *
 * X.509 authorities are checked to be parseable certificates whose key can be written as a
 * JWK; nothing else about them (CA flag, validity, SPIFFE ID) is checked here: path
 * validation does that when an SVID is verified.
 */
export class SpiffeBundle implements X509BundleSource, JwtBundleSource {
  readonly trustDomain: TrustDomain;
  #x509: X509Entry[] = [];
  #x509Ders: Uint8Array[] = [];
  readonly #jwt = new Map<string, JwtAuthority>();
  #sequenceNumber: number | undefined;
  #refreshHint: number | undefined;

  /**
   * @throws SpireEdgeError `ERR_BUNDLE_INVALID` when an authority is not acceptable.
   * @throws TypeError when the sequence number or refresh hint is not a non-negative integer.
   */
  constructor(trustDomain: TrustDomain | string, init: SpiffeBundleInit = {}) {
    this.trustDomain = toTrustDomain(trustDomain);
    for (const der of init.x509Authorities ?? []) this.addX509Authority(der);
    for (const a of init.jwtAuthorities ?? []) this.addJwtAuthority(a.keyId, a.jwk);
    this.sequenceNumber = init.sequenceNumber;
    this.refreshHint = init.refreshHint;
  }

  /** Builds a SPIFFE bundle holding the X.509 authorities of `bundle`. */
  static fromX509Bundle(bundle: X509Bundle): SpiffeBundle {
    return new SpiffeBundle(bundle.trustDomain, { x509Authorities: bundle.x509Authorities });
  }

  /** Builds a SPIFFE bundle holding the JWT authorities of `bundle`. */
  static fromJwtBundle(bundle: JwtBundle): SpiffeBundle {
    return new SpiffeBundle(bundle.trustDomain, {
      jwtAuthorities: bundle.jwtAuthorities.values(),
    });
  }

  /** `spiffe_sequence`: a monotonically increasing revision number, or undefined. */
  get sequenceNumber(): number | undefined {
    return this.#sequenceNumber;
  }

  set sequenceNumber(v: number | undefined) {
    this.#sequenceNumber = checkCounter(v, 'sequence number', (m) => new TypeError(m));
  }

  /** `spiffe_refresh_hint`: how often consumers should refetch, in seconds, or undefined. */
  get refreshHint(): number | undefined {
    return this.#refreshHint;
  }

  set refreshHint(v: number | undefined) {
    this.#refreshHint = checkCounter(v, 'refresh hint', (m) => new TypeError(m));
  }

  /** The DER certificates of the X.509 authorities, in insertion order. */
  get x509Authorities(): readonly Uint8Array[] {
    return this.#x509Ders;
  }

  /** The JWT authorities by key ID, in insertion order. */
  get jwtAuthorities(): ReadonlyMap<string, JwtAuthority> {
    return this.#jwt;
  }

  /**
   * Adds an X.509 authority unless an identical one is present.
   *
   * @throws SpireEdgeError `ERR_BUNDLE_INVALID` when `der` is not a usable certificate.
   */
  addX509Authority(der: Uint8Array): void {
    if (this.hasX509Authority(der)) return;
    this.#x509.push(x509Entry(der, `X.509 authority for ${this.trustDomain.name}`));
    this.#x509Ders = this.#x509.map((e) => e.der);
  }

  /** Removes an X.509 authority; true when it was present. */
  removeX509Authority(der: Uint8Array): boolean {
    const i = this.#x509.findIndex((e) => bytesEqual(e.der, der));
    if (i < 0) return false;
    this.#x509.splice(i, 1);
    this.#x509Ders = this.#x509.map((e) => e.der);
    return true;
  }

  /** True when an identical X.509 authority is present. */
  hasX509Authority(der: Uint8Array): boolean {
    return this.#x509.some((e) => bytesEqual(e.der, der));
  }

  /**
   * Adds (or replaces) the JWT authority with key ID `keyId`.
   *
   * @throws SpireEdgeError `ERR_BUNDLE_INVALID` when `key` is not an acceptable public key.
   */
  addJwtAuthority(keyId: string, key: KeyObject | Readonly<Record<string, unknown>>): JwtAuthority {
    const a = jwtAuthorityFromKey(keyId, key);
    this.#jwt.set(keyId, a);
    return a;
  }

  /** Removes the JWT authority with key ID `keyId`; true when there was one. */
  removeJwtAuthority(keyId: string): boolean {
    return this.#jwt.delete(keyId);
  }

  /** The JWT authority with key ID `keyId`, if any. */
  findJwtAuthority(keyId: string): JwtAuthority | undefined {
    return this.#jwt.get(keyId);
  }

  /** True when a JWT authority with key ID `keyId` is present. */
  hasJwtAuthority(keyId: string): boolean {
    return this.#jwt.has(keyId);
  }

  /** The X.509 authorities when `td` is this bundle's trust domain, else undefined. */
  getX509Authorities(td: TrustDomain): readonly Uint8Array[] | undefined {
    return td.name === this.trustDomain.name ? this.#x509Ders : undefined;
  }

  /** The JWT authorities when `td` is this bundle's trust domain, else undefined. */
  getJwtAuthorities(td: TrustDomain): ReadonlyMap<string, JwtAuthority> | undefined {
    return td.name === this.trustDomain.name ? this.#jwt : undefined;
  }

  /** The X.509 authorities alone. */
  toX509Bundle(): X509Bundle {
    return new X509Bundle(this.trustDomain, this.#x509Ders);
  }

  /** The JWT authorities alone. */
  toJwtBundle(): JwtBundle {
    return new JwtBundle(this.trustDomain, this.#jwt.values());
  }

  /** The bundle as the standard SPIFFE bundle document; see {@link marshalSpiffeBundle}. */
  marshal(): string {
    const keys: Record<string, unknown>[] = [];
    for (const e of this.#x509) {
      keys.push({
        use: X509_SVID_USE,
        ...e.jwk,
        x5c: [Buffer.from(e.der.buffer, e.der.byteOffset, e.der.byteLength).toString('base64')],
      });
    }
    for (const a of this.#jwt.values()) keys.push({ use: JWT_SVID_USE, ...a.jwk });
    const doc: Record<string, unknown> = { keys };
    if (this.#refreshHint !== undefined) doc['spiffe_refresh_hint'] = this.#refreshHint;
    if (this.#sequenceNumber !== undefined) doc['spiffe_sequence'] = this.#sequenceNumber;
    return JSON.stringify(doc);
  }

  /**
   * True when both bundles have the same trust domain, sequence number, refresh hint, X.509
   * authorities (in the same order) and JWT authorities.
   */
  equals(other: SpiffeBundle): boolean {
    if (!this.trustDomain.equals(other.trustDomain)) return false;
    if (this.#sequenceNumber !== other.#sequenceNumber) return false;
    if (this.#refreshHint !== other.#refreshHint) return false;
    if (this.#x509.length !== other.#x509.length) return false;
    if (!this.#x509.every((e, i) => bytesEqual(e.der, other.#x509[i]!.der))) return false;
    if (this.#jwt.size !== other.#jwt.size) return false;
    for (const [kid, a] of this.#jwt) {
      const b = other.#jwt.get(kid);
      if (b === undefined || !jwtAuthorityEquals(a, b)) return false;
    }
    return true;
  }
}

function decodeX5c(x5c: unknown, where: string): Uint8Array {
  if (!Array.isArray(x5c)) throw bundleError(`${where}: x5c is missing`);
  if (x5c.length !== 1) {
    throw bundleError(`${where}: x5c must hold exactly one certificate, has ${x5c.length}`);
  }
  const b64 = x5c[0];
  if (typeof b64 !== 'string' || !B64_RE.test(b64) || b64.length % 4 !== 0 || b64 === '') {
    throw bundleError(`${where}: x5c[0] is not standard base64`);
  }
  return new Uint8Array(Buffer.from(b64, 'base64'));
}

/**
 * Parses a SPIFFE bundle document (SPIFFE Trust Domain and Bundle §4) for `trustDomain`.
 *
 * - `keys` must be present (an array; `null` counts as empty).
 * - Entries whose `use` is missing or neither `x509-svid` nor `jwt-svid`, and entries whose
 *   `kty` is unknown (not EC/RSA/OKP for `x509-svid`, not EC/RSA for `jwt-svid`), are
 *   ignored (§4.1.3, §4.2.1, §4.2.2).
 * - Other entries must have a `kty` and no private key members.
 * - `x509-svid` entries: `x5c` holds exactly one certificate (X509-SVID §6), whose public
 *   key must equal the entry's key parameters; that certificate becomes an X.509 authority.
 * - `jwt-svid` entries: a non-empty `kid` is required; a kid seen twice with different
 *   keys is rejected (an identical repeat is ignored).
 * - `spiffe_sequence` and `spiffe_refresh_hint` (seconds), when present and not null, must
 *   be non-negative integers up to 2^53-1.
 *
 * The document does not name its trust domain: the caller must bind it (§3, §6.1).
 *
 * @throws SpireEdgeError `ERR_BUNDLE_INVALID`, naming the entry and the broken rule.
 */
export function parseSpiffeBundle(
  trustDomain: TrustDomain | string,
  json: string | Uint8Array,
): SpiffeBundle {
  const td = toTrustDomain(trustDomain);
  const what = `SPIFFE bundle for ${td.name}`;
  const doc = decodeJsonDocument(json, what);
  const keys = jwksKeys(doc, what);
  const fail = (m: string) => bundleError(`${what}: ${m}`);
  const bundle = new SpiffeBundle(td, {
    sequenceNumber: checkCounter(doc['spiffe_sequence'], 'spiffe_sequence', fail),
    refreshHint: checkCounter(doc['spiffe_refresh_hint'], 'spiffe_refresh_hint', fail),
  });
  keys.forEach((key, i) => {
    const use = key['use'];
    if (use !== X509_SVID_USE && use !== JWT_SVID_USE) return;
    const where = `${what}: ${use} key ${i}`;
    const kty = key['kty'];
    if (typeof kty !== 'string') throw bundleError(`${where}: kty is missing`);
    // A secret in a published bundle is a leak whatever its type: refuse, never ignore.
    assertNoPrivateMembers(key, where);
    if (use === X509_SVID_USE) {
      if (!X509_KEY_TYPES.has(kty)) return;
      const der = decodeX5c(key['x5c'], where);
      const jwkKey = importPublicJwk(key, where);
      const cert = loadCertificate(der, where);
      if (!jwkKey.equals(cert.key)) {
        throw bundleError(`${where}: key parameters do not match the x5c certificate's key`);
      }
      bundle.addX509Authority(der);
      return;
    }
    if (!JWT_AUTHORITY_KEY_TYPES.includes(kty)) return;
    const kid = key['kid'];
    if (typeof kid !== 'string' || kid === '') throw bundleError(`${where}: kid is missing`);
    let authority: JwtAuthority;
    try {
      authority = jwtAuthorityFromKey(kid, key);
    } catch (err) {
      throw bundleError(`${where}: ${(err as Error).message}`, err);
    }
    const seen = bundle.findJwtAuthority(kid);
    if (seen !== undefined) {
      if (jwtAuthorityEquals(seen, authority)) return;
      throw bundleError(`${where}: kid ${kid} is used by two different keys`);
    }
    bundle.addJwtAuthority(kid, authority.jwk);
  });
  return bundle;
}

/**
 * Writes `bundle` as the standard SPIFFE bundle document: a JWK Set whose `keys` hold one
 * `x509-svid` entry per X.509 authority (the certificate's key parameters plus `x5c` with
 * that one certificate, no `kid`), then one `jwt-svid` entry per JWT authority (with `kid`),
 * plus `spiffe_refresh_hint` and `spiffe_sequence` when set.
 */
export function marshalSpiffeBundle(bundle: SpiffeBundle): string {
  return bundle.marshal();
}
