/**
 * Loads the native addon (built from native/ by `npm run build:native`). Only I/O modules
 * (the agent's Workload API server, the TPM device adapter) import this; pure folders never do.
 *
 * Errors: `ERR_NATIVE_UNAVAILABLE` when the addon has not been built.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { SpireEdgeError } from '../common/errors.js';

/** The caller of a Unix socket, from SO_PEERCRED. */
export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

/** The functions the addon exports. */
export interface NativeAddon {
  /** SO_PEERCRED of a connected AF_UNIX socket; throws (errno EAFNOSUPPORT) on other families. */
  peerCred(fd: number): PeerCredentials;
  /** pidfd_open(2): a descriptor that refers to this process even after its PID is reused. */
  pidfdOpen(pid: number): number;
  /** Whether the process behind a pidfd is still running. */
  pidfdAlive(fd: number): boolean;
  closeFd(fd: number): void;
}

let cached: NativeAddon | undefined;

/** The native addon, loaded once. */
export function loadNativeAddon(): NativeAddon {
  if (cached !== undefined) return cached;
  const require = createRequire(import.meta.url);
  // The same relative path works from src/native (tests, tsx) and dist/native (built).
  const path = fileURLToPath(
    new URL('../../build/Release/spire_edge_native.node', import.meta.url),
  );
  try {
    cached = require(path) as NativeAddon;
  } catch (err) {
    throw new SpireEdgeError(
      'ERR_NATIVE_UNAVAILABLE',
      `native addon not found at ${path}: run "npm run build:native" (scripts/setup.sh does it)`,
      { cause: err },
    );
  }
  return cached;
}
