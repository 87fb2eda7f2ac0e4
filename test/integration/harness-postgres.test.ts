import { existsSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive, listensOn } from '../harness/common.js';
import { type PostgresInstance, startPostgres } from '../harness/postgres.js';

let db: PostgresInstance;

beforeAll(async () => {
  db = await startPostgres();
});

afterAll(async () => {
  await db?.stop();
});

async function withClient<T>(
  connectionString: string,
  fn: (c: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

describe('postgres harness', () => {
  it('answers SELECT 1 on its loopback port, served by the advertised postmaster', async () => {
    expect(db.connectionString).toBe(`postgres://${db.user}@127.0.0.1:${db.port}/${db.database}`);
    expect(await listensOn(db.pid, db.port)).toBe(true);
    const rows = await withClient(
      db.connectionString,
      async (c) => (await c.query('SELECT 1 AS one')).rows,
    );
    expect(rows).toEqual([{ one: 1 }]);
  });

  it('createDatabase gives an isolated database', async () => {
    const a = await db.createDatabase();
    const b = await db.createDatabase('harness_b');
    expect(b).toBe(`postgres://${db.user}@127.0.0.1:${db.port}/harness_b`);
    expect(a).not.toBe(b);
    await withClient(a, (c) => c.query('CREATE TABLE entries (id text PRIMARY KEY)'));
    await withClient(a, (c) => c.query("INSERT INTO entries VALUES ('x')"));
    const inB = await withClient(b, (c) =>
      c.query("SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'entries'"),
    );
    expect(inB.rows).toEqual([{ n: 0 }]);
    await expect(withClient(b, (c) => c.query('SELECT * FROM entries'))).rejects.toMatchObject({
      code: '42P01', // undefined_table
    });
    await expect(db.createDatabase('Bad-Name')).rejects.toThrow(TypeError);
    await expect(db.createDatabase('harness_b')).rejects.toMatchObject({ code: '42P04' }); // duplicate_database
  });

  it('psql runs SQL and fails with its stderr on an error', async () => {
    expect((await db.psql('SELECT 41 + 1')).stdout).toBe('42\n');
    expect((await db.psql('SHOW fsync')).stdout.trim()).toBe('off');
    await expect(db.psql('SELECT * FROM no_such_table')).rejects.toMatchObject({
      code: 'ERR_HARNESS_COMMAND_FAILED',
      message: expect.stringContaining('no_such_table'),
    });
  });

  // Last: it stops the shared instance (afterAll's stop() is then a no-op).
  it('stop() ends the postmaster (the pid is gone) and is idempotent', async () => {
    const pid = db.pid;
    expect(isAlive(pid)).toBe(true);
    await Promise.all([db.stop(), db.stop()]);
    expect(isAlive(pid)).toBe(false);
    expect(existsSync(db.dataDir)).toBe(false);
    await expect(withClient(db.connectionString, async () => 0)).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
  });
});
