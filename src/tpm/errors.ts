/**
 * The error codes of the TPM verification code. Every failure is a
 * {@link SpireEdgeError} with one of these codes; callers `switch (err.code)`.
 *
 * - `ERR_TPM_PARSE`: bytes that are not the TPM structure they claim to be (truncated,
 *   oversized, unknown selector, trailing bytes). The message names the structure and field.
 * - `ERR_TPM_UNSUPPORTED`: a well-formed structure using an algorithm this code does not
 *   implement (e.g. a BN curve, a Camellia-protected EK, an ECDAA signature).
 * - `ERR_TPM_QUOTE_INVALID`: a quote that does not prove what it claims (signature, magic,
 *   type, nonce, PCR digest, PCR values).
 * - `ERR_TPM_AK_INVALID`: an attestation key whose public area is not that of a restricted
 *   signing key created inside the TPM.
 * - `ERR_TPM_CREDENTIAL`: MakeCredential cannot be done for this EK / name / secret.
 * - `ERR_TPM_EK_CERT_INVALID`: an EK certificate that does not follow the TCG EK credential
 *   profile, does not chain to a configured root, or does not certify the given EK.
 * - `ERR_TPM_EVENT_LOG_INVALID`: a TCG event log that breaks its format (event-log.ts) or an
 *   unknown event type; `ERR_TPM_EVENT_LOG_MISMATCH`: a log whose replay disagrees with the
 *   quoted PCRs (event-log-replay.ts). Both use these codes directly (EventLogErrorCode).
 */
import { SpireEdgeError } from '../common/errors.js';

/** The codes listed in the module comment. */
export type TpmErrorCode =
  | 'ERR_TPM_PARSE'
  | 'ERR_TPM_UNSUPPORTED'
  | 'ERR_TPM_QUOTE_INVALID'
  | 'ERR_TPM_AK_INVALID'
  | 'ERR_TPM_CREDENTIAL'
  | 'ERR_TPM_EK_CERT_INVALID'
  | 'ERR_TPM_EVENT_LOG_INVALID'
  | 'ERR_TPM_EVENT_LOG_MISMATCH';

/** Builds a coded TPM error. */
export function tpmError(code: TpmErrorCode, message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(code, message, cause === undefined ? {} : { cause });
}

/**
 * Re-codes a coded error raised by a lower layer (parse errors keep their code; any other
 * coded error becomes `code` with the original as `cause`, its message kept after `prefix`).
 */
export function recode(
  err: unknown,
  code: TpmErrorCode,
  prefix: string,
  keep: readonly TpmErrorCode[] = ['ERR_TPM_PARSE'],
): SpireEdgeError {
  if (err instanceof SpireEdgeError) {
    if ((keep as readonly string[]).includes(err.code)) return err;
    return tpmError(code, `${prefix}: ${err.message}`, err);
  }
  return tpmError(code, `${prefix}: ${(err as Error)?.message ?? String(err)}`, err);
}
