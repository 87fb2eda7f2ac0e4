/**
 * The TPM sealer (src/agent/attestation/tpm-sealer.ts) over a fake `Tpm`, and the shared TPM
 * access (tpm-access.ts): the data-key sealer's AES-256-GCM format (round trip, record key as
 * additional data, tamper detection, wrong key, version byte), the data key created once and
 * unsealed once per store open, a refused key → ERR_AGENT_STORE_SEALED → quarantine and a
 * fresh store, transient TPM faults kept apart, PCR rebinding; one TPM session at a time; and
 * the AK kept in the store, with the import of an older agent's tpm-ak.json.
 * The real TPM: test/integration/agent-tpm-sealer.test.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import {
  agentStoreAkStore,
  createTpmAttestorClient,
  decodeAkRecord,
  encodeAkRecord,
  fileAkStore,
  tpmAkPath,
} from '../../../src/agent/attestation/tpm.js';
import { createTpmAccess } from '../../../src/agent/attestation/tpm-access.js';
import {
  createDataKeySealer,
  createTpmSealer,
  SEALING_KEY_RECORD,
} from '../../../src/agent/attestation/tpm-sealer.js';
import {
  type AgentStore,
  openAgentStore,
  openAgentStoreWithRecovery,
  type SealerFactory,
} from '../../../src/agent/storage/index.js';
import { SpireEdgeError } from '../../../src/common/errors.js';
import { seededRandom } from '../../../src/common/random.js';
import { encodeSealedBlob } from '../../../src/tpm/device/sealed-blob.js';
import type { AkBlobs, PcrSelection, Tpm } from '../../../src/tpm/device/tpm.js';

const TD = 'example.org';
const root = mkdtempSync(join(tmpdir(), 'spire-edge-tpm-sealer-'));
let dataDir: string;
let n = 0;
beforeEach(() => {
  dataDir = join(root, `d${String(n++)}`);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const ctx = (recordKey: string) => ({ recordKey });

/** Polls `check` every 5 ms for up to 10 s. */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(check()).toBe(true);
}
const KEY = new Uint8Array(randomBytes(32));

