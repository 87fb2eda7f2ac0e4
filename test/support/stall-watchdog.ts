/**
 * A watchdog for the vitest run (main process), so that a hung test file can never again stall
 * CI silently and forever.
 *
 * vitest's own `testTimeout`/`hookTimeout` fire inside the worker: they cannot help when the
 * worker's event loop is blocked by a synchronous call (a native addon call that never returns,
 * `spawnSync`, `Atomics.wait`), when a test file hangs while it is being imported (no timeout
 * applies there), or when the main process never gets an answer from a worker. The watchdog
 * runs in the main process and watches the reporter events instead:
 *
 * - a file running for longer than `stallMs` (`SPIRE_EDGE_TEST_STALL_MS`, default 6 min):
 *   prints a block to stderr naming the file, the test or hook in progress and for how long,
 *   and every process under the vitest process (pid, ppid, state, wchan, cmdline; for the
 *   stuck worker each thread with the system call it is blocked in and the socket or file it
 *   waits on), then fails the run (`process.exitCode = 1`) and SIGKILLs the stuck worker and
 *   everything it started. vitest then reports that file as failed and goes on with the rest;
 * - half-way there (`warnMs`), one line saying which file is slow and what it is doing, so a
 *   job killed from outside still leaves a trace;
 * - no reporter event at all for `idleMs` (`SPIRE_EDGE_TEST_IDLE_MS`, default 10 min): the
 *   run itself is stuck (a worker that never starts, a kill that did not free the slot):
 *   prints the same block for everything, kills the whole vitest process tree and exits 1.
 *
 * `0` in either variable turns that check off. The check timer is unref'd: it never keeps a
 * finished run alive. What it cannot catch: a main process whose own event loop is blocked
 * (no timer runs there); an outer `timeout` in the CI script is the backstop for that.
 *
 * Which worker runs which file: test/support/watchdog-worker.ts (a vitest setup file) writes
 * `<SPIRE_EDGE_WATCHDOG_DIR>/<worker pid>` with the file and the test it is in, synchronously,
 * so the mark is there even when the worker then blocks (vitest's own events are throttled
 * and a worker that blocks can lose the last one). Without that setup file the watchdog still
 * works, but kills every worker that is not known to run another file.
 */
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type {
  ReportedHookContext,
  Reporter,
  TestCase,
  TestModule,
  TestSpecification,
} from 'vitest/node';

// ---------------------------------------------------------------------------------------------
// Limits

/** The watchdog's limits, in milliseconds; 0 turns a check off. */
export interface StallLimits {
  /** A file running longer than this is reported (once) as slow. */
  readonly warnMs: number;
  /** A file running longer than this is stalled: reported, its worker killed, the run failed. */
  readonly stallMs: number;
  /** No reporter event at all for this long: the run is stuck and the process exits. */
  readonly idleMs: number;
}

/** Default limits: 6 min for one file (the whole suite takes ~4 min), 10 min of silence. */
export const DEFAULT_STALL_LIMITS: StallLimits = {
  warnMs: 180_000,
  stallMs: 360_000,
  idleMs: 600_000,
};

/** Environment variables read by {@link stallLimitsFromEnv}. */
export const STALL_ENV = 'SPIRE_EDGE_TEST_STALL_MS';
export const IDLE_ENV = 'SPIRE_EDGE_TEST_IDLE_MS';

function msFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) {
    throw new TypeError(`${name} must be a whole number of milliseconds (0: off), got '${raw}'`);
  }
  return Number(raw.trim());
}

/**
 * The limits from `SPIRE_EDGE_TEST_STALL_MS` and `SPIRE_EDGE_TEST_IDLE_MS` (defaults:
 * {@link DEFAULT_STALL_LIMITS}); the warning comes at half the stall limit.
 *
 * @throws TypeError when a variable is set to something other than a whole number.
 */
export function stallLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): StallLimits {
  const stallMs = msFromEnv(env, STALL_ENV, DEFAULT_STALL_LIMITS.stallMs);
  const idleMs = msFromEnv(env, IDLE_ENV, DEFAULT_STALL_LIMITS.idleMs);
  return { warnMs: Math.floor(stallMs / 2), stallMs, idleMs };
}

// ---------------------------------------------------------------------------------------------
// The pure decision

