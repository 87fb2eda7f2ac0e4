/**
 * The PostgreSQL datastore: the shared DataStore contract against a real PostgreSQL (one
 * server per test file, a fresh database per test), plus what matters only for a database
 * shared by several servers: change events become visible in ID order under concurrent
 * writers, and connection failures are reported with a code.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import {
  type DataStore,
  migrateDatabase,
  openDataStore,
} from '../../src/server/datastore/index.js';
import { runDataStoreContract, type TestDatabase } from '../contract/datastore.contract.js';
import { type PostgresInstance, startPostgres } from '../harness/postgres.js';

let server: PostgresInstance;

beforeAll(async () => {
  server = await startPostgres();
});

afterAll(async () => {
  await server?.stop();
});

function toPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

async function postgresDatabase(): Promise<TestDatabase> {
  const connectionString = await server.createDatabase();
  let client: pg.Client | undefined;
  return {
    open: (options = {}) =>
      openDataStore({
        databaseType: 'postgres',
        connectionString,
        maxConnections: 4,
        ...(options.clock === undefined ? {} : { clock: options.clock }),
      }),
    async sql(sql, params = []) {
      if (client === undefined) {
        client = new pg.Client({ connectionString });
        await client.connect();
      }
      return (await client.query(toPlaceholders(sql), [...params])).rows as Record<
        string,
        unknown
      >[];
    },
    async migrateTo(version) {
      await migrateDatabase({ databaseType: 'postgres', connectionString, targetVersion: version });
    },
    async dispose() {
      await client?.end();
    },
  };
}

runDataStoreContract('postgres', () => ({ newDatabase: postgresDatabase }));

describe('postgres: shared by several servers', () => {
  it('makes change events visible in ID order while two servers write concurrently', async () => {
    const db = await postgresDatabase();
    const clock = new ManualClock();
    const stores: DataStore[] = [];
    try {
      for (let i = 0; i < 3; i++) stores.push(await db.open({ clock }));
      const [a, b, reader] = stores as [DataStore, DataStore, DataStore];
      let done = false;
      let last = 0;
      const seen: number[] = [];
      const poller = (async () => {
        while (!done) {
          const events = await reader.listEntryEvents({ greaterThanEventId: last });
          for (const e of events) {
            // A smaller ID appearing after a larger one would be missed by an incremental cache.
            expect(e.eventId).toBeGreaterThan(last);
            last = e.eventId;
            seen.push(e.eventId);
          }
        }
      })();
      const write = (s: DataStore, tag: string) =>
        (async () => {
          for (let i = 0; i < 30; i++) {
            await s.createEntry({
              spiffeId: `spiffe://example.org/${tag}/${i}`,
              parentId: 'spiffe://example.org/agent',
              selectors: [{ type: tag, value: String(i) }],
            });
          }
        })();
      // Four writers per server: commits overtake each other all the time.
      await Promise.all(
        ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((t, i) => write(i % 2 === 0 ? a : b, t)),
      );
      done = true;
      await poller;
      const tail = await reader.listEntryEvents({ greaterThanEventId: last });
      seen.push(...tail.map((e) => e.eventId));
      const all = (await reader.listEntryEvents()).map((e) => e.eventId);
      expect(all).toHaveLength(240);
      expect(seen).toEqual(all);
    } finally {
      for (const s of stores) await s.close();
      await db.dispose();
    }
  });

  it('reports an unreachable server as ERR_DATASTORE_INTERNAL', async () => {
    await expect(
      openDataStore({
        databaseType: 'postgres',
        connectionString: 'postgres://nobody@127.0.0.1:1/none',
      }),
    ).rejects.toMatchObject({ code: 'ERR_DATASTORE_INTERNAL' });
  });
});
