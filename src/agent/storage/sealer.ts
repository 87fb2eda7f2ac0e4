/**
 * The hook through which the agent store protects secrets at rest: every private key (the
 * agent's and each workload SVID's, PKCS#8) and every cached JWT-SVID token is passed through
 * {@link Sealer.seal} before it is written and through {@link Sealer.unseal} when the store is
 * opened, with the record's key as {@link SealContext}. The TPM sealer
 * (src/agent/attestation/tpm-sealer.ts) binds them to the device's TPM; without a sealer,
 * secrets are stored as they are, protected only by the store directory's mode (0700) — anyone
 * who can read the agent user's files (root, a backup, a stolen disk) can read them.
 *
 * Calls: one `seal` per secret written, one `unseal` per secret at open (1,000 cached SVIDs
 * mean 1,000 unseals at start). A hardware sealer should therefore unseal one data key from
 * the TPM once and encrypt each secret in software (AES-GCM), not call the TPM per secret.
 *
 * A sealer that keeps its own state in the store (a sealed data key) is given to
 * `openAgentStore` as a {@link SealerFactory}: the store calls it once, after the records were
 * loaded and checked (and a v1 store migrated) and before any secret is unsealed, with
 * {@link DeviceRecordAccess} to the `device:*` records of the just-opened database.
 */

/** What a secret is sealed for: the store passes the key of the record that holds it. */
export interface SealContext {
  /**
   * The record key (`agent:identity`, `x509:<entry id>`, `jwt:<…>`). A sealer should bind the
   * sealed value to it (AES-GCM additional data), so a value moved to another record does not
   * unseal.
   */
  readonly recordKey: string;
}

/** Seals and unseals secrets for the agent store. */
export interface Sealer {
  /**
   * Returns an opaque sealed form of `plain`. Must not return `plain` itself. The store always
   * passes `context`; sealers written before it existed may ignore it.
   */
  seal(plain: Uint8Array, context?: SealContext): Promise<Uint8Array>;
  /**
   * Returns the plain bytes of a value `seal` produced (for the same context). Rejects when the
   * value was not sealed by this sealer (another TPM, a tampered value, another record): the
   * store then fails to open with `ERR_AGENT_STORE_SEALED`.
   */
  unseal(sealed: Uint8Array, context?: SealContext): Promise<Uint8Array>;
  /**
   * Forgets key material (zeroes it). Optional. The store calls it when it closes, or when its
   * open fails, for a sealer it created through a {@link SealerFactory}; a sealer passed as is
   * stays the caller's to close.
   */
  close?(): void | Promise<void>;
}

/**
 * The `device:*` records of the store being opened, as a {@link SealerFactory} sees them.
 * Valid only until the factory's promise settles (later calls throw TypeError): afterwards use
 * `AgentStore.deviceRecord` and `AgentStoreTransaction.putDeviceRecord`.
 */
export interface DeviceRecordAccess {
  /** A copy of the device record `name`, or undefined. */
  get(name: string): Uint8Array | undefined;
  /**
   * Writes the device record `name` (see `isDeviceRecordName`; at most 64 KiB) as one LevelDB
   * batch with fsync (with the store's record count): when the promise resolves, the record
   * survives a crash or power cut.
   *
   * @throws SpireEdgeError `ERR_AGENT_STORE_WRITE` (nothing written). TypeError for a bad name
   * or value.
   */
  put(name: string, bytes: Uint8Array): Promise<void>;
  /** Deletes the device record `name` (one fsynced batch; nothing to delete writes nothing). */
  delete(name: string): Promise<void>;
}

/**
 * Creates the store's sealer from state it keeps in device records. Throw
 * `ERR_AGENT_STORE_SEALED` (a SpireEdgeError from store-errors.ts) when that state cannot be
 * used (another TPM, a damaged blob): the open fails with it and recovery quarantines the store.
 * Other SpireEdgeErrors of the store pass through; any other error (the TPM unreachable) fails
 * the open with `ERR_AGENT_STORE_IO`, which is not recovered by quarantine.
 */
export type SealerFactory = (devices: DeviceRecordAccess) => Promise<Sealer>;
