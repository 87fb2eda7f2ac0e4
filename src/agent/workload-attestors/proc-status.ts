/**
 * Parser for `/proc/<pid>/status` (proc(5)): the credential lines the `unix` workload
 * attestor needs. Pure: takes the file's text.
 *
 * Errors: `ERR_PROC_STATUS_INVALID`.
 */
import { SpireEdgeError } from '../../common/errors.js';

/** The credentials of a process as `/proc/<pid>/status` shows them. */
export interface ProcStatus {
  /** `Uid:` — real, effective, saved set, filesystem (as many as the line holds, 1..4). */
  readonly uids: readonly number[];
  /** `Gid:` — real, effective, saved set, filesystem. */
  readonly gids: readonly number[];
  /** `Groups:` — supplementary group IDs (possibly none). */
  readonly groups: readonly number[];
}

/** Largest uid/gid: IDs are 32-bit unsigned, and (uid_t)-1 is never a valid ID. */
const MAX_ID = 0xfffffffe;
const ID_RE = /^(0|[1-9][0-9]{0,9})$/;

function invalid(message: string): SpireEdgeError {
  return new SpireEdgeError('ERR_PROC_STATUS_INVALID', message);
}

function parseIds(field: string, value: string, min: number, max: number): number[] {
  const parts = value.split(/[ \t]+/).filter((p) => p !== '');
  if (parts.length < min || parts.length > max) {
    throw invalid(`/proc status ${field} line holds ${parts.length} IDs, expected ${min}..${max}`);
  }
  return parts.map((p) => {
    if (!ID_RE.test(p) || Number(p) > MAX_ID) {
      throw invalid(`/proc status ${field} line holds ${JSON.stringify(p)}, not a 32-bit ID`);
    }
    return Number(p);
  });
}

/**
 * Parses the `Uid:`, `Gid:` and `Groups:` lines of `/proc/<pid>/status`. The first
 * occurrence of each key counts; other lines are ignored. `Groups:` may be absent (old
 * kernels) or empty, which both mean no supplementary groups.
 *
 * Trusts: nothing — the text is checked line by line (IDs are decimal 32-bit values other
 * than 4294967295). The kernel writes this file; a workload cannot forge it.
 *
 * @throws SpireEdgeError `ERR_PROC_STATUS_INVALID` when `Uid:` or `Gid:` is missing or a
 *   line holds something other than IDs.
 */
export function parseProcStatus(text: string): ProcStatus {
  if (typeof text !== 'string') throw new TypeError('text must be a string');
  let uids: number[] | undefined;
  let gids: number[] | undefined;
  let groups: number[] | undefined;
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const key = line.slice(0, colon);
    const value = line.slice(colon + 1);
    if (key === 'Uid' && uids === undefined) uids = parseIds('Uid', value, 1, 4);
    else if (key === 'Gid' && gids === undefined) gids = parseIds('Gid', value, 1, 4);
    else if (key === 'Groups' && groups === undefined) {
      // NGROUPS_MAX is 65536 on Linux.
      groups = parseIds('Groups', value, 0, 65536);
    }
  }
  if (uids === undefined) throw invalid('/proc status has no Uid line');
  if (gids === undefined) throw invalid('/proc status has no Gid line');
  return { uids, gids, groups: groups ?? [] };
}

/**
 * The effective ID of a `Uid:`/`Gid:` list, as SPIRE's unix attestor picks it: the second
 * value (effective) when there are several, else the only one.
 */
export function effectiveId(ids: readonly number[]): number {
  const id = ids.length > 1 ? ids[1] : ids[0];
  if (id === undefined) throw new TypeError('ids must not be empty');
  return id;
}
