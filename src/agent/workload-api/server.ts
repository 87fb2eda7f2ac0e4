/**
 * The agent's SPIFFE Workload API endpoint: gRPC (HTTP/2, prior knowledge) on a Unix
 * socket, world-connectable (mode 0777, as SPIRE's `socket_path`), every connection
 * identified by SO_PEERCRED with a pidfd held from accept time (src/common/grpc.ts), every
 * call attested by the configured workload attestors. See handlers.ts for the methods and
 * docs/workload-api.md for compatibility. Envoy's SDS v3 is served on the same socket, with
 * the same caller resolver, unless `sds: false` (src/agent/sds, docs/envoy-sds.md).
 *
 * What it trusts: the kernel's peer credentials and /proc, the attestors, the identity
 * source. Access control is the entries' selectors: anyone may connect.
 *
 * Errors at start: those of `startGrpcServer` (`ERR_GRPC_SOCKET_*`, `ERR_GRPC_LISTEN_FAILED`,
 * `ERR_NATIVE_UNAVAILABLE` when the addon is not built).
 */
import { type Clock, systemClock } from '../../common/clock.js';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import type { GrpcServerLimits } from '../../common/grpc/server.js';
import { type GrpcServerStats, parseUnixEndpoint, startGrpcServer } from '../../common/grpc.js';
import { type Logger, nullLogger } from '../../common/log.js';
import * as workload from '../../protocol/gen/spiffe/workload/workload_pb.js';
import type { SdsConfig } from '../sds/config.js';
import type { registerSdsService } from '../sds/handler.js';
import type { WorkloadAttestor } from '../workload-attestors/workload-attestor.js';
import { type CallerResolver, createPeerCallerResolver } from './caller.js';
import { DEFAULT_WORKLOAD_API_SOCKET } from './endpoint.js';
import { createWorkloadApiHandlers, createWorkloadApiService } from './handlers.js';
import type { IdentitySource } from './identity-source.js';
import { createWorkloadApiRawRoutes } from './raw-routes.js';

const LIMIT_KEYS = [
  'maxMessageBytes',
  'maxConcurrentStreams',
  'maxConnections',
  'idleTimeoutMs',
  'keepaliveIntervalMs',
  'keepaliveTimeoutMs',
  'maxTimeoutMs',
  'shutdownGraceMs',
] as const satisfies ReadonlyArray<keyof GrpcServerLimits>;

/** Options of {@link startWorkloadApiServer}; transport limits as `startGrpcServer`'s. */
export interface WorkloadApiServerOptions extends GrpcServerLimits {
  /** Path or `unix:///path`. Default {@link DEFAULT_WORKLOAD_API_SOCKET}. */
  readonly socketPath?: string;
  readonly source: IdentitySource;
  /** The configured attestors, usually `combineWorkloadAttestors([...])`. */
  readonly attestor: WorkloadAttestor;
  readonly log?: Logger;
  readonly clock?: Clock;
  /** Per-connection selector cache, ms (default 1000; 0 attests every call). */
  readonly attestationCacheMs?: number;
  /** SPIRE's `allow_unauthenticated_verifiers`. Default false. */
  readonly allowUnauthenticatedVerifiers?: boolean;
  /** SPIRE's `allowed_foreign_jwt_claims`. */
  readonly allowedForeignJwtClaims?: readonly string[];
  /** Replaces the SO_PEERCRED/pidfd resolver (tests). */
  readonly callers?: CallerResolver;
  /**
   * Envoy SDS v3 on the same socket (src/agent/sds): SPIRE's `sds { … }` settings, on by
   * default as in SPIRE; `false` is SPIRE's `disable_sds_api = true`.
   */
  readonly sds?: SdsConfig | false;
  /**
   * Serve the five `SpiffeWorkloadAPI` methods on the fast path (raw-routes.ts) rather than
   * through connect. Default true; the answers are the same (tests compare both).
   */
  readonly fastPath?: boolean;
}

/** A running Workload API endpoint. */
export interface WorkloadApiServer {
  readonly socketPath: string;
  /** Open connections and streams. */
  stats(): GrpcServerStats;
  /** Ends every stream (`Unavailable`, so clients reconnect), removes the socket. Idempotent. */
  close(): Promise<void>;
}

/** Starts the Workload API on its Unix socket; resolves once it listens. */
export async function startWorkloadApiServer(
  options: WorkloadApiServerOptions,
): Promise<WorkloadApiServer> {
  const log = options.log ?? nullLogger;
  const clock = options.clock ?? systemClock;
  const socketPath = parseUnixEndpoint(options.socketPath ?? DEFAULT_WORKLOAD_API_SOCKET);
  const callers =
    options.callers ??
    createPeerCallerResolver({
      attestor: options.attestor,
      clock,
      log,
      ...(options.attestationCacheMs === undefined ? {} : { cacheMs: options.attestationCacheMs }),
    });
  const serviceOptions = {
    source: options.source,
    callers,
    clock,
    log,
    ...(options.allowUnauthenticatedVerifiers === undefined
      ? {}
      : { allowUnauthenticatedVerifiers: options.allowUnauthenticatedVerifiers }),
    ...(options.allowedForeignJwtClaims === undefined
      ? {}
      : { allowedForeignJwtClaims: options.allowedForeignJwtClaims }),
  };
  const handlers = createWorkloadApiHandlers(serviceOptions);
  const rawRoutes =
    options.fastPath === false
      ? undefined
      : createWorkloadApiRawRoutes(createWorkloadApiService(serviceOptions));
  const limits: { -readonly [K in keyof GrpcServerLimits]?: number } = {};
  for (const key of LIMIT_KEYS) {
    const v = options[key];
    if (v !== undefined) limits[key] = v;
  }
  // SDS (and Envoy's descriptors) is loaded when the first request reaches connect's router:
  // the five Workload API methods are served without it.
  let registerSds: typeof registerSdsService | undefined;
  // An SDS call is a cache subscriber too (as in SPIRE): the caller's selectors are retained
  // by the source (x509_svid_cache_max_size) for as long as the call lasts.
  const sdsCallers: CallerResolver = {
    async resolve(ctx) {
      const caller = await callers.resolve(ctx);
      const release = options.source.retain?.(caller.selectors);
      if (release !== undefined) {
        if (ctx.signal.aborted) release();
        else ctx.signal.addEventListener('abort', release, { once: true });
      }
      return caller;
    },
  };
  const server = await startGrpcServer({
    ...limits,
    listen: { socketPath, mode: 0o777, peerCredentials: true, pidfd: true },
    ...(rawRoutes === undefined ? {} : { rawRoutes }),
    prepareRoutes: async () => {
      if (options.sds !== false)
        registerSds = (await import('../sds/handler.js')).registerSdsService;
    },
    routes: (router) => {
      router.service(workload.SpiffeWorkloadAPI, handlers);
      if (options.sds !== false && registerSds !== undefined) {
        registerSds(router, {
          source: options.source,
          callerResolver: sdsCallers,
          clock,
          log,
          ...(options.sds === undefined ? {} : { config: options.sds }),
        });
      }
    },
    // Coded errors (no identity, bad argument) are answers, logged where they arise;
    // anything else is a bug worth an error line.
    onError: (err, procedure) => {
      const fields = { method: procedure, error: describeError(err) };
      if (err instanceof SpireEdgeError) log.debug('workload api call failed', fields);
      else log.error('workload api call failed', fields);
    },
  });
  log.info('starting workload api', { socket_path: socketPath });
  return {
    socketPath,
    stats: () => server.stats(),
    close: () => server.close(),
  };
}
