/**
 * TPM hash algorithms: their TPM_ALG_ID, digest size, the PCR bank name used across this
 * project (`sha256`, as in `tpm:pcr:sha256:7:…` selectors and tpm2-tools' `-l sha256:0,1`)
 * and the node:crypto name.
 */
import { TPM_ALG } from './constants.js';

/** A PCR bank / hash algorithm name. */
export type PcrBank =
  | 'sha1'
  | 'sha256'
  | 'sha384'
  | 'sha512'
  | 'sm3_256'
  | 'sha3_256'
  | 'sha3_384'
  | 'sha3_512';

/** What this code knows about one TPM hash algorithm. */
export interface TpmHash {
  /** The TPM_ALG_ID. */
  readonly alg: number;
  /** The bank name. */
  readonly bank: PcrBank;
  /** The digest size in bytes. */
  readonly size: number;
  /** The name node:crypto knows it by. */
  readonly node: string;
}

const HASHES: readonly TpmHash[] = [
  { alg: TPM_ALG.SHA1, bank: 'sha1', size: 20, node: 'sha1' },
  { alg: TPM_ALG.SHA256, bank: 'sha256', size: 32, node: 'sha256' },
  { alg: TPM_ALG.SHA384, bank: 'sha384', size: 48, node: 'sha384' },
  { alg: TPM_ALG.SHA512, bank: 'sha512', size: 64, node: 'sha512' },
  { alg: TPM_ALG.SM3_256, bank: 'sm3_256', size: 32, node: 'sm3' },
  { alg: TPM_ALG.SHA3_256, bank: 'sha3_256', size: 32, node: 'sha3-256' },
  { alg: TPM_ALG.SHA3_384, bank: 'sha3_384', size: 48, node: 'sha3-384' },
  { alg: TPM_ALG.SHA3_512, bank: 'sha3_512', size: 64, node: 'sha3-512' },
];

const BY_ALG = new Map(HASHES.map((h) => [h.alg, h]));
const BY_BANK = new Map(HASHES.map((h) => [h.bank, h]));

/** The hash with TPM_ALG_ID `alg`, or undefined when `alg` is not a known hash. */
export function tpmHashByAlg(alg: number): TpmHash | undefined {
  return BY_ALG.get(alg);
}

/** The hash of a PCR bank name, or undefined for an unknown name. */
export function tpmHashByBank(bank: string): TpmHash | undefined {
  return BY_BANK.get(bank as PcrBank);
}

/** Every known PCR bank name. */
export const PCR_BANKS: readonly PcrBank[] = HASHES.map((h) => h.bank);

/** `0x000b (sha256)`-style text for messages. */
export function algText(alg: number): string {
  const name = ALG_NAMES.get(alg);
  const hex = `0x${alg.toString(16).padStart(4, '0')}`;
  return name === undefined ? hex : `${hex} (${name})`;
}

const ALG_NAMES = new Map<number, string>(
  Object.entries(TPM_ALG).map(([name, value]) => [value, name.toLowerCase()]),
);
