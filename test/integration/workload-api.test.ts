/**
 * The Workload API server on a real Unix socket with the real `unix` attestor (SO_PEERCRED
 * + pidfd + /proc of this test process), an in-memory identity source holding SVIDs minted
 * by the library under a fresh CA, and our client: X.509 contexts verified against the
 * served bundle, streamed updates and removals, expired SVIDs never served, JWT-SVIDs
 * fetched and validated, bundles, the security header and readiness rules.
 */
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WorkloadApiClient, type X509Context } from '../../src/agent/workload-api/client.js';
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
import type { Signer } from '../../src/common/signer.js';
import { workload } from '../../src/protocol/index.js';
import { JwtBundle } from '../../src/spiffe/jwt-bundle.js';
import { mintJwtSvid, validateJwtSvid } from '../../src/spiffe/jwt-svid.js';
import { X509Bundle } from '../../src/spiffe/x509-bundle.js';
import { mintX509CaCertificate, X509SvidMinter } from '../../src/spiffe/x509-mint.js';
import { verifyX509Svid } from '../../src/spiffe/x509-verify.js';
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

const HOUR = 3600_000;
const dir = mkdtempSync(join(tmpdir(), 'wl-api-'));
chmodSync(dir, 0o755);
const socketPath = join(dir, 'public', 'api.sock');
const UID = process.geteuid!();

interface Domain {
  readonly name: string;
  readonly minter: X509SvidMinter;
  readonly caDer: Uint8Array;
  readonly jwtSigner: Signer;
  readonly bundles: { x509: X509Bundle; jwt: JwtBundle };
}

async function makeDomain(name: string): Promise<Domain> {
  const caSigner = memorySigner('ec-p256');
  const now = Date.now();
  const caDer = await mintX509CaCertificate({
    trustDomain: name,
    subject: { country: ['US'], organization: ['SPIFFE'] },
    publicKey: caSigner.publicKey,
    notBefore: new Date(now - HOUR),
    notAfter: new Date(now + 48 * HOUR),
    signer: caSigner,
  });
  const jwtSigner = memorySigner('ec-p256');
  const jwt = new JwtBundle(name);
  jwt.addJwtAuthority(`${name}-jwt`, jwtSigner.publicKey);
  return {
    name,
    minter: new X509SvidMinter({ issuerCertDer: caDer, signer: caSigner }),
    caDer,
    jwtSigner,
    bundles: { x509: new X509Bundle(name, [caDer]), jwt },
  };
}

let own: Domain;
let partner: Domain;
let source: MemoryIdentitySource;
let server: WorkloadApiServer;
let client: WorkloadApiClient;

async function entry(
  id: string,
  selectors: string[],
  over: Partial<MemoryIdentityEntry> & { notBefore?: number; notAfter?: number } = {},
): Promise<MemoryIdentityEntry> {
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const now = Date.now();
  const notAfter = new Date(over.notAfter ?? now + HOUR);
  const spiffeId = over.spiffeId ?? `spiffe://${own.name}/${id}`;
  const cert = await own.minter.mint({
    spiffeId,
    publicKey: key.publicKey,
    notBefore: new Date(over.notBefore ?? now - 10_000),
    notAfter,
  });
  const { notBefore: _a, notAfter: _b, ...rest } = over;
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
    ...rest,
  };
}

beforeAll(async () => {
  own = await makeDomain('example.org');
  partner = await makeDomain('partner.example');
  source = new MemoryIdentitySource({
    bundle: own.bundles,
    mintJwtSvid: async (identity, audience) => {
      const expiresAt = new Date(Date.now() + 5 * 60_000);
      const token = await mintJwtSvid({
        signer: own.jwtSigner,
        keyId: `${own.name}-jwt`,
        spiffeId: identity.spiffeId,
        audience,
        expiresAt,
      });
      return { token, expiresAt };
    },
  });
  source.setFederatedBundle(partner.bundles);
  server = await startWorkloadApiServer({
    socketPath,
    source,
    attestor: combineWorkloadAttestors([createUnixWorkloadAttestor()]),
  });
  client = new WorkloadApiClient({ socket: `unix://${socketPath}` });
});

