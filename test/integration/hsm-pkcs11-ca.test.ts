/**
 * The server's CA manager with both halves on a SoftHSM2 token: the pkcs11 KeyManager holds
 * the X.509 CA and JWT keys, the pkcs11 UpstreamAuthority's root (key and certificate on
 * the token) signs the CA. Rotation is driven by a manual clock; pkcs11-tool shows the key
 * objects being added and replaced, OpenSSL verifies every SVID against the token's root,
 * and a restart re-uses the keys instead of generating new ones.
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

async function advanceTo(s: Server, t: number): Promise<void> {
  while (clock.nowMs() < t) {
    clock.set(Math.min(t, clock.nowMs() + H));
    await s.m.idle();
  }
}

/** CA key objects on the token: label → EC point (hex). */
async function caKeyObjects(): Promise<Record<string, string>> {
  const { stdout } = await hsm.pkcs11Tool([
    '--token-label',
    hsm.label,
    '--login',
    '--pin',
    hsm.pin,
    '--list-objects',
    '--type',
    'pubkey',
  ]);
  const out: Record<string, string> = {};
  for (const block of stdout.split(/\n(?=\S)/)) {
    const label = /^\s+label:\s*(\S+)/m.exec(block)?.[1];
    const point = /^\s+EC_POINT:\s*(\S+)/m.exec(block)?.[1];
    if (label?.startsWith('spire-edge-') && point !== undefined) out[label] = point;
  }
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
  it('issues verifiable SVIDs, rotates onto new token keys, and re-uses them after a restart', async () => {
    const t0 = clock.nowMs();
    let s = await startServer();
    const first = await issue(s, 'first');
    const initial = await caKeyObjects();
    expect(Object.keys(initial).sort()).toEqual([
      'spire-edge-JWT-Signer-A',
      'spire-edge-x509-CA-A',
    ]);
    // The bundle holds the token's root: the CA itself is an intermediate.
    expect(s.m.ca.getX509Authorities().map((a) => Buffer.compare(a, root))).toEqual([0]);

    // Half-way: the next CA is prepared on new key objects.
    await advanceTo(s, t0 + 12 * H);
    const prepared = await caKeyObjects();
    expect(Object.keys(prepared).sort()).toEqual([
      'spire-edge-JWT-Signer-A',
      'spire-edge-JWT-Signer-B',
      'spire-edge-x509-CA-A',
      'spire-edge-x509-CA-B',
    ]);
    expect(prepared['spire-edge-x509-CA-A']).toBe(initial['spire-edge-x509-CA-A']);

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

    // Slot A comes round again once its CA has expired: its retired key pair is replaced.
    await advanceTo(s, t0 + 24 * H + 60_000);
    const rotated = await caKeyObjects();
    expect(Object.keys(rotated).sort()).toEqual(Object.keys(prepared).sort());
    expect(rotated['spire-edge-x509-CA-A']).not.toBe(initial['spire-edge-x509-CA-A']);
    expect(rotated['spire-edge-x509-CA-B']).toBe(prepared['spire-edge-x509-CA-B']);
    await issue(s, 'fourth');
    expect((await s.km.health()).ok).toBe(true);
  });
});
