/**
 * The public key of an RSA or ECC TPMT_PUBLIC as a node:crypto KeyObject and as X.509
 * SubjectPublicKeyInfo DER, and the `pub_hash` that names a TPM in SPIFFE IDs.
 *
 * `pub_hash` is spire-tpm-plugin's definition: the lower-case hex SHA-256 of the EK public
 * key's SubjectPublicKeyInfo DER as Go's `x509.MarshalPKIXPublicKey` writes it
 * (rsaEncryption with NULL parameters and RSAPublicKey{n, e}; id-ecPublicKey with the named
 * curve and the uncompressed point, coordinates padded to the curve size), so IDs
 * `spiffe://<td>/spire/agent/tpm/<pub_hash>` match theirs.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { bitString, DER_NULL, oid, seq, unsignedInteger } from '../common/der.js';
import { SpireEdgeError } from '../common/errors.js';
import { TPM_ALG } from './constants.js';
import { tpmError } from './errors.js';
import { asBuffer, leftPad, toHex } from './internal/bytes.js';
import { curveById, curveByJwk, type TpmCurve } from './internal/curves.js';
import type { EccPublic, RsaPublic, TpmtPublic } from './public-area.js';

const OID_RSA = '1.2.840.113549.1.1.1';
const OID_EC = '1.2.840.10045.2.1';
const RSA_ALG_ID = seq(oid(OID_RSA), DER_NULL);

interface RsaParts {
  readonly n: Uint8Array;
  readonly e: Uint8Array;
}
interface EcParts {
  readonly curve: TpmCurve;
  readonly x: Uint8Array;
  readonly y: Uint8Array;
}

function rsaParts(pub: RsaPublic): RsaParts {
  const { keyBits, exponent } = pub.parameters;
  if (pub.unique.length * 8 !== keyBits || pub.unique.length === 0) {
    throw tpmError(
      'ERR_TPM_PARSE',
      `TPMT_PUBLIC.unique: RSA modulus of ${pub.unique.length} bytes does not match keyBits ${keyBits}`,
    );
  }
  if ((pub.unique[0]! & 0x80) === 0) {
    throw tpmError(
      'ERR_TPM_PARSE',
      `TPMT_PUBLIC.unique: RSA modulus is shorter than ${keyBits} bits`,
    );
  }
  const e = exponent === 0 ? 65537 : exponent;
  if (e % 2 === 0 || e < 3) {
    throw tpmError(
      'ERR_TPM_PARSE',
      `TPMT_PUBLIC.parameters.exponent: ${e} is not a valid RSA exponent`,
    );
  }
  const eb = new Uint8Array(4);
  new DataView(eb.buffer).setUint32(0, e);
  return { n: pub.unique, e: eb };
}

function ecParts(pub: EccPublic): EcParts {
  const curve = curveById(pub.parameters.curveId);
  if (curve === undefined) {
    throw tpmError(
      'ERR_TPM_UNSUPPORTED',
      `TPMT_PUBLIC.parameters.curveID: curve 0x${pub.parameters.curveId.toString(16).padStart(4, '0')} is not supported (NIST P-256, P-384, P-521 are)`,
    );
  }
  const x = leftPad(pub.unique.x, curve.size);
  const y = leftPad(pub.unique.y, curve.size);
  if (x === undefined || y === undefined) {
    throw tpmError(
      'ERR_TPM_PARSE',
      `TPMT_PUBLIC.unique: coordinate longer than ${curve.jwk} allows`,
    );
  }
  return { curve, x, y };
}

function asymmetric(pub: TpmtPublic): RsaPublic | EccPublic {
  if (pub.type === TPM_ALG.RSA || pub.type === TPM_ALG.ECC) return pub;
  throw tpmError(
    'ERR_TPM_UNSUPPORTED',
    `TPMT_PUBLIC.type: 0x${(pub.type as number).toString(16).padStart(4, '0')} has no public key (RSA or ECC needed)`,
  );
}

/**
 * The SubjectPublicKeyInfo DER of an RSA or ECC public area (RFC 3279 §2.3.1, RFC 5480
 * §2), encoded as Go and OpenSSL encode it. Does not check that an EC point is on its curve:
 * {@link publicKeyFromTpmtPublic} does.
 *
 * @throws SpireEdgeError `ERR_TPM_UNSUPPORTED` (type without a public key, unknown curve),
 *   `ERR_TPM_PARSE` (modulus size not matching keyBits, oversized coordinates).
 */
