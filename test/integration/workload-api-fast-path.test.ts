/**
 * The Workload API's fast path (raw-routes.ts on src/common/grpc/raw-route.ts) against the
 * same service on connect (`fastPath: false`), both on real Unix sockets with the real unix
 * attestor: a matrix of requests written by hand — answers, stream pushes, every error the
 * transport or the service gives — must come back identical on the wire (status, headers,
 * messages byte for byte, trailers in order). The one intended difference, a passed
 * `grpc-timeout`, is asserted on its own. Also: the fast path really serves the five methods
 * (SDS and the WIT methods go to connect), a stream whose SVIDs the cache still mints waits
 * for them and releases its retention when it ends, an SDS call retains its caller's selectors
 * while it lasts, and deadlines end streams.
 */
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { create, toBinary } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECURITY_HEADER } from '../../src/agent/workload-api/handlers.js';
import {
  type MemoryIdentityEntry,
  MemoryIdentitySource,
} from '../../src/agent/workload-api/memory-identity-source.js';
import {
  startWorkloadApiServer,
  type WorkloadApiServer,
} from '../../src/agent/workload-api/server.js';
import { combineWorkloadAttestors } from '../../src/agent/workload-attestors/combine.js';
import type { Selector } from '../../src/agent/workload-attestors/selector.js';
import { createUnixWorkloadAttestor } from '../../src/agent/workload-attestors/unix.js';
import { sdsv3, WORKLOAD_API_HEADER, workload } from '../../src/protocol/index.js';
import { JwtBundle } from '../../src/spiffe/jwt-bundle.js';
import { mintJwtSvid } from '../../src/spiffe/jwt-svid.js';
import { X509Bundle } from '../../src/spiffe/x509-bundle.js';
import { mintX509CaCertificate, X509SvidMinter } from '../../src/spiffe/x509-mint.js';
import { memorySigner } from '../unit/spiffe/x509-support.js';

const HOUR = 3600_000;
const UID = process.geteuid!();
const dir = mkdtempSync(join(tmpdir(), 'wl-fast-'));
chmodSync(dir, 0o755);

/** A source whose X509-SVIDs can be "still being minted" (the cache's size limit). */
class PendingSource extends MemoryIdentitySource {
  pending = false;
  retained = 0;
  released = 0;
  pendingFor(_selectors: readonly Selector[]): boolean {
    return this.pending;
  }
  retain(_selectors: readonly Selector[]): () => void {
    this.retained++;
    let done = false;
    return () => {
      if (!done) this.released++;
      done = true;
    };
  }
}

let source: PendingSource;
let fast: WorkloadApiServer;
let slow: WorkloadApiServer;
let minter: X509SvidMinter;
let jwtToken: string;

async function entry(id: string, selectors: string[], over: Partial<MemoryIdentityEntry> = {}) {
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const notAfter = new Date(Date.now() + HOUR);
  const spiffeId = `spiffe://example.org/${id}`;
  const cert = await minter.mint({
    spiffeId,
    publicKey: key.publicKey,
    notBefore: new Date(Date.now() - 10_000),
    notAfter,
  });
  return {
    entryId: id,
    entryCreatedAt: 1,
    spiffeId,
    certChain: [cert],
    privateKeyPkcs8: new Uint8Array(key.privateKey.export({ format: 'der', type: 'pkcs8' })),
    hint: '',
    expiresAt: notAfter,
    federatesWith: [],
    selectors: selectors.map((s) => {
      const i = s.indexOf(':');
      return { type: s.slice(0, i), value: s.slice(i + 1) };
    }),
    ...over,
  } satisfies MemoryIdentityEntry;
}

beforeAll(async () => {
  const caSigner = memorySigner('ec-p256');
  const caDer = await mintX509CaCertificate({
    trustDomain: 'example.org',
    subject: { country: ['US'], organization: ['SPIFFE'] },
    publicKey: caSigner.publicKey,
    notBefore: new Date(Date.now() - HOUR),
    notAfter: new Date(Date.now() + 48 * HOUR),
    signer: caSigner,
  });
  minter = new X509SvidMinter({ issuerCertDer: caDer, signer: caSigner });
  const jwtSigner = memorySigner('ec-p256');
  const jwt = new JwtBundle('example.org');
  jwt.addJwtAuthority('k1', jwtSigner.publicKey);
  const partnerJwt = new JwtBundle('partner.example');
  partnerJwt.addJwtAuthority('p1', memorySigner('ec-p256').publicKey);
  // One token for every request, so that both paths answer the same bytes.
  jwtToken = await mintJwtSvid({
    signer: jwtSigner,
    keyId: 'k1',
    spiffeId: 'spiffe://example.org/web',
    audience: ['db'],
    expiresAt: new Date(Date.now() + HOUR),
  });
  source = new PendingSource({
    bundle: { x509: new X509Bundle('example.org', [caDer]), jwt },
    mintJwtSvid: async () => ({ token: jwtToken, expiresAt: new Date(Date.now() + HOUR) }),
  });
  source.setFederatedBundle({ x509: new X509Bundle('partner.example', [caDer]), jwt: partnerJwt });
  source.upsert(
    await entry('web', [`unix:uid:${UID}`], { hint: 'h', federatesWith: ['partner.example'] }),
  );
  const attestor = combineWorkloadAttestors([createUnixWorkloadAttestor()]);
  fast = await startWorkloadApiServer({ socketPath: join(dir, 'fast.sock'), source, attestor });
  slow = await startWorkloadApiServer({
    socketPath: join(dir, 'slow.sock'),
    source,
    attestor,
    fastPath: false,
  });
});

