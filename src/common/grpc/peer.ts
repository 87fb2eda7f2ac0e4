/**
 * Who is on the other end of a gRPC call, as the transport saw it. {@link startGrpcServer}
 * puts a {@link GrpcPeer} into every handler context under {@link kGrpcPeer}; handlers read
 * it with {@link grpcPeer}.
 *
 * What it trusts: the kernel (SO_PEERCRED on Unix sockets) and Node's TLS stack (the
 * certificate chain the client proved possession of). What the caller must still check:
 * a Unix peer's pid can be reused once the process exits (use `pidfd`, opened at accept
 * time, to tell); a TLS client certificate is only chain-verified against the configured
 * `ca` when `authorized` is true — SPIFFE ID and bundle checks are the caller's.
 */
import type { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import { Code, ConnectError, createContextKey, type HandlerContext } from '@connectrpc/connect';
import type { PeerCredentials } from '../../native/addon.js';

/** A caller on a Unix socket. */
export interface UnixGrpcPeer {
  readonly kind: 'unix';
  /** The accepted socket (through Node's http2 proxy: read-only use). */
  readonly socket: Socket;
  /** Its file descriptor, for native calls. */
  readonly fd: number;
  /** SO_PEERCRED, read when the connection was accepted; set when the server asked for it. */
  readonly cred: PeerCredentials | undefined;
  /**
   * A pidfd for `cred.pid`, opened when the connection was accepted and closed by the
   * server when the connection closes; set when the server asked for it.
   */
  readonly pidfd: number | undefined;
}

/** A caller over TLS on TCP. */
export interface TlsGrpcPeer {
  readonly kind: 'tls';
  readonly socket: Socket;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  /** Whether Node verified the client certificate chain against the server's `ca`. */
  readonly authorized: boolean;
  /** Node's reason when a presented certificate was not verified. */
  readonly authorizationError: string | undefined;
  /** The client's leaf certificate, when it sent one (verified or not: see `authorized`). */
  readonly certificate: X509Certificate | undefined;
  /** The chain the client sent, DER, leaf first (empty when it sent none). */
  readonly certificateChain: readonly Buffer[];
}

/** The caller of a gRPC request. */
export type GrpcPeer = UnixGrpcPeer | TlsGrpcPeer;

/** Context key under which {@link startGrpcServer} stores the caller. */
export const kGrpcPeer = createContextKey<GrpcPeer | undefined>(undefined, {
  description: 'spire-edge grpc peer',
});

/**
 * The caller of the current request (a connect handler's context, or anything carrying its
 * `values`, such as a fast-path call). Throws a ConnectError `Unavailable` when the
 * connection is gone before the handler asked (the request cannot be attributed).
 */
export function grpcPeer(ctx: Pick<HandlerContext, 'values'>): GrpcPeer {
  const peer = ctx.values.get(kGrpcPeer);
  if (peer === undefined) {
    throw new ConnectError('caller connection is no longer available', Code.Unavailable);
  }
  return peer;
}
