import { generateKeyPairSync, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  children,
  decodeBitFlags,
  decodeBoolean,
  decodeOid,
  decodeSmallInt,
  decodeTime,
  derToP1363,
  encodeLength,
  oid,
  p1363ToDer,
  readTlv,
  readWhole,
  seq,
  smallInteger,
  TAG,
  time,
  tlv,
  unsignedInteger,
} from '../../../src/common/der.js';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s/g, ''), 'hex'));
const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
};

describe('DER reader', () => {
  it('reads short and long lengths', () => {
    const short = readTlv(hex('0403 010203'));
    expect([short.tag, short.start, short.end]).toEqual([0x04, 2, 5]);
    const body = new Uint8Array(200);
    const long = readTlv(tlv(0x04, body));
    expect(long.end - long.start).toBe(200);
    expect(encodeLength(200)).toEqual(Uint8Array.of(0x81, 200));
  });

  it.each([
    ['truncated header', '04'],
    ['indefinite length', '3080 0000'],
    ['non-minimal long form', '0481 05 0102030405'],
    ['leading zero length octet', '048200 05 0102030405'],
    ['value past the end', '0405 0102'],
    ['high tag number form', '1f01 00'],
    ['5-byte length', '0485 0000000001 00'],
  ])('rejects %s', (_name, h) => {
    expect(codeOf(() => readTlv(hex(h)))).toBe('ERR_DER_INVALID');
  });

  it('readWhole rejects trailing bytes', () => {
    expect(codeOf(() => readWhole(hex('0500 00'), 'x'))).toBe('ERR_DER_INVALID');
  });

  it('decodes OIDs, booleans, integers, bit flags and times', () => {
    expect(decodeOid(readTlv(oid('1.2.840.10045.4.3.2')))).toBe('1.2.840.10045.4.3.2');
    expect(decodeOid(readTlv(oid('2.5.29.17')))).toBe('2.5.29.17');
    expect(decodeOid(readTlv(oid('2.999.3')))).toBe('2.999.3');
    expect(decodeBoolean(readTlv(hex('0101ff')))).toBe(true);
    expect(codeOf(() => decodeBoolean(readTlv(hex('010101'))))).toBe('ERR_DER_INVALID');
    expect(decodeSmallInt(readTlv(smallInteger(65537)))).toBe(65537);
    expect(codeOf(() => decodeSmallInt(readTlv(hex('0201ff'))))).toBe('ERR_DER_INVALID');
    // keyUsage digitalSignature + keyCertSign: 03 02 02 84 (2 unused bits)
    const flags = decodeBitFlags(readTlv(hex('03020284')));
    expect(flags[0]).toBe(true);
    expect(flags[5]).toBe(true);
    expect(flags.filter(Boolean)).toHaveLength(2);
    const d = new Date(Date.UTC(2049, 11, 31, 23, 59, 59));
    expect(readTlv(time(d)).tag).toBe(TAG.UTC_TIME);
    expect(decodeTime(readTlv(time(d))).getTime()).toBe(d.getTime());
    const g = new Date(Date.UTC(2050, 0, 1));
    expect(readTlv(time(g)).tag).toBe(TAG.GENERALIZED_TIME);
    expect(decodeTime(readTlv(time(g))).getTime()).toBe(g.getTime());
    expect(codeOf(() => decodeTime(readTlv(tlv(TAG.UTC_TIME, Buffer.from('991332000000Z')))))).toBe(
      'ERR_DER_INVALID',
    );
  });

  it('unsignedInteger strips leading zeros and keeps the sign bit clear', () => {
    expect(unsignedInteger(hex('0000ff'))).toEqual(hex('020200ff'));
    expect(unsignedInteger(hex('7f'))).toEqual(hex('02017f'));
    expect(unsignedInteger(new Uint8Array(0))).toEqual(hex('020100'));
  });

  it('P1363 <-> DER ECDSA signatures interoperate with node:crypto', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    for (let i = 0; i < 50; i++) {
      const data = Buffer.from(`message ${i}`);
      const raw = nodeSign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      const der = p1363ToDer(raw);
      expect(nodeVerify('sha256', data, publicKey, Buffer.from(der))).toBe(true);
      expect(Buffer.from(derToP1363(der, 32))).toEqual(raw);
    }
  });
});

describe('DER reader properties', () => {
  function walk(buf: Uint8Array, depth = 0): void {
    const t = readWhole(buf, 'fuzz');
    const visit = (x: ReturnType<typeof readTlv>, d: number): void => {
      if (d > 20) return;
      if (x.tag & 0x20) for (const c of children(x)) visit(c, d + 1);
    };
    visit(t, depth);
  }

  it('random bytes only ever throw ERR_DER_INVALID', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          walk(bytes);
        } catch (err) {
          expect((err as { code?: string }).code).toBe('ERR_DER_INVALID');
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('mutations of a valid structure only ever throw ERR_DER_INVALID', () => {
    const valid = seq(
      oid('1.2.3.4'),
      seq(smallInteger(5), tlv(TAG.OCTET_STRING, new Uint8Array(140))),
    );
    fc.assert(
      fc.property(fc.nat(valid.length - 1), fc.nat(255), (pos, val) => {
        const m = Uint8Array.from(valid);
        m[pos] = val;
        try {
          walk(m);
        } catch (err) {
          expect((err as { code?: string }).code).toBe('ERR_DER_INVALID');
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('OIDs round-trip', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 }),
        fc.integer({ min: 0, max: 39 }),
        fc.array(fc.nat(2 ** 40), { maxLength: 8 }),
        (a, b, rest) => {
          const dotted = [a, b, ...rest].join('.');
          expect(decodeOid(readTlv(oid(dotted)))).toBe(dotted);
        },
      ),
    );
  });
});
