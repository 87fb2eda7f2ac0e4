/**
 * The agent store sealed by a real TPM (swtpm): private keys and JWT-SVIDs absent from the
 * LevelDB files and back identical after a restart; a store from another TPM, or with a
 * tampered sealed key, refused as ERR_AGENT_STORE_SEALED and replaced by a fresh one (also
 * through the whole agent: it starts fresh instead of crash-looping); the AK created once and
 * reused across attestations and a restart, from the store, with an older agent's
 * tpm-ak.json imported and removed; the attestor and the sealer sharing one swtpm through one
 * TpmAccess while both need it; and the agent's start time with and without the TPM sealer.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningAgent } from '../../src/agent/agent.js';
import {
  decodeAkRecord,
  fileAkStore,
  type TpmAgentPlugin,
  tpmAgentPluginFromConfig,
  tpmAkPath,
} from '../../src/agent/attestation/tpm.js';
import { createTpmAccess, type TpmAccess } from '../../src/agent/attestation/tpm-access.js';
import { createTpmSealer, SEALING_KEY_RECORD } from '../../src/agent/attestation/tpm-sealer.js';
import { encodeValue } from '../../src/agent/storage/codec.js';
import {
  type AgentStore,
  type EntryRecord,
  openAgentStore,
  openAgentStoreWithRecovery,
  type X509SvidRecord,
} from '../../src/agent/storage/index.js';
import { RecordKind } from '../../src/agent/storage/layout.js';
import { systemClock } from '../../src/common/clock.js';
import { cryptoRandom } from '../../src/common/random.js';
import { createTpmAttestor } from '../../src/server/attestation/tpm.js';
import { openTpm } from '../../src/tpm/device/open-tpm.js';
import { EkCaPool } from '../../src/tpm/index.js';
import { type SwtpmInstance, startSwtpm } from '../harness/swtpm.js';
import { freePort, startInProcessAgent, TD, writeAgentConfig } from './agent-support.js';

const dir = mkdtempSync(join(tmpdir(), 'agent-tpm-sealer-'));
let a: SwtpmInstance;
let b: SwtpmInstance;
const accesses: TpmAccess[] = [];
let n = 0;
const newDataDir = () => join(dir, `data-${String(n++)}`);

beforeAll(async () => {
  [a, b] = await Promise.all([startSwtpm(), startSwtpm({ uniqueEk: true })]);
}, 60_000);

afterAll(async () => {
  for (const x of accesses) await x.close();
  await a?.stop();
  await b?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function accessTo(tpm: SwtpmInstance): TpmAccess {
  const x = createTpmAccess(() => openTpm({ tcti: tpm.tcti }));
  accesses.push(x);
  return x;
}

function newKey(): { pkcs8: Uint8Array; scalar: Buffer } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    pkcs8: new Uint8Array(privateKey.export({ type: 'pkcs8', format: 'der' })),
    scalar: Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url'),
  };
}

function entry(i: number): EntryRecord {
  return {
    id: `entry-${String(i)}`,
    spiffeId: `spiffe://${TD}/workload/${String(i)}`,
    parentId: `spiffe://${TD}/spire/agent/tpm/abc`,
    selectors: [{ type: 'unix', value: `uid:${String(1000 + i)}` }],
    x509SvidTtl: 3600,
    jwtSvidTtl: 300,
    federatesWith: [],
    admin: false,
    downstream: false,
    expiresAt: 0,
    dnsNames: [],
    revisionNumber: 1,
    storeSvid: false,
    hint: '',
    createdAt: 1_767_225_600,
  };
}

function svid(i: number, key: Uint8Array): X509SvidRecord {
  return {
    entryId: `entry-${String(i)}`,
    spiffeId: `spiffe://${TD}/workload/${String(i)}`,
    certChain: [new Uint8Array(randomBytes(600))],
    privateKey: key,
    expiresAtMs: Date.now() + 3_600_000,
    rotateAtMs: Date.now() + 1_800_000,
    entryRevision: 1,
  };
}

const TOKEN = `eyJhbGciOiJFUzI1NiJ9.${randomBytes(24).toString('base64url')}.sig`;

/** Writes an agent identity, three workload SVIDs and a JWT-SVID; returns the keys. */
async function writeSecrets(store: AgentStore): Promise<Array<ReturnType<typeof newKey>>> {
  const keys = [newKey(), newKey(), newKey(), newKey()];
  await store.update((tx) => {
    tx.setAgentIdentity({
      spiffeId: `spiffe://${TD}/spire/agent/tpm/abc`,
      certChain: [new Uint8Array(randomBytes(500))],
      privateKey: keys[0]!.pkcs8,
      expiresAtMs: Date.now() + 3_600_000,
      reattestable: true,
      attestorType: 'tpm',
      lastAttestedAtMs: Date.now(),
    });
    for (let i = 1; i < 4; i++) tx.putEntry(entry(i)).putX509Svid(svid(i, keys[i]!.pkcs8));
    tx.putJwtSvid({
      spiffeId: `spiffe://${TD}/workload/1`,
      audience: ['db'],
      token: TOKEN,
      issuedAtMs: Date.now(),
      expiresAtMs: Date.now() + 300_000,
    });
  });
  return keys;
}

