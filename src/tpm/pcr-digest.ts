/**
 * The PCR digest of a quote (TPM 2.0 Part 3 §18.4 TPM2_Quote): the hash, with the signing
 * scheme's hash algorithm, of the concatenated values of the selected PCRs — banks in the
 * order of the TPML_PCR_SELECTION, indices ascending within a bank.
 */
import { createHash } from 'node:crypto';
import { tpmError } from './errors.js';
import { algText, type PcrBank, type TpmHash, tpmHashByAlg } from './hash.js';
import { type PcrSelection, pcrSelectionIndices } from './pcr-selection.js';

/** PCR values by bank, then by index. */
export type PcrValues = ReadonlyMap<PcrBank, ReadonlyMap<number, Uint8Array>>;

/**
 * Orders the values of `pcrs` that `selection` selects as the TPM digests them. Only values
 * of selected PCRs are taken.
 *
 * @throws SpireEdgeError `ERR_TPM_QUOTE_INVALID` when a bank is unknown or selected twice, a
 *   selected value is missing, or a value's length is not its bank's digest size.
 */
export function selectedPcrValues(
  selection: readonly PcrSelection[],
  pcrs: PcrValues,
): Array<{ bank: PcrBank; index: number; value: Uint8Array }> {
  const out: Array<{ bank: PcrBank; index: number; value: Uint8Array }> = [];
  const seen = new Set<number>();
  for (const sel of selection) {
    const h = tpmHashByAlg(sel.hashAlg);
    if (h === undefined) {
      throw tpmError('ERR_TPM_QUOTE_INVALID', `PCR bank ${algText(sel.hashAlg)} is not a hash`);
    }
    if (seen.has(sel.hashAlg)) {
      throw tpmError('ERR_TPM_QUOTE_INVALID', `PCR bank ${h.bank} is selected more than once`);
    }
    seen.add(sel.hashAlg);
    const bank = pcrs.get(h.bank);
    for (const index of pcrSelectionIndices(sel)) {
      const value = bank?.get(index);
      if (value === undefined) {
        throw tpmError(
          'ERR_TPM_QUOTE_INVALID',
          `PCR ${h.bank}:${index} is in the quoted selection but no value was given`,
        );
      }
      if (!(value instanceof Uint8Array) || value.length !== h.size) {
        throw tpmError(
          'ERR_TPM_QUOTE_INVALID',
          `PCR ${h.bank}:${index} value is ${value?.length ?? 0} bytes, the bank's digest is ${h.size}`,
        );
      }
      out.push({ bank: h.bank, index, value });
    }
  }
  return out;
}

/**
 * The quote PCR digest of the selected values of `pcrs`, hashed with `hash` (the signing
 * scheme's hash, a {@link TpmHash}).
 *
 * @throws SpireEdgeError `ERR_TPM_QUOTE_INVALID` as {@link selectedPcrValues}.
 */
export function computePcrDigest(
  selection: readonly PcrSelection[],
  pcrs: PcrValues,
  hash: TpmHash,
): Uint8Array {
  const h = createHash(hash.node);
  for (const { value } of selectedPcrValues(selection, pcrs)) h.update(value);
  return new Uint8Array(h.digest());
}
