/**
 * The `systemd` workload attestor (SPIRE's `WorkloadAttestor "systemd"`): selectors from
 * the systemd unit that owns the calling process.
 *
 * Selectors (type `systemd`): `id:<unit>` (e.g. `systemd:id:nginx.service`) and
 * `fragment_path:<unit file>` (e.g. `systemd:fragment_path:/lib/systemd/system/nginx.service`;
 * empty for transient units such as session scopes, as SPIRE reports it).
 *
 * How it differs from SPIRE: SPIRE asks systemd over D-Bus (`GetUnitByPID`, then the
 * unit's `Id` and `FragmentPath` properties). Here the unit is derived from
 * `/proc/<pid>/cgroup` (see {@link systemdUnitFromCgroupPath}) — the same answer for
 * processes in services, scopes, sockets, mounts and swaps, including `user@<uid>.service`
 * for user-manager services — and FragmentPath is read with
 * `systemctl show -p FragmentPath -- <unit>` only when systemd manages the host
 * (`/run/systemd/system` exists, sd_booted(3)). Without a running systemd only
 * `systemd:id` is produced (SPIRE's attestor fails there). A process whose cgroup names no
 * unit gets no selectors (SPIRE would get `-.slice` or an error).
 *
 * Errors: `ERR_WORKLOAD_ATTESTOR_FAILED` (`details.attestor = 'systemd'`).
 */
import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import { parseCgroupFile } from './cgroup.js';
import type { Selector } from './selector.js';
import { systemdUnitFromCgroups } from './systemd-unit.js';
import { type AttestOptions, checkPid, type WorkloadAttestor } from './workload-attestor.js';

/** Options of {@link createSystemdWorkloadAttestor}; the hooks exist for tests. */
export interface SystemdWorkloadAttestorOptions {
  /** Default `/proc`. */
  readonly procRoot?: string;
  /** Whether systemd manages this host. Default: `/run/systemd/system` is a directory. */
  readonly systemdRunning?: () => Promise<boolean>;
  /** The unit's FragmentPath. Default: `systemctl show -p FragmentPath -- <unit>`. */
  readonly fragmentPath?: (unit: string, signal?: AbortSignal) => Promise<string>;
  /** Default `systemctl` (looked up in PATH). */
  readonly systemctl?: string;
  /** Deadline of one `systemctl` run, ms. Default 5000. */
  readonly systemctlTimeoutMs?: number;
}

function failed(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError('ERR_WORKLOAD_ATTESTOR_FAILED', message, {
    details: { attestor: 'systemd' },
    ...(cause === undefined ? {} : { cause }),
  });
}

async function sdBooted(): Promise<boolean> {
  try {
    return (await stat('/run/systemd/system')).isDirectory();
  } catch {
    return false;
  }
}

/** Reads `FragmentPath=` from `systemctl show` output. */
export function parseSystemctlFragmentPath(output: string): string {
  for (const line of output.split('\n')) {
    if (line.startsWith('FragmentPath=')) return line.slice('FragmentPath='.length);
  }
  throw failed('systemctl show printed no FragmentPath property');
}

/** The `systemd` workload attestor. */
export function createSystemdWorkloadAttestor(
  options: SystemdWorkloadAttestorOptions = {},
): WorkloadAttestor {
  const procRoot = options.procRoot ?? '/proc';
  const running = options.systemdRunning ?? sdBooted;
  const systemctl = options.systemctl ?? 'systemctl';
  const timeout = options.systemctlTimeoutMs ?? 5000;
  const fragmentPath =
    options.fragmentPath ??
    ((unit: string, signal?: AbortSignal) =>
      new Promise<string>((resolve, reject) => {
        execFile(
          systemctl,
          ['show', '-p', 'FragmentPath', '--', unit],
          {
            timeout,
            maxBuffer: 64 * 1024,
            env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LC_ALL: 'C' },
            ...(signal === undefined ? {} : { signal }),
          },
          (err, stdout) => {
            if (err !== null) {
              reject(failed(`systemctl show ${unit} failed: ${describeError(err)}`, err));
              return;
            }
            try {
              resolve(parseSystemctlFragmentPath(stdout));
            } catch (e) {
              reject(e);
            }
          },
        );
      }));

  return {
    name: 'systemd',
    async attest(pid: number, opts: AttestOptions = {}): Promise<Selector[]> {
      checkPid(pid);
      let unit: string | undefined;
      try {
        const text = await readFile(join(procRoot, String(pid), 'cgroup'), 'utf8');
        unit = systemdUnitFromCgroups(parseCgroupFile(text));
      } catch (err) {
        throw failed(`could not read the cgroup of pid ${pid}: ${describeError(err)}`, err);
      }
      if (unit === undefined) return [];
      const selectors: Selector[] = [{ type: 'systemd', value: `id:${unit}` }];
      if (await running()) {
        const path = await fragmentPath(unit, opts.signal);
        selectors.push({ type: 'systemd', value: `fragment_path:${path}` });
      }
      return selectors;
    },
  };
}