describe('createDataKeySealer: AES-256-GCM bound to the record key', () => {
  it('round-trips, with a fresh IV every time and the documented frame', async () => {
    const s = createDataKeySealer(KEY);
    const plain = new Uint8Array(randomBytes(138));
    const a = await s.seal(plain, ctx('x509:e1'));
    const b = await s.seal(plain, ctx('x509:e1'));
    expect(a.length).toBe(1 + 12 + plain.length + 16);
    expect(a[0]).toBe(1);
    expect(Buffer.from(a.subarray(1, 13)).equals(Buffer.from(b.subarray(1, 13)))).toBe(false);
    expect(Buffer.from(a).includes(Buffer.from(plain.subarray(0, 16)))).toBe(false);
    expect(await s.unseal(a, ctx('x509:e1'))).toEqual(plain);
    expect(await s.unseal(b, ctx('x509:e1'))).toEqual(plain);
    // Empty secrets are fine too.
    expect(await s.unseal(await s.seal(new Uint8Array(0), ctx('k')), ctx('k'))).toEqual(
      new Uint8Array(0),
    );
  });

  it('does not unseal a value moved to another record', async () => {
    const s = createDataKeySealer(KEY);
    const sealed = await s.seal(new Uint8Array([1, 2, 3]), ctx('x509:e1'));
    await expect(s.unseal(sealed, ctx('x509:e2'))).rejects.toMatchObject({
      code: 'ERR_AGENT_SEALED_SECRET_INVALID',
      message:
        'sealed secret failed authentication: sealed with another key, for another record, or altered',
    });
    await expect(s.unseal(sealed, ctx('agent:identity'))).rejects.toMatchObject({
      code: 'ERR_AGENT_SEALED_SECRET_INVALID',
    });
  });

  it('detects any altered byte: IV, ciphertext, tag', async () => {
    const s = createDataKeySealer(KEY);
    const sealed = await s.seal(new Uint8Array(randomBytes(40)), ctx('jwt:x'));
    for (let i = 1; i < sealed.length; i++) {
      const t = Uint8Array.from(sealed);
      t[i]! ^= 0x01;
      await expect(s.unseal(t, ctx('jwt:x'))).rejects.toMatchObject({
        code: 'ERR_AGENT_SEALED_SECRET_INVALID',
      });
    }
    await expect(s.unseal(sealed.subarray(0, 28), ctx('jwt:x'))).rejects.toMatchObject({
      code: 'ERR_AGENT_SEALED_SECRET_INVALID',
      message: 'sealed secret is 28 bytes, shorter than its 29-byte frame',
    });
  });

  it('checks the version byte, which is also authenticated', async () => {
    const s = createDataKeySealer(KEY);
    const sealed = await s.seal(new Uint8Array([7]), ctx('k'));
    for (const v of [0, 2, 255]) {
      const t = Uint8Array.from(sealed);
      t[0] = v;
      await expect(s.unseal(t, ctx('k'))).rejects.toMatchObject({
        code: 'ERR_AGENT_SEALED_SECRET_INVALID',
        message: `sealed secret has unknown version ${String(v)}`,
      });
    }
  });

  it('fails with another data key, and after close() (the key zeroed)', async () => {
    const s = createDataKeySealer(KEY);
    const other = createDataKeySealer(new Uint8Array(randomBytes(32)));
    const sealed = await s.seal(new Uint8Array([1, 2, 3]), ctx('k'));
    await expect(other.unseal(sealed, ctx('k'))).rejects.toMatchObject({
      code: 'ERR_AGENT_SEALED_SECRET_INVALID',
    });
    // The sealer copied the key: zeroing the caller's copy changes nothing.
    const mine = Uint8Array.from(KEY);
    const s2 = createDataKeySealer(mine);
    mine.fill(0);
    expect(await s2.unseal(await s.seal(new Uint8Array([4]), ctx('k')), ctx('k'))).toEqual(
      new Uint8Array([4]),
    );
    s.close();
    expect(s.closed).toBe(true);
    await expect(s.seal(new Uint8Array([1]), ctx('k'))).rejects.toMatchObject({
      code: 'ERR_AGENT_SEALER_CLOSED',
    });
    await expect(s.unseal(sealed, ctx('k'))).rejects.toMatchObject({
      code: 'ERR_AGENT_SEALER_CLOSED',
    });
  });

  it('refuses a missing context and bad arguments with TypeError', async () => {
    const s = createDataKeySealer(KEY);
    await expect(s.seal(new Uint8Array([1]))).rejects.toThrow(
      'the data key sealer needs the record key as context',
    );
    await expect(s.unseal(new Uint8Array(40))).rejects.toThrow(TypeError);
    expect(() => createDataKeySealer(new Uint8Array(16))).toThrow('dataKey must be 32 bytes');
  });
});

/**
 * A fake TPM: its "storage seed" is a random key; seal wraps data with it (a real SESB blob so
 * the sealer can read the PCR binding); unseal refuses another seed's blob with
 * TPM_RC_INTEGRITY, as a real TPM does for another SRK.
 */
class FakeTpmDevice {
  readonly seed = randomBytes(16);
  pcr7 = Buffer.alloc(32);
  opened = 0;
  open = 0;
  maxOpen = 0;
  seals = 0;
  unseals = 0;
  randoms = 0;
  fault: SpireEdgeError | undefined;

  tpm(): Tpm {
    this.opened++;
    this.open++;
    this.maxOpen = Math.max(this.maxOpen, this.open);
    const dev = this;
    const policy = (pcrs: PcrSelection | undefined) =>
      pcrs === undefined ? Buffer.alloc(0) : createHash('sha256').update(dev.pcr7).digest();
    const t: Partial<Tpm> = {
      async getRandom(k) {
        dev.randoms++;
        return new Uint8Array(randomBytes(k));
      },
      async seal(data, options = {}) {
        dev.seals++;
        const body = Buffer.concat([dev.seed, policy(options.pcrs), Buffer.from(data)]);
        const tpm2b = (b: Buffer) =>
          Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]);
        return encodeSealedBlob({
          pcrs: options.pcrs,
          public: new Uint8Array(tpm2b(Buffer.from('pub'))),
          private: new Uint8Array(tpm2b(body)),
        });
      },
      async unseal(blob) {
        dev.unseals++;
        if (dev.fault !== undefined) throw dev.fault;
        const sesb = Buffer.from(blob);
        const pcrsBound = sesb.readUInt16BE(5) !== 0x0010;
        const priv = sesb.subarray(11 + 5 + 2);
        if (!priv.subarray(0, 16).equals(dev.seed)) {
          throw new SpireEdgeError('ERR_TPM_RC', 'could not unseal: TPM_RC_INTEGRITY', {
            details: { rc: 0x19f },
          });
        }
        const p = policy(pcrsBound ? { bank: 'sha256', indices: [7] } : undefined);
        if (!priv.subarray(16, 16 + p.length).equals(p)) {
          throw new SpireEdgeError('ERR_TPM_RC', 'could not unseal: TPM_RC_POLICY_FAIL', {
            details: { rc: 0x99d },
          });
        }
        return new Uint8Array(priv.subarray(16 + p.length));
      },
      async close() {
        dev.open--;
      },
    };
    return t as Tpm;
  }
}

