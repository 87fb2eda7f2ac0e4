/**
 * The fast path's registry of calls in flight (src/common/grpc/raw-route.ts, `inFlight`): a
 * call is in it exactly while it runs — removed when it ends OK, when it fails and when the
 * client cancels it — and calling its entry (what the server does when it shuts down) ends the
 * call with the shutdown's status. The server keeps one listener on its shutdown signal for
 * all of them instead of one per call (adding to an EventTarget walks its listeners, which
 * made every new call pay for the streams already open; docs/performance.md, "Agent").
 * Real node:http2 on loopback.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Code, ConnectError, createContextValues } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type RawCallEnvironment,
  type RawGrpcMethod,
  serveRawGrpcCall,
} from '../../src/common/grpc/raw-route.js';

const shutdownController = new AbortController();
const inFlight = new Set<() => void>();
const env: RawCallEnvironment = {
  peer: undefined,
  values: createContextValues(),
  maxMessageBytes: 1 << 20,
  maxTimeoutMs: 0,
  shutdown: shutdownController.signal,
  inFlight,
  mapError: (err) =>
    err instanceof ConnectError ? err : new ConnectError(String(err), Code.Internal),
};

/** Server stream: one message, then open until the call's signal aborts. */
const watch: RawGrpcMethod<Uint8Array> = {
  kind: 'server_streaming',
  parse: (b) => b,
  async handle(call) {
    await call.send(new Uint8Array([1, 2, 3]));
    await new Promise<void>((resolve) => {
      if (call.signal.aborted) resolve();
      else call.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  },
};
const echo: RawGrpcMethod<Uint8Array> = {
  kind: 'unary',
  parse: (b) => b,
  async handle(call, req) {
    await call.send(req);
  },
};
const refuse: RawGrpcMethod<Uint8Array> = {
  kind: 'unary',
  parse: (b) => b,
  handle: async () => {
    throw new ConnectError('no', Code.PermissionDenied);
  },
};
const methods = new Map<string, RawGrpcMethod>([
  ['/t/Watch', watch],
  ['/t/Echo', echo],
  ['/t/Refuse', refuse],
]);

let server: http2.Http2Server;
let session: http2.ClientHttp2Session;

beforeAll(async () => {
  server = http2.createServer();
  server.on('stream', (stream, headers) => {
    serveRawGrpcCall(stream, headers, methods.get(headers[':path'] ?? '')!, env);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
});

afterAll(async () => {
  session?.destroy();
  await new Promise<void>((resolve) => server?.close(() => resolve()));
});

const frame = (b: Uint8Array) => Buffer.concat([Buffer.from([0, 0, 0, 0, b.length]), b]);

/** Opens a call; resolves its first DATA and its trailers as they come. */
function open(path: string, body: Uint8Array) {
  const req = session.request({
    ':method': 'POST',
    ':path': path,
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  req.on('error', () => {});
  const data = new Promise<Buffer>((resolve) => req.once('data', resolve));
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) =>
    req.once('trailers', resolve),
  );
  req.end(frame(body));
  return { req, data, trailers };
}

/** Waits until `inFlight` holds `n` calls (the server side ends asynchronously). */
async function settles(n: number): Promise<void> {
  for (let i = 0; i < 200 && inFlight.size !== n; i++) await new Promise((r) => setTimeout(r, 5));
  expect(inFlight.size).toBe(n);
}

describe('the fast path registry of calls in flight', () => {
  it('holds a call while it runs and drops it when it ends OK or fails', async () => {
    const ok = open('/t/Echo', new Uint8Array([7]));
    expect((await ok.trailers)['grpc-status']).toBe('0');
    const refused = open('/t/Refuse', new Uint8Array([7]));
    expect((await refused.trailers)['grpc-status']).toBe(String(Code.PermissionDenied));
    await settles(0);
  });

  it('drops a stream the client cancels, one by one', async () => {
    const calls = Array.from({ length: 50 }, () => open('/t/Watch', new Uint8Array()));
    await Promise.all(calls.map((c) => c.data));
    await settles(50);
    for (const c of calls.slice(0, 20)) c.req.close(http2.constants.NGHTTP2_CANCEL);
    await settles(30);
    for (const c of calls.slice(20)) c.req.close(http2.constants.NGHTTP2_CANCEL);
    await settles(0);
  });

  it("ends open streams with the shutdown's status when the server calls their entries", async () => {
    const calls = Array.from({ length: 3 }, () => open('/t/Watch', new Uint8Array()));
    await Promise.all(calls.map((c) => c.data));
    await settles(3);
    shutdownController.abort(new ConnectError('server is shutting down', Code.Unavailable));
    for (const abort of [...inFlight]) abort();
    for (const c of calls) {
      const t = await c.trailers;
      expect(t['grpc-status']).toBe(String(Code.Unavailable));
      expect(t['grpc-message']).toBe('server%20is%20shutting%20down');
    }
    await settles(0);
    // A call arriving after the shutdown ends at once with its status and leaves nothing behind.
    const late = open('/t/Watch', new Uint8Array());
    expect((await late.trailers)['grpc-status']).toBe(String(Code.Unavailable));
    expect(inFlight.size).toBe(0);
  });
});
