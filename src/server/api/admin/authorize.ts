/**
 * Who may call the admin API on the private Unix socket, and who did.
 *
 * SPIRE's rule for its admin socket: a local caller is an admin when its uid (SO_PEERCRED)
 * is the server process's own uid or root. {@link adminAuthorizer} enforces it on every call
 * of every service mounted on the socket — before the handler runs — and records the caller
 * under {@link kAdminCaller} so handlers can log who changed what ({@link callerFields}).
 *
 * What it trusts: the kernel's SO_PEERCRED, read by the transport when the connection was
 * accepted (src/common/grpc). The socket directory's mode (0700) is a second, independent
 * barrier; this check does not rely on it.
 */
import {
  type ContextValues,
  createContextKey,
  type HandlerContext,
  type Interceptor,
} from '@connectrpc/connect';
import { SpireEdgeError } from '../../../common/errors.js';
import { kGrpcPeer } from '../../../common/grpc/peer.js';

/** The authenticated caller of an admin call. */
export interface AdminCaller {
  /** How the caller was identified; only `unix` (SO_PEERCRED) exists today. */
  readonly kind: 'unix';
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
}

/** Context key under which {@link adminAuthorizer} stores the caller. */
export const kAdminCaller = createContextKey<AdminCaller | undefined>(undefined, {
  description: 'spire-edge admin caller',
});

/** Options of {@link adminAuthorizer}. */
export interface AdminAuthorizerOptions {
  /**
   * The uids allowed besides root (0). Default: the server process's own uid. Root is
   * always allowed, as in SPIRE.
   */
  readonly allowedUids?: readonly number[];
}

/** The uids {@link adminAuthorizer} admits with these options (sorted, root included). */
export function allowedAdminUids(options: AdminAuthorizerOptions = {}): number[] {
  const own = process.getuid?.();
  const extra = options.allowedUids ?? (own === undefined ? [] : [own]);
  for (const u of extra) {
    if (!Number.isInteger(u) || u < 0)
      throw new TypeError('allowedUids must be uids (integers >= 0)');
  }
  return [...new Set([0, ...extra])].sort((a, b) => a - b);
}

/**
 * Checks `values` (a call's context values) for a Unix caller whose uid is allowed, and
 * returns it.
 *
 * @throws SpireEdgeError `ERR_ADMIN_PERMISSION_DENIED` when the caller's credentials are
 *   unknown (not a Unix socket, or read without peer credentials) or its uid is not allowed.
 */
export function authorizeAdmin(values: ContextValues, allowed: readonly number[]): AdminCaller {
  const peer = values.get(kGrpcPeer);
  if (peer === undefined || peer.kind !== 'unix' || peer.cred === undefined) {
    throw new SpireEdgeError(
      'ERR_ADMIN_PERMISSION_DENIED',
      'caller credentials are unavailable: the admin API is served only on a Unix socket with peer credentials',
    );
  }
  const { uid, gid, pid } = peer.cred;
  if (!allowed.includes(uid)) {
    throw new SpireEdgeError(
      'ERR_ADMIN_PERMISSION_DENIED',
      `caller uid ${uid} is not authorized: the admin API admits only uid ${allowed.join(', ')}`,
      { details: { uid, pid } },
    );
  }
  return { kind: 'unix', uid, gid, pid };
}

/**
 * An interceptor that authorizes every call (unary and streaming) with
 * {@link authorizeAdmin} and stores the caller under {@link kAdminCaller}. Install it on the
 * admin socket's server; its errors become `PermissionDenied`.
 */
export function adminAuthorizer(options: AdminAuthorizerOptions = {}): Interceptor {
  const allowed = allowedAdminUids(options);
  return (next) => async (req) => {
    const caller = authorizeAdmin(req.contextValues, allowed);
    req.contextValues.set(kAdminCaller, caller);
    return next(req);
  };
}

/** Log fields naming the caller of the current call (`caller_uid`, `caller_pid`). */
export function callerFields(ctx: HandlerContext): Record<string, unknown> {
  const c = ctx.values.get(kAdminCaller);
  return c === undefined
    ? { caller_uid: 'unknown' }
    : { caller_uid: c.uid, caller_gid: c.gid, caller_pid: c.pid };
}
