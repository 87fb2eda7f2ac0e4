/**
 * The server's agent API listener (SPIRE's TCP endpoint, port 8081): gRPC over TLS with the
 * server's own X509-SVID (server-svid.ts), client certificates requested but not required
 * (an agent attests before it has an SVID), and per-method authorization:
 *
 * | method | caller |
 * |---|---|
 * | Agent/AttestAgent, Bundle/GetBundle | anyone (SPIRE's `allow_any`) |
 * | Agent/RenewAgent, Agent/PostStatus, Entry/GetAuthorizedEntries, Entry/SyncAuthorizedEntries, SVID/BatchNewX509SVID, SVID/NewJWTSVID, Bundle/GetFederatedBundle | an authenticated agent (caller.ts) |
 * | anything else | an authenticated agent, then Unimplemented (admin methods live on the admin socket) |
 *
 * Rate limits (rate-limit.ts) follow SPIRE's `ratelimit { attestation, signing }` switches.
 */
import { Code, type ConnectRouter, type Interceptor } from '@connectrpc/connect';
import { describeError, isSpireEdgeError } from '../../../common/errors.js';
import type { GrpcServerLimits } from '../../../common/grpc/server.js';
import { grpcCodeFor, kGrpcPeer, startGrpcServer } from '../../../common/grpc.js';
import { agentv1, bundlev1, entryv1, svidv1 } from '../../../protocol/index.js';
import { createJoinTokenAttestor, JOIN_TOKEN_TYPE } from '../../attestation/join-token.js';
import type { ServerNodeAttestor } from '../../attestation/node-attestor.js';
import {
  AuthorizedEntries,
  type AuthorizedEntriesOptions,
} from '../../authz/authorized-entries.js';
import type { ServerContext } from '../../context.js';
import { createAgentService } from './agent-service.js';
import { createBundleService } from './bundle-service.js';
import { AgentAuthenticator, kAgentCaller } from './caller.js';
import type { AgentApiDeps, AgentApiLimiters, AuthorizedEntriesSource } from './deps.js';
import { createEntryService } from './entry-service.js';
import {
  ATTEST_LIMIT_PER_SECOND,
  KeyedRateLimiter,
  POST_STATUS_LIMIT_PER_SECOND,
  SIGN_LIMIT_PER_SECOND,
} from './rate-limit.js';
import { ServerSvid } from './server-svid.js';
import {
  BATCH_NEW_X509_SVID_PATH,
  createBatchNewX509SvidRawRoute,
  createSvidService,
} from './svid-service.js';

/** Methods that need no agent SVID. */
export const OPEN_AGENT_API_METHODS: ReadonlySet<string> = new Set([
  '/spire.api.server.agent.v1.Agent/AttestAgent',
  '/spire.api.server.bundle.v1.Bundle/GetBundle',
]);

/** SPIRE's `ratelimit` block plus the limits themselves. */
export interface AgentServerRateLimits {
  /** `ratelimit.attestation`: AttestAgent limited per caller IP (default true). */
  readonly attestation?: boolean;
  /** `ratelimit.signing`: CSRs and JWT-SVIDs limited per agent (default true). */
  readonly signing?: boolean;
  /** Default 1 (SPIRE's `AttestLimitPerIP`). */
  readonly attestationPerSecond?: number;
  /** Default 500 (SPIRE's `SignLimitPerIP`). */
  readonly signingPerSecond?: number;
  /** Longest wait for tokens before ResourceExhausted; default 10 s. */
  readonly maxWaitMs?: number;
}

/** Options of {@link startAgentServer}. */
export interface AgentServerOptions {
  readonly context: ServerContext;
  /** Listen address (SPIRE's `bind_address`, default `0.0.0.0`). */
  readonly host: string;
  /** Listen port (SPIRE's `bind_port`, default 8081); 0 picks one. */
  readonly port: number;
  /** Node attestors by type; `join_token` is added when absent (SPIRE always offers it). */
  readonly attestors?: readonly ServerNodeAttestor[];
  /**
   * The authorized-entries source. When absent, an {@link AuthorizedEntries} is started
   * (with `entryCache` options) and closed with the server.
   */
  readonly authorizedEntries?: AuthorizedEntriesSource;
  readonly entryCache?: Omit<
    AuthorizedEntriesOptions,
    'dataStore' | 'trustDomain' | 'clock' | 'log' | 'metrics'
  >;
  readonly rateLimit?: AgentServerRateLimits;
  /** SyncAuthorizedEntries page size; default 500 (SPIRE's). */
  readonly entryPageSize?: number;
  /** How long an agent has to answer each attestation challenge; default 30 s. */
  readonly challengeTimeoutMs?: number;
  /** How often the server SVID and client roots are checked; default 30 s. */
  readonly svidCheckIntervalMs?: number;
  /** Transport limits (message size, connections, keepalive…). */
  readonly grpcLimits?: GrpcServerLimits;
  /**
   * More services on this listener whose `procedures` (`/<service>/<Method>`) need no agent
   * SVID, like AttestAgent (spire-edge's device enrollment, src/server/api/enrollment).
   */
  readonly openServices?: ReadonlyArray<{
    readonly procedures: readonly string[];
    register(router: ConnectRouter): void;
  }>;
}

/** A running agent API server. */
export interface AgentServer {
  readonly address: { readonly host: string; readonly port: number };
  /** The serving SVID (for tests and `healthcheck`). */
  readonly serverSvid: ServerSvid;
  readonly authorizedEntries: AuthorizedEntriesSource;
  /** Stops listening, the SVID rotation and the owned entry cache. Idempotent. */
  close(): Promise<void>;
}

