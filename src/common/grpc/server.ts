/**
 * A gRPC server over Node's http2 (connect-node, gRPC protocol only; no Connect or
 * gRPC-web), on a Unix socket or on TCP with TLS, with the caller's identity in every
 * handler context and transport limits that a misbehaving client cannot exhaust.
 *
 * What every handler gets: `grpcPeer(ctx)` (SO_PEERCRED and optionally a pidfd on Unix
 * sockets; the client certificate over TLS), errors mapped through the one table in
 * {@link toConnectError}, `ctx.signal` aborted when the client goes away or the server
 * shuts down (long streams must end on it).
 *
 * Limits (defaults in {@link GRPC_SERVER_DEFAULTS}): message size in both directions,
 * concurrent streams per connection, connections, idle connections (no open stream) are
 * closed, HTTP/2 PING keepalive destroys connections whose peer vanished without a FIN
 * (on Unix sockets the kernel reports the close at once). Closing a connection aborts
 * every handler running on it, so a client that opens many streams and disappears leaves
 * nothing behind.
 *
 * Timers here are network timers on the real clock (not the injected service clock).
 */
import type { X509Certificate } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { chmodSync } from 'node:fs';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  createContextValues,
  type Interceptor,
} from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { loadNativeAddon, type NativeAddon, type PeerCredentials } from '../../native/addon.js';
import { SpireEdgeError } from '../errors.js';
import { toConnectError } from './errors.js';
import { type GrpcPeer, kGrpcPeer } from './peer.js';
import { type RawGrpcMethod, rawEligible, serveRawGrpcCall } from './raw-route.js';
import {
  prepareSocketDir,
  removeStaleSocket,
  socketInode,
  unlinkOwnSocket,
} from './unix-socket.js';

/** Serve on a Unix socket (plain HTTP/2; access control is the socket's file mode). */
export interface UnixListenOptions {
  /** Absolute path; a stale socket file is replaced, a live one is refused. */
  readonly socketPath: string;
  /** File mode of the socket (for example 0o777 for the public Workload API socket). */
  readonly mode?: number;
  /** Mode of the socket's directory, created if missing (0o700 for admin sockets). */
  readonly dirMode?: number;
  /** Read SO_PEERCRED of every connection (needs the native addon). */
  readonly peerCredentials?: boolean;
  /** Also open a pidfd for the peer's pid at accept time (implies peerCredentials). */
  readonly pidfd?: boolean;
}

/** TLS material; PEM strings or buffers, as Node's tls accepts them. */
export interface GrpcServerTlsOptions {
  readonly cert: string | Buffer | ReadonlyArray<string | Buffer>;
  readonly key: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Roots for client certificates; also sent as the acceptable CA list. */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Ask clients for a certificate (mTLS). */
  readonly requestCert?: boolean;
  /**
   * With requestCert: refuse handshakes without a certificate that chains to `ca`.
   * Default false, so that unauthenticated calls (node attestation) reach handlers,
   * which then check `peer.authorized`.
   */
  readonly rejectUnauthorized?: boolean;
}

/** Serve on TCP with TLS (HTTP/2 negotiated by ALPN `h2`). */
export interface TlsListenOptions {
  readonly host: string;
  /** 0 picks an ephemeral port; read the result from `server.address`. */
  readonly port: number;
  readonly tls: GrpcServerTlsOptions;
}

/** Transport limits of a server; defaults in {@link GRPC_SERVER_DEFAULTS}. */
export interface GrpcServerLimits {
  /** Largest message accepted or sent, bytes. */
  readonly maxMessageBytes?: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection. */
  readonly maxConcurrentStreams?: number;
  /** Connections accepted at once; further ones are dropped. */
  readonly maxConnections?: number;
  /** A connection without an open stream for this long is closed; 0 disables. */
  readonly idleTimeoutMs?: number;
  /** PING interval per connection; 0 disables. */
  readonly keepaliveIntervalMs?: number;
  /** A PING unanswered for this long destroys the connection. */
  readonly keepaliveTimeoutMs?: number;
  /** Largest deadline a client may ask for. */
  readonly maxTimeoutMs?: number;
  /** How long close() lets running calls finish before destroying connections. */
  readonly shutdownGraceMs?: number;
}