afterAll(async () => {
  client?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  for (const e of source.entries()) source.remove(e.entryId);
  source.setReady(true);
});

describe('Workload API over the Unix socket, with our client', () => {
  it('serves this process its X509-SVID, verifiable against the served bundle', async () => {
    source.upsert(
      await entry('web', [`unix:uid:${UID}`], {
        hint: 'internal',
        federatesWith: ['partner.example'],
      }),
    );
    source.upsert(await entry('other-user', ['unix:uid:64001']));
    source.upsert(await entry('needs-more', [`unix:uid:${UID}`, 'docker:label:app:x']));
    source.upsert(
      await entry('expired', [`unix:uid:${UID}`], {
        notBefore: Date.now() - 2 * HOUR,
        notAfter: Date.now() - HOUR,
      }),
    );
    const ctx = await client.fetchX509Context({ timeoutMs: 5000 });
    expect(ctx.svids.map((s) => [s.id.toString(), s.hint])).toEqual([
      ['spiffe://example.org/web', 'internal'],
    ]);
    const svid = ctx.svids[0]!;
    const verified = verifyX509Svid(svid.certificates, ctx.bundles);
    expect(verified.id.toString()).toBe('spiffe://example.org/web');
    expect(svid.expiresAt.getTime()).toBeGreaterThan(Date.now());
    expect([...ctx.federatedBundles.keys()]).toEqual(['partner.example']);
    expect(ctx.bundles.trustDomains().map((t) => t.name)).toEqual([
      'example.org',
      'partner.example',
    ]);
    expect(Buffer.from(ctx.federatedBundles.get('partner.example')!.marshalDer())).toEqual(
      Buffer.from(partner.caDer),
    );
  });

  it('uses SPIFFE_ENDPOINT_SOCKET when no socket is given', async () => {
    source.upsert(await entry('web', [`unix:uid:${UID}`]));
    const viaEnv = new WorkloadApiClient({
      env: { SPIFFE_ENDPOINT_SOCKET: `unix://${socketPath}` },
    });
    try {
      expect(viaEnv.socketPath).toBe(socketPath);
      expect((await viaEnv.fetchX509Context()).svids).toHaveLength(1);
    } finally {
      viaEnv.close();
    }
  });

  it('denies a caller without identity and refuses calls without the security header', async () => {
    source.upsert(await entry('someone-else', ['unix:uid:64001']));
    const denied = await rpcError(client.fetchX509Context());
    expect([denied.code, denied.rawMessage]).toEqual([Code.PermissionDenied, 'no identity issued']);
    const transport = createUdsTransport(socketPath);
    try {
      const raw = createClient(workload.SpiffeWorkloadAPI, transport);
      const err = await rpcError(raw.fetchJWTSVID({ audience: ['a'] }));
      expect([err.code, err.rawMessage]).toEqual([
        Code.InvalidArgument,
        'security header missing from request',
      ]);
    } finally {
      transport.close();
    }
  });

  it('answers Unavailable until the source is ready', async () => {
    source.upsert(await entry('web', [`unix:uid:${UID}`]));
    source.setReady(false);
    const err = await rpcError(client.fetchX509Context());
    expect([err.code, err.rawMessage]).toEqual([Code.Unavailable, 'workload api is not ready']);
  });

  it('streams updates: a new entry, a rotation, a removal, then PermissionDenied when none remain', async () => {
    source.upsert(await entry('a', [`unix:uid:${UID}`]));
    const updates: X509Context[] = [];
    const errors: unknown[] = [];
    const ac = new AbortController();
    let wake: () => void = () => {};
    const watching = client.watchX509Context({
      onUpdate: (u) => {
        updates.push(u);
        wake();
      },
      onError: (e) => {
        errors.push(e);
        wake();
      },
      signal: ac.signal,
      backoff: { initialMs: 20, maxMs: 50 },
    });
    const until = async (cond: () => boolean) => {
      const deadline = Date.now() + 5000;
      while (!cond()) {
        if (Date.now() > deadline) throw new Error('timed out waiting for the stream');
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 100);
        });
      }
    };
    const ids = (u: X509Context | undefined) => u?.svids.map((s) => s.id.path) ?? [];
    await until(() => updates.length === 1);
    expect(ids(updates[0])).toEqual(['/a']);
    source.upsert(await entry('b', [`unix:uid:${UID}`]));
    await until(() => updates.length === 2);
    expect(ids(updates[1])).toEqual(['/a', '/b']);
    const before = Buffer.from(updates[1]!.svids[0]!.certificates[0]!);
    source.upsert(await entry('a', [`unix:uid:${UID}`]));
    await until(() => updates.length === 3);
    expect(Buffer.from(updates[2]!.svids[0]!.certificates[0]!).equals(before)).toBe(false);
    source.remove('a');
    await until(() => updates.length === 4);
    expect(ids(updates[3])).toEqual(['/b']);
    source.remove('b');
    await until(() => errors.length > 0);
    expect(ConnectError.from(errors[0]).code).toBe(Code.PermissionDenied);
    // the watch keeps retrying and picks the identity up again when it comes back
    source.upsert(await entry('c', [`unix:uid:${UID}`]));
    await until(() => updates.length === 5);
    expect(ids(updates[4])).toEqual(['/c']);
    ac.abort();
    await watching;
    await new Promise((r) => setTimeout(r, 50));
    expect(source.listenerCount).toBe(0);
  });

  it('fetches a JWT-SVID and validates it through the agent and against the served JWT bundles', async () => {
    source.upsert(await entry('web', [`unix:uid:${UID}`], { hint: 'h1' }));
    const [fetched, ...rest] = await client.fetchJwtSvids({
      audience: ['spiffe://example.org/db'],
    });
    expect(rest).toEqual([]);
    expect(fetched?.hint).toBe('h1');
    expect(fetched?.svid.id.toString()).toBe('spiffe://example.org/web');
    const token = fetched!.svid.token;
    const validated = await client.validateJwtSvid(token, 'spiffe://example.org/db');
    expect(validated.spiffeId.toString()).toBe('spiffe://example.org/web');
    expect(validated.claims['aud']).toEqual(['spiffe://example.org/db']);
    const jwtBundles = await client.fetchJwtBundles();
    expect(jwtBundles.trustDomains().map((t) => t.name)).toEqual(['example.org']);
    const local = await validateJwtSvid(token, jwtBundles, ['spiffe://example.org/db']);
    expect(local.id.toString()).toBe('spiffe://example.org/web');
    const wrongAudience = await rpcError(client.validateJwtSvid(token, 'someone-else'));
    expect(wrongAudience.code).toBe(Code.InvalidArgument);
    const x509Bundles = await client.fetchX509Bundles();
    expect(x509Bundles.trustDomains().map((t) => t.name)).toEqual(['example.org']);
  });

  it('closes open streams with Unavailable when the server stops', async () => {
    const extraSocket = join(dir, 'second', 'api.sock');
    const second = await startWorkloadApiServer({
      socketPath: extraSocket,
      source,
      attestor: createUnixWorkloadAttestor(),
      shutdownGraceMs: 500,
    });
    source.upsert(await entry('web', [`unix:uid:${UID}`]));
    const c2 = new WorkloadApiClient({ socket: extraSocket });
    const errors: unknown[] = [];
    let updates = 0;
    const ac = new AbortController();
    const watching = c2.watchX509Context({
      onUpdate: () => updates++,
      onError: (e) => errors.push(e),
      signal: ac.signal,
      backoff: { initialMs: 10_000, maxMs: 10_000 },
    });
    while (updates === 0) await new Promise((r) => setTimeout(r, 10));
    expect(second.stats().streams).toBe(1);
    await second.close();
    while (errors.length === 0) await new Promise((r) => setTimeout(r, 10));
    expect(ConnectError.from(errors[0]).code).toBe(Code.Unavailable);
    ac.abort();
    await watching;
    c2.close();
  });
});
