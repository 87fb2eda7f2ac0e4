/**
 * The schema migrations and the runner that applies them. The `migrations` table records
 * each applied version. Opening a database whose recorded version is newer than
 * {@link LATEST_SCHEMA_VERSION} fails with `ERR_DATASTORE_SCHEMA_UNSUPPORTED` (this code
 * would misread it); older databases are upgraded in order, one transaction per step, while
 * holding the driver's migration lock (a PostgreSQL advisory lock, so two servers starting
 * at once on one database do not race).
 */
import type { Clock } from '../../../common/clock.js';
import { dsError } from '../errors.js';
import type { SqlDriver, SqlTx } from '../internal/driver.js';
import type { Migration } from './migration.js';
import { v1Base } from './v1-base.js';
import { v2EvidenceAndIndexes } from './v2-evidence-and-indexes.js';
import { v3ProvisioningTokens } from './v3-provisioning-tokens.js';

export type { Migration } from './migration.js';

/** Every migration, in order. */
export const MIGRATIONS: readonly Migration[] = [
  v1Base,
  v2EvidenceAndIndexes,
  v3ProvisioningTokens,
];

/** The schema version this code reads and writes. */
export const LATEST_SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]!.version;

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at BIGINT NOT NULL
)`;

/** The highest version recorded in the `migrations` table (0 when empty). */
export async function currentVersion(tx: SqlTx): Promise<number> {
  const rows = await tx.all('SELECT MAX(version) AS v FROM migrations');
  const v = rows[0]?.v;
  return v === null || v === undefined ? 0 : Number(v);
}

function tooNew(found: number): Error {
  return dsError(
    'ERR_DATASTORE_SCHEMA_UNSUPPORTED',
    `database schema version ${found} is newer than the latest this server knows (${LATEST_SCHEMA_VERSION}): upgrade the server or restore a matching backup`,
    { details: { found, latest: LATEST_SCHEMA_VERSION } },
  );
}

/**
 * Brings the database to `targetVersion` (default: the latest) and returns the version it
 * is at. Never downgrades: a database already past the target is left alone, and one past
 * the latest known version is refused.
 */
export async function migrate(
  driver: SqlDriver,
  { targetVersion = LATEST_SCHEMA_VERSION, clock }: { targetVersion?: number; clock: Clock },
): Promise<number> {
  if (
    !Number.isInteger(targetVersion) ||
    targetVersion < 1 ||
    targetVersion > LATEST_SCHEMA_VERSION
  ) {
    throw new TypeError(`targetVersion must be an integer in [1, ${LATEST_SCHEMA_VERSION}]`);
  }
  return driver.exclusive(async (session) => {
    let version = await session.transaction(async (tx) => {
      await tx.exec(CREATE_TABLE);
      return currentVersion(tx);
    });
    if (version > LATEST_SCHEMA_VERSION) throw tooNew(version);
    for (const m of MIGRATIONS) {
      if (m.version <= version || m.version > targetVersion) continue;
      version = await session.transaction(async (tx) => {
        // Another process may have migrated meanwhile (SQLite has no cross-process lock here).
        const now = await currentVersion(tx);
        if (now >= m.version) return now;
        await tx.exec(driver.dialect === 'sqlite' ? m.sqlite : m.postgres);
        await tx.run('INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)', [
          m.version,
          m.name,
          Math.floor(clock.nowMs() / 1000),
        ]);
        return m.version;
      });
    }
    return version;
  });
}
