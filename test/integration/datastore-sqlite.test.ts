/**
 * The SQLite datastore: the shared DataStore contract on a temp-dir file per test, plus
 * what only SQLite has: the file's mode and journal, and crash safety (a writer SIGKILLed
 * mid-batch leaves a consistent database with whole batches only).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  defaultSqlitePath,
  migrateDatabase,
  openDataStore,
} from '../../src/server/datastore/index.js';
import { runDataStoreContract, type TestDatabase } from '../contract/datastore.contract.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
let dir: string;
let counter = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'spire-edge-ds-sqlite-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function sqliteDatabase(path: string): TestDatabase {
  let raw: Database.Database | undefined;
  const conn = (): Database.Database => {
    raw ??= new Database(path, { timeout: 5000 });
    return raw;
  };
  return {
    open: (options = {}) =>
      openDataStore({
        databaseType: 'sqlite3',
        connectionString: path,
        ...(options.clock === undefined ? {} : { clock: options.clock }),
      }),
    async sql(sql, params = []) {
      const s = conn().prepare(sql);
      if (s.reader) return s.all(...params) as Record<string, unknown>[];
      s.run(...params);
      return [];
    },
    async migrateTo(version) {
      await migrateDatabase({
        databaseType: 'sqlite3',
        connectionString: path,
        targetVersion: version,
      });
    },
    async dispose() {
      raw?.close();
    },
  };
}

runDataStoreContract('sqlite', () => ({
  newDatabase: async () => sqliteDatabase(join(dir, `db-${++counter}`, 'datastore.sqlite3')),
}));

describe('sqlite: the database file', () => {
  it('lives at data_dir/datastore.sqlite3 with mode 0600, in WAL mode', async () => {
    const dataDir = join(dir, 'data-dir', 'server');
    const path = defaultSqlitePath(dataDir);
    expect(path).toBe(join(dataDir, 'datastore.sqlite3'));
    const ds = await openDataStore({ databaseType: 'sqlite3', connectionString: path });
    try {
      await ds.saveCaJournal('s', Uint8Array.of(1));
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(statSync(dataDir).mode & 0o777).toBe(0o700);
      const raw = new Database(path, { readonly: true });
      try {
        expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      } finally {
        raw.close();
      }
    } finally {
      await ds.close();
    }
  });

  it('reports a file that is not a database as ERR_DATASTORE_INTERNAL', async () => {
    const path = join(dir, 'garbage.sqlite3');
    writeFileSync(
      path,
      'this is not a database file, just some text that is long enough to matter',
    );
    await expect(
      openDataStore({ databaseType: 'sqlite3', connectionString: path }),
    ).rejects.toMatchObject({
      code: 'ERR_DATASTORE_INTERNAL',
    });
  });

  it('works in memory', async () => {
    const ds = await openDataStore({ databaseType: 'sqlite3', connectionString: ':memory:' });
    try {
      await ds.createEntry({
        spiffeId: 'spiffe://example.org/m',
        parentId: 'spiffe://example.org/agent',
        selectors: [{ type: 'unix', value: 'uid:1' }],
      });
      expect(await ds.countEntries()).toBe(1);
    } finally {
      await ds.close();
    }
  });
});

// The child creates batches of BATCH entries forever, printing before and after each.
const BATCH = 4000;
const CHILD = `
const { openDataStore } = await import(process.env.DS_MODULE);
const ds = await openDataStore({ databaseType: 'sqlite3', connectionString: process.env.DS_PATH });
const run = process.env.DS_RUN;
for (let batch = 0; ; batch++) {
  const entries = Array.from({ length: ${BATCH} }, (_, i) => ({
    spiffeId: 'spiffe://example.org/crash/' + run + '/' + batch + '/' + i,
    parentId: 'spiffe://example.org/agent',
    selectors: [{ type: 'unix', value: 'uid:' + i }, { type: 'batch', value: run + '-' + batch }],
  }));
  process.stdout.write('start ' + batch + '\\n');
  await ds.createEntries(entries);
  process.stdout.write('committed ' + batch + '\\n');
}
`;

/**
 * Runs the child until it starts batch `killAt`, then SIGKILLs it as soon as that batch's
 * transaction has written pages to the WAL (SQLite spills a large transaction's pages to the
 * WAL before the commit), or after `maxDelayMs`. Returns how many batches it reported
 * committed and whether the WAL changed after the last reported commit.
 */
