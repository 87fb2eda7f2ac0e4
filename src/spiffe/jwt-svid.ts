/**
 * JWT-SVIDs (SPIFFE JWT-SVID standard): minting through a {@link Signer} and validation
 * against JWT bundles.
 *
 * Errors: `ERR_JWT_SVID_INVALID` (a token breaks a rule; `details.rule` names it, see
 * {@link JwtSvidRule}), `ERR_JWT_SVID_MINT_FAILED` (a signer returned an unusable signature).
 */
import type { KeyObject } from 'node:crypto';
import { compactVerify } from 'jose';
import { SpireEdgeError } from '../common/errors.js';
import { jwsAlgForKeyType, type Signer } from '../common/signer.js';
import type { JwtAuthority, JwtBundleSource } from './bundle-source.js';
import { parseSpiffeId, type SpiffeId, toSpiffeId } from './id.js';
import { jwtAuthorityPublicKey } from './jwt-bundle.js';

/** The `alg` values a JWT-SVID may use (JWT-SVID §2.1: RFC 7518 §3.3, §3.4, §3.5). */
export const JWT_SVID_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'ES256',
  'ES384',
  'ES512',
  'PS256',
  'PS384',
  'PS512',
] as const;

export type JwtSvidAlgorithm = (typeof JWT_SVID_ALGORITHMS)[number];

/** The default clock-skew leeway for `exp`, `nbf` and `iat`, in seconds. */
export const DEFAULT_JWT_SVID_LEEWAY_SECONDS = 30;

/**
 * The rule a rejected token broke (`err.details.rule` of `ERR_JWT_SVID_INVALID`):
 * - `format`: not a three-part JWS compact serialization with base64url JSON objects (§5.1)
 * - `header`: a header parameter other than `alg`, `kid`, `typ` (§2)
 * - `alg`: `alg` missing or not in {@link JWT_SVID_ALGORITHMS} (§2.1)
 * - `typ`: `typ` present and neither `JWT` nor `JOSE` (§2.3)
 * - `kid`: `kid` missing (required to pick the key, as go-spiffe does)
 * - `sub`: `sub` missing or not a SPIFFE ID (§3.1)
 * - `bundle`: no JWT authorities for the trust domain of `sub`
 * - `authority`: no authority with the token's `kid` in that trust domain's bundle
 * - `key`: the authority's key cannot be used with the token's `alg`
 * - `signature`: the signature does not verify (RFC 7515 §5.2)
 * - `aud`: `aud` missing, empty, malformed, or holding none of the expected audiences (§3.2)
 * - `exp`: `exp` missing, malformed, or in the past beyond the leeway (§3.3)
 * - `nbf`: `nbf` malformed or in the future beyond the leeway (RFC 7519 §4.1.5)
 * - `iat`: `iat` malformed or in the future beyond the leeway (RFC 7519 §4.1.6)
 */
export type JwtSvidRule =
  | 'format'
  | 'header'
  | 'alg'
  | 'typ'
  | 'kid'
  | 'sub'
  | 'bundle'
  | 'authority'
  | 'key'
  | 'signature'
  | 'aud'
  | 'exp'
  | 'nbf'
  | 'iat';

/** The protected header of a JWT-SVID. */
export interface JwtSvidHeader {
  readonly alg: JwtSvidAlgorithm;
  readonly kid: string;
  readonly typ?: 'JWT' | 'JOSE';
}

/** A parsed JWT-SVID. */
export interface JwtSvid {
  /** The compact serialization it was parsed from. */
  readonly token: string;
  /** The SPIFFE ID (`sub`). */
  readonly id: SpiffeId;
  /** `aud`, always as a list. */
  readonly audience: readonly string[];
  /** `exp`. */
  readonly expiresAt: Date;
  /** `iat`, when present. */
  readonly issuedAt?: Date;
  /** Every claim of the payload, registered and private. */
  readonly claims: Record<string, unknown>;
  readonly header: JwtSvidHeader;
}

