/**
 * The server's CA manager with both halves on a SoftHSM2 token: the pkcs11 KeyManager holds
 * the X.509 CA and JWT keys, the pkcs11 UpstreamAuthority's root (key and certificate on
 * the token) signs the CA. Rotation is driven by a manual clock; pkcs11-tool shows each
 * rotation adding new key objects and the retired ones being destroyed only once their
 * authority has left the bundle, OpenSSL verifies every SVID against the token's root, and
 * a restart re-uses the keys instead of generating new ones.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { encodePem } from '../../src/common/pem.js';
import { openPkcs11KeyManager, type Pkcs11KeyManager } from '../../src/hsm/pkcs11/key-manager.js';
import {
  openPkcs11UpstreamAuthority,
  type Pkcs11UpstreamAuthority,
  provisionPkcs11UpstreamRoot,
} from '../../src/hsm/pkcs11/upstream-authority.js';
import { MemoryJournalStore } from '../../src/server/ca/journal.js';
import { CaManager } from '../../src/server/ca/manager.js';
import { parseCertificate } from '../../src/spiffe/x509-cert.js';
import { makeTempDir, removeTempDir, run } from '../harness/common.js';
import { type SoftHsmInstance, startSoftHsm } from '../harness/softhsm.js';

const H = 3600_000;
const TD = 'example.org';
let hsm: SoftHsmInstance;
let dir: string;
let root: Uint8Array;
const clock = new ManualClock(Date.now());
const store = new MemoryJournalStore();
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  hsm = await startSoftHsm({ label: 'ca' });
  process.env['SOFTHSM2_CONF'] = hsm.confPath; // read at C_Initialize; this file's own process
  dir = await makeTempDir('hsm-pkcs11-ca');
  root = await provisionPkcs11UpstreamRoot({
    modulePath: hsm.modulePath,
    tokenLabel: hsm.label,
    pin: hsm.pin,
    keyLabel: 'upstream-root',
    keyType: 'ec-p384',
    trustDomain: TD,
    subject: { organization: ['Example'], commonName: 'Example HSM Root' },
    ttlSeconds: 60 * 86_400,
    clock,
  });
});

afterAll(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await hsm?.stop();
  if (dir !== undefined) await removeTempDir(dir);
});

interface Server {
  km: Pkcs11KeyManager;
  ua: Pkcs11UpstreamAuthority;
  m: CaManager;
  close(): Promise<void>;
}

async function startServer(): Promise<Server> {
  const base = { modulePath: hsm.modulePath, tokenLabel: hsm.label, pin: hsm.pin };
  const km = await openPkcs11KeyManager(base);
  const ua = await openPkcs11UpstreamAuthority({ ...base, keyLabel: 'upstream-root', clock });
  const m = await CaManager.start({
    trustDomain: TD,
    keyManager: km,
    journalStore: store,
    upstreamAuthority: ua,
    clock,
  });
  const server = {
    km,
    ua,
    m,
    async close() {
      await m.close();
      await ua.close();
      await km.close();
    },
  };
  closers.push(() => server.close());
  return server;
}

async function advanceTo(s: { m: CaManager }, t: number): Promise<void> {
  while (clock.nowMs() < t) {
    clock.set(Math.min(t, clock.nowMs() + H));
    await s.m.idle();
  }
}

/** pkcs11-tool's view of the token's objects labelled `prefix…`: `{ class, label, point }`. */
async function tokenObjects(
  prefix: string,
): Promise<Array<{ kind: 'private' | 'public'; label: string; point?: string }>> {
  const { stdout } = await hsm.pkcs11Tool([
    '--token-label',
    hsm.label,
    '--login',
    '--pin',
    hsm.pin,
    '--list-objects',
  ]);
  const out: Array<{ kind: 'private' | 'public'; label: string; point?: string }> = [];
  for (const block of stdout.split(/\n(?=\S)/)) {
    const kind = /^Private Key Object/.test(block)
      ? 'private'
      : /^Public Key Object/.test(block)
        ? 'public'
        : undefined;
    const label = /^\s+label:\s*(\S+)/m.exec(block)?.[1];
    const point = /^\s+EC_POINT:\s*(\S+)/m.exec(block)?.[1];
    if (kind === undefined || label === undefined || !label.startsWith(prefix)) continue;
    out.push({ kind, label, ...(point === undefined ? {} : { point }) });
  }
  return out;
}

/**
 * CA key pairs on the token (labels `prefix…`): label → EC point (hex) of the public key.
 * Checks that every key is a private/public pair, so a half-destroyed key shows up.
 */
async function caKeyObjects(prefix = 'spire-edge-'): Promise<Record<string, string>> {
  const objects = await tokenObjects(prefix);
  const out: Record<string, string> = {};
  for (const o of objects) if (o.kind === 'public' && o.point !== undefined) out[o.label] = o.point;
  const privates = objects.filter((o) => o.kind === 'private').map((o) => o.label);
  expect(privates.sort()).toEqual(Object.keys(out).sort());
  return out;
}