afterAll(async () => {
  await fast?.close();
  await slow?.close();
  rmSync(dir, { recursive: true, force: true });
});

const frame = (payload: Uint8Array, flags = 0) => {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
};
const msg = <T extends Parameters<typeof create>[0]>(
  schema: T,
  init: Parameters<typeof create<T>>[1],
) => toBinary(schema, create(schema, init));

const X509 = '/SpiffeWorkloadAPI/FetchX509SVID';
const X509B = '/SpiffeWorkloadAPI/FetchX509Bundles';
const JWTB = '/SpiffeWorkloadAPI/FetchJWTBundles';
const JWT = '/SpiffeWorkloadAPI/FetchJWTSVID';
const VALIDATE = '/SpiffeWorkloadAPI/ValidateJWTSVID';

interface Answer {
  status: number | undefined;
  headers: Record<string, unknown>;
  /** Response DATA, hex, split into gRPC messages. */
  messages: string[];
  trailers: [string, unknown][] | undefined;
  ended: boolean;
}

/**
 * One request on its own connection. Collects the answer until the stream ends, or until
 * `messages` messages arrived (then cancels, as a client that got what it wanted), or
 * `waitMs` passed. `during` runs once the first message arrived.
 */
function call(
  server: WorkloadApiServer,
  path: string,
  body: Buffer,
  {
    headers = {},
    // unary calls are read to their end; streams until their first message
    messages = path === JWT || path === VALIDATE ? 99 : 1,
    waitMs = 3000,
    during,
  }: {
    headers?: http2.OutgoingHttpHeaders;
    messages?: number;
    waitMs?: number;
    during?: () => Promise<void> | void;
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect('http://localhost', {
      createConnection: () => net.connect(server.socketPath),
    });
    session.on('error', () => {});
    const req = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      [WORKLOAD_API_HEADER]: 'true',
      ...headers,
    });
    const answer: Answer = {
      status: undefined,
      headers: {},
      messages: [],
      trailers: undefined,
      ended: false,
    };
    let buf = Buffer.alloc(0);
    let done = false;
    const timer = setTimeout(() => finish(), waitMs);
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      session.destroy();
      resolve(answer);
    };
    req.on('response', (h) => {
      answer.status = Number(h[':status']);
      answer.headers = Object.fromEntries(
        Object.entries(h).filter(([k]) => k !== ':status' && k !== 'date'),
      );
    });
    req.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
        const n = buf.readUInt32BE(1);
        answer.messages.push(buf.subarray(0, 5 + n).toString('hex'));
        buf = buf.subarray(5 + n);
        if (answer.messages.length === 1 && during !== undefined) {
          Promise.resolve(during()).catch(reject);
        }
        if (answer.messages.length >= messages) finish();
      }
    });
    req.on('trailers', (t) => {
      answer.trailers = Object.entries(t).filter(([k]) => k !== 'date');
      // the answer is complete (a refused request may still be uploading)
      answer.ended = true;
      finish();
    });
    req.on('error', () => {});
    req.on('close', () => {
      answer.ended = true;
      finish();
    });
    req.end(body);
  });
}

/** The same request on both servers; the answers must be identical. */
async function same(
  path: string,
  body: Buffer,
  opts: Parameters<typeof call>[3] = {},
): Promise<Answer> {
  const [a, b] = await Promise.all([call(fast, path, body, opts), call(slow, path, body, opts)]);
  expect(a).toEqual(b);
  return a;
}

const grpcStatus = (a: Answer) => a.trailers?.find(([k]) => k === 'grpc-status')?.[1];

