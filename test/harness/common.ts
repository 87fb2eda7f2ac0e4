/**
 * Shared plumbing for the test harnesses that start real components (swtpm, SoftHSM2,
 * mosquitto, PostgreSQL) as child processes of the test run.
 *
 * Rules every harness follows, and why:
 * - Services run as *children* of the test process, never daemonised: PID 1 on the project's
 *   machines does not reap orphans. Every child is started through
 *   `setpriv --pdeathsig KILL`, so the kernel kills it if the test process dies without
 *   running its hooks, and a process `'exit'` hook SIGKILLs any child still registered.
 * - Services listen on 127.0.0.1 only, on ephemeral ports from {@link freePort}; a port can be
 *   taken between `freePort()` and the child's bind, so harnesses wrap their start in
 *   {@link retryOnPortInUse}.
 * - Readiness is a probe, not a sleep; {@link listensOn} checks that *our* child (by PID) owns
 *   the listening socket, so a foreign process on a recycled port is never mistaken for it.
 * - A missing component fails with `ERR_HARNESS_MISSING_COMPONENT` naming the Debian package:
 *   tests never skip, in CI or out.
 *
 * Error codes thrown here: `ERR_HARNESS_MISSING_COMPONENT`, `ERR_HARNESS_COMMAND_FAILED`,
 * `ERR_HARNESS_COMMAND_TIMEOUT`, `ERR_HARNESS_START_FAILED`, `ERR_HARNESS_PORT_IN_USE`,
 * `ERR_HARNESS_START_TIMEOUT`, `ERR_HARNESS_STOP_TIMEOUT`, `ERR_HARNESS_CACHE_UNSAFE`.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, rmSync, statSync } from 'node:fs';
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  statfs,
  writeFile,
} from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeError, SpireEdgeError } from '../../src/common/errors.js';

/**
 * Children still running, by PID, and whether the child leads its own process group (CLI
 * tools from {@link run}): the `'exit'` hook SIGKILLs them (and their groups).
 */
const liveChildren = new Map<number, boolean>();
/** Temp dirs from {@link makeTempDir} not yet removed: the `'exit'` hook removes them. */
const liveTempDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: signals and rmSync only.
  process.on('exit', () => {
    for (const [pid, group] of liveChildren) {
      try {
        process.kill(group ? -pid : pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const dir of liveTempDirs) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort: a killed child may still be writing
      }
    }
  });
}

/** True when the current process runs as root (PostgreSQL then runs as the `postgres` user). */
export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Returns a TCP port on `host` that was free a moment ago: binds port 0, reads the port the
 * kernel chose, releases it. Another process may take it before the caller binds it, so
 * callers retry on EADDRINUSE ({@link retryOnPortInUse}).
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * `count` distinct free ports (see {@link freePort}; they are all held until the last is
 * chosen, so they differ from each other).
 */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      server.unref();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port: 0, host, exclusive: true }, () => resolve());
      });
      ports.push((server.address() as net.AddressInfo).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

/**
 * A free port P such that P+1 is free too (both held while checking): for servers with a
 * fixed companion port, like swtpm, whose TCTI finds the control channel at P+1.
 */
export async function freePortPair(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = net.createServer();
    first.unref();
    await new Promise<void>((resolve, reject) => {
      first.once('error', reject);
      first.listen({ port: 0, host, exclusive: true }, () => resolve());
    });
    const port = (first.address() as net.AddressInfo).port;
    const second = net.createServer();
    second.unref();
    const ok =
      port < 65535 &&
      (await new Promise<boolean>((resolve) => {
        second.once('error', () => resolve(false));
        second.listen({ port: port + 1, host, exclusive: true }, () => resolve(true));
      }));
    await Promise.all(
      [first, ...(ok ? [second] : [])].map((s) => new Promise((resolve) => s.close(resolve))),
    );
    if (ok) return port;
  }
  throw new SpireEdgeError('ERR_HARNESS_PORT_IN_USE', 'found no two consecutive free ports');
}

/** Options of {@link makeTempDir}. */
export interface TempDirOptions {
  /**
   * Prefer memory (/dev/shm, when it has at least 512 MiB free) over $TMPDIR: for data a
   * server writes a lot of and that need not survive (a test database). Falls back to
   * $TMPDIR where /dev/shm is small, as in many containers.
   */
  inMemory?: boolean;
}

const MEMORY_ROOT = '/dev/shm';
const MEMORY_MIN_FREE = 512 * 1024 * 1024;

