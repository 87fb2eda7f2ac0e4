/**
 * The agent store's directory on disk: inspected before LevelDB is allowed to open it, created
 * atomically, and kept private (directory 0700, files 0600).
 *
 * Why inspect first: LevelDB opened with `createIfMissing` on a directory without a `CURRENT`
 * file creates a new database there and deletes the table and log files it does not know, so a
 * store whose `CURRENT` was lost would silently become empty, and a directory of someone else's
 * files would be written into. Both are refused here with coded errors instead.
 *
 * Why create atomically: a new store is built in `agent-store.creating-<random>` (LevelDB files
 * plus the store's meta records), then renamed into place. So a directory named `agent-store`
 * always holds a complete store with its meta records, and an `agent-store` without them is
 * damaged, never "new".
 *
 * File modes: LevelDB creates its files with the process umask (usually 0644). The directory
 * being 0700 is what keeps other users out; as defence in depth the store also narrows every
 * file in it to 0600 at open and after each write (files LevelDB's background compaction
 * creates in between keep the umask's mode until the next write, still inside the 0700
 * directory). Running the agent with `umask 077` closes that gap entirely.
 */
import { chmod, lstat, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describeError, isSpireEdgeError } from '../../common/errors.js';
import { CREATING_PREFIX } from './layout.js';
import { storeError } from './store-errors.js';

/** File names LevelDB writes in a database directory. */
const LEVELDB_FILE =
  /^(?:CURRENT|LOCK|LOG|LOG\.old|MANIFEST-[0-9]+|[0-9]+\.(?:log|ldb|sst|dbtmp))$/;
const CURRENT_TEXT = /^(MANIFEST-[0-9]+)\n$/;

/** What {@link inspectStoreDir} found: nothing (or an empty directory), or a store. */
export type StoreDirState = 'missing' | 'existing';

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function ioError(message: string, err: unknown) {
  return storeError('ERR_AGENT_STORE_IO', `${message}: ${describeError(err)}`, err);
}

/**
 * Decides whether `location` holds an agent store LevelDB may open, narrowing an existing
 * directory to 0700. An absent or empty directory is `missing` (a new store is created).
 *
 * @throws SpireEdgeError `ERR_AGENT_STORE_FOREIGN` (not a directory, or files LevelDB did not
 * write and no `CURRENT`), `ERR_AGENT_STORE_CORRUPT` (bad or dangling `CURRENT`, LevelDB files
 * without `CURRENT`, unexpected files beside a store), `ERR_AGENT_STORE_IO`.
 */
export async function inspectStoreDir(location: string): Promise<StoreDirState> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(location);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return 'missing';
    throw ioError(`cannot inspect the agent store ${location}`, err);
  }
  if (!info.isDirectory()) {
    throw storeError(
      'ERR_AGENT_STORE_FOREIGN',
      `the agent store path ${location} exists and is not a directory`,
    );
  }
  let names: string[];
  try {
    names = await readdir(location);
  } catch (err) {
    throw ioError(`cannot list the agent store ${location}`, err);
  }
  if (names.length === 0) return 'missing';
  const strangers = names.filter((n) => !LEVELDB_FILE.test(n)).sort();
  if (!names.includes('CURRENT')) {
    if (strangers.length > 0) {
      throw storeError(
        'ERR_AGENT_STORE_FOREIGN',
        `${location} is not an agent store: it holds ${listNames(strangers)} and no LevelDB CURRENT file`,
      );
    }
    throw storeError(
      'ERR_AGENT_STORE_CORRUPT',
      `the agent store ${location} has LevelDB files (${listNames(names.sort())}) but no CURRENT file`,
    );
  }
  if (strangers.length > 0) {
    throw storeError(
      'ERR_AGENT_STORE_CORRUPT',
      `the agent store ${location} holds unexpected files: ${listNames(strangers)}`,
    );
  }
  let current: string;
  try {
    current = (await readFile(join(location, 'CURRENT'))).toString('latin1');
  } catch (err) {
    throw ioError(`cannot read ${join(location, 'CURRENT')}`, err);
  }
  const manifest = CURRENT_TEXT.exec(current)?.[1];
  if (manifest === undefined) {
    throw storeError(
      'ERR_AGENT_STORE_CORRUPT',
      `the agent store's CURRENT file does not name a manifest (${JSON.stringify(current.slice(0, 40))})`,
    );
  }
  if (!names.includes(manifest)) {
    throw storeError(
      'ERR_AGENT_STORE_CORRUPT',
      `the agent store's CURRENT file names ${manifest}, which does not exist`,
    );
  }
  if ((info.mode & 0o077) !== 0) {
    try {
      await chmod(location, 0o700);
    } catch (err) {
      throw ioError(
        `the agent store directory ${location} is accessible to other users and cannot be made private`,
        err,
      );
    }
  }
  return 'existing';
}

function listNames(names: readonly string[]): string {
  const shown = names.slice(0, 5).map((n) => JSON.stringify(n));
  return names.length > 5
    ? `${shown.join(', ')} and ${String(names.length - 5)} more`
    : shown.join(', ');
}

/**
 * Creates a store atomically: makes `dataDir` (0700 when it is created), removes temporary
 * directories left by interrupted creations, creates `agent-store.creating-<suffix>` (0700),
 * lets `populate` build the store in it, then renames it to `location` (replacing an empty
 * directory) and syncs `dataDir`.
 *
 * @throws SpireEdgeError `ERR_AGENT_STORE_IO`; whatever `populate` throws.
 */
export async function createStoreDir(
  dataDir: string,
  location: string,
  suffix: string,
  populate: (dir: string) => Promise<void>,
): Promise<void> {
  try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw ioError(`cannot create the agent data directory ${dataDir}`, err);
  }
  await removeInterruptedCreations(dataDir);
  const tmp = join(dataDir, CREATING_PREFIX + suffix);
  try {
    await mkdir(tmp, { mode: 0o700 });
    // mkdir's mode is filtered by the umask; make sure.
    await chmod(tmp, 0o700);
  } catch (err) {
    throw ioError(`cannot create ${tmp}`, err);
  }
  try {
    await populate(tmp);
    await tightenFileModes(tmp);
    await rename(tmp, location);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
    if (isSpireEdgeError(err)) throw err;
    throw ioError(`cannot create the agent store ${location}`, err);
  }
  await syncDir(dataDir);
}

/** Removes `agent-store.creating-*` directories (left by a creation that was interrupted). */
async function removeInterruptedCreations(dataDir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dataDir);
  } catch {
    return;
  }
  for (const name of names) {
    if (name.startsWith(CREATING_PREFIX)) {
      await rm(join(dataDir, name), { recursive: true, force: true }).catch(() => {});
    }
  }
}

/** fsync a directory so a rename in it survives a power cut (best effort). */
async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // some file systems refuse fsync on directories; the rename itself is still atomic
  }
}

/**
 * Narrows every regular file in `location` to owner-only access (best effort: files that
 * vanish meanwhile — LevelDB compaction deletes them — are skipped). Returns how many files
 * were changed.
 */
export async function tightenFileModes(location: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(location);
  } catch {
    return 0;
  }
  let changed = 0;
  await Promise.all(
    names.map(async (name) => {
      const path = join(location, name);
      try {
        const info = await lstat(path);
        if (!info.isFile() || (info.mode & 0o077) === 0) return;
        await chmod(path, info.mode & 0o700);
        changed++;
      } catch {
        // gone (compacted away) or not ours to change: the 0700 directory still protects it
      }
    }),
  );
  return changed;
}
