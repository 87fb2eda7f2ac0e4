/**
 * TPMS_ATTEST (TPM 2.0 Part 2 §10.12.12): the structure a TPM signs for TPM2_Quote,
 * TPM2_Certify and TPM2_CertifyCreation. Parsed and marshalled (marshalling is for tests,
 * tools and fuzzing; verifiers check signatures over the bytes they received).
 *
 * The parser checks structure only. It does not check the magic, the signature or anything
 * the contents claim: see verify-quote.ts.
 */
import { TPM_LIMITS, TPM_ST } from './constants.js';
import { type PcrSelection, readPcrSelectionList, writePcrSelectionList } from './pcr-selection.js';
import { parseWhole, type TpmReader } from './reader.js';
import { marshalWith, type TpmWriter } from './writer.js';

/** TPMS_CLOCK_INFO (Part 2 §10.11.1). */
export interface ClockInfo {
  /** Milliseconds the TPM has been powered since its last TPM2_Clear (not wall time). */
  readonly clock: bigint;
  /** TPM resets (reboots without TPM2_Shutdown(STATE) / resume) since TPM2_Clear. */
  readonly resetCount: number;
  /** TPM2_Shutdown(STATE) + resume cycles since the last reset. */
  readonly restartCount: number;
  /** NO when the clock may have been set back since it was last reported. */
  readonly safe: boolean;
}

/** TPMS_QUOTE_INFO (Part 2 §10.12.4). */
export interface QuoteInfo {
  readonly kind: 'quote';
  readonly pcrSelect: readonly PcrSelection[];
  readonly pcrDigest: Uint8Array;
}

/** TPMS_CERTIFY_INFO (Part 2 §10.12.3). */
export interface CertifyInfo {
  readonly kind: 'certify';
  readonly name: Uint8Array;
  readonly qualifiedName: Uint8Array;
}

/** TPMS_CREATION_INFO (Part 2 §10.12.7). */
export interface CreationInfo {
  readonly kind: 'creation';
  readonly objectName: Uint8Array;
  readonly creationHash: Uint8Array;
}

/** TPMS_ATTEST. Byte fields are views into the parsed input. */
export interface TpmsAttest {
  /** Must be TPM_GENERATED_VALUE (0xff544347) for TPM-produced data. */
  readonly magic: number;
  /** TPM_ST_ATTEST_* (matches `attested.kind`). */
  readonly type: number;
  /** Qualified name of the signing key. */
  readonly qualifiedSigner: Uint8Array;
  /** The caller's qualifying data (the nonce). */
  readonly extraData: Uint8Array;
  readonly clockInfo: ClockInfo;
  /** Vendor-specific firmware version. */
  readonly firmwareVersion: bigint;
  readonly attested: QuoteInfo | CertifyInfo | CreationInfo;
}

/** Reads a TPMS_ATTEST at the reader's position. */
export function readTpmsAttest(r: TpmReader): TpmsAttest {
  const magic = r.u32('magic');
  const type = r.u16('type');
  const qualifiedSigner = r.tpm2b('qualifiedSigner', TPM_LIMITS.name);
  const extraData = r.tpm2b('extraData', TPM_LIMITS.data);
  const clockInfo = r.scope('clockInfo', () => ({
    clock: r.u64('clock'),
    resetCount: r.u32('resetCount'),
    restartCount: r.u32('restartCount'),
    safe: r.yesNo('safe'),
  }));
  const firmwareVersion = r.u64('firmwareVersion');
  const attested = r.scope('attested', (): TpmsAttest['attested'] => {
    switch (type) {
      case TPM_ST.ATTEST_QUOTE:
        return {
          kind: 'quote',
          pcrSelect: readPcrSelectionList(r, 'pcrSelect'),
          pcrDigest: r.tpm2b('pcrDigest', TPM_LIMITS.digest),
        };
      case TPM_ST.ATTEST_CERTIFY:
        return {
          kind: 'certify',
          name: r.tpm2b('name', TPM_LIMITS.name),
          qualifiedName: r.tpm2b('qualifiedName', TPM_LIMITS.name),
        };
      case TPM_ST.ATTEST_CREATION:
        return {
          kind: 'creation',
          objectName: r.tpm2b('objectName', TPM_LIMITS.name),
          creationHash: r.tpm2b('creationHash', TPM_LIMITS.digest),
        };
      default:
        return r.fail(
          '',
          `type 0x${type.toString(16).padStart(4, '0')} is not supported (quote 0x8018, certify 0x8017, creation 0x801a)`,
        );
    }
  });
  return { magic, type, qualifiedSigner, extraData, clockInfo, firmwareVersion, attested };
}

/**
 * Parses a marshalled TPMS_ATTEST (the contents of a TPM2B_ATTEST: what tpm2-tools writes
 * with `tpm2_quote -m`, go-attestation's `Quote.Quote`), refusing trailing bytes.
 *
 * @throws SpireEdgeError `ERR_TPM_PARSE` naming the field.
 */
export function parseTpmsAttest(bytes: Uint8Array): TpmsAttest {
  return parseWhole(bytes, 'TPMS_ATTEST', readTpmsAttest);
}

const TYPE_OF_KIND = {
  quote: TPM_ST.ATTEST_QUOTE,
  certify: TPM_ST.ATTEST_CERTIFY,
  creation: TPM_ST.ATTEST_CREATION,
} as const;

/** Writes a TPMS_ATTEST. */
export function writeTpmsAttest(w: TpmWriter, a: TpmsAttest): void {
  if (a.type !== TYPE_OF_KIND[a.attested.kind]) {
    throw new TypeError(
      `type 0x${a.type.toString(16)} does not match attested.kind ${a.attested.kind}`,
    );
  }
  w.u32(a.magic, 'magic')
    .u16(a.type, 'type')
    .tpm2b(a.qualifiedSigner, TPM_LIMITS.name, 'qualifiedSigner')
    .tpm2b(a.extraData, TPM_LIMITS.data, 'extraData')
    .u64(a.clockInfo.clock, 'clockInfo.clock')
    .u32(a.clockInfo.resetCount, 'clockInfo.resetCount')
    .u32(a.clockInfo.restartCount, 'clockInfo.restartCount')
    .u8(a.clockInfo.safe ? 1 : 0)
    .u64(a.firmwareVersion, 'firmwareVersion');
  const at = a.attested;
  switch (at.kind) {
    case 'quote':
      writePcrSelectionList(w, at.pcrSelect);
      w.tpm2b(at.pcrDigest, TPM_LIMITS.digest, 'pcrDigest');
      return;
    case 'certify':
      w.tpm2b(at.name, TPM_LIMITS.name, 'name');
      w.tpm2b(at.qualifiedName, TPM_LIMITS.name, 'qualifiedName');
      return;
    case 'creation':
      w.tpm2b(at.objectName, TPM_LIMITS.name, 'objectName');
      w.tpm2b(at.creationHash, TPM_LIMITS.digest, 'creationHash');
      return;
  }
}

/** Marshals a TPMS_ATTEST. */
export function marshalTpmsAttest(a: TpmsAttest): Uint8Array {
  return marshalWith((w) => writeTpmsAttest(w, a), 256);
}
