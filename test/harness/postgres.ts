/**
 * A throw-away PostgreSQL server for integration tests, as a child of the test process,
 * listening on one ephemeral 127.0.0.1 port with its Unix socket in its own temp dir.
 *
 * Binaries come from /usr/lib/postgresql/<major>/bin (the newest major installed), not from
 * /usr/local/bin symlinks, which a fresh machine lacks. PostgreSQL refuses to run as root, so
 * as root the harness runs initdb and postgres as the `postgres` system user (created by the
 * Debian package) and hands it the temp dir.
 *
 * Built for speed, not durability: `initdb --no-sync` runs once per machine (~0.5 s) into a
 * cached template cluster that each instance copies (28 MB) into /dev/shm when it has room
 * (~0.07 s; a disk copy takes 0.1–0.7 s on a busy machine); the server runs with fsync,
 * synchronous_commit, full_page_writes and autovacuum off. Authentication is `trust`: any
 * local client may connect as the superuser {@link POSTGRES_USER}, without a password.
 */
import { readdirSync } from 'node:fs';
import { chown } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { SpireEdgeError } from '../../src/common/errors.js';
import {
  cachedDir,
  fileStamp,
  freePort,
  isRoot,
  listensOn,
  makeTempDir,
  type RunOptions,
  type RunResult,
  removeTempDir,
  requireBinary,
  retryOnPortInUse,
  run,
  type Service,
  spawnService,
} from './common.js';

/** The superuser the harness's clusters are initialised with. */
export const POSTGRES_USER = 'spire_edge';
/** The system user that runs PostgreSQL when the tests run as root. */
const SYSTEM_USER = 'postgres';
/** Bump when the template cluster's options change. */
const TEMPLATE_FORMAT = '2';

/** A running PostgreSQL server. */
export interface PostgresInstance {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** The superuser ({@link POSTGRES_USER}); trust auth, so no password. */
  readonly user: string;
  /** Never set: the server trusts loopback clients. */
  readonly password?: string;
  /** The default database (`postgres`). Prefer {@link PostgresInstance.createDatabase}. */
  readonly database: string;
  /** `postgres://<user>@127.0.0.1:<port>/<database>` */
  readonly connectionString: string;
  readonly dataDir: string;
  /** The directory holding the server's Unix socket (`.s.PGSQL.<port>`). */
  readonly socketDir: string;
  /** PID of the postmaster. */
  readonly pid: number;
  /**
   * Creates an empty database and returns its connection string. `name` (lower-case
   * letters, digits, `_`; at most 63) defaults to a fresh unique name.
   */
  createDatabase(name?: string): Promise<string>;
  /**
   * Runs SQL through `psql -X -At -v ON_ERROR_STOP=1` (unaligned, tuples only: `SELECT 41 + 1`
   * prints `42`) on `database` (default: the default database).
   */
  psql(sql: string, options?: RunOptions & { database?: string }): Promise<RunResult>;
  /** The server's recent log. */
  output(): string;
  /** Fast shutdown (SIGINT), SIGKILL after 5 s, then removes the temp dir; idempotent. */
  stop(): Promise<void>;
}

interface PgBinaries {
  initdb: string;
  postgres: string;
  psql: string;
}

/** The newest /usr/lib/postgresql/<major>/bin that has initdb, postgres and psql. */
function findBinaries(): PgBinaries {
  const base = '/usr/lib/postgresql';
  let majors: string[] = [];
  try {
    majors = readdirSync(base).filter((d) => /^\d+$/.test(d));
  } catch {
    // none installed
  }
  majors.sort((a, b) => Number(b) - Number(a));
  for (const major of majors) {
    const bin = join(base, major, 'bin');
    try {
      return {
        initdb: requireBinary(join(bin, 'initdb'), 'postgresql'),
        postgres: requireBinary(join(bin, 'postgres'), 'postgresql'),
        psql: requireBinary(join(bin, 'psql'), 'postgresql-client'),
      };
    } catch {
      // incomplete install: try an older major
    }
  }
  throw new SpireEdgeError(
    'ERR_HARNESS_MISSING_COMPONENT',
    `postgres not found in ${base}/*/bin: install Debian package postgresql (scripts/setup.sh does)`,
    { details: { name: 'postgres', debianPackage: 'postgresql' } },
  );
}

/** Runs `command` as the postgres system user when root, as ourselves otherwise. */
function runAsPostgres(command: string, args: readonly string[]): Promise<RunResult> {
  if (!isRoot()) return run(command, args);
  const setpriv = requireBinary('setpriv', 'util-linux');
  return run(setpriv, [
    '--reuid',
    SYSTEM_USER,
    '--regid',
    SYSTEM_USER,
    '--init-groups',
    '--',
    command,
    ...args,
  ]);
}

let systemIds: Promise<{ uid: number; gid: number }> | undefined;

