/**
 * What the agent API services share: the server context, the authorized-entries source,
 * the node attestors, the rate limiters and a few settings. Built by agent-server.ts.
 */
import type { Logger } from '../../../common/log.js';
import type { ServerNodeAttestor } from '../../attestation/node-attestor.js';
import type { ServerContext } from '../../context.js';
import type { AttestedNode, RegistrationEntry } from '../../datastore/types.js';
import type { KeyedRateLimiter } from './rate-limit.js';

/** Where the services read authorized entries (an `AuthorizedEntries` in production). */
export interface AuthorizedEntriesSource {
  getAuthorizedEntries(agentId: string): RegistrationEntry[];
  lookupAuthorizedEntries(
    agentId: string,
    entryIds: ReadonlySet<string>,
  ): Map<string, RegistrationEntry>;
  /** Applies a node this server just wrote, before the change event is polled. */
  noteAttestedNode?(node: AttestedNode): void;
}

/** The rate limiters; an absent one means no limit. */
export interface AgentApiLimiters {
  /** AttestAgent, keyed by caller IP. */
  readonly attest?: KeyedRateLimiter;
  /** RenewAgent, BatchNewX509SVID (per CSR), NewJWTSVID, keyed by agent ID. */
  readonly sign?: KeyedRateLimiter;
  /** PostStatus, keyed by caller IP. */
  readonly postStatus?: KeyedRateLimiter;
}

/** Dependencies of the agent API services. */
export interface AgentApiDeps {
  readonly context: ServerContext;
  readonly log: Logger;
  readonly entries: AuthorizedEntriesSource;
  readonly attestors: ReadonlyMap<string, ServerNodeAttestor>;
  readonly limiters: AgentApiLimiters;
  /** SyncAuthorizedEntries page size (SPIRE: 500). */
  readonly entryPageSize: number;
  /** How long the agent has to answer each attestation challenge. */
  readonly challengeTimeoutMs: number;
}