function pkcs8Like(): Uint8Array {
  return new Uint8Array(randomBytes(138));
}

async function writeSecrets(store: AgentStore, key: Uint8Array): Promise<void> {
  await store.update((tx) =>
    tx
      .setAgentIdentity({
        spiffeId: `spiffe://${TD}/spire/agent/tpm/abc`,
        certChain: [new Uint8Array(randomBytes(100))],
        privateKey: key,
        expiresAtMs: 9_000_000_000_000,
        reattestable: true,
        attestorType: 'tpm',
        lastAttestedAtMs: 1,
      })
      .putJwtSvid({
        spiffeId: `spiffe://${TD}/w`,
        audience: ['a'],
        token: 'eyJ.secret.token',
        issuedAtMs: 1,
        expiresAtMs: 9_000_000_000_000,
      }),
  );
}

function storeFiles(): Buffer {
  const dir = join(dataDir, 'agent-store');
  return Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
}

describe('createTpmSealer with the agent store', () => {
  it('creates the data key once (TPM RNG + seal, stored durably) and unseals it once per open', async () => {
    const dev = new FakeTpmDevice();
    const access = createTpmAccess(async () => dev.tpm());
    const events: string[] = [];
    const createSealer = createTpmSealer({
      access,
      onOpen: (e) => events.push(e.action),
    });
    const key = pkcs8Like();
    const s = await openAgentStore({ dataDir, trustDomain: TD, createSealer });
    expect({ seals: dev.seals, randoms: dev.randoms, unseals: dev.unseals }).toEqual({
      seals: 1,
      randoms: 1,
      unseals: 0,
    });
    const record = s.deviceRecord(SEALING_KEY_RECORD)!;
    expect(record[0]).toBe(1);
    expect(Buffer.from(record.subarray(1, 5)).toString()).toBe('SESB');
    await writeSecrets(s, key);
    for (let i = 0; i < 20; i++) {
      await s.storeX509Svids([
        {
          entryId: `e${String(i)}`,
          spiffeId: `spiffe://${TD}/w${String(i)}`,
          certChain: [new Uint8Array(10)],
          privateKey: pkcs8Like(),
          expiresAtMs: 9_000_000_000_000,
          rotateAtMs: 1,
          entryRevision: 1,
        },
      ]);
    }
    // Software encryption per secret: the TPM was used once, at open.
    expect(dev.opened).toBe(1);
    await s.close();
    expect(storeFiles().includes(Buffer.from(key))).toBe(false);
    expect(storeFiles().includes(Buffer.from('eyJ.secret.token'))).toBe(false);

    const r = await openAgentStore({ dataDir, trustDomain: TD, createSealer });
    expect(r.agentIdentity()?.privateKey).toEqual(key);
    expect(r.jwtSvid(`spiffe://${TD}/w`, ['a'])?.token).toBe('eyJ.secret.token');
    expect(r.snapshot.x509Svids.size).toBe(20);
    // 22 secrets, one TPM unseal, one TPM session.
    expect({ seals: dev.seals, unseals: dev.unseals, opened: dev.opened }).toEqual({
      seals: 1,
      unseals: 1,
      opened: 2,
    });
    expect(events).toEqual(['created', 'unsealed']);
    await r.close();
  });

  it('a store sealed by another TPM is refused as SEALED; recovery starts a fresh, sealed store', async () => {
    const first = new FakeTpmDevice();
    const s = await openAgentStore({
      dataDir,
      trustDomain: TD,
      createSealer: createTpmSealer({ access: createTpmAccess(async () => first.tpm()) }),
    });
    await writeSecrets(s, pkcs8Like());
    await s.close();

    const other = new FakeTpmDevice();
    const createSealer = createTpmSealer({ access: createTpmAccess(async () => other.tpm()) });
    await expect(openAgentStore({ dataDir, trustDomain: TD, createSealer })).rejects.toMatchObject({
      code: 'ERR_AGENT_STORE_SEALED',
      message: expect.stringMatching(
        /^the tpm refused the agent store's sealed data key .*: could not unseal: TPM_RC_INTEGRITY$/,
      ),
    });
    const quarantines: string[] = [];
    const { store, quarantined } = await openAgentStoreWithRecovery({
      dataDir,
      trustDomain: TD,
      createSealer,
      onQuarantine: (q) => quarantines.push(q.error.code),
    });
    expect(quarantines).toEqual(['ERR_AGENT_STORE_SEALED']);
    expect(quarantined?.path).toMatch(/agent-store\.corrupt-/);
    expect(store.created).toBe(true);
    expect(store.agentIdentity()).toBeUndefined();
    // The fresh store has its own key from the new TPM, and works across a restart.
    await writeSecrets(store, pkcs8Like());
    await store.close();
    const again = await openAgentStore({ dataDir, trustDomain: TD, createSealer });
    expect(again.agentIdentity()).toBeDefined();
    await again.close();
  });

  it('a damaged sealing-key record is SEALED too; a transient TPM fault is not (ERR_AGENT_STORE_IO, store kept)', async () => {
    const dev = new FakeTpmDevice();
    const createSealer = createTpmSealer({ access: createTpmAccess(async () => dev.tpm()) });
    const s = await openAgentStore({ dataDir, trustDomain: TD, createSealer });
    const good = s.deviceRecord(SEALING_KEY_RECORD)!;
    await s.close();

    dev.fault = new SpireEdgeError('ERR_TPM_RC', 'could not unseal: TPM_RC_OBJECT_MEMORY', {
      details: { rc: 0x902 },
    });
    const transient = openAgentStoreWithRecovery({ dataDir, trustDomain: TD, createSealer });
    await expect(transient).rejects.toMatchObject({ code: 'ERR_AGENT_STORE_IO' });
    dev.fault = new SpireEdgeError('ERR_TPM_RC', 'could not open tpm: connection refused', {
      details: { rc: 0xa000a },
    });
    await expect(openAgentStore({ dataDir, trustDomain: TD, createSealer })).rejects.toMatchObject({
      code: 'ERR_AGENT_STORE_IO',
    });
    dev.fault = undefined;
    expect(readdirSync(dataDir)).toEqual(['agent-store']);

    for (const [what, bytes] of [
      ['unknown format', Uint8Array.from([2, ...good.subarray(1)])],
      ['not a sealed blob', Uint8Array.from([1, 0x58, 0x58, 0x58, 0x58, 1])],
      ['empty', new Uint8Array(0)],
    ] as const) {
      const w = await openAgentStore({ dataDir, trustDomain: TD });
      await w.update((tx) => tx.putDeviceRecord(SEALING_KEY_RECORD, bytes));
      await w.close();
      const err = await openAgentStore({ dataDir, trustDomain: TD, createSealer }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect({ what, code: (err as SpireEdgeError).code }).toEqual({
        what,
        code: 'ERR_AGENT_STORE_SEALED',
      });
    }
  });

  it('seals to PCRs only when asked; a changed bound PCR is SEALED; a new selection is resealed', async () => {
    const dev = new FakeTpmDevice();
    const access = createTpmAccess(async () => dev.tpm());
    const events: Array<{ action: string; pcrs: PcrSelection | undefined }> = [];
    const unbound = createTpmSealer({ access, onOpen: (e) => events.push(e) });
    const bound: SealerFactory = createTpmSealer({
      access,
      pcrs: { bank: 'sha256', indices: [7] },
      onOpen: (e) => events.push(e),
    });
    const s = await openAgentStore({ dataDir, trustDomain: TD, createSealer: unbound });
    await writeSecrets(s, pkcs8Like());
    await s.close();
    // seal_pcrs configured later: the key is resealed under the PCR policy at the next start.
    const b = await openAgentStore({ dataDir, trustDomain: TD, createSealer: bound });
    expect(events.map((e) => e.action)).toEqual(['created', 'resealed']);
    expect(events[1]!.pcrs).toEqual({ bank: 'sha256', indices: [7] });
    expect(b.deviceRecord(SEALING_KEY_RECORD)![7]).toBe(0x0b); // SESB bank: sha256
    await b.close();
    const b2 = await openAgentStore({ dataDir, trustDomain: TD, createSealer: bound });
    expect(events.at(-1)!.action).toBe('unsealed');
    await b2.close();
    // A firmware update changes PCR 7: the bound key no longer unseals.
    dev.pcr7 = Buffer.alloc(32, 1);
    await expect(
      openAgentStore({ dataDir, trustDomain: TD, createSealer: bound }),
    ).rejects.toMatchObject({ code: 'ERR_AGENT_STORE_SEALED' });
  });

  it('never holds the TPM twice: the sealer waits for an attestation session', async () => {
    const dev = new FakeTpmDevice();
    const access = createTpmAccess(async () => dev.tpm());
    const order: string[] = [];
    const session = await access.acquire();
    order.push('attestation holds the tpm');
    const opening = openAgentStore({
      dataDir,
      trustDomain: TD,
      createSealer: createTpmSealer({ access }),
    }).then((s) => {
      order.push('store opened');
      return s;
    });
    await until(() => access.stats().waiting === 1);
    expect(access.stats()).toMatchObject({ active: 1, waiting: 1 });
    order.push('attestation releases');
    await session.release();
    const s = await opening;
    await s.close();
    expect(order).toEqual(['attestation holds the tpm', 'attestation releases', 'store opened']);
    expect(dev.maxOpen).toBe(1);
    expect(access.stats()).toEqual({ sessions: 2, active: 0, maxActive: 1, waiting: 0 });
  });
});

describe('createTpmAccess', () => {
  it('runs sessions one at a time in call order, releasing even when a session fails', async () => {
    const dev = new FakeTpmDevice();
    const access = createTpmAccess(async () => dev.tpm());
    const log: string[] = [];
    const job = (name: string, ms: number, fail = false) =>
      access.withTpm(async () => {
        log.push(`start ${name}`);
        await new Promise((r) => setTimeout(r, ms));
        log.push(`end ${name}`);
        if (fail) throw new Error(`${name} failed`);
        return name;
      });
    const results = await Promise.allSettled([job('a', 20), job('b', 1, true), job('c', 5)]);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : String(r.reason)))).toEqual([
      'a',
      'Error: b failed',
      'c',
    ]);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(dev.maxOpen).toBe(1);
    expect(dev.open).toBe(0);
    expect(access.stats()).toEqual({ sessions: 3, active: 0, maxActive: 1, waiting: 0 });
  });

  it('lets the next session start when opening the TPM fails, and refuses sessions after close()', async () => {
    let fail = true;
    const dev = new FakeTpmDevice();
    const access = createTpmAccess(async () => {
      if (fail) {
        fail = false;
        throw new SpireEdgeError('ERR_TPM_RC', 'could not open tpm');
      }
      return dev.tpm();
    });
    await expect(access.withTpm(async () => 1)).rejects.toMatchObject({ code: 'ERR_TPM_RC' });
    expect(await access.withTpm(async () => 2)).toBe(2);
    const held = await access.acquire();
    const queued = access.acquire();
    await access.close();
    await held.release();
    await held.release();
    await expect(queued).rejects.toMatchObject({ code: 'ERR_TPM_CLOSED' });
    await expect(access.withTpm(async () => 3)).rejects.toMatchObject({ code: 'ERR_TPM_CLOSED' });
    expect(dev.open).toBe(0);
  });
});

