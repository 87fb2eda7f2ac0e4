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