export function spkiFromTpmtPublic(pub: TpmtPublic): Uint8Array {
  const k = asymmetric(pub);
  if (k.type === TPM_ALG.RSA) {
    const { n, e } = rsaParts(k);
    return seq(RSA_ALG_ID, bitString(seq(unsignedInteger(n), unsignedInteger(e))));
  }
  const { curve, x, y } = ecParts(k);
  const point = new Uint8Array(1 + 2 * curve.size);
  point[0] = 4;
  point.set(x, 1);
  point.set(y, 1 + curve.size);
  return seq(seq(oid(OID_EC), oid(curve.oid)), bitString(point));
}

const keyCache = new WeakMap<TpmtPublic, KeyObject>();

/**
 * Records that `key` is the public key of `pub` (the caller has proven it, e.g. equal SPKI
 * encodings), so {@link publicKeyFromTpmtPublic} need not import it again. Internal.
 */
export function rememberPublicKey(pub: TpmtPublic, key: KeyObject): void {
  if (!keyCache.has(pub)) keyCache.set(pub, key);
}

/**
 * The public key of an RSA or ECC public area as a KeyObject (imported through JWK, which
 * makes OpenSSL check that an EC point lies on its curve). Cached per parsed public area.
 *
 * @throws SpireEdgeError `ERR_TPM_UNSUPPORTED`, or `ERR_TPM_PARSE` for a key OpenSSL refuses.
 */
export function publicKeyFromTpmtPublic(pub: TpmtPublic): KeyObject {
  const cached = keyCache.get(pub);
  if (cached !== undefined) return cached;
  const k = asymmetric(pub);
  let key: KeyObject;
  try {
    if (k.type === TPM_ALG.RSA) {
      const { n, e } = rsaParts(k);
      key = createPublicKey({
        key: {
          kty: 'RSA',
          n: asBuffer(n).toString('base64url'),
          e: asBuffer(e.subarray(e.findIndex((b) => b !== 0))).toString('base64url'),
        },
        format: 'jwk',
      });
    } else {
      const { curve, x, y } = ecParts(k);
      key = createPublicKey({
        key: {
          kty: 'EC',
          crv: curve.jwk,
          x: asBuffer(x).toString('base64url'),
          y: asBuffer(y).toString('base64url'),
        },
        format: 'jwk',
      });
    }
  } catch (err) {
    if (err instanceof SpireEdgeError) throw err;
    throw tpmError(
      'ERR_TPM_PARSE',
      `TPMT_PUBLIC.unique: not a valid public key (${(err as Error).message})`,
      err,
    );
  }
  keyCache.set(pub, key);
  return key;
}

/**
 * The SubjectPublicKeyInfo DER of a KeyObject, encoded like {@link spkiFromTpmtPublic} (and
 * Go's `x509.MarshalPKIXPublicKey`). RSA and NIST-curve keys are encoded from their JWK
 * (OpenSSL's DER encoder costs ~300 µs a call here, the JWK export ~2 µs); other keys
 * through OpenSSL.
 */
export function spkiFromKeyObject(key: KeyObject): Uint8Array {
  const kt = key.asymmetricKeyType;
  if (kt === 'rsa' || kt === 'ec') {
    const jwk = key.export({ format: 'jwk' });
    if (kt === 'rsa' && jwk.n !== undefined && jwk.e !== undefined) {
      const n = Buffer.from(jwk.n, 'base64url');
      const e = Buffer.from(jwk.e, 'base64url');
      return seq(RSA_ALG_ID, bitString(seq(unsignedInteger(n), unsignedInteger(e))));
    }
    const curve = curveByJwk(jwk.crv);
    if (kt === 'ec' && curve !== undefined && jwk.x !== undefined && jwk.y !== undefined) {
      const point = new Uint8Array(1 + 2 * curve.size);
      point[0] = 4;
      point.set(leftPad(Buffer.from(jwk.x, 'base64url'), curve.size)!, 1);
      point.set(leftPad(Buffer.from(jwk.y, 'base64url'), curve.size)!, 1 + curve.size);
      return seq(seq(oid(OID_EC), oid(curve.oid)), bitString(point));
    }
  }
  return new Uint8Array(key.export({ format: 'der', type: 'spki' }));
}

/**
 * `pub_hash`: lower-case hex SHA-256 of the SubjectPublicKeyInfo DER of an EK — from its
 * public area, or from a KeyObject (an EK certificate's key), encoded the same way either
 * way. See the module comment.
 *
 * @throws SpireEdgeError as {@link spkiFromTpmtPublic}.
 */
export function pubHash(key: TpmtPublic | KeyObject): string {
  const spki =
    'type' in key && typeof key.type === 'number'
      ? spkiFromTpmtPublic(key as TpmtPublic)
      : spkiFromKeyObject(key as KeyObject);
  return toHex(createHash('sha256').update(spki).digest());
}
