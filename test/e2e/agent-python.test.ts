/**
 * An independent gRPC implementation against a real `./bin/spire-agent run` process: Debian's
 * python3-grpcio (`/usr/bin/python3`, gRPC core in C) over the agent's Unix socket, with
 * protobuf bytes built and read by hand from workload.proto's field numbers, run as another
 * uid with `setpriv`. It follows the FetchX509SVID stream (the agent pushes a second identity
 * created with `spire-server entry create` while the stream is open), fetches a JWT-SVID,
 * has the agent validate it, and is refused without the security header. The certificate it
 * received verifies with `openssl verify` against `spire-server bundle show`, and the JWT-SVID
 * with the library against `spire-server bundle show -format spiffe`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePem } from '../../src/common/pem.js';
import { validateJwtSvid } from '../../src/spiffe/jwt-svid.js';
import { parseSpiffeBundle } from '../../src/spiffe/spiffe-bundle.js';
import {
  agentApiPort,
  generateJoinToken,
  opensslVerify,
  runCommand,
  type ServiceProcess,
  SPIRE_AGENT,
  serverCommand,
  startAgentProcess,
  startServerProcess,
  writeAgentConfig,
  writeServerConfig,
} from './support.js';

const PYTHON = '/usr/bin/python3';
const TD = 'example.org';
const PY_UID = 64201;
const NOBODY = 64209;
const NODE_ID = `spiffe://${TD}/node/py-gw`;
const AUDIENCE = 'spiffe://example.org/backend';

/** The client: argv socket, audience; one JSON line after the first message, one at the end. */
const CLIENT = `
import json, os, sys, time
import grpc

def uvarint(n):
    b = bytearray()
    while n >= 0x80:
        b.append((n & 0x7f) | 0x80)
        n >>= 7
    b.append(n)
    return bytes(b)

def field(num, payload):
    return uvarint((num << 3) | 2) + uvarint(len(payload)) + payload

def read_uvarint(buf, i):
    n = shift = 0
    while True:
        c = buf[i]
        i += 1
        n |= (c & 0x7f) << shift
        shift += 7
        if c < 0x80:
            return n, i

def parse(buf):
    """Length-delimited fields only: [(number, bytes)]."""
    out, i = [], 0
    while i < len(buf):
        key, i = read_uvarint(buf, i)
        if key & 7 != 2:
            raise ValueError('wire type %d in field %d' % (key & 7, key >> 3))
        n, i = read_uvarint(buf, i)
        out.append((key >> 3, buf[i:i + n]))
        i += n
    return out

def x509_svids(msg):
    # X509SVIDResponse.svids = 1; X509SVID: spiffe_id 1, x509_svid 2, x509_svid_key 3, bundle 4, hint 5
    svids = []
    for num, v in parse(msg):
        if num == 1:
            f = dict(parse(v))
            svids.append({'id': f[1].decode(), 'cert': f[2].hex(), 'key_len': len(f[3]), 'bundle': f[4].hex()})
    return sorted(svids, key=lambda s: s['id'])

def status(e):
    return [e.code().name, e.details()]

raw = lambda b: b
sock, audience = sys.argv[1], sys.argv[2]
header = (('workload.spiffe.io', 'true'),)
channel = grpc.insecure_channel('unix:' + sock)
result = {'uid': os.geteuid()}

stream = channel.unary_stream('/SpiffeWorkloadAPI/FetchX509SVID', request_serializer=raw, response_deserializer=raw)
call = stream(b'', metadata=header, timeout=30)
try:
    first = x509_svids(next(call))
    result['first'] = first
    print(json.dumps({'first': [s['id'] for s in first]}), flush=True)
    for _ in range(5):
        update = x509_svids(next(call))
        if [s['id'] for s in update] != [s['id'] for s in first]:
            result['update'] = update
            break
except grpc.RpcError as e:
    result['x509_error'] = status(e)
call.cancel()

fetch_jwt = channel.unary_unary('/SpiffeWorkloadAPI/FetchJWTSVID', request_serializer=raw, response_deserializer=raw)
validate = channel.unary_unary('/SpiffeWorkloadAPI/ValidateJWTSVID', request_serializer=raw, response_deserializer=raw)
try:
    # JWTSVIDRequest.audience = 1; JWTSVIDResponse.svids = 1: spiffe_id 1, svid 2
    resp = fetch_jwt(field(1, audience.encode()), metadata=header, timeout=10)
    result['jwt'] = sorted(({'id': dict(parse(v))[1].decode(), 'token': dict(parse(v))[2].decode()}
                            for n, v in parse(resp) if n == 1), key=lambda j: j['id'])
except grpc.RpcError as e:
    result['jwt_error'] = status(e)

if result.get('jwt'):
    token = result['jwt'][0]['token'].encode()
    # ValidateJWTSVIDRequest: audience 1, svid 2; response: spiffe_id 1, claims 2
    resp = validate(field(1, audience.encode()) + field(2, token), metadata=header, timeout=10)
    result['validated'] = [v.decode() for n, v in parse(resp) if n == 1]
    try:
        validate(field(1, b'spiffe://example.org/someone-else') + field(2, token), metadata=header, timeout=10)
        result['wrong_audience'] = ['OK', '']
    except grpc.RpcError as e:
        result['wrong_audience'] = status(e)

try:
    fetch_jwt(field(1, audience.encode()), timeout=10)
    result['no_header'] = ['OK', '']
except grpc.RpcError as e:
    result['no_header'] = status(e)
channel.close()
print(json.dumps(result), flush=True)
`;

