/**
 * gRPC transport helpers shared by the server and the agent: the server on a Unix socket
 * or TLS (`startGrpcServer`), client transports (`createUdsTransport`,
 * `createTlsTransport`), the caller's identity in handlers (`grpcPeer`) and the one
 * error → gRPC status table (`toConnectError`, `statusOf`). See docs/protocol.md.
 */
export {
  createTlsTransport,
  createUdsTransport,
  type GrpcClientOptions,
  type GrpcClientTransport,
  type TlsTransportOptions,
} from './grpc/client.js';
export {
  GRPC_ERROR_TABLE,
  type GrpcErrorRule,
  grpcCodeFor,
  INTERNAL_ERROR_MESSAGE,
  statusOf,
  toConnectError,
} from './grpc/errors.js';
export {
  type GrpcPeer,
  grpcPeer,
  kGrpcPeer,
  type TlsGrpcPeer,
  type UnixGrpcPeer,
} from './grpc/peer.js';
export type { RawGrpcCall, RawGrpcMethod, RawGrpcMethodKind } from './grpc/raw-route.js';
export {
  GRPC_SERVER_DEFAULTS,
  type GrpcServer,
  type GrpcServerAddress,
  type GrpcServerOptions,
  type GrpcServerStats,
  type GrpcServerTlsOptions,
  startGrpcServer,
  type TlsListenOptions,
  type UnixListenOptions,
} from './grpc/server.js';
export {
  MAX_UNIX_SOCKET_PATH_BYTES,
  parseUnixEndpoint,
  prepareSocketDir,
  removeStaleSocket,
} from './grpc/unix-socket.js';