function crashRun(
  path: string,
  run: string,
  killAt: number,
  maxDelayMs: number,
): Promise<{ committed: number; walChanged: boolean }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], {
      cwd: repo,
      env: {
        ...process.env,
        DS_MODULE: pathToFileURL(join(repo, 'src/server/datastore/index.ts')).href,
        DS_PATH: path,
        DS_RUN: run,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let committed = 0;
    // Nothing but the next transaction writes the WAL after a commit has returned
    // (auto-checkpoints run inside the commit), so a later mtime means in-flight pages.
    let walAtCommit = 0n;
    const walMtime = (): bigint => {
      try {
        return statSync(`${path}-wal`, { bigint: true }).mtimeNs;
      } catch {
        return 0n;
      }
    };
    let killed = false;
    let poll: NodeJS.Timeout | undefined;
    const kill = (): void => {
      if (killed) return;
      killed = true;
      clearInterval(poll);
      child.kill('SIGKILL');
    };
    let buf = '';
    let stderr = '';
    const timer = setTimeout(kill, 60_000);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith('committed ') && !killed) {
          committed++;
          walAtCommit = walMtime();
        }
        if (line === `start ${killAt}` && !killed) {
          const started = Date.now();
          poll = setInterval(() => {
            if (walMtime() !== walAtCommit || Date.now() - started > maxDelayMs) kill();
          }, 1);
        }
        nl = buf.indexOf('\n');
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      clearInterval(poll);
      if (signal !== 'SIGKILL' || !killed) {
        reject(new Error(`crash child exited with ${code ?? signal} before the kill: ${stderr}`));
      } else {
        resolvePromise({ committed, walChanged: walMtime() !== walAtCommit });
      }
    });
  });
}

describe('sqlite: crash safety', () => {
  it('keeps the database consistent and batches all-or-nothing when the writer is SIGKILLed mid-batch', async () => {
    const path = join(dir, 'crash', 'datastore.sqlite3');
    const runs: Array<{ run: string; committed: number; torn: boolean }> = [];
    for (const i of [0, 1, 2]) {
      const run = `r${i}`;
      const { committed, walChanged } = await crashRun(path, run, 2, 2000);
      expect(committed).toBeGreaterThanOrEqual(2);
      let batches = 0;

      const raw = new Database(path);
      try {
        expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
        expect(raw.pragma('foreign_key_check')).toEqual([]);
        const perBatch = raw
          .prepare(
            `SELECT s.value AS batch, COUNT(*) AS n FROM entry_selectors s
             WHERE s.type = 'batch' AND s.value LIKE ? GROUP BY s.value`,
          )
          .all(`${run}-%`) as Array<{ batch: string; n: number }>;
        for (const b of perBatch) expect(b.n, `batch ${b.batch}`).toBe(BATCH);
        batches = perBatch.length;
        // Every batch reported committed is there (durability); at most the one in flight more.
        expect(perBatch.length).toBeGreaterThanOrEqual(committed);
        expect(perBatch.length).toBeLessThanOrEqual(committed + 1);
        const totals = raw
          .prepare(
            `SELECT (SELECT COUNT(*) FROM registered_entries) AS entries,
                    (SELECT COUNT(*) FROM registered_entries_events) AS events,
                    (SELECT COUNT(*) FROM entry_selectors) AS selectors`,
          )
          .get() as { entries: number; events: number; selectors: number };
        expect(totals.entries % BATCH).toBe(0);
        expect(totals.events).toBe(totals.entries);
        expect(totals.selectors).toBe(2 * totals.entries);
      } finally {
        raw.close();
      }
      // Torn: the in-flight batch had pages in the WAL, yet recovery left none of it.
      runs.push({ run, committed, torn: walChanged && batches === committed });
    }
    // The database opens and works after the crashes.
    const ds = await openDataStore({ databaseType: 'sqlite3', connectionString: path });
    try {
      const n = await ds.countEntries();
      expect(n % BATCH).toBe(0);
      await ds.createEntry({
        spiffeId: 'spiffe://example.org/after-crash',
        parentId: 'spiffe://example.org/agent',
        selectors: [{ type: 'unix', value: 'uid:1' }],
      });
      expect(await ds.countEntries()).toBe(n + 1);
    } finally {
      await ds.close();
    }
    // At least one kill landed inside a transaction whose pages had already reached the WAL,
    // so recovery really had to discard a partial batch.
    expect(runs.some((r) => r.torn)).toBe(true);
  }, 120_000);
});
