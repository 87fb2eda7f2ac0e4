/**
 * gRPC client transports (connect-node, gRPC protocol over HTTP/2) for a Unix socket or
 * TCP with TLS. Use with `createClient(Service, transport)` from @connectrpc/connect.
 *
 * Each transport owns one HTTP/2 connection (opened on first use, re-opened after a
 * failure); `close()` drops it and ends the transport.
 *
 * What the TLS transport trusts: `ca`, and by default Node's hostname check against
 * `serverName` / `host`. SPIFFE peers have no DNS name: pass `checkServerIdentity` to
 * check the server's SPIFFE ID instead (return an Error to refuse).
 */

import net from 'node:net';
import type { PeerCertificate } from 'node:tls';
import { Code, ConnectError, type Interceptor, type Transport } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { GRPC_SERVER_DEFAULTS } from './server.js';
import { parseUnixEndpoint } from './unix-socket.js';

/** Options shared by both transports. */
export interface GrpcClientOptions {
  /** Largest message sent or accepted, bytes (default 4 MiB, as gRPC). */
  readonly maxMessageBytes?: number;
  /** Deadline applied to calls that set none. */
  readonly defaultTimeoutMs?: number;
  readonly interceptors?: readonly Interceptor[];
  /** PING interval while streams are open (default 60 s); detects a vanished server. */
  readonly pingIntervalMs?: number;
  /** PING answer deadline (default 20 s). */
  readonly pingTimeoutMs?: number;
  /** Close the connection after this long without a call (default 15 min). */
  readonly idleConnectionTimeoutMs?: number;
}

/** A transport that can be closed. */
export interface GrpcClientTransport extends Transport {
  /** Closes the connection; calls in flight fail, later calls fail. */
  close(): void;
}

/** TLS client settings; PEM strings or buffers. */
export interface TlsTransportOptions extends GrpcClientOptions {
  readonly host: string;
  readonly port: number;
  /** Roots for the server certificate. */
  readonly ca: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Client certificate chain for mTLS (leaf first). */
  readonly cert?: string | Buffer | ReadonlyArray<string | Buffer>;
  readonly key?: string | Buffer;
  /** SNI and the name checked by default (defaults to host). */
  readonly serverName?: string;
  /** Replaces Node's hostname check; return an Error to refuse the server. */
  readonly checkServerIdentity?: (hostname: string, cert: PeerCertificate) => Error | undefined;
}

/**
 * Local failures to reach the server (TLS handshake refused, server identity rejected,
 * server certificate not verified — OpenSSL's codes such as `SELF_SIGNED_CERT_IN_CHAIN`,
 * `UNABLE_TO_VERIFY_LEAF_SIGNATURE`, `CERT_HAS_EXPIRED` — socket file missing or not
 * accessible) as `Unavailable`, as gRPC core reports them;
 * connect-node reports them as `Internal`, which retry logic cannot tell from a server bug.
 */
const TRANSPORT_FAILURE =
  /^(ERR_TLS_|ERR_SSL_|ERR_OSSL_|ENOENT$|EACCES$|EPIPE$|ENOTSOCK$|EHOSTUNREACH$|ENETUNREACH$|[A-Z_]*CERT[A-Z_]*$|UNABLE_TO_[A-Z_]+$)/;

function isTransportFailure(err: unknown): boolean {
  const seen = new Set<unknown>();
  let e = err;
  while (e instanceof Error && !seen.has(e)) {
    seen.add(e);
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && TRANSPORT_FAILURE.test(code)) return true;
    e = e.cause;
  }
  return false;
}

function normalize(err: unknown): unknown {
  if (err instanceof ConnectError && err.code === Code.Internal && isTransportFailure(err.cause)) {
    return new ConnectError(err.rawMessage, Code.Unavailable, err.metadata, undefined, err.cause);
  }
  return err;
}

const transportErrors: Interceptor = (next) => async (req) => {
  let res: Awaited<ReturnType<typeof next>>;
  try {
    res = await next(req);
  } catch (err) {
    throw normalize(err);
  }
  if (!res.stream) return res;
  const source = res.message;
  async function* mapped() {
    try {
      yield* source;
    } catch (err) {
      throw normalize(err);
    }
  }
  return { ...res, message: mapped() };
};

function build(
  baseUrl: string,
  options: GrpcClientOptions,
  nodeOptions: Parameters<typeof createGrpcTransport>[0]['nodeOptions'],
): GrpcClientTransport {
  const max = options.maxMessageBytes ?? GRPC_SERVER_DEFAULTS.maxMessageBytes;
  const sessionManager = new Http2SessionManager(
    baseUrl,
    {
      pingIntervalMs: options.pingIntervalMs ?? GRPC_SERVER_DEFAULTS.keepaliveIntervalMs,
      pingTimeoutMs: options.pingTimeoutMs ?? GRPC_SERVER_DEFAULTS.keepaliveTimeoutMs,
      ...(options.idleConnectionTimeoutMs === undefined
        ? {}
        : { idleConnectionTimeoutMs: options.idleConnectionTimeoutMs }),
    },
    nodeOptions,
  );
  const transport = createGrpcTransport({
    baseUrl,
    sessionManager,
    readMaxBytes: max,
    writeMaxBytes: max,
    interceptors: [transportErrors, ...(options.interceptors ?? [])],
    ...(options.defaultTimeoutMs === undefined
      ? {}
      : { defaultTimeoutMs: options.defaultTimeoutMs }),
  });
  return Object.assign(transport, { close: () => sessionManager.abort() });
}

/**
 * A transport to a gRPC server on a Unix socket, given as an absolute path or a
 * `unix:///path` URI (the `SPIFFE_ENDPOINT_SOCKET` form).
 * Errors: `ERR_GRPC_SOCKET_PATH_INVALID` for a bad path or URI.
 */
export function createUdsTransport(
  socket: string,
  options: GrpcClientOptions = {},
): GrpcClientTransport {
  const path = parseUnixEndpoint(socket);
  // The authority is not used for routing; `localhost` is what gRPC clients send.
  return build('http://localhost', options, { createConnection: () => net.connect(path) });
}

/** A transport to a gRPC server over TLS on TCP (mTLS when `cert` and `key` are given). */
export function createTlsTransport(options: TlsTransportOptions): GrpcClientTransport {
  if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
    throw new TypeError('createTlsTransport: port must be an integer in 1..65535');
  }
  const host = net.isIPv6(options.host) ? `[${options.host}]` : options.host;
  const serverName = options.serverName;
  const check = options.checkServerIdentity;
  return build(`https://${host}:${options.port}`, options, {
    ca: options.ca as string | Buffer | Array<string | Buffer>,
    ...(options.cert === undefined
      ? {}
      : { cert: options.cert as string | Buffer | Array<string | Buffer> }),
    ...(options.key === undefined ? {} : { key: options.key }),
    // Node refuses an IP address as SNI: send SNI only for names.
    ...(serverName !== undefined && net.isIP(serverName) === 0 ? { servername: serverName } : {}),
    ...(check === undefined
      ? {}
      : {
          checkServerIdentity: (hostname: string, cert: PeerCertificate) => {
            const refused = check(hostname, cert);
            return refused === undefined
              ? undefined
              : Object.assign(new Error(refused.message, { cause: refused }), {
                  code: 'ERR_TLS_SERVER_IDENTITY_REJECTED',
                });
          },
        }),
    minVersion: 'TLSv1.2',
  });
}
