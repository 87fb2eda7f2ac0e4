/**
 * The Workload API under bad input and vanishing callers, on a real Unix socket with the
 * real unix attestor: garbage and truncated request bodies, a request over the size limit,
 * 1,000 streams opened and abandoned by clients that disappear without a goodbye, workloads
 * that exit mid-call, and a connection whose connecting process exited before its call
 * (its socket passed to another process) — each answered or closed cleanly, while other
 * callers keep being served; descriptors, subscriptions and heap return to where they were.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkloadApiClient } from '../../src/agent/workload-api/client.js';
import { MemoryIdentitySource } from '../../src/agent/workload-api/memory-identity-source.js';
import {
  startWorkloadApiServer,
  type WorkloadApiServer,
} from '../../src/agent/workload-api/server.js';
import { combineWorkloadAttestors } from '../../src/agent/workload-attestors/combine.js';
import { createUnixWorkloadAttestor } from '../../src/agent/workload-attestors/unix.js';
import { createLogger } from '../../src/common/log.js';
import { JwtBundle } from '../../src/spiffe/jwt-bundle.js';
import { X509Bundle } from '../../src/spiffe/x509-bundle.js';
import { mintX509CaCertificate, X509SvidMinter } from '../../src/spiffe/x509-mint.js';
import { memorySigner } from '../unit/spiffe/x509-support.js';

/** The error a call failed with (fails the test when the call succeeds). */
async function rpcError(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error('expected the call to fail');
}

const PYTHON = '/usr/bin/python3';
const HOUR = 3600_000;
const dir = mkdtempSync(join(tmpdir(), 'wl-limits-'));
chmodSync(dir, 0o755);
const socketPath = join(dir, 'public', 'api.sock');
let server: WorkloadApiServer;
let source: MemoryIdentitySource;
let client: WorkloadApiClient;
const logLines: string[] = [];
const children = new Set<ChildProcess>();

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const fdCount = () => readdirSync('/proc/self/fd').length;

async function waitFor(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Heap after full collections, MiB. */
async function heapMiB(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage().heapUsed / (1 << 20);
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
  const minter = new X509SvidMinter({ issuerCertDer: caDer, signer: caSigner });
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const notAfter = new Date(Date.now() + HOUR);
  const cert = await minter.mint({
    spiffeId: 'spiffe://example.org/root',
    publicKey: key.publicKey,
    notBefore: new Date(Date.now() - 10_000),
    notAfter,
  });
  const jwt = new JwtBundle('example.org');
  jwt.addJwtAuthority('k1', memorySigner('ec-p256').publicKey);
  source = new MemoryIdentitySource({
    bundle: { x509: new X509Bundle('example.org', [caDer]), jwt },
  });
  source.upsert({
    entryId: 'root',
    entryCreatedAt: 1,
    spiffeId: 'spiffe://example.org/root',
    certChain: [cert],
    privateKeyPkcs8: new Uint8Array(key.privateKey.export({ format: 'der', type: 'pkcs8' })),
    hint: '',
    expiresAt: notAfter,
    federatesWith: [],
    selectors: [{ type: 'unix', value: 'uid:0' }],
  });
  server = await startWorkloadApiServer({
    socketPath,
    source,
    attestor: combineWorkloadAttestors([createUnixWorkloadAttestor()]),
    log: createLogger({ level: 'debug', format: 'json', write: (l) => logLines.push(l) }),
  });
  client = new WorkloadApiClient({ socket: socketPath });
  await client.fetchX509Context();
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  client?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A served caller still works. */
async function stillServing(): Promise<void> {
  const ctx = await client.fetchX509Context({ timeoutMs: 5000 });
  expect(ctx.svids.map((s) => s.id.toString())).toEqual(['spiffe://example.org/root']);
}

interface RawAnswer {
  httpStatus: number;
  grpcStatus: string | undefined;
  grpcMessage: string | undefined;
}

/**
 * One gRPC request written by hand on its own connection. Resolves with the status as soon
 * as it is known and then drops the connection, as a gRPC client cancels a call that is
 * answered while its request is still being sent.
 */
function rawCall(
  path: string,
  body: Buffer,
  headers: http2.OutgoingHttpHeaders = {},
  socket?: net.Socket,
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect('http://localhost', {
      createConnection: () => socket ?? net.connect(socketPath),
    });
    session.on('error', () => {});
    const req = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      'workload.spiffe.io': 'true',
      ...headers,
    });
    const answer: RawAnswer = { httpStatus: 0, grpcStatus: undefined, grpcMessage: undefined };
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      session.destroy();
      resolve(answer);
    };
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-message'] !== undefined) {
        answer.grpcMessage = decodeURIComponent(String(h['grpc-message']));
      }
      if (h['grpc-status'] !== undefined) {
        answer.grpcStatus = String(h['grpc-status']);
        finish();
      }
    };
    req.on('response', (h) => {
      answer.httpStatus = Number(h[':status']);
      take(h);
    });
    req.on('trailers', take);
    req.on('data', () => {});
    req.on('error', (err) => (done ? undefined : reject(err)));
    req.on('close', finish);
    req.end(body);
  });
}