async function memoryRootUsable(): Promise<boolean> {
  try {
    const fs = await statfs(MEMORY_ROOT);
    return fs.bavail * fs.bsize >= MEMORY_MIN_FREE;
  } catch {
    return false;
  }
}

/**
 * Creates a fresh private (0700) directory `<root>/spire-edge-<prefix>-XXXXXX`, where root is
 * $TMPDIR (or /dev/shm with `inMemory`). It is removed by {@link removeTempDir} or, failing
 * that, when the test process exits.
 */
export async function makeTempDir(prefix: string, options: TempDirOptions = {}): Promise<string> {
  if (!/^[a-z0-9-]+$/.test(prefix)) {
    throw new TypeError(`prefix must be lower-case letters, digits and dashes, got '${prefix}'`);
  }
  installExitHook();
  const root = options.inMemory === true && (await memoryRootUsable()) ? MEMORY_ROOT : tmpdir();
  const dir = await mkdtemp(join(root, `spire-edge-${prefix}-`));
  liveTempDirs.add(dir);
  return dir;
}

/** Removes a directory made by {@link makeTempDir} (or any directory; missing is fine). */
export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  liveTempDirs.delete(dir);
}

const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
const resolvedBinaries = new Map<string, string>();

function missing(name: string, debianPackage: string): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_HARNESS_MISSING_COMPONENT',
    `${name} not found: install Debian package ${debianPackage} (scripts/setup.sh does)`,
    { details: { name, debianPackage } },
  );
}

/**
 * Returns the absolute path of executable `name` (searched on PATH, then the usual system
 * directories, which a non-root PATH may lack), or throws `ERR_HARNESS_MISSING_COMPONENT`:
 * "<name> not found: install Debian package <pkg> (scripts/setup.sh does)". Tests call it
 * instead of skipping when a component is absent.
 */
export function requireBinary(name: string, debianPackage: string): string {
  const cached = resolvedBinaries.get(name);
  if (cached !== undefined) return cached;
  const candidates = isAbsolute(name)
    ? [name]
    : [...(process.env['PATH'] ?? '').split(delimiter).filter(Boolean), ...SYSTEM_DIRS].map((dir) =>
        join(dir, name),
      );
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      if (!statSync(candidate).isFile()) continue;
      resolvedBinaries.set(name, candidate);
      return candidate;
    } catch {
      // not here
    }
  }
  throw missing(name, debianPackage);
}

/** Like {@link requireBinary} for a non-executable file (a PKCS#11 module, a data file). */
export function requireFile(path: string, debianPackage: string): string {
  try {
    accessSync(path, constants.R_OK);
    return path;
  } catch {
    throw missing(path, debianPackage);
  }
}

/** Keeps the last `limit` bytes written to it: a child's output, for error messages. */
export class OutputTail {
  #buf: Buffer = Buffer.alloc(0);
  readonly #limit: number;

  constructor(limit = 64 * 1024) {
    this.#limit = limit;
  }

