/** The README's first command, minus set-up: the quickstart program as a process. */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ensureBuilt, ROOT, runCommand } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'e2e-quickstart-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('runs a server (CA key on a SoftHSM2 token) and an agent attested by a swtpm; a workload gets its SVID through the Workload API; all stop', async () => {
  ensureBuilt(join(ROOT, 'dist', 'demo', 'quickstart.js'));
  const r = await runCommand('node', [join(ROOT, 'dist', 'demo', 'quickstart.js'), dir]);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  expect(r.out).toContain(
    'SPIFFE ID   : spiffe://example.org/quickstart/workload (received through the Workload API',
  );
  expect(r.out).toMatch(/openssl {5}: .*svid\.0\.pem: OK/);
  expect(r.out).toMatch(/objects spire-edge-JWT-Signer-A-1, spire-edge-x509-CA-A-1:/);
  // The agent attested with the software TPM: tpm-enroll's pub_hash is its agent ID.
  const hash = /tpm-enroll: the device's EK is tpm:pub_hash:([0-9a-f]{64})$/m.exec(r.out)?.[1];
  expect(hash).toBeDefined();
  expect(r.out).toContain(`Agent       : spiffe://example.org/spire/agent/tpm/${hash}`);
  expect(r.out).toMatch(/firmware policy quickstart-fw: satisfied$/m);
  expect(r.out).toContain('quickstart: swtpm stopped');
  expect(r.out).toContain('quickstart: spire-server stopped');
  expect(statSync(join(dir, 'hsm', 'user-pin')).mode & 0o777).toBe(0o600);
  expect(r.out).toContain('quickstart: spire-agent stopped');
  expect(existsSync(join(dir, 'server', 'private', 'api.sock'))).toBe(false);
  expect(existsSync(join(dir, 'agent', 'public', 'api.sock'))).toBe(false);
  // A second run reuses the token and the CA.
  const again = await runCommand('node', [join(ROOT, 'dist', 'demo', 'quickstart.js'), dir]);
  expect(again.code).toBe(0);
  expect(again.out).toContain('reusing SoftHSM2 token');
  // Same device (the swtpm state is kept), so the same agent ID.
  expect(again.out).toContain(`Agent       : spiffe://example.org/spire/agent/tpm/${hash}`);
});
