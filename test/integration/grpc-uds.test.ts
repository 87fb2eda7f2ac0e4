import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SpireEdgeError } from '../../src/common/errors.js';
import {
  createUdsTransport,
  type GrpcClientTransport,
  type GrpcPeer,
  type GrpcServer,
  type GrpcServerOptions,
  grpcPeer,
  startGrpcServer,
  type UnixListenOptions,
} from '../../src/common/grpc.js';
import { loadNativeAddon } from '../../src/native/addon.js';
import { healthv1 } from '../../src/protocol/index.js';

const { HealthCheckResponseSchema, HealthCheckResponse_ServingStatus: Status } = healthv1;

const dir = mkdtempSync(join(tmpdir(), 'grpc-uds-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What the test service saw, per test. */
interface Seen {
  peers: GrpcPeer[];
  pidfdAlive: boolean[];
  workloadHeader: Array<string | null>;
  holding: number;
  aborted: number;
  errors: unknown[];
}

function freshSeen(): Seen {
  return { peers: [], pidfdAlive: [], workloadHeader: [], holding: 0, aborted: 0, errors: [] };
}

/** The tiny test service: grpc.health.v1 with behaviour selected by the service name. */
function healthRoutes(seen: Seen): GrpcServerOptions['routes'] {
  return (router) =>
    router.service(healthv1.Health, {
      async check(req, ctx) {
        seen.workloadHeader.push(ctx.requestHeader.get('workload.spiffe.io'));
        switch (req.service) {
          case 'whoami': {
            const peer = grpcPeer(ctx);
            seen.peers.push(peer);
            if (peer.kind === 'unix' && peer.pidfd !== undefined) {
              seen.pidfdAlive.push(loadNativeAddon().pidfdAlive(peer.pidfd));
            }
            break;
          }
          case 'missing':
            throw new SpireEdgeError(
              'ERR_TEST_SERVICE_NOT_FOUND',
              'service "missing" is not registered',
            );
          case 'dup':
            throw new SpireEdgeError('ERR_TEST_ENTRY_ALREADY_EXISTS', 'entry already exists');
          case 'bad':
            throw new SpireEdgeError('ERR_TEST_SELECTOR_INVALID', 'selector "x" has no type');
          case 'denied':
            throw new SpireEdgeError('ERR_TEST_PERMISSION_DENIED', 'no identity issued');
          case 'crash':
            throw new Error('connect to postgres://admin:hunter2@db failed', {
              cause: new Error('/var/lib/secret'),
            });
        }
        return create(HealthCheckResponseSchema, { status: Status.SERVING });
      },
      async *watch(req, ctx) {
        yield create(HealthCheckResponseSchema, { status: Status.SERVING });
        if (req.service === 'hold') {
          seen.holding++;
          await new Promise<void>((resolve) => {
            if (ctx.signal.aborted) resolve();
            else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
          });
          seen.holding--;
          seen.aborted++;
          return;
        }
        yield create(HealthCheckResponseSchema, { status: Status.NOT_SERVING });
        if (req.service === 'fail-midstream') {
          throw new SpireEdgeError('ERR_TEST_UPSTREAM_UNAVAILABLE', 'upstream is down');
        }
      },
    });
}

const servers: GrpcServer[] = [];
const transports: GrpcClientTransport[] = [];
const cleanupSessions: http2.ClientHttp2Session[] = [];
afterEach(async () => {
  for (const t of transports.splice(0)) t.close();
  for (const s of cleanupSessions.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

let n = 0;
async function start(
  seen: Seen,
  extra: Omit<Partial<GrpcServerOptions>, 'listen'> & { listen?: Partial<UnixListenOptions> } = {},
): Promise<{ server: GrpcServer; socketPath: string }> {
  const socketPath = join(dir, `s${n++}`, 'api.sock');
  const { listen, ...rest } = extra;
  const server = await startGrpcServer({
    routes: healthRoutes(seen),
    onError: (err) => seen.errors.push(err),
    ...rest,
    listen: { socketPath, peerCredentials: true, ...listen },
  });
  servers.push(server);
  return { server, socketPath };
}

function client(socketPath: string) {
  const transport = createUdsTransport(`unix://${socketPath}`);
  transports.push(transport);
  return createClient(healthv1.Health, transport);
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function codeOf(p: Promise<unknown>): Promise<{ code: Code; rawMessage: string }> {
  try {
    await p;
  } catch (err) {
    const ce = ConnectError.from(err);
    return { code: ce.code, rawMessage: ce.rawMessage };
  }
  throw new Error('call succeeded, expected an error');
}

describe('gRPC over a Unix socket', () => {
  it('serves unary and server-streaming calls and shows the caller pid/uid/gid', async () => {
    const seen = freshSeen();
    const { server, socketPath } = await start(seen, { listen: { pidfd: true } });
    expect(server.address).toEqual({ socketPath });
    const health = client(socketPath);

    const res = await health.check(
      { service: 'whoami' },
      { headers: { 'workload.spiffe.io': 'true' } },
    );
    expect(res.status).toBe(Status.SERVING);
    expect(seen.workloadHeader).toEqual(['true']);
    const peer = seen.peers[0];
    expect(peer?.kind).toBe('unix');
    if (peer?.kind !== 'unix') throw new Error('unreachable');
    expect(peer.cred).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    expect(peer.fd).toBeGreaterThan(2);
    expect(seen.pidfdAlive).toEqual([true]);

    const statuses: number[] = [];
    for await (const m of health.watch({ service: 'x' })) statuses.push(m.status);
    expect(statuses).toEqual([Status.SERVING, Status.NOT_SERVING]);
  });

  it('makes the socket directory 0700 and chmods the socket when asked', async () => {
    const seen = freshSeen();
    const socketPath = join(dir, 'modes', 'private', 'api.sock');
    const server = await startGrpcServer({
      routes: healthRoutes(seen),
      listen: { socketPath, dirMode: 0o700, mode: 0o660 },
    });
    servers.push(server);
    expect(statSync(join(dir, 'modes', 'private')).mode & 0o7777).toBe(0o700);
    const st = statSync(socketPath);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
    // an existing directory of ours with a looser mode is tightened
    await server.close();
    servers.pop();
    expect(() => statSync(socketPath)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    const loose = join(dir, 'loose');
    mkdirSync(loose, { mode: 0o755 });
    const s2 = await startGrpcServer({
      routes: healthRoutes(seen),
      listen: { socketPath: join(loose, 'api.sock'), dirMode: 0o700 },
    });
    servers.push(s2);
    expect(statSync(loose).mode & 0o7777).toBe(0o700);
  });

  it('refuses to chmod a shared sticky directory such as /tmp', async () => {
    const shared = join(dir, 'sticky');
    mkdirSync(shared);
    spawnSync('chmod', ['1777', shared]);
    await expect(
      startGrpcServer({
        routes: healthRoutes(freshSeen()),
        listen: { socketPath: join(shared, 'api.sock'), dirMode: 0o700 },
      }),
    ).rejects.toMatchObject({ code: 'ERR_GRPC_SOCKET_DIR_INVALID' });
    expect(statSync(shared).mode & 0o7777).toBe(0o1777);
  });

  it('replaces a stale socket, refuses a live one and never deletes a regular file', async () => {
    const sub = join(dir, 'stale');
    mkdirSync(sub);
    const stale = join(sub, 'api.sock');
    // a socket file whose server is gone (bound, never listening, process exited)
    const r = spawnSync('/usr/bin/python3', [
      '-c',
      'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])',
      stale,
    ]);
    expect(r.status).toBe(0);
    expect(statSync(stale).isSocket()).toBe(true);
    const seen = freshSeen();
    const server = await startGrpcServer({
      routes: healthRoutes(seen),
      listen: { socketPath: stale },
    });
    servers.push(server);
    expect((await client(stale).check({})).status).toBe(Status.SERVING);

    await expect(
      startGrpcServer({ routes: healthRoutes(seen), listen: { socketPath: stale } }),
    ).rejects.toMatchObject({ code: 'ERR_GRPC_SOCKET_IN_USE' });
    // the first server still serves
    expect((await client(stale).check({})).status).toBe(Status.SERVING);

    const file = join(sub, 'not-a-socket');
    writeFileSync(file, 'keep me');
    await expect(
      startGrpcServer({ routes: healthRoutes(seen), listen: { socketPath: file } }),
    ).rejects.toMatchObject({ code: 'ERR_GRPC_SOCKET_PATH_INVALID' });
    expect(readFileSync(file, 'utf8')).toBe('keep me');

    await expect(
      startGrpcServer({
        routes: healthRoutes(seen),
        listen: { socketPath: `${dir}/${'x'.repeat(120)}.sock` },
      }),
    ).rejects.toMatchObject({ code: 'ERR_GRPC_SOCKET_PATH_INVALID' });
  });

  it('maps coded errors to gRPC statuses and redacts everything else', async () => {
    const seen = freshSeen();
    const { socketPath } = await start(seen);
    const health = client(socketPath);
    expect(await codeOf(health.check({ service: 'missing' }))).toEqual({
      code: Code.NotFound,
      rawMessage: 'service "missing" is not registered',
    });
    expect((await codeOf(health.check({ service: 'dup' }))).code).toBe(Code.AlreadyExists);
    expect((await codeOf(health.check({ service: 'bad' }))).code).toBe(Code.InvalidArgument);
    expect(await codeOf(health.check({ service: 'denied' }))).toEqual({
      code: Code.PermissionDenied,
      rawMessage: 'no identity issued',
    });
    const crash = await codeOf(health.check({ service: 'crash' }));
    expect(crash).toEqual({ code: Code.Internal, rawMessage: 'internal error' });
    // the server log still sees the original error
    expect(seen.errors.map((e) => (e as Error).message)).toContain(
      'connect to postgres://admin:hunter2@db failed',
    );

    // an error after some stream messages arrives as the mapped status too
    const got: number[] = [];
    const streamErr = await codeOf(
      (async () => {
        for await (const m of health.watch({ service: 'fail-midstream' })) got.push(m.status);
      })(),
    );
    expect(got).toEqual([Status.SERVING, Status.NOT_SERVING]);
    expect(streamErr).toEqual({ code: Code.Unavailable, rawMessage: 'upstream is down' });
  });

  it('refuses an over-size message with ResourceExhausted and keeps serving', async () => {
    const seen = freshSeen();
    const { socketPath } = await start(seen, { maxMessageBytes: 1024 });
    const health = client(socketPath);
    const big = await codeOf(health.check({ service: 'y'.repeat(4096) }));
    expect(big.code).toBe(Code.ResourceExhausted);
    expect(seen.workloadHeader).toEqual([]); // the handler never ran
    expect((await health.check({ service: 'small' })).status).toBe(Status.SERVING);
    // a fresh connection works as well
    expect((await client(socketPath).check({})).status).toBe(Status.SERVING);
  });

  it('answers what is not gRPC as Node would (CONNECT 405, an unknown expectation 417) and keeps serving', async () => {
    const seen = freshSeen();
    const { socketPath } = await start(seen);
    const session = http2.connect('http://localhost', {
      createConnection: () => net.connect(socketPath),
    });
    cleanupSessions.push(session);
    session.on('error', () => {});
    const status = (headers: http2.OutgoingHttpHeaders, end = true) =>
      new Promise<number>((resolve, reject) => {
        const req = session.request(headers, { endStream: end });
        req.on('error', reject);
        req.on('response', (h) => {
          resolve(Number(h[':status']));
          req.close();
        });
      });
    expect(await status({ ':method': 'CONNECT', ':authority': 'example.org:443' }, false)).toBe(
      405,
    );
    expect(
      await status({
        ':method': 'POST',
        ':path': '/grpc.health.v1.Health/Check',
        'content-type': 'application/grpc',
        expect: 'something-else',
      }),
    ).toBe(417);
    expect(seen.workloadHeader).toEqual([]); // no handler ran
    // 100-continue gets its interim answer, then the call is served as usual
    const continued = await new Promise<{ cont: boolean; status: string | undefined }>(
      (resolve, reject) => {
        const req = session.request({
          ':method': 'POST',
          ':path': '/grpc.health.v1.Health/Check',
          'content-type': 'application/grpc',
          te: 'trailers',
          expect: '100-continue',
        });
        let cont = false;
        req.on('continue', () => {
          cont = true;
        });
        req.on('error', reject);
        req.on('trailers', (t) => resolve({ cont, status: t['grpc-status'] as string }));
        req.resume();
        req.end(Buffer.from([0, 0, 0, 0, 0]));
      },
    );
    expect(continued).toEqual({ cont: true, status: '0' });
    expect((await client(socketPath).check({})).status).toBe(Status.SERVING);
  });

  it('releases every stream of a client that opens many and is killed', async () => {
    const seen = freshSeen();
    const { server, socketPath } = await start(seen, { maxConcurrentStreams: 64 });
    const streams = 50;
    // A raw HTTP/2 client in another process: 50 Watch streams, then SIGKILL.
    const script = `
      const http2 = require('node:http2');
      const net = require('node:net');
      const s = http2.connect('http://localhost', { createConnection: () => net.connect(process.argv[1]) });
      const body = Buffer.from([0, 0, 0, 0, 6, 0x0a, 4, 0x68, 0x6f, 0x6c, 0x64]);
      let ok = 0;
      s.on('remoteSettings', (st) => process.stdout.write('max=' + st.maxConcurrentStreams + '\\n'));
      for (let i = 0; i < ${streams}; i++) {
        const r = s.request({ ':method': 'POST', ':path': '/grpc.health.v1.Health/Watch',
          'content-type': 'application/grpc', te: 'trailers' });
        r.on('data', () => {});
        r.on('response', () => { if (++ok === ${streams}) process.stdout.write('ready\\n'); });
        r.end(body);
      }
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['-e', script, socketPath], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    try {
      await until(() => out.includes('ready') && seen.holding === streams, 10_000);
      expect(out).toContain('max=64');
      expect(server.stats()).toEqual({ connections: 1, streams });
    } finally {
      child.kill('SIGKILL');
    }
    await until(() => server.stats().connections === 0);
    await until(() => seen.aborted === streams);
    expect(seen.holding).toBe(0);
    expect(server.stats()).toEqual({ connections: 0, streams: 0 });
    // still serving
    expect((await client(socketPath).check({})).status).toBe(Status.SERVING);
  });

  it('runs at most maxConcurrentStreams handlers per connection', async () => {
    const seen = freshSeen();
    const { server, socketPath } = await start(seen, { maxConcurrentStreams: 2 });
    const session = http2.connect('http://localhost', {
      createConnection: () => net.connect(socketPath),
    });
    cleanupSessions.push(session);
    const body = Buffer.from([0, 0, 0, 0, 6, 0x0a, 4, 0x68, 0x6f, 0x6c, 0x64]);
    for (let i = 0; i < 4; i++) {
      const req = session.request({
        ':method': 'POST',
        ':path': '/grpc.health.v1.Health/Watch',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      req.on('data', () => {});
      req.on('error', () => {});
      req.end(body);
    }
    await until(() => seen.holding === 2);
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.holding).toBe(2);
    expect(server.stats()).toEqual({ connections: 1, streams: 2 });
  });

  it('closes connections that stay idle without streams', async () => {
    const seen = freshSeen();
    const { server, socketPath } = await start(seen, { idleTimeoutMs: 150 });
    const health = client(socketPath);
    await health.check({});
    expect(server.stats().connections).toBe(1);
    await until(() => server.stats().connections === 0, 2000);
    // the client reconnects transparently
    expect((await health.check({})).status).toBe(Status.SERVING);
  });

  it('does not close an idle-looking connection that holds an open stream', async () => {
    const seen = freshSeen();
    const { server, socketPath } = await start(seen, { idleTimeoutMs: 100 });
    const health = client(socketPath);
    const ac = new AbortController();
    const it = health.watch({ service: 'hold' }, { signal: ac.signal })[Symbol.asyncIterator]();
    expect((await it.next()).value?.status).toBe(Status.SERVING);
    await new Promise((r) => setTimeout(r, 400));
    expect(server.stats()).toEqual({ connections: 1, streams: 1 });
    ac.abort();
    await until(() => seen.aborted === 1);
    await until(() => server.stats().connections === 0, 2000);
  });

  it('close() ends open streams with Unavailable and removes the socket file', async () => {
    const seen = freshSeen();
    const { server, socketPath } = await start(seen);
    const health = client(socketPath);
    const it = health.watch({ service: 'hold' })[Symbol.asyncIterator]();
    expect((await it.next()).value?.status).toBe(Status.SERVING);
    await until(() => seen.holding === 1);
    const ended = codeOf(it.next());
    await server.close();
    servers.pop();
    expect(seen.aborted).toBe(1);
    expect((await ended).code).toBe(Code.Unavailable);
    expect(() => statSync(socketPath)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    await server.close(); // idempotent
  });

  it('a missing socket is Unavailable for the client', async () => {
    const err = await codeOf(client(join(dir, 'nowhere', 'api.sock')).check({}));
    expect(err.code).toBe(Code.Unavailable);
  });

  it('rejects bad limits as TypeError', async () => {
    await expect(
      startGrpcServer({
        routes: healthRoutes(freshSeen()),
        listen: { socketPath: join(dir, 'bad', 'api.sock') },
        maxMessageBytes: 0,
      }),
    ).rejects.toThrow(TypeError);
  });
});

beforeAll(() => {
  // The native addon reads SO_PEERCRED; fail with the setup hint when it is missing.
  try {
    loadNativeAddon();
  } catch (err) {
    throw new Error(`native addon missing: run scripts/setup.sh (${(err as Error).message})`);
  }
});
