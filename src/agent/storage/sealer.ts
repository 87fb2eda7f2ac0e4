/**
 * The hook through which the agent store protects secrets at rest: every private key (the
 * agent's and each workload SVID's, PKCS#8) and every cached JWT-SVID token is passed through
 * {@link Sealer.seal} before it is written and through {@link Sealer.unseal} when the store is
 * opened. The TPM issue provides a sealer bound to the device's TPM; without one, secrets are
 * stored as they are, protected only by the store directory's mode (0700) — anyone who can read
 * the agent user's files (root, a backup, a stolen disk) can read them.
 *
 * Calls: one `seal` per secret written, one `unseal` per secret at open (1,000 cached SVIDs
 * mean 1,000 unseals at start). A hardware sealer should therefore unseal one data key from
 * the TPM once and encrypt each secret in software (AES-GCM), not call the TPM per secret.
 */

/** Seals and unseals secrets for the agent store. */
export interface Sealer {
  /** Returns an opaque sealed form of `plain`. Must not return `plain` itself. */
  seal(plain: Uint8Array): Promise<Uint8Array>;
  /**
   * Returns the plain bytes of a value `seal` produced. Rejects when the value was not sealed
   * by this sealer (another TPM, a tampered value): the store then fails to open with
   * `ERR_AGENT_STORE_SEALED`.
   */
  unseal(sealed: Uint8Array): Promise<Uint8Array>;
}
