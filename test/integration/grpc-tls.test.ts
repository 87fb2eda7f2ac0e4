/**
 * gRPC over TLS on 127.0.0.1: mutual TLS with certificates made in the test
 * (@peculiar/x509; src/spiffe/x509-mint.ts was not committed when this was written),
 * the client certificate in the handler, unauthenticated callers, certificate rotation
 * and keepalive against a peer that goes silent without closing the connection.
 */
import { X509Certificate as NodeX509, webcrypto } from 'node:crypto';
import net from 'node:net';
import type { PeerCertificate } from 'node:tls';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import * as x509 from '@peculiar/x509';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createTlsTransport,
  type GrpcClientTransport,
  type GrpcServer,
  type GrpcServerOptions,
  type GrpcServerTlsOptions,
  grpcPeer,
  startGrpcServer,
  type TlsGrpcPeer,
} from '../../src/common/grpc.js';
import { healthv1 } from '../../src/protocol/index.js';

const { HealthCheckResponseSchema, HealthCheckResponse_ServingStatus: Status } = healthv1;
const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

interface Issued {
  certPem: string;
  keyPem: string;
  der: Uint8Array;
}

interface Ca extends Issued {
  cert: x509.X509Certificate;
  keys: webcrypto.CryptoKeyPair;
}