describe('the tpm attestor on a shared access', () => {
  it('releases the TPM when a payload is never answered (the server went away)', async () => {
    const dev = new FakeTpmDevice();
    const ak: AkBlobs = {
      ek: 'rsa',
      alg: 'ecc-p256',
      private: new Uint8Array(8),
      public: new Uint8Array(8),
      name: new Uint8Array(8),
    };
    const access = createTpmAccess(async () =>
      Object.assign(dev.tpm(), {
        readEkCertificate: async () => undefined,
        ekPublic: async () => new Uint8Array(8),
        loadAk: async (x: AkBlobs) => ({ handle: 1, ...x }),
      }),
    );
    const client = createTpmAttestorClient({
      access,
      akStore: { load: async () => ak, save: async () => {} },
      sessionTimeoutMs: 50,
    });
    await client.payload();
    expect(access.stats()).toMatchObject({ active: 1 });
    // A store opening meanwhile waits, then gets the TPM once the session timed out.
    const t0 = Date.now();
    const s = await openAgentStore({
      dataDir,
      trustDomain: TD,
      createSealer: createTpmSealer({ access }),
    });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(30);
    expect(access.stats()).toMatchObject({ active: 0, maxActive: 1, sessions: 2 });
    await s.close();
    await expect(client.respond(new Uint8Array(0))).rejects.toMatchObject({
      code: 'ERR_AGENT_ATTESTATION_INVALID',
    });
    await client.close();
  });
});

