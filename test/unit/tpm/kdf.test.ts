import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { kdfa, kdfe, tpmHashByBank } from '../../../src/tpm/index.js';

const h = (b: 'sha1' | 'sha256' | 'sha384' | 'sha512') => tpmHashByBank(b)!;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('KDFa (Part 1 §11.4.10.2)', () => {
  // The TPM reference implementation's self-test vector (KdfTestData.h): label
  // "KDFSELFTESTLABEL", 160 bits, one expected output per hash.
  const key = Buffer.from('271fa08bbdc5060ec3dfa928ff9b73123a12da0c', 'hex');
  const u = Buffer.from('ce244f395dca7391', 'hex');
  const v = Buffer.from('da504031ddf12e83', 'hex');
  it.each([
    ['sha1', '55b5a7184aa07423c47dae766c26a2377d7cf851'],
    ['sha256', 'bb0259e1c8ba607e6a2cd704b69a902e9ade84c4'],
    ['sha384', '1dce70c9113eb2dba47bd9cfc72bf46f45b09312'],
    ['sha512', '8be2c1b85b78569b9fa759f5857c56d684810fd3'],
  ] as const)('matches the reference self-test vector for %s', (bank, expected) => {
    expect(hex(kdfa(h(bank), key, 'KDFSELFTESTLABEL', u, v, 160))).toBe(expected);
  });

  it('runs the counter across blocks and clears the extra high bits of odd bit lengths', () => {
    const long = kdfa(h('sha256'), key, 'STORAGE', u, v, 600);
    expect(long).toHaveLength(75);
    const odd = kdfa(h('sha256'), key, 'STORAGE', u, v, 13);
    expect(odd).toHaveLength(2);
    expect(odd[0]! & 0xe0).toBe(0);
    expect(() => kdfa(h('sha256'), key, 'x', u, v, 0)).toThrow(TypeError);
  });
});

describe('KDFe (Part 1 §11.4.10.3)', () => {
  it('is the SP 800-56A concatenation KDF with a NUL-terminated use label', () => {
    const z = Buffer.alloc(32, 1);
    const pu = Buffer.alloc(32, 2);
    const pv = Buffer.alloc(32, 3);
    const expected = Buffer.concat([
      createHash('sha256')
        .update(Buffer.of(0, 0, 0, 1))
        .update(z)
        .update('IDENTITY\0')
        .update(pu)
        .update(pv)
        .digest(),
      createHash('sha256')
        .update(Buffer.of(0, 0, 0, 2))
        .update(z)
        .update('IDENTITY\0')
        .update(pu)
        .update(pv)
        .digest(),
    ]).subarray(0, 40);
    expect(hex(kdfe(h('sha256'), z, 'IDENTITY', pu, pv, 320))).toBe(expected.toString('hex'));
  });
});
