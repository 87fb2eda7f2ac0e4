import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  marshalTpmsAttest,
  parseTpmsAttest,
  pcrSelection,
  TPM_GENERATED_VALUE,
  TPM_ST,
  type TpmsAttest,
} from '../../../src/tpm/index.js';
import { loadGcpCapture } from './support/gcp-capture.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return `${(e as { code?: string }).code}: ${(e as Error).message}`;
  }
  throw new Error('expected an error');
}

describe('TPMS_ATTEST: real captures', () => {
  const c = loadGcpCapture();

  it('parses the Google Cloud vTPM quote', () => {
    const a = parseTpmsAttest(c.quote);
    expect(a.magic).toBe(TPM_GENERATED_VALUE);
    expect(a.type).toBe(TPM_ST.ATTEST_QUOTE);
    expect(hex(a.qualifiedSigner).slice(0, 4)).toBe('000b');
    expect(a.qualifiedSigner).toHaveLength(34);
    expect(a.extraData).toHaveLength(0);
    expect(a.clockInfo).toEqual({
      clock: 10257171n,
      resetCount: 1045281252,
      restartCount: 822490842,
      safe: true,
    });
    expect(a.firmwareVersion).toBe(0x41e4356df966e035n);
    if (a.attested.kind !== 'quote') throw new Error('expected a quote');
    expect(a.attested.pcrSelect).toEqual([pcrSelection('sha1', [...Array(24).keys()])]);
    expect(a.attested.pcrDigest).toHaveLength(20);
    expect(hex(marshalTpmsAttest(a))).toBe(hex(c.quote));
  });

  it('parses the certify-creation attestation, whose creationHash is the hash of the creation data', () => {
    const a = parseTpmsAttest(c.createAttestation);
    expect(a.type).toBe(TPM_ST.ATTEST_CREATION);
    if (a.attested.kind !== 'creation') throw new Error('expected a creation attestation');
    expect(hex(a.attested.creationHash)).toBe(
      createHash('sha256').update(c.createData).digest('hex'),
    );
    expect(hex(marshalTpmsAttest(a))).toBe(hex(c.createAttestation));
    // Same TPM, same reset/restart epoch as the quote, earlier clock.
    expect(a.clockInfo.resetCount).toBe(parseTpmsAttest(c.quote).clockInfo.resetCount);
    expect(a.clockInfo.clock).toBeLessThan(parseTpmsAttest(c.quote).clockInfo.clock);
  });
});

describe('TPMS_ATTEST: hand-built', () => {
  const base = {
    magic: TPM_GENERATED_VALUE,
    qualifiedSigner: Uint8Array.of(0, 0x0b, ...new Uint8Array(32).fill(1)),
    extraData: Uint8Array.of(9, 9, 9),
    clockInfo: { clock: 2n ** 63n + 5n, resetCount: 0xffffffff, restartCount: 1, safe: false },
    firmwareVersion: 0xffffffffffffffffn,
  };

  it.each([
    [
      'certify',
      {
        ...base,
        type: TPM_ST.ATTEST_CERTIFY,
        attested: {
          kind: 'certify',
          name: Uint8Array.of(0, 4, 1),
          qualifiedName: Uint8Array.of(0, 4, 2),
        },
      },
    ],
    [
      'creation',
      {
        ...base,
        type: TPM_ST.ATTEST_CREATION,
        attested: {
          kind: 'creation',
          objectName: Uint8Array.of(0, 0x0b),
          creationHash: new Uint8Array(32),
        },
      },
    ],
    [
      'quote, two banks',
      {
        ...base,
        type: TPM_ST.ATTEST_QUOTE,
        attested: {
          kind: 'quote',
          pcrSelect: [pcrSelection('sha256', [0, 7, 23]), pcrSelection('sha384', [31], 4)],
          pcrDigest: new Uint8Array(32).fill(3),
        },
      },
    ],
  ] as const)('round-trips a %s structure', (_, a) => {
    const bytes = marshalTpmsAttest(a as TpmsAttest);
    expect(parseTpmsAttest(bytes)).toEqual(a);
  });

  it('refuses unsupported types, bad YES/NO, oversized fields and trailing bytes', () => {
    const q: TpmsAttest = {
      ...base,
      type: TPM_ST.ATTEST_QUOTE,
      attested: {
        kind: 'quote',
        pcrSelect: [pcrSelection('sha256', [0])],
        pcrDigest: new Uint8Array(32),
      },
    };
    const b = marshalTpmsAttest(q);
    const time = new Uint8Array(b);
    time[5] = 0x19;
    expect(errorOf(() => parseTpmsAttest(time))).toBe(
      'ERR_TPM_PARSE: TPMS_ATTEST.attested: type 0x8019 is not supported (quote 0x8018, certify 0x8017, creation 0x801a)',
    );
    const safe = new Uint8Array(b);
    safe[6 + 36 + 5 + 16] = 2; // magic, type, signer (2+34), extraData (2+3), clock, counts
    expect(errorOf(() => parseTpmsAttest(safe))).toBe(
      'ERR_TPM_PARSE: TPMS_ATTEST.clockInfo.safe: must be 0 (NO) or 1 (YES), found 2',
    );
    const extra = new Uint8Array(b);
    extra[6 + 36 + 1] = 70;
    expect(errorOf(() => parseTpmsAttest(extra))).toBe(
      'ERR_TPM_PARSE: TPMS_ATTEST.extraData: size 70 exceeds the maximum 66',
    );
    expect(errorOf(() => parseTpmsAttest(b.subarray(0, 68)))).toMatch(
      /^ERR_TPM_PARSE: TPMS_ATTEST\.firmwareVersion: needs 8 bytes/,
    );
    expect(errorOf(() => parseTpmsAttest(Uint8Array.of(...b, 1)))).toBe(
      'ERR_TPM_PARSE: TPMS_ATTEST: 1 unexpected trailing byte after the structure',
    );
    const banks = new Uint8Array(b);
    new DataView(banks.buffer).setUint32(6 + 36 + 5 + 17 + 8, 17);
    expect(errorOf(() => parseTpmsAttest(banks))).toBe(
      'ERR_TPM_PARSE: TPMS_ATTEST.attested.pcrSelect.count: 17 banks exceeds the maximum 16',
    );
  });

  it('refuses to marshal a type that does not match the attested kind', () => {
    expect(() =>
      marshalTpmsAttest({
        ...base,
        type: TPM_ST.ATTEST_QUOTE,
        attested: {
          kind: 'creation',
          objectName: new Uint8Array(0),
          creationHash: new Uint8Array(0),
        },
      }),
    ).toThrow(TypeError);
  });
});
