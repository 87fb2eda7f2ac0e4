/**
 * The `join_token` node attestor (SPIRE's server plugin of that name, handled inside
 * SPIRE's AgentService): the payload is the token's text; the token must exist and not be
 * expired, and it is consumed (deleted) whether or not it was expired, so it works once.
 *
 * Agent ID: `spiffe://<td>/spire/agent/join_token/<token>`. No selectors. Not
 * re-attestable: SPIRE's trust-on-first-use model, the agent renews instead.
 *
 * Errors: `ERR_ATTESTATION_INVALID_ARGUMENT` for an empty or malformed token and for one
 * that does not exist, was already used or has expired (SPIRE answers InvalidArgument to
 * all of these); datastore failures pass through.
 */
import type { Clock } from '../../common/clock.js';
import { isSpireEdgeError } from '../../common/errors.js';
import { spiffeIdFromSegments, type TrustDomain, toTrustDomain } from '../../spiffe/id.js';
import type { DataStore } from '../datastore/types.js';
import { attestationError, type ServerNodeAttestor } from './node-attestor.js';

/** `AttestationData.type` of join-token attestation. */
export const JOIN_TOKEN_TYPE = 'join_token';

/** The longest token accepted (SPIRE's tokens are UUIDs, 36 characters). */
export const MAX_JOIN_TOKEN_LENGTH = 255;

const TOKEN_RE = /^[A-Za-z0-9._-]+$/;

/** Options of {@link createJoinTokenAttestor}. */
export interface JoinTokenAttestorOptions {
  readonly trustDomain: TrustDomain | string;
  readonly dataStore: Pick<DataStore, 'consumeJoinToken'>;
  readonly clock: Clock;
}

/** The agent ID of a join token (`…/spire/agent/join_token/<token>`). */
export function joinTokenAgentId(trustDomain: TrustDomain | string, token: string): string {
  return spiffeIdFromSegments(trustDomain, 'spire', 'agent', JOIN_TOKEN_TYPE, token).toString();
}

/**
 * Creates the join-token attestor. Trusts the datastore to consume a token exactly once
 * across servers (`consumeJoinToken`).
 */
export function createJoinTokenAttestor(options: JoinTokenAttestorOptions): ServerNodeAttestor {
  if (options === null || typeof options !== 'object' || options.dataStore === undefined) {
    throw new TypeError('createJoinTokenAttestor needs trustDomain, dataStore and clock');
  }
  const td = toTrustDomain(options.trustDomain);
  const { dataStore, clock } = options;
  return {
    type: JOIN_TOKEN_TYPE,
    async attest(payload) {
      const token = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString(
        'utf8',
      );
      if (token.length === 0) {
        throw attestationError('ERR_ATTESTATION_INVALID_ARGUMENT', 'join token is empty');
      }
      if (token.length > MAX_JOIN_TOKEN_LENGTH || !TOKEN_RE.test(token)) {
        throw attestationError(
          'ERR_ATTESTATION_INVALID_ARGUMENT',
          'join token must be at most 255 characters of letters, digits, ".", "_" and "-"',
        );
      }
      let record: Awaited<ReturnType<DataStore['consumeJoinToken']>>;
      try {
        record = await dataStore.consumeJoinToken(token, Math.floor(clock.nowMs() / 1000));
      } catch (err) {
        if (isSpireEdgeError(err, 'ERR_DATASTORE_NOT_FOUND')) {
          throw attestationError(
            'ERR_ATTESTATION_INVALID_ARGUMENT',
            'failed to attest: join token does not exist, has already been used or has expired',
          );
        }
        throw err;
      }
      return {
        agentId: joinTokenAgentId(td, token),
        selectors: [],
        canReattest: false,
        evidence: { type: JOIN_TOKEN_TYPE, tokenExpiresAt: record.expiresAt },
      };
    },
  };
}