function limiters(o: AgentServerOptions): AgentApiLimiters {
  const rl = o.rateLimit ?? {};
  const clock = o.context.clock;
  const maxWaitMs = rl.maxWaitMs ?? 10_000;
  return {
    ...(rl.attestation === false
      ? {}
      : {
          attest: new KeyedRateLimiter({
            perSecond: rl.attestationPerSecond ?? ATTEST_LIMIT_PER_SECOND,
            clock,
            maxWaitMs,
            what: 'attest agent',
          }),
        }),
    ...(rl.signing === false
      ? {}
      : {
          sign: new KeyedRateLimiter({
            perSecond: rl.signingPerSecond ?? SIGN_LIMIT_PER_SECOND,
            clock,
            maxWaitMs,
            what: 'certificate signing',
          }),
        }),
    postStatus: new KeyedRateLimiter({
      perSecond: POST_STATUS_LIMIT_PER_SECOND,
      clock,
      maxWaitMs,
      what: 'post status',
    }),
  };
}

/**
 * Starts the agent API on `host:port`: mints the server SVID, starts the authorized-entries
 * cache when none is given, and serves until `close()`.
 *
 * @throws SpireEdgeError `ERR_CA_NOT_READY` when the CA cannot sign the server SVID,
 *   `ERR_GRPC_LISTEN_FAILED` when the address cannot be bound, the datastore's errors from
 *   the first cache load.
 */
export async function startAgentServer(options: AgentServerOptions): Promise<AgentServer> {
  if (options === null || typeof options !== 'object' || options.context === undefined) {
    throw new TypeError('startAgentServer needs options with a context');
  }
  const { context } = options;
  const log = context.log.with({ subsystem_name: 'agent_api' });

  const attestors = new Map<string, ServerNodeAttestor>();
  for (const a of options.attestors ?? []) {
    if (attestors.has(a.type)) throw new TypeError(`two node attestors of type ${a.type}`);
    attestors.set(a.type, a);
  }
  if (!attestors.has(JOIN_TOKEN_TYPE)) {
    attestors.set(
      JOIN_TOKEN_TYPE,
      createJoinTokenAttestor({
        trustDomain: context.trustDomain,
        dataStore: context.dataStore,
        clock: context.clock,
      }),
    );
  }

  let owned: AuthorizedEntries | undefined;
  if (options.authorizedEntries === undefined) {
    owned = await AuthorizedEntries.start({
      ...options.entryCache,
      dataStore: context.dataStore,
      trustDomain: context.trustDomain,
      clock: context.clock,
      log: log.with({ subsystem_name: 'entry_cache' }),
      metrics: context.metrics,
    });
  }
  const entries: AuthorizedEntriesSource = options.authorizedEntries ?? owned!;

  const deps: AgentApiDeps = {
    context,
    log,
    entries,
    attestors,
    limiters: limiters(options),
    entryPageSize: options.entryPageSize ?? 500,
    challengeTimeoutMs: options.challengeTimeoutMs ?? 30_000,
  };

  const svid = new ServerSvid(context, log, options.svidCheckIntervalMs);
  const authenticator = new AgentAuthenticator(context);
  const open = new Set(OPEN_AGENT_API_METHODS);
  for (const o of options.openServices ?? []) for (const p of o.procedures) open.add(p);
  const authorize: Interceptor = (next) => async (req) => {
    const procedure = `/${req.service.typeName}/${req.method.name}`;
    if (!open.has(procedure)) {
      const caller = await authenticator.authenticate(req.contextValues.get(kGrpcPeer));
      req.contextValues.set(kAgentCaller, caller);
    }
    return next(req);
  };

  let server: Awaited<ReturnType<typeof startGrpcServer>>;
  try {
    await svid.rotate();
    server = await startGrpcServer({
      ...options.grpcLimits,
      listen: { host: options.host, port: options.port, tls: svid.tlsOptions() },
      interceptors: [authorize],
      // The hot method skips connect's pipeline (same authentication, handler and errors).
      rawRoutes: new Map([
        [BATCH_NEW_X509_SVID_PATH, createBatchNewX509SvidRawRoute(deps, authenticator)],
      ]),
      routes: (router: ConnectRouter) => {
        router.service(agentv1.Agent, createAgentService(deps));
        router.service(entryv1.Entry, createEntryService(deps));
        router.service(svidv1.SVID, createSvidService(deps));
        router.service(bundlev1.Bundle, createBundleService(deps));
        for (const o of options.openServices ?? []) o.register(router);
      },
      onError: (err, procedure) => {
        const fields = { method: procedure, error: describeError(err) };
        if (isSpireEdgeError(err) && grpcCodeFor(err.code) !== Code.Internal) {
          log.debug('agent API call refused', fields);
        } else {
          log.error('agent API call failed', fields);
        }
      },
    });
  } catch (err) {
    await owned?.close();
    throw err;
  }
  svid.start((tls) => {
    server.updateTls(tls);
    log.info('rotated the agent API TLS identity');
  });
  const addr = server.address as { host: string; port: number };
  let closing: Promise<void> | undefined;
  return {
    address: { host: addr.host, port: addr.port },
    serverSvid: svid,
    authorizedEntries: entries,
    close() {
      closing ??= (async () => {
        svid.stop();
        await server.close();
        await owned?.close();
      })();
      return closing;
    },
  };
}