/** What the watchdog knows of a test file that is running. */
export interface RunningFile {
  /** The module id (absolute path). */
  readonly file: string;
  /** When the file was queued in a worker (before its import), ms since the epoch. */
  readonly startedAt: number;
  /** True once the slow-file warning was printed. */
  warned: boolean;
  /** The test in progress, as vitest last reported it. */
  test?: { readonly name: string; readonly startedAt: number } | undefined;
  /** The hook in progress (`beforeAll` of the file…), as vitest last reported it. */
  hook?: { readonly name: string; readonly of: string; readonly startedAt: number } | undefined;
  /** The last test that finished. */
  lastFinished?: string | undefined;
}

/** What {@link findStalls} decided. */
export interface StallVerdict {
  /** Files past `warnMs` not yet warned about (oldest first). */
  readonly warn: readonly RunningFile[];
  /** Files past `stallMs` (oldest first). */
  readonly stalled: readonly RunningFile[];
  /** True when nothing at all happened for `idleMs`. */
  readonly idle: boolean;
}

/**
 * Decides, at `now`, which running files are slow or stalled and whether the whole run is
 * idle (no event since `lastEventAt` for `idleMs`). Pure: the caller acts on the verdict
 * (and marks warned files). A limit of 0 never fires.
 */
export function findStalls(
  files: Iterable<RunningFile>,
  lastEventAt: number,
  now: number,
  limits: StallLimits,
): StallVerdict {
  const warn: RunningFile[] = [];
  const stalled: RunningFile[] = [];
  for (const f of files) {
    const age = now - f.startedAt;
    if (limits.stallMs > 0 && age >= limits.stallMs) stalled.push(f);
    else if (limits.warnMs > 0 && age >= limits.warnMs && !f.warned) warn.push(f);
  }
  const byAge = (a: RunningFile, b: RunningFile): number => a.startedAt - b.startedAt;
  return {
    warn: warn.sort(byAge),
    stalled: stalled.sort(byAge),
    idle: limits.idleMs > 0 && now - lastEventAt >= limits.idleMs,
  };
}

/** `95 s`, `6 min 12 s`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

// ---------------------------------------------------------------------------------------------
// Worker marks (written by test/support/watchdog-worker.ts)

/** The environment variable naming the directory of worker marks. */
export const WATCHDOG_DIR_ENV = 'SPIRE_EDGE_WATCHDOG_DIR';

/** What a worker writes to `<dir>/<pid>`: its file and where it is in it. */
export interface WorkerMark {
  readonly pid: number;
  readonly file: string;
  /** `loading`, `test`, `after-test`. */
  readonly phase: string;
  readonly test?: string;
  /** ms since the epoch. */
  readonly at: number;
}

/** Reads every worker mark in `dir` (unreadable or half-written ones are skipped). */
export function readWorkerMarks(dir: string): WorkerMark[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const marks: WorkerMark[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const m = JSON.parse(readFileSync(join(dir, name), 'utf8')) as WorkerMark;
      if (typeof m.file === 'string' && m.pid === Number(name)) marks.push(m);
    } catch {
      // being rewritten
    }
  }
  return marks;
}

// ---------------------------------------------------------------------------------------------
// /proc

/** One process (or thread) as /proc shows it. */
export interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  /** R running, S sleeping, D uninterruptible (disk, NFS, a device), T stopped, Z zombie. */
  readonly state: string;
  readonly comm: string;
  /** Clock ticks after boot. */
  readonly startTicks: number;
  /** The kernel function it sleeps in (`ep_poll`, `futex_wait_queue`, `sk_wait_data`…). */
  readonly wchan: string;
  readonly cmdline: string;
}

const CLOCK_TICKS = 100; // USER_HZ on every Linux build this project runs on

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Parses `/proc/<pid>/stat` (the command name may hold spaces and parentheses). */
export function parseProcStat(
  text: string,
): { pid: number; comm: string; state: string; ppid: number; startTicks: number } | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const rest = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  // rest[0] is field 3 (state); field 4 ppid; field 22 starttime
  const state = rest[0];
  const ppid = Number(rest[1]);
  const startTicks = Number(rest[19]);
  if (state === undefined || !Number.isFinite(ppid)) return undefined;
  return {
    pid: Number(text.slice(0, open).trim()),
    comm: text.slice(open + 1, close),
    state,
    ppid,
    startTicks: Number.isFinite(startTicks) ? startTicks : 0,
  };
}

