import { mkdtempSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { compressionGzip, createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, describe, expect, it } from 'vitest';
import { type GrpcServer, startGrpcServer } from '../../src/common/grpc.js';
import { svidv1 } from '../../src/protocol/index.js';

const dir = mkdtempSync(join(tmpdir(), 'grpc-compression-'));
const servers: GrpcServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

/** 4 KiB of zeros: far above connect's 1 KiB threshold, and very compressible. */
const CHAIN = new Uint8Array(4096);
const PATH = `/${svidv1.SVID.typeName}/BatchNewX509SVID`;

let n = 0;
async function start(responseCompression?: 'none' | 'gzip'): Promise<string> {
  const socketPath = join(dir, `s${n++}`, 'api.sock');
  const server = await startGrpcServer({
    listen: { socketPath },
    ...(responseCompression === undefined ? {} : { responseCompression }),
    routes: (router) =>
      router.service(svidv1.SVID, {
        async batchNewX509SVID(req) {
          return {
            results: req.params.map((p) => ({
              status: { code: 0, message: p.entryId },
              svid: { certChain: [CHAIN] },
            })),
          };
        },
      }),
  });
  servers.push(server);
  return socketPath;
}

interface RawAnswer {
  readonly encoding: string | undefined;
  /** The message's compressed flag (first byte of the gRPC envelope). */
  readonly flag: number;
  readonly response: svidv1.BatchNewX509SVIDResponse;
}

/** One BatchNewX509SVID call over raw HTTP/2, with the given grpc-accept-encoding. */
function rawCall(
  socketPath: string,
  acceptEncoding: string | undefined,
  requestEncoding?: 'gzip' | 'br',
): Promise<RawAnswer> {
  const plain = toBinary(
    svidv1.BatchNewX509SVIDRequestSchema,
    create(svidv1.BatchNewX509SVIDRequestSchema, { params: [{ entryId: 'e1' }] }),
  );
  const body =
    requestEncoding === 'gzip'
      ? gzipSync(plain)
      : requestEncoding === 'br'
        ? brotliCompressSync(plain)
        : plain;
  const envelope = Buffer.alloc(5 + body.length);
  envelope[0] = requestEncoding === undefined ? 0 : 1;
  envelope.writeUInt32BE(body.length, 1);
  envelope.set(body, 5);
  return new Promise((resolve, reject) => {
    const session = http2.connect('http://localhost', {
      createConnection: () => net.connect(socketPath),
    });
    session.on('error', reject);
    const headers: http2.OutgoingHttpHeaders = {
      ':method': 'POST',
      ':path': PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
    };
    if (acceptEncoding !== undefined) headers['grpc-accept-encoding'] = acceptEncoding;
    if (requestEncoding !== undefined) headers['grpc-encoding'] = requestEncoding;
    const stream = session.request(headers);
    let encoding: string | undefined;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      encoding = h['grpc-encoding'] as string | undefined;
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
    stream.on('end', () => {
      session.close();
      const all = Buffer.concat(chunks);
      const flag = all[0]!;
      const len = all.readUInt32BE(1);
      const payload = all.subarray(5, 5 + len);
      const message = flag === 1 ? gunzipSync(payload) : payload;
      resolve({
        encoding,
        flag,
        response: fromBinary(svidv1.BatchNewX509SVIDResponseSchema, message),
      });
    });
    stream.end(envelope);
  });
}

describe('gRPC server response compression', () => {
  it('by default never compresses responses, whatever the client accepts', async () => {
    const socketPath = await start();
    for (const accept of ['gzip', 'br, gzip', 'gzip, br', undefined]) {
      const a = await rawCall(socketPath, accept);
      expect(a.encoding, String(accept)).toBeUndefined();
      expect(a.flag, String(accept)).toBe(0);
      expect(Buffer.from(a.response.results[0]!.svid!.certChain[0]!)).toEqual(Buffer.from(CHAIN));
    }
  });

  it("'gzip' compresses large responses with gzip only, even when the client prefers brotli", async () => {
    const socketPath = await start('gzip');
    for (const accept of ['gzip', 'br, gzip', 'identity,gzip']) {
      const a = await rawCall(socketPath, accept);
      expect(a.encoding, accept).toBe('gzip');
      expect(a.flag, accept).toBe(1);
      expect(Buffer.from(a.response.results[0]!.svid!.certChain[0]!)).toEqual(Buffer.from(CHAIN));
      expect(a.response.results[0]?.status?.message).toBe('e1');
    }
    for (const accept of ['br', undefined]) {
      const a = await rawCall(socketPath, accept);
      expect(a.encoding, String(accept)).toBeUndefined();
      expect(a.flag, String(accept)).toBe(0);
    }
  });

  it('accepts gzip-compressed requests in both modes', async () => {
    for (const mode of ['none', 'gzip'] as const) {
      const socketPath = await start(mode);
      const transport = createGrpcTransport({
        baseUrl: 'http://localhost',
        nodeOptions: { createConnection: () => net.connect(socketPath) },
        sendCompression: compressionGzip,
        compressMinBytes: 1,
      });
      let encoding: string | null = null;
      const res = await createClient(svidv1.SVID, transport).batchNewX509SVID(
        { params: [{ entryId: 'x'.repeat(2048) }] },
        { onHeader: (h) => (encoding = h.get('grpc-encoding')) },
      );
      expect(res.results[0]?.status?.message, mode).toBe('x'.repeat(2048));
      expect(encoding, mode).toBe(mode === 'gzip' ? 'gzip' : null);
    }
  });

  it('without grpc-accept-encoding, answers a compressed request uncompressed unless gzip is allowed and used', async () => {
    const none = await start();
    const gzip = await start('gzip');
    for (const enc of ['gzip', 'br'] as const) {
      const a = await rawCall(none, undefined, enc);
      expect(a.flag, enc).toBe(0);
      expect(a.encoding, enc).toBeUndefined();
      expect(a.response.results[0]?.status?.message, enc).toBe('e1');
    }
    const g = await rawCall(gzip, undefined, 'gzip');
    expect([g.encoding, g.flag]).toEqual(['gzip', 1]);
    // A brotli request does not make the server compress with brotli.
    const b = await rawCall(gzip, undefined, 'br');
    expect([b.encoding, b.flag]).toEqual([undefined, 0]);
    expect(b.response.results[0]?.status?.message).toBe('e1');
  });

  it('rejects an unknown responseCompression as TypeError', async () => {
    await expect(
      startGrpcServer({
        listen: { socketPath: join(dir, 'bad', 'api.sock') },
        routes: () => {},
        responseCompression: 'br' as never,
      }),
    ).rejects.toBeInstanceOf(TypeError);
  });
});