/** The bytes of the store's LevelDB data files (*.ldb, *.log). */
function levelDbBytes(dataDir: string): Buffer {
  const d = join(dataDir, 'agent-store');
  const files = readdirSync(d).filter((f) => /\.(ldb|log)$/.test(f));
  expect(files.length).toBeGreaterThan(0);
  return Buffer.concat(files.map((f) => readFileSync(join(d, f))));
}

async function compact(dataDir: string): Promise<void> {
  const db = new ClassicLevel(join(dataDir, 'agent-store'));
  await db.open();
  await db.compactRange('', '\u{10ffff}');
  await db.close();
}

function leaked(bytes: Buffer, keys: Array<ReturnType<typeof newKey>>): string[] {
  const out: string[] = [];
  keys.forEach((k, i) => {
    if (bytes.includes(Buffer.from(k.pkcs8))) out.push(`pkcs8 ${String(i)}`);
    if (bytes.includes(k.scalar)) out.push(`scalar ${String(i)}`);
  });
  if (bytes.includes(Buffer.from(TOKEN))) out.push('jwt');
  return out;
}

describe('the agent store sealed by the TPM', () => {
  let sealedDir: string;

  it('keeps no key or token in clear in the LevelDB files, and gives them back after a restart', async () => {
    // Control: without a sealer the same search finds every secret.
    const plainDir = newDataDir();
    const plain = await openAgentStore({ dataDir: plainDir, trustDomain: TD });
    const plainKeys = await writeSecrets(plain);
    await plain.close();
    expect(leaked(levelDbBytes(plainDir), plainKeys)).toHaveLength(9);

    sealedDir = newDataDir();
    const access = accessTo(a);
    const createSealer = createTpmSealer({ access });
    const s = await openAgentStore({ dataDir: sealedDir, trustDomain: TD, createSealer });
    expect(s.deviceRecord(SEALING_KEY_RECORD)).toBeDefined();
    const keys = await writeSecrets(s);
    await s.close();
    expect(leaked(levelDbBytes(sealedDir), keys)).toEqual([]);
    await compact(sealedDir);
    expect(readdirSync(join(sealedDir, 'agent-store')).some((f) => f.endsWith('.ldb'))).toBe(true);
    expect(leaked(levelDbBytes(sealedDir), keys)).toEqual([]);

    const again = accessTo(a);
    const r = await openAgentStore({
      dataDir: sealedDir,
      trustDomain: TD,
      createSealer: createTpmSealer({ access: again }),
    });
    expect(r.agentIdentity()?.privateKey).toEqual(keys[0]!.pkcs8);
    for (let i = 1; i < 4; i++) {
      expect(r.x509Svid(`entry-${String(i)}`)?.privateKey).toEqual(keys[i]!.pkcs8);
    }
    expect(r.jwtSvid(`spiffe://${TD}/workload/1`, ['db'])?.token).toBe(TOKEN);
    // One TPM session per open, whatever the number of secrets.
    expect(again.stats()).toMatchObject({ sessions: 1, maxActive: 1 });
    await r.close();
  }, 30_000);

  it('refuses a tampered sealed key as ERR_AGENT_STORE_SEALED', async () => {
    const copy = newDataDir();
    cpSync(sealedDir, copy, { recursive: true });
    const db = new ClassicLevel<string, Uint8Array>(join(copy, 'agent-store'), {
      valueEncoding: 'view',
    });
    await db.open();
    const key = `device:${SEALING_KEY_RECORD}`;
    const stored = await db.get(key);
    const { decodeValue } = await import('../../src/agent/storage/codec.js');
    const v = decodeValue(key, stored!, RecordKind.device);
    const bytes = Uint8Array.from((v as { record: { bytes: Uint8Array } }).record.bytes);
    bytes[bytes.length - 5]! ^= 0x40; // inside the sealed object's TPM2B_PRIVATE
    await db.put(key, encodeValue(key, { kind: RecordKind.device, record: { bytes } }));
    await db.close();
    const err = await openAgentStore({
      dataDir: copy,
      trustDomain: TD,
      createSealer: createTpmSealer({ access: accessTo(a) }),
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'ERR_AGENT_STORE_SEALED' });
    console.log(`tampered sealed key: ${(err as Error).message}`);
  }, 30_000);

  it('refuses the store on another TPM, and recovery quarantines it and opens a fresh one', async () => {
    const createSealer = createTpmSealer({ access: accessTo(b) });
    const err = await openAgentStore({ dataDir: sealedDir, trustDomain: TD, createSealer }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      code: 'ERR_AGENT_STORE_SEALED',
      message: expect.stringMatching(/^the tpm refused the agent store's sealed data key/),
    });
    expect((err as Error & { cause?: { code?: string } }).cause?.code).toBe('ERR_TPM_RC');
    console.log(`another TPM: ${(err as Error).message}`);
    const { store, quarantined } = await openAgentStoreWithRecovery({
      dataDir: sealedDir,
      trustDomain: TD,
      createSealer,
    });
    expect(quarantined?.error.code).toBe('ERR_AGENT_STORE_SEALED');
    expect(existsSync(quarantined!.path)).toBe(true);
    expect(store.created).toBe(true);
    const keys = await writeSecrets(store);
    await store.close();
    const r = await openAgentStore({ dataDir: sealedDir, trustDomain: TD, createSealer });
    expect(r.agentIdentity()?.privateKey).toEqual(keys[0]!.pkcs8);
    await r.close();
  }, 30_000);
});

