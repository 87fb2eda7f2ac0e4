/**
 * The `unix` workload attestor (SPIRE's `WorkloadAttestor "unix"`): selectors from the
 * calling process's credentials in `/proc/<pid>/status`, and optionally from its
 * executable.
 *
 * Selectors (type `unix`), in this order:
 * - `uid:<effective uid>`, `user:<name>` (when /etc/passwd names it),
 * - `gid:<effective gid>`, `group:<name>` (when /etc/group names it),
 * - per supplementary group: `supplementary_gid:<gid>`, `supplementary_group:<name>`,
 * - with `discoverWorkloadPath`: `path:<readlink /proc/<pid>/exe>` and, unless
 *   `workloadSizeLimit` is negative, `sha256:<hex digest of the executable>`.
 *
 * Differences from SPIRE: names come from /etc/passwd and /etc/group only (no NSS), and
 * the digest is cached per executable file (device, inode, size, mtime, ctime), so a
 * workload that reconnects is not re-hashed.
 *
 * Errors: `ERR_WORKLOAD_ATTESTOR_FAILED` (`details.attestor = 'unix'`) when /proc cannot
 * be read (the process exited, no permission), the status is malformed, or the executable
 * exceeds `workloadSizeLimit`.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import { type NameMap, parseGroup, parsePasswd } from './name-db.js';
import { effectiveId, parseProcStatus } from './proc-status.js';
import type { Selector } from './selector.js';
import { type AttestOptions, checkPid, type WorkloadAttestor } from './workload-attestor.js';

/** Options of {@link createUnixWorkloadAttestor} (SPIRE's plugin_data keys in comments). */
export interface UnixWorkloadAttestorOptions {
  /** `discover_workload_path`: add `unix:path` and `unix:sha256`. Default false. */
  readonly discoverWorkloadPath?: boolean;
  /**
   * `workload_size_limit`, bytes: executables larger than this are not hashed and fail the
   * attestation; 0 means no limit; negative means never hash (no `unix:sha256`). Default 0.
   */
  readonly workloadSizeLimit?: number;
  /** Where proc is mounted (SPIRE honours `HOST_PROC`). Default `/proc`. */
  readonly procRoot?: string;
  /** Default `/etc/passwd`. */
  readonly passwdPath?: string;
  /** Default `/etc/group`. */
  readonly groupPath?: string;
}