let serial = 1;
const nextSerial = () => (serial++).toString(16).padStart(2, '0');

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END PRIVATE KEY-----\n`;
}

async function makeCa(name: string): Promise<Ca> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: nextSerial(),
    name: `CN=${name}`,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    keys,
    signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
    ],
  });
  return {
    cert,
    keys,
    certPem: cert.toString('pem'),
    keyPem: await pkcs8Pem(keys.privateKey),
    der: new Uint8Array(cert.rawData),
  };
}

async function issue(
  ca: Ca,
  sans: x509.JsonGeneralName[],
  usage: 'server' | 'client',
): Promise<Issued> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: nextSerial(),
    subject: '',
    issuer: ca.cert.subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(
        [usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
        false,
      ),
      new x509.SubjectAlternativeNameExtension(sans, true),
    ],
  });
  return {
    certPem: cert.toString('pem'),
    keyPem: await pkcs8Pem(keys.privateKey),
    der: new Uint8Array(cert.rawData),
  };
}

const SERVER_ID = 'spiffe://example.org/spire/server';
const AGENT_ID = 'spiffe://example.org/spire/agent/join_token/abc';

let ca: Ca;
let rogueCa: Ca;
let serverCert: Issued;
let serverCert2: Issued;
let clientCert: Issued;
let rogueClient: Issued;

beforeAll(async () => {
  ca = await makeCa('example.org test CA');
  rogueCa = await makeCa('rogue CA');
  const serverSans: x509.JsonGeneralName[] = [
    { type: 'url', value: SERVER_ID },
    { type: 'ip', value: '127.0.0.1' },
  ];
  serverCert = await issue(ca, serverSans, 'server');
  serverCert2 = await issue(ca, serverSans, 'server');
  clientCert = await issue(ca, [{ type: 'url', value: AGENT_ID }], 'client');
  rogueClient = await issue(rogueCa, [{ type: 'url', value: AGENT_ID }], 'client');
});

const servers: GrpcServer[] = [];
const transports: GrpcClientTransport[] = [];
const cleanups: Array<() => void> = [];
afterEach(async () => {
  for (const t of transports.splice(0)) t.close();
  for (const c of cleanups.splice(0)) c();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

interface Seen {
  peers: TlsGrpcPeer[];
  holding: number;
  aborted: number;
}

function routes(seen: Seen): GrpcServerOptions['routes'] {
  return (router) =>
    router.service(healthv1.Health, {
      async check(_req, ctx) {
        const peer = grpcPeer(ctx);
        if (peer.kind !== 'tls') throw new Error('expected a TLS peer');
        seen.peers.push(peer);
        return create(HealthCheckResponseSchema, { status: Status.SERVING });
      },
      async *watch(_req, ctx) {
        yield create(HealthCheckResponseSchema, { status: Status.SERVING });
        seen.holding++;
        await new Promise<void>((resolve) =>
          ctx.signal.addEventListener('abort', () => resolve(), { once: true }),
        );
        seen.holding--;
        seen.aborted++;
      },
    });
}

async function start(
  seen: Seen,
  tls: Partial<GrpcServerTlsOptions>,
  extra: Partial<GrpcServerOptions> = {},
): Promise<GrpcServer> {
  const server = await startGrpcServer({
    routes: routes(seen),
    listen: {
      host: '127.0.0.1',
      port: 0,
      tls: { cert: serverCert.certPem, key: serverCert.keyPem, ca: ca.certPem, ...tls },
    },
    ...extra,
  });
  servers.push(server);
  return server;
}

function portOf(server: GrpcServer): number {
  if (!('port' in server.address)) throw new Error('expected a TCP address');
  return server.address.port;
}

function health(
  port: number,
  opts: {
    cert?: Issued;
    check?: (h: string, c: PeerCertificate) => Error | undefined;
    caPem?: string;
  } = {},
) {
  const transport = createTlsTransport({
    host: '127.0.0.1',
    port,
    ca: opts.caPem ?? ca.certPem,
    ...(opts.cert === undefined ? {} : { cert: opts.cert.certPem, key: opts.cert.keyPem }),
    ...(opts.check === undefined ? {} : { checkServerIdentity: opts.check }),
  });
  transports.push(transport);
  return createClient(healthv1.Health, transport);
}

/** A SPIFFE-style server check: the URI SAN must be the expected ID (no hostname). */
function expectSpiffeId(id: string, seenSerials?: string[]) {
  return (_host: string, cert: PeerCertificate): Error | undefined => {
    seenSerials?.push(cert.serialNumber);
    return cert.subjectaltname?.split(', ').includes(`URI:${id}`)
      ? undefined
      : new Error(`server is not ${id}`);
  };
}

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error('call succeeded, expected an error');
}

describe('gRPC over TLS', () => {
  it('mutual TLS: the handler sees the verified client certificate', async () => {
    const seen: Seen = { peers: [], holding: 0, aborted: 0 };
    const server = await start(seen, { requestCert: true, rejectUnauthorized: true });
    const res = await health(portOf(server), {
      cert: clientCert,
      check: expectSpiffeId(SERVER_ID),
    }).check({});
    expect(res.status).toBe(Status.SERVING);
    const peer = seen.peers[0]!;
    expect(peer.authorized).toBe(true);
    expect(peer.authorizationError).toBeUndefined();
    expect(peer.remoteAddress).toBe('127.0.0.1');
    expect(peer.certificate?.subjectAltName).toBe(`URI:${AGENT_ID}`);
    expect(Buffer.from(peer.certificateChain[0]!).equals(Buffer.from(clientCert.der))).toBe(true);
    expect(peer.certificate?.raw.equals(Buffer.from(clientCert.der))).toBe(true);
  });

  it('Node hostname check passes on the IP SAN; a SPIFFE check refuses the wrong server ID', async () => {
    const seen: Seen = { peers: [], holding: 0, aborted: 0 };
    const server = await start(seen, {});
    expect((await health(portOf(server)).check({})).status).toBe(Status.SERVING);
    const err = await failure(
      health(portOf(server), { check: expectSpiffeId('spiffe://example.org/other') }).check({}),
    );
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toBe('server is not spiffe://example.org/other');
    expect(seen.peers).toHaveLength(1);
  });

  it('a server whose certificate does not chain to the trusted CA is Unavailable (not Internal)', async () => {
    const seen: Seen = { peers: [], holding: 0, aborted: 0 };
    const server = await start(seen, {});
    const stranger = await makeCa('Stranger CA');
    const err = await failure(health(portOf(server), { caPem: stranger.certPem }).check({}));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toMatch(/certificate/i);
  });

  it('without rejectUnauthorized, unauthenticated and foreign callers reach the handler marked unauthorized', async () => {
    const seen: Seen = { peers: [], holding: 0, aborted: 0 };
    const server = await start(seen, { requestCert: true, rejectUnauthorized: false });
    await health(portOf(server)).check({});
    await health(portOf(server), { cert: rogueClient }).check({});
    const [anon, rogue] = seen.peers;
    expect(anon?.authorized).toBe(false);
    expect(anon?.certificate).toBeUndefined();
    expect(anon?.certificateChain).toEqual([]);
    expect(rogue?.authorized).toBe(false);
    expect(rogue?.authorizationError).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/i);
    expect(rogue?.certificate?.raw.equals(Buffer.from(rogueClient.der))).toBe(true);
  });

  it('with rejectUnauthorized, a client certificate from another CA is refused in the handshake', async () => {
    const seen: Seen = { peers: [], holding: 0, aborted: 0 };
    const server = await start(seen, { requestCert: true, rejectUnauthorized: true });
    // TLS 1.3: the client learns of the refusal after it sent the request, as a reset
    // stream (Canceled) or a failed connection (Unavailable); either way no handler ran.
    const refused = [Code.Canceled, Code.Unavailable];
    const err = await failure(health(portOf(server), { cert: rogueClient }).check({}));
    expect(refused).toContain(err.code);
    const anon = await failure(health(portOf(server)).check({}));
    expect(refused).toContain(anon.code);
    expect(seen.peers).toHaveLength(0);
  });

  it('updateTls rotates the server certificate for new connections', async () => {
    const seen: Seen = { peers: [], holding: 0, aborted: 0 };
    const server = await start(seen, {});
    const serials: string[] = [];
    await health(portOf(server), { check: expectSpiffeId(SERVER_ID, serials) }).check({});
    server.updateTls({ cert: serverCert2.certPem, key: serverCert2.keyPem, ca: ca.certPem });
    await health(portOf(server), { check: expectSpiffeId(SERVER_ID, serials) }).check({});
    const expected = [serverCert, serverCert2].map(
      (c) => new NodeX509(Buffer.from(c.der)).serialNumber,
    );
    expect(serials).toEqual(expected);
  });

  it('keepalive destroys a connection whose peer went silent and aborts its streams', async () => {
    const seen: Seen = { peers: [], holding: 0, aborted: 0 };
    const server = await start(seen, {}, { keepaliveIntervalMs: 100, keepaliveTimeoutMs: 200 });
    // A TCP relay that can stop forwarding without closing anything (a cut cable).
    const pairs: Array<[net.Socket, net.Socket]> = [];
    const relay = net.createServer((down) => {
      const up = net.connect(portOf(server), '127.0.0.1');
      down.pipe(up);
      up.pipe(down);
      down.on('error', () => {});
      up.on('error', () => {});
      pairs.push([down, up]);
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    cleanups.push(() => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      relay.close();
    });
    const relayPort = (relay.address() as net.AddressInfo).port;
    const it = health(relayPort).watch({})[Symbol.asyncIterator]();
    expect((await it.next()).value?.status).toBe(Status.SERVING);
    await expect.poll(() => seen.holding).toBe(1);
    expect(server.stats()).toEqual({ connections: 1, streams: 1 });
    for (const [down, up] of pairs) {
      down.unpipe(up);
      up.unpipe(down);
      down.pause();
      up.pause();
    }
    await expect.poll(() => seen.aborted, { timeout: 3000 }).toBe(1);
    await expect.poll(() => server.stats().connections, { timeout: 3000 }).toBe(0);
    expect(server.stats().streams).toBe(0);
  });

  it('updateTls on a Unix socket server is a TypeError', async () => {
    const seen: Seen = { peers: [], holding: 0, aborted: 0 };
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const d = mkdtempSync(join(tmpdir(), 'grpc-tls-'));
    cleanups.push(() => rmSync(d, { recursive: true, force: true }));
    const server = await startGrpcServer({
      routes: routes(seen),
      listen: { socketPath: join(d, 's') },
    });
    servers.push(server);
    expect(() => server.updateTls({ cert: '', key: '' })).toThrow(TypeError);
  });
});
