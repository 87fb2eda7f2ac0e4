import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  computePcrDigest,
  marshalTpm2bCreationData,
  marshalTpmlPcrSelection,
  marshalTpmsCreationData,
  parseTpm2bCreationData,
  parseTpmlPcrSelection,
  parseTpmsAttest,
  parseTpmsCreationData,
  pcrSelection,
  pcrSelectionIndices,
  TPM_ALG,
  tpmHashByBank,
} from '../../../src/tpm/index.js';
import { loadGcpCapture } from './support/gcp-capture.js';

const fromHex = (s: string): Uint8Array =>
  new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return `${(e as { code?: string }).code}: ${(e as Error).message}`;
  }
  throw new Error('expected an error');
}

describe('TPML_PCR_SELECTION', () => {
  it('encodes tpm2-tools "sha256:0,1,2,7+sha1:16,23" as the TPM does', () => {
    const sel = [pcrSelection('sha256', [0, 1, 2, 7]), pcrSelection('sha1', [16, 23])];
    expect(hex(marshalTpmlPcrSelection(sel))).toBe(
      '00000002' + '000b' + '03' + '870000' + '0004' + '03' + '000081',
    );
    expect(parseTpmlPcrSelection(marshalTpmlPcrSelection(sel))).toEqual(sel);
    expect(pcrSelectionIndices(sel[1]!)).toEqual([16, 23]);
    expect(pcrSelection('sha256', [31]).pcrSelect).toHaveLength(4);
    expect(() => pcrSelection('sha256', [32])).toThrow(TypeError);
    expect(() => pcrSelection('md5' as never, [1])).toThrow(TypeError);
  });

  it('names the broken field', () => {
    expect(errorOf(() => parseTpmlPcrSelection(fromHex('00000001 0006 03 000000')))).toBe(
      'ERR_TPM_PARSE: TPML_PCR_SELECTION.pcrSelections.pcrSelections[0].hash: 0x0006 (aes) is not a hash algorithm',
    );
    expect(errorOf(() => parseTpmlPcrSelection(fromHex('00000001 000b 05 0000000000')))).toBe(
      'ERR_TPM_PARSE: TPML_PCR_SELECTION.pcrSelections.pcrSelections[0].sizeofSelect: 5 exceeds the maximum 4',
    );
    expect(errorOf(() => parseTpmlPcrSelection(fromHex('00000002 000b 03 000000')))).toBe(
      'ERR_TPM_PARSE: TPML_PCR_SELECTION.pcrSelections.pcrSelections[1].hash: needs 2 bytes but only 0 remain',
    );
    expect(errorOf(() => parseTpmlPcrSelection(fromHex('ffffffff')))).toBe(
      'ERR_TPM_PARSE: TPML_PCR_SELECTION.pcrSelections.count: 4294967295 banks exceeds the maximum 16',
    );
  });

  it('computes the quote PCR digest of the real capture', () => {
    const c = loadGcpCapture();
    const quote = parseTpmsAttest(c.quote);
    if (quote.attested.kind !== 'quote') throw new Error('quote');
    const pcrs = new Map([['sha1' as const, new Map(c.pcrList.map((p) => [p.index, p.digest]))]]);
    const d = computePcrDigest(quote.attested.pcrSelect, pcrs, tpmHashByBank('sha1')!);
    expect(hex(d)).toBe(hex(quote.attested.pcrDigest));
    const ordered = Buffer.concat([...Array(24).keys()].map((i) => pcrs.get('sha1')!.get(i)!));
    expect(hex(d)).toBe(createHash('sha1').update(ordered).digest('hex'));
  });
});

describe('TPMS_CREATION_DATA / TPM2B_CREATION_DATA', () => {
  it('parses the real AK creation data and round-trips it, bare and sized', () => {
    const c = loadGcpCapture();
    const cd = parseTpmsCreationData(c.createData);
    expect(cd.pcrSelect).toEqual([]);
    expect(hex(cd.pcrDigest)).toBe(createHash('sha256').update('').digest('hex'));
    expect(cd.locality).toBe(1);
    expect(cd.parentNameAlg).toBe(TPM_ALG.SHA256);
    expect(cd.parentName).toHaveLength(34);
    expect(cd.parentQualifiedName).toHaveLength(34);
    expect(cd.outsideInfo).toHaveLength(0);
    expect(hex(marshalTpmsCreationData(cd))).toBe(hex(c.createData));
    const sized = marshalTpm2bCreationData(cd);
    expect(sized.length).toBe(c.createData.length + 2);
    expect(parseTpm2bCreationData(sized)).toEqual(cd);
  });

  it('names the broken field', () => {
    const c = loadGcpCapture();
    const bad = new Uint8Array(c.createData);
    bad[4 + 2 + 32 + 1] = 0x00;
    bad[4 + 2 + 32 + 2] = 0x06;
    expect(errorOf(() => parseTpmsCreationData(bad))).toBe(
      'ERR_TPM_PARSE: TPMS_CREATION_DATA.parentNameAlg: 0x0006 (aes) is not a hash algorithm',
    );
    expect(errorOf(() => parseTpm2bCreationData(Uint8Array.of(0, 200, ...c.createData)))).toBe(
      `ERR_TPM_PARSE: TPM2B_CREATION_DATA.creationData: size 200 exceeds the remaining ${c.createData.length} bytes`,
    );
  });
});
