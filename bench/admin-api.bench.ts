/**
 * Entry creation through the admin API on SQLite and on PostgreSQL: BatchCreateEntry over
 * the real Unix socket (peer-credential check, protobuf, validation, the audit log line)
 * with the connect client, one entry per call and batches of 50, each beside the same
 * datastore called directly in the same run:
 *
 * - one entry per call vs `DataStore.createEntry`: the cost of the API layer;
 * - batches of 50 vs 50 × `DataStore.createEntry`: the same writes the API makes (each item
 *   is written on its own, as SPIRE does, so that one bad item does not fail the batch);
 * - batches of 50 vs `DataStore.createEntries` of 50: what one all-or-nothing transaction
 *   per batch would give instead.
 *
 * Subject and baseline alternate for three rounds and the best round of each is reported
 * (the machine is shared); the load average is printed with every round. PostgreSQL comes
 * from the test harness, which runs with fsync off: its absolute figures are upper bounds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { systemClock } from '../src/common/clock.js';
import { createUdsTransport } from '../src/common/grpc.js';
import { nullLogger } from '../src/common/log.js';
import { cryptoRandom } from '../src/common/random.js';
import { MemoryKeyManager } from '../src/hsm/memory.js';
import { entryv1, type types } from '../src/protocol/index.js';
import { startAdminServer } from '../src/server/api/admin/admin-server.js';
import { MemoryJournalStore } from '../src/server/ca/journal.js';
import { CaManager } from '../src/server/ca/manager.js';
import { noMetrics, type ServerContext } from '../src/server/context.js';
import { openDataStore } from '../src/server/datastore/index.js';
import type { DataStore, NewRegistrationEntry } from '../src/server/datastore/types.js';
import { parseTrustDomain } from '../src/spiffe/id.js';
import { startPostgres } from '../test/harness/postgres.js';
import { type Benchmark, measure, type Rate, reportRatio } from './lib.js';

const TD = 'example.org';
const BATCH = 50;
const ROUNDS = 3;
const SECONDS = 1;
const PARENTS = 100;

let seq = 0;

/** A fresh entry (unique SPIFFE ID, one of PARENTS agents as parent, two selectors). */
function nextEntry(): NewRegistrationEntry {
  const i = seq++;
  return {
    spiffeId: `spiffe://${TD}/bench/w${i}`,
    parentId: `spiffe://${TD}/spire/agent/p${i % PARENTS}`,
    selectors: [
      { type: 'unix', value: `uid:${i}` },
      { type: 'unix', value: 'gid:1000' },
    ],
  };
}

/** The same entry as the admin API's `types.Entry` initializer. */
function toProto(e: NewRegistrationEntry): MessageInitShape<typeof types.EntrySchema> {
  const path = (id: string) => id.slice(`spiffe://${TD}`.length);
  return {
    spiffeId: { trustDomain: TD, path: path(e.spiffeId) },
    parentId: { trustDomain: TD, path: path(e.parentId) },
    selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })),
  };
}

/** Entries per second of `fn`, which creates `perCall` entries per call. */
async function entriesPerSecond(
  name: string,
  perCall: number,
  fn: () => Promise<unknown>,
): Promise<Rate> {
  const r = await measure(name, fn, { seconds: SECONDS, warmup: 0.2 });
  return { ...r, ops: r.ops * perCall, opsPerSec: r.opsPerSec * perCall };
}

type Subject = readonly [name: string, perCall: number, fn: () => Promise<unknown>];

/** Subject and baselines alternately, ROUNDS rounds; best round of each, ratios. */
async function paired(title: string, subject: Subject, baselines: readonly Subject[]) {
  let best: Rate | undefined;
  const bestBase: Array<Rate | undefined> = baselines.map(() => undefined);
  const better = (a: Rate | undefined, b: Rate): Rate =>
    a === undefined || b.opsPerSec > a.opsPerSec ? b : a;
  console.log(`\n## ${title}: rounds (load average at the start of each)`);
  for (let r = 1; r <= ROUNDS; r++) {
    const load = loadavg()[0]!.toFixed(2);
    const s = await entriesPerSecond(...subject);
    best = better(best, s);
    const parts = [`${subject[0]} ${Math.round(s.opsPerSec)}/s`];
    for (let i = 0; i < baselines.length; i++) {
      const b = await entriesPerSecond(...baselines[i]!);
      bestBase[i] = better(bestBase[i], b);
      parts.push(`${baselines[i]![0]} ${Math.round(b.opsPerSec)}/s`);
    }
    console.log(`  round ${r}: load ${load}; ${parts.join('; ')}`);
  }
  for (let i = 0; i < baselines.length; i++) {
    reportRatio(`${title} (best of ${ROUNDS})`, best!, bestBase[i]!);
  }
}