function readProc(base: string): ProcInfo | undefined {
  const stat = readText(`${base}/stat`);
  if (stat === undefined) return undefined;
  const s = parseProcStat(stat);
  if (s === undefined) return undefined;
  const wchan = readText(`${base}/wchan`)?.trim() ?? '?';
  const cmdline = (readText(`${base}/cmdline`) ?? '').replaceAll('\0', ' ').trim();
  return { ...s, wchan: wchan === '0' || wchan === '' ? '-' : wchan, cmdline };
}

/** Every process on the machine (that /proc lets us read). */
export function listProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const p = readProc(`/proc/${name}`);
    if (p !== undefined) out.push(p);
  }
  return out;
}

/**
 * The descendants of `root` in `all` (not `root` itself), each with its depth below `root`,
 * in tree order (a parent before its children).
 */
export function descendantsOf(
  root: number,
  all: readonly ProcInfo[],
): Array<{ proc: ProcInfo; depth: number }> {
  const children = new Map<number, ProcInfo[]>();
  for (const p of all) {
    const list = children.get(p.ppid);
    if (list === undefined) children.set(p.ppid, [p]);
    else list.push(p);
  }
  const out: Array<{ proc: ProcInfo; depth: number }> = [];
  const walk = (pid: number, depth: number): void => {
    for (const c of (children.get(pid) ?? []).sort((a, b) => a.pid - b.pid)) {
      if (c.pid === pid) continue;
      out.push({ proc: c, depth });
      walk(c.pid, depth + 1);
    }
  };
  walk(root, 1);
  return out;
}

/** Threads of `pid` (`/proc/<pid>/task/*`). */
function threadsOf(pid: number): ProcInfo[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: ProcInfo[] = [];
  for (const tid of tids) {
    const t = readProc(`/proc/${pid}/task/${tid}`);
    if (t !== undefined) out.push(t);
  }
  return out.sort((a, b) => a.pid - b.pid);
}

/** x86-64 numbers of the system calls a blocked thread is usually found in. */
const X64_SYSCALLS: Record<number, string> = {
  0: 'read',
  1: 'write',
  7: 'poll',
  16: 'ioctl',
  17: 'pread64',
  23: 'select',
  35: 'nanosleep',
  42: 'connect',
  43: 'accept',
  44: 'sendto',
  45: 'recvfrom',
  46: 'sendmsg',
  47: 'recvmsg',
  61: 'wait4',
  72: 'fcntl',
  73: 'flock',
  74: 'fsync',
  202: 'futex',
  230: 'clock_nanosleep',
  232: 'epoll_wait',
  247: 'waitid',
  270: 'pselect6',
  271: 'ppoll',
  281: 'epoll_pwait',
  288: 'accept4',
  441: 'epoll_pwait2',
};
/** System calls whose first argument is a file descriptor worth naming. */
const FD_SYSCALLS = new Set([
  'read',
  'write',
  'ioctl',
  'pread64',
  'connect',
  'accept',
  'sendto',
  'recvfrom',
  'sendmsg',
  'recvmsg',
  'fcntl',
  'flock',
  'fsync',
  'accept4',
]);

function hexIpv4Port(hex: string): string {
  const [addr, port] = hex.split(':');
  if (addr === undefined || port === undefined) return hex;
  if (addr.length !== 8) return `[${addr}]:${Number.parseInt(port, 16)}`;
  const octets = [6, 4, 2, 0].map((i) => Number.parseInt(addr.slice(i, i + 2), 16));
  return `${octets.join('.')}:${Number.parseInt(port, 16)}`;
}

/** `tcp 127.0.0.1:41234 -> 127.0.0.1:2321` for a socket inode, from /proc/net. */
function describeSocket(inode: string): string | undefined {
  for (const proto of ['tcp', 'tcp6']) {
    const table = readText(`/proc/net/${proto}`);
    if (table === undefined) continue;
    for (const line of table.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[9] === inode && f[1] !== undefined && f[2] !== undefined) {
        return `${proto} ${hexIpv4Port(f[1])} -> ${hexIpv4Port(f[2])}`;
      }
    }
  }
  const unix = readText('/proc/net/unix');
  if (unix !== undefined) {
    for (const line of unix.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[6] === inode) return `unix ${f[7] ?? '(unnamed)'}`;
    }
  }
  return undefined;
}

