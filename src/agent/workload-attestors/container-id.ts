/**
 * The container ID of a process, from its cgroup paths — the way SPIRE's docker attestor
 * (the "new container locator", `pkg/common/containerinfo`) finds it. Pure.
 *
 * Docker names container cgroups after the 64-hex-digit container ID:
 * `/docker/<id>` (cgroupfs driver, v1 and v2), `/system.slice/docker-<id>.scope` (systemd
 * driver), and nested layouts (`/kubepods/…/<id>`, `/docker/<host-id>/…` in docker-in-docker).
 * Each path is walked from its last segment backwards; the first segment containing a
 * whole-word 64-hex-digit run gives that path's ID.
 *
 * Errors: `ERR_DOCKER_CONTAINER_ID_CONFLICT`.
 */
import { SpireEdgeError } from '../../common/errors.js';
import type { CgroupEntry } from './cgroup.js';

// A container ID is 64 hex digits, delimited as a word (so a longer hex run is not one).
const CONTAINER_ID_RE = /(?:^|[^0-9A-Za-z_])([0-9a-fA-F]{64})(?![0-9A-Za-z_])/;

/** The container ID in one cgroup path, or undefined. */
export function containerIdFromCgroupPath(path: string): string | undefined {
  if (typeof path !== 'string') throw new TypeError('path must be a string');
  const segments = path.split('/');
  for (let i = segments.length - 1; i >= 0; i--) {
    const m = CONTAINER_ID_RE.exec(segments[i]!);
    if (m !== null) return m[1];
  }
  return undefined;
}

/**
 * The container ID of a process from all its cgroup entries: undefined when no path names
 * a container (not a container workload — no selectors, not an error).
 *
 * @throws SpireEdgeError `ERR_DOCKER_CONTAINER_ID_CONFLICT` when two paths name different
 *   containers (the safe answer is none; SPIRE fails with FailedPrecondition too).
 */
export function containerIdFromCgroups(entries: readonly CgroupEntry[]): string | undefined {
  let found: string | undefined;
  for (const e of entries) {
    const id = containerIdFromCgroupPath(e.path);
    if (id === undefined) continue;
    if (found !== undefined && found !== id) {
      throw new SpireEdgeError(
        'ERR_DOCKER_CONTAINER_ID_CONFLICT',
        `multiple container IDs found in cgroups (${found}, ${id})`,
      );
    }
    found = id;
  }
  return found;
}
