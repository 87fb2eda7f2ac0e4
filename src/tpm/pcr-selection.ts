/**
 * TPML_PCR_SELECTION (TPM 2.0 Part 2 §10.9.7): which PCRs of which banks a quote covers.
 * Each TPMS_PCR_SELECTION is a hash algorithm and a bitmap, PCR `i` being bit `i % 8` of
 * byte `i / 8`.
 */
import { TPM_LIMITS } from './constants.js';
import { algText, type PcrBank, tpmHashByAlg, tpmHashByBank } from './hash.js';
import { parseWhole, type TpmReader } from './reader.js';
import { marshalWith, type TpmWriter } from './writer.js';

/** TPMS_PCR_SELECTION: a bank and its bitmap (`pcrSelect`, as marshalled). */
export interface PcrSelection {
  /** The bank's hash (TPMI_ALG_HASH). */
  readonly hashAlg: number;
  /** The bitmap; its length is sizeofSelect. */
  readonly pcrSelect: Uint8Array;
}

/** Reads a TPML_PCR_SELECTION at the reader's position. */
export function readPcrSelectionList(r: TpmReader, field = 'pcrSelect'): PcrSelection[] {
  return r.scope(field, () => {
    const count = r.u32('count');
    if (count > TPM_LIMITS.pcrBanks) {
      r.fail('count', `${count} banks exceeds the maximum ${TPM_LIMITS.pcrBanks}`);
    }
    const out: PcrSelection[] = [];
    for (let i = 0; i < count; i++) {
      out.push(
        r.scope(`pcrSelections[${i}]`, () => {
          const hashAlg = r.u16('hash');
          if (tpmHashByAlg(hashAlg) === undefined) {
            r.fail('hash', `${algText(hashAlg)} is not a hash algorithm`);
          }
          const size = r.u8('sizeofSelect');
          if (size > TPM_LIMITS.pcrSelect) {
            r.fail('sizeofSelect', `${size} exceeds the maximum ${TPM_LIMITS.pcrSelect}`);
          }
          return { hashAlg, pcrSelect: r.bytes('pcrSelect', size) };
        }),
      );
    }
    return out;
  });
}

/** Writes a TPML_PCR_SELECTION. */
export function writePcrSelectionList(w: TpmWriter, list: readonly PcrSelection[]): void {
  if (list.length > TPM_LIMITS.pcrBanks) throw new TypeError('too many PCR banks');
  w.u32(list.length, 'count');
  for (const s of list) {
    if (s.pcrSelect.length > TPM_LIMITS.pcrSelect) throw new TypeError('pcrSelect is too long');
    w.u16(s.hashAlg, 'hash').u8(s.pcrSelect.length, 'sizeofSelect').bytes(s.pcrSelect);
  }
}

/**
 * Parses a marshalled TPML_PCR_SELECTION, refusing trailing bytes.
 *
 * @throws SpireEdgeError `ERR_TPM_PARSE` naming the field.
 */
export function parseTpmlPcrSelection(bytes: Uint8Array): PcrSelection[] {
  return parseWhole(bytes, 'TPML_PCR_SELECTION', (r) => readPcrSelectionList(r, 'pcrSelections'));
}

/** Marshals a TPML_PCR_SELECTION. */
export function marshalTpmlPcrSelection(list: readonly PcrSelection[]): Uint8Array {
  return marshalWith((w) => writePcrSelectionList(w, list), 8 + list.length * 7);
}

/** The PCR indices a selection selects, ascending (the order the TPM digests them in). */
export function pcrSelectionIndices(sel: PcrSelection): number[] {
  const out: number[] = [];
  for (let byte = 0; byte < sel.pcrSelect.length; byte++) {
    const b = sel.pcrSelect[byte]!;
    if (b === 0) continue;
    for (let bit = 0; bit < 8; bit++) if (b & (1 << bit)) out.push(byte * 8 + bit);
  }
  return out;
}

/**
 * Builds a TPMS_PCR_SELECTION for `bank` and `indices` with a bitmap of `sizeofSelect`
 * bytes (3, for 24 PCRs, unless an index needs more).
 */
export function pcrSelection(
  bank: PcrBank,
  indices: readonly number[],
  sizeofSelect = 3,
): PcrSelection {
  const h = tpmHashByBank(bank);
  if (h === undefined) throw new TypeError(`unknown PCR bank ${bank}`);
  let size = sizeofSelect;
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0 || i >= TPM_LIMITS.pcrSelect * 8) {
      throw new TypeError(`PCR index ${i} is out of range`);
    }
    size = Math.max(size, (i >> 3) + 1);
  }
  const pcrSelect = new Uint8Array(size);
  for (const i of indices) pcrSelect[i >> 3]! |= 1 << (i & 7);
  return { hashAlg: h.alg, pcrSelect };
}