const frame = (payload: Buffer, flags = 0, declared = payload.length) => {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(declared, 1);
  return Buffer.concat([head, payload]);
};

describe('bad requests', () => {
  it('answers garbage, truncated, mis-flagged and mistyped bodies with errors, and keeps serving', async () => {
    const before = fdCount();
    const answers = {
      garbage: await rawCall(
        '/SpiffeWorkloadAPI/FetchJWTSVID',
        frame(Buffer.from([0xff, 0xff, 0xff, 0x07, 0x80])),
      ),
      truncated: await rawCall(
        '/SpiffeWorkloadAPI/FetchJWTSVID',
        frame(Buffer.from([0x0a, 0x01]), 0, 100),
      ),
      compressed: await rawCall(
        '/SpiffeWorkloadAPI/FetchJWTSVID',
        frame(Buffer.from([0x0a, 0x01, 0x61]), 1),
      ),
      streamGarbage: await rawCall(
        '/SpiffeWorkloadAPI/FetchX509SVID',
        Buffer.from('not a grpc frame at all'),
      ),
      wrongType: await rawCall('/SpiffeWorkloadAPI/FetchJWTSVID', frame(Buffer.alloc(0)), {
        'content-type': 'application/json',
      }),
      unknown: await rawCall('/SpiffeWorkloadAPI/Nope', frame(Buffer.alloc(0))),
    };
    // Unparsable message: Internal, as gRPC-Go answers ("error unmarshalling request").
    expect(answers.garbage).toMatchObject({ httpStatus: 200, grpcStatus: String(Code.Internal) });
    expect(answers.garbage.grpcMessage).toMatch(/^parse binary: /);
    expect(answers.truncated).toEqual({
      httpStatus: 200,
      grpcStatus: String(Code.InvalidArgument),
      grpcMessage: 'protocol error: incomplete envelope',
    });
    expect(answers.compressed.grpcStatus).toBe(String(Code.Internal));
    // text read as an envelope declares a ~1.8 GB message: refused by size before buffering
    expect(answers.streamGarbage.grpcStatus).toBe(String(Code.ResourceExhausted));
    expect(answers.wrongType.httpStatus).toBe(415);
    // gRPC clients map HTTP 404 to UNIMPLEMENTED
    expect(answers.unknown.httpStatus).toBe(404);
    await stillServing();
    await waitFor('connections to close', () => server.stats().connections <= 1);
    expect(fdCount()).toBeLessThanOrEqual(before);
  });

  it('refuses a request over the size limit with ResourceExhausted before any work', async () => {
    const huge = Buffer.alloc(5 << 20, 0x41);
    // a 5 MiB audience string: field 1, length-delimited
    const varint = (n: number) => {
      const out: number[] = [];
      while (n > 0x7f) {
        out.push((n & 0x7f) | 0x80);
        n >>>= 7;
      }
      out.push(n);
      return Buffer.from(out);
    };
    const msg = Buffer.concat([Buffer.from([0x0a]), varint(huge.length), huge]);
    const answer = await rawCall('/SpiffeWorkloadAPI/FetchJWTSVID', frame(msg));
    expect(answer.grpcStatus).toBe(String(Code.ResourceExhausted));
    // our client refuses to send it at all
    const err = await rpcError(client.fetchJwtSvids({ audience: [huge.toString('latin1')] }));
    expect(err.code).toBe(Code.ResourceExhausted);
    await stillServing();
  });
});

