import { describe, expect, it } from 'vitest';
import { TpmReader, TpmWriter } from '../../../src/tpm/index.js';

function parseError(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('expected an error');
}

describe('TpmReader', () => {
  it('reads big-endian integers and TPM2B values', () => {
    const r = new TpmReader(
      Uint8Array.of(
        0x12,
        0x34,
        0x56,
        0x78,
        0x9a,
        0xbc,
        0xde,
        0xf0,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        2,
        0,
        3,
        1,
        2,
        3,
        1,
      ),
      'T',
    );
    expect(r.u16('a')).toBe(0x1234);
    expect(r.u32('b')).toBe(0x56789abc);
    expect(r.u16('c')).toBe(0xdef0);
    expect(r.u64('d')).toBe(0x0001000000000000n);
    expect(r.u16('e')).toBe(2);
    expect([...r.tpm2b('f', 3)]).toEqual([1, 2, 3]);
    expect(r.yesNo('g')).toBe(true);
    r.end();
  });

  it('names the structure and field when a TPM2B size exceeds the remaining bytes', () => {
    const r = new TpmReader(Uint8Array.of(0, 70, ...new Array(12).fill(0)), 'TPMS_ATTEST');
    const e = parseError(() => r.tpm2b('extraData', 100));
    expect(e.code).toBe('ERR_TPM_PARSE');
    expect(e.message).toBe('TPMS_ATTEST.extraData: size 70 exceeds the remaining 12 bytes');
  });

  it('refuses a TPM2B over its specification maximum even when the bytes are there', () => {
    const r = new TpmReader(Uint8Array.of(0, 67, ...new Array(67).fill(0)), 'TPMS_ATTEST');
    expect(parseError(() => r.tpm2b('extraData', 66)).message).toBe(
      'TPMS_ATTEST.extraData: size 67 exceeds the maximum 66',
    );
  });

  it('reports truncated integers, bad booleans, nested paths and trailing bytes', () => {
    expect(parseError(() => new TpmReader(Uint8Array.of(1), 'X').u16('f')).message).toBe(
      'X.f: needs 2 bytes but only 1 remain',
    );
    expect(parseError(() => new TpmReader(Uint8Array.of(2), 'X').yesNo('safe')).message).toBe(
      'X.safe: must be 0 (NO) or 1 (YES), found 2',
    );
    const r = new TpmReader(Uint8Array.of(0, 0), 'X');
    expect(parseError(() => r.scope('a', () => r.scope('b', () => r.u32('c')))).message).toBe(
      'X.a.b.c: needs 4 bytes but only 2 remain',
    );
    const t = new TpmReader(Uint8Array.of(1, 2, 3), 'X');
    t.u8('a');
    expect(parseError(() => t.end()).message).toBe(
      'X: 2 unexpected trailing bytes after the structure',
    );
  });

  it('checks that a sized structure consumes exactly its size', () => {
    const r = new TpmReader(Uint8Array.of(0, 3, 9, 9, 9), 'TPM2B_X');
    expect(parseError(() => r.sized('inner', 10, (s) => s.u16('v'))).message).toBe(
      'TPM2B_X.inner: 1 unexpected trailing byte after the structure',
    );
    const z = new TpmReader(Uint8Array.of(0, 0), 'TPM2B_X');
    expect(parseError(() => z.sized('inner', 10, (s) => s.u16('v'))).message).toBe(
      'TPM2B_X.inner: size 0: the structure is missing',
    );
    expect(new TpmReader(Uint8Array.of(0, 0), 'T').sized('i', 1, () => 1, true)).toBeUndefined();
  });

  it('refuses a non-Uint8Array input with TypeError', () => {
    expect(() => new TpmReader('x' as unknown as Uint8Array, 'T')).toThrow(TypeError);
  });
});

describe('TpmWriter', () => {
  it('writes big-endian values and TPM2B sizes, and backfills sized structures', () => {
    const w = new TpmWriter(1);
    w.u8(1).u16(0x0203).u32(0x04050607).u64(0x08090a0b0c0d0e0fn).tpm2b(Uint8Array.of(9), 4);
    w.sized((x) => x.u16(0xaaaa).u8(0xbb), 10);
    expect(Buffer.from(w.finish()).toString('hex')).toBe(
      '01020304050607' + '08090a0b0c0d0e0f' + '000109' + '0003aaaabb',
    );
  });

  it('throws TypeError for values out of range and TPM2B over the maximum', () => {
    expect(() => new TpmWriter().u16(0x10000, 'x')).toThrow(/x must be an integer/);
    expect(() => new TpmWriter().u8(-1)).toThrow(TypeError);
    expect(() => new TpmWriter().u64(-1n)).toThrow(TypeError);
    expect(() => new TpmWriter().tpm2b(new Uint8Array(5), 4, 'buf')).toThrow(
      'buf is 5 bytes, over the maximum 4',
    );
    expect(() => new TpmWriter().sized((w) => w.u32(1), 3, 's')).toThrow(
      's is 4 bytes, over the maximum 3',
    );
  });
});
