/**
 * The `Tpm` interface: what the agent, `tpm-enroll` and the tests need from a TPM 2.0, and
 * nothing more. The implementation over the native tpm2-tss addon is {@link openTpm}
 * (./open-tpm.ts).
 *
 * Everything a `Tpm` returns is **unverified data** from the device: marshalled TPM structures
 * (TPM2B_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE) to be parsed and checked by the pure codecs and
 * verifiers in src/tpm. A `Tpm` never decides whether a quote or an EK is acceptable.
 */

/**
 * EK key types, each derived from the default template of the TCG EK Credential Profile 2.x:
 * `rsa` = L-1 (RSA 2048, certificate at NV 0x01C00002), `ecc-p256` = L-2 (NIST P-256, NV
 * 0x01C0000A), `ecc-p384` = H-3 (NIST P-384, high range, NV 0x01C00016 — swtpm's ECC EK).
 */
export type EkAlgorithm = 'rsa' | 'ecc-p256' | 'ecc-p384';

/** AK key types: ECC NIST P-256 signing with ECDSA-SHA256, or RSA-2048 with RSASSA-SHA256. */
export type AkAlgorithm = 'ecc-p256' | 'rsa-2048';

/** PCR banks a selection may name. */
export type PcrBank = 'sha1' | 'sha256' | 'sha384' | 'sha512';

/** PCRs of one bank: indices 0..23, each at most once. */
export interface PcrSelection {
  readonly bank: PcrBank;
  readonly indices: readonly number[];
}

/**
 * An AK as created under an EK: the wrapped private part and the public area, both marshalled
 * (TPM2B_PRIVATE, TPM2B_PUBLIC) exactly as the TPM produced them, plus its name. Safe to
 * store (the private part is encrypted to its parent, the EK, and usable only in this TPM);
 * the agent keeps it in its store and loads it on every start.
 */
export interface AkBlobs {
  /** The EK the AK was created under: loading and credential activation use that EK. */
  readonly ek: EkAlgorithm;
  readonly alg: AkAlgorithm;
  /** Marshalled TPM2B_PRIVATE. */
  readonly private: Uint8Array;
  /** Marshalled TPM2B_PUBLIC (what the server parses and checks: restricted, sign, …). */
  readonly public: Uint8Array;
  /** The object name (nameAlg ‖ H(TPMT_PUBLIC)): what MakeCredential binds the secret to. */
  readonly name: Uint8Array;
}

/**
 * An AK loaded in the TPM by {@link Tpm.loadAk}; valid until flushed or the `Tpm` closes, and
 * only with the `Tpm` that loaded it (others refuse it with TypeError).
 */
export interface LoadedAk {
  /** The ESYS handle (opaque, meaningful only to the `Tpm` that loaded it). */
  readonly handle: number;
  readonly ek: EkAlgorithm;
  readonly alg: AkAlgorithm;
  /** Marshalled TPM2B_PUBLIC. */
  readonly public: Uint8Array;
  /** The name the TPM reports for the loaded key (checked against the blobs' name). */
  readonly name: Uint8Array;
}

/** A TPM2_Quote result, as the TPM produced it (unverified). */
export interface TpmQuote {
  /** TPMS_ATTEST (the TPM2B_ATTEST contents): the signed message. */
  readonly quoted: Uint8Array;
  /** Marshalled TPMT_SIGNATURE over `quoted`. */
  readonly signature: Uint8Array;
}

/**
 * A credential from MakeCredential (TPM 2.0 Part 1, 24), as TPM2_ActivateCredential takes it:
 * the *marshalled* TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET, each with its 2-byte size —
 * what src/tpm's `makeCredential` returns, and what tpm2_makecredential writes after its
 * 8-byte header.
 */
export interface Credential {
  /** Marshalled TPM2B_ID_OBJECT (`credentialBlob`: integrityHMAC ‖ encIdentity). */
  readonly idObject: Uint8Array;
  /** Marshalled TPM2B_ENCRYPTED_SECRET (`secret`: the seed protected to the EK). */
  readonly encryptedSecret: Uint8Array;
}

