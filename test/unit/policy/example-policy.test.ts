import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { evaluatePolicies, loadFirmwarePolicies } from '../../../src/policy/index.js';

const EXAMPLE = new URL(
  '../../../firmware-policies/examples/swtpm-unmeasured.json',
  import.meta.url,
);

describe('firmware-policies/examples/swtpm-unmeasured.json', () => {
  const policies = loadFirmwarePolicies([
    { name: 'swtpm-unmeasured.json', text: readFileSync(EXAMPLE, 'utf8') },
  ]);
  const zero = '00'.repeat(32);
  const fresh = new Map([['sha256', new Map([0, 1, 2, 3, 4, 5, 6, 7].map((i) => [i, zero]))]]);

  it('parses and matches a freshly started swtpm (sha256 PCRs 0-7 zero)', () => {
    expect(policies.map((p) => p.name)).toEqual(['swtpm-unmeasured']);
    expect(evaluatePolicies(policies, fresh)).toEqual(['swtpm-unmeasured']);
  });

  it('stops matching when one PCR is extended', () => {
    const extended = new Map([
      ['sha256', new Map([...fresh.get('sha256')!, [4, 'ab'.repeat(32)]])],
    ]);
    expect(evaluatePolicies(policies, extended)).toEqual([]);
  });
});
