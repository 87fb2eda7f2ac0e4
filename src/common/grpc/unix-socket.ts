/**
 * Unix socket housekeeping for gRPC servers and clients: endpoint parsing, the socket's
 * directory and mode, stale socket files.
 *
 * Errors: `ERR_GRPC_SOCKET_PATH_INVALID` (not absolute, too long, not a socket, bad URI),
 * `ERR_GRPC_SOCKET_IN_USE` (a live server answers on the path),
 * `ERR_GRPC_SOCKET_DIR_INVALID` (the directory cannot be made private).
 */
import { chmodSync, lstatSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { dirname, isAbsolute } from 'node:path';
import { SpireEdgeError } from '../errors.js';

/** sun_path is 108 bytes on Linux, including the terminating NUL. */
export const MAX_UNIX_SOCKET_PATH_BYTES = 107;

/**
 * The absolute path of a Unix socket given as a path or as a `unix:` URI
 * (`unix:///abs/path`, `unix:/abs/path`, the forms `SPIFFE_ENDPOINT_SOCKET` uses).
 * Spec: SPIFFE Workload Endpoint §4 (address format).
 */
export function parseUnixEndpoint(endpoint: string): string {
  let path = endpoint;
  if (endpoint.startsWith('unix:')) {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch (err) {
      throw new SpireEdgeError(
        'ERR_GRPC_SOCKET_PATH_INVALID',
        `endpoint ${JSON.stringify(endpoint)} is not a valid unix URI`,
        { cause: err },
      );
    }
    if (url.host !== '' || url.search !== '' || url.hash !== '' || url.username !== '') {
      throw new SpireEdgeError(
        'ERR_GRPC_SOCKET_PATH_INVALID',
        `endpoint ${JSON.stringify(endpoint)} must be unix:///absolute/path (no host, query or fragment)`,
      );
    }
    try {
      path = decodeURIComponent(url.pathname);
    } catch (err) {
      throw new SpireEdgeError(
        'ERR_GRPC_SOCKET_PATH_INVALID',
        `endpoint ${JSON.stringify(endpoint)} has a malformed percent-encoding`,
        { cause: err },
      );
    }
  }
  checkSocketPath(path);
  return path;
}

function checkSocketPath(path: string): void {
  if (path === '' || !isAbsolute(path)) {
    throw new SpireEdgeError(
      'ERR_GRPC_SOCKET_PATH_INVALID',
      `socket path ${JSON.stringify(path)} must be absolute`,
    );
  }
  if (Buffer.byteLength(path) > MAX_UNIX_SOCKET_PATH_BYTES) {
    throw new SpireEdgeError(
      'ERR_GRPC_SOCKET_PATH_INVALID',
      `socket path ${JSON.stringify(path)} is ${Buffer.byteLength(path)} bytes: at most ${MAX_UNIX_SOCKET_PATH_BYTES} fit in sun_path`,
    );
  }
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Creates the socket's parent directory (recursively) and, when `dirMode` is given, makes
 * it exactly that mode. An existing directory is chmod'ed only when it belongs to this
 * user and is not a shared sticky directory such as /tmp; otherwise a mode that grants
 * more than `dirMode` is refused.
 */
export function prepareSocketDir(socketPath: string, dirMode?: number): void {
  checkSocketPath(socketPath);
  const dir = dirname(socketPath);
  const existed = pathExists(dir);
  mkdirSync(dir, { recursive: true, mode: dirMode ?? 0o755 });
  if (dirMode === undefined) return;
  const st = statSync(dir);
  if (!st.isDirectory()) {
    throw new SpireEdgeError(
      'ERR_GRPC_SOCKET_DIR_INVALID',
      `socket directory ${dir} is not a directory`,
    );
  }
  if ((st.mode & 0o7777) === dirMode) return;
  const uid = process.getuid?.();
  const shared = (st.mode & 0o1000) !== 0;
  if (!existed || (!shared && uid !== undefined && st.uid === uid)) {
    chmodSync(dir, dirMode);
    return;
  }
  if ((st.mode & 0o777 & ~dirMode) !== 0) {
    throw new SpireEdgeError(
      'ERR_GRPC_SOCKET_DIR_INVALID',
      `socket directory ${dir} has mode ${(st.mode & 0o7777).toString(8)}, more open than ${dirMode.toString(8)}, and is shared or not ours: use a dedicated directory`,
    );
  }
}

function pathExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Removes a socket file left behind by a server that died. A path where a server still
 * accepts connections is refused (`ERR_GRPC_SOCKET_IN_USE`), and anything that is not a
 * socket is never deleted (`ERR_GRPC_SOCKET_PATH_INVALID`).
 */
export async function removeStaleSocket(socketPath: string): Promise<void> {
  checkSocketPath(socketPath);
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(socketPath);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new SpireEdgeError(
      'ERR_GRPC_SOCKET_PATH_INVALID',
      `socket path ${socketPath} exists and is not a socket: refusing to replace it`,
    );
  }
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) {
    throw new SpireEdgeError(
      'ERR_GRPC_SOCKET_IN_USE',
      `socket path ${socketPath} is served by another process`,
    );
  }
  try {
    unlinkSync(socketPath);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
}

/** The inode of a socket file, to recognise our own socket at shutdown. */
export function socketInode(socketPath: string): bigint | undefined {
  try {
    return lstatSync(socketPath, { bigint: true }).ino;
  } catch {
    return undefined;
  }
}

/** Unlinks `socketPath` when it is still the socket with inode `ino` (not a successor's). */
export function unlinkOwnSocket(socketPath: string, ino: bigint | undefined): void {
  if (ino === undefined || socketInode(socketPath) !== ino) return;
  try {
    unlinkSync(socketPath);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
}
