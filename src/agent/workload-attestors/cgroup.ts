/**
 * Parser for `/proc/<pid>/cgroup` (cgroups(7)): one `hierarchy-ID:controller-list:path`
 * line per hierarchy. cgroup v2 has the single line `0::/path`; cgroup v1 has one line per
 * mounted hierarchy (`4:memory:/docker/<id>`, `1:name=systemd:/system.slice/x.service`);
 * hybrid systems show both. Pure: takes the file's text.
 *
 * Paths are relative to the READER's cgroup namespace root: the agent must run in the
 * host's cgroup namespace to see full paths.
 *
 * Errors: `ERR_PROC_CGROUP_INVALID`.
 */
import { SpireEdgeError } from '../../common/errors.js';

/** One line of `/proc/<pid>/cgroup`. */
export interface CgroupEntry {
  /** Hierarchy ID (`0` for the unified v2 hierarchy). */
  readonly hierarchyId: number;
  /** Controllers bound to the hierarchy (`['cpu', 'cpuacct']`, `['name=systemd']`, `[]` for v2). */
  readonly controllers: readonly string[];
  /** The cgroup path, starting with `/`. */
  readonly path: string;
}

function invalid(message: string): SpireEdgeError {
  return new SpireEdgeError('ERR_PROC_CGROUP_INVALID', message);
}

/**
 * Parses `/proc/<pid>/cgroup`. The path is everything after the second colon (cgroup names
 * may contain colons). Empty lines are skipped.
 *
 * @throws SpireEdgeError `ERR_PROC_CGROUP_INVALID` for a line without two colons, a
 *   non-numeric hierarchy ID or a path that does not start with `/` (as SPIRE, a malformed
 *   line fails the whole file rather than being skipped).
 */
export function parseCgroupFile(text: string): CgroupEntry[] {
  if (typeof text !== 'string') throw new TypeError('text must be a string');
  const out: CgroupEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const a = line.indexOf(':');
    const b = a < 0 ? -1 : line.indexOf(':', a + 1);
    if (b < 0) {
      throw invalid(`/proc cgroup line ${i + 1} has fewer than 3 colon-separated fields`);
    }
    const id = line.slice(0, a);
    if (!/^(0|[1-9][0-9]{0,9})$/.test(id)) {
      throw invalid(`/proc cgroup line ${i + 1} has hierarchy ID ${JSON.stringify(id)}`);
    }
    const path = line.slice(b + 1);
    if (!path.startsWith('/')) {
      throw invalid(`/proc cgroup line ${i + 1} has a path that does not start with /`);
    }
    const list = line.slice(a + 1, b);
    out.push({
      hierarchyId: Number(id),
      controllers: list === '' ? [] : list.split(','),
      path,
    });
  }
  return out;
}
