import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../src/common/clock.js';
import { isSpireEdgeError, SpireEdgeError } from '../../../../src/common/errors.js';
import { seededRandom } from '../../../../src/common/random.js';
import type { KeyType } from '../../../../src/common/signer.js';
import { openDiskKeyManager } from '../../../../src/hsm/disk.js';
import type { KeyManager, ManagedKey } from '../../../../src/hsm/key-manager.js';
import { MemoryKeyManager } from '../../../../src/hsm/memory.js';
import { decodeJournal, MemoryJournalStore } from '../../../../src/server/ca/journal.js';
import {
  type BundleChange,
  type CaEvent,
  CaManager,
  type CaManagerConfig,
} from '../../../../src/server/ca/manager.js';
import type { CaBundle } from '../../../../src/server/ca/server-ca.js';
import { JwtBundle } from '../../../../src/spiffe/jwt-bundle.js';
import { validateJwtSvid } from '../../../../src/spiffe/jwt-svid.js';
import { X509Bundle } from '../../../../src/spiffe/x509-bundle.js';
import { parseCertificate } from '../../../../src/spiffe/x509-cert.js';
import { verifyX509Svid } from '../../../../src/spiffe/x509-verify.js';

const TD = 'example.org';
const H = 3600 * 1000;
const T0 = Date.UTC(2026, 0, 1);
const MARGIN = 24 * H;

/** A KeyManager that forwards to a real one, with injectable failures. */
class FaultyKeyManager implements KeyManager {
  readonly name = 'faulty';
  failGenerate: SpireEdgeError | undefined;
  failDelete: SpireEdgeError | undefined;
  /** Keys generated from now on cannot sign. */
  brokenKeys = false;
  /** Called before each deletion. */
  beforeDelete: ((id: string) => void) | undefined;
  generated: string[] = [];
  deleted: string[] = [];
  constructor(readonly inner: KeyManager) {}
  async generateKey(id: string, keyType: KeyType): Promise<ManagedKey> {
    if (this.failGenerate !== undefined) throw this.failGenerate;
    this.generated.push(id);
    const key = await this.inner.generateKey(id, keyType);
    if (!this.brokenKeys) return key;
    return {
      id: key.id,
      fingerprint: key.fingerprint,
      keyType: key.keyType,
      publicKey: key.publicKey,
      publicKeySpki: key.publicKeySpki,
      sign: async () => {
        throw new SpireEdgeError('ERR_KEY_MANAGER_SIGN_FAILED', 'token refused to sign');
      },
    };
  }
  getKey(id: string) {
    return this.inner.getKey(id);
  }
  listKeys() {
    return this.inner.listKeys();
  }
  async deleteKey(id: string) {
    this.beforeDelete?.(id);
    if (this.failDelete !== undefined) throw this.failDelete;
    const had = await this.inner.deleteKey(id);
    if (had) this.deleted.push(id);
    return had;
  }
  close() {
    return this.inner.close();
  }
}

const managers: CaManager[] = [];
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const m of managers.splice(0)) await m.close();
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Harness {
  m: CaManager;
  clock: ManualClock;
  km: FaultyKeyManager;
  store: MemoryJournalStore;
  bundles: CaBundle[];
  changes: BundleChange[];
  events: CaEvent[];
}

async function start(
  opts: {
    clock?: ManualClock;
    km?: KeyManager;
    store?: MemoryJournalStore;
    config?: Partial<CaManagerConfig>;
  } = {},
): Promise<Harness> {
  const clock = opts.clock ?? new ManualClock(T0);
  const km = new FaultyKeyManager(opts.km ?? new MemoryKeyManager());
  const store = opts.store ?? new MemoryJournalStore();
  const bundles: CaBundle[] = [];
  const changes: BundleChange[] = [];
  const events: CaEvent[] = [];
  const m = await CaManager.start({
    trustDomain: TD,
    keyManager: km,
    journalStore: store,
    clock,
    random: seededRandom(7),
    onBundleChange: (b, c) => {
      bundles.push(b);
      changes.push(c);
    },
    onEvent: (e) => events.push(e),
    ...opts.config,
  });
  managers.push(m);
  return { m, clock, km, store, bundles, changes, events };
}

/**
 * Moves the clock to `t` in steps of at most `stepMs`, letting the manager finish its work
 * after each (a rotation step runs at the time the clock stopped at, so one big jump models
 * a server that was suspended and catches up at once).
 */
async function advanceTo(h: Harness, t: number, stepMs = H): Promise<void> {
  while (h.clock.nowMs() < t) {
    h.clock.set(Math.min(t, h.clock.nowMs() + stepMs));
    await h.m.idle();
  }
}

function svidKey(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
}

const certOf = (h: Harness): Uint8Array => h.m.ca.getCurrentX509Ca()!.certificate;
const keyIds = async (h: Harness): Promise<string[]> => (await h.km.listKeys()).map((k) => k.id);
const rootsOf = (h: Harness): Uint8Array[] => h.m.bundle.x509Authorities.map((a) => a.certificate);
const hasRoot = (h: Harness, c: Uint8Array): boolean =>
  rootsOf(h).some((r) => Buffer.compare(r, c) === 0);

/** Signs an SVID and returns the bundle authority it verifies to. */
async function signAndVerify(h: Harness, id = `spiffe://${TD}/workload`): Promise<Uint8Array> {
  const svid = await h.m.ca.signX509Svid({ spiffeId: id, publicKey: svidKey() });
  const res = verifyX509Svid(svid.certChain, new X509Bundle(TD, rootsOf(h)), {
    now: h.clock.now(),
  });
  expect(res.id.toString()).toBe(id);
  return res.verifiedChains[0]!.at(-1)!;
}

