/**
 * PKCS#11 return values (`CK_RV`, PKCS#11 v2.40 §3.6 and v3.0 §5.1) as names, and the one
 * place where a failed Cryptoki call becomes a coded error: `ERR_HSM_CKR` with
 * `details.ckr` = the CKR name (`CKR_PIN_INCORRECT`), `details.rv` = the number and
 * `details.operation` = the C_ function. Pure: no I/O, no pkcs11js import (errors from
 * pkcs11js are recognised by shape).
 */
import { SpireEdgeError } from '../../common/errors.js';

const TABLE: ReadonlyArray<readonly [number, string]> = [
  [0x0, 'CKR_OK'],
  [0x1, 'CKR_CANCEL'],
  [0x2, 'CKR_HOST_MEMORY'],
  [0x3, 'CKR_SLOT_ID_INVALID'],
  [0x5, 'CKR_GENERAL_ERROR'],
  [0x6, 'CKR_FUNCTION_FAILED'],
  [0x7, 'CKR_ARGUMENTS_BAD'],
  [0x8, 'CKR_NO_EVENT'],
  [0x9, 'CKR_NEED_TO_CREATE_THREADS'],
  [0xa, 'CKR_CANT_LOCK'],
  [0x10, 'CKR_ATTRIBUTE_READ_ONLY'],
  [0x11, 'CKR_ATTRIBUTE_SENSITIVE'],
  [0x12, 'CKR_ATTRIBUTE_TYPE_INVALID'],
  [0x13, 'CKR_ATTRIBUTE_VALUE_INVALID'],
  [0x1b, 'CKR_ACTION_PROHIBITED'],
  [0x20, 'CKR_DATA_INVALID'],
  [0x21, 'CKR_DATA_LEN_RANGE'],
  [0x30, 'CKR_DEVICE_ERROR'],
  [0x31, 'CKR_DEVICE_MEMORY'],
  [0x32, 'CKR_DEVICE_REMOVED'],
  [0x40, 'CKR_ENCRYPTED_DATA_INVALID'],
  [0x41, 'CKR_ENCRYPTED_DATA_LEN_RANGE'],
  [0x42, 'CKR_AEAD_DECRYPT_FAILED'],
  [0x50, 'CKR_FUNCTION_CANCELED'],
  [0x51, 'CKR_FUNCTION_NOT_PARALLEL'],
  [0x54, 'CKR_FUNCTION_NOT_SUPPORTED'],
  [0x60, 'CKR_KEY_HANDLE_INVALID'],
  [0x62, 'CKR_KEY_SIZE_RANGE'],
  [0x63, 'CKR_KEY_TYPE_INCONSISTENT'],
  [0x64, 'CKR_KEY_NOT_NEEDED'],
  [0x65, 'CKR_KEY_CHANGED'],
  [0x66, 'CKR_KEY_NEEDED'],
  [0x67, 'CKR_KEY_INDIGESTIBLE'],
  [0x68, 'CKR_KEY_FUNCTION_NOT_PERMITTED'],
  [0x69, 'CKR_KEY_NOT_WRAPPABLE'],
  [0x6a, 'CKR_KEY_UNEXTRACTABLE'],
  [0x70, 'CKR_MECHANISM_INVALID'],
  [0x71, 'CKR_MECHANISM_PARAM_INVALID'],
  [0x82, 'CKR_OBJECT_HANDLE_INVALID'],
  [0x90, 'CKR_OPERATION_ACTIVE'],
  [0x91, 'CKR_OPERATION_NOT_INITIALIZED'],
  [0xa0, 'CKR_PIN_INCORRECT'],
  [0xa1, 'CKR_PIN_INVALID'],
  [0xa2, 'CKR_PIN_LEN_RANGE'],
  [0xa3, 'CKR_PIN_EXPIRED'],
  [0xa4, 'CKR_PIN_LOCKED'],
  [0xb0, 'CKR_SESSION_CLOSED'],
  [0xb1, 'CKR_SESSION_COUNT'],
  [0xb3, 'CKR_SESSION_HANDLE_INVALID'],
  [0xb4, 'CKR_SESSION_PARALLEL_NOT_SUPPORTED'],
  [0xb5, 'CKR_SESSION_READ_ONLY'],
  [0xb6, 'CKR_SESSION_EXISTS'],
  [0xb7, 'CKR_SESSION_READ_ONLY_EXISTS'],
  [0xb8, 'CKR_SESSION_READ_WRITE_SO_EXISTS'],
  [0xc0, 'CKR_SIGNATURE_INVALID'],
  [0xc1, 'CKR_SIGNATURE_LEN_RANGE'],
  [0xd0, 'CKR_TEMPLATE_INCOMPLETE'],
  [0xd1, 'CKR_TEMPLATE_INCONSISTENT'],
  [0xe0, 'CKR_TOKEN_NOT_PRESENT'],
  [0xe1, 'CKR_TOKEN_NOT_RECOGNIZED'],
  [0xe2, 'CKR_TOKEN_WRITE_PROTECTED'],
  [0xf0, 'CKR_UNWRAPPING_KEY_HANDLE_INVALID'],
  [0xf1, 'CKR_UNWRAPPING_KEY_SIZE_RANGE'],
  [0xf2, 'CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT'],
  [0x100, 'CKR_USER_ALREADY_LOGGED_IN'],
  [0x101, 'CKR_USER_NOT_LOGGED_IN'],
  [0x102, 'CKR_USER_PIN_NOT_INITIALIZED'],
  [0x103, 'CKR_USER_TYPE_INVALID'],
  [0x104, 'CKR_USER_ANOTHER_ALREADY_LOGGED_IN'],
  [0x105, 'CKR_USER_TOO_MANY_TYPES'],
  [0x110, 'CKR_WRAPPED_KEY_INVALID'],
  [0x112, 'CKR_WRAPPED_KEY_LEN_RANGE'],
  [0x113, 'CKR_WRAPPING_KEY_HANDLE_INVALID'],
  [0x114, 'CKR_WRAPPING_KEY_SIZE_RANGE'],
  [0x115, 'CKR_WRAPPING_KEY_TYPE_INCONSISTENT'],
  [0x120, 'CKR_RANDOM_SEED_NOT_SUPPORTED'],
  [0x121, 'CKR_RANDOM_NO_RNG'],
  [0x130, 'CKR_DOMAIN_PARAMS_INVALID'],
  [0x140, 'CKR_CURVE_NOT_SUPPORTED'],
  [0x150, 'CKR_BUFFER_TOO_SMALL'],
  [0x160, 'CKR_SAVED_STATE_INVALID'],
  [0x170, 'CKR_INFORMATION_SENSITIVE'],
  [0x180, 'CKR_STATE_UNSAVEABLE'],
  [0x190, 'CKR_CRYPTOKI_NOT_INITIALIZED'],
  [0x191, 'CKR_CRYPTOKI_ALREADY_INITIALIZED'],
  [0x1a0, 'CKR_MUTEX_BAD'],
  [0x1a1, 'CKR_MUTEX_NOT_LOCKED'],
  [0x1b0, 'CKR_NEW_PIN_MODE'],
  [0x1b1, 'CKR_NEXT_OTP'],
  [0x1b5, 'CKR_EXCEEDED_MAX_ITERATIONS'],
  [0x1b6, 'CKR_FIPS_SELF_TEST_FAILED'],
  [0x1b7, 'CKR_LIBRARY_LOAD_FAILED'],
  [0x1b8, 'CKR_PIN_TOO_WEAK'],
  [0x1b9, 'CKR_PUBLIC_KEY_INVALID'],
  [0x200, 'CKR_FUNCTION_REJECTED'],
  [0x201, 'CKR_TOKEN_RESOURCE_EXCEEDED'],
  [0x202, 'CKR_OPERATION_CANCEL_FAILED'],
];

