/**
 * The PostgreSQL datastore (`database_type = "postgres"`), on a pg connection pool. Several
 * servers may share one database (SPIRE's HA model):
 *
 * - writes run in READ COMMITTED transactions; records that are read-modified-written
 *   (bundles, entries being updated, nodes) are locked with `SELECT … FOR UPDATE`, so
 *   concurrent appenders on different servers queue instead of losing each other's changes;
 * - uniqueness (entry IDs, similar entries, node IDs, join tokens) is enforced by
 *   constraints, and a join token is consumed by one `DELETE … RETURNING`;
 * - change events are inserted last in each transaction under a transaction-scoped advisory
 *   lock, so event IDs become visible in order (a cache that saw event N has seen every
 *   committed event below N; rolled-back transactions leave gaps, never late arrivals);
 * - migrations run under a session advisory lock, so servers starting together migrate once;
 * - serialisation failures and deadlocks are retried (a few times, with jitter).
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Clock } from '../../common/clock.js';
import { systemClock } from '../../common/clock.js';
import { isSpireEdgeError } from '../../common/errors.js';
import type { RandomSource } from '../../common/random.js';
import { cryptoRandom } from '../../common/random.js';
import { dsError } from './errors.js';
import type {
  ClassifiedError,
  MigrationSession,
  Row,
  SqlDriver,
  SqlTx,
} from './internal/driver.js';
import { SqlDataStore } from './internal/sql-store.js';
import { LATEST_SCHEMA_VERSION, migrate } from './migrations/index.js';
import type { DataStore } from './types.js';

/** Advisory lock keys ("spire-edge" flavoured constants; any fixed int8 would do). */
const MIGRATION_LOCK_KEY = '7233173583472902913';
const EVENTS_LOCK_KEY = '7233173583472902914';

/** How many times a transaction is retried after a serialisation failure or deadlock. */
const MAX_RETRIES = 5;

function toPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

function bindable(params: readonly unknown[]): unknown[] {
  return params.map((p) =>
    p instanceof Uint8Array && !Buffer.isBuffer(p)
      ? Buffer.from(p.buffer, p.byteOffset, p.byteLength)
      : p,
  );
}

class PgDriver implements SqlDriver {
  readonly dialect = 'postgres' as const;
  readonly forUpdate = ' FOR UPDATE';
  readonly #pool: pg.Pool;
  readonly #random: RandomSource;
  readonly #sql = new Map<string, { name: string; text: string }>();
  #closed = false;

  constructor(pool: pg.Pool, random: RandomSource) {
    this.#pool = pool;
    this.#random = random;
  }

  jsonPairs(a: string, b: string): string {
    return `COALESCE(json_agg(json_build_array(${a}, ${b}))::text, '[]')`;
  }

  jsonList(a: string): string {
    return `COALESCE(json_agg(${a})::text, '[]')`;
  }

  /**
   * The statement as a named prepared statement: PostgreSQL parses and plans it once per
   * connection. The name is a hash of the text, so equal texts share it and different texts
   * never collide; the set of texts is bounded by the code (IN lists come in chunks).
   */
  #stmt(sql: string, params: readonly unknown[]): pg.QueryConfig {
    let s = this.#sql.get(sql);
    if (s === undefined) {
      const text = toPlaceholders(sql);
      s = { name: `se_${createHash('sha256').update(text).digest('hex').slice(0, 32)}`, text };
      if (this.#sql.size >= 2000) this.#sql.clear();
      this.#sql.set(sql, s);
    }
    return { name: s.name, text: s.text, values: bindable(params) };
  }

