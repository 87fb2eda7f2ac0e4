/**
 * TPM device access (I/O): the {@link Tpm} interface and its implementation over the native
 * tpm2-tss addon. Parsing and verification of what a TPM returns live in src/tpm (pure).
 */
export { EK_CERT_NV_INDICES, EK_LOCATIONS, type EkLocation } from './ek-profile.js';
export { type OpenTpmOptions, openTpm } from './open-tpm.js';
export { decodeSealedBlob, encodeSealedBlob, type SealedBlob } from './sealed-blob.js';
export type {
  AkAlgorithm,
  AkBlobs,
  Credential,
  EkAlgorithm,
  LoadedAk,
  PcrBank,
  PcrSelection,
  SealOptions,
  Tpm,
  TpmHandleKind,
  TpmQuote,
} from './tpm.js';
export { hasTpmRc, TPM_RC, tpmError, tpmRcBase } from './tpm-error.js';
