/**
 * gRPC methods served straight on `node:http2`, beside connect's router on the same server
 * ({@link GrpcServerOptions.rawRoutes}): for hot unary and server-streaming methods whose
 * per-call cost matters (the agent's Workload API). connect's generic pipeline (async
 * iterables, web `Headers`, linked abort signals, a `URL` per call) costs ~0.7 ms of CPU per
 * call on these machines; this path does the same protocol work directly (docs/performance.md,
 * "Agent").
 *
 * The wire behaviour is connect-node's, so clients cannot tell the paths apart: response
 * headers `:status 200`, `content-type: application/grpc+proto`; status in trailers
 * (`grpc-status`, `grpc-message` percent-encoded with `encodeURIComponent`), also when the call
 * fails before its first message; the same codes and messages for protocol errors (a message
 * over `maxMessageBytes` → ResourceExhausted as soon as its length prefix arrives, a truncated
 * envelope → InvalidArgument "protocol error: incomplete envelope", the compressed flag without
 * a negotiated encoding → Internal, no request message or more than one → Unimplemented, a
 * malformed `grpc-timeout` → InvalidArgument), the request read to its end before the handler
 * runs. One deliberate difference: a call whose `grpc-timeout` passes ends with
 * DEADLINE_EXCEEDED "the operation timed out" (connect ends a server stream with OK there).
 *
 * Only requests the fast path fully understands take it (`POST`, `content-type`
 * `application/grpc` or `application/grpc+proto`, no `grpc-encoding` or `identity`); anything
 * else on the same path (JSON codec, compressed requests, other HTTP methods) goes to connect,
 * which answers it as before. Responses are never compressed here.
 *
 * What a {@link RawGrpcMethod} gets: the request message decoded by its own `parse`, the call's
 * {@link RawGrpcCall} (request headers, the peer, an abort signal that fires when the client
 * resets or disconnects, the deadline passes or the server shuts down) and `send` for
 * serialized response messages. What it must do: end when `call.signal` aborts (server
 * streams), and throw to fail the call — errors go through the server's one error mapping
 * (`toConnectError`, the `onError` hook) exactly as connect handlers' errors do.
 *
 * Spec: gRPC over HTTP/2, https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md.
 */
import type http2 from 'node:http2';
import { Code, ConnectError, type ContextValues } from '@connectrpc/connect';
import type { GrpcPeer } from './peer.js';

/** Unary or server streaming (the kinds the fast path serves). */
export type RawGrpcMethodKind = 'unary' | 'server_streaming';

/** One call on the fast path, as a {@link RawGrpcMethod} sees it. */
export interface RawGrpcCall {
  /** `/Service/Method`. */
  readonly procedure: string;
  /** The caller, as {@link grpcPeer} reports it on connect's path; undefined once unknown. */
  readonly peer: GrpcPeer | undefined;
  /** The same context values a connect handler gets (the peer under `kGrpcPeer`). */
  readonly values: ContextValues;
  /** Aborted when the client resets or disconnects, the deadline passes, or the server stops. */
  readonly signal: AbortSignal;
  /** A request header (lower-case name); repeated values joined by `, `, as `Headers.get`. */
  header(name: string): string | null;
  /**
   * Sends one serialized response message (headers go out first). Resolves when the
   * transport took it (after `drain` under back-pressure) or the call ended; a message over
   * `maxMessageBytes` throws ResourceExhausted as connect does.
   */
  send(message: Uint8Array): Promise<void>;
}

/** A method served on the fast path. */
export interface RawGrpcMethod<I = unknown> {
  readonly kind: RawGrpcMethodKind;
  /**
   * Decodes the request message. Throw a ConnectError to answer with it (connect answers
   * Internal "parse binary: …" for an unparsable message).
   */
  parse(bytes: Uint8Array): I;
  /** Serves the call: resolving ends it OK, throwing ends it with the mapped status. */
  handle(call: RawGrpcCall, request: I): Promise<void>;
}

/** What the server gives {@link serveRawGrpcCall} (internal). */
export interface RawCallEnvironment {
  readonly peer: GrpcPeer | undefined;
  readonly values: ContextValues;
  readonly maxMessageBytes: number;
  /** 0: no limit. */
  readonly maxTimeoutMs: number;
  readonly shutdown: AbortSignal;
  /**
   * The aborts of the fast-path calls in flight: a call adds its own while it runs, and the
   * server calls each when `shutdown` aborts (one listener on the server's signal instead of
   * one added and removed per call).
   */
  readonly inFlight: Set<() => void>;
  /** The server's error mapping (redaction, logging, shutdown status). */
  mapError(err: unknown, procedure: string): ConnectError;
}

