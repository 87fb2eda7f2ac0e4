/**
 * The server's firmware policy directory: read at start, re-read when it changes, an invalid
 * re-read keeps the previous set (and is reported once), SHA-1 policies need allow_sha1.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../src/common/clock.js';
import { createLogger } from '../../../../src/common/log.js';
import {
  openPolicyDirectory,
  POLICY_RECHECK_MS,
} from '../../../../src/server/attestation/policy-directory.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'policies-'));
  dirs.push(d);
  return d;
}

const policy = (name: string, bank = 'sha256', size = 32) =>
  JSON.stringify({ name, pcrs: { [bank]: { 0: ['00'.repeat(size)] } } });

function setup(path: string, allowSha1 = false) {
  const clock = new ManualClock(Date.UTC(2026, 10, 22));
  const lines: string[] = [];
  const log = createLogger({ format: 'json', write: (l) => lines.push(l) });
  return { clock, lines, open: () => openPolicyDirectory({ path, allowSha1, clock, log }) };
}

describe('openPolicyDirectory', () => {
  it('a missing directory means no policies', async () => {
    const { open } = setup(join(tempDir(), 'absent'));
    expect(await (await open()).current()).toEqual([]);
  });

  it('loads every *.json file and ignores other files', async () => {
    const d = tempDir();
    writeFileSync(join(d, 'a.json'), policy('fw-a'));
    writeFileSync(join(d, 'b.json'), policy('fw-b'));
    writeFileSync(join(d, 'README.md'), 'not a policy');
    const { open } = setup(d);
    const names = (await (await open()).current()).map((p) => p.name).sort();
    expect(names).toEqual(['fw-a', 'fw-b']);
  });

  it('an invalid policy at start is ERR_POLICY_INVALID naming the file and field', async () => {
    const d = tempDir();
    writeFileSync(
      join(d, 'bad.json'),
      JSON.stringify({ name: 'x', pcrs: { sha256: { 0: ['00'] } } }),
    );
    const { open } = setup(d);
    await expect(open()).rejects.toMatchObject({
      code: 'ERR_POLICY_INVALID',
      message: expect.stringMatching(/bad\.json: pcrs\.sha256\.0\[0\] has 2 hex digits/),
    });
  });

  it('refuses a SHA-1 policy unless allow_sha1 is set', async () => {
    const d = tempDir();
    writeFileSync(join(d, 'old.json'), policy('fw-old', 'sha1', 20));
    await expect(setup(d).open()).rejects.toMatchObject({
      code: 'ERR_POLICY_INVALID',
      message: expect.stringMatching(/old\.json: pcrs\.sha1: .*allow_sha1/),
    });
    expect((await (await setup(d, true).open()).current()).map((p) => p.name)).toEqual(['fw-old']);
  });

  it('re-reads a changed directory at most once a second; a bad re-read keeps the old set', async () => {
    const d = tempDir();
    writeFileSync(join(d, 'a.json'), policy('fw-a'));
    const { clock, lines, open } = setup(d);
    const dir = await open();
    expect((await dir.current()).map((p) => p.name)).toEqual(['fw-a']);

    writeFileSync(join(d, 'b.json'), policy('fw-b'));
    // Within the recheck interval: not looked at yet.
    expect((await dir.current()).map((p) => p.name)).toEqual(['fw-a']);
    clock.advance(POLICY_RECHECK_MS);
    expect((await dir.current()).map((p) => p.name).sort()).toEqual(['fw-a', 'fw-b']);

    // A half-written file: reported once, the previous set stays in force.
    writeFileSync(join(d, 'c.json'), '{"name": "fw-c", "pcrs": {');
    clock.advance(POLICY_RECHECK_MS);
    expect((await dir.current()).map((p) => p.name).sort()).toEqual(['fw-a', 'fw-b']);
    clock.advance(POLICY_RECHECK_MS);
    await dir.current();
    const errors = lines.filter((l) => l.includes('firmware policies not reloaded'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/c\.json/);

    // Fixed: picked up.
    writeFileSync(join(d, 'c.json'), policy('fw-c'));
    clock.advance(POLICY_RECHECK_MS);
    expect((await dir.current()).map((p) => p.name).sort()).toEqual(['fw-a', 'fw-b', 'fw-c']);
  });
});
