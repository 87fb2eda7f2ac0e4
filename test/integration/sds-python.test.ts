/**
 * Envoy SDS v3 on the agent's Workload API socket, driven by clients that speak Envoy's
 * wire protocol (no Envoy binary exists on these machines):
 *
 * - Debian's python3-grpcio (gRPC core, C — an independent gRPC implementation), with
 *   generic stubs and DiscoveryRequest / DiscoveryResponse / Secret bytes built and decoded
 *   by hand from the published Envoy API field numbers, runs Envoy's StreamSecrets dialogue
 *   (subscribe with a Node, ACK, pushed rotation, NACK with error_detail, subscription
 *   change, half-close) and FetchSecrets. The SVID chains it decodes are checked with
 *   openssl against the CA certificates it decoded from the ROOTCA / ALL resources.
 * - Run as another uid with `setpriv`, the caller is attested by SO_PEERCRED + pidfd like any
 *   Workload API caller, and cannot fetch another workload's SVID.
 * - Our connect client, with the generated `sdsv3` messages, over the same Unix socket,
 *   which still serves the Workload API; `sds: false` turns SDS off.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
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
import { createUdsTransport } from '../../src/common/grpc.js';
import { encodePem } from '../../src/common/pem.js';
import { sdsv3, WORKLOAD_API_HEADER, workload } from '../../src/protocol/index.js';
import { JwtBundle } from '../../src/spiffe/jwt-bundle.js';
import { X509Bundle } from '../../src/spiffe/x509-bundle.js';
import { mintX509CaCertificate, X509SvidMinter } from '../../src/spiffe/x509-mint.js';
import { memorySigner } from '../unit/spiffe/x509-support.js';

const PYTHON = '/usr/bin/python3';
const SETPRIV = '/usr/bin/setpriv';
const OPENSSL = '/usr/bin/openssl';
const HOUR = 3600_000;
const OTHER_UID = 64021;
const TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';

const PY_CLIENT = `
import json, os, queue, sys, threading
import grpc

TYPE_URL = b'${TYPE_URL}'
SDS = '/envoy.service.secret.v3.SecretDiscoveryService/'

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

def ld(num, data):   # length-delimited field
    return varint(num << 3 | 2) + varint(len(data)) + data

def vi(num, n):      # varint field
    return varint(num << 3) + varint(n)

def fields(buf):
    """(field number, value) pairs: bytes for length-delimited, int for varint fields."""
    i, out = 0, []
    def rd():
        nonlocal i
        v, shift = 0, 0
        while True:
            b = buf[i]; i += 1
            v |= (b & 0x7f) << shift; shift += 7
            if not b & 0x80: return v
    while i < len(buf):
        key = rd(); num, wt = key >> 3, key & 7
        if wt == 0:
            out.append((num, rd()))
        elif wt == 2:
            n = rd(); out.append((num, bytes(buf[i:i + n]))); i += n
        else:
            raise ValueError('unexpected wire type %d for field %d' % (wt, num))
    return out

def node(disable=None, version=(1, 30, 2)):
    # envoy.config.core.v3.Node: id=1 cluster=2 metadata=3 (Struct) user_agent_name=6
    # user_agent_build_version=8 (BuildVersion.version=1: SemanticVersion 1/2/3)
    n = ld(1, b'envoy-test') + ld(2, b'edge-proxy')
    if disable is not None:
        # Struct.fields=1 (map entry key=1, value=2); Value.bool_value=4
        entry = ld(1, b'disable_spiffe_cert_validation') + ld(2, vi(4, 1 if disable else 0))
        n += ld(3, ld(1, entry))
    semver = vi(1, version[0]) + vi(2, version[1]) + vi(3, version[2])
    return n + ld(6, b'envoy') + ld(8, ld(1, semver))

def request(names, version='', nonce='', node_bytes=None, error=None):
    # DiscoveryRequest: version_info=1 node=2 resource_names=3 type_url=4 response_nonce=5
    # error_detail=6 (google.rpc.Status code=1 message=2)
    r = ld(1, version.encode()) if version else b''
    if node_bytes is not None: r += ld(2, node_bytes)
    for name in names: r += ld(3, name.encode())
    r += ld(4, TYPE_URL)
    if nonce: r += ld(5, nonce.encode())
    if error is not None: r += ld(6, vi(1, error[0]) + ld(2, error[1].encode()))
    return r

def inline(buf):     # DataSource.inline_bytes=2
    return dict(fields(buf))[2].decode()

def secret(buf):
    # Secret: name=1 tls_certificate=2 validation_context=4
    s = {}
    for num, v in fields(buf):
        if num == 1:
            s['name'] = v.decode()
        elif num == 2:   # TlsCertificate: certificate_chain=1 private_key=2
            t = dict(fields(v))
            s['tls'] = {'chain': inline(t[1]), 'key': inline(t[2])}
        elif num == 4:   # CertificateValidationContext: trusted_ca=1 custom_validator_config=12
            for n2, v2 in fields(v):
                if n2 == 1:
                    s['trusted_ca'] = inline(v2)
                elif n2 == 12:   # TypedExtensionConfig: name=1 typed_config=2 (Any: type_url=1 value=2)
                    ext = dict(fields(v2))
                    anyv = dict(fields(ext[2]))
                    tds = []
                    for n3, v3 in fields(anyv[2]):   # SPIFFECertValidatorConfig.trust_domains=1
                        if n3 == 1:
                            td = dict(fields(v3))      # TrustDomain: name=1 trust_bundle=2
                            tds.append({'name': td[1].decode(), 'bundle': inline(td[2])})
                    s['validator'] = {'name': ext[1].decode(), 'type_url': anyv[1].decode(), 'trust_domains': tds}
    return s

def response(buf):
    # DiscoveryResponse: version_info=1 resources=2 (Any) type_url=4 nonce=5
    out = {'version': '', 'nonce': '', 'type_url': '', 'resources': []}
    for num, v in fields(buf):
        if num == 1: out['version'] = v.decode()
        elif num == 2:
            a = dict(fields(v))
            if a[1] != TYPE_URL: raise ValueError('unexpected resource type %r' % a[1])
            out['resources'].append(secret(a[2]))
        elif num == 4: out['type_url'] = v.decode()
        elif num == 5: out['nonce'] = v.decode()
    return out

ident = lambda b: b
sock, mode = sys.argv[1], sys.argv[2]
ch = grpc.insecure_channel('unix:' + sock)
out = {'pid': os.getpid(), 'uid': os.geteuid()}

def open_stream():
    reqs, resps = queue.Queue(), queue.Queue()
    def gen():
        while True:
            r = reqs.get()
            if r is None: return
            yield r
    call = ch.stream_stream(SDS + 'StreamSecrets', request_serializer=ident, response_deserializer=ident)(gen(), timeout=30)
    def reader():
        try:
            for r in call: resps.put(('msg', response(r)))
            resps.put(('end', ['OK', '']))
        except grpc.RpcError as e:
            resps.put(('end', [e.code().name, e.details()]))
    threading.Thread(target=reader, daemon=True).start()
    def nxt(timeout=20):
        kind, v = resps.get(timeout=timeout)
        if kind != 'msg': raise RuntimeError('stream ended: %r' % (v,))
        return v
    return reqs, resps, nxt

def fetch(names, node_bytes):
    f = ch.unary_unary(SDS + 'FetchSecrets', request_serializer=ident, response_deserializer=ident)
    try:
        return response(f(request(names, node_bytes=node_bytes), timeout=10))
    except grpc.RpcError as e:
        return {'error': [e.code().name, e.details()]}

if mode == 'stream':
    names = ['spiffe://example.org/web', 'ROOTCA']
    reqs, resps, nxt = open_stream()
    reqs.put(request(names, node_bytes=node(disable=True)))
    r1 = nxt()
    print(json.dumps({'first': r1}), flush=True)
    reqs.put(request(names, version=r1['version'], nonce=r1['nonce']))          # ACK, no node
    r2 = nxt()                                                                # pushed rotation
    reqs.put(request(names, version=r1['version'], nonce=r2['nonce'],
                     error=(13, 'simulated rejection')))                      # NACK
    try:
        out['after_nack'] = nxt(timeout=0.8)
    except queue.Empty:
        out['after_nack'] = None
    names = ['default', 'spiffe://partner.example']
    reqs.put(request(names, version=r1['version'], nonce=r2['nonce']))        # new subscription
    r3 = nxt()
    reqs.put(request(names, version=r3['version'], nonce=r3['nonce']))        # ACK
    reqs.put(None)                                                            # half-close
    kind, end = resps.get(timeout=20)
    out.update({'r1': r1, 'r2': r2, 'r3': r3, 'end': [kind, end]})
elif mode == 'fetch':
    out['all'] = fetch(['ALL', 'default'], node())
    out['unknown'] = fetch(['spiffe://example.org/nope'], node())
    out['old_envoy_all'] = fetch(['ALL'], node(version=(1, 17, 0)))
elif mode == 'other':
    out['web'] = fetch(['spiffe://example.org/web'], node())
    out['everything'] = fetch([], node(disable=True))
    reqs, resps, nxt = open_stream()
    reqs.put(request(['spiffe://example.org/web'], node_bytes=node()))
    kind, v = resps.get(timeout=20)
    out['stream_web'] = v if kind == 'end' else ['OK', 'got a response']
ch.close()
print(json.dumps(out), flush=True)
`;

interface PySecret {
  name: string;
  tls?: { chain: string; key: string };
  trusted_ca?: string;
  validator?: {
    name: string;
    type_url: string;
    trust_domains: Array<{ name: string; bundle: string }>;
  };
}
interface PyResponse {
  version: string;
  nonce: string;
  type_url: string;
  resources: PySecret[];
}
type PyFetch = PyResponse & { error?: [string, string] };

const dir = mkdtempSync(join(tmpdir(), 'sds-py-'));
chmodSync(dir, 0o755);
const socketPath = join(dir, 'public', 'api.sock');
const offSocketPath = join(dir, 'off', 'api.sock');
let server: WorkloadApiServer;
let offServer: WorkloadApiServer;
let source: MemoryIdentitySource;
let caDer: Uint8Array;
let partnerCaDer: Uint8Array;
let minter: X509SvidMinter;
const children = new Set<ChildProcess>();
const certs = new Map<string, Uint8Array>();

async function entry(id: string, uid: number, federatesWith: string[] = []) {
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const notAfter = new Date(Date.now() + HOUR);
  const spiffeId = `spiffe://example.org/${id}`;
  const cert = await minter.mint({
    spiffeId,
    publicKey: key.publicKey,
    notBefore: new Date(Date.now() - 10_000),
    notAfter,
  });
  certs.set(spiffeId, cert);
  const e: MemoryIdentityEntry = {
    entryId: id,
    entryCreatedAt: 1,
    spiffeId,
    certChain: [cert],
    privateKeyPkcs8: new Uint8Array(key.privateKey.export({ format: 'der', type: 'pkcs8' })),
    hint: '',
    expiresAt: notAfter,
    federatesWith,
    selectors: [{ type: 'unix', value: `uid:${uid}` }],
  };
  return e;
}

beforeAll(async () => {
  for (const bin of [PYTHON, SETPRIV, OPENSSL]) {
    if (!existsSync(bin)) {
      throw new Error(
        `${bin} not found: run scripts/setup.sh (installs python3-grpcio, util-linux, openssl)`,
      );
    }
  }
  if (process.geteuid?.() !== 0) {
    throw new Error('this test runs a workload as another uid: run it as root');
  }
  const caSigner = memorySigner('ec-p256');
  const ca = {
    subject: { country: ['US'], organization: ['SPIFFE'] },
    notBefore: new Date(Date.now() - HOUR),
    notAfter: new Date(Date.now() + 48 * HOUR),
  };
  caDer = await mintX509CaCertificate({
    ...ca,
    trustDomain: 'example.org',
    publicKey: caSigner.publicKey,
    signer: caSigner,
  });
  const partnerSigner = memorySigner('ec-p256');
  partnerCaDer = await mintX509CaCertificate({
    ...ca,
    trustDomain: 'partner.example',
    publicKey: partnerSigner.publicKey,
    signer: partnerSigner,
  });
  minter = new X509SvidMinter({ issuerCertDer: caDer, signer: caSigner });
  source = new MemoryIdentitySource({
    bundle: { x509: new X509Bundle('example.org', [caDer]), jwt: new JwtBundle('example.org') },
  });
  source.setFederatedBundle({
    x509: new X509Bundle('partner.example', [partnerCaDer]),
    jwt: new JwtBundle('partner.example'),
  });
  source.upsert(await entry('web', 0, ['partner.example']));
  source.upsert(await entry('other', OTHER_UID));
  const attestor = combineWorkloadAttestors([createUnixWorkloadAttestor()]);
  server = await startWorkloadApiServer({ socketPath, source, attestor });
  offServer = await startWorkloadApiServer({
    socketPath: offSocketPath,
    source,
    attestor,
    sds: false,
  });
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await server?.close();
  await offServer?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the python client, optionally as another uid; `onFirst` sees the first response. */
