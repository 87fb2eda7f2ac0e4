import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  cachedDir,
  freePort,
  freePortPair,
  isAlive,
  listensOn,
  makeTempDir,
  removeTempDir,
  requireBinary,
  run,
  spawnService,
} from '../harness/common.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const sh = requireBinary('sh', 'dash');

/** Gone, or a zombie left to PID 1 (which does not reap on these machines): not running. */
function notRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

async function eventually(check: () => boolean, ms = 3_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

describe('harness common', () => {
  it('requireBinary names the Debian package to install', () => {
    expect(requireBinary('sh', 'dash')).toMatch(/^\/.*\/sh$/);
    expect(() => requireBinary('spire-edge-no-such-tool', 'spire-edge-pkg')).toThrow(
      expect.objectContaining({
        code: 'ERR_HARNESS_MISSING_COMPONENT',
        message:
          'spire-edge-no-such-tool not found: install Debian package spire-edge-pkg (scripts/setup.sh does)',
      }),
    );
  });

  it('run returns output and exit status, and throws with stderr unless allowed', async () => {
    const ok = await run(sh, ['-c', 'cat; printf err >&2'], { input: 'in', env: { X: '1' } });
    expect(ok).toMatchObject({ stdout: 'in', stderr: 'err', code: 0 });
    const failed = run(sh, ['-c', 'echo boom >&2; exit 3']);
    await expect(failed).rejects.toMatchObject({
      code: 'ERR_HARNESS_COMMAND_FAILED',
      message: expect.stringContaining('boom'),
      details: expect.objectContaining({ code: 3 }),
    });
    const allowed = await run(sh, ['-c', 'exit 4'], { allowFailure: true });
    expect(allowed.code).toBe(4);
    await expect(run(sh, ['-c', 'sleep 5'], { timeoutMs: 50 })).rejects.toMatchObject({
      code: 'ERR_HARNESS_COMMAND_TIMEOUT',
    });
  });

  it('freePortPair gives P with P+1 free; listensOn tells which process listens', async () => {
    const port = await freePortPair();
    const server = net.createServer().listen(port + 1, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      expect(await listensOn(process.pid, port + 1)).toBe(true);
      expect(await listensOn(process.pid, port)).toBe(false);
      expect(await listensOn(1, port + 1)).toBe(false);
    } finally {
      server.close();
    }
  });

  it('spawnService reports an early exit with the captured output', async () => {
    await expect(
      spawnService({
        name: 'early',
        command: sh,
        args: ['-c', 'echo "config is broken" >&2; exit 2'],
        ready: async () => false,
      }),
    ).rejects.toMatchObject({
      code: 'ERR_HARNESS_START_FAILED',
      message: expect.stringMatching(/early exited \(code 2\).*config is broken/s),
    });
    await expect(
      spawnService({
        name: 'busy',
        command: sh,
        args: ['-c', 'echo "Error: Address already in use" >&2; exit 1'],
        ready: async () => false,
      }),
    ).rejects.toMatchObject({ code: 'ERR_HARNESS_PORT_IN_USE' });
  });

  it('spawnService times out, kills the child, and stop() escalates to SIGKILL', async () => {
    let probed = 0;
    const started = spawnService({
      name: 'never-ready',
      command: requireBinary('sleep', 'coreutils'),
      args: ['30'],
      ready: async (pid) => {
        probed = pid;
        throw new Error('not listening yet');
      },
      readyTimeoutMs: 200,
    });
    await expect(started).rejects.toMatchObject({
      code: 'ERR_HARNESS_START_TIMEOUT',
      message: expect.stringContaining('not listening yet'),
    });
    expect(isAlive(probed)).toBe(false);

    // Ignores SIGTERM (an ignored signal stays ignored across exec).
    const stubborn = await spawnService({
      name: 'stubborn',
      command: sh,
      args: ['-c', 'trap "" TERM; echo up; exec sleep 30'],
      ready: async (_pid, output) => output.includes('up'),
      stopGraceMs: 100,
    });
    expect(stubborn.running).toBe(true);
    const t0 = Date.now();
    await stubborn.stop();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    expect(stubborn.running).toBe(false);
    expect(isAlive(stubborn.pid)).toBe(false);
    expect(await stubborn.exited).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('leaves no running service behind when the test process exits or is killed', async () => {
    const script = (exit: string) => `
      import { startMosquitto } from './test/harness/mosquitto.ts';
      const m = await startMosquitto();
      process.stdout.write(JSON.stringify({ pid: m.pid, dir: m.dir }) + '\\n');
      ${exit}`;
    const launch = (exit: string) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script(exit)],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const info = new Promise<{ pid: number; dir: string }>((resolve, reject) => {
        child.stdout.once('data', (b: Buffer) => resolve(JSON.parse(b.toString())));
        child.once('exit', (code) => reject(new Error(`child exited (${code}) before starting`)));
      });
      return { child, info };
    };
    // 1. process.exit(): the 'exit' hook SIGKILLs the broker and removes its temp dir.
    // 2. SIGKILL of the test process (no hooks run): --pdeathsig kills the broker.
    const exiting = launch('process.exit(0);');
    const killed = launch('setInterval(() => {}, 1000);');
    const [a, b] = await Promise.all([exiting.info, killed.info]);
    killed.child.kill('SIGKILL');
    expect(await eventually(() => notRunning(a.pid))).toBe(true);
    expect(existsSync(a.dir)).toBe(false);
    expect(await eventually(() => notRunning(b.pid))).toBe(true);
    await rm(b.dir, { recursive: true, force: true });
  });

  it('cachedDir builds once under concurrency and rebuilds a damaged entry', async () => {
    const name = `harness-test-${process.pid}`;
    let builds = 0;
    const build = async (dir: string) => {
      builds++;
      await writeFile(join(dir, 'content'), 'x');
      await new Promise((r) => setTimeout(r, 20));
    };
    const [one, two] = await Promise.all([
      cachedDir(name, ['k'], ['content'], build),
      cachedDir(name, ['k'], ['content'], build),
    ]);
    expect(one).toBe(two);
    expect(builds).toBeLessThanOrEqual(2);
    expect(readFileSync(join(one, 'content'), 'utf8')).toBe('x');
    const before = builds;
    expect(await cachedDir(name, ['k'], ['content'], build)).toBe(one);
    expect(builds).toBe(before);
    await rm(join(one, 'content'));
    expect(await cachedDir(name, ['k'], ['content'], build)).toBe(one);
    expect(builds).toBe(before + 1);
    expect(existsSync(join(one, 'content'))).toBe(true);
    await rm(one, { recursive: true, force: true });
  });

  it('makeTempDir makes private dirs that removeTempDir removes', async () => {
    const dir = await makeTempDir('harness-common');
    expect(existsSync(dir)).toBe(true);
    await removeTempDir(dir);
    expect(existsSync(dir)).toBe(false);
    const mem = await makeTempDir('harness-common', { inMemory: true });
    expect(['/dev/shm', tmpdir()]).toContain(dirname(mem));
    await removeTempDir(mem);
    await expect(makeTempDir('../escape')).rejects.toThrow(TypeError);
    expect(typeof (await freePort())).toBe('number');
  });
});