describe('the AK in the agent store (device:tpm-ak)', () => {
  const blobs: AkBlobs = {
    ek: 'rsa',
    alg: 'ecc-p256',
    private: new Uint8Array(randomBytes(126)),
    public: new Uint8Array(randomBytes(90)),
    name: new Uint8Array(randomBytes(34)),
  };

  it('saves and loads the blobs in the store, once bound', async () => {
    const ak = agentStoreAkStore({ legacyFile: tpmAkPath(dataDir) });
    await expect(ak.load()).rejects.toThrow(
      'the AK store is used before the agent store was bound to it',
    );
    const store = await openAgentStore({ dataDir, trustDomain: TD });
    ak.bind(store);
    expect(await ak.load()).toBeUndefined();
    await ak.save(blobs);
    expect(decodeAkRecord(store.deviceRecord('tpm-ak')!, 'x')).toEqual(blobs);
    await store.close();
    const again = await openAgentStore({ dataDir, trustDomain: TD });
    const ak2 = agentStoreAkStore();
    ak2.bind(again);
    expect(await ak2.load()).toEqual(blobs);
    await again.close();
  });

  it("imports an older agent's tpm-ak.json once, then deletes it", async () => {
    const legacy = tpmAkPath(dataDir);
    await fileAkStore(legacy).save(blobs);
    expect(readFileSync(legacy)).toEqual(Buffer.from(encodeAkRecord(blobs)));
    const store = await openAgentStore({ dataDir, trustDomain: TD });
    const ak = agentStoreAkStore({ legacyFile: legacy });
    ak.bind(store);
    expect(await ak.load()).toEqual(blobs);
    expect(existsSync(legacy)).toBe(false);
    expect(store.deviceRecord('tpm-ak')).toEqual(encodeAkRecord(blobs));
    // The store's record wins over a file that reappears.
    const other = { ...blobs, name: new Uint8Array(randomBytes(34)) };
    await fileAkStore(legacy).save(other);
    expect(await ak.load()).toEqual(blobs);
    expect(existsSync(legacy)).toBe(true);
    await store.close();
  });

  it('refuses malformed AK records with ERR_TPM_AK_STORE_INVALID', () => {
    const good = JSON.parse(new TextDecoder().decode(encodeAkRecord(blobs)));
    for (const bad of [
      'not json',
      JSON.stringify({ ...good, version: 2 }),
      JSON.stringify({ ...good, ek: 'dsa' }),
      JSON.stringify({ ...good, alg: 'rsa-1024' }),
      JSON.stringify({ ...good, name: 5 }),
    ]) {
      expect(() => decodeAkRecord(new TextEncoder().encode(bad), 'rec')).toThrow(
        expect.objectContaining({ code: 'ERR_TPM_AK_STORE_INVALID' }),
      );
    }
  });
});

describe('the data key', () => {
  it('mixes the node RNG with the TPM RNG: a deterministic node RNG still gives distinct keys', async () => {
    const keys = new Set<string>();
    for (let i = 0; i < 2; i++) {
      dataDir = join(root, `d${String(n++)}`);
      const dev = new FakeTpmDevice();
      let captured: Uint8Array | undefined;
      const access = createTpmAccess(async () => {
        const t = dev.tpm();
        const seal = t.seal.bind(t);
        t.seal = async (data, o) => {
          captured = Uint8Array.from(data);
          return seal(data, o);
        };
        return t;
      });
      const s = await openAgentStore({
        dataDir,
        trustDomain: TD,
        createSealer: createTpmSealer({ access, random: seededRandom(1) }),
      });
      await s.close();
      expect(captured).toHaveLength(32);
      keys.add(Buffer.from(captured!).toString('hex'));
    }
    expect(keys.size).toBe(2);
  });
});
