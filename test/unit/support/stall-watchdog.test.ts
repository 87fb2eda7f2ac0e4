/**
 * The stall watchdog of the test run (test/support/stall-watchdog.ts): the pure decision with an
 * injected clock, the reporter's bookkeeping and actions with fake modules, processes and kill,
 * and the /proc readers against real child processes (a grandchild tree, a process blocked in
 * Atomics.wait, one blocked in recv on a loopback TCP socket).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ReportedHookContext, TestCase, TestModule } from 'vitest/node';
import {
  DEFAULT_STALL_LIMITS,
  descendantsOf,
  describeProcessTree,
  describeThreads,
  findStalls,
  formatDuration,
  killTree,
  listProcesses,
  type ProcInfo,
  parseProcStat,
  type RunningFile,
  StallWatchdog,
  stallLimitsFromEnv,
  WATCHDOG_DIR_ENV,
} from '../../support/stall-watchdog.js';

const MIN = 60_000;
const LIMITS = { warnMs: 3 * MIN, stallMs: 6 * MIN, idleMs: 10 * MIN };

function file(name: string, startedAt: number, warned = false): RunningFile {
  return { file: `/repo/test/${name}`, startedAt, warned };
}

describe('stallLimitsFromEnv', () => {
  it('defaults to 6 min per file (warning at 3) and 10 min of silence', () => {
    expect(stallLimitsFromEnv({})).toEqual(DEFAULT_STALL_LIMITS);
    expect(DEFAULT_STALL_LIMITS).toEqual({ warnMs: 180_000, stallMs: 360_000, idleMs: 600_000 });
  });

  it('reads SPIRE_EDGE_TEST_STALL_MS and SPIRE_EDGE_TEST_IDLE_MS; 0 turns a check off', () => {
    expect(
      stallLimitsFromEnv({ SPIRE_EDGE_TEST_STALL_MS: '1000', SPIRE_EDGE_TEST_IDLE_MS: ' 0 ' }),
    ).toEqual({ warnMs: 500, stallMs: 1000, idleMs: 0 });
  });

  it('rejects a value that is not a whole number, naming the variable', () => {
    expect(() => stallLimitsFromEnv({ SPIRE_EDGE_TEST_STALL_MS: '6m' })).toThrow(
      new TypeError(
        "SPIRE_EDGE_TEST_STALL_MS must be a whole number of milliseconds (0: off), got '6m'",
      ),
    );
    expect(() => stallLimitsFromEnv({ SPIRE_EDGE_TEST_IDLE_MS: '-1' })).toThrow(
      /SPIRE_EDGE_TEST_IDLE_MS must be a whole number/,
    );
  });
});

describe('findStalls (injected clock)', () => {
  const t0 = 1_700_000_000_000;

  it('nothing before the warning limit; warns once past it; stalls past the stall limit', () => {
    const a = file('a.test.ts', t0);
    expect(findStalls([a], t0, t0 + 3 * MIN - 1, LIMITS)).toEqual({
      warn: [],
      stalled: [],
      idle: false,
    });
    expect(findStalls([a], t0, t0 + 3 * MIN, LIMITS).warn).toEqual([a]);
    a.warned = true;
    expect(findStalls([a], t0 + 3 * MIN, t0 + 6 * MIN - 1, LIMITS)).toEqual({
      warn: [],
      stalled: [],
      idle: false,
    });
    expect(findStalls([a], t0 + 3 * MIN, t0 + 6 * MIN, LIMITS).stalled).toEqual([a]);
  });

  it('judges each file by its own start, oldest first, and a stalled file is not also warned', () => {
    const old = file('old.test.ts', t0);
    const mid = file('mid.test.ts', t0 + 2 * MIN);
    const fresh = file('fresh.test.ts', t0 + 6 * MIN);
    const older = file('older.test.ts', t0 - MIN);
    const v = findStalls([fresh, mid, old, older], t0 + 6 * MIN, t0 + 6 * MIN + 1, LIMITS);
    expect(v.stalled.map((f) => f.file)).toEqual([
      '/repo/test/older.test.ts',
      '/repo/test/old.test.ts',
    ]);
    expect(v.warn.map((f) => f.file)).toEqual(['/repo/test/mid.test.ts']);
    expect(v.idle).toBe(false);
  });

  it('idle when no event came for idleMs, whatever the files', () => {
    expect(findStalls([], t0, t0 + 10 * MIN - 1, LIMITS).idle).toBe(false);
    expect(findStalls([], t0, t0 + 10 * MIN, LIMITS).idle).toBe(true);
  });

  it('a limit of 0 never fires', () => {
    const off = { warnMs: 0, stallMs: 0, idleMs: 0 };
    expect(findStalls([file('a.test.ts', 0)], 0, 1e12, off)).toEqual({
      warn: [],
      stalled: [],
      idle: false,
    });
  });

  it('formatDuration', () => {
    expect(formatDuration(59_400)).toBe('59 s');
    expect(formatDuration(372_000)).toBe('6 min 12 s');
    expect(formatDuration(-5)).toBe('0 s');
  });
});

describe('/proc parsing', () => {
  it('parseProcStat: a command name with spaces and parentheses', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 4)).join(' ');
    const s = parseProcStat(`4242 (a (b) c) D 17 ${fields.split(' ').slice(1).join(' ')}`);
    expect(s).toMatchObject({ pid: 4242, comm: 'a (b) c', state: 'D', ppid: 17 });
    // field 22 (starttime) is the 20th after the command name
    expect(s?.startTicks).toBe(22);
    expect(parseProcStat('garbage')).toBeUndefined();
  });

  it('descendantsOf: the tree below a pid, parents before children, with depth', () => {
    const p = (pid: number, ppid: number): ProcInfo => ({
      pid,
      ppid,
      state: 'S',
      comm: 'x',
      startTicks: pid,
      wchan: '-',
      cmdline: `cmd ${pid}`,
    });
    const all = [p(1, 0), p(10, 1), p(12, 10), p(11, 10), p(13, 12), p(20, 1), p(30, 99)];
    expect(descendantsOf(10, all).map((d) => [d.proc.pid, d.depth])).toEqual([
      [11, 1],
      [12, 1],
      [13, 2],
    ]);
    expect(descendantsOf(99, all).map((d) => d.proc.pid)).toEqual([30]);
    expect(descendantsOf(13, all)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// The reporter with fakes

function fakeModule(path: string): TestModule {
  return { type: 'module', moduleId: path } as unknown as TestModule;
}
function fakeCase(module: TestModule, fullName: string): TestCase {
  return { type: 'test', module, fullName } as unknown as TestCase;
}

describe('StallWatchdog (fake clock, processes and kill)', () => {
  const marksDir = mkdtempSync(join(tmpdir(), 'watchdog-test-'));
  const savedExitCode = process.exitCode;
  afterEach(() => {
    process.exitCode = savedExitCode;
  });
  afterAll(() => rmSync(marksDir, { recursive: true, force: true }));

  const ROOT_PID = 5000;
  const proc = (pid: number, ppid: number, cmdline: string, state = 'S'): ProcInfo => ({
    pid,
    ppid,
    state,
    comm: 'node',
    startTicks: 1,
    wchan: 'futex_do_wait',
    cmdline,
  });
  const WORKER = '/usr/bin/node /repo/node_modules/vitest/dist/workers/forks.js';
  const processes = (): ProcInfo[] => [
    proc(ROOT_PID, 1, 'node /repo/node_modules/.bin/vitest run'),
    proc(5001, ROOT_PID, WORKER),
    proc(5002, ROOT_PID, WORKER),
    proc(5003, 5001, 'swtpm socket --tpm2 --server type=tcp,port=40001', 'T'),
  ];

  function setup() {
    let now = 1_000_000;
    const out: string[] = [];
    const killed: number[] = [];
    let exited = 0;
    const saved = process.env[WATCHDOG_DIR_ENV];
    process.env[WATCHDOG_DIR_ENV] = marksDir;
    const w = new StallWatchdog({
      limits: LIMITS,
      now: () => now,
      write: (t) => out.push(t),
      rootPid: ROOT_PID,
      processes,
      kill: (pid) => {
        killed.push(pid);
        return [pid];
      },
      exit: () => {
        exited++;
      },
      intervalMs: 3_600_000,
    });
    w.onInit({ config: { root: '/repo' } });
    if (saved === undefined) delete process.env[WATCHDOG_DIR_ENV];
    else process.env[WATCHDOG_DIR_ENV] = saved;
    return {
      w,
      out,
      killed,
      exited: () => exited,
      advance: (ms: number) => {
        now += ms;
      },
      now: () => now,
    };
  }

  it('tracks the test and hook in progress, warns once, then reports, kills and fails the stalled file', () => {
    const { w, out, killed, advance, now } = setup();
    const stuck = fakeModule('/repo/test/integration/stuck.test.ts');
    const fine = fakeModule('/repo/test/unit/fine.test.ts');
    // the stuck file's worker (5001) marked itself; the other worker runs the fine file
    writeFileSync(
      join(marksDir, '5001'),
      JSON.stringify({
        pid: 5001,
        file: stuck.moduleId,
        phase: 'in test (or its beforeEach)',
        test: 'tpm > quote',
        at: now(),
      }),
    );
    writeFileSync(
      join(marksDir, '5002'),
      JSON.stringify({ pid: 5002, file: fine.moduleId, phase: 'loading', at: now() }),
    );
    w.onTestRunStart([]);
    w.onTestModuleQueued(stuck);
    w.onHookStart({ name: 'beforeAll', entity: stuck } as unknown as ReportedHookContext);
    expect(w.running.get(stuck.moduleId)?.hook).toMatchObject({
      name: 'beforeAll',
      of: '(the file)',
    });
    w.onHookEnd({ name: 'beforeAll', entity: stuck } as unknown as ReportedHookContext);
    w.onTestCaseReady(fakeCase(stuck, 'tpm > quote'));

    advance(2 * MIN);
    w.onTestModuleQueued(fine);
    w.check();
    expect(out).toEqual([]);

    advance(MIN);
    w.check();
    expect(out).toHaveLength(1);
    expect(out[0]).toContain(
      'watchdog: test/integration/stuck.test.ts has been running for 3 min 0 s; in test "tpm > quote" for 3 min 0 s',
    );
    expect(out[0]).toContain(
      '\n  worker 5001: test/integration/stuck.test.ts, in test (or its beforeEach) "tpm > quote" since 3 min 0 s (its own mark)\n',
    );
    w.check();
    expect(out).toHaveLength(1); // warned once

    advance(3 * MIN);
    w.check();
    // the fine file (queued 4 min ago) gets its warning; the stuck one its block
    expect(out).toHaveLength(3);
    expect(out[1]).toContain('watchdog: test/unit/fine.test.ts has been running for 4 min 0 s');
    const block = out[2]!;
    expect(block).toContain('STALLED TEST FILE: test/integration/stuck.test.ts');
    expect(block).toContain('running for 6 min 0 s (limit 6 min 0 s, SPIRE_EDGE_TEST_STALL_MS)');
    expect(block).toContain('in test "tpm > quote" for 6 min 0 s');
    expect(block).toContain(
      'worker 5001: test/integration/stuck.test.ts, in test (or its beforeEach) "tpm > quote" since 6 min 0 s',
    );
    expect(block).toContain('worker(s) to kill: 5001\n');
    expect(block).toMatch(/5003 +5001 +T .*swtpm socket --tpm2/);
    expect(killed).toEqual([5001]);
    expect(process.exitCode).toBe(1);
    expect([...w.running.keys()]).toEqual([fine.moduleId]);
    expect(w.stalledFiles).toEqual([stuck.moduleId]);

    w.onTestModuleEnd(fine);
    w.onTestRunEnd();
    expect(out[3]).toContain(
      'watchdog: 1 test file(s) stalled and were killed (see the STALLED blocks above): test/integration/stuck.test.ts',
    );
  });

  it('without a worker mark for the file, kills the workers not known to run another file', () => {
    const { w, out, killed, advance, now } = setup();
    rmSync(join(marksDir, '5001'), { force: true });
    const stuck = fakeModule('/repo/test/e2e/import-hang.test.ts');
    const fine = fakeModule('/repo/test/unit/fine.test.ts');
    writeFileSync(
      join(marksDir, '5002'),
      JSON.stringify({ pid: 5002, file: fine.moduleId, phase: 'loading', at: now() }),
    );
    w.onTestRunStart([]);
    w.onTestModuleQueued(stuck);
    w.onTestModuleQueued(fine);
    advance(6 * MIN);
    w.onTestModuleQueued(fine); // the fine file restarted its clock (fake)
    w.check();
    expect(killed).toEqual([5001]);
    expect(out.join('')).toContain('no test has started yet (importing the file or in beforeAll)');
    expect(out.join('')).toContain('no worker mark for this file');
    rmSync(join(marksDir, '5002'), { force: true });
  });

  it('a finished file is forgotten; no events for idleMs: reports, kills every worker and exits', () => {
    const { w, out, killed, advance, exited } = setup();
    const m = fakeModule('/repo/test/unit/a.test.ts');
    w.onTestRunStart([]);
    w.onTestModuleQueued(m);
    w.onTestCaseResult(fakeCase(m, 'a > b'));
    w.onTestModuleEnd(m);
    advance(10 * MIN - 1);
    w.check();
    expect(out).toEqual([]);
    advance(1);
    w.check();
    expect(out[0]).toContain(
      'STALLED TEST RUN: no test event for 10 min 0 s (limit 10 min 0 s, SPIRE_EDGE_TEST_IDLE_MS)',
    );
    expect(killed).toEqual([5001, 5002]);
    expect(exited()).toBe(1);
    expect(process.exitCode).toBe(1);
  });

  it('is off under a debugger (vitest --inspect)', () => {
    const w = new StallWatchdog({ limits: LIMITS, write: () => {}, rootPid: ROOT_PID, processes });
    const saved = process.env[WATCHDOG_DIR_ENV];
    process.env[WATCHDOG_DIR_ENV] = marksDir;
    w.onInit({ config: { root: '/repo', inspector: { enabled: true } } });
    if (saved === undefined) delete process.env[WATCHDOG_DIR_ENV];
    else process.env[WATCHDOG_DIR_ENV] = saved;
    expect(w.limits).toEqual({ warnMs: 0, stallMs: 0, idleMs: 0 });
  });

  it('any event resets the idle clock', () => {
    const { w, out, advance } = setup();
    w.onTestRunStart([]);
    advance(9 * MIN);
    w.onUserConsoleLog();
    advance(9 * MIN);
    w.check();
    expect(out).toEqual([]);
    w.onTestRunEnd();
  });
});

// ---------------------------------------------------------------------------------------------
// Real processes

function exited(child: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    else child.once('exit', () => r());
  });
}

async function until<T>(what: string, f: () => T | undefined, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function goneOrZombie(pid: number): boolean {
  if (!existsSync(`/proc/${pid}`)) return true;
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.state === 'Z';
  } catch {
    return true;
  }
}

describe('/proc readers and killTree on real processes', () => {
  const children: ChildProcess[] = [];
  let server: Server | undefined;
  const sockets: Socket[] = [];
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(children.map(exited));
    for (const s of sockets) s.destroy();
    await new Promise((r) => (server === undefined ? r(undefined) : server.close(r)));
  });

  it('lists a child and grandchild under this process and kills the tree, grandchild first', async () => {
    // `read` (a builtin, on a pipe never written) keeps sh itself waiting, not its child
    const sh = spawn('sh', ['-c', 'sleep 61 & read x'], { stdio: ['pipe', 'ignore', 'ignore'] });
    children.push(sh);
    const shPid = sh.pid!;
    const grand = await until('the grandchild', () =>
      listProcesses().find((p) => p.ppid === sh.pid && p.cmdline === 'sleep 61'),
    );
    const tree = describeProcessTree(process.pid).join('\n');
    expect(tree).toMatch(
      new RegExp(`\\n  ${sh.pid} +${process.pid} +[RS] .* {4}sh -c sleep 61 & read x`),
    );
    expect(tree).toMatch(new RegExp(`\\n  ${grand.pid} +${sh.pid} +[RS] .* {6}sleep 61`));

    // a pid whose start time differs (a reused pid) is left alone
    const all = listProcesses();
    const forged = all.map((p) => (p.pid === sh.pid ? { ...p, startTicks: p.startTicks + 1 } : p));
    expect(killTree(shPid, forged)).toEqual([grand.pid]);
    await until('the grandchild to die', () => (goneOrZombie(grand.pid) ? true : undefined));
    expect(sh.exitCode).toBeNull();
    expect(killTree(shPid)).toEqual([shPid]);
    await exited(sh);
    expect(sh.signalCode).toBe('SIGKILL');
  });

  it('names a main thread blocked in Atomics.wait as a blocked event loop', async () => {
    const node = spawn(
      process.execPath,
      ['-e', 'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)'],
      { stdio: 'ignore' },
    );
    children.push(node);
    const lines = await until('the futex wait', () => {
      const l = describeThreads(node.pid!);
      // wait for the thread to be asleep in it: just before, /proc shows it running (R)
      return /: S \S+ futex$/.test(l[0] ?? '') ? l : undefined;
    });
    expect(lines[0]).toMatch(/^ {4}main thread: S \S+ futex$/);
    expect(lines[1]).toContain('the event loop is blocked by a synchronous call');
  });

  it('names the TCP peer of a thread blocked in recv, and an idle event loop as idle', async () => {
    server = createServer((s) => sockets.push(s)); // accepts and never answers
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const py = spawn(
      'python3',
      ['-c', `import socket; s = socket.create_connection(("127.0.0.1", ${port})); s.recv(1)`],
      { stdio: 'ignore' },
    );
    children.push(py);
    const main = await until('the recv', () => {
      const l = describeThreads(py.pid!)[0];
      return l?.includes('recv') === true && l.includes(': S ') ? l : undefined;
    });
    expect(main).toMatch(
      new RegExp(
        `^ {4}main thread: S \\S+ recv(from|msg)?\\(fd \\d+ = tcp 127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:${port}\\)$`,
      ),
    );

    const idle = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)'], { stdio: 'ignore' });
    children.push(idle);
    const lines = await until('the idle loop', () => {
      const l = describeThreads(idle.pid!);
      return l[1]?.includes('idle') === true ? l : undefined;
    });
    expect(lines[1]).toContain('the event loop is idle');
  });
});