export interface GrpcServerOptions extends GrpcServerLimits {
  /** Registers the services (`router.service(Service, impl)`). */
  readonly routes: (router: ConnectRouter) => void;
  readonly listen: UnixListenOptions | TlsListenOptions;
  /** Extra per-request context values; the peer is added under `kGrpcPeer`. */
  readonly contextValues?: (peer: GrpcPeer | undefined) => ContextValues;
  /** Interceptors run inside the error mapping (their errors are mapped too). */
  readonly interceptors?: readonly Interceptor[];
  /** Sees every error a handler threw, before it is mapped and redacted (for logging). */
  readonly onError?: (err: unknown, procedure: string) => void;
  /**
   * Whether responses may be compressed (requests compressed by the client are always
   * accepted, gzip or brotli). Default `'none'`: the messages these servers send are
   * certificates, keys and signatures for callers on the same host or LAN, and compressing
   * them costs the server's event loop CPU that signing needs, while brotli (which a
   * client may ask for first) at Node's default quality costs more than the signing itself
   * (see docs/performance.md, "Server"). `'gzip'` compresses responses of 1 KiB and more
   * with gzip when the client accepts it (never brotli), for callers on slow links.
   */
  readonly responseCompression?: 'none' | 'gzip';
  /**
   * Methods served on the fast path (raw-route.ts) instead of connect, by path
   * (`/Service/Method`). Requests the fast path does not handle (another codec, compressed
   * requests, not POST) and every other path still reach `routes`. The same limits, peer,
   * context values, error mapping and `onError` apply; responses are never compressed.
   */
  readonly rawRoutes?: ReadonlyMap<string, RawGrpcMethod>;
  /**
   * Loads what `routes` needs (modules, descriptors), once. With it, connect's router is built
   * on the first request that reaches connect instead of at start, so a server whose hot
   * methods are `rawRoutes` does not load the rest until it is asked for (the agent's Envoy
   * SDS service). A rejection answers that request HTTP 503 (gRPC clients read Unavailable)
   * and the next request tries again.
   */
  readonly prepareRoutes?: () => Promise<void>;
}

/** Defaults of {@link GrpcServerOptions}. */
export const GRPC_SERVER_DEFAULTS: Readonly<Required<GrpcServerLimits>> = Object.freeze({
  maxMessageBytes: 4 * 1024 * 1024,
  maxConcurrentStreams: 100,
  maxConnections: 1024,
  idleTimeoutMs: 5 * 60_000,
  keepaliveIntervalMs: 60_000,
  keepaliveTimeoutMs: 20_000,
  maxTimeoutMs: 0,
  shutdownGraceMs: 5_000,
});

/** Where a server listens. */
export type GrpcServerAddress =
  | { readonly socketPath: string }
  | { readonly host: string; readonly port: number };

/** Counters of open connections and streams. */
export interface GrpcServerStats {
  readonly connections: number;
  readonly streams: number;
}

/** A running server. */
export interface GrpcServer {
  readonly address: GrpcServerAddress;
  /**
   * Stops accepting, aborts every handler's signal with `Unavailable`, lets calls finish
   * for `shutdownGraceMs`, destroys what is left, removes the Unix socket file.
   * Idempotent.
   */
  close(): Promise<void>;
  stats(): GrpcServerStats;
  /** Replaces certificate, key and roots for new TLS connections (rotation). */
  updateTls(tls: GrpcServerTlsOptions): void;
}

interface SessionState {
  peer: GrpcPeer | undefined;
  streams: number;
  idleTimer: NodeJS.Timeout | undefined;
  pingTimer: NodeJS.Timeout | undefined;
}

const ACCEPT_ENCODING = 'grpc-accept-encoding';
const REQUEST_ENCODING = 'grpc-encoding';

/** True when a grpc-accept-encoding value (a comma-separated list) names gzip. */
function acceptsGzip(value: string | string[]): boolean {
  const list = Array.isArray(value) ? value.join(',') : value;
  return list.split(',').some((e) => e.trim().toLowerCase() === 'gzip');
}

function isUnix(listen: UnixListenOptions | TlsListenOptions): listen is UnixListenOptions {
  return 'socketPath' in listen;
}

/** Options where 0 means "off". */
const ZERO_DISABLES = new Set([
  'idleTimeoutMs',
  'keepaliveIntervalMs',
  'maxTimeoutMs',
  'shutdownGraceMs',
]);

function checkLimit(name: string, value: number): number {
  const min = ZERO_DISABLES.has(name) ? 0 : 1;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new TypeError(`${name} must be an integer >= ${min}`);
  }
  return value;
}

function tlsContextOptions(tls: GrpcServerTlsOptions) {
  return {
    cert: tls.cert as string | Buffer | Array<string | Buffer>,
    key: tls.key as string | Buffer | Array<string | Buffer>,
    ...(tls.ca === undefined ? {} : { ca: tls.ca as string | Buffer | Array<string | Buffer> }),
  };
}

