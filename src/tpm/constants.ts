/**
 * TPM 2.0 constants used by the codecs and verifiers: algorithm identifiers, structure tags,
 * object attribute bits, ECC curves and the size limits the parsers enforce.
 *
 * Values are from TCG TPM 2.0 Library Part 2 (Structures) §6 (constants), §8.3 (TPMA_OBJECT)
 * and §10–12 (structures); the TCG Algorithm Registry for algorithm and curve identifiers.
 */

/** TPM_ALG_ID values (Part 2 §6.3, TCG Algorithm Registry). */
export const TPM_ALG = {
  ERROR: 0x0000,
  RSA: 0x0001,
  TDES: 0x0003,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  MGF1: 0x0007,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  SM3_256: 0x0012,
  SM4: 0x0013,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  ECMQV: 0x001d,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CAMELLIA: 0x0026,
  SHA3_256: 0x0027,
  SHA3_384: 0x0028,
  SHA3_512: 0x0029,
  CTR: 0x0040,
  OFB: 0x0041,
  CBC: 0x0042,
  CFB: 0x0043,
  ECB: 0x0044,
} as const;

/** TPM_ST structure tags of attestation structures (Part 2 §6.9). */
export const TPM_ST = {
  ATTEST_NV: 0x8014,
  ATTEST_COMMAND_AUDIT: 0x8015,
  ATTEST_SESSION_AUDIT: 0x8016,
  ATTEST_CERTIFY: 0x8017,
  ATTEST_QUOTE: 0x8018,
  ATTEST_TIME: 0x8019,
  ATTEST_CREATION: 0x801a,
  ATTEST_NV_DIGEST: 0x801c,
} as const;

/** TPM_GENERATED_VALUE: the magic every TPMS_ATTEST starts with ("\xffTCG", Part 2 §6.2). */
export const TPM_GENERATED_VALUE = 0xff544347;

/** TPMA_OBJECT bits (Part 2 §8.3.2). */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  signEncrypt: 1 << 18,
  x509sign: 1 << 19,
} as const;

/** The TPMA_OBJECT bits Part 2 §8.3.2 reserves (must be clear). */
export const TPMA_OBJECT_RESERVED = 0xfff0f309;

/** TPM_ECC_CURVE values (Part 2 §6.4, TCG Algorithm Registry). */
export const TPM_ECC = {
  NIST_P192: 0x0001,
  NIST_P224: 0x0002,
  NIST_P256: 0x0003,
  NIST_P384: 0x0004,
  NIST_P521: 0x0005,
  BN_P256: 0x0010,
  BN_P638: 0x0011,
  SM2_P256: 0x0020,
} as const;

/**
 * Size limits (bytes) of the TPM2B buffers, from Part 2's `sizeof` definitions with the
 * largest values an implementation may choose (so a real TPM's output always fits):
 * TPMU_HA is at most a SHA-512 / SHA3-512 digest; MAX_RSA_KEY_BYTES is 512 (RSA-4096);
 * MAX_ECC_KEY_BYTES is 80 (BN P638, the largest registered curve).
 */
export const TPM_LIMITS = {
  /** sizeof(TPMU_HA): TPM2B_DIGEST, TPM2B_AUTH. */
  digest: 64,
  /** sizeof(TPMT_HA): TPM2B_DATA, TPM2B_NONCE. */
  data: 66,
  /** sizeof(TPMU_NAME) = sizeof(TPMT_HA): TPM2B_NAME. */
  name: 66,
  /** MAX_RSA_KEY_BYTES: TPM2B_PUBLIC_KEY_RSA. */
  rsaKey: 512,
  /** MAX_ECC_KEY_BYTES: TPM2B_ECC_PARAMETER. */
  eccKey: 80,
  /** sizeof(TPMU_ENCRYPTED_SECRET): the RSA member (MAX_RSA_KEY_BYTES) is the largest. */
  encryptedSecret: 512,
  /** sizeof(TPMS_ID_OBJECT): two TPM2B_DIGEST. */
  idObject: 2 * (2 + 64),
  /** HASH_COUNT bound on TPML_PCR_SELECTION.count (tpm2-tss uses 16 banks). */
  pcrBanks: 16,
  /** PCR_SELECT_MAX: sizeofSelect bound (32 PCRs, as tpm2-tss defines it). */
  pcrSelect: 4,
  /**
   * sizeof(TPMT_PUBLIC): type, nameAlg, objectAttributes (8) + authPolicy (2 + 64) + the
   * largest parameters (ECC: symmetric 6, scheme 6, curveID 2, kdf 4 = 18) + the largest
   * unique (RSA: 2 + 512).
   */
  public: 8 + 66 + 18 + 514,
} as const;