/** Options of {@link Tpm.seal}. */
export interface SealOptions {
  /**
   * Bind the sealed data to the *current* values of these PCRs (PolicyPCR): unseal fails with
   * `ERR_TPM_RC` (TPM_RC_POLICY_FAIL) once any of them changes.
   */
  readonly pcrs?: PcrSelection;
}

/** Kinds of handle {@link Tpm.handles} lists. */
export type TpmHandleKind = 'transient' | 'persistent' | 'loaded-session';

/**
 * A TPM 2.0. Calls are serialised (one command at a time per `Tpm`), so concurrent callers
 * simply queue; every call may take hundreds of milliseconds on a discrete TPM, so never call
 * one on a path a workload waits on.
 *
 * Errors: `ERR_TPM_RC` (`details.rc`, `details.rcText`, `details.op`: the TSS2_RC, its
 * Tss2_RC_Decode text and the failing TSS call), `ERR_TPM_BLOB_INVALID` (stored blobs the TSS
 * cannot unmarshal, or whose name does not match), `ERR_TPM_SEALED_BLOB_INVALID`,
 * `ERR_TPM_PCR_UNAVAILABLE` (readPcrs of a bank the TPM has not activated),
 * `ERR_TPM_CLOSED` (called after close()); bad arguments throw TypeError.
 */
export interface Tpm {
  /**
   * The DER EK certificate the manufacturer stored in NV for `alg`, or `undefined` when that
   * index does not exist. Returned as read: NV areas are often larger than the certificate,
   * and the trailing padding is left for the certificate parser.
   */
  readEkCertificate(alg: EkAlgorithm): Promise<Uint8Array | undefined>;
  /** The EK's marshalled TPM2B_PUBLIC (from its persistent handle or re-derived from the template). */
  ekPublic(alg: EkAlgorithm): Promise<Uint8Array>;
  /** Creates a new AK under the EK (`ek`, default `rsa`); not loaded. */
  createAk(alg: AkAlgorithm, options?: { readonly ek?: EkAlgorithm }): Promise<AkBlobs>;
  /** Loads stored AK blobs under their EK. */
  loadAk(blobs: AkBlobs): Promise<LoadedAk>;
  /** Flushes a loaded AK (close() flushes whatever is still loaded). */
  flushAk(ak: LoadedAk): Promise<void>;
  /** PCR values, by index, in ascending order. */
  readPcrs(selection: PcrSelection): Promise<ReadonlyMap<number, Uint8Array>>;
  /** TPM2_Quote with the AK over `nonce` (at most 64 bytes) and `selection`. */
  quote(ak: LoadedAk, nonce: Uint8Array, selection: PcrSelection): Promise<TpmQuote>;
  /**
   * TPM2_ActivateCredential with the AK and its EK: the secret, if the credential was made for
   * this EK and this AK's name. The secret crosses the bus encrypted (salted session).
   * A credential whose TPM2B sizes do not match its length is `ERR_TPM_BLOB_INVALID`.
   */
  activateCredential(ak: LoadedAk, credential: Credential): Promise<Uint8Array>;
  /** Seals 1..128 bytes to this TPM (and optionally to PCR values); returns an opaque blob. */
  seal(data: Uint8Array, options?: SealOptions): Promise<Uint8Array>;
  /** Unseals a blob from {@link Tpm.seal} on the same TPM. */
  unseal(blob: Uint8Array): Promise<Uint8Array>;
  /** `n` (1..65536) random bytes from the TPM's RNG. */
  getRandom(n: number): Promise<Uint8Array>;
  /**
   * The TPM's own list of handles of a kind (TPM2_GetCapability), including other clients'
   * on a TPM without a resource manager: for diagnostics and leak checks.
   */
  handles(kind: TpmHandleKind): Promise<number[]>;
  /**
   * Waits for every call already made, then flushes what this `Tpm` loaded and closes the
   * connection. Calls made after close() reject with `ERR_TPM_CLOSED`. Idempotent.
   */
  close(): Promise<void>;
}
