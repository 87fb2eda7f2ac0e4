/**
 * The pure TPM 2.0 library: codecs for the structures a TPM returns, object names,
 * MakeCredential, quote verification, AK checks and EK certificates (TCG EK Credential
 * Profile). No I/O: the server verifies with it, the agent marshals with it, tests fuzz it.
 * Device access (the native addon adapter) lives in ./device, outside this pure folder.
 *
 * Error codes: see errors.ts (`ERR_TPM_PARSE`, `ERR_TPM_UNSUPPORTED`,
 * `ERR_TPM_QUOTE_INVALID`, `ERR_TPM_AK_INVALID`, `ERR_TPM_CREDENTIAL`,
 * `ERR_TPM_EK_CERT_INVALID`).
 */
export { checkAkAttributes } from './ak-attributes.js';
export type { CertifyInfo, ClockInfo, CreationInfo, QuoteInfo, TpmsAttest } from './attest.js';
export { marshalTpmsAttest, parseTpmsAttest } from './attest.js';
export {
  TPM_ALG,
  TPM_ECC,
  TPM_GENERATED_VALUE,
  TPM_LIMITS,
  TPM_ST,
  TPMA_OBJECT,
  TPMA_OBJECT_RESERVED,
} from './constants.js';
export type { TpmsCreationData } from './creation-data.js';
export {
  marshalTpm2bCreationData,
  marshalTpmsCreationData,
  parseTpm2bCreationData,
  parseTpmsCreationData,
} from './creation-data.js';
export type { IdObject } from './credential.js';
export {
  marshalTpm2bEncryptedSecret,
  marshalTpm2bIdObject,
  parseTpm2bEncryptedSecret,
  parseTpm2bIdObject,
} from './credential.js';
export type { EkCertificate, ParseEkCertificateOptions } from './ek-certificate.js';
export { ekCertMatchesPublic, parseEkCertificate, TCG_OID } from './ek-certificate.js';
export type { CertificateInput, VerifyEkChainOptions } from './ek-chain.js';
export { EkCaPool } from './ek-chain.js';
export type { TpmErrorCode } from './errors.js';
export type {
  EventLog,
  EventLogErrorCode,
  LogEvent,
  ParseEventLogOptions,
  SpecIdAlgorithm,
  SpecIdEvent,
} from './event-log.js';
export { EVENT_LOG_LIMITS, parseEventLog } from './event-log.js';
export type { EventLogCheck, EventLogSummary, ReplayedPcrs } from './event-log-replay.js';
export {
  checkEventLogAgainstPcrs,
  eventLogSummary,
  replayEventLog,
  secureBootState,
} from './event-log-replay.js';
export type { PcrBank, TpmHash } from './hash.js';
export { algText, PCR_BANKS, tpmHashByAlg, tpmHashByBank } from './hash.js';
export { kdfa, kdfe } from './kdf.js';
export type { MadeCredential, MakeCredentialInput } from './make-credential.js';
export { makeCredential } from './make-credential.js';
export { objectName } from './object-name.js';
export type { PcrValues } from './pcr-digest.js';
export { computePcrDigest, selectedPcrValues } from './pcr-digest.js';
export type { PcrSelection } from './pcr-selection.js';
export {
  marshalTpmlPcrSelection,
  parseTpmlPcrSelection,
  pcrSelection,
  pcrSelectionIndices,
} from './pcr-selection.js';
export type {
  AsymScheme,
  EccParms,
  EccPoint,
  EccPublic,
  KdfScheme,
  KeyedHashPublic,
  KeyedHashScheme,
  RsaParms,
  RsaPublic,
  SymCipherPublic,
  SymDefObject,
  TpmtPublic,
} from './public-area.js';
export {
  marshalTpm2bPublic,
  marshalTpmtPublic,
  parseTpm2bPublic,
  parseTpmtPublic,
} from './public-area.js';
export { pubHash, publicKeyFromTpmtPublic, spkiFromTpmtPublic } from './public-key.js';
export { TpmReader, tpmParseError } from './reader.js';
export type {
  EccSignature,
  HmacSignature,
  NullSignature,
  RsaSignature,
  TpmtSignature,
} from './signature.js';
export { marshalTpmtSignature, parseTpmtSignature } from './signature.js';
export type { VerifiedQuote, VerifyQuoteInput } from './verify-quote.js';
export { verifyQuote } from './verify-quote.js';
export type { SignatureCheckOptions } from './verify-signature.js';
export { verifyTpmSignature } from './verify-signature.js';
export { marshalWith, TpmWriter } from './writer.js';