const CONTENT_TYPE_RE = /^application\/grpc(?:\+proto)?$/i;
const RESPONSE_HEADERS = Object.freeze({
  ':status': 200,
  'content-type': 'application/grpc+proto',
});
const OK_TRAILERS = Object.freeze({ 'grpc-status': '0' });
const COMPRESSED_FLAG = 0b0000_0001;
const HEADER_BYTES = 5;

/**
 * True when a request can take the fast path: `POST`, gRPC protobuf content type, and no
 * request compression (absent or `identity`). Everything else goes to connect.
 */
export function rawEligible(headers: http2.IncomingHttpHeaders): boolean {
  if (headers[':method'] !== 'POST') return false;
  const type = headers['content-type'];
  if (type === undefined || !CONTENT_TYPE_RE.test(type)) return false;
  const enc = headers['grpc-encoding'];
  return enc === undefined || enc === 'identity';
}

/** connect's parseTimeout: `grpc-timeout` → ms, with the same errors. */
function parseTimeout(
  value: string | undefined,
  maxTimeoutMs: number,
): { ms?: number; error?: ConnectError } {
  if (value === undefined) return {};
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (m === null) {
    return {
      error: new ConnectError(
        `protocol error: invalid grpc timeout value: ${value}`,
        Code.InvalidArgument,
      ),
    };
  }
  const unit = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 }[
    m[2] as 'H' | 'M' | 'S' | 'm' | 'u' | 'n'
  ];
  const ms = unit * Number.parseInt(m[1]!, 10);
  if (maxTimeoutMs > 0 && ms > maxTimeoutMs) {
    return {
      ms,
      error: new ConnectError(`timeout ${ms}ms must be <= ${maxTimeoutMs}`, Code.InvalidArgument),
    };
  }
  return { ms };
}

