/**
 * The SQLite datastore (SPIRE's embedded default, `database_type = "sqlite3"`), on
 * better-sqlite3.
 *
 * Durability: WAL journal with `synchronous=FULL`. WAL alone keeps the file consistent after
 * a process crash even with `NORMAL`, but with `NORMAL` a power loss or kernel crash can drop
 * the last committed transactions. Here a lost commit is a security event, not an
 * inconvenience: a consumed join token could be accepted again, a deleted entry or a banned
 * agent could come back, a CA journal could forget a prepared key. FULL syncs the WAL on every
 * commit; writes are rare next to reads, which cost nothing extra.
 *
 * Concurrency: better-sqlite3 is synchronous. Every operation runs under one in-process
 * mutex per database file (shared by all DataStores on that file in this process), so an
 * async transaction never interleaves with another one on the same connection, and two
 * connections in one process never wait on each other's file lock while blocking the event
 * loop. Other processes are handled by SQLite's file locks with `busy_timeout`; write
 * transactions start with `BEGIN IMMEDIATE` so they never deadlock upgrading a read lock.
 */
import { chmodSync, closeSync, mkdirSync, openSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
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

/** The file name SPIRE uses under the server's data_dir. */
export const SQLITE_FILE_NAME = 'datastore.sqlite3';

/** How long a statement waits for another process's lock before failing (ms). */
export const SQLITE_BUSY_TIMEOUT_MS = 5000;

/** `data_dir/datastore.sqlite3`: the default connection string for a server data directory. */
export function defaultSqlitePath(dataDir: string): string {
  return join(dataDir, SQLITE_FILE_NAME);
}

/** A FIFO async mutex. */
class Mutex {
  #tail: Promise<void> = Promise.resolve();

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.#tail;
    let release!: () => void;
    this.#tail = new Promise<void>((r) => {
      release = r;
    });
    await prev;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

const mutexes = new Map<string, { mutex: Mutex; users: number }>();

function acquireMutex(key: string): Mutex {
  let m = mutexes.get(key);
  if (m === undefined) {
    m = { mutex: new Mutex(), users: 0 };
    mutexes.set(key, m);
  }
  m.users++;
  return m.mutex;
}

function releaseMutex(key: string): void {
  const m = mutexes.get(key);
  if (m !== undefined && --m.users === 0) mutexes.delete(key);
}

type Statement = Database.Statement<unknown[], unknown>;

/** better-sqlite3 cannot bind booleans or Uint8Arrays that are not Buffers. */
function bindable(params: readonly unknown[]): unknown[] {
  return params.map((p) => {
    if (typeof p === 'boolean') return p ? 1 : 0;
    if (p instanceof Uint8Array && !Buffer.isBuffer(p)) {
      return Buffer.from(p.buffer, p.byteOffset, p.byteLength);
    }
    return p;
  });
}