function systemUserIds(): Promise<{ uid: number; gid: number }> {
  systemIds ??= (async () => {
    const id = requireBinary('id', 'coreutils');
    const [uid, gid] = await Promise.all([
      run(id, ['-u', SYSTEM_USER]),
      run(id, ['-g', SYSTEM_USER]),
    ]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  })();
  return systemIds;
}

/** Gives `dir` to the postgres system user when root (PostgreSQL refuses to run as root). */
async function handOver(dir: string): Promise<void> {
  if (!isRoot()) return;
  const { uid, gid } = await systemUserIds();
  await chown(dir, uid, gid);
}

function template(bins: PgBinaries): Promise<string> {
  return cachedDir(
    'postgres',
    [TEMPLATE_FORMAT, fileStamp(bins.initdb), fileStamp(bins.postgres), POSTGRES_USER],
    ['data/PG_VERSION', 'data/global/pg_control'],
    async (dir) => {
      await handOver(dir);
      await runAsPostgres(bins.initdb, [
        '-D',
        join(dir, 'data'),
        '-U',
        POSTGRES_USER,
        '--auth=trust',
        '--encoding=UTF8',
        '--no-locale',
        '--no-sync',
        '--no-instructions',
        // 1 MiB WAL segments instead of 16: a third less to copy per instance.
        '--wal-segsize=1',
      ]);
    },
  );
}

let databaseCounter = 0;

/**
 * Starts PostgreSQL on a copy of the cached template cluster and waits until it answers
 * `SELECT 1`. Throws `ERR_HARNESS_MISSING_COMPONENT` naming the Debian package when
 * PostgreSQL is missing, `ERR_HARNESS_START_FAILED` / `ERR_HARNESS_START_TIMEOUT` with the
 * server log otherwise.
 */
export async function startPostgres(): Promise<PostgresInstance> {
  const bins = findBinaries();
  const cp = requireBinary('cp', 'coreutils');
  const templateDir = await template(bins);
  // In memory when possible: copying the cluster to disk is 10x slower on a busy machine.
  const dir = await makeTempDir('postgres', { inMemory: true });
  try {
    await handOver(dir);
    const dataDir = join(dir, 'data');
    // cp -a keeps the owner (postgres) and the 0700 mode the server insists on.
    await run(cp, ['-a', join(templateDir, 'data'), dataDir]);

    let port = 0;
    const service: Service = await retryOnPortInUse(async () => {
      port = await freePort();
      return spawnService({
        name: 'postgres',
        command: bins.postgres,
        args: [
          '-D',
          dataDir,
          '-p',
          String(port),
          '-c',
          'listen_addresses=127.0.0.1',
          '-c',
          `unix_socket_directories=${dir}`,
          '-c',
          'fsync=off',
          '-c',
          'synchronous_commit=off',
          '-c',
          'full_page_writes=off',
          '-c',
          'autovacuum=off',
        ],
        cwd: dir,
        runAs: SYSTEM_USER,
        // Listening is not enough (the server says "starting up" until recovery is done).
        ready: async (pid) => (await listensOn(pid, port)) && (await selectOne(port)),
        stopSignal: 'SIGINT',
      });
    });

    const url = (database: string): string =>
      `postgres://${POSTGRES_USER}@127.0.0.1:${port}/${database}`;
    const database = 'postgres';
    let stopping: Promise<void> | undefined;
    return {
      host: '127.0.0.1',
      port,
      user: POSTGRES_USER,
      database,
      connectionString: url(database),
      dataDir,
      socketDir: dir,
      pid: service.pid,
      async createDatabase(name) {
        databaseCounter += 1;
        const db = name ?? `test_${process.pid}_${databaseCounter}`;
        if (!/^[a-z_][a-z0-9_]{0,62}$/.test(db)) {
          throw new TypeError(
            `database name must be lower-case letters, digits and _ (at most 63), got '${db}'`,
          );
        }
        const client = new pg.Client({ connectionString: url(database) });
        await client.connect();
        try {
          await client.query(`CREATE DATABASE "${db}"`);
        } finally {
          await client.end();
        }
        return url(db);
      },
      psql(sql, options = {}) {
        const { database: db = database, ...runOptions } = options;
        return run(
          bins.psql,
          [
            '-X',
            '-q',
            '-A',
            '-t',
            '-v',
            'ON_ERROR_STOP=1',
            '-h',
            '127.0.0.1',
            '-p',
            String(port),
            '-U',
            POSTGRES_USER,
            '-d',
            db,
          ],
          { ...runOptions, input: sql },
        );
      },
      output: () => service.output(),
      stop() {
        stopping ??= (async () => {
          await service.stop();
          await removeTempDir(dir);
        })();
        return stopping;
      },
    };
  } catch (e) {
    await removeTempDir(dir);
    throw e;
  }
}

async function selectOne(port: number): Promise<boolean> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: POSTGRES_USER,
    database: 'postgres',
    connectionTimeoutMillis: 2_000,
  });
  // An 'error' event after a failed connect must not become an uncaught exception.
  client.on('error', () => {});
  try {
    await client.connect();
    const result = await client.query<{ one: number }>('SELECT 1 AS one');
    return result.rows[0]?.one === 1;
  } finally {
    await client.end().catch(() => {});
  }
}
