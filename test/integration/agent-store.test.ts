import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type AgentStore,
  type EntryRecord,
  openAgentStore,
  type Sealer,
  type X509SvidRecord,
} from '../../src/agent/storage/index.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const root = mkdtempSync(join(tmpdir(), 'spire-edge-agent-store-it-'));
const TD = 'example.org';
const N = 1000;

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

const KEY = new Uint8Array(
  generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    type: 'pkcs8',
    format: 'der',
  }),
);

function entry(i: number): EntryRecord {
  return {
    id: `entry-${String(i)}`,
    spiffeId: `spiffe://${TD}/workload/${String(i)}`,
    parentId: `spiffe://${TD}/spire/agent/x509pop/abc`,
    selectors: [
      { type: 'unix', value: `uid:${String(1000 + i)}` },
      { type: 'systemd', value: `id:svc-${String(i)}.service` },
    ],
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

/** An SVID of generation `gen`: the generation is in the revision and the certificate bytes. */
function svid(i: number, gen: number): X509SvidRecord {
  const leaf = new Uint8Array(randomBytes(650));
  leaf[0] = gen & 0xff;
  return {
    entryId: `entry-${String(i)}`,
    spiffeId: `spiffe://${TD}/workload/${String(i)}`,
    certChain: [leaf, new Uint8Array(randomBytes(480))],
    privateKey: KEY,
    expiresAtMs: Date.now() + 3_600_000,
    rotateAtMs: Date.now() + 1_800_000,
    entryRevision: gen,
  };
}

async function writeGeneration(store: AgentStore, gen: number): Promise<void> {
  await store.update((tx) => {
    for (let i = 0; i < N; i++) tx.putX509Svid(svid(i, gen));
    tx.setSyncState({ lastSyncAtMs: gen, lastFullSyncAtMs: gen, cursor: `gen-${String(gen)}` });
  });
}

/** The one generation every SVID and the sync state agree on; fails on a mix. */
function generationOf(store: AgentStore): number {
  const gens = new Set([...store.snapshot.x509Svids.values()].map((s) => s.entryRevision));
  expect(store.snapshot.x509Svids.size).toBe(N);
  expect([...gens]).toHaveLength(1);
  const [gen] = gens;
  expect(store.syncState()?.lastSyncAtMs).toBe(gen);
  for (const s of store.snapshot.x509Svids.values()) expect(s.certChain[0]![0]).toBe(gen! & 0xff);
  return gen!;
}

// The child writes generations of N SVIDs forever, one batch each, reporting around each batch.
const CHILD = `
const { openAgentStore } = await import(process.env.STORE_MODULE);
const { randomBytes } = await import('node:crypto');
const store = await openAgentStore({ dataDir: process.env.DATA_DIR, trustDomain: 'example.org' });
const key = new Uint8Array(Buffer.from(process.env.KEY_HEX, 'hex'));
for (let gen = Number(process.env.FROM_GEN) + 1; ; gen++) {
  const leaf = () => { const b = new Uint8Array(randomBytes(650)); b[0] = gen & 0xff; return b; };
  process.stdout.write('start ' + gen + '\\n');
  await store.update((tx) => {
    for (let i = 0; i < ${N}; i++) {
      tx.putX509Svid({
        entryId: 'entry-' + i, spiffeId: 'spiffe://example.org/workload/' + i,
        certChain: [leaf(), new Uint8Array(randomBytes(480))], privateKey: key,
        expiresAtMs: Date.now() + 3600000, rotateAtMs: Date.now() + 1800000, entryRevision: gen,
      });
    }
    tx.setSyncState({ lastSyncAtMs: gen, lastFullSyncAtMs: gen, cursor: 'gen-' + gen });
    process.stdout.write('built ' + gen + '\\n');
  });
  process.stdout.write('committed ' + gen + '\\n');
}
`;

interface CrashRun {
  committed: number;
  /** The generation whose batch was in flight when the child was killed. */
  inFlight: number;
}

/**
 * Starts the writer, lets it commit `warmup` batches (timing how long encoding and writing
 * take after the batch is built), then SIGKILLs it a random time into the next batch's
 * encoding and LevelDB write.
 */
function crashRun(dataDir: string, fromGen: number, warmup: number): Promise<CrashRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], {
      cwd: repo,
      env: {
        ...process.env,
        STORE_MODULE: pathToFileURL(join(repo, 'src/agent/storage/index.ts')).href,
        DATA_DIR: dataDir,
        FROM_GEN: String(fromGen),
        KEY_HEX: Buffer.from(KEY).toString('hex'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let committed = fromGen;
    let inFlight = 0;
    let builtAt = 0;
    const durations: number[] = [];
    let killed = false;
    let stderr = '';
    let buf = '';
    const guard = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, 60_000);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const [word, gen] = buf.slice(0, nl).split(' ');
        buf = buf.slice(nl + 1);
        if (killed) continue;
        if (word === 'committed') {
          committed = Number(gen);
          durations.push(performance.now() - builtAt);
        } else if (word === 'start') {
          inFlight = Number(gen);
        } else if (word === 'built') {
          builtAt = performance.now();
          if (durations.length >= warmup) {
            const typical = durations.reduce((a, b) => a + b, 0) / durations.length;
            setTimeout(() => {
              killed = true;
              child.kill('SIGKILL');
            }, Math.random() * typical);
          }
        }
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (signal !== 'SIGKILL') {
        reject(new Error(`writer exited with ${String(code ?? signal)}: ${stderr}`));
      } else {
        resolvePromise({ committed, inFlight });
      }
    });
  });
}