class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite' as const;
  readonly forUpdate = '';
  readonly #db: Database.Database;
  readonly #mutex: Mutex;
  readonly #key: string;
  readonly #stmts = new Map<string, Statement>();
  #closed = false;
  readonly #tx: SqlTx;

  constructor(db: Database.Database, key: string) {
    this.#db = db;
    this.#key = key;
    this.#mutex = acquireMutex(key);
    this.#tx = {
      all: async (sql, params = []) => this.#all(sql, params),
      run: async (sql, params = []) => this.#run(sql, params),
      exec: async (sql) => {
        this.#db.exec(sql);
      },
    };
  }

  jsonPairs(a: string, b: string): string {
    return `json_group_array(json_array(${a}, ${b}))`;
  }

  jsonList(a: string): string {
    return `json_group_array(${a})`;
  }

  #prepare(sql: string): Statement {
    let s = this.#stmts.get(sql);
    if (s === undefined) {
      s = this.#db.prepare(sql);
      // Dynamic IN lists make many distinct statements: keep the cache bounded.
      if (this.#stmts.size >= 500) this.#stmts.clear();
      this.#stmts.set(sql, s);
    }
    return s;
  }

  #all(sql: string, params: readonly unknown[]): Row[] {
    const s = this.#prepare(sql);
    if (!s.reader) {
      s.run(...bindable(params));
      return [];
    }
    return s.all(...bindable(params)) as Row[];
  }

  #run(sql: string, params: readonly unknown[]): number {
    const s = this.#prepare(sql);
    if (s.reader) return (s.all(...bindable(params)) as Row[]).length;
    return s.run(...bindable(params)).changes;
  }

  #check(): void {
    if (this.#closed) throw dsError('ERR_DATASTORE_INTERNAL', 'datastore is closed');
  }

  query(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return this.#mutex.run(async () => {
      this.#check();
      return this.#all(sql, params);
    });
  }

  read<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    return this.#transaction('BEGIN', fn);
  }

  write<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    return this.#transaction('BEGIN IMMEDIATE', fn);
  }

  #transaction<T>(begin: string, fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    return this.#mutex.run(() => this.#inTransaction(begin, fn));
  }

  async #inTransaction<T>(begin: string, fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    this.#check();
    this.#db.exec(begin);
    try {
      const result = await fn(this.#tx);
      this.#db.exec('COMMIT');
      return result;
    } catch (err) {
      if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
      throw err;
    }
  }

  async insertEvents(
    tx: SqlTx,
    table: string,
    keyCol: string,
    keys: readonly string[],
    createdAt: number,
  ): Promise<void> {
    // A single writer: event IDs are assigned in commit order already.
    await tx.run(
      `INSERT INTO ${table} (${keyCol}, created_at) VALUES ${keys.map(() => '(?, ?)').join(', ')}`,
      keys.flatMap((k) => [k, createdAt]),
    );
  }

  exclusive<T>(fn: (session: MigrationSession) => Promise<T>): Promise<T> {
    return this.#mutex.run(() =>
      fn({ transaction: (txFn) => this.#inTransaction('BEGIN IMMEDIATE', txFn) }),
    );
  }

  classify(err: unknown): ClassifiedError {
    const code = (err as { code?: unknown } | null)?.code;
    const message = err instanceof Error ? err.message : '';
    if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
      return { kind: 'unique', detail: message.replace(/^UNIQUE constraint failed: /, '') };
    }
    if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY') return { kind: 'foreign-key', detail: message };
    if (code === 'SQLITE_BUSY') return { kind: 'retry', detail: message };
    return { kind: 'other', detail: message };
  }

  async close(): Promise<void> {
    await this.#mutex.run(async () => {
      if (this.#closed) return;
      this.#closed = true;
      this.#stmts.clear();
      this.#db.close();
    });
    releaseMutex(this.#key);
  }
}

/** Options of {@link openSqliteDataStore}. */
export interface SqliteDataStoreOptions {
  /** The database file (created mode 0600, its directory 0700), or `:memory:`. */
  readonly path: string;
  readonly clock?: Clock;
  readonly random?: RandomSource;
}

let memoryDatabases = 0;

function wrapOpenError(err: unknown, path: string): unknown {
  if (isSpireEdgeError(err)) return err;
  return dsError('ERR_DATASTORE_INTERNAL', `could not open sqlite database ${path}`, {
    cause: err,
  });
}

function openDatabase(path: string): { db: Database.Database; key: string } {
  if (path === ':memory:') {
    return { db: new Database(':memory:'), key: `:memory:${++memoryDatabases}` };
  }
  const file = resolve(path);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  // Create the file ourselves so it is never group/world readable, whatever the umask.
  closeSync(openSync(file, 'a', 0o600));
  chmodSync(file, 0o600);
  const db = new Database(file, { timeout: SQLITE_BUSY_TIMEOUT_MS });
  return { db, key: realpathSync(file) };
}

/** Opens the SQLite connection with the pragmas, without migrating (internal and tests). */
export function openSqliteDriver(path: string): SqlDriver {
  let opened: { db: Database.Database; key: string };
  try {
    opened = openDatabase(path);
  } catch (err) {
    throw wrapOpenError(err, path);
  }
  const { db, key } = opened;
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
  } catch (err) {
    db.close();
    throw wrapOpenError(err, path);
  }
  return new SqliteDriver(db, key);
}

/**
 * Opens (creating and migrating as needed) a SQLite datastore.
 *
 * @throws SpireEdgeError `ERR_DATASTORE_SCHEMA_UNSUPPORTED` when the file's schema is newer
 * than this code; `ERR_DATASTORE_INTERNAL` when the file cannot be opened.
 */
export async function openSqliteDataStore(options: SqliteDataStoreOptions): Promise<DataStore> {
  if (typeof options?.path !== 'string' || options.path === '') {
    throw new TypeError('path must be a non-empty string');
  }
  const driver = openSqliteDriver(options.path);
  const clock = options.clock ?? systemClock;
  try {
    await migrate(driver, { targetVersion: LATEST_SCHEMA_VERSION, clock });
  } catch (err) {
    await driver.close();
    throw wrapOpenError(err, options.path);
  }
  return new SqlDataStore(driver, {
    databaseType: 'sqlite3',
    clock,
    random: options.random ?? cryptoRandom,
  });
}
