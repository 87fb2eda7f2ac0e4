/**
 * The agent side of node attestation (SPIRE's agent `NodeAttestor` plugin contract): an
 * attestor produces the attestation payload and answers the server's challenges.
 * {@link attestAgent} drives one AttestAgent stream with it.
 *
 * Implementations: `join_token` (join-token.ts) and `x509pop` (x509pop.ts); the TPM
 * attestor implements the same interface.
 */

/** One attestation type, agent side. */
export interface AgentNodeAttestor {
  /** The `AttestationData.type` it sends (`join_token`, `x509pop`, …). */
  readonly type: string;
  /** The attestation payload for a new attestation. */
  payload(): Promise<Uint8Array>;
  /**
   * Answers one server challenge. Trusts nothing in `challenge` beyond its format; must
   * never reveal a secret beyond what the protocol signs. `signal` is aborted when the
   * server has ended the attestation (long TPM operations may stop early).
   */
  respond(challenge: Uint8Array, signal?: AbortSignal): Promise<Uint8Array>;
}