/**
 * The system call thread `tid` of `pid` is in (`/proc/<pid>/task/<tid>/syscall`; readable
 * for our own descendants), with the fd it uses named: `recvfrom(fd 23 = tcp 127.0.0.1:4123
 * -> 127.0.0.1:2321)`. Undefined when unreadable or running.
 */
function describeSyscall(pid: number, tid: number): string | undefined {
  const text = readText(`/proc/${pid}/task/${tid}/syscall`)?.trim();
  if (text === undefined || text === '' || text === 'running') return undefined;
  const [nr, arg0] = text.split(/\s+/);
  const n = Number(nr);
  if (!Number.isInteger(n) || n < 0) return undefined;
  const name = process.arch === 'x64' ? (X64_SYSCALLS[n] ?? `syscall ${n}`) : `syscall ${n}`;
  if (!FD_SYSCALLS.has(name) || arg0 === undefined) return name;
  const fd = Number.parseInt(arg0, 16);
  let target: string;
  try {
    target = readlinkSync(`/proc/${pid}/fd/${fd}`);
  } catch {
    return `${name}(fd ${fd})`;
  }
  const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
  const socket = inode === undefined ? undefined : describeSocket(inode);
  return `${name}(fd ${fd} = ${socket ?? target})`;
}

function ageOf(p: ProcInfo, uptimeS: number): string {
  if (p.startTicks <= 0 || !Number.isFinite(uptimeS)) return '?';
  return formatDuration((uptimeS - p.startTicks / CLOCK_TICKS) * 1000);
}

function uptimeSeconds(): number {
  return Number((readText('/proc/uptime') ?? '').split(/\s+/)[0]);
}

/**
 * A readable dump of `pid`'s threads, grouped (`4 × S futex_wait_queue futex (node "libuv-worker")`),
 * with a hint on what the main thread's state means for a Node.js worker.
 */
export function describeThreads(pid: number): string[] {
  const threads = threadsOf(pid);
  if (threads.length === 0) return ['    (threads unreadable: the process is gone)'];
  const lines: string[] = [];
  const main = threads.find((t) => t.pid === pid);
  if (main !== undefined) {
    const call = describeSyscall(pid, main.pid);
    lines.push(
      `    main thread: ${main.state} ${main.wchan}${call === undefined ? '' : ` ${call}`}`,
    );
    if (/ep_poll|epoll/.test(main.wchan) || call?.startsWith('epoll') === true) {
      lines.push(
        '    hint: the event loop is idle (or in spawnSync) — an await that never settles, a hang while the file was imported, or a child run synchronously',
      );
    } else if (main.state === 'D') {
      lines.push('    hint: uninterruptible sleep — a hung file system or device');
    } else {
      lines.push(
        '    hint: the event loop is blocked by a synchronous call (native addon, Atomics.wait, a sync fs or sqlite call)',
      );
    }
  }
  const groups = new Map<string, number>();
  for (const t of threads) {
    if (t.pid === pid) continue;
    const call = describeSyscall(pid, t.pid);
    const key = `${t.state} ${t.wchan}${call === undefined ? '' : ` ${call}`} (${t.comm})`;
    groups.set(key, (groups.get(key) ?? 0) + 1);
  }
  for (const [key, n] of groups) lines.push(`    ${n} × ${key}`);
  return lines;
}

/**
 * The process tree under `root` as lines (`pid ppid state wchan age cmdline`, indented by
 * depth), with thread detail for the pids in `detail`.
 */