/**
 * Error mapping as the outermost interceptor: unary results and stream items alike. A
 * response stream that ends while the server shuts down ends with the shutdown's
 * `Unavailable`, not OK, so clients know to reconnect.
 */
function errorMapper(
  onError: GrpcServerOptions['onError'],
  shutdown: AbortSignal,
): (err: unknown, procedure: string) => ConnectError {
  return (err, procedure) => {
    if (err instanceof ConnectError) return err;
    // An abort error raised because the server is going down is the shutdown, not a bug.
    if (shutdown.aborted && !(err instanceof SpireEdgeError))
      return toConnectError(shutdown.reason);
    if (onError !== undefined) {
      try {
        onError(err, procedure);
      } catch {
        // a failing logger must not change the answer
      }
    }
    return toConnectError(err);
  };
}

function errorMapping(onError: GrpcServerOptions['onError'], shutdown: AbortSignal): Interceptor {
  const map = errorMapper(onError, shutdown);
  return (next) => async (req) => {
    const procedure = `/${req.service.typeName}/${req.method.name}`;
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      throw map(err, procedure);
    }
    if (!res.stream) return res;
    const source = res.message;
    async function* mapped() {
      try {
        yield* source;
      } catch (err) {
        throw map(err, procedure);
      }
      if (shutdown.aborted) throw toConnectError(shutdown.reason);
    }
    return { ...res, message: mapped() };
  };
}

function unixPeer(
  socket: Socket,
  addon: NativeAddon | undefined,
  wantPidfd: boolean,
): GrpcPeer | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  let cred: PeerCredentials | undefined;
  let pidfd: number | undefined;
  if (addon !== undefined) {
    cred = addon.peerCred(fd);
    if (wantPidfd) {
      try {
        pidfd = addon.pidfdOpen(cred.pid);
      } catch {
        // the connecting process has already exited: leave pidfd unset, callers that
        // asked for one must refuse to attribute the call
        pidfd = undefined;
      }
    }
  }
  return { kind: 'unix', socket, fd, cred, pidfd };
}

function tlsPeer(socket: TLSSocket): GrpcPeer {
  let certificate: X509Certificate | undefined;
  const chain: Buffer[] = [];
  try {
    certificate = socket.getPeerX509Certificate();
    let c = socket.getPeerCertificate(true) as
      | (ReturnType<TLSSocket['getPeerCertificate']> & { issuerCertificate?: unknown })
      | undefined;
    const seen = new Set<unknown>();
    while (c !== undefined && c !== null && c.raw !== undefined && !seen.has(c)) {
      seen.add(c);
      chain.push(c.raw);
      c = c.issuerCertificate as typeof c;
    }
  } catch {
    certificate = undefined;
  }
  const authError = socket.authorizationError as unknown;
  return {
    kind: 'tls',
    socket,
    remoteAddress: socket.remoteAddress,
    remotePort: socket.remotePort,
    authorized: socket.authorized === true,
    authorizationError:
      authError === null || authError === undefined
        ? undefined
        : authError instanceof Error
          ? authError.message
          : String(authError),
    certificate,
    certificateChain: chain,
  };
}

/**
 * Starts a gRPC server and resolves once it listens.
 *
 * Errors: `ERR_GRPC_SOCKET_*` from the Unix socket preparation, `ERR_NATIVE_UNAVAILABLE`
 * when peer credentials are asked for without the addon, `ERR_GRPC_LISTEN_FAILED` when the
 * address cannot be bound. Bad options throw TypeError.
 */