function runPython(
  mode: 'stream' | 'fetch' | 'other',
  uid?: number,
  onFirst?: (r: PyResponse) => void,
): Promise<Record<string, unknown>> {
  const args = ['-c', PY_CLIENT, socketPath, mode];
  const env = { PATH: '/usr/bin:/bin', GRPC_VERBOSITY: 'ERROR', HOME: '/' };
  const child =
    uid === undefined
      ? spawn(PYTHON, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
      : spawn(SETPRIV, [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', PYTHON, ...args], {
          stdio: ['ignore', 'pipe', 'pipe'],
          env,
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
        const parsed = JSON.parse(lines.at(-1)!) as { first?: PyResponse };
        if (parsed.first !== undefined) onFirst?.(parsed.first);
        nl = out.indexOf('\n');
      }
    });
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 40_000);
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
      resolve(JSON.parse(lines.at(-1)!) as Record<string, unknown>);
    });
  });
}

let fileSeq = 0;
function file(text: string): string {
  const p = join(dir, `f${fileSeq++}.pem`);
  writeFileSync(p, text);
  return p;
}

function openssl(...args: string[]) {
  const r = spawnSync(OPENSSL, args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** `openssl verify` of an SVID chain (PEM) against CA certificates (PEM). */
function verifies(chainPem: string, caPem: string): boolean {
  const r = openssl('verify', '-CAfile', file(caPem), file(chainPem));
  return r.status === 0 && /: OK\s*$/.test(r.out);
}

/** The SVID's URI SAN, and whether its public key is the private key's. */
function inspect(chainPem: string, keyPem: string) {
  const chain = file(chainPem);
  const san = openssl('x509', '-in', chain, '-noout', '-ext', 'subjectAltName').out;
  const certPub = openssl('x509', '-in', chain, '-noout', '-pubkey').out;
  const keyPub = openssl('pkey', '-in', file(keyPem), '-pubout').out;
  return { uri: /URI:(\S+)/.exec(san)?.[1], keyMatches: certPub === keyPub && certPub !== '' };
}

const pemOf = (der: Uint8Array) => encodePem('CERTIFICATE', der);
const byName = (r: PyResponse, name: string) => r.resources.find((s) => s.name === name);

describe('python3-grpcio speaking Envoy SDS v3 to the agent socket', () => {
  it('StreamSecrets: subscribe, ACK, pushed rotation, NACK (no resend), subscription change, half-close; chains verify with openssl', async () => {
    let rotated: Promise<void> | undefined;
    const out = (await runPython('stream', undefined, () => {
      // python has its first response and ACKs it: rotate the SVID, which must be pushed
      rotated = entry('web', 0, ['partner.example']).then((e) => source.upsert(e));
    })) as {
      uid: number;
      r1: PyResponse;
      r2: PyResponse;
      r3: PyResponse;
      after_nack: PyResponse | null;
      end: [string, [string, string]];
    };
    await rotated;
    expect(out.uid).toBe(0);
    const { r1, r2, r3 } = out;
    expect([r1.version, r1.type_url]).toEqual(['1', TYPE_URL]);
    expect(r1.nonce).toMatch(/^[0-9a-f]{16}$/);
    expect(r1.resources.map((s) => s.name)).toEqual(['ROOTCA', 'spiffe://example.org/web']);
    // node metadata disable_spiffe_cert_validation=true: ROOTCA is a trusted_ca PEM
    const rootCa = byName(r1, 'ROOTCA')!;
    expect(rootCa.validator).toBeUndefined();
    expect(rootCa.trusted_ca).toBe(pemOf(caDer));
    const tls1 = byName(r1, 'spiffe://example.org/web')!.tls!;
    expect(verifies(tls1.chain, rootCa.trusted_ca!)).toBe(true);
    expect(verifies(tls1.chain, pemOf(partnerCaDer))).toBe(false);
    expect(inspect(tls1.chain, tls1.key)).toEqual({
      uri: 'spiffe://example.org/web',
      keyMatches: true,
    });

    // the rotation: version 2, a new certificate (the one now held), still verifying
    expect(r2.version).toBe('2');
    expect(r2.nonce).not.toBe(r1.nonce);
    const tls2 = byName(r2, 'spiffe://example.org/web')!.tls!;
    expect(tls2.chain).not.toBe(tls1.chain);
    expect(tls2.chain).toBe(pemOf(certs.get('spiffe://example.org/web')!));
    expect(verifies(tls2.chain, byName(r2, 'ROOTCA')!.trusted_ca!)).toBe(true);
    expect(inspect(tls2.chain, tls2.key).keyMatches).toBe(true);

    // the NACK of version 2 is not answered with the same content again
    expect(out.after_nack).toBeNull();

    // the new subscription (node remembered from the first request: still trusted_ca)
    expect(r3.version).toBe('3');
    expect(r3.resources.map((s) => s.name)).toEqual(['spiffe://partner.example', 'default']);
    expect(byName(r3, 'spiffe://partner.example')?.trusted_ca).toBe(pemOf(partnerCaDer));
    expect(byName(r3, 'default')?.tls?.chain).toBe(tls2.chain);
    // half-close ends the stream with OK
    expect(out.end).toEqual(['end', ['OK', '']]);
  });

  it('FetchSecrets: ALL is the SPIFFE validator with every trust domain; unknown names and old Envoys fail as in SPIRE', async () => {
    const out = (await runPython('fetch')) as {
      all: PyFetch;
      unknown: PyFetch;
      old_envoy_all: PyFetch;
    };
    expect([out.all.version, out.all.nonce, out.all.type_url]).toEqual(['', '', TYPE_URL]);
    expect(out.all.resources.map((s) => s.name)).toEqual(['ALL', 'default']);
    const v = byName(out.all, 'ALL')!.validator!;
    expect(v.name).toBe('envoy.tls.cert_validator.spiffe');
    expect(v.type_url).toBe(
      'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig',
    );
    expect(v.trust_domains).toEqual([
      { name: 'example.org', bundle: pemOf(caDer) },
      { name: 'partner.example', bundle: pemOf(partnerCaDer) },
    ]);
    const tls = byName(out.all, 'default')!.tls!;
    expect(verifies(tls.chain, v.trust_domains[0]!.bundle)).toBe(true);
    expect(verifies(tls.chain, v.trust_domains[1]!.bundle)).toBe(false);
    expect(out.unknown.error).toEqual([
      'INVALID_ARGUMENT',
      'workload is not authorized for the requested identities ["spiffe://example.org/nope"]',
    ]);
    expect(out.old_envoy_all.error).toEqual([
      'INTERNAL',
      'unable to use "SPIFFE validator" on Envoy below 1.17',
    ]);
  });

  it("a workload running as another uid is attested by its peer credentials and cannot fetch another's SVID", async () => {
    const out = (await runPython('other', OTHER_UID)) as {
      uid: number;
      web: PyFetch;
      everything: PyFetch;
      stream_web: [string, string];
    };
    expect(out.uid).toBe(OTHER_UID);
    const denied = [
      'INVALID_ARGUMENT',
      'workload is not authorized for the requested identities ["spiffe://example.org/web"]',
    ];
    expect(out.web.error).toEqual(denied);
    expect(out.stream_web).toEqual(denied);
    expect(out.everything.resources.map((s) => s.name)).toEqual([
      'spiffe://example.org',
      'spiffe://example.org/other',
    ]);
    const tls = byName(out.everything, 'spiffe://example.org/other')!.tls!;
    expect(tls.chain).toBe(pemOf(certs.get('spiffe://example.org/other')!));
    expect(verifies(tls.chain, byName(out.everything, 'spiffe://example.org')!.trusted_ca!)).toBe(
      true,
    );
  });
});

describe('our connect client with the generated sdsv3 messages', () => {
  it('FetchSecrets and StreamSecrets over the socket, which still serves the Workload API', async () => {
    const transport = createUdsTransport(socketPath);
    try {
      const sds = createClient(sdsv3.SecretDiscoveryService, transport);
      const r = await sds.fetchSecrets({ typeUrl: TYPE_URL, resourceNames: ['default', 'ROOTCA'] });
      expect(r.resources.map((a) => anyUnpack(a, sdsv3.SecretSchema)?.name)).toEqual([
        'ROOTCA',
        'default',
      ]);
      const rootCa = anyUnpack(r.resources[0]!, sdsv3.SecretSchema)!;
      expect(rootCa.type.case).toBe('validationContext');
      const cfg =
        rootCa.type.case === 'validationContext'
          ? anyUnpack(
              rootCa.type.value.customValidatorConfig!.typedConfig!,
              sdsv3.SPIFFECertValidatorConfigSchema,
            )
          : undefined;
      expect(cfg?.trustDomains.map((t) => t.name)).toEqual(['example.org']);

      const abort = new AbortController();
      const requests = (async function* () {
        yield create(sdsv3.DiscoveryRequestSchema, {
          typeUrl: TYPE_URL,
          resourceNames: ['spiffe://example.org/web'],
        });
        await new Promise((resolve) => abort.signal.addEventListener('abort', resolve));
      })();
      const it = sds.streamSecrets(requests, { signal: abort.signal })[Symbol.asyncIterator]();
      const first = (await it.next()).value as sdsv3.DiscoveryResponse;
      expect(first.versionInfo).toBe('1');
      const svid = anyUnpack(first.resources[0]!, sdsv3.SecretSchema)!;
      expect(
        svid.type.case === 'tlsCertificate' && svid.type.value.certificateChain?.specifier,
      ).toEqual({
        case: 'inlineBytes',
        value: new Uint8Array(Buffer.from(pemOf(certs.get('spiffe://example.org/web')!))),
      });
      abort.abort();
      await it.return?.();

      const wl = createClient(workload.SpiffeWorkloadAPI, transport);
      for await (const x of wl.fetchX509SVID({}, { headers: { [WORKLOAD_API_HEADER]: 'true' } })) {
        expect(x.svids.map((s) => s.spiffeId)).toEqual(['spiffe://example.org/web']);
        break;
      }
    } finally {
      transport.close();
    }
    const deadline = Date.now() + 5000;
    while (server.stats().connections > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(server.stats()).toEqual({ connections: 0, streams: 0 });
  });

  it('sds: false (disable_sds_api) leaves SDS Unimplemented and the Workload API served', async () => {
    const transport = createUdsTransport(offSocketPath);
    try {
      const sds = createClient(sdsv3.SecretDiscoveryService, transport);
      let code: Code | undefined;
      try {
        await sds.fetchSecrets({ resourceNames: ['default'] });
      } catch (err) {
        code = ConnectError.from(err).code;
      }
      expect(code).toBe(Code.Unimplemented);
      const wl = createClient(workload.SpiffeWorkloadAPI, transport);
      for await (const x of wl.fetchX509SVID({}, { headers: { [WORKLOAD_API_HEADER]: 'true' } })) {
        expect(x.svids).toHaveLength(1);
        break;
      }
    } finally {
      transport.close();
    }
  });
});
