/**
 * The SPIFFE library: pure (no I/O), exact to the SPIFFE standards. Shared by the server, the
 * agent and users' own code; exported from the package root.
 */
export type { Bundle } from './bundle-set.js';
export { BundleSet } from './bundle-set.js';
export type { JwtAuthority, JwtBundleSource, X509BundleSource } from './bundle-source.js';
export type { CsrAttribute, ParsedCsr } from './csr.js';
export { parseCsr } from './csr.js';
export {
  isValidSpiffeId,
  MAX_SPIFFE_ID_LENGTH,
  MAX_TRUST_DOMAIN_LENGTH,
  parseSpiffeId,
  parseTrustDomain,
  SpiffeId,
  spiffeIdFromPath,
  spiffeIdFromSegments,
  TrustDomain,
  toSpiffeId,
  toTrustDomain,
} from './id.js';
export {
  JWT_AUTHORITY_KEY_TYPES,
  JwtBundle,
  jwtAuthorityEquals,
  jwtAuthorityFromKey,
  jwtAuthorityPublicKey,
  parseJwtBundle,
} from './jwt-bundle.js';
export type {
  JwtSvid,
  JwtSvidAlgorithm,
  JwtSvidHeader,
  JwtSvidRule,
  MintJwtSvidOptions,
  ValidateJwtSvidOptions,
} from './jwt-svid.js';
export {
  DEFAULT_JWT_SVID_LEEWAY_SECONDS,
  JWT_SVID_ALGORITHMS,
  mintJwtSvid,
  parseJwtSvidInsecure,
  validateJwtSvid,
} from './jwt-svid.js';
export type { SpiffeIdMatcher } from './match.js';
export { matchAny, matchId, matchMemberOf, matchOneOf } from './match.js';
export type { SpiffeBundleInit } from './spiffe-bundle.js';
export {
  JWT_SVID_USE,
  marshalSpiffeBundle,
  parseSpiffeBundle,
  SpiffeBundle,
  X509_SVID_USE,
} from './spiffe-bundle.js';
export { parseX509Bundle, splitDerCertificates, X509Bundle } from './x509-bundle.js';
export type { AlgorithmIdentifier, ParsedCertificate, SignatureOptions } from './x509-cert.js';
export {
  certificatePublicKey,
  isSelfIssued,
  parseCertificate,
  parseCertificates,
  splitCertificates,
  verifyCertificateSignature,
} from './x509-cert.js';
export type {
  MintX509CaOptions,
  MintX509SvidFromCsrOptions,
  MintX509SvidOptions,
  X509SvidMinterOptions,
} from './x509-mint.js';
export {
  DEFAULT_X509_CA_SUBJECT,
  DEFAULT_X509_SVID_SUBJECT,
  mintX509CaCertificate,
  mintX509SvidFromCsr,
  X509SvidMinter,
} from './x509-mint.js';
export type { ParseX509SvidOptions, X509SvidInit } from './x509-svid.js';
export { parseX509Svid, parseX509SvidRaw, X509Svid } from './x509-svid.js';
export type { VerifiedX509Svid, VerifyX509SvidOptions } from './x509-verify.js';
export { MAX_X509_CHAIN_LENGTH, MAX_X509_PATH_LENGTH, verifyX509Svid } from './x509-verify.js';