  #txOn(client: pg.PoolClient): SqlTx {
    return {
      all: async (sql, params = []) => (await client.query(this.#stmt(sql, params))).rows as Row[],
      run: async (sql, params = []) => (await client.query(this.#stmt(sql, params))).rowCount ?? 0,
      exec: async (sql) => {
        await client.query(sql);
      },
    };
  }

  #check(): void {
    if (this.#closed) throw dsError('ERR_DATASTORE_INTERNAL', 'datastore is closed');
  }

  async query(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    this.#check();
    return (await this.#pool.query(this.#stmt(sql, params))).rows as Row[];
  }

  async #inTransaction<T>(
    client: pg.PoolClient,
    begin: string,
    fn: (tx: SqlTx) => Promise<T>,
  ): Promise<T> {
    await client.query(begin);
    try {
      const result = await fn(this.#txOn(client));
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  async #withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    this.#check();
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      return await fn(client);
    } catch (err) {
      // A connection-level failure must not be handed to the next caller.
      if (!isSpireEdgeError(err) && (err as { code?: unknown }).code === undefined) {
        broken = err instanceof Error ? err : new Error(String(err));
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }

  read<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    return this.#withClient((c) =>
      this.#inTransaction(c, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', fn),
    );
  }

  async write<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#withClient((c) => this.#inTransaction(c, 'BEGIN', fn));
      } catch (err) {
        if (attempt >= MAX_RETRIES || this.classify(err).kind !== 'retry') throw err;
        await new Promise((r) => setTimeout(r, 5 * attempt + this.#random.int(0, 10)));
      }
    }
  }

  async insertEvents(
    tx: SqlTx,
    table: string,
    keyCol: string,
    keys: readonly string[],
    createdAt: number,
  ): Promise<void> {
    // The lock is a cross-joined one-row subquery: it is taken before the first row reaches
    // the insert, hence before any identity value is drawn, and held until commit.
    await tx.run(
      `INSERT INTO ${table} (${keyCol}, created_at)
       SELECT v.k, v.t FROM (VALUES ${keys.map(() => '(?::text, ?::bigint)').join(', ')}) AS v (k, t)
       CROSS JOIN (SELECT pg_advisory_xact_lock(${EVENTS_LOCK_KEY})) AS l`,
      keys.flatMap((k) => [k, createdAt]),
    );
  }

  exclusive<T>(fn: (session: MigrationSession) => Promise<T>): Promise<T> {
    return this.#withClient(async (client) => {
      await client.query(`SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY})`);
      try {
        return await fn({
          transaction: (txFn) => this.#inTransaction(client, 'BEGIN', txFn),
        });
      } finally {
        await client.query(`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY})`);
      }
    });
  }

  classify(err: unknown): ClassifiedError {
    const e = err as { code?: unknown; constraint?: unknown; message?: unknown } | null;
    const detail = String(e?.constraint ?? e?.message ?? '');
    switch (e?.code) {
      case '23505':
        return { kind: 'unique', detail };
      case '23503':
        return { kind: 'foreign-key', detail };
      case '40001':
      case '40P01':
        return { kind: 'retry', detail };
      default:
        return { kind: 'other', detail };
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }
}

/** Options of {@link openPostgresDataStore}. */
export interface PostgresDataStoreOptions {
  /** A connection URL: `postgres://user:pass@host:port/db?sslmode=…`. */
  readonly connectionString: string;
  /** Pool size (default 10). */
  readonly maxConnections?: number;
  readonly clock?: Clock;
  readonly random?: RandomSource;
}

/** Opens the pool and checks the server answers, without migrating (internal and tests). */
export async function openPostgresDriver(
  connectionString: string,
  maxConnections = 10,
  random: RandomSource = cryptoRandom,
): Promise<SqlDriver> {
  const pool = new pg.Pool({
    connectionString,
    max: maxConnections,
    application_name: 'spire-edge',
  });
  // An idle client losing its connection emits 'error' on the pool; without a listener that
  // would crash the process. The next query reports the failure to its caller instead.
  pool.on('error', () => undefined);
  const driver = new PgDriver(pool, random);
  try {
    await driver.query('SELECT 1');
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw dsError(
      'ERR_DATASTORE_INTERNAL',
      `could not connect to postgres: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return driver;
}

/**
 * Opens (migrating as needed) a PostgreSQL datastore.
 *
 * @throws SpireEdgeError `ERR_DATASTORE_SCHEMA_UNSUPPORTED` when the database's schema is
 * newer than this code; `ERR_DATASTORE_INTERNAL` when it cannot connect.
 */
export async function openPostgresDataStore(options: PostgresDataStoreOptions): Promise<DataStore> {
  if (typeof options?.connectionString !== 'string' || options.connectionString === '') {
    throw new TypeError('connectionString must be a non-empty string');
  }
  const random = options.random ?? cryptoRandom;
  const driver = await openPostgresDriver(options.connectionString, options.maxConnections, random);
  const clock = options.clock ?? systemClock;
  try {
    await migrate(driver, { targetVersion: LATEST_SCHEMA_VERSION, clock });
  } catch (err) {
    await driver.close();
    if (isSpireEdgeError(err)) throw err;
    throw dsError(
      'ERR_DATASTORE_INTERNAL',
      `could not migrate postgres database: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return new SqlDataStore(driver, { databaseType: 'postgres', clock, random });
}
