/**
 * Writing the files `x509 mint -write` and `jwt mint -write` produce, as SPIRE's `diskutil`
 * does: written to a temporary file beside the target and renamed over it, so a reader never
 * sees half a key; private keys and tokens mode 0600, certificates 0644.
 */
import { chmod, rename, rm, writeFile } from 'node:fs/promises';
import { normalize } from 'node:path';
import { SpireEdgeError } from '../../common/errors.js';
import { goPathError } from './input.js';

/** Go's `filepath.Join(parts...)` (cleaned, no trailing slash) for display and use. */
export function goJoinPath(...parts: string[]): string {
  const joined = parts.filter((p) => p !== '').join('/');
  if (joined === '') return '';
  const clean = normalize(joined);
  return clean.length > 1 && clean.endsWith('/') ? clean.slice(0, -1) : clean;
}

/**
 * Writes `data` to `path` (already resolved) with `mode`, atomically.
 *
 * @throws SpireEdgeError `ERR_CLI_WRITE_FAILED` with Go's `open <path>: <reason>` text.
 */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp`;
  try {
    await writeFile(tmp, data, { mode, flag: 'w' });
    // An existing temporary file keeps its mode: set it explicitly.
    await chmod(tmp, mode);
  } catch (err) {
    throw new SpireEdgeError('ERR_CLI_WRITE_FAILED', goPathError('open', tmp, err), {
      cause: err,
    });
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new SpireEdgeError('ERR_CLI_WRITE_FAILED', goPathError('rename', tmp, err), {
      cause: err,
    });
  }
}