  push(chunk: Buffer): void {
    const joined = Buffer.concat([this.#buf, chunk]);
    this.#buf = joined.length > this.#limit ? joined.subarray(joined.length - this.#limit) : joined;
  }

  text(): string {
    return this.#buf.toString('utf8');
  }
}

/** Options of {@link run}. */
export interface RunOptions {
  /** Added to (and overriding) the inherited environment. */
  env?: Readonly<Record<string, string>>;
  /** Written to the command's stdin, which is then closed; without it stdin is empty. */
  input?: string | Uint8Array;
  cwd?: string;
  /** Return a non-zero exit instead of throwing `ERR_HARNESS_COMMAND_FAILED`. */
  allowFailure?: boolean;
  /** Kill the command (SIGKILL) and throw `ERR_HARNESS_COMMAND_TIMEOUT` after this long. Default 30 s. */
  timeoutMs?: number;
}

/** What {@link run} returns. */
export interface RunResult {
  /** stdout decoded as UTF-8. */
  stdout: string;
  /** stdout as bytes (for binary output such as `tpm2 getrandom` or a DER certificate). */
  stdoutBytes: Buffer;
  stderr: string;
  /** The exit status; -1 when the command was killed by a signal. */
  code: number;
  signal: NodeJS.Signals | null;
}

/**
 * Runs a CLI tool to completion and returns its output. Throws `ERR_HARNESS_COMMAND_FAILED`
 * (message with the command line and stderr; `details.code`, `details.stderr`) on a non-zero
 * exit unless `allowFailure`, and when the command cannot be started at all. The command
 * runs in its own process group, so a timeout (or the `'exit'` hook) kills whatever it
 * started too, instead of waiting for a grandchild that holds the output pipe.
 */
export function run(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  installExitHook();
  const commandLine = [command, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    if (child.pid !== undefined) liveChildren.set(child.pid, true);
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) signal(-child.pid, 'SIGKILL');
    }, options.timeoutMs ?? 30_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      if (child.pid !== undefined) liveChildren.delete(child.pid);
      reject(
        new SpireEdgeError('ERR_HARNESS_COMMAND_FAILED', `could not run ${command}: ${e.message}`, {
          cause: e,
          details: { command, args },
        }),
      );
    });
    // stdin errors (EPIPE when the command does not read its input) are not the caller's
    // concern: the exit status tells.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (child.pid !== undefined) liveChildren.delete(child.pid);
      const stdoutBytes = Buffer.concat(out);
      const result: RunResult = {
        stdout: stdoutBytes.toString('utf8'),
        stdoutBytes,
        stderr: Buffer.concat(err).toString('utf8'),
        code: code ?? -1,
        signal,
      };
      if (timedOut) {
        reject(
          new SpireEdgeError(
            'ERR_HARNESS_COMMAND_TIMEOUT',
            `${commandLine} did not finish within ${options.timeoutMs ?? 30_000} ms: ${result.stderr.trim()}`,
            { details: { command, args } },
          ),
        );
      } else if (result.code !== 0 && options.allowFailure !== true) {
        reject(
          new SpireEdgeError(
            'ERR_HARNESS_COMMAND_FAILED',
            `${commandLine} exited with ${signal ?? `code ${result.code}`}: ${result.stderr.trim()}`,
            { details: { command, args, code: result.code, stderr: result.stderr } },
          ),
        );
      } else {
        resolve(result);
      }
    });
  });
}

/**
 * True when process `pid` exists (a zombie not yet reaped counts as existing; children
 * started here are reaped by Node as soon as they exit).
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function hexPort(port: number): string {
  return port.toString(16).toUpperCase().padStart(4, '0');
}

/** `127.0.0.1` as /proc/net/tcp writes it: the address in host (little-endian) byte order. */
function procIpv4(host: string): string {
  const octets = host.split('.').map((o) => Number.parseInt(o, 10));
  if (octets.length !== 4 || octets.some((o) => !(o >= 0 && o <= 255))) {
    throw new TypeError(`host must be a dotted IPv4 address, got '${host}'`);
  }
  return octets
    .reverse()
    .map((o) => o.toString(16).toUpperCase().padStart(2, '0'))
    .join('');
}

/**
 * True when process `pid` itself holds a TCP socket listening on `host:port` (read from
 * /proc/net/tcp and /proc/<pid>/fd). Used as a readiness probe: unlike a connect, it cannot
 * be fooled by another process that took the port.
 */
export async function listensOn(pid: number, port: number, host = '127.0.0.1'): Promise<boolean> {
  const local = `${procIpv4(host)}:${hexPort(port)}`;
  const table = await readFile('/proc/net/tcp', 'utf8');
  const inodes = new Set<string>();
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
    if (f[1] === local && f[3] === '0A' && f[9] !== undefined) inodes.add(`socket:[${f[9]}]`);
  }
  if (inodes.size === 0) return false;
  let fds: string[];
  try {
    fds = await readdir(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      if (inodes.has(await readlink(`/proc/${pid}/fd/${fd}`))) return true;
    } catch {
      // fd closed meanwhile
    }
  }
  return false;
}

/** Options of {@link spawnService}. */
export interface SpawnServiceOptions {
  /** Short name for messages ("swtpm", "postgres"). */
  name: string;
  /** Absolute path of the executable (from {@link requireBinary}). */
  command: string;
  args: readonly string[];
  /** Added to (and overriding) the inherited environment. */
  env?: Readonly<Record<string, string>>;
  cwd?: string;
  /**
   * When the test runs as root, run the service as this system user (and its same-named
   * group, with its supplementary groups). Ignored when not root.
   */
  runAs?: string;
  /**
   * Readiness probe, called repeatedly (5 ms, doubling to 100 ms) with the child's PID and
   * its output so far, until it returns true; a throw counts as "not ready yet" and its
   * message is reported on timeout.
   */
  ready: (pid: number, output: string) => Promise<boolean>;
  /** Default 15 s (CI machines have 2 busy cores). */
  readyTimeoutMs?: number;
  /** Signal for a graceful stop. Default SIGTERM. */
  stopSignal?: NodeJS.Signals;
  /** Time between the stop signal and SIGKILL. Default 5 s. */
  stopGraceMs?: number;
  /** Bytes of combined stdout+stderr kept for messages. Default 64 KiB. */
  outputLimitBytes?: number;
}

