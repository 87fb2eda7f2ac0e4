/**
 * One base error class for the whole project. Every error that crosses a module boundary
 * carries a stable string `code` so callers `switch (err.code)` instead of parsing
 * messages; `cause` chains the lower-level error.
 *
 * Bad *arguments* (a programming error in the caller) throw `TypeError`; bad *data*
 * (untrusted bytes, configuration, requests) throws a coded {@link SpireEdgeError}.
 * Messages are lower-case, without a trailing period, name the field and the rule
 * that was broken, and never contain key material or tokens.
 */

/** Stable error codes. Each domain documents its own codes next to the code that throws them. */
export type ErrorCode = `ERR_${string}`;

export interface SpireEdgeErrorOptions {
  /** The lower-level error that caused this one. */
  cause?: unknown;
  /** Extra machine-readable properties (for example `rc` for TPM errors, `ckr` for PKCS#11). */
  details?: Readonly<Record<string, unknown>>;
}

export class SpireEdgeError<C extends ErrorCode = ErrorCode> extends Error {
  /** The stable code of this error. */
  readonly code: C;
  /** Machine-readable extras; never secrets. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: C, message: string, options: SpireEdgeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SpireEdgeError';
    this.code = code;
    this.details = options.details ?? {};
  }
}

/** True when `err` is a {@link SpireEdgeError}, optionally with the given code. */
export function isSpireEdgeError<C extends ErrorCode>(
  err: unknown,
  code?: C,
): err is SpireEdgeError<C> {
  return err instanceof SpireEdgeError && (code === undefined || err.code === code);
}

/** A short, log-safe description of any thrown value, for chaining into messages. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