/** `CKR_VENDOR_DEFINED`: return values from here up are the token vendor's own. */
export const CKR_VENDOR_DEFINED = 0x80000000;

/** Every standard CKR value by number (PKCS#11 v2.40 and v3.0). */
export const CKR_NAMES: ReadonlyMap<number, string> = new Map(TABLE);

const CODES: ReadonlyMap<string, number> = new Map(TABLE.map(([c, n]) => [n, c]));

/**
 * The name of a CK_RV: `CKR_PIN_INCORRECT` for 0xA0, `CKR_VENDOR_DEFINED+0x12` for vendor
 * codes, `CKR_0x…` for a number no standard names.
 *
 * @throws TypeError when `rv` is not a non-negative integer.
 */
export function ckrName(rv: number): string {
  if (!Number.isSafeInteger(rv) || rv < 0) throw new TypeError('rv must be a non-negative integer');
  const name = CKR_NAMES.get(rv);
  if (name !== undefined) return name;
  if (rv >= CKR_VENDOR_DEFINED && rv <= 0xffffffff) {
    return `CKR_VENDOR_DEFINED+0x${(rv - CKR_VENDOR_DEFINED).toString(16)}`;
  }
  return `CKR_0x${rv.toString(16)}`;
}

/** The number of a standard CKR name, or undefined. */
export function ckrCode(name: string): number | undefined {
  return CODES.get(name);
}

