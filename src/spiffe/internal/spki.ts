/**
 * SubjectPublicKeyInfo helpers tuned for the minting hot path. OpenSSL 3's DER key
 * decoders and encoders cost ~140 µs a call here (four times an ECDSA P-256 signature),
 * so SPKI DER is built from the key's JWK (~5 µs) and KeyObjects are imported through JWK
 * where OpenSSL's JWK import is the cheaper path (P-256, RSA, Ed25519); it still validates
 * the key (EC points are checked to be on the curve).
 */
import { createHash, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import {
  bitString,
  children,
  DER_NULL,
  decodeBitStringBytes,
  decodeOid,
  derError,
  oid,
  readWhole,
  seq,
  TAG,
  tlvContents,
  unsignedInteger,
} from '../../common/der.js';
import { OID } from './x509-oids.js';

interface Curve {
  readonly oid: string;
  readonly jwk: 'P-256' | 'P-384' | 'P-521';
  /** Field element size in bytes. */
  readonly size: number;
  readonly p: bigint;
  readonly b: bigint;
  /** Pre-encoded AlgorithmIdentifier { ecPublicKey, namedCurve }. */
  readonly algId: Uint8Array;
}

function curve(o: string, jwk: Curve['jwk'], size: number, p: bigint, b: bigint): Curve {
  return { oid: o, jwk, size, p, b, algId: seq(oid(OID.ecPublicKey), oid(o)) };
}

// Curve constants from FIPS 186-4 / SEC 2 (a = -3 for all three).
const CURVES: readonly Curve[] = [
  curve(
    OID.p256,
    'P-256',
    32,
    0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
    0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
  ),
  curve(
    OID.p384,
    'P-384',
    48,
    2n ** 384n - 2n ** 128n - 2n ** 96n + 2n ** 32n - 1n,
    0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
  ),
  curve(
    OID.p521,
    'P-521',
    66,
    2n ** 521n - 1n,
    0x0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00n,
  ),
];

const RSA_ALG_ID = seq(oid(OID.rsaEncryption), DER_NULL);
const ED25519_ALG_ID = seq(oid(OID.ed25519));

function b64u(s: string | undefined, what: string): Buffer {
  if (typeof s !== 'string') throw new TypeError(`public key JWK has no ${what}`);
  return Buffer.from(s, 'base64url');
}

/**
 * The SubjectPublicKeyInfo DER of a public (or private) KeyObject, as OpenSSL would encode
 * it: named-curve uncompressed points for EC, rsaEncryption with NULL parameters for RSA.
 */
export function spkiFromKeyObject(key: KeyObject): Uint8Array {
  if (key.type === 'secret') throw new TypeError('publicKey must be an asymmetric key');
  const kt = key.asymmetricKeyType;
  if (kt === 'ec' || kt === 'rsa' || kt === 'ed25519') {
    const pub = key.type === 'private' ? createPublicKey(key) : key;
    const jwk = pub.export({ format: 'jwk' }) as JsonWebKey;
    if (kt === 'ec') {
      const c = CURVES.find((x) => x.jwk === jwk.crv);
      if (c !== undefined) {
        const x = b64u(jwk.x, 'x');
        const y = b64u(jwk.y, 'y');
        const point = new Uint8Array(1 + 2 * c.size);
        point[0] = 4;
        point.set(x, 1 + c.size - x.length);
        point.set(y, 1 + 2 * c.size - y.length);
        return seq(c.algId, bitString(point));
      }
    } else if (kt === 'rsa') {
      const rsaKey = seq(unsignedInteger(b64u(jwk.n, 'n')), unsignedInteger(b64u(jwk.e, 'e')));
      return seq(RSA_ALG_ID, bitString(rsaKey));
    } else {
      return seq(ED25519_ALG_ID, bitString(b64u(jwk.x, 'x')));
    }
  }
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return new Uint8Array(pub.export({ format: 'der', type: 'spki' }));
}

/** What a SubjectPublicKeyInfo holds, as far as the fast paths need. */
export type SpkiSummary =
  | { readonly kind: 'ec'; readonly curve: Curve; readonly x: Uint8Array; readonly y: Uint8Array }
  | { readonly kind: 'rsa'; readonly n: Uint8Array; readonly e: Uint8Array }
  | { readonly kind: 'ed25519'; readonly x: Uint8Array }
  | { readonly kind: 'other'; readonly algorithm: string };

function bytesToBigInt(b: Uint8Array): bigint {
  return b.length === 0
    ? 0n
    : BigInt(`0x${Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex')}`);
}

function mod(a: bigint, p: bigint): bigint {
  const r = a % p;
  return r < 0n ? r + p : r;
}

function positiveIntegerBytes(t: ReturnType<typeof readWhole>, what: string): Uint8Array {
  if (t.tag !== TAG.INTEGER || t.end === t.start) throw derError(`${what}: expected an INTEGER`);
  const c = tlvContents(t);
  if (c[0]! & 0x80) throw derError(`${what}: must be positive`);
  if (c.length > 1 && c[0] === 0 && (c[1]! & 0x80) === 0) {
    throw derError(`${what}: non-minimal INTEGER encoding`);
  }
  return c[0] === 0 ? c.subarray(1) : c;
}

/**
 * Checks a SubjectPublicKeyInfo's structure and, for the NIST curves, that the point is
 * uncompressed, in range and on the curve; for RSA, that the modulus is at least 2048 bits
 * and the exponent odd and above 1. Throws `ERR_DER_INVALID` naming the problem.
 *
 * `checkPoint: false` skips the range and on-curve arithmetic (~3 µs), for callers whose
 * key OpenSSL imports right after or has already imported: its imports check both.
 */
export function inspectSpki(
  spki: Uint8Array,
  { checkPoint = true }: { readonly checkPoint?: boolean } = {},
): SpkiSummary {
  const t = readWhole(spki, 'subjectPublicKeyInfo');
  if (t.tag !== TAG.SEQUENCE) throw derError('subjectPublicKeyInfo: expected a SEQUENCE');
  const parts = children(t);
  if (parts.length !== 2) throw derError('subjectPublicKeyInfo: expected 2 fields');
  const alg = parts[0]!;
  if (alg.tag !== TAG.SEQUENCE)
    throw derError('subjectPublicKeyInfo.algorithm: expected a SEQUENCE');
  const algParts = children(alg);
  if (algParts.length < 1 || algParts.length > 2) {
    throw derError('subjectPublicKeyInfo.algorithm: expected 1 or 2 fields');
  }
  const algorithm = decodeOid(algParts[0]!);
  if (parts[1]!.tag !== TAG.BIT_STRING) {
    throw derError('subjectPublicKeyInfo.subjectPublicKey: expected a BIT STRING');
  }
  const key = decodeBitStringBytes(parts[1]!);
  if (algorithm === OID.ecPublicKey) {
    const param = algParts[1];
    if (param === undefined || param.tag !== TAG.OID) {
      return { kind: 'other', algorithm };
    }
    const c = CURVES.find((x) => x.oid === decodeOid(param));
    if (c === undefined) return { kind: 'other', algorithm };
    if (key.length !== 1 + 2 * c.size || key[0] !== 4) {
      throw derError(`EC public key must be an uncompressed ${c.jwk} point`);
    }
    const x = key.subarray(1, 1 + c.size);
    const y = key.subarray(1 + c.size);
    if (!checkPoint) return { kind: 'ec', curve: c, x, y };
    const xi = bytesToBigInt(x);
    const yi = bytesToBigInt(y);
    if (xi >= c.p || yi >= c.p)
      throw derError(`EC public key coordinate out of range for ${c.jwk}`);
    if (mod(yi * yi - (xi * xi * xi - 3n * xi + c.b), c.p) !== 0n) {
      throw derError(`EC public key is not a point on ${c.jwk}`);
    }
    return { kind: 'ec', curve: c, x, y };
  }
  if (algorithm === OID.rsaEncryption) {
    const rsa = readWhole(key, 'RSAPublicKey');
    if (rsa.tag !== TAG.SEQUENCE) throw derError('RSAPublicKey: expected a SEQUENCE');
    const rp = children(rsa);
    if (rp.length !== 2) throw derError('RSAPublicKey: expected modulus and exponent');
    const n = positiveIntegerBytes(rp[0]!, 'RSAPublicKey.modulus');
    const e = positiveIntegerBytes(rp[1]!, 'RSAPublicKey.publicExponent');
    if (n.length < 256 || (n[0]! & 0x80) === 0) {
      throw derError('RSA public key modulus must be at least 2048 bits');
    }
    if (e.length === 0 || (e[e.length - 1]! & 1) === 0 || (e.length === 1 && e[0] === 1)) {
      throw derError('RSA public exponent must be odd and greater than 1');
    }
    return { kind: 'rsa', n, e };
  }
  if (algorithm === OID.ed25519) {
    if (algParts.length !== 1)
      throw derError('Ed25519 algorithm identifier must have no parameters');
    if (key.length !== 32) throw derError('Ed25519 public key must be 32 bytes');
    return { kind: 'ed25519', x: key };
  }
  return { kind: 'other', algorithm };
}

/**
 * Imports a SubjectPublicKeyInfo as a KeyObject through the cheapest OpenSSL path that
 * still validates it. Throws `ERR_DER_INVALID` for keys that cannot be imported.
 */
export function publicKeyFromSpki(spki: Uint8Array): KeyObject {
  let summary: SpkiSummary;
  try {
    // OpenSSL's imports check EC points themselves (JWK: coordinates in range, on the curve
    // and of the group order; DER: in range and on the curve), so the arithmetic is skipped.
    summary = inspectSpki(spki, { checkPoint: false });
  } catch {
    // Structures the fast path rejects (e.g. small RSA keys in old certificates) may still be
    // keys OpenSSL can use for verification: let it decide.
    summary = { kind: 'other', algorithm: '' };
  }
  try {
    switch (summary.kind) {
      case 'ec':
        if (summary.curve.jwk === 'P-256') {
          return createPublicKey({
            key: {
              kty: 'EC',
              crv: 'P-256',
              x: Buffer.from(summary.x).toString('base64url'),
              y: Buffer.from(summary.y).toString('base64url'),
            },
            format: 'jwk',
          });
        }
        break;
      case 'rsa':
        return createPublicKey({
          key: {
            kty: 'RSA',
            n: Buffer.from(summary.n).toString('base64url'),
            e: Buffer.from(summary.e).toString('base64url'),
          },
          format: 'jwk',
        });
      case 'ed25519':
        return createPublicKey({
          key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(summary.x).toString('base64url') },
          format: 'jwk',
        });
      default:
        break;
    }
    return createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (err) {
    throw derError(`subjectPublicKeyInfo is not a usable public key: ${(err as Error).message}`);
  }
}

/**
 * The RFC 5280 §4.2.1.2 method (1) key identifier: SHA-1 of the subjectPublicKey BIT STRING
 * value, as SPIRE and Go compute it.
 */
export function keyIdFromSpki(spki: Uint8Array): Uint8Array {
  const t = readWhole(spki, 'subjectPublicKeyInfo');
  const parts = children(t);
  if (parts.length !== 2) throw derError('subjectPublicKeyInfo: expected 2 fields');
  const bits = parts[1]!;
  if (bits.tag !== TAG.BIT_STRING || bits.end === bits.start) {
    throw derError('subjectPublicKeyInfo.subjectPublicKey: expected a BIT STRING');
  }
  return new Uint8Array(
    createHash('sha1')
      .update(bits.buf.subarray(bits.start + 1, bits.end))
      .digest(),
  );
}