export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const o: { -readonly [K in keyof GrpcServerLimits]-?: number } = { ...GRPC_SERVER_DEFAULTS };
  for (const key of Object.keys(GRPC_SERVER_DEFAULTS) as Array<keyof GrpcServerLimits>) {
    const v = options[key];
    if (v !== undefined) o[key] = checkLimit(key, v);
  }
  const listen = options.listen;
  const unix = isUnix(listen);
  const wantPidfd = unix && listen.pidfd === true;
  const addon =
    unix && (listen.peerCredentials === true || wantPidfd) ? loadNativeAddon() : undefined;

  const shutdown = new AbortController();
  // Every call on connect's path listens on this signal (connect links it into ctx.signal and
  // unlinks when the call ends): thousands of open streams are normal.
  setMaxListeners(0, shutdown.signal);
  const sessions = new Map<http2.Http2Session, SessionState>();
  // The fast path's calls in flight (raw-route.ts), aborted with the server's shutdown through
  // this one listener. Not a listener per call: adding one to an EventTarget walks the ones it
  // holds, so each new call paid ~0.1 ms per 1,000 streams already open (docs/performance.md).
  const rawInFlight = new Set<() => void>();
  shutdown.signal.addEventListener(
    'abort',
    () => {
      for (const abort of [...rawInFlight]) abort();
    },
    { once: true },
  );

  const buildHandler = () =>
    connectNodeAdapter({
      routes: options.routes,
      grpc: true,
      grpcWeb: false,
      connect: false,
      readMaxBytes: o.maxMessageBytes,
      writeMaxBytes: o.maxMessageBytes,
      ...(o.maxTimeoutMs > 0 ? { maxTimeoutMs: o.maxTimeoutMs } : {}),
      shutdownSignal: shutdown.signal,
      interceptors: [
        errorMapping(options.onError, shutdown.signal),
        ...(options.interceptors ?? []),
      ],
      contextValues: (req) => {
        const session = (req as http2.Http2ServerRequest).stream?.session;
        const peer = session === undefined ? undefined : sessions.get(session)?.peer;
        const values = options.contextValues?.(peer) ?? createContextValues();
        return values.set(kGrpcPeer, peer);
      },
    });
  let handler = options.prepareRoutes === undefined ? buildHandler() : undefined;
  let preparing: Promise<void> | undefined;
  const prepared = (): Promise<void> => {
    preparing ??= options.prepareRoutes!().then(
      () => {
        handler ??= buildHandler();
      },
      (err: unknown) => {
        preparing = undefined;
        throw err;
      },
    );
    return preparing;
  };
  const rawRoutes = options.rawRoutes;
  const mapError = errorMapper(options.onError, shutdown.signal);

  const responseCompression = options.responseCompression ?? 'none';
  if (responseCompression !== 'none' && responseCompression !== 'gzip') {
    throw new TypeError("responseCompression must be 'none' or 'gzip'");
  }
  /**
   * Every stream: a fast-path method on the HTTP/2 stream itself; anything else through
   * Node's compatibility request and response, made here as `http2.createServer(options,
   * listener)` would make them (with its answers to `CONNECT`, 405, and to an `expect` other
   * than `100-continue`, 417), for connect. The fast path skips those two objects: ~0.1 ms of
   * CPU per call (docs/performance.md, "Agent").
   */
  const onStream = (
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    _flags: number,
    rawHeaders: string[],
  ): void => {
    const raw = rawRoutes?.get(headers[':path'] ?? '');
    if (raw !== undefined && rawEligible(headers)) {
      const session = stream.session;
      const peer = session === undefined ? undefined : sessions.get(session)?.peer;
      const values = (options.contextValues?.(peer) ?? createContextValues()).set(kGrpcPeer, peer);
      serveRawGrpcCall(stream, headers, raw, {
        peer,
        values,
        maxMessageBytes: o.maxMessageBytes,
        maxTimeoutMs: o.maxTimeoutMs,
        shutdown: shutdown.signal,
        inFlight: rawInFlight,
        mapError,
      });
      return;
    }
    const req = new http2.Http2ServerRequest(stream, headers, {}, rawHeaders);
    const res = new http2.Http2ServerResponse(stream);
    if (headers[':method'] === 'CONNECT') {
      res.statusCode = 405;
      res.end();
      return;
    }
    const expect = headers.expect;
    if (expect !== undefined) {
      if (expect !== '100-continue') {
        res.statusCode = 417;
        res.end();
        return;
      }
      res.writeContinue();
    }
    serve(req, res);
  };

  const serve = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void => {
    // connect-node compresses a response with the first algorithm of the client's
    // grpc-accept-encoding it supports, or, without that header, as the request was
    // compressed: rewriting the header decides. `identity` (no algorithm it has) means
    // uncompressed; requests are still decompressed as their grpc-encoding says.
    const h = req.headers;
    const accepted = h[ACCEPT_ENCODING] ?? h[REQUEST_ENCODING];
    h[ACCEPT_ENCODING] =
      responseCompression === 'gzip' && accepted !== undefined && acceptsGzip(accepted)
        ? 'gzip'
        : 'identity';
    if (handler !== undefined) {
      handler(req, res);
      return;
    }
    prepared().then(
      () => handler!(req, res),
      () => {
        if (!res.headersSent && !res.stream.destroyed) res.writeHead(503).end();
      },
    );
  };

  const h2options: http2.ServerOptions = {
    settings: { maxConcurrentStreams: o.maxConcurrentStreams },
  };
  const server: http2.Http2Server | http2.Http2SecureServer = unix
    ? http2.createServer(h2options)
    : http2.createSecureServer({
        ...h2options,
        ...tlsContextOptions(listen.tls),
        requestCert: listen.tls.requestCert === true,
        rejectUnauthorized: listen.tls.rejectUnauthorized === true,
        minVersion: 'TLSv1.2',
        allowHTTP1: false,
      });
  server.on('stream', onStream);
  server.maxConnections = o.maxConnections;

  const armIdle = (session: http2.Http2Session, state: SessionState) => {
    if (o.idleTimeoutMs === 0) return;
    clearTimeout(state.idleTimer);
    state.idleTimer = setTimeout(() => {
      if (state.streams === 0 && !session.closed && !session.destroyed) session.close();
    }, o.idleTimeoutMs).unref();
  };

  const ping = (session: http2.Http2Session) => {
    if (session.closed || session.destroyed) return;
    const deadline = setTimeout(() => session.destroy(), o.keepaliveTimeoutMs).unref();
    try {
      const sent = session.ping((err) => {
        clearTimeout(deadline);
        if (err !== null && !session.destroyed) session.destroy();
      });
      if (!sent) clearTimeout(deadline);
    } catch {
      // too many unanswered pings: the deadline decides
    }
  };

  server.on('session', (session: http2.Http2Session) => {
    const state: SessionState = {
      peer: undefined,
      streams: 0,
      idleTimer: undefined,
      pingTimer: undefined,
    };
    sessions.set(session, state);
    // Errors of one connection (resets, protocol errors) end that connection only.
    session.on('error', () => {});
    session.once('close', () => {
      clearTimeout(state.idleTimer);
      clearInterval(state.pingTimer);
      sessions.delete(session);
      const peer = state.peer;
      if (peer?.kind === 'unix' && peer.pidfd !== undefined && addon !== undefined) {
        try {
          addon.closeFd(peer.pidfd);
        } catch {
          // already closed
        }
      }
    });
    try {
      state.peer = unix
        ? unixPeer(session.socket as Socket, addon, wantPidfd)
        : tlsPeer(session.socket as TLSSocket);
    } catch {
      // SO_PEERCRED failed: a call that cannot be attributed is not served
      session.destroy();
      return;
    }
    session.on('stream', (stream: http2.ServerHttp2Stream) => {
      state.streams++;
      clearTimeout(state.idleTimer);
      stream.once('close', () => {
        state.streams--;
        if (state.streams === 0) armIdle(session, state);
      });
    });
    armIdle(session, state);
    if (o.keepaliveIntervalMs > 0) {
      state.pingTimer = setInterval(() => ping(session), o.keepaliveIntervalMs).unref();
    }
  });

  let address: GrpcServerAddress;
  let inode: bigint | undefined;
  if (unix) {
    prepareSocketDir(listen.socketPath, listen.dirMode);
    await removeStaleSocket(listen.socketPath);
    await listenOn(server, () => server.listen(listen.socketPath), listen.socketPath);
    inode = socketInode(listen.socketPath);
    if (listen.mode !== undefined) chmodSync(listen.socketPath, listen.mode);
    address = { socketPath: listen.socketPath };
  } else {
    await listenOn(
      server,
      () => server.listen(listen.port, listen.host),
      `${listen.host}:${listen.port}`,
    );
    const a = server.address();
    const port = typeof a === 'object' && a !== null ? a.port : listen.port;
    address = { host: listen.host, port };
  }

  let closing: Promise<void> | undefined;
  return {
    address,
    stats() {
      let streams = 0;
      for (const s of sessions.values()) streams += s.streams;
      return { connections: sessions.size, streams };
    },
    updateTls(tls: GrpcServerTlsOptions) {
      if (unix) throw new TypeError('updateTls: this server listens on a Unix socket');
      (server as http2.Http2SecureServer).setSecureContext(tlsContextOptions(tls));
    },
    close() {
      closing ??= (async () => {
        shutdown.abort(new ConnectError('server is shutting down', Code.Unavailable));
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const s of sessions.keys()) {
          if (!s.closed) s.close();
        }
        const force = setTimeout(() => {
          for (const s of sessions.keys()) s.destroy();
        }, o.shutdownGraceMs).unref();
        await closed;
        clearTimeout(force);
        if (unix) unlinkOwnSocket(listen.socketPath, inode);
      })();
      return closing;
    },
  };
}

function listenOn(
  server: http2.Http2Server | http2.Http2SecureServer,
  start: () => void,
  where: string,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(
        new SpireEdgeError(
          'ERR_GRPC_LISTEN_FAILED',
          `could not listen on ${where}: ${err.message}`,
          {
            cause: err,
          },
        ),
      );
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    start();
  });
}