interface PyResult {
  uid: number;
  first?: Array<{ id: string; cert: string; key_len: number; bundle: string }>;
  update?: Array<{ id: string; cert: string; key_len: number; bundle: string }>;
  x509_error?: [string, string];
  jwt?: Array<{ id: string; token: string }>;
  jwt_error?: [string, string];
  validated?: string[];
  wrong_audience?: [string, string];
  no_header: [string, string];
}

const dir = mkdtempSync(join(tmpdir(), 'e2e-agent-py-'));
chmodSync(dir, 0o755);
let server: ServiceProcess;
let agent: ServiceProcess;
let socketPath: string;
let cli: ReturnType<typeof serverCommand>;
let bundlePem: string;
const children = new Set<ChildProcess>();

function entry(path: string, uid: number) {
  return cli(
    'entry',
    'create',
    '-parentID',
    NODE_ID,
    '-spiffeID',
    `spiffe://${TD}${path}`,
    '-selector',
    `unix:uid:${uid}`,
  );
}

/** Runs the python client as `uid`; `onFirst` runs once it has the stream's first message. */
function runPython(uid: number, onFirst?: () => Promise<void>): Promise<PyResult> {
  const child = spawn(
    'setpriv',
    [
      `--reuid=${uid}`,
      `--regid=${uid}`,
      '--clear-groups',
      PYTHON,
      '-c',
      CLIENT,
      socketPath,
      AUDIENCE,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/bin:/bin', HOME: '/' } },
  );
  children.add(child);
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    let partial = '';
    let stderr = '';
    let hook: Promise<void> | undefined;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      partial += d;
      for (let nl = partial.indexOf('\n'); nl >= 0; nl = partial.indexOf('\n')) {
        lines.push(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
        if (lines.length === 1 && onFirst !== undefined) hook = onFirst();
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      children.delete(child);
      const last = lines.at(-1);
      if (code !== 0 || last === undefined) {
        reject(
          new Error(
            `python3-grpcio client failed (exit ${String(code)}); run scripts/setup.sh if python3-grpcio is missing\n${stderr}`,
          ),
        );
        return;
      }
      Promise.resolve(hook).then(() => resolve(JSON.parse(last) as PyResult), reject);
    });
  });
}

function certPem(hex: string): string {
  return encodePem('CERTIFICATE', new Uint8Array(Buffer.from(hex, 'hex')));
}

