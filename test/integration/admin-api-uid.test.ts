/**
 * The admin socket refuses callers whose uid (SO_PEERCRED) is neither the server's nor
 * root's — and the refusal comes from that uid check, not from file permissions: the
 * socket here lives in a 0755 directory with mode 0777, so any local user can connect, and
 * the answer must be PermissionDenied naming the caller's uid.
 *
 * As root (CI, these machines), the caller is Debian's python3-grpcio (an independent gRPC
 * implementation) run as uid 65534 with `setpriv`; the same client run as root succeeds,
 * so the client itself works. As a non-root user (no way to switch uid), the server is
 * started admitting root only and this process is the refused caller.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUdsTransport } from '../../src/common/grpc.js';
import { entryv1 } from '../../src/protocol/index.js';
import { type AdminServer, startAdminServer } from '../../src/server/api/admin/admin-server.js';
import { requireBinary } from '../harness/common.js';
import { type AdminFixture, startAdminFixture } from '../unit/server/api/admin-support.js';

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

/** Calls Entry/CountEntries with an empty request; prints the outcome as JSON. */
const PY_CLIENT = `
import json, os, sys
import grpc
ch = grpc.insecure_channel('unix:' + sys.argv[1])
call = ch.unary_unary('/spire.api.server.entry.v1.Entry/CountEntries',
                      request_serializer=lambda b: b, response_deserializer=lambda b: b)
out = {'uid': os.getuid()}
try:
    resp = call(b'', timeout=10)
    out['code'] = 'OK'
    out['bytes'] = resp.hex()
except grpc.RpcError as e:
    out['code'] = e.code().name
    out['details'] = e.details()
print(json.dumps(out))
`;

interface PyResult {
  uid: number;
  code: string;
  details?: string;
  bytes?: string;
}

function runPython(socketPath: string, asUid?: number): Promise<PyResult> {
  const python = requireBinary('/usr/bin/python3', 'python3-grpcio');
  const setpriv = requireBinary('setpriv', 'util-linux');
  const [cmd, args] =
    asUid === undefined
      ? [python, ['-c', PY_CLIENT, socketPath]]
      : [
          setpriv,
          [
            `--reuid=${asUid}`,
            `--regid=${asUid}`,
            '--clear-groups',
            '--',
            python,
            '-c',
            PY_CLIENT,
            socketPath,
          ],
        ];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      try {
        resolve(JSON.parse(out) as PyResult);
      } catch {
        reject(
          new Error(
            `python client exited ${code}: ${err.trim()} (install python3-grpcio: run scripts/setup.sh)`,
          ),
        );
      }
    });
  });
}

let fx: AdminFixture;
let open: AdminServer;
let closed: AdminServer;

beforeAll(async () => {
  fx = await startAdminFixture();
  // mkdtemp made fx.dir 0700: open it so another uid can reach the open socket below.
  chmodSync(fx.dir, 0o755);
  mkdirSync(join(fx.dir, 'open'), { mode: 0o755 });
  open = await startAdminServer({
    context: fx.context,
    socketPath: join(fx.dir, 'open', 'api.sock'),
    dirMode: 0o755,
    mode: 0o777,
    // As non-root nobody else can be the refused caller: admit root only, call as ourselves.
    ...(isRoot ? {} : { allowedUids: [] }),
  });
  closed = await startAdminServer({
    context: fx.context,
    socketPath: join(fx.dir, 'closed', 'api.sock'),
  });
});
afterAll(async () => {
  await open?.close();
  await closed?.close();
  await fx?.close();
});

describe('admin socket caller uid', () => {
  it('serves an open socket that any local user can connect to', () => {
    expect(statSync(join(fx.dir, 'open')).mode & 0o777).toBe(0o755);
    expect(statSync(open.socketPath).mode & 0o777).toBe(0o777);
    expect(open.allowedUids).toEqual([0]);
  });

  it('refuses a caller of another uid with PermissionDenied from the uid check', async () => {
    if (isRoot) {
      const r = await runPython(open.socketPath, NOBODY);
      expect(r.uid).toBe(NOBODY);
      expect(r.code).toBe('PERMISSION_DENIED');
      expect(r.details).toBe(
        `caller uid ${NOBODY} is not authorized: the admin API admits only uid 0`,
      );
    } else {
      const client = createClient(entryv1.Entry, createUdsTransport(open.socketPath));
      const err = await client.countEntries({}).then(
        () => expect.fail('expected PermissionDenied'),
        (e: unknown) => ConnectError.from(e),
      );
      expect(err.code).toBe(Code.PermissionDenied);
      expect(err.rawMessage).toBe(
        `caller uid ${process.getuid!()} is not authorized: the admin API admits only uid 0`,
      );
    }
  });

  it('answers an allowed caller on the same socket (the client works)', async () => {
    if (isRoot) {
      const r = await runPython(open.socketPath);
      expect(r).toMatchObject({ uid: 0, code: 'OK' });
    } else {
      const client = createClient(entryv1.Entry, createUdsTransport(closed.socketPath));
      expect((await client.countEntries({})).count).toBeGreaterThanOrEqual(0);
    }
  });

  it('keeps the default socket unreachable for other users (0700 directory)', async () => {
    expect(statSync(join(fx.dir, 'closed')).mode & 0o777).toBe(0o700);
    if (isRoot) {
      const r = await runPython(closed.socketPath, NOBODY);
      // A connection failure, not an answer from the server.
      expect(r.code).toBe('UNAVAILABLE');
    }
  });

  it('logs nothing as a change for refused callers', () => {
    expect(fx.logs.filter((l) => l.includes('"method":"'))).toEqual([]);
  });
});