export function describeProcessTree(
  root: number,
  detail: ReadonlySet<number> = new Set(),
  all: readonly ProcInfo[] = listProcesses(),
): string[] {
  const uptime = uptimeSeconds();
  const lines = ['  pid     ppid    st wchan                  age        command'];
  const self = all.find((p) => p.pid === root);
  const row = (p: ProcInfo, depth: number): string =>
    `  ${String(p.pid).padEnd(7)} ${String(p.ppid).padEnd(7)} ${p.state.padEnd(2)} ${p.wchan.slice(0, 22).padEnd(22)} ${ageOf(p, uptime).padEnd(10)} ${'  '.repeat(depth)}${(p.cmdline || `[${p.comm}]`).slice(0, 220)}`;
  if (self !== undefined) lines.push(row(self, 0));
  for (const { proc, depth } of descendantsOf(root, all)) {
    lines.push(row(proc, depth));
    if (detail.has(proc.pid)) lines.push(...describeThreads(proc.pid));
  }
  return lines;
}

/**
 * SIGKILLs `pid` and all its descendants (children first, so none is re-parented and
 * missed), skipping zombies and any process whose start time changed since `all` was read (a
 * reused pid).
 * Returns the pids signalled.
 */
export function killTree(pid: number, all: readonly ProcInfo[] = listProcesses()): number[] {
  const self = all.find((p) => p.pid === pid);
  const victims = [...descendantsOf(pid, all).map((d) => d.proc)].reverse();
  if (self !== undefined) victims.push(self);
  const killed: number[] = [];
  for (const p of victims) {
    const now = readText(`/proc/${p.pid}/stat`);
    const s = now === undefined ? undefined : parseProcStat(now);
    if (s === undefined || s.startTicks !== p.startTicks || s.state === 'Z') continue;
    try {
      process.kill(p.pid, 'SIGKILL');
      killed.push(p.pid);
    } catch {
      // gone meanwhile
    }
  }
  return killed;
}

// ---------------------------------------------------------------------------------------------
// The reporter

/** True for a vitest fork worker (`node …/vitest/dist/workers/forks.js`). */
export function isVitestWorker(p: ProcInfo): boolean {
  return /[\\/]workers[\\/]forks\.js\b/.test(p.cmdline);
}

/** Options of {@link StallWatchdog} (all for tests; the defaults are the real thing). */
export interface StallWatchdogOptions {
  readonly limits?: StallLimits;
  readonly now?: () => number;
  /** Where the report goes (default: stderr). */
  readonly write?: (text: string) => void;
  /** Check interval (default 5 s). */
  readonly intervalMs?: number;
  /** Ends the process after an idle report (default: `process.exit(1)`). */
  readonly exit?: () => void;
  /** The vitest process (default: this one). */
  readonly rootPid?: number;
  /** Kills a process tree (default {@link killTree}). */
  readonly kill?: (pid: number) => number[];
  /** Lists processes (default {@link listProcesses}). */
  readonly processes?: () => ProcInfo[];
}

/**
 * The watchdog as a vitest reporter: it tracks the files, tests and hooks in progress from
 * the reporter events and checks them every few seconds (see the module comment). Used by
 * test/support/summary-reporter.ts; usable on its own in `reporters`.
 */
export class StallWatchdog implements Reporter {
  #limits: StallLimits;
  readonly #now: () => number;
  readonly #write: (text: string) => void;
  readonly #intervalMs: number;
  readonly #exit: () => void;
  readonly #rootPid: number;
  readonly #kill: (pid: number) => number[];
  readonly #processes: () => ProcInfo[];
  readonly #running = new Map<string, RunningFile>();
  /** Files the watchdog killed, for the closing summary. */
  readonly stalledFiles: string[] = [];
  #lastEventAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #marksDir: string | undefined;
  #root = process.cwd();

  constructor(options: StallWatchdogOptions = {}) {
    this.#limits = options.limits ?? stallLimitsFromEnv();
    this.#now = options.now ?? Date.now;
    this.#write = options.write ?? ((t) => process.stderr.write(t));
    this.#intervalMs = options.intervalMs ?? 5_000;
    this.#exit = options.exit ?? (() => process.exit(1));
    this.#rootPid = options.rootPid ?? process.pid;
    this.#kill = options.kill ?? ((pid) => killTree(pid));
    this.#processes = options.processes ?? listProcesses;
  }

  /** The limits in force (all 0 under a debugger). */
  get limits(): StallLimits {
    return this.#limits;
  }

  /** The files in progress (for tests and the reports). */
  get running(): ReadonlyMap<string, RunningFile> {
    return this.#running;
  }