describe('abandoned streams and vanishing workloads', () => {
  /** Opens `n` FetchX509SVID streams on one connection; resolves when each has its first message. */
  async function openStreams(n: number): Promise<{ socket: net.Socket }> {
    const socket = net.connect(socketPath);
    const session = http2.connect('http://localhost', { createConnection: () => socket });
    session.on('error', () => {});
    await Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<void>((resolve, reject) => {
            const req = session.request({
              ':method': 'POST',
              ':path': '/SpiffeWorkloadAPI/FetchX509SVID',
              'content-type': 'application/grpc',
              te: 'trailers',
              'workload.spiffe.io': 'true',
            });
            req.on('error', () => {});
            req.once('data', () => resolve());
            req.once('close', () => reject(new Error('stream closed before its first message')));
            req.end(frame(Buffer.alloc(0)));
          }),
      ),
    );
    return { socket };
  }

  it('1,000 streams opened and abandoned leave nothing behind (fds, subscriptions, heap)', async () => {
    await stillServing();
    const fdsBefore = fdCount();
    const round = async () => {
      const conns = await Promise.all(Array.from({ length: 10 }, () => openStreams(100)));
      expect(server.stats().streams).toBeGreaterThanOrEqual(1000);
      expect(source.listenerCount).toBeGreaterThanOrEqual(1000);
      // vanish: no RST_STREAM, no GOAWAY, just the socket gone
      for (const c of conns) c.socket.destroy();
      await waitFor(
        'streams to be reaped',
        () => server.stats().streams === 0 && source.listenerCount === 0,
      );
      await waitFor('connections to close', () => server.stats().connections <= 1);
    };
    await round();
    const heapAfterFirst = await heapMiB();
    await round();
    await round();
    const heapAfterThird = await heapMiB();
    await stillServing();
    expect(fdCount()).toBeLessThanOrEqual(fdsBefore);
    // two more rounds of 1,000 streams did not grow the heap
    expect(heapAfterThird - heapAfterFirst).toBeLessThan(8);
  });

  it('a workload that exits mid-call (before or after its first message) is cleaned up', async () => {
    const script = `
import os, sys, time, grpc
ch = grpc.insecure_channel('unix:' + sys.argv[1])
call = ch.unary_stream('/SpiffeWorkloadAPI/FetchX509SVID', request_serializer=lambda b: b, response_deserializer=lambda b: b)(b'', metadata=(('workload.spiffe.io', 'true'),), timeout=30)
if sys.argv[2] == 'after-first':
    next(call)
    print('first', flush=True)
    time.sleep(60)
else:
    time.sleep(0.02)
    os._exit(0)
`;

    const fdsBefore = fdCount();
    const run = (mode: string) =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(PYTHON, ['-c', script, socketPath, mode], {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { PATH: '/usr/bin:/bin', GRPC_VERBOSITY: 'NONE' },
        });
        children.add(child);
        let err = '';
        child.stderr.on('data', (d: Buffer) => {
          err += d.toString();
        });
        child.stdout.on('data', (d: Buffer) => {
          if (d.toString().includes('first')) child.kill('SIGKILL');
        });
        child.on('exit', (code, signal) => {
          children.delete(child);
          if (mode === 'after-first' ? signal === 'SIGKILL' : code === 0) resolve();
          else
            reject(
              new Error(`python client ended ${code}/${signal}: run scripts/setup.sh?\n${err}`),
            );
        });
      });
    await Promise.all([run('after-first'), run('after-first'), run('at-once'), run('at-once')]);
    await waitFor(
      'streams of dead workloads to end',
      () => server.stats().streams === 0 && source.listenerCount === 0,
    );
    await waitFor('their connections to close', () => server.stats().connections <= 1);
    await stillServing();
    expect(fdCount()).toBeLessThanOrEqual(fdsBefore);
  });

  it('refuses a call whose connecting process has exited, even though its connection lives on', async () => {
    const childScript = join(dir, 'pass-socket.mjs');
    writeFileSync(
      childScript,
      `import net from 'node:net';
const s = net.connect(process.argv[2]);
s.on('connect', () => process.send('socket', s));
process.on('message', (m) => { if (m === 'exit') process.exit(0); });
`,
    );
    const child = fork(childScript, [socketPath], {
      execArgv: [],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    children.add(child);
    const connectionsBefore = server.stats().connections;
    const socket = await new Promise<net.Socket>((resolve) =>
      child.on('message', (_m, handle) => resolve(handle as net.Socket)),
    );
    // the server has accepted the connection (SO_PEERCRED = the child, pidfd opened) …
    await waitFor(
      'the connection to be accepted',
      () => server.stats().connections > connectionsBefore,
    );
    // … and now the connecting process exits while we hold its connection
    const exited = new Promise((r) => child.once('exit', r));
    child.send('exit');
    await exited;
    children.delete(child);
    logLines.length = 0;
    const answer = await rawCall(
      '/SpiffeWorkloadAPI/FetchX509SVID',
      frame(Buffer.alloc(0)),
      {},
      socket,
    );
    expect(answer.grpcStatus).toBe(String(Code.Unavailable));
    expect(answer.grpcMessage).toBe('workload attestation failed');
    expect(logLines.join('')).toMatch(
      /could not verify existence of the original caller|workload attestation failed/,
    );
    socket.destroy();
    await stillServing();
  });
});
