/**
 * The checked-in generated code is what scripts/gen-proto.sh makes from proto/ now
 * (buf and protoc-gen-es run offline from node_modules).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..', '..');
const out = mkdtempSync(join(tmpdir(), 'gen-proto-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function files(dir: string): Map<string, string> {
  const found = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else found.set(relative(dir, p), readFileSync(p, 'utf8'));
    }
  };
  walk(dir);
  return found;
}

describe('src/protocol/gen', () => {
  it('is up to date with proto/ (run sh scripts/gen-proto.sh after editing a .proto)', () => {
    // under timeout(1), which kills the whole group (sh → npx → buf): spawnSync blocks this
    // worker's event loop, so vitest's own timeout could not end a hung generator
    const r = spawnSync('timeout', ['-k', '5', '50', 'sh', 'scripts/gen-proto.sh', out], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(r.status, `gen-proto.sh failed (run scripts/setup.sh?):\n${r.stderr}`).toBe(0);
    const fresh = files(join(out, 'src', 'protocol', 'gen'));
    const checkedIn = files(join(root, 'src', 'protocol', 'gen'));
    expect([...checkedIn.keys()].sort()).toEqual([...fresh.keys()].sort());
    expect(fresh.size).toBeGreaterThan(15);
    for (const [name, text] of fresh) {
      expect(checkedIn.get(name), `${name} is stale`).toBe(text);
    }
  }, 60_000);
});