  onInit(vitest: { config: { root: string; inspector?: { enabled?: boolean } } }): void {
    this.#root = vitest.config.root;
    // Someone stepping through a test in a debugger is not a hang.
    if (vitest.config.inspector?.enabled === true)
      this.#limits = { warnMs: 0, stallMs: 0, idleMs: 0 };
    // Workers inherit the environment the pool is created with, after this.
    if (process.env[WATCHDOG_DIR_ENV] === undefined) {
      const dir = mkdtempSync(join(tmpdir(), 'spire-edge-watchdog-'));
      this.#marksDir = dir;
      process.env[WATCHDOG_DIR_ENV] = dir;
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    } else {
      this.#marksDir = process.env[WATCHDOG_DIR_ENV];
    }
  }

  onTestRunStart(_specifications?: ReadonlyArray<TestSpecification>): void {
    this.#running.clear();
    this.#lastEventAt = this.#now();
    clearInterval(this.#timer);
    this.#timer = setInterval(() => this.check(), this.#intervalMs);
    this.#timer.unref();
  }

  onTestRunEnd(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.stalledFiles.length > 0) {
      this.#write(
        `\nwatchdog: ${this.stalledFiles.length} test file(s) stalled and were killed (see the STALLED blocks above): ${this.stalledFiles.map((f) => this.#rel(f)).join(', ')}\n`,
      );
      process.exitCode = 1;
    }
  }

  onTestModuleQueued(m: TestModule): void {
    this.#event();
    this.#running.set(m.moduleId, { file: m.moduleId, startedAt: this.#now(), warned: false });
  }

  onTestModuleCollected(): void {
    this.#event();
  }

  onTestModuleStart(m: TestModule): void {
    this.#event();
    if (!this.#running.has(m.moduleId)) {
      this.#running.set(m.moduleId, { file: m.moduleId, startedAt: this.#now(), warned: false });
    }
  }

  onTestModuleEnd(m: TestModule): void {
    this.#event();
    this.#running.delete(m.moduleId);
  }

  onTestCaseReady(t: TestCase): void {
    this.#event();
    const f = this.#running.get(t.module.moduleId);
    if (f !== undefined) f.test = { name: t.fullName, startedAt: this.#now() };
  }

  onTestCaseResult(t: TestCase): void {
    this.#event();
    const f = this.#running.get(t.module.moduleId);
    if (f !== undefined) {
      f.test = undefined;
      f.lastFinished = t.fullName;
    }
  }

  onTestSuiteReady(): void {
    this.#event();
  }

  onTestSuiteResult(): void {
    this.#event();
  }

  onHookStart(h: ReportedHookContext): void {
    this.#event();
    const e = h.entity;
    const module = e.type === 'module' ? e : e.module;
    const f = this.#running.get(module.moduleId);
    if (f !== undefined) {
      f.hook = {
        name: h.name,
        of: e.type === 'module' ? '(the file)' : e.fullName,
        startedAt: this.#now(),
      };
    }
  }

  onHookEnd(h: ReportedHookContext): void {
    this.#event();
    const e = h.entity;
    const f = this.#running.get((e.type === 'module' ? e : e.module).moduleId);
    if (f !== undefined) f.hook = undefined;
  }

  onUserConsoleLog(): void {
    this.#event();
  }

  #event(): void {
    this.#lastEventAt = this.#now();
  }

  #rel(file: string): string {
    return relative(this.#root, file) || file;
  }

  /** One check (the timer calls it; tests call it with a fake clock). */
  check(): void {
    const now = this.#now();
    const verdict = findStalls(this.#running.values(), this.#lastEventAt, now, this.#limits);
    const marks =
      verdict.warn.length > 0 && this.#marksDir !== undefined
        ? readWorkerMarks(this.#marksDir)
        : [];
    for (const f of verdict.warn) {
      f.warned = true;
      const own = this.#markLines(
        marks.filter((m) => m.file === f.file),
        now,
      );
      this.#write(
        `\nwatchdog: ${this.#rel(f.file)} has been running for ${formatDuration(now - f.startedAt)}; ${this.#where(f, now)} (stalled at ${formatDuration(this.#limits.stallMs)}: ${STALL_ENV})\n${own.map((l) => `${l}\n`).join('')}`,
      );
    }
    for (const f of verdict.stalled) this.#onStalled(f, now);
    if (verdict.idle && verdict.stalled.length === 0) this.#onIdle(now);
  }

  #where(f: RunningFile, now: number): string {
    const parts: string[] = [];
    if (f.hook !== undefined) {
      parts.push(`in ${f.hook.name} of ${f.hook.of} for ${formatDuration(now - f.hook.startedAt)}`);
    }
    if (f.test !== undefined) {
      parts.push(`in test "${f.test.name}" for ${formatDuration(now - f.test.startedAt)}`);
    }
    if (parts.length === 0) {
      parts.push(
        f.lastFinished === undefined
          ? 'no test has started yet (importing the file or in beforeAll)'
          : `between tests or in afterAll; the last one that finished: "${f.lastFinished}"`,
      );
    }
    return parts.join('; ');
  }

  #markLines(marks: readonly WorkerMark[], now: number): string[] {
    return marks.map(
      (m) =>
        `  worker ${m.pid}: ${this.#rel(m.file)}, ${m.phase}${m.test === undefined ? '' : ` "${m.test}"`} since ${formatDuration(now - m.at)} (its own mark)`,
    );
  }

  #onStalled(f: RunningFile, now: number): void {
    this.#running.delete(f.file);
    this.stalledFiles.push(f.file);
    process.exitCode = 1;
    const all = this.#processes();
    const marks = this.#marksDir === undefined ? [] : readWorkerMarks(this.#marksDir);
    const workers = all.filter((p) => p.ppid === this.#rootPid && isVitestWorker(p));
    const mine = marks.filter((m) => m.file === f.file && workers.some((w) => w.pid === m.pid));
    const otherFiles = new Set(this.#running.keys());
    const victims =
      mine.length > 0
        ? mine.map((m) => m.pid)
        : // No mark: every worker not known to run another file that is still going.
          workers
            .filter((w) => !marks.some((m) => m.pid === w.pid && otherFiles.has(m.file)))
            .map((w) => w.pid);
    const lines = [
      '',
      '='.repeat(100),
      `STALLED TEST FILE: ${this.#rel(f.file)}`,
      `  running for ${formatDuration(now - f.startedAt)} (limit ${formatDuration(this.#limits.stallMs)}, ${STALL_ENV}); vitest's own timeouts did not end it`,
      `  ${this.#where(f, now)} (as vitest last reported it)`,
      ...this.#markLines(
        marks.filter((m) => victims.includes(m.pid)),
        now,
      ),
      `  worker(s) to kill: ${victims.length === 0 ? 'none found' : victims.join(', ')}${mine.length === 0 ? ' (no worker mark for this file: is test/support/watchdog-worker.ts in setupFiles?)' : ''}`,
      `  processes under vitest (pid ${this.#rootPid}):`,
      ...describeProcessTree(this.#rootPid, new Set(victims), all),
      '  action: the run fails; the worker(s) above and everything they started are SIGKILLed, vitest reports the file as failed and goes on',
      '='.repeat(100),
      '',
    ];
    this.#write(`${lines.join('\n')}\n`);
    for (const pid of victims) this.#kill(pid);
    this.#lastEventAt = now;
  }

  #onIdle(now: number): void {
    const all = this.#processes();
    const marks = this.#marksDir === undefined ? [] : readWorkerMarks(this.#marksDir);
    const workers = all.filter((p) => p.ppid === this.#rootPid).map((p) => p.pid);
    const lines = [
      '',
      '='.repeat(100),
      `STALLED TEST RUN: no test event for ${formatDuration(now - this.#lastEventAt)} (limit ${formatDuration(this.#limits.idleMs)}, ${IDLE_ENV})`,
      ...[...this.#running.values()].map(
        (f) =>
          `  running: ${this.#rel(f.file)} for ${formatDuration(now - f.startedAt)}; ${this.#where(f, now)}`,
      ),
      ...this.#markLines(marks, now),
      `  processes under vitest (pid ${this.#rootPid}):`,
      ...describeProcessTree(this.#rootPid, new Set(workers), all),
      '  action: every process under vitest is SIGKILLed and the run exits with status 1',
      '='.repeat(100),
      '',
    ];
    this.#write(`${lines.join('\n')}\n`);
    process.exitCode = 1;
    for (const pid of workers) this.#kill(pid);
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#exit();
  }
}
