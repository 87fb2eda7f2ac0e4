/**
 * BatchNewX509SVID on the agent server's gRPC fast path (raw node:http2) answers as connect
 * does. The same requests go out twice over real TLS: plain (the fast path takes them) and
 * gzip-compressed (the fast path leaves those to connect's router on the same server); the
 * statuses, messages and per-item results must match.
 */
import http2 from 'node:http2';
import { gzipSync } from 'node:zlib';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCsr } from '../../src/agent/attestation/csr.js';
import { encodePem } from '../../src/common/pem.js';
import { svidv1 } from '../../src/protocol/index.js';
import { X509Bundle } from '../../src/spiffe/x509-bundle.js';
import { verifyX509Svid } from '../../src/spiffe/x509-verify.js';
import { type Harness, joinTokenAgent, newKey, startHarness, TD } from './agent-api-support.js';

const PATH = '/spire.api.server.svid.v1.SVID/BatchNewX509SVID';

let h: Harness;
let agent: Awaited<ReturnType<typeof joinTokenAgent>>;
let entryId: string;

beforeAll(async () => {
  h = await startHarness();
  agent = await joinTokenAgent(h);
  const e = await h.ds.createEntry({
    spiffeId: 'spiffe://example.org/fast/web',
    parentId: agent.svid.id,
    selectors: [{ type: 'unix', value: 'uid:1000' }],
    dnsNames: ['web.example.org'],
  });
  entryId = e.id;
  await h.entries.poll();
});
afterAll(async () => {
  await h?.close();
});

interface Answer {
  readonly status: number | undefined;
  readonly contentType: string | undefined;
  readonly grpcStatus: string | undefined;
  readonly grpcMessage: string | undefined;
  readonly body: Buffer;
}

/** One gRPC call over its own TLS connection; `gzip` compresses the request message. */
function call(message: Uint8Array, opts: { gzip: boolean; anonymous?: boolean }): Promise<Answer> {
  const client = http2.connect(`https://127.0.0.1:${h.port}`, {
    ca: h.bundle().map((d) => encodePem('CERTIFICATE', d)),
    ...(opts.anonymous
      ? {}
      : {
          cert: agent.svid.certChain.map((d) => encodePem('CERTIFICATE', d)).join(''),
          key: agent.key.export({ format: 'pem', type: 'pkcs8' }) as string,
        }),
    // The server's SVID names spiffe://example.org/spire/server, not 127.0.0.1.
    checkServerIdentity: () => undefined,
  });
  const payload = opts.gzip ? gzipSync(message) : Buffer.from(message);
  const envelope = Buffer.alloc(5 + payload.length);
  envelope[0] = opts.gzip ? 1 : 0;
  envelope.writeUInt32BE(payload.length, 1);
  payload.copy(envelope, 5);
  return new Promise((resolve, reject) => {
    client.on('error', reject);
    const req = client.request({
      ':method': 'POST',
      ':path': PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...(opts.gzip ? { 'grpc-encoding': 'gzip' } : {}),
    });
    let headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (hs: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader) => {
      headers = hs;
    });
    req.on('trailers', (ts) => {
      trailers = ts;
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', reject);
    req.on('end', () => {
      client.close();
      // a call that fails before any message may carry its status in the headers
      const status = trailers['grpc-status'] ?? headers['grpc-status'];
      const msg = trailers['grpc-message'] ?? headers['grpc-message'];
      resolve({
        status: headers[':status'],
        contentType: headers['content-type'],
        grpcStatus: status === undefined ? undefined : String(status),
        grpcMessage: msg === undefined ? undefined : decodeURIComponent(String(msg)),
        body: Buffer.concat(chunks),
      });
    });
    req.end(envelope);
  });
}

function decodeBody(body: Buffer): svidv1.BatchNewX509SVIDResponse {
  expect(body[0]).toBe(0); // uncompressed
  const len = body.readUInt32BE(1);
  expect(body.length).toBe(5 + len);
  return fromBinary(svidv1.BatchNewX509SVIDResponseSchema, body.subarray(5));
}

const request = (params: Array<{ entryId: string; csr: Uint8Array }>) =>
  toBinary(
    svidv1.BatchNewX509SVIDRequestSchema,
    create(svidv1.BatchNewX509SVIDRequestSchema, { params }),
  );

describe('BatchNewX509SVID fast path', () => {
  it('issues SVIDs and per-item statuses as the connect route does', async () => {
    const badSig = createCsr(newKey());
    badSig[badSig.length - 1]! ^= 1;
    const msg = request([
      { entryId, csr: createCsr(newKey()) },
      { entryId: 'no-such-entry', csr: createCsr(newKey()) },
      { entryId, csr: badSig },
      { entryId, csr: Uint8Array.of(1, 2, 3) },
      { entryId: '', csr: createCsr(newKey()) },
      { entryId, csr: new Uint8Array() },
    ]);
    const fast = await call(msg, { gzip: false });
    const slow = await call(msg, { gzip: true });
    for (const a of [fast, slow]) {
      expect(a.status).toBe(200);
      expect(a.contentType).toBe('application/grpc+proto');
      expect(a.grpcStatus).toBe('0');
    }
    const f = decodeBody(fast.body);
    const s = decodeBody(slow.body);
    const view = (r: svidv1.BatchNewX509SVIDResponse) =>
      r.results.map((x) => [x.status?.code, x.status?.message, x.svid?.id?.path, x.svid?.hint]);
    expect(view(f)).toEqual(view(s));
    expect(f.results.map((r) => r.status?.code)).toEqual([0, 5, 3, 3, 3, 3]);
    const bundle = new X509Bundle(TD, h.bundle());
    for (const r of [f, s]) {
      expect(verifyX509Svid(r.results[0]!.svid!.certChain, bundle).id.toString()).toBe(
        'spiffe://example.org/fast/web',
      );
    }
    expect(f.results[0]!.svid!.expiresAt).toBeGreaterThan(0n);
  });

  it('refuses what connect refuses, with the same status and message', async () => {
    const cases: Array<[string, Uint8Array, { anonymous?: boolean }]> = [
      ['an empty batch', request([]), {}],
      [
        'a caller without an agent SVID',
        request([{ entryId, csr: createCsr(newKey()) }]),
        { anonymous: true },
      ],
      ['a message that does not decode', Uint8Array.of(0x0a, 0x05, 0x01), {}],
    ];
    for (const [what, msg, opts] of cases) {
      const fast = await call(msg, { gzip: false, ...opts });
      const slow = await call(msg, { gzip: true, ...opts });
      expect(fast.grpcStatus, what).not.toBe('0');
      expect(fast.grpcStatus, what).toBeDefined();
      expect([fast.status, fast.grpcStatus, fast.grpcMessage], what).toEqual([
        slow.status,
        slow.grpcStatus,
        slow.grpcMessage,
      ]);
    }
  });
});
