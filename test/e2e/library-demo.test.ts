import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it, vi } from 'vitest';
import { main } from '../../src/demo/library-demo.js';
import { parseX509Bundle, verifyX509Svid } from '../../src/index.js';
import { parseCertificates } from '../../src/spiffe/x509-cert.js';

const dir = mkdtempSync(join(tmpdir(), 'demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('the quickstart demo mints an SVID that the library and openssl verify', async () => {
  const out: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  const code = await main([dir]).finally(() => spy.mockRestore());
  const text = out.join('');
  expect(code).toBe(0);
  expect(text).toContain('X509-SVID   : spiffe://example.org/demo/workload');
  expect(text).toMatch(/openssl {5}: .*svid\.0\.pem: OK/);
  // The files it wrote verify independently of what it printed.
  const bundle = parseX509Bundle('example.org', readFileSync(join(dir, 'bundle.0.pem'), 'utf8'));
  const [leaf] = parseCertificates(readFileSync(join(dir, 'svid.0.pem'), 'utf8'));
  expect(verifyX509Svid([leaf!.der], bundle).id.toString()).toBe(
    'spiffe://example.org/demo/workload',
  );
});