/** A running service started by {@link spawnService}. */
export interface Service {
  readonly pid: number;
  /** True until the process has exited. */
  readonly running: boolean;
  /** The last bytes of its combined stdout and stderr. */
  output(): string;
  /** Resolves when the process exits (whoever ended it). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * Sends the stop signal, then SIGKILL after the grace period, and resolves once the process
   * has exited and been reaped (so its PID is gone). Idempotent: later calls return the same
   * promise. Throws `ERR_HARNESS_STOP_TIMEOUT` if even SIGKILL does not end it within 5 s.
   */
  stop(): Promise<void>;
}

const PORT_IN_USE = /address already in use|EADDRINUSE/i;

/**
 * Starts a long-running service as a child of the test process and waits until `ready`
 * says so. The child runs under `setpriv --pdeathsig KILL` (and, as root with `runAs`,
 * `--reuid/--regid/--init-groups`), its stdout and stderr go to a bounded buffer, and it is
 * registered with the `'exit'` hook until it exits.
 *
 * Throws `ERR_HARNESS_PORT_IN_USE` when the child exits before ready with "address already
 * in use" in its output (callers pick new ports: {@link retryOnPortInUse}),
 * `ERR_HARNESS_START_FAILED` when it exits before ready for another reason, and
 * `ERR_HARNESS_START_TIMEOUT` (after stopping it) when it is not ready in time; each
 * message ends with the captured output.
 */
export async function spawnService(options: SpawnServiceOptions): Promise<Service> {
  installExitHook();
  const setpriv = requireBinary('setpriv', 'util-linux');
  const wrapper = ['--pdeathsig', 'KILL'];
  if (options.runAs !== undefined && isRoot()) {
    wrapper.push('--reuid', options.runAs, '--regid', options.runAs, '--init-groups');
  }
  const tail = new OutputTail(options.outputLimitBytes);
  const child = spawn(setpriv, [...wrapper, '--', options.command, ...options.args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (c: Buffer) => tail.push(c));
  child.stderr.on('data', (c: Buffer) => tail.push(c));

  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (e) => {
      spawnError = e;
      exitInfo ??= { code: null, signal: null };
      resolve(exitInfo);
    });
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      if (child.pid !== undefined) liveChildren.delete(child.pid);
      resolve(exitInfo);
    });
  });
  // 'close' follows 'exit' once stdout and stderr are drained.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const pid = child.pid;
  if (pid === undefined) {
    await exited;
    throw new SpireEdgeError(
      'ERR_HARNESS_START_FAILED',
      `could not start ${options.name}: ${describeError(spawnError)}`,
      { cause: spawnError },
    );
  }
  liveChildren.set(pid, false);

  const grace = options.stopGraceMs ?? 5_000;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (exitInfo !== undefined) return;
      signal(pid, options.stopSignal ?? 'SIGTERM');
      if (await within(exited, grace)) return;
      signal(pid, 'SIGKILL');
      if (await within(exited, 5_000)) return;
      throw new SpireEdgeError(
        'ERR_HARNESS_STOP_TIMEOUT',
        `${options.name} (pid ${pid}) did not exit after SIGKILL`,
      );
    })();
    return stopping;
  };
  const service: Service = {
    pid,
    get running() {
      return exitInfo === undefined;
    },
    output: () => tail.text(),
    exited,
    stop,
  };

  const timeoutMs = options.readyTimeoutMs ?? 15_000;
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  let lastProbeError: unknown;
  const startedAt = Date.now();
  for (;;) {
    if (exitInfo === undefined) {
      try {
        if (await options.ready(pid, tail.text())) {
          // The probe may have raced the child's exit (e.g. a failed bind): re-check.
          if (exitInfo === undefined) return service;
        }
      } catch (e) {
        lastProbeError = e;
      }
    }
    if (exitInfo !== undefined) {
      // Let the pipes drain so the message carries the child's last words.
      await within(closed, 200);
      const output = tail.text().trim();
      const how = exitInfo.signal ?? `code ${exitInfo.code}`;
      throw new SpireEdgeError(
        PORT_IN_USE.test(output) ? 'ERR_HARNESS_PORT_IN_USE' : 'ERR_HARNESS_START_FAILED',
        `${options.name} exited (${how}) before it was ready; output:\n${output}`,
        { details: { name: options.name, output } },
      );
    }
    if (Date.now() >= deadline) {
      await stop().catch(() => {});
      const probe =
        lastProbeError === undefined ? '' : ` (last probe: ${describeError(lastProbeError)})`;
      throw new SpireEdgeError(
        'ERR_HARNESS_START_TIMEOUT',
        `${options.name} was not ready within ${Date.now() - startedAt} ms${probe}; output:\n${tail.text().trim()}`,
        { cause: lastProbeError, details: { name: options.name } },
      );
    }
    await within(exited, delay);
    delay = Math.min(delay * 2, 100);
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Resolves true when `p` settles within `ms`, false otherwise (the timer is cleared). */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  const ac = new AbortController();
  const timeout = sleep(ms, false, { signal: ac.signal }).catch(() => false);
  const done = p.then(
    () => true,
    () => true,
  );
  const result = await Promise.race([done, timeout]);
  ac.abort();
  return result;
}

