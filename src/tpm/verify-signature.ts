/**
 * Signature checks with a TPM public area, for any structure a TPM key signs (TPMS_ATTEST of
 * a quote, certify or creation attestation).
 */
import { type SignatureCheckOptions, signatureProblem } from './internal/signature-check.js';
import type { TpmtPublic } from './public-area.js';
import type { TpmtSignature } from './signature.js';

export type { SignatureCheckOptions } from './internal/signature-check.js';

/**
 * True when `signature` is a valid RSASSA, RSAPSS or ECDSA signature by the key of `signer`
 * over `message` (the digest taken with the signature's hash), with the key's own scheme
 * and hash when it has one. SHA-1 only with `allowSha1`.
 *
 * Says nothing about what the message is: for quotes use verifyQuote, which also checks the
 * key's attributes, the magic, type, nonce and PCR digest.
 *
 * @throws SpireEdgeError `ERR_TPM_UNSUPPORTED` / `ERR_TPM_PARSE` when the signer's public
 *   area has no usable key.
 */
export function verifyTpmSignature(
  signer: TpmtPublic,
  message: Uint8Array,
  signature: TpmtSignature,
  options: SignatureCheckOptions = {},
): boolean {
  return signatureProblem(signer, message, signature, options) === undefined;
}