describe('the fast path answers exactly as connect does', () => {
  it('serves the five methods with the same messages', async () => {
    const x509 = await same(X509, frame(new Uint8Array()));
    expect(x509.messages).toHaveLength(1);
    expect(x509.headers).toEqual({ 'content-type': 'application/grpc+proto' });
    await same(X509B, frame(new Uint8Array()));
    await same(JWTB, frame(new Uint8Array()));
    const jwt = await same(JWT, frame(msg(workload.JWTSVIDRequestSchema, { audience: ['db'] })));
    expect(grpcStatus(jwt)).toBe('0');
    expect(jwt.messages).toHaveLength(1);
    const validated = await same(
      VALIDATE,
      frame(msg(workload.ValidateJWTSVIDRequestSchema, { audience: 'db', svid: jwtToken })),
    );
    expect(grpcStatus(validated)).toBe('0');
  });

  it('pushes the same update on a change', async () => {
    let changed = false;
    const change = async () => {
      if (changed) return;
      changed = true;
      // both streams have their first message: one change reaches both
      await new Promise((r) => setTimeout(r, 100));
      source.upsert(await entry('extra', [`unix:uid:${UID}`]));
    };
    const [a, b] = await Promise.all([
      call(fast, X509, frame(new Uint8Array()), { messages: 2, during: change }),
      call(slow, X509, frame(new Uint8Array()), { messages: 2, during: change }),
    ]);
    expect(a.messages).toHaveLength(2);
    expect(a).toEqual(b);
    source.remove('extra');
  });

  it('gives the same errors for the service rules', async () => {
    const cases: Array<[string, Buffer, http2.OutgoingHttpHeaders?]> = [
      [JWT, frame(msg(workload.JWTSVIDRequestSchema, {}))],
      [JWT, frame(msg(workload.JWTSVIDRequestSchema, { audience: [''] }))],
      [JWT, frame(msg(workload.JWTSVIDRequestSchema, { audience: ['a'], spiffeId: 'nope' }))],
      [
        JWT,
        frame(
          msg(workload.JWTSVIDRequestSchema, {
            audience: ['a'],
            spiffeId: 'spiffe://example.org/other',
          }),
        ),
      ],
      [X509, frame(new Uint8Array()), { [WORKLOAD_API_HEADER]: 'false' }],
      [X509, frame(new Uint8Array()), { [WORKLOAD_API_HEADER]: ['true', 'true'] }],
      [VALIDATE, frame(msg(workload.ValidateJWTSVIDRequestSchema, { audience: 'db' }))],
      [
        VALIDATE,
        frame(msg(workload.ValidateJWTSVIDRequestSchema, { audience: 'db', svid: 'x.y.z' })),
      ],
      [
        VALIDATE,
        frame(msg(workload.ValidateJWTSVIDRequestSchema, { audience: 'other', svid: jwtToken })),
      ],
      ['/SpiffeWorkloadAPI/FetchWITSVID', frame(new Uint8Array())],
      ['/SpiffeWorkloadAPI/Nope', frame(new Uint8Array())],
      ['/envoy.service.secret.v3.SecretDiscoveryService/DeltaSecrets', frame(new Uint8Array())],
    ];
    for (const [path, body, headers] of cases) {
      const a = await same(path, body, { headers: headers ?? {} });
      expect(a.messages, path).toEqual([]);
    }
    // no identity, and not ready
    const removed = source.entries().find((e) => e.entryId === 'web')!;
    source.remove('web');
    try {
      const denied = await same(X509, frame(new Uint8Array()));
      expect(grpcStatus(denied)).toBe(String(Code.PermissionDenied));
      await same(JWTB, frame(new Uint8Array()));
    } finally {
      source.upsert(removed);
    }
    source.setReady(false);
    try {
      const unavailable = await same(
        JWT,
        frame(msg(workload.JWTSVIDRequestSchema, { audience: ['a'] })),
      );
      expect(grpcStatus(unavailable)).toBe(String(Code.Unavailable));
    } finally {
      source.setReady(true);
    }
  });

  it('gives the same errors for bad framing, codecs and compression', async () => {
    const jwtReq = msg(workload.JWTSVIDRequestSchema, { audience: ['db'] });
    const cases: Array<[string, Buffer, http2.OutgoingHttpHeaders?]> = [
      [JWT, Buffer.alloc(0)], // no message
      [JWT, Buffer.concat([frame(jwtReq), frame(jwtReq)])], // two messages
      [X509, Buffer.alloc(0)],
      [JWT, frame(Buffer.from([0xff, 0xff, 0xff, 0x07, 0x80]))], // unparsable
      [JWT, frame(Buffer.from([0x0a, 0x01]))], // truncated field
      [JWT, frame(jwtReq).subarray(0, 7)], // truncated envelope
      [JWT, frame(jwtReq).subarray(0, 3)], // truncated header
      [JWT, frame(jwtReq, 1)], // compressed flag, no encoding
      [JWT, frame(jwtReq, 1), { 'grpc-encoding': 'identity' }],
      [JWT, frame(gzipSync(jwtReq), 1), { 'grpc-encoding': 'gzip' }], // to connect: accepted
      [JWT, frame(jwtReq), { 'grpc-encoding': 'snappy' }],
      [X509, Buffer.from('not a grpc frame at all')], // declares ~1.8 GB
      [X509, frame(new Uint8Array()), { 'content-type': 'application/json' }],
      [X509, frame(new Uint8Array()), { 'content-type': 'application/grpc+proto' }],
      [X509, frame(Buffer.from('{}')), { 'content-type': 'application/grpc+json' }],
      [X509, frame(new Uint8Array()), { 'grpc-timeout': 'soon' }],
      [X509, frame(new Uint8Array()), { 'grpc-timeout': '123456789S' }],
    ];
    for (const [path, body, headers] of cases) {
      await same(path, body, { headers: headers ?? {} });
    }
    // over the size limit: refused as soon as the length prefix arrives
    const huge = Buffer.alloc((4 << 20) + 1);
    const a = await same(JWT, frame(huge));
    expect(grpcStatus(a)).toBe(String(Code.ResourceExhausted));
    // GET is not gRPC: connect's 405 on both
    await same(JWT, Buffer.alloc(0), { headers: { ':method': 'GET' } });
  });
});

