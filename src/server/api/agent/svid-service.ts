/**
 * `spire.api.server.svid.v1.SVID`, the methods agents call (SPIRE's
 * `pkg/server/api/svid/v1/service.go`):
 *
 * - **BatchNewX509SVID**: for each `{entry_id, csr}`, the entry must be authorized for the
 *   calling agent (authorized-entries cache); the CSR is parsed and its signature checked;
 *   the SVID gets the entry's SPIFFE ID, DNS names and `x509_svid_ttl` (or the server
 *   default). Each param gets its own status: missing entry ID or CSR and malformed or
 *   wrongly signed CSRs InvalidArgument, an entry that does not exist or is not
 *   authorized NotFound ("entry not found or not authorized", as SPIRE), signing failures
 *   Internal. An empty batch is InvalidArgument; the batch spends one signing token per
 *   param. The agent server serves it on the gRPC fast path
 *   ({@link createBatchNewX509SvidRawRoute}), connect's router taking what the fast path
 *   does not (another codec, compressed requests).
 * - **NewJWTSVID**: a JWT-SVID for an authorized entry, with the entry's `jwt_svid_ttl`;
 *   at least one audience.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import { SpireEdgeError } from '../../../common/errors.js';
import type { RawGrpcMethod } from '../../../common/grpc/raw-route.js';
import { statusOf } from '../../../common/grpc.js';
import { svidv1, types } from '../../../protocol/index.js';
import { parseJwtSvidInsecure } from '../../../spiffe/jwt-svid.js';
import { type AgentAuthenticator, type AgentCaller, agentCaller } from './caller.js';
import { spiffeIdToProto, x509SvidToProto } from './convert.js';
import type { AgentApiDeps } from './deps.js';

const OK = (): types.Status => create(types.StatusSchema, { code: 0, message: 'OK' });

/** `/spire.api.server.svid.v1.SVID/BatchNewX509SVID`, the path of the fast-path route. */
export const BATCH_NEW_X509_SVID_PATH = `/${svidv1.SVID.typeName}/${svidv1.SVID.method.batchNewX509SVID.name}`;

function invalidArgument(message: string): SpireEdgeError {
  return new SpireEdgeError('ERR_AGENT_API_INVALID_ARGUMENT', message);
}

function notAuthorized(): SpireEdgeError {
  return new SpireEdgeError('ERR_AGENT_API_NOT_FOUND', 'entry not found or not authorized');
}

/** BatchNewX509SVID for an authenticated agent: the connect handler's and the fast path's. */
type BatchNewX509Svid = (
  req: svidv1.BatchNewX509SVIDRequest,
  caller: AgentCaller,
  signal: AbortSignal,
) => Promise<svidv1.BatchNewX509SVIDResponse>;

function batchNewX509Svid(deps: AgentApiDeps): BatchNewX509Svid {
  const { context } = deps;
  return async (req, caller, signal) => {
    if (req.params.length === 0) throw invalidArgument('missing parameters');
    await deps.limiters.sign?.take(caller.id, req.params.length, signal);
    const wanted = new Set<string>();
    for (const p of req.params) if (p.entryId !== '') wanted.add(p.entryId);
    const entries = deps.entries.lookupAuthorizedEntries(caller.id, wanted);
    let issued = 0;
    const results = await Promise.all(
      req.params.map(async (p) => {
        try {
          if (p.entryId === '') throw invalidArgument('missing entry ID');
          if (p.csr.length === 0) throw invalidArgument('missing CSR');
          const entry = entries.get(p.entryId);
          if (entry === undefined) throw notAuthorized();
          const signed = await context.ca.signX509SvidFromCsr(p.csr, {
            spiffeId: entry.spiffeId,
            ttlSeconds: entry.x509SvidTtl,
            dnsNames: entry.dnsNames,
          });
          issued++;
          return create(svidv1.BatchNewX509SVIDResponse_ResultSchema, {
            status: OK(),
            svid: x509SvidToProto(entry.spiffeId, signed.certChain, signed.expiresAt),
          });
        } catch (err) {
          return create(svidv1.BatchNewX509SVIDResponse_ResultSchema, {
            status: create(types.StatusSchema, statusOf(err)),
          });
        }
      }),
    );
    if (issued > 0) context.metrics.svidIssued('x509', 'agent', issued);
    return create(svidv1.BatchNewX509SVIDResponseSchema, { results });
  };
}

/**
 * BatchNewX509SVID on the gRPC fast path (src/common/grpc/raw-route.ts, the server's
 * `rawRoutes` under {@link BATCH_NEW_X509_SVID_PATH}): the same authentication as the agent
 * server's interceptor (`authenticator`), the same handler and errors as the connect route,
 * without connect's per-call stream pipeline (~0.7 ms of CPU per call, a large share of a
 * 50-CSR batch's API cost). Requests the fast path does not take stay on connect.
 */
export function createBatchNewX509SvidRawRoute(
  deps: AgentApiDeps,
  authenticator: AgentAuthenticator,
): RawGrpcMethod<svidv1.BatchNewX509SVIDRequest> {
  const batch = batchNewX509Svid(deps);
  const schema = svidv1.BatchNewX509SVIDRequestSchema;
  return {
    kind: 'unary',
    parse(bytes) {
      try {
        return fromBinary(schema, bytes);
      } catch (e) {
        // connect's answer to a request it cannot decode
        throw new ConnectError(
          `parse binary: ${e instanceof Error ? e.message : String(e)}`,
          Code.Internal,
        );
      }
    },
    async handle(call, req) {
      const caller = await authenticator.authenticate(call.peer);
      const res = await batch(req, caller, call.signal);
      await call.send(toBinary(svidv1.BatchNewX509SVIDResponseSchema, res));
    },
  };
}

/** The agent-facing methods of the SVID service. */
export function createSvidService(deps: AgentApiDeps): Partial<ServiceImpl<typeof svidv1.SVID>> {
  const { context } = deps;
  const batch = batchNewX509Svid(deps);
  return {
    batchNewX509SVID(req, ctx) {
      return batch(req, agentCaller(ctx), ctx.signal);
    },

    async newJWTSVID(req, ctx) {
      const caller = agentCaller(ctx);
      await deps.limiters.sign?.take(caller.id, 1, ctx.signal);
      const entry =
        req.entryId === ''
          ? undefined
          : deps.entries
              .lookupAuthorizedEntries(caller.id, new Set([req.entryId]))
              .get(req.entryId);
      if (entry === undefined) throw notAuthorized();
      if (req.audience.length === 0) throw invalidArgument('at least one audience is required');
      const signed = await context.ca.signJwtSvid({
        spiffeId: entry.spiffeId,
        audience: req.audience,
        ttlSeconds: entry.jwtSvidTtl,
      });
      const issuedAt = parseJwtSvidInsecure(signed.token).issuedAt;
      context.metrics.svidIssued('jwt', 'agent');
      return {
        svid: {
          token: signed.token,
          id: spiffeIdToProto(entry.spiffeId),
          expiresAt: BigInt(Math.floor(signed.expiresAt.getTime() / 1000)),
          issuedAt: BigInt(Math.floor((issuedAt?.getTime() ?? context.clock.nowMs()) / 1000)),
        },
      };
    },
  };
}