describe('the AK in the store and one TPM for the attestor and the sealer', () => {
  const server = () =>
    createTpmAttestor({
      trustDomain: TD,
      clock: systemClock,
      random: cryptoRandom,
      ekCaPool: EkCaPool.from({
        roots: [readFileSync(a.ekCaCertPaths[0], 'utf8')],
        intermediates: [readFileSync(a.ekCaCertPaths[1], 'utf8')],
      }),
    });

  async function startPlugin(
    dataDir: string,
  ): Promise<{ plugin: TpmAgentPlugin; store: AgentStore }> {
    const plugin = await tpmAgentPluginFromConfig({ tcti: a.tcti, dataDir });
    const store = await openAgentStore({
      dataDir,
      trustDomain: TD,
      createSealer: plugin.createSealer!,
    });
    plugin.akStore.bind(store);
    return { plugin, store };
  }

  const akPublicOf = (payload: Uint8Array): string =>
    JSON.parse(Buffer.from(payload).toString('utf8')).ak_public as string;

  it('imports tpm-ak.json, then uses the same AK for two attestations and after a restart', async () => {
    const dataDir = newDataDir();
    // An older agent's AK file, made by this TPM.
    const tpm = await openTpm({ tcti: a.tcti });
    const legacy = await tpm.createAk('ecc-p256', { ek: 'rsa' }).finally(() => tpm.close());
    await fileAkStore(tpmAkPath(dataDir)).save(legacy);

    const attestor = server();
    let { plugin, store } = await startPlugin(dataDir);
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const payload = await plugin.attestor.payload();
      expect(akPublicOf(payload)).toBe(Buffer.from(legacy.public).toString('base64'));
      const r = await attestor.attest(payload, (c) => plugin.attestor.respond(c), {});
      ids.push(r.agentId);
    }
    expect(existsSync(tpmAkPath(dataDir))).toBe(false);
    expect(decodeAkRecord(store.deviceRecord('tpm-ak')!, 'ak').name).toEqual(legacy.name);
    await plugin.close();
    await store.close();

    // Restart: the AK comes from the store.
    ({ plugin, store } = await startPlugin(dataDir));
    const payload = await plugin.attestor.payload();
    expect(akPublicOf(payload)).toBe(Buffer.from(legacy.public).toString('base64'));
    ids.push((await attestor.attest(payload, (c) => plugin.attestor.respond(c), {})).agentId);
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).toMatch(new RegExp(`^spiffe://${TD}/spire/agent/tpm/[0-9a-f]{64}$`));
    expect(plugin.access.stats()).toMatchObject({ maxActive: 1, active: 0 });
    await plugin.close();
    await store.close();
  }, 60_000);

  it('creates the AK once when there is none, and keeps it across a restart', async () => {
    const dataDir = newDataDir();
    const attestor = server();
    let { plugin, store } = await startPlugin(dataDir);
    expect(store.deviceRecord('tpm-ak')).toBeUndefined();
    const first = await plugin.attestor.payload();
    await attestor.attest(first, (c) => plugin.attestor.respond(c), {});
    const record = store.deviceRecord('tpm-ak')!;
    await plugin.close();
    await store.close();
    ({ plugin, store } = await startPlugin(dataDir));
    const second = await plugin.attestor.payload();
    await attestor.attest(second, (c) => plugin.attestor.respond(c), {});
    expect(akPublicOf(second)).toBe(akPublicOf(first));
    expect(store.deviceRecord('tpm-ak')).toEqual(record);
    await plugin.close();
    await store.close();
  }, 60_000);

  it('serialises an attestation and a store open on one swtpm connection', async () => {
    const dataDir = newDataDir();
    const { plugin, store } = await startPlugin(dataDir);
    const order: string[] = [];
    const payload = await plugin.attestor.payload();
    order.push('payload (tpm held)');
    // Another store (a new data key to create and seal) through the same access.
    const opening = openAgentStore({
      dataDir: newDataDir(),
      trustDomain: TD,
      createSealer: plugin.createSealer!,
    }).then((s) => {
      order.push('second store opened');
      return s;
    });
    for (let i = 0; i < 2000 && plugin.access.stats().waiting === 0; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(plugin.access.stats()).toMatchObject({ active: 1, waiting: 1 });
    const r = await server().attest(
      payload,
      (c) =>
        plugin.attestor.respond(c).then((x) => {
          order.push('challenge answered (tpm released)');
          return x;
        }),
      {},
    );
    const second = await opening;
    expect(r.agentId).toMatch(/\/spire\/agent\/tpm\//);
    expect(order).toEqual([
      'payload (tpm held)',
      'challenge answered (tpm released)',
      'second store opened',
    ]);
    expect(plugin.access.stats()).toMatchObject({ maxActive: 1, active: 0, waiting: 0 });
    await second.close();
    await plugin.close();
    await store.close();
  }, 60_000);
});