/** Options of {@link validateJwtSvid}. */
export interface ValidateJwtSvidOptions {
  /** The time to validate at; defaults to the current time. */
  readonly now?: Date;
  /** Clock-skew leeway for `exp`, `nbf`, `iat` in seconds; defaults to 30. */
  readonly leewaySeconds?: number;
}

/** Arguments of {@link mintJwtSvid}. */
export interface MintJwtSvidOptions {
  /** The JWT signing key (its key type picks `alg`: ES256, ES384 or RS256). */
  readonly signer: Signer;
  /** The key ID published with the key in the trust domain's JWT bundle. */
  readonly keyId: string;
  readonly spiffeId: SpiffeId | string;
  /** At least one audience; a single audience is written as a string, as SPIRE does. */
  readonly audience: readonly string[];
  readonly expiresAt: Date;
  /** Defaults to the current time. */
  readonly issuedAt?: Date;
  /** `iss`, when set. */
  readonly issuer?: string;
  /** Extra claims; registered claims set here (`sub`, `aud`, `exp`, `iat`, `iss`, `nbf`) are refused. */
  readonly claims?: Readonly<Record<string, unknown>>;
}

const ALG_SET = new Set<string>(JWT_SVID_ALGORITHMS);
const HEADER_PARAMS = new Set(['alg', 'kid', 'typ']);
const RESERVED_CLAIMS = new Set(['sub', 'aud', 'exp', 'iat', 'iss', 'nbf']);
const B64URL_RE = /^[A-Za-z0-9_-]*$/;
const EC_CURVE_FOR_ALG: Readonly<Record<string, string>> = {
  ES256: 'prime256v1',
  ES384: 'secp384r1',
  ES512: 'secp521r1',
};
const EC_SIGNATURE_LENGTH: Readonly<Record<string, number>> = { 'ec-p256': 64, 'ec-p384': 96 };

function invalid(rule: JwtSvidRule, message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError('ERR_JWT_SVID_INVALID', message, {
    details: { rule },
    ...(cause === undefined ? {} : { cause }),
  });
}

