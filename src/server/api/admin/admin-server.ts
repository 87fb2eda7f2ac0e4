/**
 * The server's admin API on its private Unix socket (SPIRE's `socket_path`, default
 * `/tmp/spire-server/private/api.sock`): the Entry, Bundle, Agent (management) and SVID
 * (mint) services plus grpc.health.v1, over gRPC with peer credentials.
 *
 * Authorization (SPIRE's rule): every call — of every method, before its handler runs —
 * must come from the server process's own uid or from root, read with SO_PEERCRED;
 * anyone else gets PermissionDenied naming their uid. The socket's directory is created
 * with mode 0700 as a second barrier. See docs/server-api.md.
 *
 * Errors of `startAdminServer`: those of {@link startGrpcServer} (`ERR_GRPC_SOCKET_*`,
 * `ERR_GRPC_LISTEN_FAILED`, `ERR_NATIVE_UNAVAILABLE` — the native addon is required, the
 * server fails closed without it). Bad options throw TypeError.
 */
import { Code, type ConnectRouter } from '@connectrpc/connect';
import { isSpireEdgeError } from '../../../common/errors.js';
import type { GrpcServerLimits } from '../../../common/grpc/server.js';
import { type GrpcServer, grpcCodeFor, startGrpcServer } from '../../../common/grpc.js';
import { agentv1, bundlev1, entryv1, healthv1, svidv1 } from '../../../protocol/index.js';
import type { ServerContext } from '../../context.js';
import { logReason } from '../convert.js';
import { createAgentAdminService } from './agent.js';
import { adminAuthorizer, allowedAdminUids } from './authorize.js';
import { createBundleAdminService } from './bundle.js';
import { createEntryAdminService } from './entry.js';
import { createHealthService } from './health.js';
import { createSvidAdminService } from './svid.js';

/** SPIRE's default admin socket path. */
export const DEFAULT_ADMIN_SOCKET_PATH = '/tmp/spire-server/private/api.sock';
/** Mode of the socket's directory: only the server's user may reach the socket. */
export const DEFAULT_ADMIN_SOCKET_DIR_MODE = 0o700;

/** Options of {@link startAdminServer}. */
export interface AdminServerOptions
  extends Pick<
    GrpcServerLimits,
    | 'maxMessageBytes'
    | 'maxConcurrentStreams'
    | 'maxConnections'
    | 'idleTimeoutMs'
    | 'shutdownGraceMs'
  > {
  /** The shared context of the API services. */
  readonly context: ServerContext;
  /** Absolute path of the socket; default {@link DEFAULT_ADMIN_SOCKET_PATH}. */
  readonly socketPath?: string;
  /** Mode of the socket's directory (created if missing); default 0o700. */
  readonly dirMode?: number;
  /** Mode of the socket file itself; default: left as created (umask). */
  readonly mode?: number;
  /**
   * Uids admitted besides root; default: the server process's own uid. Only for special
   * deployments and tests — SPIRE has no such setting.
   */
  readonly allowedUids?: readonly number[];
  /** Readiness probe of the health service (default: the datastore answers). */
  readonly ready?: () => boolean | Promise<boolean>;
  /**
   * Registers more services on the socket, behind the same admin authorization (spire-edge's
   * own, e.g. the provisioning-token service of src/server/api/enrollment).
   */
  readonly extraRoutes?: (router: ConnectRouter) => void;
}

/** A running admin server. */
export interface AdminServer {
  /** Where it listens. */
  readonly socketPath: string;
  /** The uids it admits. */
  readonly allowedUids: readonly number[];
  /** The underlying gRPC server (connection statistics). */
  readonly grpc: GrpcServer;
  /** Stops accepting, lets running calls finish (shutdown grace), removes the socket. Idempotent. */
  close(): Promise<void>;
}

/** Registers the admin services on a router (for servers that build their own transport). */
export function registerAdminServices(router: ConnectRouter, context: ServerContext): void {
  router.service(entryv1.Entry, createEntryAdminService(context));
  router.service(bundlev1.Bundle, createBundleAdminService(context));
  router.service(agentv1.Agent, createAgentAdminService(context));
  router.service(svidv1.SVID, createSvidAdminService(context));
}

/**
 * Starts the admin API on its Unix socket and resolves once it listens.
 *
 * What it trusts: SO_PEERCRED for the caller's uid. What the caller (the server) must
 * still do: close it on shutdown; keep the context's datastore and CA alive while it runs.
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  if (options === null || typeof options !== 'object') throw new TypeError('options are required');
  const { context } = options;
  if (context === undefined) throw new TypeError('options.context is required');
  const socketPath = options.socketPath ?? DEFAULT_ADMIN_SOCKET_PATH;
  const allowedUids = allowedAdminUids(
    options.allowedUids === undefined ? {} : { allowedUids: options.allowedUids },
  );
  const log = context.log.with({ subsystem_name: 'admin_api' });
  const services = [entryv1.Entry, bundlev1.Bundle, agentv1.Agent, svidv1.SVID].map(
    (s) => s.typeName,
  );

  const grpc = await startGrpcServer({
    routes: (router) => {
      registerAdminServices(router, context);
      options.extraRoutes?.(router);
      router.service(
        healthv1.Health,
        createHealthService(context, {
          services,
          ...(options.ready === undefined ? {} : { ready: options.ready }),
        }),
      );
    },
    listen: {
      socketPath,
      dirMode: options.dirMode ?? DEFAULT_ADMIN_SOCKET_DIR_MODE,
      ...(options.mode === undefined ? {} : { mode: options.mode }),
      peerCredentials: true,
    },
    interceptors: [adminAuthorizer({ allowedUids })],
    onError: (err, procedure) => {
      // Refused requests are the caller's business; failures are ours.
      if (isSpireEdgeError(err) && grpcCodeFor(err.code) !== Code.Internal) {
        log.debug('request refused', { procedure, error: err.message });
      } else {
        log.error('request failed', { procedure, error: logReason(err) });
      }
    },
    ...(options.maxMessageBytes === undefined ? {} : { maxMessageBytes: options.maxMessageBytes }),
    ...(options.maxConcurrentStreams === undefined
      ? {}
      : { maxConcurrentStreams: options.maxConcurrentStreams }),
    ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
    ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
    ...(options.shutdownGraceMs === undefined ? {} : { shutdownGraceMs: options.shutdownGraceMs }),
  });
  log.info('admin API listening', { socket_path: socketPath, allowed_uids: allowedUids.join(',') });
  return {
    socketPath,
    allowedUids,
    grpc,
    close: () => grpc.close(),
  };
}
