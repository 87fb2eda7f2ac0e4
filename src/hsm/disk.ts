/**
 * The `disk` KeyManager (SPIRE's `KeyManager "disk"`, option `keys_path`): software keys
 * kept in process memory and persisted, after every change, to one JSON file in SPIRE's
 * format — `{"keys": {"<id>": "<base64 PKCS#8 DER>"}}` — so a keys file written by SPIRE
 * loads here and the other way round.
 *
 * The file is written crash-safely (temporary file in the same directory with mode 0600,
 * fsync, rename over the old file, fsync the directory): after a crash the file holds either
 * the old or the new set of keys, never a torn one. It is read once, on open; a file that
 * cannot be parsed is an `ERR_KEY_MANAGER_STORE_CORRUPT` error and is never replaced by a
 * fresh set of keys (that would silently change the CA's keys).
 *
 * What it trusts: the file's contents (anyone who can write it controls the CA). The caller
 * must keep `keys_path` on storage only the server's user can read.
 *
 * Not done (SPIRE's disk plugin takes an flock): nothing stops two processes from opening
 * the same file; the last writer wins.
 */
import { createPrivateKey, type KeyObject, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { describeError, SpireEdgeError } from '../common/errors.js';
import { assertKeyId } from './key-manager.js';
import { keyTypeOfPrivateKey, type SoftwareKeyEntry, SoftwareKeyManager } from './memory.js';

/** Configuration of the disk KeyManager (SPIRE's `plugin_data`). */
export interface DiskKeyManagerConfig {
  /** Path of the keys file (SPIRE's `keys_path`); created on the first key if missing. */
  readonly keysPath: string;
}

const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

function corrupt(path: string, message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError('ERR_KEY_MANAGER_STORE_CORRUPT', `keys file ${path}: ${message}`, {
    ...(cause === undefined ? {} : { cause }),
    details: { path },
  });
}

function ioError(path: string, what: string, cause: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_KEY_MANAGER_STORE_IO',
    `cannot ${what} keys file ${path}: ${describeError(cause)}`,
    { cause, details: { path, errno: (cause as NodeJS.ErrnoException).code } },
  );
}

/**
 * Parses a keys file's bytes into entries.
 *
 * @throws SpireEdgeError `ERR_KEY_MANAGER_STORE_CORRUPT` naming the broken rule (and key id).
 */
export function parseKeysFile(path: string, bytes: Uint8Array): SoftwareKeyEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw corrupt(path, `not valid JSON (${describeError(err)})`, err);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw corrupt(path, 'top level must be a JSON object');
  }
  const keys = (doc as Record<string, unknown>)['keys'];
  if (typeof keys !== 'object' || keys === null || Array.isArray(keys)) {
    throw corrupt(path, '"keys" must be a JSON object of key id to base64 PKCS#8');
  }
  const out: SoftwareKeyEntry[] = [];
  for (const [id, value] of Object.entries(keys as Record<string, unknown>)) {
    try {
      assertKeyId(id);
    } catch (err) {
      throw corrupt(
        path,
        `key id ${JSON.stringify(id.slice(0, 40))} is invalid: ${describeError(err)}`,
      );
    }
    if (typeof value !== 'string' || !B64_RE.test(value) || value.length % 4 !== 0) {
      throw corrupt(path, `key ${id} must be a base64 string`);
    }
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({
        key: Buffer.from(value, 'base64'),
        format: 'der',
        type: 'pkcs8',
      });
    } catch (err) {
      throw corrupt(path, `key ${id} is not a PKCS#8 private key`, err);
    }
    const keyType = keyTypeOfPrivateKey(privateKey);
    if (keyType === undefined) {
      throw corrupt(path, `key ${id} is not EC P-256/P-384 or RSA 2048/4096`);
    }
    out.push({ id, keyType, privateKey });
  }
  return out;
}

/** Serialises entries in SPIRE's keys-file format (ids sorted, tab-indented). */
export function serializeKeysFile(entries: Iterable<SoftwareKeyEntry>): Uint8Array {
  const sorted = [...entries].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const keys: Record<string, string> = {};
  for (const e of sorted) {
    keys[e.id] = Buffer.from(e.privateKey.export({ type: 'pkcs8', format: 'der' })).toString(
      'base64',
    );
  }
  return Buffer.from(`${JSON.stringify({ keys }, null, '\t')}\n`, 'utf8');
}

/**
 * Writes `bytes` to `path` crash-safely: a temporary file in the same directory (mode
 * 0600), fsync, rename over `path`, fsync of the directory.
 *
 * @throws SpireEdgeError `ERR_KEY_MANAGER_STORE_IO`
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.chmod(0o600); // the umask may have dropped bits; never leave it wider either
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw ioError(path, 'write', err);
  }
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch (err) {
    throw ioError(path, 'sync the directory of', err);
  }
}

/** Removes temporary files a crash left next to `path` (they never hold the live state). */
async function removeStaleTemps(path: string): Promise<void> {
  const prefix = `${basename(path)}.tmp-`;
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch {
    return;
  }
  await Promise.all(
    names
      .filter((n) => n.startsWith(prefix))
      .map((n) => unlink(join(dirname(path), n)).catch(() => undefined)),
  );
}

/** The disk KeyManager. Open it with {@link openDiskKeyManager}. */
export class DiskKeyManager extends SoftwareKeyManager {
  /** The keys file. */
  readonly keysPath: string;

  constructor(keysPath: string, initial: readonly SoftwareKeyEntry[]) {
    super(
      'disk',
      (entries) => writeFileAtomic(keysPath, serializeKeysFile(entries.values())),
      initial,
    );
    this.keysPath = keysPath;
  }
}

/**
 * Opens the disk KeyManager: reads the keys file (a missing file is an empty store) and
 * removes temporary files an earlier crash left behind.
 *
 * @throws TypeError when `keysPath` is not a non-empty string.
 * @throws SpireEdgeError `ERR_KEY_MANAGER_STORE_CORRUPT` (unparseable file),
 *   `ERR_KEY_MANAGER_STORE_IO` (unreadable file).
 */
export async function openDiskKeyManager(config: DiskKeyManagerConfig): Promise<DiskKeyManager> {
  const path = config?.keysPath;
  if (typeof path !== 'string' || path === '') {
    throw new TypeError('keys_path must be a non-empty string');
  }
  let bytes: Uint8Array | undefined;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(path, 'read', err);
  }
  const entries = bytes === undefined ? [] : parseKeysFile(path, bytes);
  await removeStaleTemps(path);
  return new DiskKeyManager(path, entries);
}
