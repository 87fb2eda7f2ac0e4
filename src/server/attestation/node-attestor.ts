/**
 * The server side of node attestation: one interface, one implementation per attestation
 * type (`join_token`, `x509pop`, later `tpm`), SPIRE's `NodeAttestor` plugin contract
 * (spire-plugin-sdk `spire.plugin.server.nodeattestor.v1`).
 *
 * Flow (AttestAgent, see src/server/api/agent/agent-service.ts): the agent sends
 * `AttestationData { type, payload }`; the service picks the attestor registered for
 * `type` and calls {@link ServerNodeAttestor.attest} with the payload and a `challenge`
 * function; each call of `challenge(bytes)` sends `AttestAgentResponse.challenge` to the
 * agent and resolves with its `challenge_response`, as many rounds as the attestor needs.
 * The attestor resolves with the agent ID, node selectors and whether the node may
 * re-attest, or rejects with a coded error (codes below) that the service maps to a gRPC
 * status.
 *
 * Errors (all `SpireEdgeError`): `ERR_ATTESTATION_INVALID_ARGUMENT` (malformed payload or
 * response, unknown or used join token), `ERR_ATTESTATION_PERMISSION_DENIED` (evidence
 * that does not verify), `ERR_ATTESTATION_FAILED_PRECONDITION` (no attestor for the type),
 * `ERR_ATTESTATION_DEADLINE_EXCEEDED` (the agent did not answer a challenge in time).
 */
import { SpireEdgeError } from '../../common/errors.js';
import type { Selector } from '../datastore/types.js';

/** Error codes of node attestation. */
export type AttestationErrorCode =
  | 'ERR_ATTESTATION_INVALID_ARGUMENT'
  | 'ERR_ATTESTATION_PERMISSION_DENIED'
  | 'ERR_ATTESTATION_FAILED_PRECONDITION'
  | 'ERR_ATTESTATION_DEADLINE_EXCEEDED';

/** A coded attestation error. */
export function attestationError(
  code: AttestationErrorCode,
  message: string,
  cause?: unknown,
): SpireEdgeError<AttestationErrorCode> {
  return new SpireEdgeError(code, message, cause === undefined ? {} : { cause });
}

/** Sends a challenge to the agent and resolves with its response (one round trip). */
export type AttestationChallenge = (challenge: Uint8Array) => Promise<Uint8Array>;

/** What the transport knows about the attesting caller. */
export interface AttestationContext {
  /** The peer's IP address, when known. */
  readonly remoteAddress?: string;
  /** Aborted when the agent goes away or the server shuts down. */
  readonly signal?: AbortSignal;
}

/** A successful attestation. */
export interface AttestationResult {
  /** The agent's SPIFFE ID (`spiffe://<td>/spire/agent/<type>/…`). */
  readonly agentId: string;
  /** Node selectors (`type` is the attestor's name), as SPIRE stores them. */
  readonly selectors: readonly Selector[];
  /** Whether the node may attest again under the same ID (SPIRE's `CanReattest`). */
  readonly canReattest: boolean;
  /**
   * A summary of the evidence for operators (`agent show`), stored as JSON with the node.
   * Never secrets: a join token's value must not appear here.
   */
  readonly evidence?: Readonly<Record<string, unknown>>;
}

/** One attestation type. Implementations must be safe to call concurrently. */
export interface ServerNodeAttestor {
  /** The `AttestationData.type` it handles (`join_token`, `x509pop`, …). */
  readonly type: string;
  /**
   * Verifies the agent's evidence. Trusts nothing in `payload` or in challenge responses;
   * nonces come from the injected randomness and are used once.
   */
  attest(
    payload: Uint8Array,
    challenge: AttestationChallenge,
    context: AttestationContext,
  ): Promise<AttestationResult>;
}