describe('fast path only', () => {
  it('ends a stream whose grpc-timeout passes with DEADLINE_EXCEEDED (connect ends it OK)', async () => {
    const [a, b] = await Promise.all([
      call(fast, X509, frame(new Uint8Array()), {
        headers: { 'grpc-timeout': '300m' },
        messages: 99,
      }),
      call(slow, X509, frame(new Uint8Array()), {
        headers: { 'grpc-timeout': '300m' },
        messages: 99,
      }),
    ]);
    expect(a.messages).toEqual(b.messages);
    expect(a.ended).toBe(true);
    expect(a.trailers).toEqual([
      ['grpc-message', 'the%20operation%20timed%20out'],
      ['grpc-status', String(Code.DeadlineExceeded)],
    ]);
    expect(b.trailers).toEqual([['grpc-status', '0']]);
  });

  it('on both paths, a stream whose SVIDs are still being minted waits for them, and releases what it retained', async () => {
    for (const server of [fast, slow]) {
      source.pending = true;
      const before = { retained: source.retained, released: source.released };
      const answer = call(server, X509, frame(new Uint8Array()), { messages: 1, waitMs: 5000 });
      await new Promise((r) => setTimeout(r, 300));
      expect(source.retained).toBe(before.retained + 1);
      // minted: the source changes, the stream sends
      source.pending = false;
      source.upsert(await entry('minted', [`unix:uid:${UID}`]));
      const a = await answer;
      expect(a.messages).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 100));
      expect(source.released).toBe(before.released + 1);
      expect(source.listenerCount).toBe(0);
      source.remove('minted');
    }
  });

  it('counts an SDS call as a cache subscriber for its duration (connect path)', async () => {
    const before = { retained: source.retained, released: source.released };
    const fetched = await call(
      fast,
      '/envoy.service.secret.v3.SecretDiscoveryService/FetchSecrets',
      frame(msg(sdsv3.DiscoveryRequestSchema, { resourceNames: ['default'] })),
      { messages: 99 },
    );
    expect(grpcStatus(fetched)).toBe('0');
    expect(fetched.messages).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(source.retained).toBe(before.retained + 1);
    expect(source.released).toBe(before.released + 1);
  });

  it('keeps the stream count and the shutdown status of connect', async () => {
    const extra = await startWorkloadApiServer({
      socketPath: join(dir, 'extra.sock'),
      source,
      attestor: createUnixWorkloadAttestor(),
      shutdownGraceMs: 500,
    });
    const open = call(extra, X509, frame(new Uint8Array()), { messages: 2, waitMs: 5000 });
    await new Promise((r) => setTimeout(r, 300));
    expect(extra.stats().streams).toBe(1);
    await extra.close();
    const a = await open;
    expect(a.messages).toHaveLength(1);
    expect(a.trailers).toEqual([
      ['grpc-message', 'server%20is%20shutting%20down'],
      ['grpc-status', String(Code.Unavailable)],
    ]);
  });

  it('names the security header as src/protocol does', () => {
    expect(SECURITY_HEADER).toBe(WORKLOAD_API_HEADER);
  });
});
