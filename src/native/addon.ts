/**
 * Loads the native addon (built from native/ by `npm run build:native`). Only I/O modules
 * (the agent's Workload API server, the TPM device adapter in src/tpm/device) import this;
 * pure folders never do.
 *
 * Errors: `ERR_NATIVE_UNAVAILABLE` when the addon has not been built.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { SpireEdgeError } from '../common/errors.js';

/** The caller of a Unix socket, from SO_PEERCRED. */
export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

/**
 * An open tpm2-tss ESYS context (a type-tagged native external): pass it back to the `tpm*`
 * functions; nothing else can be done with it. Use {@link NativeAddon.tpmClose} to release it
 * (garbage collection does too, as a last resort).
 */
export interface NativeTpmContext {
  readonly __nativeTpmContext: never;
}

/** EK templates of the TCG EK Credential Profile: L-1 (RSA 2048), L-2 (P-256), H-3 (P-384). */
export type NativeEkAlgorithm = 'rsa' | 'ecc-p256' | 'ecc-p384';
/** AK key types: ECC P-256 with ECDSA-SHA256, or RSA-2048 with RSASSA-SHA256. */
export type NativeAkAlgorithm = 'ecc-p256' | 'rsa-2048';
/** PCR bank names the addon understands. */
export type NativePcrBank = 'sha1' | 'sha256' | 'sha384' | 'sha512';

/**
 * What a rejected `tpm*` promise carries. `code` is `ERR_TPM_RC` (a TSS2_RC from tpm2-tss or
 * the TPM), `ERR_TPM_BLOB_INVALID` (a marshalled input the TSS could not unmarshal; `rc` is
 * the TSS2_MU code), `ERR_TPM_PCR_UNAVAILABLE` (the TPM returned no digests for a PCR bank:
 * not active; no `rc`) or `ERR_TPM_CLOSED` (the context was closed; no `rc`). Bad arguments
 * throw TypeError synchronously instead.
 */
export interface NativeTpmError extends Error {
  readonly code:
    | 'ERR_TPM_RC'
    | 'ERR_TPM_BLOB_INVALID'
    | 'ERR_TPM_CLOSED'
    | 'ERR_TPM_PCR_UNAVAILABLE';
  /** The TSS2_RC (layer in bits 16–23; 0 = the TPM itself). */
  readonly rc?: number;
  /** Tss2_RC_Decode(rc), e.g. "tpm:handle(1):the handle is not correct for the use". */
  readonly rcText?: string;
  /** The TSS call (or step) that failed, e.g. "Esys_Quote". */
  readonly op?: string;
}

/** Curves {@link NativeAddon.ecdsaVerify} knows. */
export type NativeEcdsaCurve = 'P-256' | 'P-384' | 'P-521';
/** Digests {@link NativeAddon.ecdsaVerify} hashes the data with. */
export type NativeEcdsaHash = 'sha256' | 'sha384' | 'sha512';
/**
 * What the ECDSA functions answer: 1 the signature verifies; 0 it does not (wrong, or not a
 * strict DER ECDSA-Sig-Value, or r/s out of range); -1 the point is not a public key of the
 * curve (not `04 || X || Y` of the curve's size, a coordinate ≥ p, or off the curve).
 */
export type NativeEcdsaResult = 1 | 0 | -1;
/** One signature of {@link NativeAddon.ecdsaVerifyBatch}. */
export interface NativeEcdsaItem {
  readonly curve: NativeEcdsaCurve;
  readonly hash: NativeEcdsaHash;
  /** The uncompressed point `04 || X || Y`. */
  readonly point: Uint8Array;
  readonly data: Uint8Array;
  /** DER ECDSA-Sig-Value (as X.509 and PKCS#10 carry it), at most 256 bytes. */
  readonly signature: Uint8Array;
}

/** Curves {@link NativeAddon.ecdsaSigningKey} signs with. */
export type NativeEcdsaSigningCurve = 'P-256' | 'P-384';

/** A private key held by the addon (a type-tagged native external); opaque. */
export interface NativeEcdsaSigningKey {
  readonly __nativeEcdsaSigningKey: never;
}