describe('agent store: crash safety', () => {
  it('opens cleanly with the old or the new batch of 1,000 SVIDs after SIGKILL mid-write, never a mix', async () => {
    const dataDir = join(root, 'crash');
    const seed = await openAgentStore({ dataDir, trustDomain: TD });
    await seed.applySyncResult({
      upsertEntries: Array.from({ length: N }, (_, i) => entry(i)),
      syncState: { lastSyncAtMs: 0, lastFullSyncAtMs: 0, cursor: '' },
    });
    await writeGeneration(seed, 1);
    await seed.close();
    let gen = 1;
    const outcomes = { old: 0, new: 0 };
    for (let run = 0; run < 8; run++) {
      const { committed, inFlight } = await crashRun(dataDir, gen, run === 0 ? 2 : 1);
      const store = await openAgentStore({ dataDir, trustDomain: TD });
      try {
        const found = generationOf(store);
        expect(store.snapshot.entries.size).toBe(N);
        // Either the batch in flight landed whole, or not at all.
        expect([committed, inFlight]).toContain(found);
        if (found === inFlight && inFlight !== committed) outcomes.new++;
        else outcomes.old++;
        gen = found;
      } finally {
        await store.close();
      }
      for (const f of readdirSync(join(dataDir, 'agent-store'))) {
        // Files LevelDB created after the last write may still carry the umask's mode; the
        // directory is what protects them.
        expect(statSync(join(dataDir, 'agent-store')).mode & 0o777).toBe(0o700);
        expect(f).toMatch(/^(CURRENT|LOCK|LOG|LOG\.old|MANIFEST-\d+|\d+\.(log|ldb))$/);
      }
    }
    console.log(
      `agent store crash runs: ${String(outcomes.old)} reopened with the previous batch, ${String(outcomes.new)} with the batch in flight`,
    );
    expect(outcomes.old + outcomes.new).toBe(8);
  }, 120_000);

  it('drops a torn batch whole: the log cut anywhere inside it reopens to the previous state', async () => {
    const dataDir = join(root, 'torn');
    const s1 = await openAgentStore({ dataDir, trustDomain: TD });
    await writeGeneration(s1, 1);
    await s1.close();
    // Reopening moves generation 1 from the log into a table; generation 2 is then alone in
    // the new log.
    const s2 = await openAgentStore({ dataDir, trustDomain: TD });
    const logsBefore = readdirSync(join(dataDir, 'agent-store')).filter((f) => f.endsWith('.log'));
    await writeGeneration(s2, 2);
    await s2.close();
    const store = join(dataDir, 'agent-store');
    const log = readdirSync(store).find((f) => f.endsWith('.log'))!;
    expect(logsBefore).toContain(log);
    const size = statSync(join(store, log)).size;
    expect(size).toBeGreaterThan(N * 1000);
    for (const cut of [
      16,
      4096,
      32_768 + 3,
      Math.floor(size / 3),
      Math.floor(size / 2),
      size - 1,
    ]) {
      const copy = join(root, `torn-${String(cut)}`);
      cpSync(dataDir, copy, { recursive: true });
      truncateSync(join(copy, 'agent-store', log), cut);
      const torn = await openAgentStore({ dataDir: copy, trustDomain: TD });
      try {
        expect({ cut, gen: generationOf(torn) }).toEqual({ cut, gen: 1 });
      } finally {
        await torn.close();
      }
    }
    const whole = await openAgentStore({ dataDir, trustDomain: TD });
    expect(generationOf(whole)).toBe(2);
    await whole.close();
  });
});

describe('agent store: warm start', () => {
  it('opens a store of 1,000 entries with cached SVIDs well under 500 ms', async () => {
    const xor: Sealer = {
      seal: async (b) => b.map((x) => x ^ 0x5a),
      unseal: async (b) => b.map((x) => x ^ 0x5a),
    };
    const results: string[] = [];
    for (const [name, sealer] of [
      ['no sealer', undefined],
      ['XOR sealer', xor],
    ] as const) {
      const dataDir = join(root, `warm-${name.replace(' ', '-')}`);
      const s = await openAgentStore({ dataDir, trustDomain: TD, ...(sealer ? { sealer } : {}) });
      await s.applySyncResult({
        upsertEntries: Array.from({ length: N }, (_, i) => entry(i)),
        syncState: { lastSyncAtMs: 1, lastFullSyncAtMs: 1, cursor: '' },
        bundle: {
          trustDomain: TD,
          x509Authorities: [new Uint8Array(randomBytes(500))],
          jwtAuthorities: [],
          refreshHint: 300,
          sequenceNumber: 1,
        },
      });
      await writeGeneration(s, 1);
      await s.close();
      const times: number[] = [];
      for (let i = 0; i < 7; i++) {
        const t0 = performance.now();
        const store = await openAgentStore({
          dataDir,
          trustDomain: TD,
          ...(sealer ? { sealer } : {}),
        });
        times.push(performance.now() - t0);
        expect(store.snapshot.x509Svids.size).toBe(N);
        expect(store.snapshot.entries.size).toBe(N);
        expect(store.x509Svid('entry-999')?.privateKey).toEqual(KEY);
        await store.close();
      }
      times.sort((a, b) => a - b);
      const median = times[3]!;
      results.push(`${name}: median ${median.toFixed(1)} ms, max ${times[6]!.toFixed(1)} ms`);
      expect(median).toBeLessThan(500);
    }
    console.log(
      `agent store open, ${String(N)} entries + ${String(N)} X509-SVIDs: ${results.join('; ')}`,
    );
  });
});