async function jwtKid(h: Harness): Promise<string> {
  const { token } = await h.m.ca.signJwtSvid({ spiffeId: `spiffe://${TD}/w`, audience: ['aud'] });
  const svid = await validateJwtSvid(token, new JwtBundle(TD, h.m.bundle.jwtAuthorities), ['aud'], {
    now: h.clock.now(),
  });
  return svid.header.kid;
}

describe('CA manager rotation schedule (ca_ttl 24 h)', () => {
  it('prepares and activates slot A at first start, with a self-signed CA shaped as SPIRE does', async () => {
    const h = await start();
    const st = h.m.status();
    expect(st.x509.current).toMatchObject({ slotId: 'A', status: 'active', keyId: 'x509-CA-A-1' });
    expect(st.x509.next).toBeUndefined();
    expect(st.jwt.current).toMatchObject({
      slotId: 'A',
      status: 'active',
      keyId: 'JWT-Signer-A-1',
    });
    expect(await keyIds(h)).toEqual(['JWT-Signer-A-1', 'x509-CA-A-1']);

    const ca = parseCertificate(certOf(h));
    expect(ca.notBefore.getTime()).toBe(T0 - 10_000);
    expect(ca.notAfter.getTime()).toBe(T0 + 24 * H);
    expect(ca.extensions.basicConstraints?.ca).toBe(true);
    expect(ca.extensions.subjectAltName?.uris).toEqual([`spiffe://${TD}`]);
    expect(Buffer.compare(ca.issuerDer, ca.subjectDer)).toBe(0);
    const key = await h.km.getKey('x509-CA-A-1');
    expect(Buffer.compare(ca.spkiDer, key!.publicKeySpki)).toBe(0);

    // The bundle holds A's root and JWT key, and the listener saw them.
    expect(rootsOf(h)).toEqual([certOf(h)]);
    expect(h.m.bundle.jwtAuthorities).toHaveLength(1);
    expect(h.bundles).toHaveLength(1);
    expect(h.changes[0]!.addedX509).toHaveLength(1);
    expect(h.events.map((e) => e.type)).toEqual([
      'x509-ca-prepared',
      'x509-ca-activated',
      'jwt-key-prepared',
      'jwt-key-activated',
    ]);
    expect(Buffer.compare(await signAndVerify(h), certOf(h))).toBe(0);
    // kid: 32 characters of SPIRE's alphabet.
    expect(h.m.bundle.jwtAuthorities[0]!.keyId).toMatch(/^[A-Za-z0-9]{32}$/);
  });

  it('prepares B at 1/2 life (root in the bundle at once) while A still signs, activates B at 5/6', async () => {
    const h = await start();
    const a = certOf(h);
    const kidA = await jwtKid(h);

    await advanceTo(h, T0 + 12 * H - 1000);
    expect(h.m.status().x509.next).toBeUndefined();
    expect(rootsOf(h)).toHaveLength(1);

    await advanceTo(h, T0 + 12 * H);
    expect(h.m.status().x509.next).toMatchObject({
      slotId: 'B',
      status: 'prepared',
      keyId: 'x509-CA-B-2',
    });
    expect(h.m.status().jwt.next).toMatchObject({ slotId: 'B', status: 'prepared' });
    expect(rootsOf(h)).toHaveLength(2);
    const b = rootsOf(h)[1]!;
    expect(parseCertificate(b).notAfter.getTime()).toBe(T0 + 36 * H);
    expect(h.m.bundle.jwtAuthorities).toHaveLength(2);
    expect(h.changes.at(-1)).toMatchObject({ removedX509: [], removedJwt: [] });
    expect(h.changes.at(-1)!.addedX509).toEqual([b]);
    // A still signs, X.509 and JWT.
    expect(Buffer.compare(certOf(h), a)).toBe(0);
    expect(Buffer.compare(await signAndVerify(h), a)).toBe(0);
    expect(await jwtKid(h)).toBe(kidA);

    await advanceTo(h, T0 + 20 * H - 1000);
    expect(h.m.status().x509.current?.slotId).toBe('A');
    expect(Buffer.compare(await signAndVerify(h), a)).toBe(0);

    await advanceTo(h, T0 + 20 * H);
    expect(h.m.status().x509.current).toMatchObject({ slotId: 'B', status: 'active' });
    expect(h.m.status().x509.next).toMatchObject({ slotId: 'A', status: 'old' });
    expect(Buffer.compare(certOf(h), b)).toBe(0);
    expect(Buffer.compare(await signAndVerify(h), b)).toBe(0);
    const kidB = await jwtKid(h);
    expect(kidB).not.toBe(kidA);
    expect(h.m.status().jwt.current).toMatchObject({
      slotId: 'B',
      status: 'active',
      jwtKeyId: kidB,
    });
    // A's root stays: A's SVIDs are still valid.
    expect(hasRoot(h, a)).toBe(true);
  });

  it("keeps A's root and JWT key until A's last SVID has expired (+ margin), then prunes them", async () => {
    const h = await start();
    const a = certOf(h);
    const kidA = await jwtKid(h);
    // An SVID signed by A just before the switch lives until A's notAfter.
    await advanceTo(h, T0 + 20 * H - 1000);
    const late = await h.m.ca.signX509Svid({
      spiffeId: `spiffe://${TD}/late`,
      publicKey: svidKey(),
    });
    expect(late.expiresAt.getTime()).toBe(T0 + 21 * H - 1000);

    // The schedule goes on: A' (slot A again, on a new key) prepared at 24 h, active
    // at 32 h; B' prepared at 36 h, active at 44 h. A's root stays all along.
    await advanceTo(h, T0 + 24 * H);
    expect(h.m.status().x509.next).toMatchObject({ slotId: 'A', status: 'prepared' });
    expect(h.m.status().x509.next!.issuedAt.getTime()).toBe(T0 + 24 * H);
    await advanceTo(h, T0 + 32 * H);
    expect(h.m.status().x509.current).toMatchObject({ slotId: 'A', status: 'active' });
    await advanceTo(h, T0 + 36 * H);
    expect(h.m.status().x509.next).toMatchObject({ slotId: 'B', status: 'prepared' });
    await advanceTo(h, T0 + 44 * H);
    expect(h.m.status().x509.current).toMatchObject({ slotId: 'B', status: 'active' });
    expect(h.m.status().x509.current!.issuedAt.getTime()).toBe(T0 + 36 * H);
    expect(rootsOf(h)).toHaveLength(4);

    await advanceTo(h, T0 + 24 * H + MARGIN - 1000);
    expect(hasRoot(h, a)).toBe(true);
    expect(h.m.bundle.jwtAuthorities.some((j) => j.keyId === kidA)).toBe(true);

    await advanceTo(h, T0 + 24 * H + MARGIN);
    expect(hasRoot(h, a)).toBe(false);
    expect(h.m.bundle.jwtAuthorities.some((j) => j.keyId === kidA)).toBe(false);
    expect(h.changes.at(-1)!.removedX509).toEqual([a]);
    expect(h.changes.at(-1)!.removedJwt).toEqual([kidA]);
    expect(h.events.filter((e) => e.type === 'authority-pruned')).toHaveLength(2);
    // B, A', B' and A'' (prepared at 48 h, B''s half-life).
    expect(h.m.status().x509.next).toMatchObject({ slotId: 'A', status: 'prepared' });
    expect(rootsOf(h)).toHaveLength(4);
    expect(Buffer.compare(await signAndVerify(h), certOf(h))).toBe(0);
  });

  it('caps the SVID TTL at the CA notAfter, defaults to 1 h and backdates NotBefore by 10 s', async () => {
    const h = await start();
    const pub = svidKey();
    await advanceTo(h, T0 + 2 * H + 500); // not on a whole second
    const d = await h.m.ca.signX509Svid({ spiffeId: `spiffe://${TD}/w`, publicKey: pub });
    const leaf = parseCertificate(d.certChain[0]!);
    expect(d.certChain).toHaveLength(1); // self-signed CA: the chain stops below the root
    expect(leaf.notBefore.getTime()).toBe(T0 + 2 * H - 10_000);
    expect(leaf.notAfter.getTime()).toBe(T0 + 3 * H);
    expect(d.expiresAt.getTime()).toBe(leaf.notAfter.getTime());

    await advanceTo(h, T0 + 19 * H);
    const capped = await h.m.ca.signX509Svid({
      spiffeId: `spiffe://${TD}/w`,
      publicKey: pub,
      ttlSeconds: 10 * 3600,
      dnsNames: ['w.example.org'],
    });
    expect(capped.expiresAt.getTime()).toBe(T0 + 24 * H);
    expect(parseCertificate(capped.certChain[0]!).notAfter.getTime()).toBe(T0 + 24 * H);
    expect(parseCertificate(capped.certChain[0]!).extensions.subjectAltName?.dnsNames).toEqual([
      'w.example.org',
    ]);

    const jwt = await h.m.ca.signJwtSvid({ spiffeId: `spiffe://${TD}/w`, audience: ['a', 'b'] });
    expect(jwt.expiresAt.getTime()).toBe(T0 + 19 * H + 300_000);
    const jwtCapped = await h.m.ca.signJwtSvid({
      spiffeId: `spiffe://${TD}/w`,
      audience: ['a'],
      ttlSeconds: 24 * 3600,
    });
    expect(jwtCapped.expiresAt.getTime()).toBe(T0 + 24 * H);
  });

  it('signs from a CSR, refuses foreign IDs and bad TTLs with their codes', async () => {
    const h = await start();
    const { execFileSync } = await import('node:child_process');
    const dir = await mkdtemp(join(tmpdir(), 'ca-csr-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyPath = join(dir, 'k.pem');
    await (await import('node:fs/promises')).writeFile(
      keyPath,
      privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    const csr = new Uint8Array(
      execFileSync('openssl', [
        'req',
        '-new',
        '-key',
        keyPath,
        '-subj',
        '/CN=ignored',
        '-outform',
        'DER',
      ]),
    );
    const svid = await h.m.ca.signX509SvidFromCsr(csr, {
      spiffeId: `spiffe://${TD}/csr`,
      ttlSeconds: 60,
    });
    const leaf = parseCertificate(svid.certChain[0]!);
    expect(Buffer.compare(leaf.spkiDer, publicKey.export({ type: 'spki', format: 'der' }))).toBe(0);
    expect(leaf.extensions.subjectAltName?.uris).toEqual([`spiffe://${TD}/csr`]);
    expect(svid.expiresAt.getTime()).toBe(T0 + 60_000);

    const tampered = Uint8Array.from(csr);
    tampered[tampered.length - 3] = tampered[tampered.length - 3]! ^ 0xff;
    await expect(
      h.m.ca.signX509SvidFromCsr(tampered, { spiffeId: `spiffe://${TD}/csr` }),
    ).rejects.toMatchObject({ code: 'ERR_CSR_INVALID' });
    await expect(
      h.m.ca.signX509Svid({ spiffeId: 'spiffe://other.org/w', publicKey }),
    ).rejects.toMatchObject({ code: 'ERR_CA_SPIFFE_ID_NOT_MEMBER' });
    await expect(
      h.m.ca.signJwtSvid({ spiffeId: 'spiffe://other.org/w', audience: ['a'] }),
    ).rejects.toMatchObject({ code: 'ERR_CA_SPIFFE_ID_NOT_MEMBER' });
    await expect(h.m.ca.signX509Svid({ spiffeId: 'not an id', publicKey })).rejects.toMatchObject({
      code: 'ERR_SPIFFE_ID_INVALID',
    });
    await expect(
      h.m.ca.signX509Svid({ spiffeId: `spiffe://${TD}/w`, publicKey, ttlSeconds: -5 }),
    ).rejects.toThrow(TypeError);
  });

  it('follows ca_ttl: with a 6 h CA, prepares at 3 h and activates at 5 h', async () => {
    const h = await start({ config: { caTtlSeconds: 6 * 3600 } });
    await advanceTo(h, T0 + 3 * H - 1000);
    expect(h.m.status().x509.next).toBeUndefined();
    await advanceTo(h, T0 + 3 * H);
    expect(h.m.status().x509.next?.status).toBe('prepared');
    await advanceTo(h, T0 + 5 * H);
    expect(h.m.status().x509.current?.slotId).toBe('B');
  });
});

describe('CA manager restart (journal + KeyManager)', () => {
  async function diskKm(): Promise<{ open: () => Promise<KeyManager> }> {
    const dir = await mkdtemp(join(tmpdir(), 'ca-restart-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return { open: () => openDiskKeyManager({ keysPath: join(dir, 'keys.json') }) };
  }

  it('keeps the active CA and key across a restart with the same journal and disk KeyManager', async () => {
    const disk = await diskKm();
    const store = new MemoryJournalStore();
    const clock = new ManualClock(T0);
    const km1 = await disk.open();
    const h1 = await start({ clock, km: km1, store });
    const ca1 = certOf(h1);
    const fp1 = (await km1.getKey('x509-CA-A-1'))!.fingerprint;
    const kid1 = await jwtKid(h1);
    await advanceTo(h1, T0 + 2 * H);
    await h1.m.close();
    await km1.close();

    const km2 = await disk.open();
    cleanups.push(() => km2.close());
    clock.set(T0 + 3 * H);
    const h2 = await start({ clock, km: km2, store });
    expect(h2.km.generated).toEqual([]); // nothing new minted
    expect(h2.km.deleted).toEqual([]); // nothing the journal names is deleted
    expect(Buffer.compare(certOf(h2), ca1)).toBe(0);
    expect((await km2.getKey('x509-CA-A-1'))!.fingerprint).toBe(fp1);
    expect(Buffer.compare(await signAndVerify(h2), ca1)).toBe(0);
    expect(await jwtKid(h2)).toBe(kid1);
    expect(rootsOf(h2)).toEqual([ca1]);
    expect(h2.events.filter((e) => e.type === 'journal-entry-unusable')).toEqual([]);
    // The schedule continues from the journal's times.
    await advanceTo(h2, T0 + 12 * H);
    expect(h2.m.status().x509.next?.status).toBe('prepared');
  });

  it('restores a prepared B and activates it on schedule, or at once when restarted past 5/6', async () => {
    const disk = await diskKm();
    const store = new MemoryJournalStore();
    const clock = new ManualClock(T0);
    const km1 = await disk.open();
    const h1 = await start({ clock, km: km1, store });
    await advanceTo(h1, T0 + 12 * H);
    const b = rootsOf(h1)[1]!;
    await h1.m.close();
    await km1.close();

    const km2 = await disk.open();
    cleanups.push(() => km2.close());
    clock.set(T0 + 21 * H); // past A's activation threshold (20 h)
    const h2 = await start({ clock, km: km2, store });
    expect(h2.km.generated).toEqual([]);
    expect(h2.m.status().x509.current).toMatchObject({ slotId: 'B', status: 'active' });
    expect(Buffer.compare(certOf(h2), b)).toBe(0);
    expect(rootsOf(h2)).toHaveLength(2); // A's root is still needed
  });

  it('re-prepares when the KeyManager lost the keys (memory KeyManager), keeping the old roots', async () => {
    const store = new MemoryJournalStore();
    const clock = new ManualClock(T0);
    const h1 = await start({ clock, store });
    const ca1 = certOf(h1);
    await h1.m.close();

    clock.set(T0 + H);
    const h2 = await start({ clock, store }); // a fresh, empty memory KeyManager
    expect(h2.events).toContainEqual({
      type: 'journal-entry-unusable',
      kind: 'x509',
      slotId: 'A',
      reason: 'no key manager key',
    });
    expect(h2.events).toContainEqual({
      type: 'journal-entry-unusable',
      kind: 'jwt',
      slotId: 'A',
      reason: 'no key manager key',
    });
    expect(Buffer.compare(certOf(h2), ca1)).not.toBe(0);
    expect(hasRoot(h2, ca1)).toBe(true); // SVIDs of the lost CA still verify
    expect(rootsOf(h2)).toHaveLength(2);
  });

  it('treats a key that differs from the journal as unusable and prepares a new CA', async () => {
    const disk = await diskKm();
    const store = new MemoryJournalStore();
    const clock = new ManualClock(T0);
    const km1 = await disk.open();
    const h1 = await start({ clock, km: km1, store });
    const ca1 = certOf(h1);
    await h1.m.close();
    const foreign = await km1.generateKey('x509-CA-A-1', 'ec-p256'); // someone replaced the key
    await km1.close();
    const km2 = await disk.open();
    cleanups.push(() => km2.close());
    const h2 = await start({ clock, km: km2, store });
    expect(h2.events).toContainEqual({
      type: 'journal-entry-unusable',
      kind: 'x509',
      slotId: 'A',
      reason: 'public key does not match key manager key',
    });
    // A new key under a new id: the one the journal names is neither regenerated nor deleted.
    expect(h2.km.generated).toEqual(['x509-CA-A-2']);
    expect(h2.m.status().x509.current?.keyId).toBe('x509-CA-A-2');
    expect((await km2.getKey('x509-CA-A-1'))?.fingerprint).toBe(foreign.fingerprint);
    // Once the lost CA's root has left the bundle, its key is due; the key under its id is
    // not the CA's, so it stays.
    await advanceTo(h2, T0 + 24 * H + MARGIN);
    expect(hasRoot(h2, ca1)).toBe(false);
    expect(h2.events).toContainEqual({
      type: 'key-delete-skipped',
      keyManagerKeyId: 'x509-CA-A-1',
      reason: 'the key manager key is not the one the journal recorded',
    });
    expect((await km2.getKey('x509-CA-A-1'))?.fingerprint).toBe(foreign.fingerprint);
    expect(h2.km.deleted).not.toContain('x509-CA-A-1');
  });

  it('refuses a corrupt journal with ERR_CA_JOURNAL_CORRUPT instead of starting over', async () => {
    const store = new MemoryJournalStore(Buffer.from('{"format":"spire-edge-ca-journal","ver'));
    const err = await start({ store }).catch((e: unknown) => e);
    expect(isSpireEdgeError(err, 'ERR_CA_JOURNAL_CORRUPT')).toBe(true);
  });
});

describe('CA manager failures', () => {
  const kmDown = new SpireEdgeError('ERR_KEY_MANAGER_STORE_IO', 'cannot write keys file');

  it('fails start with ERR_CA_KEY_MANAGER when no key can be generated', async () => {
    const inner = new MemoryKeyManager();
    const km = new FaultyKeyManager(inner);
    km.failGenerate = kmDown;
    const err = await CaManager.start({
      trustDomain: TD,
      keyManager: km,
      journalStore: new MemoryJournalStore(),
      clock: new ManualClock(T0),
    }).catch((e: unknown) => e);
    expect(isSpireEdgeError(err, 'ERR_CA_KEY_MANAGER')).toBe(true);
    expect(((err as Error).cause as SpireEdgeError).code).toBe('ERR_KEY_MANAGER_STORE_IO');
  });

  it('keeps A active when preparing B fails, reports the coded error, retries after 10 s', async () => {
    const h = await start();
    const a = certOf(h);
    const savesBefore = h.store.saves;
    h.km.failGenerate = kmDown;
    await advanceTo(h, T0 + 12 * H);
    const failure = h.events.find((e) => e.type === 'rotation-failed');
    expect(failure).toBeDefined();
    const error = (failure as { error: SpireEdgeError }).error;
    expect(error.code).toBe('ERR_CA_KEY_MANAGER');
    expect((error.cause as SpireEdgeError).code).toBe('ERR_KEY_MANAGER_STORE_IO');
    expect(h.m.status().x509.next).toBeUndefined();
    expect(Buffer.compare(certOf(h), a)).toBe(0);
    expect(rootsOf(h)).toEqual([a]);
    expect(h.store.saves).toBe(savesBefore);
    expect(Buffer.compare(await signAndVerify(h), a)).toBe(0);
    await expect(h.m.rotateNow()).rejects.toMatchObject({ code: 'ERR_CA_KEY_MANAGER' });

    h.km.failGenerate = undefined;
    await advanceTo(h, T0 + 12 * H + 9_000);
    expect(h.m.status().x509.next).toBeUndefined();
    await advanceTo(h, T0 + 12 * H + 10_000);
    expect(h.m.status().x509.next?.status).toBe('prepared');
    expect(h.m.status().jwt.next?.status).toBe('prepared');
  });

  it('keeps the previous state when the journal cannot be saved (ERR_CA_JOURNAL_SAVE_FAILED)', async () => {
    const h = await start();
    const a = certOf(h);
    const save = h.store.save.bind(h.store);
    h.store.save = async () => {
      throw new Error('disk full');
    };
    await advanceTo(h, T0 + 12 * H);
    const failure = h.events.find((e) => e.type === 'rotation-failed') as { error: SpireEdgeError };
    expect(failure.error.code).toBe('ERR_CA_JOURNAL_SAVE_FAILED');
    expect(h.m.status().x509.next).toBeUndefined();
    expect(rootsOf(h)).toEqual([a]);
    // The keys of the unsaved step stay while the store may still hold that journal…
    expect(await keyIds(h)).toEqual([
      'JWT-Signer-A-1',
      'JWT-Signer-B-2',
      'x509-CA-A-1',
      'x509-CA-B-2',
    ]);
    await advanceTo(h, T0 + 12 * H + 20_000, 10_000); // two more failed retries
    expect(h.km.deleted).toEqual([]);
    h.store.save = save;
    await advanceTo(h, T0 + 12 * H + 30_000);
    expect(h.m.status().x509.next).toMatchObject({ status: 'prepared', keyId: 'x509-CA-B-5' });
    // …and go once a journal without them is saved.
    expect(h.km.generated).toEqual([
      'x509-CA-A-1',
      'JWT-Signer-A-1',
      'x509-CA-B-2',
      'JWT-Signer-B-2',
      'x509-CA-B-3',
      'JWT-Signer-B-3',
      'x509-CA-B-4',
      'JWT-Signer-B-4',
      'x509-CA-B-5',
      'JWT-Signer-B-5',
    ]);
    expect(await keyIds(h)).toEqual([
      'JWT-Signer-A-1',
      'JWT-Signer-B-5',
      'x509-CA-A-1',
      'x509-CA-B-5',
    ]);
    expect(
      h.events.filter((e) => e.type === 'key-deleted').every((e) => e.reason === 'unused'),
    ).toBe(true);
  });

  it('deletes the key of a preparation that failed after generating it', async () => {
    const h = await start();
    h.km.brokenKeys = true; // the new CA key cannot sign its certificate
    await advanceTo(h, T0 + 12 * H);
    const failure = h.events.find((e) => e.type === 'rotation-failed') as { error: SpireEdgeError };
    expect(failure.error.code).toBe('ERR_CA_SIGN_FAILED');
    expect(h.km.generated).toContain('x509-CA-B-2');
    expect(h.events).toContainEqual({
      type: 'key-deleted',
      kind: 'x509',
      keyManagerKeyId: 'x509-CA-B-2',
      reason: 'unused',
    });
    // The JWT key was prepared and kept; the CA's failed key is gone.
    expect(await keyIds(h)).toEqual(['JWT-Signer-A-1', 'JWT-Signer-B-2', 'x509-CA-A-1']);
    h.km.brokenKeys = false;
    await advanceTo(h, T0 + 12 * H + 10_000);
    expect(h.m.status().x509.next).toMatchObject({ status: 'prepared', keyId: 'x509-CA-B-3' });
    expect(await keyIds(h)).toEqual([
      'JWT-Signer-A-1',
      'JWT-Signer-B-2',
      'x509-CA-A-1',
      'x509-CA-B-3',
    ]);
  });

  it("surfaces a KeyManager signing error as ERR_CA_SIGN_FAILED with the KeyManager's code", async () => {
    const h = await start();
    await h.km.deleteKey(h.m.status().x509.current!.keyId);
    await h.km.deleteKey(h.m.status().jwt.current!.keyId);
    const err = await h.m.ca
      .signX509Svid({ spiffeId: `spiffe://${TD}/w`, publicKey: svidKey() })
      .catch((e: unknown) => e);
    expect(isSpireEdgeError(err, 'ERR_CA_SIGN_FAILED')).toBe(true);
    expect(((err as Error).cause as SpireEdgeError).code).toBe('ERR_KEY_MANAGER_KEY_NOT_FOUND');
    await expect(
      h.m.ca.signJwtSvid({ spiffeId: `spiffe://${TD}/w`, audience: ['a'] }),
    ).rejects.toMatchObject({ code: 'ERR_CA_SIGN_FAILED' });
  });

  it('rejects rotateNow after close with ERR_CA_CLOSED and fires no more timers', async () => {
    const h = await start();
    await h.m.close();
    await expect(h.m.rotateNow()).rejects.toMatchObject({ code: 'ERR_CA_CLOSED' });
    await advanceTo(h, T0 + 13 * H);
    expect(h.m.status().x509.next).toBeUndefined();
    expect(h.clock.pendingTimers).toBe(0);
  });
});

describe('CA manager key lifecycle', () => {
  it('gives every rotation new keys and deletes retired ones only after their authority left the bundle', async () => {
    const h = await start();
    const a = certOf(h);
    const kidA = await jwtKid(h);
    const fpA = (await h.km.getKey('x509-CA-A-1'))!.fingerprint;
    // Whenever a key is deleted, neither the saved journal nor the bundle may hold its authority.
    const early: string[] = [];
    h.km.beforeDelete = (id) => {
      const saved = decodeJournal(h.store.bytes!);
      const entry = saved.x509Cas.find((e) => e.keyManagerKeyId === id);
      const kid = saved.jwtKeys.find((e) => e.keyManagerKeyId === id)?.keyId;
      const held =
        (entry !== undefined &&
          (saved.x509Authorities.some(
            (x) => Buffer.compare(x.certificate, entry.certificate) === 0,
          ) ||
            hasRoot(h, entry.certificate))) ||
        (kid !== undefined &&
          (saved.jwtAuthorities.some((j) => j.keyId === kid) ||
            h.m.bundle.jwtAuthorities.some((j) => j.keyId === kid)));
      // Also wrong: deleting an id the journal does not name as exactly one kind of key.
      if (held || (entry === undefined) === (kid === undefined)) early.push(id);
    };

    await advanceTo(h, T0 + 12 * H);
    expect(await keyIds(h)).toEqual([
      'JWT-Signer-A-1',
      'JWT-Signer-B-2',
      'x509-CA-A-1',
      'x509-CA-B-2',
    ]);
    expect((await h.km.getKey('x509-CA-A-1'))!.fingerprint).toBe(fpA);

    // B active at 20 h; A' prepared at 24 h on new keys while A's root is still in the bundle.
    await advanceTo(h, T0 + 24 * H);
    expect(h.m.status().x509).toMatchObject({
      current: { slotId: 'B', keyId: 'x509-CA-B-2', status: 'active' },
      next: { slotId: 'A', keyId: 'x509-CA-A-3', status: 'prepared' },
    });
    expect(await keyIds(h)).toEqual([
      'JWT-Signer-A-1',
      'JWT-Signer-A-3',
      'JWT-Signer-B-2',
      'x509-CA-A-1',
      'x509-CA-A-3',
      'x509-CA-B-2',
    ]);
    expect((await h.km.getKey('x509-CA-A-1'))!.fingerprint).toBe(fpA);

    // A's root and kid stay until A's notAfter + margin, and so do its keys.
    await advanceTo(h, T0 + 24 * H + MARGIN - 1000);
    expect(hasRoot(h, a)).toBe(true);
    expect((await keyIds(h)).filter((id) => id.endsWith('-A-1'))).toEqual([
      'JWT-Signer-A-1',
      'x509-CA-A-1',
    ]);
    expect(h.km.deleted).toEqual([]);

    await advanceTo(h, T0 + 24 * H + MARGIN);
    expect(hasRoot(h, a)).toBe(false);
    expect(h.m.bundle.jwtAuthorities.some((j) => j.keyId === kidA)).toBe(false);
    expect(h.km.deleted.sort()).toEqual(['JWT-Signer-A-1', 'x509-CA-A-1']);
    expect(await h.km.getKey('x509-CA-A-1')).toBeUndefined();
    const types = h.events.map((e) => e.type);
    expect(types.lastIndexOf('authority-pruned')).toBeLessThan(types.indexOf('key-deleted'));
    expect(h.events.filter((e) => e.type === 'key-deleted')).toEqual([
      { type: 'key-deleted', kind: 'x509', keyManagerKeyId: 'x509-CA-A-1', reason: 'retired' },
      { type: 'key-deleted', kind: 'jwt', keyManagerKeyId: 'JWT-Signer-A-1', reason: 'retired' },
    ]);
    // The journal still lists A (old) with its key id: only the key object is gone.
    expect(decodeJournal(h.store.bytes!).x509Cas[0]).toMatchObject({
      keyManagerKeyId: 'x509-CA-A-1',
      status: 'old',
    });

    // B goes the same way at its notAfter (36 h) + margin, as B'' is prepared (A'' at 48 h);
    // no id was ever generated twice.
    await advanceTo(h, T0 + 36 * H + MARGIN);
    expect(await keyIds(h)).toEqual([
      'JWT-Signer-A-3',
      'JWT-Signer-A-5',
      'JWT-Signer-B-4',
      'JWT-Signer-B-6',
      'x509-CA-A-3',
      'x509-CA-A-5',
      'x509-CA-B-4',
      'x509-CA-B-6',
    ]);
    expect(new Set(h.km.generated).size).toBe(h.km.generated.length);
    expect(early).toEqual([]);
    expect(h.events.some((e) => e.type === 'rotation-failed')).toBe(false);
    expect(Buffer.compare(await signAndVerify(h), certOf(h))).toBe(0);
  });

  it('still deletes a retired key whose journal entry the 10-entry cap dropped, when its authority goes', async () => {
    // 6 h CAs rotate every 3 h: A-1's entry leaves the journal at 30 h (the 11th CA), while
    // a 48 h margin keeps A-1's root in the bundle until 54 h.
    const h = await start({
      config: { caTtlSeconds: 6 * 3600, bundlePruneMarginSeconds: 48 * 3600 },
    });
    const a = certOf(h);
    await advanceTo(h, T0 + 30 * H);
    expect(h.m.status().x509.next?.keyId).toBe('x509-CA-A-11');
    const saved = decodeJournal(h.store.bytes!);
    expect(saved.x509Cas.map((e) => e.keyManagerKeyId)).not.toContain('x509-CA-A-1');
    expect(saved.jwtKeys.map((e) => e.keyManagerKeyId)).not.toContain('JWT-Signer-A-1');
    await advanceTo(h, T0 + 54 * H - 1000);
    expect(hasRoot(h, a)).toBe(true);
    expect(await h.km.getKey('x509-CA-A-1')).toBeDefined();
    expect(await h.km.getKey('JWT-Signer-A-1')).toBeDefined();
    await advanceTo(h, T0 + 54 * H);
    expect(hasRoot(h, a)).toBe(false);
    expect(await h.km.getKey('x509-CA-A-1')).toBeUndefined();
    expect(await h.km.getKey('JWT-Signer-A-1')).toBeUndefined();
    expect(h.events).toContainEqual({
      type: 'key-deleted',
      kind: 'x509',
      keyManagerKeyId: 'x509-CA-A-1',
      reason: 'retired',
    });
  });

  it('reports a failed deletion without failing rotation, and retries it (10 s, then backing off)', async () => {
    const h = await start();
    await advanceTo(h, T0 + 24 * H + MARGIN - 1000);
    h.km.failDelete = new SpireEdgeError('ERR_KEY_MANAGER_STORE_IO', 'token busy');
    await advanceTo(h, T0 + 24 * H + MARGIN);
    const failed = h.events.filter((e) => e.type === 'key-delete-failed');
    expect(failed.map((e) => e.keyManagerKeyId).sort()).toEqual(['JWT-Signer-A-1', 'x509-CA-A-1']);
    const error = (failed[0] as { error: SpireEdgeError }).error;
    expect(error.code).toBe('ERR_CA_KEY_MANAGER');
    expect((error.cause as SpireEdgeError).code).toBe('ERR_KEY_MANAGER_STORE_IO');
    expect(h.events.some((e) => e.type === 'rotation-failed')).toBe(false);
    expect(h.events.filter((e) => e.type === 'authority-pruned')).toHaveLength(2);
    expect(await h.km.getKey('x509-CA-A-1')).toBeDefined();

    const failures = () => h.events.filter((e) => e.type === 'key-delete-failed').length;
    await advanceTo(h, T0 + 24 * H + MARGIN + 9_000, 1000);
    expect(failures()).toBe(2);
    await advanceTo(h, T0 + 24 * H + MARGIN + 10_000);
    expect(failures()).toBe(4); // retried after 10 s
    await advanceTo(h, T0 + 24 * H + MARGIN + 29_000, 1000);
    expect(failures()).toBe(4);
    await advanceTo(h, T0 + 24 * H + MARGIN + 30_000);
    expect(failures()).toBe(6); // then after 20 s
    h.km.failDelete = undefined;
    await advanceTo(h, T0 + 24 * H + MARGIN + 69_000, 1000);
    expect(h.km.deleted).toEqual([]);
    await advanceTo(h, T0 + 24 * H + MARGIN + 70_000); // and 40 s
    expect(h.km.deleted.sort()).toEqual(['JWT-Signer-A-1', 'x509-CA-A-1']);
    expect(failures()).toBe(6);
    expect(await h.km.getKey('x509-CA-A-1')).toBeUndefined();
    // Nothing left to retry: the next wake-up is the schedule's own (at most 10 min).
    expect(h.clock.pendingTimers).toBe(1);
  });

  it('deletes at start the keys a crash left before the journal named them, touching nothing else', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ca-orphans-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const keysPath = join(dir, 'keys.json');
    const store = new MemoryJournalStore();
    const clock = new ManualClock(T0);
    const km1 = await openDiskKeyManager({ keysPath });
    const h1 = await start({ clock, km: km1, store });
    // At 12 h the manager generates B's keys, then "crashes" before the journal names them.
    const save = store.save.bind(store);
    store.save = async () => {
      throw new Error('killed');
    };
    await advanceTo(h1, T0 + 12 * H);
    await h1.m.close();
    expect((await km1.listKeys()).map((k) => k.id)).toContain('x509-CA-B-2');
    // Keys outside the naming scheme, and one the scheme covers that nobody names.
    for (const id of ['agent-svid-1', 'x509-CA-C-1', 'x509-CA-A-01', 'JWT-Signer-A-1x', 'mine']) {
      await km1.generateKey(id, 'ec-p256');
    }
    await km1.generateKey('JWT-Signer-B-9', 'ec-p256');
    await km1.close();
    store.save = save;

    const km2 = await openDiskKeyManager({ keysPath });
    cleanups.push(() => km2.close());
    const h2 = await start({ clock, km: km2, store });
    expect(h2.km.deleted.sort()).toEqual(['JWT-Signer-B-2', 'JWT-Signer-B-9', 'x509-CA-B-2']);
    expect(
      h2.events.filter((e) => e.type === 'key-deleted').every((e) => e.reason === 'unused'),
    ).toBe(true);
    // The journal's keys are used, not regenerated; B is prepared on ids never used before.
    expect(h2.m.status().x509.current?.keyId).toBe('x509-CA-A-1');
    expect(h2.km.generated).toEqual(['x509-CA-B-3', 'JWT-Signer-B-10']);
    expect((await km2.listKeys()).map((k) => k.id)).toEqual([
      'JWT-Signer-A-1',
      'JWT-Signer-A-1x',
      'JWT-Signer-B-10',
      'agent-svid-1',
      'mine',
      'x509-CA-A-01',
      'x509-CA-A-1',
      'x509-CA-B-3',
      'x509-CA-C-1',
    ]);
  });

  it('migrates a version 1 journal: keeps its fixed-id keys, deletes them once retired', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ca-v1-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const keysPath = join(dir, 'keys.json');
    const clock = new ManualClock(T0);
    const v2 = new MemoryJournalStore();
    const km1 = await openDiskKeyManager({ keysPath });
    const h1 = await start({ clock, km: km1, store: v2 });
    await advanceTo(h1, T0 + 20 * H); // A old, B active
    const [a, b] = rootsOf(h1);
    await h1.m.close();
    await km1.close();

    // What the previous release left: keys under the fixed slot ids, a version 1 journal.
    const keys = JSON.parse(await readFile(keysPath, 'utf8')) as { keys: Record<string, string> };
    const fixed = (id: string) => id.replace(/-\d+$/, '');
    keys.keys = Object.fromEntries(Object.entries(keys.keys).map(([id, k]) => [fixed(id), k]));
    await writeFile(keysPath, JSON.stringify(keys));
    const doc = JSON.parse(Buffer.from(v2.bytes!).toString()) as Record<string, unknown>;
    const strip = (entries: unknown) =>
      (entries as Array<Record<string, unknown>>).map(({ keyManagerKeyId: _, ...e }) => e);
    const v1 = {
      ...doc,
      version: 1,
      x509CAs: strip(doc['x509CAs']),
      jwtKeys: strip(doc['jwtKeys']),
    };
    const store = new MemoryJournalStore(Buffer.from(JSON.stringify(v1)));

    const km2 = await openDiskKeyManager({ keysPath });
    cleanups.push(() => km2.close());
    clock.set(T0 + 21 * H);
    const h2 = await start({ clock, km: km2, store });
    expect(h2.km.generated).toEqual([]);
    expect(h2.km.deleted).toEqual([]);
    expect(h2.m.status().x509.current).toMatchObject({ slotId: 'B', keyId: 'x509-CA-B' });
    expect(h2.m.status().jwt.current).toMatchObject({ slotId: 'B', keyId: 'JWT-Signer-B' });
    expect(Buffer.compare(await signAndVerify(h2), b!)).toBe(0);

    // The next preparation gets a key of its own instead of replacing x509-CA-A, whose
    // root is still in the bundle; the journal is now version 2.
    await advanceTo(h2, T0 + 24 * H);
    expect(h2.km.generated).toEqual(['x509-CA-A-1', 'JWT-Signer-A-1']);
    const saved = JSON.parse(Buffer.from(store.bytes!).toString()) as {
      version: number;
      x509CAs: Array<{ keyManagerKeyId: string }>;
    };
    expect(saved.version).toBe(2);
    expect(saved.x509CAs.map((e) => e.keyManagerKeyId)).toEqual([
      'x509-CA-A',
      'x509-CA-B',
      'x509-CA-A-1',
    ]);
    expect(hasRoot(h2, a!)).toBe(true);
    expect(await km2.getKey('x509-CA-A')).toBeDefined();

    await advanceTo(h2, T0 + 24 * H + MARGIN);
    expect(hasRoot(h2, a!)).toBe(false);
    expect(h2.km.deleted.sort()).toEqual(['JWT-Signer-A', 'x509-CA-A']);
    await advanceTo(h2, T0 + 36 * H + MARGIN);
    expect(hasRoot(h2, b!)).toBe(false);
    expect(h2.km.deleted.sort()).toEqual([
      'JWT-Signer-A',
      'JWT-Signer-B',
      'x509-CA-A',
      'x509-CA-B',
    ]);
    expect((await km2.listKeys()).map((k) => k.id)).toEqual([
      'JWT-Signer-A-1',
      'JWT-Signer-A-3',
      'JWT-Signer-B-2',
      'JWT-Signer-B-4',
      'x509-CA-A-1',
      'x509-CA-A-3',
      'x509-CA-B-2',
      'x509-CA-B-4',
    ]);
  });
});