function b64urlJson(part: string, what: string): Record<string, unknown> {
  if (!B64URL_RE.test(part) || part.length % 4 === 1) {
    throw invalid('format', `token ${what} is not base64url`);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch (err) {
    throw invalid('format', `token ${what} is not JSON`, err);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid('format', `token ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

interface Decoded {
  header: JwtSvidHeader;
  claims: Record<string, unknown>;
  id: SpiffeId;
}

/** Parses and checks everything that needs no key: format, header, `sub`. */
function decode(token: string): Decoded {
  if (typeof token !== 'string') throw new TypeError('JWT-SVID must be a string');
  const parts = token.split('.');
  if (parts.length !== 3) {
    throw invalid(
      'format',
      `token is not a JWS compact serialization: ${parts.length} dot-separated parts, expected 3`,
    );
  }
  const rawHeader = b64urlJson(parts[0]!, 'header');
  // §4: alg is checked before anything else is processed.
  const alg = rawHeader['alg'];
  if (typeof alg !== 'string' || !ALG_SET.has(alg)) {
    throw invalid(
      'alg',
      `token alg ${JSON.stringify(alg ?? null)} is not allowed: must be one of ${JWT_SVID_ALGORITHMS.join(', ')}`,
    );
  }
  for (const name of Object.keys(rawHeader)) {
    if (!HEADER_PARAMS.has(name)) {
      throw invalid('header', `token header parameter ${name} is not allowed in a JWT-SVID`);
    }
  }
  const typ = rawHeader['typ'];
  if (typ !== undefined && typ !== 'JWT' && typ !== 'JOSE') {
    throw invalid('typ', `token typ ${JSON.stringify(typ)} is not allowed: must be JWT or JOSE`);
  }
  const kid = rawHeader['kid'];
  if (typeof kid !== 'string' || kid === '') throw invalid('kid', 'token header kid is missing');
  const header: JwtSvidHeader =
    typ === undefined
      ? { alg: alg as JwtSvidAlgorithm, kid }
      : { alg: alg as JwtSvidAlgorithm, kid, typ };

  const claims = b64urlJson(parts[1]!, 'payload');
  const sub = claims['sub'];
  if (typeof sub !== 'string') {
    throw invalid(
      'sub',
      `token sub claim ${sub === undefined ? 'is missing' : 'must be a string'}`,
    );
  }
  let id: SpiffeId;
  try {
    id = parseSpiffeId(sub);
  } catch (err) {
    throw invalid('sub', `token sub claim is not a SPIFFE ID: ${(err as Error).message}`, err);
  }
  return { header, claims, id };
}

function readAudience(claims: Record<string, unknown>): string[] {
  const aud = claims['aud'];
  if (aud === undefined || aud === null) throw invalid('aud', 'token aud claim is missing');
  const list = typeof aud === 'string' ? [aud] : aud;
  if (!Array.isArray(list) || !list.every((a) => typeof a === 'string')) {
    throw invalid('aud', 'token aud claim must be a string or an array of strings');
  }
  if (list.length === 0) throw invalid('aud', 'token aud claim is empty');
  return list as string[];
}

function readNumericDate(
  claims: Record<string, unknown>,
  name: 'exp' | 'nbf' | 'iat',
): number | undefined {
  const v = claims[name];
  if (v === undefined) return undefined;
  // A Date holds ±8.64e15 ms: anything beyond is not a usable time.
  if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > 8.64e12) {
    throw invalid(name, `token ${name} claim must be a NumericDate`);
  }
  return v;
}

function toResult(token: string, d: Decoded, audience: string[], exp: number): JwtSvid {
  const iat = typeof d.claims['iat'] === 'number' ? d.claims['iat'] : undefined;
  const base = {
    token,
    id: d.id,
    audience,
    expiresAt: new Date(exp * 1000),
    claims: d.claims,
    header: d.header,
  };
  return iat === undefined ? base : { ...base, issuedAt: new Date(iat * 1000) };
}

function checkKey(alg: JwtSvidAlgorithm, authority: JwtAuthority, key: KeyObject): void {
  const jwkAlg = authority.jwk['alg'];
  if (jwkAlg !== undefined && jwkAlg !== alg) {
    throw invalid(
      'key',
      `JWT authority ${authority.keyId} is for alg ${String(jwkAlg)}, not ${alg}`,
    );
  }
  const type = key.asymmetricKeyType;
  const ok =
    alg[0] === 'E'
      ? type === 'ec' && key.asymmetricKeyDetails?.namedCurve === EC_CURVE_FOR_ALG[alg]
      : type === 'rsa';
  if (!ok) {
    throw invalid('key', `JWT authority ${authority.keyId} cannot verify ${alg} signatures`);
  }
}

/**
 * Validates a JWT-SVID against the JWT authorities of the trust domain of its `sub`, exactly
 * as the JWT-SVID standard requires:
 *
 * 1. JWS compact serialization (§5.1), header parameters limited to `alg`, `kid`, `typ` (§2);
 * 2. `alg` one of RS/ES/PS 256/384/512 (§2.1) — `none`, HS*, EdDSA are rejected;
 * 3. `typ` absent or `JWT`/`JOSE` (§2.3);
 * 4. `kid` present (the standard makes it optional; like go-spiffe, we require it to pick the
 *    key) and found in the bundle of the trust domain of `sub` (§3.1: `sub` a SPIFFE ID);
 * 5. the signature verifies with that key (jose, restricted to the header's `alg`);
 * 6. `aud` present with at least one value, and at least one of its values is one of
 *    `audiences` (§3.2; go-spiffe's "any audience" rule);
 * 7. `exp` present and not in the past by more than the leeway (§3.3); `nbf` and `iat`, when
 *    present, not in the future by more than the leeway.
 *
 * Trusts: `bundles` (the caller binds bundles to trust domains). The caller must still
 * authorize the returned `id` (for example with a SPIFFE ID matcher). Other claims are
 * returned unchecked.
 *
 * @param audiences the audiences the validator identifies with (at least one).
 * @throws TypeError for bad arguments (no audiences, an invalid `now` or leeway).
 * @throws SpireEdgeError `ERR_JWT_SVID_INVALID` with `details.rule` ({@link JwtSvidRule}).
 */
export async function validateJwtSvid(
  token: string,
  bundles: JwtBundleSource,
  audiences: readonly string[],
  {
    now = new Date(),
    leewaySeconds = DEFAULT_JWT_SVID_LEEWAY_SECONDS,
  }: ValidateJwtSvidOptions = {},
): Promise<JwtSvid> {
  if (!Array.isArray(audiences) || audiences.length === 0) {
    throw new TypeError('audiences must be a non-empty array of strings');
  }
  if (!audiences.every((a) => typeof a === 'string' && a !== '')) {
    throw new TypeError('audiences must be a non-empty array of non-empty strings');
  }
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) {
    throw new TypeError('now must be a valid Date');
  }
  if (
    typeof leewaySeconds !== 'number' ||
    !(leewaySeconds >= 0) ||
    !Number.isFinite(leewaySeconds)
  ) {
    throw new TypeError('leewaySeconds must be a finite non-negative number');
  }
  if (typeof bundles?.getJwtAuthorities !== 'function') {
    throw new TypeError('bundles must be a JWT bundle source');
  }

  const d = decode(token);
  const td = d.id.trustDomain;
  const authorities = bundles.getJwtAuthorities(td);
  if (authorities === undefined) {
    throw invalid('bundle', `no JWT bundle found for trust domain ${td.name}`);
  }
  const authority = authorities.get(d.header.kid);
  if (authority === undefined) {
    throw invalid(
      'authority',
      `no JWT authority ${JSON.stringify(d.header.kid)} found for trust domain ${td.name}`,
    );
  }
  let key: KeyObject;
  try {
    key = jwtAuthorityPublicKey(authority);
  } catch (err) {
    throw invalid('key', `JWT authority ${authority.keyId} has an unusable key`, err);
  }
  checkKey(d.header.alg, authority, key);
  try {
    await compactVerify(token, key, { algorithms: [d.header.alg] });
  } catch (err) {
    throw invalid('signature', 'token signature does not verify', err);
  }

  const audience = readAudience(d.claims);
  if (!audience.some((a) => audiences.includes(a))) {
    throw invalid(
      'aud',
      `token aud claim ${JSON.stringify(audience)} holds none of the expected audiences ${JSON.stringify(audiences)}`,
    );
  }
  const nowSec = now.getTime() / 1000;
  const exp = readNumericDate(d.claims, 'exp');
  if (exp === undefined) throw invalid('exp', 'token exp claim is missing');
  if (nowSec - leewaySeconds > exp) throw invalid('exp', 'token has expired');
  const nbf = readNumericDate(d.claims, 'nbf');
  if (nbf !== undefined && nowSec + leewaySeconds < nbf) {
    throw invalid('nbf', 'token is not valid yet (nbf is in the future)');
  }
  const iat = readNumericDate(d.claims, 'iat');
  if (iat !== undefined && nowSec + leewaySeconds < iat) {
    throw invalid('iat', 'token was issued in the future (iat)');
  }
  return toResult(token, d, audience, exp);
}

/**
 * Parses a JWT-SVID WITHOUT verifying its signature, audience or times: the result is
 * UNTRUSTED and must never be used to authenticate anyone. For tooling (showing what a
 * token claims, picking a bundle before validation).
 *
 * Checks the shape only: the format, header (`alg`, `typ`, `kid`) and `sub` rules of
 * {@link validateJwtSvid}, and that `aud` and `exp` are present and well-formed.
 *
 * @throws SpireEdgeError `ERR_JWT_SVID_INVALID` with `details.rule`.
 */
export function parseJwtSvidInsecure(token: string): JwtSvid {
  const d = decode(token);
  const audience = readAudience(d.claims);
  const exp = readNumericDate(d.claims, 'exp');
  if (exp === undefined) throw invalid('exp', 'token exp claim is missing');
  readNumericDate(d.claims, 'nbf');
  readNumericDate(d.claims, 'iat');
  return toResult(token, d, audience, exp);
}

function b64url(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64url');
}

function checkDate(d: unknown, name: string): Date {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) {
    throw new TypeError(`${name} must be a valid Date`);
  }
  return d;
}

/**
 * Mints a JWT-SVID: header `{alg, kid, typ: "JWT"}`, payload `{sub, aud, exp, iat, iss?,
 * …claims}` (times in whole seconds, truncated), signed through `signer` (which may be an
 * HSM, hence async). EC signatures from a {@link Signer} are already IEEE P1363 `r || s`,
 * which is the JWS form (RFC 7518 §3.4); RSA signatures are RSASSA-PKCS1-v1_5 (RS256).
 *
 * The caller decides who may receive which identity; this function signs what it is given.
 *
 * @throws TypeError for bad arguments (no audience, `expiresAt` not after `issuedAt`, a
 *   reserved claim in `claims`, …).
 * @throws SpireEdgeError `ERR_JWT_SVID_MINT_FAILED` when the signer returns a signature of
 *   the wrong size; errors of the signer itself pass through unchanged.
 */
export async function mintJwtSvid(opts: MintJwtSvidOptions): Promise<string> {
  const { signer, keyId, audience, issuer, claims } = opts;
  if (typeof signer?.sign !== 'function') throw new TypeError('signer must be a Signer');
  if (typeof keyId !== 'string' || keyId === '') {
    throw new TypeError('keyId must be a non-empty string');
  }
  const id = toSpiffeId(opts.spiffeId);
  if (
    !Array.isArray(audience) ||
    audience.length === 0 ||
    !audience.every((a) => typeof a === 'string' && a !== '')
  ) {
    throw new TypeError('audience must be a non-empty array of non-empty strings');
  }
  const expiresAt = checkDate(opts.expiresAt, 'expiresAt');
  const issuedAt = checkDate(opts.issuedAt ?? new Date(), 'issuedAt');
  const exp = Math.floor(expiresAt.getTime() / 1000);
  const iat = Math.floor(issuedAt.getTime() / 1000);
  if (exp <= iat) throw new TypeError('expiresAt must be at least one second after issuedAt');
  if (issuer !== undefined && typeof issuer !== 'string') {
    throw new TypeError('issuer must be a string');
  }

  const payload: Record<string, unknown> = {
    sub: id.toString(),
    aud: audience.length === 1 ? audience[0] : [...audience],
    exp,
    iat,
  };
  if (issuer !== undefined) payload['iss'] = issuer;
  if (claims !== undefined) {
    for (const [k, v] of Object.entries(claims)) {
      if (RESERVED_CLAIMS.has(k)) throw new TypeError(`claims cannot set the ${k} claim`);
      payload[k] = v;
    }
  }
  const alg = jwsAlgForKeyType(signer.keyType);
  const signingInput = `${b64url(JSON.stringify({ alg, kid: keyId, typ: 'JWT' }))}.${b64url(JSON.stringify(payload))}`;
  const data = Buffer.from(signingInput, 'latin1');
  const sig = signer.signSync !== undefined ? signer.signSync(data) : await signer.sign(data);
  const expected = EC_SIGNATURE_LENGTH[signer.keyType];
  if (expected !== undefined && sig.length !== expected) {
    throw new SpireEdgeError(
      'ERR_JWT_SVID_MINT_FAILED',
      `signer returned a ${sig.length}-byte ${signer.keyType} signature, expected ${expected} (IEEE P1363)`,
    );
  }
  return `${signingInput}.${Buffer.from(sig.buffer, sig.byteOffset, sig.byteLength).toString('base64url')}`;
}
