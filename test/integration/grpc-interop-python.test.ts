/**
 * Interop with an independent gRPC implementation: Debian's python3-grpcio (gRPC core,
 * C) calls a Workload-API-shaped service over `unix:/path` with generic stubs and
 * hand-built protobuf bytes, decoding the answers by hand with the field numbers of the
 * published workload.proto — so neither side's encoding relies on our generated code.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpireEdgeError } from '../../src/common/errors.js';
import { type GrpcServer, grpcPeer, startGrpcServer } from '../../src/common/grpc.js';
import { WORKLOAD_API_HEADER, workload } from '../../src/protocol/index.js';

const PYTHON = '/usr/bin/python3';

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
    """(field number, value) of a message with only length-delimited fields."""
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

ident = lambda b: b
md = (('workload.spiffe.io', 'true'),)
ch = grpc.insecure_channel('unix:' + sys.argv[1])
out = {'pid': os.getpid()}

fetch = ch.unary_stream('/SpiffeWorkloadAPI/FetchX509SVID', request_serializer=ident, response_deserializer=ident)
call = fetch(b'', metadata=md, timeout=10)
first = next(call)
call.cancel()
svids, crl, fed = [], [], {}
for num, v in fields(first):
    if num == 1:   # X509SVIDResponse.svids
        s = {}
        for n2, v2 in fields(v):
            name = {1: 'spiffe_id', 2: 'x509_svid', 3: 'x509_svid_key', 4: 'bundle', 5: 'hint'}[n2]
            s[name] = v2.decode() if n2 in (1, 5) else v2.hex()
        svids.append(s)
    elif num == 2: # crl
        crl.append(v.hex())
    elif num == 3: # federated_bundles map entry: key=1, value=2
        e = dict(fields(v))
        fed[e[1].decode()] = e[2].hex()
out['x509'] = {'raw': first.hex(), 'svids': svids, 'crl': crl, 'federated_bundles': fed}

try:
    next(fetch(b'', timeout=10))
    out['no_header'] = ['OK', '']
except grpc.RpcError as e:
    out['no_header'] = [e.code().name, e.details()]

validate = ch.unary_unary('/SpiffeWorkloadAPI/ValidateJWTSVID', request_serializer=ident, response_deserializer=ident)
req = ld(1, b'spiffe://example.org/db') + ld(2, b'eyJhbGciOiJFUzI1NiJ9.e30.c2ln')
resp = validate(req, metadata=md, timeout=10)
spiffe_id = [v.decode() for n, v in fields(resp) if n == 1]
out['validate'] = {'raw': resp.hex(), 'spiffe_id': spiffe_id}
ch.close()
print(json.dumps(out))
`;

const dir = mkdtempSync(join(tmpdir(), 'grpc-py-'));
const socketPath = join(dir, 'public', 'api.sock');
let server: GrpcServer;
const seen = {
  pids: [] as number[],
  validate: [] as Array<{ audience: string; svid: string }>,
  aborted: 0,
};

const x509Response = create(workload.X509SVIDResponseSchema, {
  svids: [
    {
      spiffeId: 'spiffe://example.org/web',
      x509Svid: Uint8Array.from([0x30, 0x82, 0x01, 0x0a, 1, 2, 3]),
      x509SvidKey: Uint8Array.from([0x30, 0x81, 0x87, 9, 8, 7]),
      bundle: Uint8Array.from([0x30, 0x82, 0x02, 0x00, 0xca]),
      hint: 'internal',
    },
    {
      spiffeId: 'spiffe://example.org/web-ext',
      x509Svid: Uint8Array.from([0x30, 1, 0]),
      x509SvidKey: Uint8Array.from([0x30, 2, 0, 0]),
      bundle: Uint8Array.from([0x30, 0]),
      hint: 'external',
    },
  ],
  crl: [Uint8Array.from([0x30, 0x03, 0xc0, 0x1])],
  federatedBundles: { 'spiffe://partner.example': Uint8Array.from([0x30, 0x05, 0xfe]) },
});

const validateResponse = create(workload.ValidateJWTSVIDResponseSchema, {
  spiffeId: 'spiffe://example.org/web',
  claims: {
    sub: 'spiffe://example.org/web',
    aud: ['spiffe://example.org/db'],
    exp: 1767225600,
    nested: { ok: true, none: null },
  },
});

beforeAll(async () => {
  if (!existsSync(PYTHON)) {
    throw new Error(`${PYTHON} not found: run scripts/setup.sh (installs python3-grpcio)`);
  }
  server = await startGrpcServer({
    listen: { socketPath, dirMode: 0o755, mode: 0o777, peerCredentials: true },
    routes: (router) =>
      router.service(workload.SpiffeWorkloadAPI, {
        async *fetchX509SVID(_req, ctx) {
          if (ctx.requestHeader.get(WORKLOAD_API_HEADER) !== 'true') {
            throw new SpireEdgeError(
              'ERR_WORKLOAD_SECURITY_HEADER_INVALID',
              'security header missing from request',
            );
          }
          const peer = grpcPeer(ctx);
          if (peer.kind === 'unix' && peer.cred !== undefined) seen.pids.push(peer.cred.pid);
          yield x509Response;
          await new Promise<void>((resolve) =>
            ctx.signal.addEventListener('abort', () => resolve(), { once: true }),
          );
          seen.aborted++;
        },
        async validateJWTSVID(req, ctx) {
          if (ctx.requestHeader.get(WORKLOAD_API_HEADER) !== 'true') {
            throw new SpireEdgeError(
              'ERR_WORKLOAD_SECURITY_HEADER_INVALID',
              'security header missing from request',
            );
          }
          seen.validate.push({ audience: req.audience, svid: req.svid });
          return validateResponse;
        },
      }),
  });
});

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

function runPython(): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-c', PY_CLIENT, socketPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: '/usr/bin:/bin', GRPC_VERBOSITY: 'ERROR' },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(
          new Error(
            `python3-grpcio client failed (${code}); is python3-grpcio installed? run scripts/setup.sh\n${err}`,
          ),
        );
        return;
      }
      resolve(JSON.parse(out) as Record<string, unknown>);
    });
  });
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('python3-grpcio interop on a Unix socket', () => {
  it('streams FetchX509SVID, answers ValidateJWTSVID and maps the header error', async () => {
    const out = (await runPython()) as {
      pid: number;
      x509: {
        raw: string;
        svids: Array<Record<string, string>>;
        crl: string[];
        federated_bundles: Record<string, string>;
      };
      no_header: [string, string];
      validate: { raw: string; spiffe_id: string[] };
    };

    // bytes on the wire are exactly what our encoder produces
    expect(out.x509.raw).toBe(hex(toBinary(workload.X509SVIDResponseSchema, x509Response)));
    // and the hand decoder with the published field numbers reads the same values
    expect(out.x509.svids).toEqual(
      x509Response.svids.map((s) => ({
        spiffe_id: s.spiffeId,
        x509_svid: hex(s.x509Svid),
        x509_svid_key: hex(s.x509SvidKey),
        bundle: hex(s.bundle),
        hint: s.hint,
      })),
    );
    expect(out.x509.crl).toEqual(['3003c001']);
    expect(out.x509.federated_bundles).toEqual({ 'spiffe://partner.example': '3005fe' });

    // the header check failed as the Workload API says: InvalidArgument + message
    expect(out.no_header).toEqual(['INVALID_ARGUMENT', 'security header missing from request']);

    // python's hand-built request decoded by us
    expect(seen.validate).toEqual([
      { audience: 'spiffe://example.org/db', svid: 'eyJhbGciOiJFUzI1NiJ9.e30.c2ln' },
    ]);
    expect(out.validate.spiffe_id).toEqual(['spiffe://example.org/web']);
    const decoded = fromBinary(
      workload.ValidateJWTSVIDResponseSchema,
      Buffer.from(out.validate.raw, 'hex'),
    );
    expect(decoded.claims).toEqual(validateResponse.claims);

    // the handler saw the python process through SO_PEERCRED
    expect(seen.pids).toEqual([out.pid]);
    // python's cancel() reached the streaming handler
    await expect.poll(() => seen.aborted, { timeout: 3000 }).toBe(1);
    expect(server.stats().streams).toBe(0);
  });
});
