/**
 * An independent gRPC implementation against the Workload API server: Debian's
 * python3-grpcio (gRPC core, C) over `unix:/path`, with generic stubs and protobuf bytes
 * built and decoded by hand from the published field numbers of workload.proto. It fetches
 * the X509-SVID stream (and a pushed update), a JWT-SVID, validates it, and is refused
 * without the security header. Run as different uids with `setpriv`, two workloads get
 * different SVIDs and nothing else; a uid without entries is denied.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type MemoryIdentityEntry,
  MemoryIdentitySource,
} from '../../src/agent/workload-api/memory-identity-source.js';
import {
  startWorkloadApiServer,
  type WorkloadApiServer,
} from '../../src/agent/workload-api/server.js';
import { combineWorkloadAttestors } from '../../src/agent/workload-attestors/combine.js';
import { createUnixWorkloadAttestor } from '../../src/agent/workload-attestors/unix.js';
import { workload } from '../../src/protocol/index.js';
import { JwtBundle } from '../../src/spiffe/jwt-bundle.js';
import { mintJwtSvid, validateJwtSvid } from '../../src/spiffe/jwt-svid.js';
import { X509Bundle } from '../../src/spiffe/x509-bundle.js';
import { mintX509CaCertificate, X509SvidMinter } from '../../src/spiffe/x509-mint.js';
import { memorySigner } from '../unit/spiffe/x509-support.js';

const PYTHON = '/usr/bin/python3';
const SETPRIV = '/usr/bin/setpriv';
const HOUR = 3600_000;
const ALICE = 64001;
const BOB = 64002;
const NOBODY = 64003;

const PY_CLIENT = `
import json, os, sys
import grpc

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7f
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)

def ld(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data

def fields(buf):
    """(field number, bytes) of a message whose fields are all length-delimited."""
    i, out = 0, []
    while i < len(buf):
        key, shift = 0, 0
        while True:
            b = buf[i]; i += 1
            key |= (b & 0x7f) << shift; shift += 7
            if not b & 0x80: break
        num, wt = key >> 3, key & 7
        if wt != 2: raise ValueError('unexpected wire type %d for field %d' % (wt, num))
        n, shift = 0, 0
        while True:
            b = buf[i]; i += 1
            n |= (b & 0x7f) << shift; shift += 7
            if not b & 0x80: break
        out.append((num, buf[i:i + n])); i += n
    return out

def x509_response(buf):
    svids, fed = [], {}
    for num, v in fields(buf):
        if num == 1:      # X509SVIDResponse.svids: spiffe_id=1 x509_svid=2 x509_svid_key=3 bundle=4 hint=5
            s = {}
            for n2, v2 in fields(v):
                name = {1: 'spiffe_id', 2: 'x509_svid', 3: 'x509_svid_key', 4: 'bundle', 5: 'hint'}[n2]
                s[name] = v2.decode() if n2 in (1, 5) else v2.hex()
            svids.append(s)
        elif num == 3:    # federated_bundles map entry: key=1 value=2
            e = dict(fields(v))
            fed[e[1].decode()] = e[2].hex()
    return {'svids': svids, 'federated_bundles': fed}

ident = lambda b: b
sock, audience, mode = sys.argv[1], sys.argv[2], sys.argv[3]
md = (('workload.spiffe.io', 'true'),)
ch = grpc.insecure_channel('unix:' + sock)
out = {'pid': os.getpid(), 'uid': os.geteuid()}

fetch = ch.unary_stream('/SpiffeWorkloadAPI/FetchX509SVID', request_serializer=ident, response_deserializer=ident)
call = fetch(b'', metadata=md, timeout=20)
try:
    out['x509'] = x509_response(next(call))
    if mode == 'stream':
        print(json.dumps({'first': out['x509']}), flush=True)
        out['x509_update'] = x509_response(next(call))
except grpc.RpcError as e:
    out['x509_error'] = [e.code().name, e.details()]
call.cancel()

jwt = ch.unary_unary('/SpiffeWorkloadAPI/FetchJWTSVID', request_serializer=ident, response_deserializer=ident)
try:
    resp = jwt(ld(1, audience.encode()), metadata=md, timeout=10)
    out['jwt'] = []
    for num, v in fields(resp):   # JWTSVIDResponse.svids=1: spiffe_id=1 svid=2 hint=3
        if num == 1:
            out['jwt'].append({ {1: 'spiffe_id', 2: 'svid', 3: 'hint'}[n]: x.decode() for n, x in fields(v) })
except grpc.RpcError as e:
    out['jwt_error'] = [e.code().name, e.details()]

if out.get('jwt'):
    validate = ch.unary_unary('/SpiffeWorkloadAPI/ValidateJWTSVID', request_serializer=ident, response_deserializer=ident)
    resp = validate(ld(1, audience.encode()) + ld(2, out['jwt'][0]['svid'].encode()), metadata=md, timeout=10)
    out['validate'] = {'raw': resp.hex(), 'spiffe_id': [v.decode() for n, v in fields(resp) if n == 1]}
    try:
        validate(ld(1, b'not-the-audience') + ld(2, out['jwt'][0]['svid'].encode()), metadata=md, timeout=10)
        out['validate_wrong_audience'] = ['OK', '']
    except grpc.RpcError as e:
        out['validate_wrong_audience'] = [e.code().name, e.details()]

try:
    jwt(ld(1, b'a'), timeout=10)
    out['no_header'] = ['OK', '']
except grpc.RpcError as e:
    out['no_header'] = [e.code().name, e.details()]
ch.close()
print(json.dumps(out), flush=True)
`;

interface PyOut {
  pid: number;
  uid: number;
  x509?: { svids: Array<Record<string, string>>; federated_bundles: Record<string, string> };
  x509_update?: { svids: Array<Record<string, string>> };
  x509_error?: [string, string];
  jwt?: Array<{ spiffe_id: string; svid: string; hint?: string }>;
  jwt_error?: [string, string];
  validate?: { raw: string; spiffe_id: string[] };
  validate_wrong_audience?: [string, string];
  no_header: [string, string];
}

const dir = mkdtempSync(join(tmpdir(), 'wl-py-'));
chmodSync(dir, 0o755);
const socketPath = join(dir, 'public', 'api.sock');
const AUDIENCE = 'spiffe://example.org/db';
let server: WorkloadApiServer;
let source: MemoryIdentitySource;
let caDer: Uint8Array;
let jwtBundle: JwtBundle;
let minter: X509SvidMinter;
const children = new Set<ChildProcess>();
const certs = new Map<string, string>();

async function entry(id: string, uid: number, hint = ''): Promise<MemoryIdentityEntry> {
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const notAfter = new Date(Date.now() + HOUR);
  const spiffeId = `spiffe://example.org/${id}`;
  const cert = await minter.mint({
    spiffeId,
    publicKey: key.publicKey,
    notBefore: new Date(Date.now() - 10_000),
    notAfter,
  });
  certs.set(spiffeId, Buffer.from(cert).toString('hex'));
  return {
    entryId: id,
    entryCreatedAt: 1,
    spiffeId,
    certChain: [cert],
    privateKeyPkcs8: new Uint8Array(key.privateKey.export({ format: 'der', type: 'pkcs8' })),
    hint,
    expiresAt: notAfter,
    federatesWith: [],
    selectors: [{ type: 'unix', value: `uid:${uid}` }],
  };
}

beforeAll(async () => {
  for (const bin of [PYTHON, SETPRIV]) {
    if (!existsSync(bin)) {
      throw new Error(
        `${bin} not found: run scripts/setup.sh (installs python3-grpcio, util-linux)`,
      );
    }
  }
  if (process.geteuid?.() !== 0)
    throw new Error('this test runs workloads as other uids: run it as root');
  const caSigner = memorySigner('ec-p256');
  caDer = await mintX509CaCertificate({
    trustDomain: 'example.org',
    subject: { country: ['US'], organization: ['SPIFFE'] },
    publicKey: caSigner.publicKey,
    notBefore: new Date(Date.now() - HOUR),
    notAfter: new Date(Date.now() + 48 * HOUR),
    signer: caSigner,
  });
  minter = new X509SvidMinter({ issuerCertDer: caDer, signer: caSigner });
  const jwtSigner = memorySigner('ec-p256');
  jwtBundle = new JwtBundle('example.org');
  jwtBundle.addJwtAuthority('k1', jwtSigner.publicKey);
  source = new MemoryIdentitySource({
    bundle: { x509: new X509Bundle('example.org', [caDer]), jwt: jwtBundle },
    mintJwtSvid: async (identity, audience) => {
      const expiresAt = new Date(Date.now() + 300_000);
      const token = await mintJwtSvid({
        signer: jwtSigner,
        keyId: 'k1',
        spiffeId: identity.spiffeId,
        audience,
        expiresAt,
      });
      return { token, expiresAt };
    },
  });
  source.upsert(await entry('root-workload', 0, 'internal'));
  source.upsert(await entry('alice', ALICE));
  source.upsert(await entry('bob', BOB));
  server = await startWorkloadApiServer({
    socketPath,
    source,
    attestor: combineWorkloadAttestors([createUnixWorkloadAttestor()]),
  });
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the python client, optionally as another uid; `onLine` sees intermediate lines. */
function runPython(
  mode: 'once' | 'stream',
  uid?: number,
  onLine?: (line: Record<string, unknown>) => void,
): Promise<PyOut> {
  const args = ['-c', PY_CLIENT, socketPath, AUDIENCE, mode];
  const child =
    uid === undefined
      ? spawn(PYTHON, args, {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { PATH: '/usr/bin:/bin', GRPC_VERBOSITY: 'ERROR' },
        })
      : spawn(SETPRIV, [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', PYTHON, ...args], {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { PATH: '/usr/bin:/bin', GRPC_VERBOSITY: 'ERROR', HOME: '/' },
        });
  children.add(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const lines: string[] = [];
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      let nl = out.indexOf('\n');
      while (nl >= 0) {
        lines.push(out.slice(0, nl));
        out = out.slice(nl + 1);
        const parsed = JSON.parse(lines.at(-1)!) as Record<string, unknown>;
        if ('first' in parsed) onLine?.(parsed);
        nl = out.indexOf('\n');
      }
    });
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      children.delete(child);
      if (code !== 0) {
        reject(
          new Error(
            `python3-grpcio client failed (${code}); is python3-grpcio installed? run scripts/setup.sh\n${err}`,
          ),
        );
        return;
      }
      resolve(JSON.parse(lines.at(-1)!) as PyOut);
    });
  });
}

