/**
 * The asynchronous twin of `verifySignature` (x509-cert.ts): the same algorithm rules, but
 * the signature check runs on libuv's thread pool (`crypto.verify` with a callback), so a
 * server checking many signatures keeps its event loop free and uses more than one core.
 */
import { constants, type KeyObject, verify } from 'node:crypto';
import {
  type AlgorithmIdentifier,
  type SignatureOptions,
  type SignatureScheme,
  signatureScheme,
} from '../x509-cert.js';
import { inspectSpki } from './spki.js';

/**
 * Resolves true when `signature` over `data` verifies with `publicKey` under `alg`; false
 * for a wrong signature or a key of the wrong type. Rejects with `ERR_X509_UNSUPPORTED`
 * (from `signatureScheme`) when the algorithm cannot be checked.
 */
export function verifySignatureAsync(
  alg: AlgorithmIdentifier,
  data: Uint8Array,
  signature: Uint8Array,
  publicKey: KeyObject,
  options: SignatureOptions = {},
): Promise<boolean> {
  let scheme: SignatureScheme;
  try {
    scheme = signatureScheme(alg, options);
  } catch (err) {
    return Promise.reject(err);
  }
  const kt = publicKey.asymmetricKeyType;
  if (kt === undefined || !scheme.keyTypes.includes(kt)) return Promise.resolve(false);
  const key =
    scheme.pssSaltLength === undefined
      ? publicKey
      : {
          key: publicKey,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: scheme.pssSaltLength,
        };
  return new Promise<boolean>((resolve) => {
    try {
      verify(scheme.hash, data, key, signature, (err, ok) => resolve(err === null && ok));
    } catch {
      // Node refuses some inputs synchronously (for example a signature of the wrong size
      // for the key): that is a signature that does not verify, as in verifySignature.
      resolve(false);
    }
  });
}

/** One ECDSA check handed to an injected {@link EcdsaVerifier}. */
export interface EcdsaVerifyRequest {
  readonly curve: 'P-256' | 'P-384' | 'P-521';
  /** The digest the signature algorithm names (ecdsa-with-SHA256/384/512). */
  readonly hash: 'sha256' | 'sha384' | 'sha512';
  /** The public key as an uncompressed point `04 || X || Y` (from the SPKI, unchecked). */
  readonly point: Uint8Array;
  /** The signed bytes (not a digest). */
  readonly data: Uint8Array;
  /** The DER ECDSA-Sig-Value, as X.509 and PKCS#10 carry it. */
  readonly signature: Uint8Array;
}

/**
 * A faster ECDSA verifier a caller may inject (the server injects its native addon's).
 * Resolves true only when the point is a public key of the curve (coordinates below p, on
 * the curve) and the signature verifies under OpenSSL's rules, as `crypto.verify` applies
 * them (strict DER ECDSA-Sig-Value, r and s in [1, n−1], digest truncated to the order);
 * false otherwise. Callers decide every false (and every rejection) again with
 * node:crypto, so an injected verifier only makes accepted requests cheaper and cannot
 * change which errors are reported.
 */
export type EcdsaVerifier = (request: EcdsaVerifyRequest) => Promise<boolean>;

/**
 * The {@link EcdsaVerifyRequest} for a signature an injected verifier can check: an
 * ECDSA-with-SHA-2 algorithm (SHA-1 refused, as `signatureScheme` does) and an SPKI holding
 * an uncompressed P-256, P-384 or P-521 point. Undefined for anything else (other
 * algorithms or keys, malformed SPKIs, unsupported algorithms): the caller takes its
 * node:crypto path, which reports those. The point is a view into `spki`, not checked here.
 */
export function ecdsaVerifyRequest(
  alg: AlgorithmIdentifier,
  spki: Uint8Array,
  data: Uint8Array,
  signature: Uint8Array,
): EcdsaVerifyRequest | undefined {
  let hash: SignatureScheme['hash'];
  let curve: EcdsaVerifyRequest['curve'];
  let point: Uint8Array;
  try {
    const scheme = signatureScheme(alg);
    hash = scheme.hash;
    if (scheme.keyTypes.length !== 1 || scheme.keyTypes[0] !== 'ec') return undefined;
    const summary = inspectSpki(spki, { checkPoint: false });
    if (summary.kind !== 'ec') return undefined;
    curve = summary.curve.jwk;
    const x = summary.x;
    // inspectSpki checked the 04 prefix and the length: X and Y follow it in the BIT STRING.
    point = new Uint8Array(x.buffer, x.byteOffset - 1, 1 + 2 * summary.curve.size);
  } catch {
    return undefined;
  }
  if (hash !== 'sha256' && hash !== 'sha384' && hash !== 'sha512') return undefined;
  return { curve, hash, point, data, signature };
}
