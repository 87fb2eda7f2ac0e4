/**
 * The `join_token` attestor, agent side: sends the token (SPIRE's `-joinToken`) as the
 * payload and expects no challenge. A token works once: after a successful attestation the
 * agent renews its SVID instead of attesting again.
 *
 * Errors: `ERR_AGENT_ATTESTATION_INVALID` when the server sends a challenge.
 */
import { SpireEdgeError } from '../../common/errors.js';
import type { AgentNodeAttestor } from './node-attestor.js';

/** Creates the join-token attestor for `token` (never logged). */
export function createJoinTokenAttestorClient(token: string): AgentNodeAttestor {
  if (typeof token !== 'string' || token.length === 0) {
    throw new TypeError('join token must be a non-empty string');
  }
  const bytes = new TextEncoder().encode(token);
  return {
    type: 'join_token',
    payload: async () => bytes,
    respond: async () => {
      throw new SpireEdgeError(
        'ERR_AGENT_ATTESTATION_INVALID',
        'the server sent a challenge to join_token attestation, which has none',
      );
    },
  };
}