describe('python3-grpcio against the Workload API', () => {
  it('fetches the X509-SVID stream with a pushed update, a JWT-SVID, validates it; no header is InvalidArgument', async () => {
    const out = await runPython('stream', undefined, () => {
      // python has its first message: add an identity, which must reach it on the same stream
      void entry('root-second', 0).then((e) => source.upsert(e));
    });
    expect(out.uid).toBe(0);
    expect(out.x509?.svids.map((s) => [s.spiffe_id, s.hint])).toEqual([
      ['spiffe://example.org/root-workload', 'internal'],
    ]);
    const svid = out.x509!.svids[0]!;
    expect(svid.x509_svid).toBe(certs.get('spiffe://example.org/root-workload'));
    expect(svid.bundle).toBe(Buffer.from(caDer).toString('hex'));
    expect(svid.x509_svid_key?.startsWith('30')).toBe(true);
    expect(out.x509?.federated_bundles).toEqual({});
    expect(out.x509_update?.svids.map((s) => s.spiffe_id)).toEqual([
      'spiffe://example.org/root-second',
      'spiffe://example.org/root-workload',
    ]);
    // one JWT-SVID per identity, each verifiable with the trust domain's JWT bundle
    expect(out.jwt?.map((j) => j.spiffe_id).sort()).toEqual([
      'spiffe://example.org/root-second',
      'spiffe://example.org/root-workload',
    ]);
    for (const j of out.jwt!) {
      const v = await validateJwtSvid(j.svid, jwtBundle, [AUDIENCE]);
      expect(v.id.toString()).toBe(j.spiffe_id);
    }
    expect(out.validate?.spiffe_id).toEqual([out.jwt![0]!.spiffe_id]);
    const validated = fromBinary(
      workload.ValidateJWTSVIDResponseSchema,
      Buffer.from(out.validate!.raw, 'hex'),
    );
    expect(validated.claims?.['sub']).toBe(out.jwt![0]!.spiffe_id);
    expect(validated.claims?.['aud']).toEqual([AUDIENCE]);
    expect(out.validate_wrong_audience?.[0]).toBe('INVALID_ARGUMENT');
    expect(out.no_header).toEqual(['INVALID_ARGUMENT', 'security header missing from request']);
    source.remove('root-second');
  });

  it('two workloads running as different uids get different SVIDs, and nothing else', async () => {
    const [alice, bob, nobody] = await Promise.all([
      runPython('once', ALICE),
      runPython('once', BOB),
      runPython('once', NOBODY),
    ]);
    expect([alice.uid, bob.uid, nobody.uid]).toEqual([ALICE, BOB, NOBODY]);
    expect(alice.x509?.svids.map((s) => s.spiffe_id)).toEqual(['spiffe://example.org/alice']);
    expect(alice.x509?.svids[0]?.x509_svid).toBe(certs.get('spiffe://example.org/alice'));
    expect(alice.jwt?.map((j) => j.spiffe_id)).toEqual(['spiffe://example.org/alice']);
    expect(bob.x509?.svids.map((s) => s.spiffe_id)).toEqual(['spiffe://example.org/bob']);
    expect(bob.x509?.svids[0]?.x509_svid).toBe(certs.get('spiffe://example.org/bob'));
    expect(bob.jwt?.map((j) => j.spiffe_id)).toEqual(['spiffe://example.org/bob']);
    expect(nobody.x509_error).toEqual(['PERMISSION_DENIED', 'no identity issued']);
    expect(nobody.jwt_error).toEqual(['PERMISSION_DENIED', 'no identity issued']);
    // the processes are gone, and so are their connections
    const deadline = Date.now() + 5000;
    while (server.stats().connections > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(server.stats()).toEqual({ connections: 0, streams: 0 });
  });
});