/**
 * Return values that mean the connection to the token is gone or no longer trustworthy
 * (the token was removed or reset, the session or login was lost, the library is no longer
 * initialised, an object handle we hold stopped being valid): the session pool drops its
 * sessions and reconnects instead of retrying on the same sessions.
 */
const CONNECTION_LOST = new Set([
  'CKR_GENERAL_ERROR',
  'CKR_DEVICE_ERROR',
  'CKR_DEVICE_REMOVED',
  'CKR_DEVICE_MEMORY',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_SESSION_CLOSED',
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
  'CKR_SLOT_ID_INVALID',
  'CKR_OBJECT_HANDLE_INVALID',
  'CKR_KEY_HANDLE_INVALID',
]);

/** True when `ckr` means the token connection is lost (see the set above). */
export function isConnectionLoss(ckr: string): boolean {
  return CONNECTION_LOST.has(ckr);
}

/**
 * Return values that retrying cannot fix: the credentials are wrong or locked. The session
 * pool stops reconnecting on these (retrying a wrong PIN locks real tokens after a few
 * attempts) until the operator acts.
 */
const PERMANENT = new Set([
  'CKR_PIN_INCORRECT',
  'CKR_PIN_INVALID',
  'CKR_PIN_LEN_RANGE',
  'CKR_PIN_EXPIRED',
  'CKR_PIN_LOCKED',
  'CKR_USER_PIN_NOT_INITIALIZED',
]);

/** True when `ckr` is a credential failure that must not be retried automatically. */
export function isPermanentLoginFailure(ckr: string): boolean {
  return PERMANENT.has(ckr);
}

const HINTS: Readonly<Record<string, string>> = {
  CKR_PIN_INCORRECT: 'the configured PIN is incorrect',
  CKR_PIN_LOCKED: 'the user PIN is locked: the security officer must unlock it',
  CKR_PIN_EXPIRED: 'the user PIN has expired',
  CKR_PIN_LEN_RANGE: 'the configured PIN has a length the token does not accept',
  CKR_PIN_INVALID: 'the configured PIN contains characters the token does not accept',
  CKR_USER_PIN_NOT_INITIALIZED: 'the token has no user PIN yet (initialise it)',
  CKR_TOKEN_NOT_PRESENT: 'the token is not present',
  CKR_DEVICE_REMOVED: 'the token was removed',
  CKR_MECHANISM_INVALID: 'the token does not support this mechanism',
  CKR_CURVE_NOT_SUPPORTED: 'the token does not support this curve',
  CKR_SESSION_COUNT: 'the token refuses more sessions (lower session_pool_size)',
  CKR_TOKEN_WRITE_PROTECTED: 'the token is write-protected',
};

/** Options of {@link hsmCkrError}. */
export interface HsmCkrErrorOptions {
  /** What was being done, for the message (`login to token "ca"`). */
  readonly context?: string;
  /** The lower-level error (the pkcs11js error). */
  readonly cause?: unknown;
}

/**
 * `ERR_HSM_CKR` for a failed Cryptoki call: message `pkcs11 <operation> failed: <CKR name>
 * (<hint>)`, `details` `{ ckr, rv, operation }`. Never include secrets in `context`.
 */
export function hsmCkrError(
  operation: string,
  rv: number,
  options: HsmCkrErrorOptions = {},
): SpireEdgeError {
  const ckr = ckrName(rv);
  const hint = HINTS[ckr];
  const what = options.context === undefined ? operation : `${operation} (${options.context})`;
  return new SpireEdgeError(
    'ERR_HSM_CKR',
    `pkcs11 ${what} failed: ${ckr}${hint === undefined ? '' : `: ${hint}`}`,
    {
      ...(options.cause === undefined ? {} : { cause: options.cause }),
      details: { ckr, rv, operation },
    },
  );
}

/**
 * The CK_RV carried by an error thrown by pkcs11js (a `Pkcs11Error` with a numeric `code`
 * and a `CKR_…` message), or undefined for anything else (a native or argument error).
 */
export function rvOfPkcs11Error(err: unknown): number | undefined {
  if (err === null || typeof err !== 'object') return undefined;
  const e = err as { name?: unknown; code?: unknown; message?: unknown };
  if (e.name !== 'Pkcs11Error') return undefined;
  if (typeof e.code === 'number' && Number.isSafeInteger(e.code) && e.code >= 0) return e.code;
  if (typeof e.message === 'string') {
    const code = ckrCode(e.message.trim());
    if (code !== undefined) return code;
  }
  return undefined;
}
