/**
 * Reading the data files commands take (`-data`, `-file`, `-path`), with Go's error texts
 * (`open <path>: no such file or directory`) so messages match SPIRE's.
 */
import { readFile } from 'node:fs/promises';
import { MAX_CLI_INPUT_BYTES, readAllInput } from '../../common/cli/io.js';
import type { ServerCommandContext } from './adapter.js';
import { cliFailure } from './util.js';

const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EISDIR: 'is a directory',
  ENOTDIR: 'not a directory',
  ELOOP: 'too many levels of symbolic links',
};

/** Go's `*PathError` text for a failed file operation. */
export function goPathError(op: string, path: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  return `${op} ${path}: ${ERRNO_TEXT[code] ?? (err as Error).message}`;
}

/**
 * The bytes of `path`, or of stdin when `path` is `-` (or when `stdinWhenEmpty` and `path` is
 * empty). Content is unchecked; size is limited to {@link MAX_CLI_INPUT_BYTES}.
 *
 * @throws SpireEdgeError `ERR_CLI_COMMAND_FAILED` (`open <path>: …`), `ERR_CLI_INPUT_TOO_LARGE`.
 */
export async function readCommandInput(
  ctx: ServerCommandContext,
  path: string,
  stdinWhenEmpty = false,
): Promise<Buffer> {
  if (path === '-' || (stdinWhenEmpty && path === '')) return readAllInput(ctx.io.stdin);
  let data: Buffer;
  try {
    data = await readFile(ctx.resolvePath(path));
  } catch (err) {
    // Go opens a directory fine and fails on the read.
    const op = (err as NodeJS.ErrnoException).code === 'EISDIR' ? 'read' : 'open';
    throw cliFailure(goPathError(op, path, err), err);
  }
  if (data.length > MAX_CLI_INPUT_BYTES) {
    throw cliFailure(`${path}: file is larger than ${String(MAX_CLI_INPUT_BYTES)} bytes`);
  }
  return data;
}
