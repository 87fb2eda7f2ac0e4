/**
 * TPMS_CREATION_DATA / TPM2B_CREATION_DATA (TPM 2.0 Part 2 §15.1–15.2): the state a TPM
 * records when it creates an object. TPM2_CertifyCreation signs its hash (creationHash in
 * TPMS_CREATION_INFO), so a verifier that checks that hash learns the PCRs, locality and
 * parent the object was created under.
 */
import { TPM_ALG, TPM_LIMITS } from './constants.js';
import { algText, tpmHashByAlg } from './hash.js';
import { type PcrSelection, readPcrSelectionList, writePcrSelectionList } from './pcr-selection.js';
import { parseWhole, type TpmReader } from './reader.js';
import { marshalWith, type TpmWriter } from './writer.js';

/** TPMS_CREATION_DATA. Byte fields are views into the parsed input. */
export interface TpmsCreationData {
  readonly pcrSelect: readonly PcrSelection[];
  readonly pcrDigest: Uint8Array;
  /** TPMA_LOCALITY bits. */
  readonly locality: number;
  /** nameAlg of the parent (TPM_ALG_NULL for a primary object). */
  readonly parentNameAlg: number;
  readonly parentName: Uint8Array;
  readonly parentQualifiedName: Uint8Array;
  /** The caller's outsideInfo. */
  readonly outsideInfo: Uint8Array;
}

/** Reads a TPMS_CREATION_DATA at the reader's position. */
export function readTpmsCreationData(r: TpmReader): TpmsCreationData {
  const pcrSelect = readPcrSelectionList(r, 'pcrSelect');
  const pcrDigest = r.tpm2b('pcrDigest', TPM_LIMITS.digest);
  const locality = r.u8('locality');
  const parentNameAlg = r.u16('parentNameAlg');
  if (parentNameAlg !== TPM_ALG.NULL && tpmHashByAlg(parentNameAlg) === undefined) {
    r.fail('parentNameAlg', `${algText(parentNameAlg)} is not a hash algorithm`);
  }
  const parentName = r.tpm2b('parentName', TPM_LIMITS.name);
  const parentQualifiedName = r.tpm2b('parentQualifiedName', TPM_LIMITS.name);
  const outsideInfo = r.tpm2b('outsideInfo', TPM_LIMITS.data);
  return {
    pcrSelect,
    pcrDigest,
    locality,
    parentNameAlg,
    parentName,
    parentQualifiedName,
    outsideInfo,
  };
}

/**
 * Parses a marshalled TPMS_CREATION_DATA (no size prefix — go-attestation's `CreateData`),
 * refusing trailing bytes.
 *
 * @throws SpireEdgeError `ERR_TPM_PARSE` naming the field.
 */
export function parseTpmsCreationData(bytes: Uint8Array): TpmsCreationData {
  return parseWhole(bytes, 'TPMS_CREATION_DATA', readTpmsCreationData);
}

/**
 * Parses a marshalled TPM2B_CREATION_DATA (UINT16 size || TPMS_CREATION_DATA, as
 * TPM2_Create returns it), refusing trailing bytes and a size that does not match.
 *
 * @throws SpireEdgeError `ERR_TPM_PARSE` naming the field.
 */
export function parseTpm2bCreationData(bytes: Uint8Array): TpmsCreationData {
  return parseWhole(bytes, 'TPM2B_CREATION_DATA', (r) =>
    r.sized('creationData', 0xffff, readTpmsCreationData),
  );
}

/** Writes a TPMS_CREATION_DATA. */
export function writeTpmsCreationData(w: TpmWriter, c: TpmsCreationData): void {
  writePcrSelectionList(w, c.pcrSelect);
  w.tpm2b(c.pcrDigest, TPM_LIMITS.digest, 'pcrDigest')
    .u8(c.locality, 'locality')
    .u16(c.parentNameAlg, 'parentNameAlg')
    .tpm2b(c.parentName, TPM_LIMITS.name, 'parentName')
    .tpm2b(c.parentQualifiedName, TPM_LIMITS.name, 'parentQualifiedName')
    .tpm2b(c.outsideInfo, TPM_LIMITS.data, 'outsideInfo');
}

/** Marshals a TPMS_CREATION_DATA (no size prefix): the bytes creationHash covers. */
export function marshalTpmsCreationData(c: TpmsCreationData): Uint8Array {
  return marshalWith((w) => writeTpmsCreationData(w, c));
}

/** Marshals a TPM2B_CREATION_DATA. */
export function marshalTpm2bCreationData(c: TpmsCreationData): Uint8Array {
  return marshalWith((w) => w.sized((x) => writeTpmsCreationData(x, c), 0xffff));
}
