/**
 * Errors as SPIRE's Go CLIs print them: a gRPC failure is `rpc error: code = NotFound desc =
 * entry not found` (grpc-go's status error text), a socket that cannot be reached is
 * `rpc error: code = Unavailable desc = connection error: desc = "transport: Error while
 * dialing: dial unix /path: connect: no such file or directory"`, and gRPC codes in batch
 * results print by their Go names (`AlreadyExists`).
 */
import { ConnectError } from '@connectrpc/connect';
import { goQuote } from './go-quote.js';

const CODE_NAMES = [
  'OK',
  'Canceled',
  'Unknown',
  'InvalidArgument',
  'DeadlineExceeded',
  'NotFound',
  'AlreadyExists',
  'PermissionDenied',
  'ResourceExhausted',
  'FailedPrecondition',
  'Aborted',
  'OutOfRange',
  'Unimplemented',
  'Internal',
  'Unavailable',
  'DataLoss',
  'Unauthenticated',
];

/** grpc-go's `codes.Code.String()`: `NotFound`, …, `Code(42)` for unknown values. */
export function grpcCodeName(code: number): string {
  return CODE_NAMES[code] ?? `Code(${String(code)})`;
}

/** Go's `syscall.Errno` texts for the failures a local socket dial can meet. */
const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  ECONNREFUSED: 'connection refused',
  EACCES: 'permission denied',
  ENOTSOCK: 'socket operation on non-socket',
  EPIPE: 'broken pipe',
  ECONNRESET: 'connection reset by peer',
  ENOTDIR: 'not a directory',
};

function dialFailure(err: ConnectError): string | undefined {
  const seen = new Set<unknown>();
  let e: unknown = err.cause;
  while (e instanceof Error && !seen.has(e)) {
    seen.add(e);
    const errno = e as NodeJS.ErrnoException & { address?: string };
    if (errno.syscall === 'connect' && typeof errno.code === 'string') {
      const text = ERRNO_TEXT[errno.code] ?? errno.message;
      const inner = `transport: Error while dialing: dial unix ${errno.address ?? ''}: connect: ${text}`;
      return `connection error: desc = ${goQuote(inner)}`;
    }
    e = e.cause;
  }
  return undefined;
}

/** The text grpc-go gives a failed call: `rpc error: code = <Name> desc = <message>`. */
export function formatRpcError(err: ConnectError): string {
  const desc = dialFailure(err) ?? err.rawMessage;
  return `rpc error: code = ${grpcCodeName(err.code)} desc = ${desc}`;
}

/** Any thrown value as the text after `Error: ` in SPIRE's CLI output. */
export function describeCliError(err: unknown): string {
  if (err instanceof ConnectError) return formatRpcError(err);
  if (err instanceof Error) return err.message;
  return String(err);
}
