/**
 * TPM errors: native addon rejections become {@link SpireEdgeError}s with stable codes, and the
 * TSS2_RC stays machine-readable in `details` (never parsed out of a message).
 *
 * Codes: `ERR_TPM_RC` (`details.rc`: the TSS2_RC — layer in bits 16–23, 0 for the TPM itself;
 * `details.rcText`: Tss2_RC_Decode's text; `details.op`: the failing TSS call),
 * `ERR_TPM_BLOB_INVALID` (a stored blob the TSS cannot unmarshal; `details.rc` is the TSS2_MU
 * code), `ERR_TPM_PCR_UNAVAILABLE` (the TPM returned no digests for a PCR bank: not active),
 * `ERR_TPM_CLOSED`.
 */
import { SpireEdgeError } from '../../common/errors.js';

/** TPM_RC values (TPM 2.0 Part 2, 6.6) that callers test for, without handle/session/parameter numbers. */
export const TPM_RC = {
  /** The handle is not correct for the use (e.g. an NV index or persistent handle that does not exist). */
  HANDLE: 0x08b,
  /** A policy check failed (e.g. unseal after a bound PCR changed). */
  POLICY_FAIL: 0x09d,
  /** The integrity check of a credential or blob failed (e.g. a credential for another AK name). */
  INTEGRITY: 0x09f,
  /** Out of memory for object contexts: transient objects are not being flushed. */
  OBJECT_MEMORY: 0x902,
  /** Out of session slots. */
  SESSION_MEMORY: 0x903,
} as const;

/**
 * The TPM_RC of a TPM-layer response code without its handle, session or parameter number
 * (format-one codes), or `rc` unchanged for codes from other layers and format-zero codes.
 */
export function tpmRcBase(rc: number): number {
  if (rc >>> 16 !== 0) return rc;
  return (rc & 0x80) !== 0 ? rc & 0xbf : rc;
}

/** True when `err` is an `ERR_TPM_RC` whose TPM_RC (see {@link tpmRcBase}) is `base`. */
export function hasTpmRc(err: unknown, base: number): boolean {
  if (!(err instanceof SpireEdgeError) || err.code !== 'ERR_TPM_RC') return false;
  const rc = err.details['rc'];
  return typeof rc === 'number' && tpmRcBase(rc) === base;
}

interface NativeErrorShape {
  code?: unknown;
  rc?: unknown;
  rcText?: unknown;
  op?: unknown;
  message?: unknown;
}

/**
 * Maps a rejection of the native addon to a coded error: `could not <what>: <native message>`.
 * TypeErrors (bad arguments), coded errors and errors that are not the addon's pass through
 * unchanged.
 */
export function tpmError(err: unknown, what: string): unknown {
  if (err instanceof TypeError || err instanceof SpireEdgeError) return err;
  if (typeof err !== 'object' || err === null) return err;
  const e = err as NativeErrorShape;
  const message = typeof e.message === 'string' ? e.message : String(err);
  if (e.code === 'ERR_TPM_CLOSED') {
    return new SpireEdgeError('ERR_TPM_CLOSED', `could not ${what}: tpm is closed`, {
      cause: err,
    });
  }
  if (
    e.code !== 'ERR_TPM_RC' &&
    e.code !== 'ERR_TPM_BLOB_INVALID' &&
    e.code !== 'ERR_TPM_PCR_UNAVAILABLE'
  ) {
    return err;
  }
  const details: Record<string, unknown> = {};
  if (typeof e.rc === 'number') details['rc'] = e.rc;
  if (typeof e.rcText === 'string') details['rcText'] = e.rcText;
  if (typeof e.op === 'string') details['op'] = e.op;
  return new SpireEdgeError(e.code, `could not ${what}: ${message}`, { cause: err, details });
}