describe('the whole agent with NodeAttestor "tpm"', () => {
  const logs: string[] = [];
  let port: number;

  beforeAll(async () => {
    port = await freePort(); // no server: the agent starts and attests in the background
  });

  function config(name: string, tpm: SwtpmInstance, extra = ''): string {
    return writeAgentConfig({
      dir: join(dir, name),
      port,
      nodeAttestor: `  NodeAttestor "tpm" {
    plugin_data {
      tcti = "${tpm.tcti}"
${extra}    }
  }`,
    }).path;
  }

  async function run<T>(path: string, fn: (agent: RunningAgent) => Promise<T>): Promise<T> {
    const agent = await startInProcessAgent(path, logs);
    try {
      return await fn(agent);
    } finally {
      await agent.close();
    }
  }

  it('seals by default; on another TPM it starts fresh instead of crash-looping', async () => {
    const onA = config('agent', a);
    const key = newKey();
    await run(onA, async (agent) => {
      expect(agent.store.deviceRecord(SEALING_KEY_RECORD)).toBeDefined();
      await agent.store.setAgentIdentity({
        spiffeId: `spiffe://${TD}/spire/agent/tpm/abc`,
        certChain: [new Uint8Array(randomBytes(400))],
        privateKey: key.pkcs8,
        expiresAtMs: Date.now() + 3_600_000,
        reattestable: true,
        attestorType: 'tpm',
        lastAttestedAtMs: Date.now(),
      });
    });
    expect(logs.join('')).toMatch(/agent store secrets sealed by the TPM.*sealing=created/);
    expect(leaked(levelDbBytes(join(dir, 'agent', 'agent-data')), [key])).toEqual([]);
    await run(onA, async (agent) => {
      expect(agent.quarantined).toBeUndefined();
      expect(agent.store.agentIdentity()?.privateKey).toEqual(key.pkcs8);
    });
    // The disk moved to another device (another TPM): quarantine, fresh start, no crash.
    const onB = config('agent', b);
    await run(onB, async (agent) => {
      expect(agent.quarantined?.error.code).toBe('ERR_AGENT_STORE_SEALED');
      expect(agent.store.created).toBe(true);
      expect(agent.store.agentIdentity()).toBeUndefined();
    });
    expect(logs.join('')).toMatch(/THE AGENT STORE COULD NOT BE USED AND WAS MOVED ASIDE/);
    await run(onB, async (agent) => {
      expect(agent.quarantined).toBeUndefined();
    });
  }, 60_000);

  it('seal_secrets = false stores plain keys, with a warning', async () => {
    const path = config('agent-plain', a, '      seal_secrets = false\n');
    const key = newKey();
    await run(path, async (agent) => {
      expect(agent.store.deviceRecord(SEALING_KEY_RECORD)).toBeUndefined();
      await agent.store.storeX509Svids([svid(1, key.pkcs8)]);
    });
    expect(logs.join('')).toMatch(/seal_secrets = false/);
    expect(leaked(levelDbBytes(join(dir, 'agent-plain', 'agent-data')), [key])).not.toEqual([]);
  }, 30_000);

  it('start time with and without the TPM sealer (200 entries and SVIDs)', async () => {
    const sealed = config('time-sealed', a);
    const plain = config('time-plain', a, '      seal_secrets = false\n');
    for (const path of [sealed, plain]) {
      await run(path, async (agent) => {
        const k = newKey().pkcs8;
        await agent.store.update((tx) => {
          for (let i = 0; i < 200; i++) tx.putEntry(entry(i)).putX509Svid(svid(i, k));
        });
      });
    }
    const times: Record<string, number[]> = { sealed: [], plain: [] };
    for (let round = 0; round < 5; round++) {
      for (const [name, path] of [
        ['sealed', sealed],
        ['plain', plain],
      ] as const) {
        await run(path, async (agent) => {
          expect(agent.store.snapshot.x509Svids.size).toBe(200);
          times[name]!.push(agent.startedInMs);
        });
      }
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const s = median(times.sealed!);
    const p = median(times.plain!);
    console.log(
      `agent start to Workload API, 200 SVIDs, swtpm, median of 5: TPM sealer ${s.toFixed(1)} ms, no sealer ${p.toFixed(1)} ms (+${(s - p).toFixed(1)} ms, ×${(s / p).toFixed(2)}); all: sealed ${times.sealed!.map((x) => x.toFixed(0)).join('/')}, plain ${times.plain!.map((x) => x.toFixed(0)).join('/')}`,
    );
    expect(s).toBeLessThan(5_000);
  }, 120_000);
});
