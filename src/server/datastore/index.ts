/**
 * The server datastore: one {@link DataStore} interface, SQLite (embedded default) and
 * PostgreSQL (shared by several servers for HA) implementations, and their schema
 * migrations. See docs/datastore.md for the schema, migrations, HA notes and backups.
 */
import type { Clock } from '../../common/clock.js';
import { systemClock } from '../../common/clock.js';
import { isSpireEdgeError } from '../../common/errors.js';
import type { RandomSource } from '../../common/random.js';
import { dsError } from './errors.js';
import type { SqlDriver } from './internal/driver.js';
import { LATEST_SCHEMA_VERSION, migrate } from './migrations/index.js';
import { openPostgresDataStore, openPostgresDriver } from './postgres.js';
import { openSqliteDataStore, openSqliteDriver } from './sqlite.js';
import type { DataStore } from './types.js';

export type { DataStoreErrorCode } from './errors.js';
export { LATEST_SCHEMA_VERSION, MIGRATIONS } from './migrations/index.js';
export type { Migration } from './migrations/migration.js';
export { openPostgresDataStore, type PostgresDataStoreOptions } from './postgres.js';
export {
  canonicalSelectors,
  compareSelectors,
  formatSelector,
  MATCH_BEHAVIORS,
  matchesSelectors,
  matchesSet,
  parseSelector,
  selectorSetKey,
} from './selectors.js';
export {
  defaultSqlitePath,
  openSqliteDataStore,
  SQLITE_FILE_NAME,
  type SqliteDataStoreOptions,
} from './sqlite.js';
export type * from './types.js';

/** SPIRE's `database_type` values we support. */
export type DatabaseType = 'sqlite3' | 'postgres';

/** Options of {@link openDataStore}: SPIRE's `DataStore "sql"` plugin_data, plus injection. */
export interface OpenDataStoreOptions {
  readonly databaseType: DatabaseType;
  /**
   * sqlite3: the database file path (`data_dir/datastore.sqlite3` by default, see
   * `defaultSqlitePath`) or `:memory:`; postgres: a `postgres://` URL.
   */
  readonly connectionString: string;
  readonly clock?: Clock;
  readonly random?: RandomSource;
  /** postgres only: pool size (default 10). */
  readonly maxConnections?: number;
}

/**
 * Opens the datastore, creating and migrating the schema as needed.
 *
 * Trusts: the connection string (operator configuration). Throws TypeError for a
 * malformed options object.
 *
 * @throws SpireEdgeError `ERR_DATASTORE_SCHEMA_UNSUPPORTED` (schema newer than this code),
 * `ERR_DATASTORE_INTERNAL` (cannot open / connect / migrate).
 */
export function openDataStore(options: OpenDataStoreOptions): Promise<DataStore> {
  if (typeof options !== 'object' || options === null)
    throw new TypeError('options must be an object');
  const common = {
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.random === undefined ? {} : { random: options.random }),
  };
  switch (options.databaseType) {
    case 'sqlite3':
      return openSqliteDataStore({ path: options.connectionString, ...common });
    case 'postgres':
      return openPostgresDataStore({
        connectionString: options.connectionString,
        ...common,
        ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
      });
    default:
      throw new TypeError(
        `databaseType must be "sqlite3" or "postgres", not ${JSON.stringify(options.databaseType)}`,
      );
  }
}

/**
 * Migrates a database to `targetVersion` (default: the latest) without opening a DataStore,
 * and returns the version it is at. For operators (`migrate` before a rolling upgrade) and
 * for upgrade tests (build a database at an old version).
 */
export async function migrateDatabase(options: {
  databaseType: DatabaseType;
  connectionString: string;
  targetVersion?: number;
  clock?: Clock;
}): Promise<number> {
  let driver: SqlDriver;
  if (options.databaseType === 'sqlite3') driver = openSqliteDriver(options.connectionString);
  else if (options.databaseType === 'postgres') {
    driver = await openPostgresDriver(options.connectionString, 1);
  } else throw new TypeError('databaseType must be "sqlite3" or "postgres"');
  try {
    return await migrate(driver, {
      targetVersion: options.targetVersion ?? LATEST_SCHEMA_VERSION,
      clock: options.clock ?? systemClock,
    });
  } catch (err) {
    if (isSpireEdgeError(err) || err instanceof TypeError) throw err;
    throw dsError('ERR_DATASTORE_INTERNAL', `migration failed: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    await driver.close();
  }
}