/** The functions the addon exports. */
export interface NativeAddon {
  /** SO_PEERCRED of a connected AF_UNIX socket; throws (errno EAFNOSUPPORT) on other families. */
  peerCred(fd: number): PeerCredentials;
  /** pidfd_open(2): a descriptor that refers to this process even after its PID is reused. */
  pidfdOpen(pid: number): number;
  /** Whether the process behind a pidfd is still running. */
  pidfdAlive(fd: number): boolean;
  closeFd(fd: number): void;

  // ---- ECDSA verification with OpenSSL's EC API and a per-thread key per curve
  // (native/ecdsa-verify.cc): no key import, the same acceptance rules as node:crypto's
  // verify. Bad argument types or names throw TypeError synchronously; data ≤ 1 MiB. ----

  /** Verifies on the calling thread. */
  ecdsaVerifySync(
    curve: NativeEcdsaCurve,
    hash: NativeEcdsaHash,
    point: Uint8Array,
    data: Uint8Array,
    signature: Uint8Array,
  ): NativeEcdsaResult;
  /** Verifies on libuv's thread pool (the inputs are copied first). */
  ecdsaVerify(
    curve: NativeEcdsaCurve,
    hash: NativeEcdsaHash,
    point: Uint8Array,
    data: Uint8Array,
    signature: Uint8Array,
  ): Promise<NativeEcdsaResult>;
  /** Verifies every item in one thread-pool task; results in item order. */
  ecdsaVerifyBatch(items: readonly NativeEcdsaItem[]): Promise<Int8Array>;
  /**
   * {@link NativeAddon.ecdsaVerifyBatch} in a flat form that is cheaper to pass: `kinds[i]`
   * is the curve's index (P-256, P-384, P-521) × 3 + the hash's (sha256, sha384, sha512);
   * item i's point, data and signature are the consecutive ranges of `blob` that end at
   * `ends[3i]`, `ends[3i+1]` and `ends[3i+2]` (ascending). Optional: an addon built before
   * it lacks it.
   */
  ecdsaVerifyMany?(kinds: Uint8Array, blob: Uint8Array, ends: Uint32Array): Promise<Int8Array>;

  // ---- ECDSA signing with a software key imported once into OpenSSL (native/ecdsa-sign.cc):
  // many signatures per thread-pool task. Optional: an addon built before it lacks them. ----

  /**
   * Imports an EC private key (PKCS#8 DER) of `curve` into native memory and returns an
   * opaque handle. The caller zeroes `pkcs8` afterwards; the key never comes back out. The
   * key is freed (its scalar cleared) once the handle is freed or collected and no batch
   * still uses it. Throws TypeError when the bytes are not such a key.
   */
  ecdsaSigningKey?(pkcs8: Uint8Array, curve: NativeEcdsaSigningCurve): NativeEcdsaSigningKey;
  /** Drops the handle's hold on the key (idempotent); later batches throw TypeError. */
  ecdsaSigningKeyFree?(key: NativeEcdsaSigningKey): void;
  /**
   * Hashes (SHA-256 for P-256, SHA-384 for P-384) and signs every item in one thread-pool
   * task; resolves the IEEE P1363 signatures (`r || s`, 64 or 96 bytes each) back to back,
   * in item order. Rejects with `code` `ERR_NATIVE_SIGN_FAILED` if OpenSSL fails.
   */
  ecdsaSignBatch?(key: NativeEcdsaSigningKey, items: readonly Uint8Array[]): Promise<Uint8Array>;

  // ---- TPM 2.0 over tpm2-tss ESYS (native/tpm*.cc). Every call is async and serialised per
  // context; blobs are marshalled TPM structures; all parsing happens in TypeScript. ----

