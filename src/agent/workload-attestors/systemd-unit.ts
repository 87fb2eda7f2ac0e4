/**
 * The systemd unit that owns a process, derived from its cgroup path — what systemd's
 * `GetUnitByPID` answers for ordinary processes, without asking systemd over D-Bus. Pure.
 *
 * systemd places every service, scope, socket, mount and swap unit in a cgroup of the
 * same name under its slices: `/system.slice/nginx.service`,
 * `/user.slice/user-1000.slice/session-3.scope`,
 * `/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service`. The system
 * manager knows units down to the first non-slice unit; cgroups below it are delegated
 * (to the user manager, to a container runtime), so that first unit is the answer:
 * `user@1000.service` for a user-manager service, as `GetUnitByPID` on the system bus says.
 */
import type { CgroupEntry } from './cgroup.js';

/** Unit types that own cgroups (systemd.unit(5)); other types never hold processes. */
const CGROUP_UNIT_SUFFIXES = ['.service', '.scope', '.socket', '.mount', '.swap'] as const;

/** systemd's unit name alphabet (unit_name_is_valid): letters, digits, `:-_.\@`. */
const UNIT_NAME_RE = /^[A-Za-z0-9:_.\\@-]+$/;
/** UNIT_NAME_MAX. */
const UNIT_NAME_MAX = 255;

/** True when `name` is a syntactically valid unit name with one of the given suffixes. */
function isUnitName(name: string, suffixes: readonly string[]): boolean {
  if (name.length > UNIT_NAME_MAX || !UNIT_NAME_RE.test(name)) return false;
  return suffixes.some((s) => name.length > s.length && name.endsWith(s));
}

/**
 * The unit owning the process in cgroup `path`: the first component below the leading
 * slices that is a service/scope/socket/mount/swap unit name. A path of slices only
 * (a process placed directly in a slice) yields the innermost slice; a path with no unit
 * names at all (`/`, `/docker/<id>`, a non-systemd host) yields undefined.
 */
export function systemdUnitFromCgroupPath(path: string): string | undefined {
  if (typeof path !== 'string') throw new TypeError('path must be a string');
  let slice: string | undefined;
  for (const component of path.split('/')) {
    if (component === '') continue;
    if (isUnitName(component, ['.slice'])) {
      slice = component;
      continue;
    }
    if (isUnitName(component, CGROUP_UNIT_SUFFIXES)) return component;
    // Not a unit: what follows is not systemd's (and neither is this path, if no slice
    // led here).
    return slice;
  }
  return slice;
}

/**
 * The unit owning a process, from its parsed `/proc/<pid>/cgroup`: the `name=systemd` v1
 * hierarchy when present (legacy and hybrid layouts), else the unified `0::` line.
 */
export function systemdUnitFromCgroups(entries: readonly CgroupEntry[]): string | undefined {
  const named = entries.find((e) => e.controllers.includes('name=systemd'));
  const unified = entries.find((e) => e.hierarchyId === 0 && e.controllers.length === 0);
  const entry = named ?? unified;
  return entry === undefined ? undefined : systemdUnitFromCgroupPath(entry.path);
}
