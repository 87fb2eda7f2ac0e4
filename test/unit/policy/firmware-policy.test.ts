import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import {
  evaluatePolicies,
  formatFirmwarePolicy,
  loadFirmwarePolicies,
  parseFirmwarePolicy,
  policyMismatch,
  policyPcrSelection,
} from '../../../src/policy/index.js';

const A = 'a'.repeat(64);
const B = 'B'.repeat(64);
const C = 'c'.repeat(64);

function policyText(doc: unknown): string {
  return JSON.stringify(doc);
}

function codeOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (isSpireEdgeError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('did not throw');
}

function pcrs(entries: Record<string, Record<number, string>>): Map<string, Map<number, string>> {
  return new Map(
    Object.entries(entries).map(([bank, v]) => [
      bank,
      new Map(Object.entries(v).map(([i, d]) => [Number(i), d])),
    ]),
  );
}

describe('parseFirmwarePolicy', () => {
  it('parses a policy, lower-casing digests and sorting indices', () => {
    const p = parseFirmwarePolicy(
      policyText({
        name: 'gw-fw-2026.1',
        description: 'd',
        pcrs: { sha256: { 7: [C], 0: [A, B] } },
      }),
      'gw.json',
    );
    expect(p.name).toBe('gw-fw-2026.1');
    expect(p.description).toBe('d');
    expect(p.source).toBe('gw.json');
    const bank = p.pcrs.get('sha256')!;
    expect([...bank.keys()]).toEqual([0, 7]);
    expect([...bank.get(0)!]).toEqual([A, B.toLowerCase()]);
  });

  const cases: Array<[string, unknown, RegExp]> = [
    ['not an object', [1], /must be a JSON object/],
    [
      'unknown field',
      { name: 'x', pcrs: { sha256: { 0: [A] } }, extra: 1 },
      /extra: unknown field/,
    ],
    ['missing name', { pcrs: { sha256: { 0: [A] } } }, /name must be a string/],
    ['bad name', { name: 'a b', pcrs: { sha256: { 0: [A] } } }, /name must be/],
    ['name starting with dot', { name: '.x', pcrs: { sha256: { 0: [A] } } }, /name must be/],
    ['missing pcrs', { name: 'x' }, /pcrs is required/],
    ['empty pcrs', { name: 'x', pcrs: {} }, /pcrs must list at least one bank/],
    ['unknown bank', { name: 'x', pcrs: { md5: { 0: [A] } } }, /pcrs\.md5: unknown bank/],
    ['empty bank', { name: 'x', pcrs: { sha256: {} } }, /pcrs\.sha256 must list at least one PCR/],
    ['index 24', { name: 'x', pcrs: { sha256: { 24: [A] } } }, /pcrs\.sha256\.24: PCR index/],
    ['index 07', { name: 'x', pcrs: { sha256: { '07': [A] } } }, /pcrs\.sha256\.07: PCR index/],
    ['empty list', { name: 'x', pcrs: { sha256: { 0: [] } } }, /pcrs\.sha256\.0 must list/],
    ['not a list', { name: 'x', pcrs: { sha256: { 0: A } } }, /pcrs\.sha256\.0 must be an array/],
    ['short digest', { name: 'x', pcrs: { sha256: { 0: ['ab'] } } }, /pcrs\.sha256\.0\[0\] has 2/],
    [
      'sha1 size',
      { name: 'x', pcrs: { sha1: { 0: [A] } } },
      /pcrs\.sha1\.0\[0\] has 64 hex digits, the bank's digest has 40/,
    ],
    [
      'not hex',
      { name: 'x', pcrs: { sha256: { 0: ['z'.repeat(64)] } } },
      /\[0\] is not hexadecimal/,
    ],
    ['duplicate', { name: 'x', pcrs: { sha256: { 0: [A, A.toUpperCase()] } } }, /\[1\] repeats/],
    ['number digest', { name: 'x', pcrs: { sha256: { 0: [1] } } }, /\[0\] must be a hex string/],
    [
      'description type',
      { name: 'x', description: 3, pcrs: { sha256: { 0: [A] } } },
      /description must be a string/,
    ],
    [
      '__proto__ bank',
      JSON.parse('{"name":"x","pcrs":{"__proto__":{"0":[]}}}'),
      /__proto__: unknown bank/,
    ],
  ];
  for (const [what, doc, message] of cases) {
    it(`refuses ${what} with ERR_POLICY_INVALID naming the field`, () => {
      const e = codeOf(() => parseFirmwarePolicy(policyText(doc), 'f.json'));
      expect(e.code).toBe('ERR_POLICY_INVALID');
      expect(e.message).toMatch(/^firmware policy f\.json: /);
      expect(e.message).toMatch(message);
    });
  }

  it('refuses text that is not JSON and text over the size limit', () => {
    expect(codeOf(() => parseFirmwarePolicy('{', 'f')).code).toBe('ERR_POLICY_INVALID');
    expect(codeOf(() => parseFirmwarePolicy(' '.repeat(1024 * 1024 + 1), 'f')).message).toMatch(
      /larger than/,
    );
  });

  it('throws TypeError for arguments that are not strings', () => {
    expect(() => parseFirmwarePolicy(1 as unknown as string, 'f')).toThrow(TypeError);
  });

  it('round-trips through formatFirmwarePolicy', () => {
    const p = parseFirmwarePolicy(
      policyText({
        name: 'r',
        pcrs: { sha256: { 0: [A], 7: [B, C] }, sha1: { 1: ['0'.repeat(40)] } },
      }),
      's',
    );
    const again = parseFirmwarePolicy(formatFirmwarePolicy(p), 's');
    expect(again).toEqual(p);
  });

  it('never throws anything but ERR_POLICY_INVALID for random JSON', () => {
    const digest = fc.oneof(
      fc.string(),
      fc.stringMatching(/^[0-9a-f]{64}$/),
      fc.stringMatching(/^[0-9a-f]{40}$/),
    );
    const index = fc.oneof(fc.string(), fc.nat(30).map(String));
    const plausible = fc.record(
      {
        name: fc.oneof(fc.string(), fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,20}$/)),
        description: fc.anything(),
        pcrs: fc.dictionary(
          fc.constantFrom('sha1', 'sha256', 'sha384', 'md5', '__proto__', 'constructor'),
          fc.oneof(fc.dictionary(index, fc.oneof(fc.array(digest), fc.anything())), fc.anything()),
        ),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), plausible, fc.string()), (doc) => {
        const text = typeof doc === 'string' ? doc : (JSON.stringify(doc) ?? 'null');
        try {
          const p = parseFirmwarePolicy(text, 'fuzz');
          expect(p.pcrs.size).toBeGreaterThan(0);
        } catch (err) {
          if (!isSpireEdgeError(err, 'ERR_POLICY_INVALID')) throw err;
        }
      }),
      { numRuns: 400 },
    );
  });
});