  /** Tss2_TctiLdr_Initialize(tcti) + Esys_Initialize: `device:/dev/tpmrm0`, `swtpm:host=…,port=…`, `mssim:…`. */
  tpmOpen(tcti: string): Promise<NativeTpmContext>;
  /** Waits for queued and running calls, flushes every transient object the context loaded, finalises. Idempotent. */
  tpmClose(ctx: NativeTpmContext): Promise<void>;
  /** The whole data area of an NV index (read in chunks of TPM2_PT_NV_BUFFER_MAX). */
  tpmNvRead(ctx: NativeTpmContext, index: number): Promise<Uint8Array>;
  /**
   * The EK at `persistentHandle` when one made from the same template lives there, otherwise a
   * transient primary from the template. `publicArea` is the marshalled TPM2B_PUBLIC.
   */
  tpmCreateEk(
    ctx: NativeTpmContext,
    alg: NativeEkAlgorithm,
    persistentHandle?: number,
  ): Promise<{ handle: number; publicArea: Uint8Array; persistent: boolean }>;
  /** TPM2_Create of a restricted signing key under the EK: marshalled TPM2B_PRIVATE / TPM2B_PUBLIC. */
  tpmCreateAk(
    ctx: NativeTpmContext,
    ekHandle: number,
    alg: NativeAkAlgorithm,
  ): Promise<{ private: Uint8Array; public: Uint8Array }>;
  /** TPM2_Load under the EK; `name` is the TPM's name of the loaded key. */
  tpmLoadAk(
    ctx: NativeTpmContext,
    ekHandle: number,
    priv: Uint8Array,
    pub: Uint8Array,
  ): Promise<{ handle: number; name: Uint8Array }>;
  /** PCR digests of one bank, in ascending index order (indices 0..23, no repeats). */
  tpmReadPcrs(
    ctx: NativeTpmContext,
    bank: NativePcrBank,
    indices: readonly number[],
  ): Promise<Uint8Array[]>;
  /** TPM2_Quote: `quoted` is the TPMS_ATTEST bytes (TPM2B_ATTEST contents), `signature` a marshalled TPMT_SIGNATURE. */
  tpmQuote(
    ctx: NativeTpmContext,
    akHandle: number,
    nonce: Uint8Array,
    bank: NativePcrBank,
    indices: readonly number[],
  ): Promise<{ quoted: Uint8Array; signature: Uint8Array }>;
  /**
   * TPM2_ActivateCredential; `idObject` and `encSecret` are the contents of the TPM2B_ID_OBJECT
   * and TPM2B_ENCRYPTED_SECRET (without their size prefix). The response is encrypted on the bus.
   */
  tpmActivateCredential(
    ctx: NativeTpmContext,
    akHandle: number,
    ekHandle: number,
    idObject: Uint8Array,
    encSecret: Uint8Array,
  ): Promise<Uint8Array>;
  /** Seals 1..128 bytes under a transient ECC P-256 SRK, optionally to the current values of PCRs. */
  tpmSeal(
    ctx: NativeTpmContext,
    data: Uint8Array,
    bank: NativePcrBank | null,
    indices: readonly number[],
  ): Promise<{ private: Uint8Array; public: Uint8Array }>;
  /** Unseals what tpmSeal sealed (same PCR selection). */
  tpmUnseal(
    ctx: NativeTpmContext,
    priv: Uint8Array,
    pub: Uint8Array,
    bank: NativePcrBank | null,
    indices: readonly number[],
  ): Promise<Uint8Array>;
  /** Flushes a transient object (or closes a persistent reference) this context opened. */
  tpmFlush(ctx: NativeTpmContext, handle: number): Promise<void>;
  /** `n` (1..65536) bytes from TPM2_GetRandom. */
  tpmGetRandom(ctx: NativeTpmContext, n: number): Promise<Uint8Array>;
  /** The TPM's own list of handles of one kind (TPM2_GetCapability), for diagnostics. */
  tpmHandles(
    ctx: NativeTpmContext,
    kind: 'transient' | 'persistent' | 'loaded-session',
  ): Promise<number[]>;
}

let cached: NativeAddon | undefined;

/** The native addon, loaded once. */
export function loadNativeAddon(): NativeAddon {
  if (cached !== undefined) return cached;
  const require = createRequire(import.meta.url);
  // The same relative path works from src/native (tests, tsx) and dist/native (built).
  const path = fileURLToPath(
    new URL('../../build/Release/spire_edge_native.node', import.meta.url),
  );
  try {
    cached = require(path) as NativeAddon;
  } catch (err) {
    throw new SpireEdgeError(
      'ERR_NATIVE_UNAVAILABLE',
      `native addon not found at ${path}: run "npm run build:native" (scripts/setup.sh does it)`,
      { cause: err },
    );
  }
  return cached;
}
