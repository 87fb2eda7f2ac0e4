/**
 * The five `SpiffeWorkloadAPI` methods on the gRPC fast path (src/common/grpc/raw-route.ts):
 * `FetchX509SVID`, `FetchX509Bundles`, `FetchJWTBundles` (server streams) and `FetchJWTSVID`,
 * `ValidateJWTSVID` (unary), served by the same {@link WorkloadApiService} as the connect
 * handlers, with the generated message types for decoding and encoding. What the fast path
 * does not take (another codec, compressed requests, `FetchWITSVID`/`FetchWITBundles`, SDS,
 * unknown methods) stays on connect's router on the same socket.
 *
 * Why: connect's generic stream pipeline cost ~0.7 ms of agent CPU per call, the largest part
 * of a Workload API call (docs/performance.md, "Agent"). Behaviour is the same on both paths;
 * test/integration/workload-api-fast-path.test.ts compares their answers byte for byte.
 */
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import type { RawGrpcCall, RawGrpcMethod } from '../../common/grpc/raw-route.js';
import * as workload from '../../protocol/gen/spiffe/workload/workload_pb.js';
import type { WorkloadCallContext } from './caller.js';
import type { OpenedStream, WorkloadApiService } from './handlers.js';

/** connect's binary parse, with its error ("parse binary: …", Internal). */
function parser<D extends DescMessage>(schema: D): (bytes: Uint8Array) => MessageShape<D> {
  return (bytes) => {
    try {
      return fromBinary(schema, bytes);
    } catch (e) {
      const m = e instanceof Error ? e.message : String(e);
      throw new ConnectError(`parse binary: ${m}`, Code.Internal);
    }
  };
}

/** A Headers-like view of the call's request headers, as connect gives handlers. */
function contextOf(call: RawGrpcCall): WorkloadCallContext {
  return {
    requestHeader: { get: (name) => call.header(name.toLowerCase()) },
    signal: call.signal,
    values: call.values,
  };
}

/** The fast-path routes, by path (`/SpiffeWorkloadAPI/<Method>`). */
export function createWorkloadApiRawRoutes(
  service: WorkloadApiService,
): ReadonlyMap<string, RawGrpcMethod> {
  const m = workload.SpiffeWorkloadAPI.method;
  const path = (name: string) => `/${workload.SpiffeWorkloadAPI.typeName}/${name}`;

  const stream = <I extends DescMessage, T>(
    input: I,
    open: (ctx: WorkloadCallContext) => Promise<OpenedStream<T>>,
  ): RawGrpcMethod<MessageShape<I>> => ({
    kind: 'server_streaming',
    parse: parser(input),
    async handle(call) {
      const opened = await open(contextOf(call));
      for await (const answer of service.answers(call.signal, opened)) {
        await call.send(answer.bytes);
      }
    },
  });

  const unary = <I extends DescMessage, O extends DescMessage>(
    input: I,
    output: O,
    answer: (req: MessageShape<I>, ctx: WorkloadCallContext) => Promise<MessageInitShape<O>>,
  ): RawGrpcMethod<MessageShape<I>> => ({
    kind: 'unary',
    parse: parser(input),
    async handle(call, req) {
      const out = await answer(req, contextOf(call));
      await call.send(toBinary(output, create(output, out)));
    },
  });

  return new Map<string, RawGrpcMethod>([
    [
      path(m.fetchX509SVID.name),
      stream(workload.X509SVIDRequestSchema, (ctx) => service.openX509SvidStream(ctx)),
    ],
    [
      path(m.fetchX509Bundles.name),
      stream(workload.X509BundlesRequestSchema, (ctx) => service.openX509BundlesStream(ctx)),
    ],
    [
      path(m.fetchJWTBundles.name),
      stream(workload.JWTBundlesRequestSchema, (ctx) => service.openJwtBundlesStream(ctx)),
    ],
    [
      path(m.fetchJWTSVID.name),
      unary(workload.JWTSVIDRequestSchema, workload.JWTSVIDResponseSchema, (req, ctx) =>
        service.fetchJwtSvid(req, ctx),
      ),
    ],
    [
      path(m.validateJWTSVID.name),
      unary(
        workload.ValidateJWTSVIDRequestSchema,
        workload.ValidateJWTSVIDResponseSchema,
        (req, ctx) => service.validateJwtSvid(req, ctx),
      ),
    ],
  ]);
}