describe('loadFirmwarePolicies', () => {
  it('loads several files and refuses a duplicate name, naming both files', () => {
    const one = { name: 'a.json', text: policyText({ name: 'p1', pcrs: { sha256: { 0: [A] } } }) };
    const two = { name: 'b.json', text: policyText({ name: 'p2', pcrs: { sha256: { 0: [B] } } }) };
    expect(loadFirmwarePolicies([one, two]).map((p) => p.name)).toEqual(['p1', 'p2']);
    const dup = { name: 'c.json', text: policyText({ name: 'p1', pcrs: { sha256: { 1: [C] } } }) };
    const e = codeOf(() => loadFirmwarePolicies([one, dup]));
    expect(e.code).toBe('ERR_POLICY_INVALID');
    expect(e.message).toBe('firmware policy c.json: name: policy p1 is already defined by a.json');
  });
});

describe('evaluatePolicies', () => {
  const policies = loadFirmwarePolicies([
    { name: 'a', text: policyText({ name: 'boot', pcrs: { sha256: { 0: [A, B], 7: [C] } } }) },
    { name: 'b', text: policyText({ name: 'any-0', pcrs: { sha256: { 0: [A, B, C] } } }) },
    { name: 'c', text: policyText({ name: 'sha1-only', pcrs: { sha1: { 0: ['0'.repeat(40)] } } }) },
  ]);

  it('returns the names of the satisfied policies, comparing digests case-insensitively', () => {
    expect(
      evaluatePolicies(policies, pcrs({ sha256: { 0: B.toLowerCase(), 7: C.toUpperCase() } })),
    ).toEqual(['boot', 'any-0']);
  });

  it('fails a policy when one PCR changes or is missing', () => {
    expect(evaluatePolicies(policies, pcrs({ sha256: { 0: A, 7: A } }))).toEqual(['any-0']);
    expect(evaluatePolicies(policies, pcrs({ sha256: { 0: A } }))).toEqual(['any-0']);
    expect(evaluatePolicies(policies, pcrs({ sha1: { 0: '0'.repeat(40) } }))).toEqual([
      'sha1-only',
    ]);
    expect(evaluatePolicies(policies, new Map())).toEqual([]);
  });

  it('explains the first PCR that breaks a policy, and nothing for a satisfied one', () => {
    const boot = policies[0]!;
    expect(policyMismatch(boot, pcrs({ sha256: { 0: B, 7: C } }))).toBeUndefined();
    expect(policyMismatch(boot, pcrs({ sha256: { 0: A, 7: A } }))).toBe(
      `sha256 PCR 7 is ${A.toLowerCase()}, not the digest the policy allows`,
    );
    expect(policyMismatch(boot, pcrs({ sha256: { 0: C, 7: C } }))).toBe(
      `sha256 PCR 0 is ${C.toLowerCase()}, not one of the 2 digests the policy allows`,
    );
    expect(policyMismatch(boot, pcrs({ sha256: { 7: C } }))).toBe('sha256 PCR 0 was not quoted');
    expect(policyMismatch(policies[2]!, new Map())).toBe('sha1 PCR 0 was not quoted');
  });

  it('lists the PCRs the policies read', () => {
    expect(policyPcrSelection(policies)).toEqual(
      new Map([
        ['sha256', [0, 7]],
        ['sha1', [0]],
      ]),
    );
  });
});
