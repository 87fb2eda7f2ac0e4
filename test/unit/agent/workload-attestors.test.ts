/**
 * The unix and systemd workload attestors and the combinator: against fake /proc trees
 * (temp directories with status, cgroup and exe files) for exact selector lists, and
 * against real processes of this machine (a `sleep` child) for the live /proc paths.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { combineWorkloadAttestors } from '../../../src/agent/workload-attestors/combine.js';
import { createSystemdWorkloadAttestor } from '../../../src/agent/workload-attestors/systemd.js';
import { createUnixWorkloadAttestor } from '../../../src/agent/workload-attestors/unix.js';
import type { WorkloadAttestor } from '../../../src/agent/workload-attestors/workload-attestor.js';
import { SpireEdgeError } from '../../../src/common/errors.js';
import { createLogger } from '../../../src/common/log.js';

const dir = mkdtempSync(join(tmpdir(), 'wl-attestors-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const PID = 4242;
const proc = join(dir, 'proc');
const exeFile = join(dir, 'workload-bin');
const exeBytes = Buffer.from('#!/bin/sh\necho workload\n'.repeat(100));
writeFileSync(exeFile, exeBytes);
mkdirSync(join(proc, String(PID)), { recursive: true });
writeFileSync(
  join(proc, String(PID), 'status'),
  'Name:\tw\nUid:\t1000\t1001\t1001\t1001\nGid:\t2000\t2001\t2001\t2001\nGroups:\t2001 27 3000 \n',
);
symlinkSync(exeFile, join(proc, String(PID), 'exe'));
const passwd = join(dir, 'passwd');
const group = join(dir, 'group');
writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/sh\nalice:x:1001:2001::/home/alice:/bin/sh\n');
writeFileSync(group, 'root:x:0:\nalice:x:2001:\nsudo:x:27:alice\n');

const fakeUnix = (extra: Parameters<typeof createUnixWorkloadAttestor>[0] = {}) =>
  createUnixWorkloadAttestor({ procRoot: proc, passwdPath: passwd, groupPath: group, ...extra });

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err instanceof SpireEdgeError ? err.code : `not coded: ${String(err)}`;
  }
}

describe('unix workload attestor', () => {
  it('emits uid, user, gid, group and supplementary groups from the effective IDs', async () => {
    const selectors = await fakeUnix().attest(PID);
    expect(selectors.every((s) => s.type === 'unix')).toBe(true);
    expect(selectors.map((s) => s.value)).toEqual([
      'uid:1001',
      'user:alice',
      'gid:2001',
      'group:alice',
      'supplementary_gid:2001',
      'supplementary_group:alice',
      'supplementary_gid:27',
      'supplementary_group:sudo',
      'supplementary_gid:3000',
    ]);
  });

  it('adds path and sha256 with discover_workload_path, honouring workload_size_limit', async () => {
    const sha = createHash('sha256').update(exeBytes).digest('hex');
    const values = (await fakeUnix({ discoverWorkloadPath: true }).attest(PID)).map((s) => s.value);
    expect(values.slice(-2)).toEqual([`path:${exeFile}`, `sha256:${sha}`]);
    // limit above the size: hashed; negative: never hashed
    const limited = await fakeUnix({
      discoverWorkloadPath: true,
      workloadSizeLimit: exeBytes.length,
    }).attest(PID);
    expect(limited.at(-1)?.value).toBe(`sha256:${sha}`);
    const noHash = await fakeUnix({ discoverWorkloadPath: true, workloadSizeLimit: -1 }).attest(
      PID,
    );
    expect(noHash.at(-1)?.value).toBe(`path:${exeFile}`);
    // limit below the size: the attestation fails, as SPIRE's does
    const err = await fakeUnix({ discoverWorkloadPath: true, workloadSizeLimit: 10 })
      .attest(PID)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'ERR_WORKLOAD_ATTESTOR_FAILED',
      details: { attestor: 'unix' },
    });
    expect((err as Error).message).toMatch(/exceeds workload_size_limit/);
  });

  it('re-reads /etc/passwd when it changes', async () => {
    const a = fakeUnix();
    expect((await a.attest(PID)).map((s) => s.value)).toContain('user:alice');
    writeFileSync(
      passwd,
      'root:x:0:0:root:/root:/bin/sh\nbob-renamed:x:1001:2001::/home/b:/bin/sh\n',
    );
    // a different size is enough to notice even within the same mtime tick
    const values = (await a.attest(PID)).map((s) => s.value);
    expect(values).toContain('user:bob-renamed');
    expect(values).not.toContain('user:alice');
    writeFileSync(
      passwd,
      'root:x:0:0:root:/root:/bin/sh\nalice:x:1001:2001::/home/alice:/bin/sh\n',
    );
  });

  it('fails with a coded error for a process that does not exist, and refuses bad PIDs', async () => {
    expect(await codeOf(fakeUnix().attest(999_999))).toBe('ERR_WORKLOAD_ATTESTOR_FAILED');
    await expect(fakeUnix().attest(0)).rejects.toThrow(TypeError);
    await expect(fakeUnix().attest(1.5)).rejects.toThrow(TypeError);
    expect(() => createUnixWorkloadAttestor({ workloadSizeLimit: 1.5 })).toThrow(TypeError);
  });

  it('attests a real process from the real /proc, hashing its executable', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.push(child);
    await new Promise((r) => child.once('spawn', r));
    const values = (
      await createUnixWorkloadAttestor({ discoverWorkloadPath: true }).attest(child.pid!)
    ).map((s) => s.value);
    expect(values[0]).toBe(`uid:${process.geteuid!()}`);
    expect(values).toContain(`gid:${process.getegid!()}`);
    const exe = realpathSync('/usr/bin/sleep');
    expect(values).toContain(`path:${exe}`);
    const sha = createHash('sha256').update(readFileSync(exe)).digest('hex');
    expect(values.at(-1)).toBe(`sha256:${sha}`);
    child.kill('SIGKILL');
  });
});

describe('systemd workload attestor', () => {
  const sproc = join(dir, 'sproc');
  const cg = (pid: number, text: string) => {
    mkdirSync(join(sproc, String(pid)), { recursive: true });
    writeFileSync(join(sproc, String(pid), 'cgroup'), text);
  };
  cg(10, '0::/system.slice/nginx.service\n');
  cg(11, '0::/\n');
  cg(12, '0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.service\n');
  cg(13, 'garbage\n');

  it('without a running systemd: only systemd:id, derived from the cgroup', async () => {
    const a = createSystemdWorkloadAttestor({
      procRoot: sproc,
      systemdRunning: async () => false,
      fragmentPath: async () => {
        throw new Error('must not be asked');
      },
    });
    expect(await a.attest(10)).toEqual([{ type: 'systemd', value: 'id:nginx.service' }]);
    expect(await a.attest(12)).toEqual([{ type: 'systemd', value: 'id:user@1000.service' }]);
    expect(await a.attest(11)).toEqual([]);
    expect(await codeOf(a.attest(13))).toBe('ERR_WORKLOAD_ATTESTOR_FAILED');
    expect(await codeOf(a.attest(14))).toBe('ERR_WORKLOAD_ATTESTOR_FAILED');
  });

  it('with systemd running: adds fragment_path read through systemctl show', async () => {
    const fake = join(dir, 'systemctl');
    writeFileSync(
      fake,
      `#!/bin/sh\n[ "$1 $2 $3 $4" = "show -p FragmentPath --" ] || exit 3\necho "FragmentPath=/lib/systemd/system/$5"\n`,
    );
    chmodSync(fake, 0o755);
    const a = createSystemdWorkloadAttestor({
      procRoot: sproc,
      systemdRunning: async () => true,
      systemctl: fake,
    });
    expect(await a.attest(10)).toEqual([
      { type: 'systemd', value: 'id:nginx.service' },
      { type: 'systemd', value: 'fragment_path:/lib/systemd/system/nginx.service' },
    ]);
    const broken = createSystemdWorkloadAttestor({
      procRoot: sproc,
      systemdRunning: async () => true,
      systemctl: join(dir, 'no-such-systemctl'),
    });
    expect(await codeOf(broken.attest(10))).toBe('ERR_WORKLOAD_ATTESTOR_FAILED');
  });
});

describe('combineWorkloadAttestors', () => {
  const fixed = (name: string, values: string[], delayMs = 0): WorkloadAttestor => ({
    name,
    attest: async () => {
      await new Promise((r) => setTimeout(r, delayMs));
      return values.map((value) => ({ type: name, value }));
    },
  });
  const failing = (name: string): WorkloadAttestor => ({
    name,
    attest: async () => {
      throw new Error(`${name} broke`);
    },
  });

  it('unions selectors in attestor order, without duplicates', async () => {
    const c = combineWorkloadAttestors([
      fixed('unix', ['uid:1', 'gid:2', 'uid:1'], 5),
      fixed('docker', ['label:a:b']),
    ]);
    expect(await c.attest(7)).toEqual([
      { type: 'unix', value: 'uid:1' },
      { type: 'unix', value: 'gid:2' },
      { type: 'docker', value: 'label:a:b' },
    ]);
    expect(await combineWorkloadAttestors([]).attest(7)).toEqual([]);
  });

  it('keeps the others when one fails (logged); fails only when all fail', async () => {
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l), format: 'json' });
    const c = combineWorkloadAttestors([failing('docker'), fixed('unix', ['uid:1'])], { log });
    expect(await c.attest(7)).toEqual([{ type: 'unix', value: 'uid:1' }]);
    expect(lines.some((l) => l.includes('"attestor":"docker"') && l.includes('docker broke'))).toBe(
      true,
    );
    const all = combineWorkloadAttestors([failing('docker'), failing('unix')]);
    const err = await all.attest(7).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_WORKLOAD_ATTESTATION_FAILED' });
    expect((err as Error).message).toMatch(/docker: docker broke; unix: unix broke/);
  });

  it('bounds the attestation by its deadline and by the caller signal', async () => {
    const stuck: WorkloadAttestor = { name: 'stuck', attest: () => new Promise(() => {}) };
    const c = combineWorkloadAttestors([stuck], { timeoutMs: 50 });
    expect(await codeOf(c.attest(7))).toBe('ERR_WORKLOAD_ATTESTATION_DEADLINE_EXCEEDED');
    const ac = new AbortController();
    const p = combineWorkloadAttestors([stuck]).attest(7, { signal: ac.signal });
    ac.abort(new SpireEdgeError('ERR_TEST_ABORTED', 'stop'));
    expect(await codeOf(p)).toBe('ERR_TEST_ABORTED');
    expect(() => combineWorkloadAttestors([fixed('a', []), fixed('a', [])])).toThrow(TypeError);
  });
});