function headerValue(headers: http2.IncomingHttpHeaders, name: string): string | null {
  const v = headers[name];
  if (v === undefined) return null;
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Splits request bytes into envelopes with connect's checks, in connect's order. */
class EnvelopeReader {
  readonly #max: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #flags = 0;
  /** Length of the envelope being read; -1 while its header is incomplete. */
  #length = -1;

  constructor(maxMessageBytes: number) {
    this.#max = maxMessageBytes;
  }

  /** Bytes held that do not yet form a whole envelope. */
  get pending(): number {
    return this.#buffered;
  }

  /** Feeds a chunk; calls `onMessage` per complete envelope. Throws connect's errors. */
  push(chunk: Buffer, onMessage: (flags: number, data: Buffer) => void): void {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    for (;;) {
      if (this.#length < 0) {
        if (this.#buffered < HEADER_BYTES) return;
        const head = this.#take(HEADER_BYTES);
        this.#flags = head[0]!;
        this.#length = head.readUInt32BE(1);
        if (this.#length > this.#max) {
          throw new ConnectError(
            `message size ${this.#length} is larger than configured readMaxBytes ${this.#max}`,
            Code.ResourceExhausted,
          );
        }
      }
      if (this.#buffered < this.#length) return;
      const data = this.#take(this.#length);
      const flags = this.#flags;
      this.#length = -1;
      onMessage(flags, data);
    }
  }

  #take(n: number): Buffer {
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.#chunks = rest.length === 0 ? [] : [rest];
    this.#buffered = rest.length;
    return out;
  }
}

/**
 * The abort reason for a stream that closed under us (one shared instance: nothing is sent
 * for a call whose stream is gone, and every stream a client cancels would build one). Made
 * on first use: a ConnectError builds a web `Headers`, whose first use loads Node's fetch
 * implementation (~50 ms), which a starting agent should not wait for.
 */
let streamGone: ConnectError | undefined;

/**
 * Serves one request on the fast path (the server calls this for requests that
 * {@link rawEligible} accepts on a path of `rawRoutes`). Never throws.
 */
export function serveRawGrpcCall(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  method: RawGrpcMethod,
  env: RawCallEnvironment,
): void {
  const procedure = headers[':path'] ?? '';
  // A stream's errors (a reset, a write after the peer went away) end the call through
  // 'close'; without a listener they would be thrown.
  stream.on('error', () => {});
  const ac = new AbortController();
  const signal = ac.signal;
  let finished = false;
  let deadline: NodeJS.Timeout | undefined;

  const onShutdown = () => ac.abort(env.shutdown.reason);
  const onClose = () => {
    if (!signal.aborted) {
      streamGone ??= new ConnectError('the call was cancelled by the client', Code.Canceled);
      ac.abort(streamGone);
    }
    cleanup();
  };
  const cleanup = () => {
    clearTimeout(deadline);
    env.inFlight.delete(onShutdown);
    stream.off('close', onClose);
  };
  stream.once('close', onClose);
  if (env.shutdown.aborted) ac.abort(env.shutdown.reason);
  else env.inFlight.add(onShutdown);

  const gone = () => stream.destroyed || stream.closed;
  /** The trailers to send when the stream ends (`wantTrailers`). */
  let trailers: http2.OutgoingHttpHeaders = OK_TRAILERS;
  const respond = () => {
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.once('wantTrailers', () => {
      try {
        stream.sendTrailers(trailers);
      } catch {
        // the stream went away meanwhile
      }
    });
  };

  /** Writes the final status (the call ends OK when `err` is undefined and nothing aborted). */
  const finish = (err: unknown): void => {
    if (finished) return;
    finished = true;
    if (gone()) {
      cleanup();
      return;
    }
    let status: ConnectError | undefined;
    // A call cut short by its deadline or the shutdown ends with that status, even when the
    // handler noticed first and threw its own cancellation.
    const cut =
      signal.aborted &&
      (err === undefined ||
        err === signal.reason ||
        (err instanceof ConnectError && err.code === Code.Canceled));
    if (cut) status = env.mapError(signal.reason, procedure);
    else if (err !== undefined) status = env.mapError(err, procedure);
    cleanup();
    try {
      if (!stream.headersSent) respond();
      if (status !== undefined) {
        const t = new Map<string, string>();
        status.metadata.forEach((value, key) => {
          t.set(key, value);
        });
        t.set('grpc-status', String(status.code));
        t.set('grpc-message', encodeURIComponent(status.rawMessage));
        // in name order, as connect writes them (web Headers iterate sorted)
        trailers = Object.fromEntries([...t].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      }
      stream.end();
    } catch {
      // the stream went away while we wrote: nothing left to tell
    }
  };

  const timeout = parseTimeout(headerValue(headers, 'grpc-timeout') ?? undefined, env.maxTimeoutMs);
  // Data is drained whatever happens, so that a refused request never stalls the connection.
  if (timeout.error !== undefined) {
    stream.resume();
    finish(timeout.error);
    return;
  }
  if (timeout.ms !== undefined) {
    deadline = setTimeout(
      () => ac.abort(new ConnectError('the operation timed out', Code.DeadlineExceeded)),
      timeout.ms,
    );
  }

  const call: RawGrpcCall = {
    procedure,
    peer: env.peer,
    values: env.values,
    signal,
    header: (name) => headerValue(headers, name),
    send(message) {
      if (finished || signal.aborted || gone()) return Promise.resolve();
      if (message.length > env.maxMessageBytes) {
        throw new ConnectError(
          `message size ${message.length} is larger than configured writeMaxBytes ${env.maxMessageBytes}`,
          Code.ResourceExhausted,
        );
      }
      if (!stream.headersSent) respond();
      const envelope = Buffer.allocUnsafe(HEADER_BYTES + message.length);
      envelope[0] = 0;
      envelope.writeUInt32BE(message.length, 1);
      envelope.set(message, HEADER_BYTES);
      if (stream.write(envelope)) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => {
          stream.off('drain', done);
          stream.off('close', done);
          resolve();
        };
        stream.once('drain', done);
        stream.once('close', done);
      });
    },
  };

  const reader = new EnvelopeReader(env.maxMessageBytes);
  let count = 0;
  let request: unknown;
  let failed = false;
  const onMessage = (flags: number, data: Buffer): void => {
    if ((flags & COMPRESSED_FLAG) !== 0) {
      throw new ConnectError(
        'received compressed envelope, but do not know how to decompress',
        Code.Internal,
      );
    }
    const parsed = method.parse(data);
    count++;
    if (count === 1) request = parsed;
    else {
      throw new ConnectError(
        `protocol error: received extra input message for ${kindName(method.kind)} method`,
        Code.Unimplemented,
      );
    }
  };
  stream.on('data', (chunk: Buffer) => {
    if (failed || finished) return;
    try {
      reader.push(chunk, onMessage);
    } catch (err) {
      failed = true;
      finish(err);
    }
  });
  stream.once('end', () => {
    if (failed || finished) return;
    if (reader.pending > 0) {
      finish(new ConnectError('protocol error: incomplete envelope', Code.InvalidArgument));
      return;
    }
    if (count === 0) {
      finish(
        new ConnectError(
          `protocol error: missing input message for ${kindName(method.kind)} method`,
          Code.Unimplemented,
        ),
      );
      return;
    }
    let handled: Promise<void>;
    try {
      handled = method.handle(call, request);
    } catch (err) {
      finish(err);
      return;
    }
    handled.then(
      () => {
        // A stream that ends because the server is going down ends with the shutdown's
        // status, not OK (as connect's error mapping does), so clients reconnect.
        if (method.kind === 'server_streaming' && env.shutdown.aborted) {
          finish(env.shutdown.reason);
        } else finish(undefined);
      },
      (err: unknown) => finish(err),
    );
  });
}

function kindName(kind: RawGrpcMethodKind): string {
  return kind === 'unary' ? 'unary' : 'server-streaming';
}