function failed(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError('ERR_WORKLOAD_ATTESTOR_FAILED', message, {
    details: { attestor: 'unix' },
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * A parsed file re-read only when its identity or mtime changes. Read synchronously: a local
 * `stat` costs microseconds, while the promise API's round trip through the thread pool cost
 * more than the work (docs/performance.md, "Agent"); the file is re-read only when it changed.
 */
class CachedFile<T> {
  readonly #path: string;
  readonly #parse: (text: string) => T;
  readonly #empty: T;
  #key = '';
  #value: T;

  constructor(path: string, parse: (text: string) => T, empty: T) {
    this.#path = path;
    this.#parse = parse;
    this.#empty = empty;
    this.#value = empty;
  }

  get(): T {
    let key: string;
    try {
      const st = statSync(this.#path, { bigint: true });
      key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
    } catch {
      // No such database: no names (uid/gid selectors still work).
      this.#key = '';
      this.#value = this.#empty;
      return this.#value;
    }
    if (key !== this.#key) {
      let text: string;
      try {
        text = readFileSync(this.#path, 'utf8');
      } catch {
        text = '';
      }
      this.#value = this.#parse(text);
      this.#key = key;
    }
    return this.#value;
  }
}

/** Executable digests by file identity; bounded. */
const DIGEST_CACHE_MAX = 256;

/** The `unix` workload attestor. Bad options throw TypeError. */
export function createUnixWorkloadAttestor(
  options: UnixWorkloadAttestorOptions = {},
): WorkloadAttestor {
  const discover = options.discoverWorkloadPath ?? false;
  const sizeLimit = options.workloadSizeLimit ?? 0;
  if (typeof discover !== 'boolean') throw new TypeError('discoverWorkloadPath must be a boolean');
  if (!Number.isSafeInteger(sizeLimit)) {
    throw new TypeError('workloadSizeLimit must be an integer');
  }
  const procRoot = options.procRoot ?? '/proc';
  const users = new CachedFile<NameMap>(
    options.passwdPath ?? '/etc/passwd',
    parsePasswd,
    new Map(),
  );
  const groups = new CachedFile<NameMap>(options.groupPath ?? '/etc/group', parseGroup, new Map());
  const digests = new Map<string, string>();

  async function sha256Of(pid: number, signal: AbortSignal | undefined): Promise<string> {
    // /proc/<pid>/exe opens the file the process runs, even in another mount namespace or
    // after it was renamed; the readlink text of `unix:path` may not resolve here.
    const exe = join(procRoot, String(pid), 'exe');
    let fh: FileHandle;
    try {
      fh = await open(exe, 'r');
    } catch (err) {
      throw failed(
        `could not open the workload executable of pid ${pid}: ${describeError(err)}`,
        err,
      );
    }
    try {
      const st = await fh.stat({ bigint: true });
      if (sizeLimit > 0 && st.size > BigInt(sizeLimit)) {
        throw failed(
          `workload executable of pid ${pid} exceeds workload_size_limit (${st.size} > ${sizeLimit})`,
        );
      }
      const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
      const cached = digests.get(key);
      if (cached !== undefined) return cached;
      const hash = createHash('sha256');
      const buf = Buffer.allocUnsafe(1 << 16);
      for (;;) {
        signal?.throwIfAborted();
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        hash.update(buf.subarray(0, bytesRead));
      }
      const digest = hash.digest('hex');
      if (digests.size >= DIGEST_CACHE_MAX) digests.delete(digests.keys().next().value!);
      digests.set(key, digest);
      return digest;
    } catch (err) {
      if (err instanceof SpireEdgeError || signal?.aborted) throw err;
      throw failed(
        `could not hash the workload executable of pid ${pid}: ${describeError(err)}`,
        err,
      );
    } finally {
      await fh.close();
    }
  }

  return {
    name: 'unix',
    async attest(pid: number, opts: AttestOptions = {}): Promise<Selector[]> {
      checkPid(pid);
      let text: string;
      try {
        // /proc is served from kernel memory: a synchronous read never blocks, and is several
        // times cheaper than the promise API's open/fstat/read/close on the thread pool.
        text = readFileSync(join(procRoot, String(pid), 'status'), 'utf8');
      } catch (err) {
        throw failed(`could not read /proc status of pid ${pid}: ${describeError(err)}`, err);
      }
      let status: ReturnType<typeof parseProcStatus>;
      try {
        status = parseProcStatus(text);
      } catch (err) {
        throw failed(`could not parse /proc status of pid ${pid}: ${describeError(err)}`, err);
      }
      const userNames = users.get();
      const groupNames = groups.get();
      const values: string[] = [];
      const uid = effectiveId(status.uids);
      values.push(`uid:${uid}`);
      const user = userNames.get(uid);
      if (user !== undefined) values.push(`user:${user}`);
      const gid = effectiveId(status.gids);
      values.push(`gid:${gid}`);
      const group = groupNames.get(gid);
      if (group !== undefined) values.push(`group:${group}`);
      for (const sg of status.groups) {
        values.push(`supplementary_gid:${sg}`);
        const name = groupNames.get(sg);
        if (name !== undefined) values.push(`supplementary_group:${name}`);
      }
      if (discover) {
        let path: string;
        try {
          path = readlinkSync(join(procRoot, String(pid), 'exe'));
        } catch (err) {
          throw failed(
            `could not read the workload path of pid ${pid}: ${describeError(err)}`,
            err,
          );
        }
        values.push(`path:${path}`);
        if (sizeLimit >= 0) values.push(`sha256:${await sha256Of(pid, opts.signal)}`);
      }
      return values.map((value) => ({ type: 'unix', value }));
    },
  };
}