/**
 * Calls `start` until it does not throw `ERR_HARNESS_PORT_IN_USE` (at most `attempts`
 * times); `start` must pick fresh ports on every call.
 */
export async function retryOnPortInUse<T>(start: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await start();
    } catch (e) {
      if (i >= attempts || !(e instanceof SpireEdgeError && e.code === 'ERR_HARNESS_PORT_IN_USE')) {
        throw e;
      }
    }
  }
}

/**
 * A directory built once and shared (read-only) by every test file of every run on this
 * machine: `$TMPDIR/spire-edge-cache-<uid>/<name>-<hash of keyParts>`. `build(dir)` fills a
 * private staging directory which is then renamed into place atomically, so concurrent test
 * files either find the finished directory or build their own and keep whichever rename
 * won. Callers copy from it; they must never write into it. Put everything that changes the
 * content (tool versions, options, the harness's own format) in `keyParts`; list in
 * `required` the files that must exist (a directory missing one, e.g. after a tmp cleaner,
 * is set aside and rebuilt).
 */
export async function cachedDir(
  name: string,
  keyParts: readonly string[],
  required: readonly string[],
  build: (dir: string) => Promise<void>,
): Promise<string> {
  const uid = process.getuid?.();
  const root = join(tmpdir(), `spire-edge-cache-${uid ?? 'u'}`);
  await mkdir(root, { recursive: true, mode: 0o755 });
  // A predictable name in a shared /tmp: refuse a directory someone else made.
  const owner = statSync(root).uid;
  if (uid !== undefined && owner !== uid) {
    throw new SpireEdgeError(
      'ERR_HARNESS_CACHE_UNSAFE',
      `cache dir ${root} belongs to uid ${owner}, not ${uid}: remove it or set TMPDIR`,
    );
  }
  const key = createHash('sha256').update(keyParts.join('\0')).digest('hex').slice(0, 16);
  const final = join(root, `${name}-${key}`);
  const complete = (): boolean =>
    ['.complete', ...required].every((f) => existsSync(join(final, f)));
  if (complete()) return final;

  installExitHook();
  const staging = await mkdtemp(join(root, `${name}-${key}.staging-`));
  liveTempDirs.add(staging); // a crash mid-build leaves no half-built staging dir behind
  try {
    await build(staging);
    await writeFile(join(staging, '.complete'), '');
    for (let attempt = 0; ; attempt++) {
      try {
        await rename(staging, final);
        return final;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
        // Another test file renamed its copy first: use that one.
        if (complete()) return final;
        if (attempt > 0) throw e;
        // A damaged directory: set it aside (atomically) and put ours in its place.
        const trash = `${final}.damaged-${process.pid}`;
        await rename(final, trash).catch(() => {});
        await rm(trash, { recursive: true, force: true });
      }
    }
  } finally {
    await removeTempDir(staging);
  }
}

/** A cache key part that changes when the file at `path` changes (size and mtime). */
export function fileStamp(path: string): string {
  const st = statSync(path);
  return `${path}:${st.size}:${st.mtimeMs}`;
}
