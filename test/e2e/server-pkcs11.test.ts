/**
 * The server with its CA keys in an HSM (SoftHSM2 through PKCS#11), as a process: keys on the
 * token are private, sensitive and non-extractable (seen by pkcs11-tool, an independent client);
 * SVIDs verify with openssl; a restart finds the same keys; a token that disappears makes the
 * server not ready and nothing is signed until it returns.
 */
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../harness/common.js';
import { type SoftHsmInstance, startSoftHsm } from '../harness/softhsm.js';
import {
  runCommand,
  type ServiceProcess,
  SPIRE_SERVER,
  startServerProcess,
  writeServerConfig,
} from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'e2e-pkcs11-'));
let hsm: SoftHsmInstance;
let server: ServiceProcess | undefined;
let conf: ReturnType<typeof writeServerConfig>;
let env: Record<string, string>;

const cli = (...args: string[]) =>
  runCommand(SPIRE_SERVER, [...args, '-socketPath', conf.socketPath]);

async function waitFor(pred: () => Promise<boolean>, ms = 40_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  hsm = await startSoftHsm({ label: 'spire-ca' });
  env = { SOFTHSM2_CONF: hsm.confPath, SPIRE_HSM_PIN: hsm.pin };
  conf = writeServerConfig({
    dir,
    keyManager: `KeyManager "pkcs11" {
    plugin_data {
      module_path = "${hsm.modulePath}"
      token_label = "spire-ca"
      pin_env = "SPIRE_HSM_PIN"
      key_label_prefix = "e2e-"
    }
  }`,
  });
  server = await startServerProcess(conf.path, conf.socketPath, env);
}, 240_000);

afterAll(async () => {
  await server?.stop();
  await hsm?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function rootsPem(): Promise<string> {
  const r = await cli('bundle', 'show');
  expect(r.code).toBe(0);
  return r.out;
}

describe('spire-server with KeyManager "pkcs11" on SoftHSM2', () => {
  let firstBundle = '';

  it('keeps the CA keys on the token: private, sensitive, non-extractable, sign-only', async () => {
    const r = await hsm.pkcs11Tool([
      '--login',
      '--pin',
      hsm.pin,
      '--token-label',
      'spire-ca',
      '--list-objects',
      '--type',
      'privkey',
    ]);
    const keys = r.stdout
      .split(/\n(?=Private Key Object)/)
      .filter((b) => b.includes('label:      e2e-'));
    expect(keys.length).toBeGreaterThanOrEqual(2); // X.509 CA and JWT signer
    for (const k of keys) {
      expect(k).toMatch(/Usage:\s+sign$/m);
      expect(k).toMatch(/Access:.*sensitive.*never extractable/);
    }
    // Without logging in, the private keys are invisible (CKA_PRIVATE).
    const anon = await hsm.pkcs11Tool([
      '--token-label',
      'spire-ca',
      '--list-objects',
      '--type',
      'privkey',
    ]);
    expect(anon.stdout).not.toContain('e2e-');
  });

  it('mints an X509-SVID that openssl verifies against the bundle', async () => {
    const out = join(dir, 'mint');
    mkdirSync(out);
    const m = await cli(
      'x509',
      'mint',
      '-spiffeID',
      'spiffe://example.org/hsm/workload',
      '-write',
      out,
    );
    expect(m.code, m.err).toBe(0);
    const v = await run('openssl', [
      'verify',
      '-CAfile',
      join(out, 'bundle.pem'),
      join(out, 'svid.pem'),
    ]);
    expect(v.stdout.trim()).toBe(`${join(out, 'svid.pem')}: OK`);
    firstBundle = await rootsPem();
  });

  it('a restart finds the same keys (same roots, no new key objects)', async () => {
    const before = (
      await hsm.pkcs11Tool([
        '--login',
        '--pin',
        hsm.pin,
        '--token-label',
        'spire-ca',
        '--list-objects',
      ])
    ).stdout;
    expect(await server!.stop()).toBe(0);
    server = await startServerProcess(conf.path, conf.socketPath, env);
    expect(await rootsPem()).toBe(firstBundle);
    const after = (
      await hsm.pkcs11Tool([
        '--login',
        '--pin',
        hsm.pin,
        '--token-label',
        'spire-ca',
        '--list-objects',
      ])
    ).stdout;
    expect(after).toBe(before);
  });

  it('a vanished token makes the server not ready and signs nothing; it recovers when the token returns', async () => {
    const aside = `${hsm.tokenDir}.aside`;
    renameSync(hsm.tokenDir, aside);
    try {
      await waitFor(async () => (await cli('healthcheck')).code !== 0);
      const m = await cli('x509', 'mint', '-spiffeID', 'spiffe://example.org/hsm/nope');
      expect(m.code).toBe(1);
      expect(m.out).not.toContain('BEGIN CERTIFICATE');
    } finally {
      renameSync(aside, hsm.tokenDir);
    }
    expect(existsSync(hsm.tokenDir)).toBe(true);
    await waitFor(async () => (await cli('healthcheck')).code === 0);
    const out = join(dir, 'mint2');
    mkdirSync(out);
    const m = await cli(
      'x509',
      'mint',
      '-spiffeID',
      'spiffe://example.org/hsm/back',
      '-write',
      out,
    );
    expect(m.code, m.err).toBe(0);
    const v = await run('openssl', [
      'verify',
      '-CAfile',
      join(out, 'bundle.pem'),
      join(out, 'svid.pem'),
    ]);
    expect(v.code).toBe(0);
  });

  it('a wrong PIN fails `run` with a message naming the PIN problem (and not the PIN)', async () => {
    const bad = await runCommand(SPIRE_SERVER, ['validate', '-config', conf.path], {
      env: { ...env },
    });
    expect(bad.code).toBe(0);
    const r = await runCommand(
      SPIRE_SERVER,
      ['run', '-config', conf.path, '-socketPath', join(dir, 'other.sock')],
      {
        env: { ...env, SPIRE_HSM_PIN: '999999' },
      },
    );
    expect(r.code).toBe(1);
    expect(`${r.out}${r.err}`).toMatch(/CKR_PIN_INCORRECT/);
    expect(`${r.out}${r.err}`).not.toContain('999999');
  });
});