async function opensslVerify(chain: Uint8Array[], name: string): Promise<string> {
  const file = async (n: string, ders: Uint8Array[]) => {
    const p = join(dir, n);
    await writeFile(p, ders.map((d) => encodePem('CERTIFICATE', d)).join(''));
    return p;
  };
  const res = await run(
    'openssl',
    [
      'verify',
      '-attime',
      String(Math.floor(clock.nowMs() / 1000)),
      '-CAfile',
      await file(`${name}-root.pem`, [root]),
      '-untrusted',
      await file(`${name}-chain.pem`, chain.slice(1)),
      await file(`${name}-leaf.pem`, chain.slice(0, 1)),
    ],
    { allowFailure: true },
  );
  return `${res.stdout}${res.stderr}`.trim();
}

async function issue(s: Server, name: string): Promise<Uint8Array[]> {
  const svid = await s.m.ca.signX509Svid({
    spiffeId: `spiffe://${TD}/workload/${name}`,
    publicKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
  });
  expect(svid.certChain).toHaveLength(2); // leaf, the CA signed by the token's root
  expect(await opensslVerify(svid.certChain, name)).toMatch(/: OK$/);
  return svid.certChain;
}

describe('CA manager over the pkcs11 KeyManager and UpstreamAuthority', () => {
  it('issues verifiable SVIDs, rotates onto new token keys, re-uses them after a restart, destroys retired ones', async () => {
    const t0 = clock.nowMs();
    let s = await startServer();
    const first = await issue(s, 'first');
    const initial = await caKeyObjects();
    expect(Object.keys(initial).sort()).toEqual([
      'spire-edge-JWT-Signer-A-1',
      'spire-edge-x509-CA-A-1',
    ]);
    // The bundle holds the token's root: the CA itself is an intermediate.
    expect(s.m.ca.getX509Authorities().map((a) => Buffer.compare(a, root))).toEqual([0]);

    // Half-way: the next CA is prepared on new key objects.
    await advanceTo(s, t0 + 12 * H);
    const prepared = await caKeyObjects();
    expect(Object.keys(prepared).sort()).toEqual([
      'spire-edge-JWT-Signer-A-1',
      'spire-edge-JWT-Signer-B-2',
      'spire-edge-x509-CA-A-1',
      'spire-edge-x509-CA-B-2',
    ]);
    expect(prepared['spire-edge-x509-CA-A-1']).toBe(initial['spire-edge-x509-CA-A-1']);

    // At 5/6 the new CA signs.
    await advanceTo(s, t0 + 20 * H);
    const second = await issue(s, 'second');
    expect(Buffer.compare(second[1]!, first[1]!)).not.toBe(0);

    // A restart finds the same keys on the token and generates nothing.
    await s.close();
    closers.pop();
    s = await startServer();
    expect(await caKeyObjects()).toEqual(prepared);
    const third = await issue(s, 'third');
    expect(Buffer.compare(third[1]!, second[1]!)).toBe(0);

    // Slot A comes round again: new key objects, while the first CA's stay (SVIDs it signed
    // may still be in use until its notAfter, and its JWT key is still in the bundle).
    await advanceTo(s, t0 + 24 * H + 60_000);
    const rotated = await caKeyObjects();
    expect(Object.keys(rotated).sort()).toEqual([
      'spire-edge-JWT-Signer-A-1',
      'spire-edge-JWT-Signer-A-3',
      'spire-edge-JWT-Signer-B-2',
      'spire-edge-x509-CA-A-1',
      'spire-edge-x509-CA-A-3',
      'spire-edge-x509-CA-B-2',
    ]);
    expect(rotated['spire-edge-x509-CA-A-1']).toBe(initial['spire-edge-x509-CA-A-1']);
    expect(rotated['spire-edge-x509-CA-A-3']).not.toBe(initial['spire-edge-x509-CA-A-1']);
    await issue(s, 'fourth');

    // The upstream-signed CA is not itself in the bundle: its key pair goes at its
    // notAfter + margin, and the JWT key's when its kid leaves the bundle (the same time,
    // give or take the certificate's whole-second notAfter).
    const firstNotAfter = parseCertificate(first[1]!).notAfter.getTime();
    await advanceTo(s, firstNotAfter + 24 * H - 60_000);
    const due = await caKeyObjects(); // B'' (slot B, serial 4) has been prepared meanwhile
    expect(due['spire-edge-x509-CA-A-1']).toBe(initial['spire-edge-x509-CA-A-1']);
    expect(due['spire-edge-JWT-Signer-A-1']).toBe(initial['spire-edge-JWT-Signer-A-1']);
    await advanceTo(s, firstNotAfter + 24 * H);
    expect(Object.keys(await caKeyObjects())).not.toContain('spire-edge-x509-CA-A-1');
    await advanceTo(s, t0 + 48 * H);
    const pruned = await caKeyObjects();
    const { 'spire-edge-x509-CA-A-1': _x, 'spire-edge-JWT-Signer-A-1': _j, ...rest } = due;
    expect(pruned).toEqual(rest);
    expect(Object.keys(pruned).sort()).toEqual([
      'spire-edge-JWT-Signer-A-3',
      'spire-edge-JWT-Signer-B-2',
      'spire-edge-JWT-Signer-B-4',
      'spire-edge-x509-CA-A-3',
      'spire-edge-x509-CA-B-2',
      'spire-edge-x509-CA-B-4',
    ]);
    expect(s.m.ca.getX509Authorities().map((a) => Buffer.compare(a, root))).toEqual([0]);
    await issue(s, 'fifth');
    expect((await s.km.health()).ok).toBe(true);
    await s.close();
    closers.pop();
  });

  it('destroys a self-signed CA key pair only once its root has left the bundle', async () => {
    const prefix = 'selfsigned-';
    const others = await caKeyObjects(); // another manager's keys on the same token
    const km = await openPkcs11KeyManager({
      modulePath: hsm.modulePath,
      tokenLabel: hsm.label,
      pin: hsm.pin,
      keyLabelPrefix: prefix,
    });
    const m = await CaManager.start({
      trustDomain: TD,
      keyManager: km,
      journalStore: new MemoryJournalStore(),
      clock,
    });
    closers.push(async () => {
      await m.close();
      await km.close();
    });
    const t1 = clock.nowMs();
    const rootA = m.bundle.x509Authorities[0]!.certificate;
    const kidA = m.status().jwt.current!.jwtKeyId!;
    const inBundle = (cert: Uint8Array) =>
      m.bundle.x509Authorities.some((a) => Buffer.compare(a.certificate, cert) === 0);
    const initial = await caKeyObjects(prefix);
    expect(Object.keys(initial).sort()).toEqual([
      'selfsigned-JWT-Signer-A-1',
      'selfsigned-x509-CA-A-1',
    ]);
    // The other manager's keys (another label prefix) are not in this one's naming scheme.
    expect(await caKeyObjects()).toEqual(others);

    await advanceTo({ m }, t1 + 24 * H);
    expect(Object.keys(await caKeyObjects(prefix)).sort()).toEqual([
      'selfsigned-JWT-Signer-A-1',
      'selfsigned-JWT-Signer-A-3',
      'selfsigned-JWT-Signer-B-2',
      'selfsigned-x509-CA-A-1',
      'selfsigned-x509-CA-A-3',
      'selfsigned-x509-CA-B-2',
    ]);

    // A's root is retired (B has been active since 20 h) but still in the bundle: its keys stay.
    const pruneAt = parseCertificate(rootA).notAfter.getTime() + 24 * H;
    await advanceTo({ m }, pruneAt - 60_000);
    expect(inBundle(rootA)).toBe(true);
    const before = await caKeyObjects(prefix);
    expect(before['selfsigned-x509-CA-A-1']).toBe(initial['selfsigned-x509-CA-A-1']);
    expect(before['selfsigned-JWT-Signer-A-1']).toBe(initial['selfsigned-JWT-Signer-A-1']);

    // The root leaves the bundle, and then its key pair is destroyed (the JWT key's kid
    // leaves with its own notAfter, up to a second later: the certificate's is whole seconds).
    await advanceTo({ m }, pruneAt);
    expect(inBundle(rootA)).toBe(false);
    const labels = (await tokenObjects(prefix)).map((o) => o.label);
    expect(labels.filter((l) => l.endsWith('x509-CA-A-1'))).toEqual([]);
    expect(labels.filter((l) => l.endsWith('x509-CA-A-3'))).toHaveLength(2); // private + public
    await advanceTo({ m }, pruneAt + 1000);
    expect(m.bundle.jwtAuthorities.map((j) => j.keyId)).not.toContain(kidA);
    const after = await tokenObjects(prefix);
    expect(after.filter((o) => o.label.endsWith('-A-1'))).toEqual([]);
    expect(Object.keys(await caKeyObjects(prefix)).sort()).toEqual([
      'selfsigned-JWT-Signer-A-3',
      'selfsigned-JWT-Signer-A-5',
      'selfsigned-JWT-Signer-B-2',
      'selfsigned-JWT-Signer-B-4',
      'selfsigned-x509-CA-A-3',
      'selfsigned-x509-CA-A-5',
      'selfsigned-x509-CA-B-2',
      'selfsigned-x509-CA-B-4',
    ]);
    expect(await caKeyObjects()).toEqual(others);
  });
});
