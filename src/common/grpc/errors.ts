/**
 * The one table that turns project errors into gRPC status codes at API boundaries.
 *
 * Every service answers through it: {@link startGrpcServer} installs an interceptor that
 * passes whatever a handler throws through {@link toConnectError}, and batch operations
 * fill `spire.api.types.Status` with {@link statusOf}. Codes are chosen by the
 * {@link SpireEdgeError} code's suffix, so a domain never registers anything: name the
 * code after the rule it breaks (`ERR_ENTRY_NOT_FOUND`, `ERR_CSR_INVALID`) and the status
 * follows.
 *
 * What reaches the client: the coded error's own message (house rule: it names the field
 * and the rule, never key material or tokens) and never its `cause`, stack or details.
 * Anything that is not a SpireEdgeError (a bug, a driver error with a path or SQL in it)
 * becomes `Internal` with the fixed message `internal error`.
 *
 * Spec: gRPC status codes, https://grpc.github.io/grpc/core/md_doc_statuscodes.html.
 */
import { Code, ConnectError } from '@connectrpc/connect';
import { SpireEdgeError } from '../errors.js';

/** One row of {@link GRPC_ERROR_TABLE}: error codes ending in `suffix` map to `grpc`. */
export interface GrpcErrorRule {
  readonly suffix: string;
  readonly grpc: Code;
}

/**
 * Suffix → gRPC code, first match wins (longer suffixes come before shorter ones that
 * they end with, e.g. `_INVALID_ARGUMENT` before `_INVALID`). Codes matching no row map
 * to `Internal`.
 */
export const GRPC_ERROR_TABLE: readonly GrpcErrorRule[] = Object.freeze([
  { suffix: '_INVALID_ARGUMENT', grpc: Code.InvalidArgument },
  { suffix: '_INVALID', grpc: Code.InvalidArgument },
  { suffix: '_NOT_FOUND', grpc: Code.NotFound },
  { suffix: '_ALREADY_EXISTS', grpc: Code.AlreadyExists },
  { suffix: '_PERMISSION_DENIED', grpc: Code.PermissionDenied },
  { suffix: '_UNAUTHORIZED', grpc: Code.PermissionDenied },
  { suffix: '_UNAUTHENTICATED', grpc: Code.Unauthenticated },
  { suffix: '_FAILED_PRECONDITION', grpc: Code.FailedPrecondition },
  { suffix: '_RESOURCE_EXHAUSTED', grpc: Code.ResourceExhausted },
  { suffix: '_DEADLINE_EXCEEDED', grpc: Code.DeadlineExceeded },
  { suffix: '_UNIMPLEMENTED', grpc: Code.Unimplemented },
  { suffix: '_UNAVAILABLE', grpc: Code.Unavailable },
  { suffix: '_ABORTED', grpc: Code.Aborted },
  // A write that conflicts with current state (restricted bundle delete, compare-and-swap
  // miss): SPIRE answers FailedPrecondition.
  { suffix: '_CONFLICT', grpc: Code.FailedPrecondition },
]);

/** The message sent for errors that are not SpireEdgeErrors. */
export const INTERNAL_ERROR_MESSAGE = 'internal error';

/** The gRPC code for a SpireEdgeError code, by {@link GRPC_ERROR_TABLE}. */
export function grpcCodeFor(errorCode: string): Code {
  for (const rule of GRPC_ERROR_TABLE) {
    if (errorCode.endsWith(rule.suffix)) return rule.grpc;
  }
  return Code.Internal;
}

/**
 * Any thrown value as the ConnectError a client should see.
 *
 * - a ConnectError passes unchanged (a handler that chose a status keeps it);
 * - a SpireEdgeError gets the mapped code and its own message; the original error is kept
 *   as the ConnectError's `cause` for server-side logging only (it is never serialised);
 * - anything else is `Internal` / `internal error`.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof SpireEdgeError) {
    return new ConnectError(err.message, grpcCodeFor(err.code), undefined, undefined, err);
  }
  return new ConnectError(INTERNAL_ERROR_MESSAGE, Code.Internal, undefined, undefined, err);
}

/**
 * The `spire.api.types.Status` of one batch item (`{ code: 0, message: 'OK' }` is the
 * caller's to write for successes), with the same mapping and redaction as
 * {@link toConnectError}.
 */
export function statusOf(err: unknown): { code: number; message: string } {
  const ce = toConnectError(err);
  return { code: ce.code, message: ce.rawMessage };
}