beforeAll(async () => {
  if (!existsSync(PYTHON)) {
    throw new Error(`${PYTHON} not found: run scripts/setup.sh (installs python3-grpcio)`);
  }
  if (process.geteuid?.() !== 0) {
    throw new Error('this test runs workloads as other uids with setpriv: run it as root');
  }
  const serverDir = join(dir, 'server');
  mkdirSync(serverDir);
  const sc = writeServerConfig({ dir: serverDir });
  server = await startServerProcess(sc.path, sc.socketPath);
  cli = serverCommand(sc.socketPath);
  bundlePem = (await cli('bundle', 'show')).out;
  const bundlePath = join(dir, 'bundle.pem');
  writeFileSync(bundlePath, bundlePem);
  const token = await generateJoinToken(sc.socketPath, NODE_ID);
  const ac = writeAgentConfig({
    dir: join(dir, 'agent'),
    serverPort: agentApiPort(server),
    bundlePath,
    logLevel: 'INFO',
  });
  socketPath = ac.socketPath;
  agent = await startAgentProcess(ac.path, { joinToken: token });
  expect((await entry('/py/one', PY_UID)).code).toBe(0);
  // until the agent has synced the entry and minted its SVID
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await runCommand('setpriv', [
      `--reuid=${PY_UID}`,
      `--regid=${PY_UID}`,
      '--clear-groups',
      SPIRE_AGENT,
      'api',
      'fetch',
      'x509',
      '-silent',
      '-socketPath',
      socketPath,
    ]);
    if (r.code === 0) break;
    if (Date.now() > deadline) throw new Error(`the agent never served uid ${PY_UID}: ${r.err}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}, 120_000);

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  const agentExit = await agent?.stop();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
  expect(agentExit).toBe(0);
}, 60_000);

describe('python3-grpcio against the spire-agent process', () => {
  it('follows the X509-SVID stream, fetches and validates a JWT-SVID; no header is InvalidArgument', async () => {
    const out = await runPython(PY_UID, async () => {
      // python holds its first message: a new entry must reach it on the same stream
      const r = await entry('/py/two', PY_UID);
      expect(r.code).toBe(0);
    });
    expect(out.uid).toBe(PY_UID);
    expect(out.x509_error).toBeUndefined();
    expect(out.first?.map((s) => s.id)).toEqual([`spiffe://${TD}/py/one`]);
    expect(out.update?.map((s) => s.id)).toEqual([
      `spiffe://${TD}/py/one`,
      `spiffe://${TD}/py/two`,
    ]);
    // the certificate python received verifies against the server's bundle (openssl), and the
    // bundle it received is that bundle
    for (const s of out.update!) {
      const v = opensslVerify(dir, bundlePem, certPem(s.cert));
      expect(v.out.trim()).toBe('CERT: OK');
      expect(s.key_len).toBeGreaterThan(100);
      expect(certPem(s.bundle)).toBe(bundlePem);
    }
    expect(out.update![0]!.cert).toBe(out.first![0]!.cert);

    expect(out.jwt?.map((j) => j.id)).toEqual([`spiffe://${TD}/py/one`, `spiffe://${TD}/py/two`]);
    const spiffeBundle = parseSpiffeBundle(
      TD,
      (await cli('bundle', 'show', '-format', 'spiffe')).out,
    );
    for (const j of out.jwt!) {
      const v = await validateJwtSvid(j.token, spiffeBundle, [AUDIENCE]);
      expect(v.id.toString()).toBe(j.id);
    }
    expect(out.validated).toEqual([out.jwt![0]!.id]);
    expect(out.wrong_audience?.[0]).toBe('INVALID_ARGUMENT');
    expect(out.no_header).toEqual(['INVALID_ARGUMENT', 'security header missing from request']);
  }, 90_000);

  it('a uid without an entry is denied X509-SVIDs and JWT-SVIDs', async () => {
    const out = await runPython(NOBODY);
    expect(out.uid).toBe(NOBODY);
    expect(out.x509_error).toEqual(['PERMISSION_DENIED', 'no identity issued']);
    expect(out.jwt_error).toEqual(['PERMISSION_DENIED', 'no identity issued']);
    expect(out.no_header).toEqual(['INVALID_ARGUMENT', 'security header missing from request']);
  }, 60_000);
});