/** Throws unless every item of a BatchCreateEntry answer is OK. */
function allCreated(res: entryv1.BatchCreateEntryResponse, want: number): void {
  const ok = res.results.filter((r) => r.status?.code === 0).length;
  if (ok !== want) {
    const bad = res.results.find((r) => r.status?.code !== 0)?.status;
    throw new Error(`BatchCreateEntry created ${ok} of ${want}: ${bad?.message ?? '?'}`);
  }
}

async function adminBench(
  label: string,
  open: () => Promise<{ ds: DataStore; close: () => Promise<void> }>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'admin-api-bench-'));
  const { ds, close } = await open();
  const ca = await CaManager.start({
    trustDomain: TD,
    keyManager: new MemoryKeyManager(),
    journalStore: new MemoryJournalStore(),
  });
  const context: ServerContext = {
    trustDomain: parseTrustDomain(TD),
    dataStore: ds,
    ca: ca.ca,
    clock: systemClock,
    random: cryptoRandom,
    log: nullLogger,
    metrics: noMetrics,
    defaultX509SvidTtl: 3600,
    defaultJwtSvidTtl: 300,
    agentTtl: 3600,
  };
  const server = await startAdminServer({ context, socketPath: join(dir, 'admin', 'api.sock') });
  const transport = createUdsTransport(server.socketPath);
  const client = createClient(entryv1.Entry, transport);
  try {
    await paired(
      `${label}: entry creation, one entry per call`,
      [
        'BatchCreateEntry ×1 over the admin socket',
        1,
        async () =>
          allCreated(await client.batchCreateEntry({ entries: [toProto(nextEntry())] }), 1),
      ],
      [['DataStore.createEntry, called directly', 1, () => ds.createEntry(nextEntry())]],
    );
    await paired(
      `${label}: entry creation, batches of ${BATCH}`,
      [
        `BatchCreateEntry ×${BATCH} over the admin socket`,
        BATCH,
        async () =>
          allCreated(
            await client.batchCreateEntry({
              entries: Array.from({ length: BATCH }, () => toProto(nextEntry())),
            }),
            BATCH,
          ),
      ],
      [
        [
          `${BATCH} × DataStore.createEntry, called directly`,
          BATCH,
          async () => {
            for (let i = 0; i < BATCH; i++) await ds.createEntry(nextEntry());
          },
        ],
        [
          `DataStore.createEntries of ${BATCH}, called directly`,
          BATCH,
          () => ds.createEntries(Array.from({ length: BATCH }, () => nextEntry())),
        ],
      ],
    );
  } finally {
    transport.close();
    await server.close();
    await ca.close();
    await close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const benchmark: Benchmark = {
  title: 'Admin API: entry creation through BatchCreateEntry (SQLite, PostgreSQL)',
  async run() {
    const dir = mkdtempSync(join(tmpdir(), 'admin-api-bench-sqlite-'));
    try {
      await adminBench('sqlite (synchronous=FULL)', async () => {
        const ds = await openDataStore({
          databaseType: 'sqlite3',
          connectionString: join(dir, 'datastore.sqlite3'),
        });
        return { ds, close: () => ds.close() };
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const pg = await startPostgres();
    try {
      await adminBench('postgres (harness: fsync off)', async () => {
        const ds = await openDataStore({
          databaseType: 'postgres',
          connectionString: await pg.createDatabase('bench_admin'),
        });
        return { ds, close: () => ds.close() };
      });
    } finally {
      await pg.stop();
    }
  },
};

export default benchmark;
