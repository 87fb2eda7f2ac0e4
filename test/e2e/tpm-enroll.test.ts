/**
 * `./bin/tpm-enroll` as an operator runs it, as a real process: on the "device" (a swtpm) it
 * prints the enrollment record and the `spire-server entry create` command; that command, run
 * with `./bin/spire-server` against a real `spire-server run`, creates the node alias entry; then
 * `tpm-enroll -register` on the server host finds the entry already there and says so.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SwtpmInstance, startSwtpm } from '../harness/swtpm.js';
import {
  ensureBuilt,
  ROOT,
  runCommand,
  type ServiceProcess,
  SPIRE_SERVER,
  startServerProcess,
  TPM_ENROLL,
  writeServerConfig,
} from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'e2e-tpm-enroll-'));
const { path: configPath, socketPath } = writeServerConfig({ dir });
let server: ServiceProcess;
let tpm: SwtpmInstance;

beforeAll(async () => {
  ensureBuilt(join(ROOT, 'dist', 'enroll', 'main.js'));
  [server, tpm] = await Promise.all([startServerProcess(configPath, socketPath), startSwtpm()]);
}, 240_000);

afterAll(async () => {
  await tpm?.stop();
  expect(await server?.stop()).toBe(0);
  rmSync(dir, { recursive: true, force: true });
});

describe('./bin/tpm-enroll', () => {
  it('prints a record whose entry-create command binds the device, then -register is idempotent', async () => {
    const alias = 'spiffe://example.org/gw/1';
    const r = await runCommand(TPM_ENROLL, [
      '-tcti',
      tpm.tcti,
      '-spiffeID',
      alias,
      '-output',
      'json',
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const record = JSON.parse(r.out) as { pub_hash: string; entry_create_command: string };
    expect(record.pub_hash).toMatch(/^[0-9a-f]{64}$/);
    const [cmd, ...args] = record.entry_create_command.split(' ');
    expect(cmd).toBe('spire-server');
    const created = await runCommand(SPIRE_SERVER, [...args, '-socketPath', socketPath]);
    expect(created.err).toBe('');
    expect(created.code).toBe(0);
    expect(created.out).toMatch(/^SPIFFE ID\s+: spiffe:\/\/example\.org\/gw\/1$/m);
    expect(created.out).toMatch(/^Parent ID\s+: spiffe:\/\/example\.org\/spire\/server$/m);
    expect(created.out).toMatch(new RegExp(`^Selector\\s+: tpm:pub_hash:${record.pub_hash}$`, 'm'));

    const again = await runCommand(TPM_ENROLL, [
      '-tcti',
      tpm.tcti,
      '-pcrs',
      'none',
      '-register',
      '-socketPath',
      socketPath,
      '-spiffeID',
      alias,
    ]);
    expect(again.err).toBe('');
    expect(again.code).toBe(0);
    expect(again.out).toContain(
      `Already registered: ${alias} is bound to tpm:pub_hash:${record.pub_hash}`,
    );
  });

  it('exits 1 with the usage for an unknown flag', async () => {
    const r = await runCommand(TPM_ENROLL, ['-bogus']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^flag provided but not defined: -bogus\nUsage of tpm-enroll:\n/);
  });
});
