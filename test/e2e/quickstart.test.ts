/** The README's first command, minus set-up: the quickstart program as a process. */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ensureBuilt, ROOT, runCommand } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'e2e-quickstart-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('starts a server with its CA key on a SoftHSM2 token, mints an SVID openssl accepts, stops', async () => {
  ensureBuilt(join(ROOT, 'dist', 'demo', 'quickstart.js'));
  const r = await runCommand('node', [join(ROOT, 'dist', 'demo', 'quickstart.js'), dir]);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  expect(r.out).toContain('SPIFFE ID   : spiffe://example.org/quickstart/workload');
  expect(r.out).toMatch(/openssl {5}: .*svid\.pem: OK/);
  expect(r.out).toMatch(/objects spire-edge-JWT-Signer-A-1, spire-edge-x509-CA-A-1:/);
  expect(r.out).toContain('quickstart: server stopped');
  expect(statSync(join(dir, 'hsm', 'user-pin')).mode & 0o777).toBe(0o600);
  expect(existsSync(join(dir, 'server', 'private', 'api.sock'))).toBe(false);
  // A second run reuses the token and the CA.
  const again = await runCommand('node', [join(ROOT, 'dist', 'demo', 'quickstart.js'), dir]);
  expect(again.code).toBe(0);
  expect(again.out).toContain('reusing SoftHSM2 token');
});
