/**
 * The coded errors of the agent store, and which of them the agent recovers from by moving
 * the store aside and attesting afresh (docs/configuration-agent.md, "The agent store").
 */
import { SpireEdgeError } from '../../common/errors.js';

/** Codes thrown by the agent store. */
export type AgentStoreErrorCode =
  /** A record, a value or LevelDB's own files are damaged. Recover: quarantine, re-attest. */
  | 'ERR_AGENT_STORE_CORRUPT'
  /** The store was written by a newer layout than this code knows. Recover: quarantine. */
  | 'ERR_AGENT_STORE_VERSION'
  /** The store belongs to another trust domain, or the directory is not an agent store. */
  | 'ERR_AGENT_STORE_FOREIGN'
  /** Sealed secrets cannot be unsealed (no sealer given, or the sealer refused them). */
  | 'ERR_AGENT_STORE_SEALED'
  /** Another process holds the store open (LevelDB's LOCK). Not recoverable by quarantine. */
  | 'ERR_AGENT_STORE_LOCKED'
  /** The store could not be opened for another reason (permissions, disk). */
  | 'ERR_AGENT_STORE_IO'
  /** A write failed (LevelDB or the sealer); nothing of it was applied. */
  | 'ERR_AGENT_STORE_WRITE'
  /** The store was used after close(). */
  | 'ERR_AGENT_STORE_CLOSED';

/** Builds an agent store error. */
export function storeError(
  code: AgentStoreErrorCode,
  message: string,
  cause?: unknown,
  details?: Readonly<Record<string, unknown>>,
): SpireEdgeError<AgentStoreErrorCode> {
  return new SpireEdgeError(code, message, {
    ...(cause === undefined ? {} : { cause }),
    ...(details === undefined ? {} : { details }),
  });
}

const CODES: ReadonlySet<string> = new Set<AgentStoreErrorCode>([
  'ERR_AGENT_STORE_CORRUPT',
  'ERR_AGENT_STORE_VERSION',
  'ERR_AGENT_STORE_FOREIGN',
  'ERR_AGENT_STORE_SEALED',
  'ERR_AGENT_STORE_LOCKED',
  'ERR_AGENT_STORE_IO',
  'ERR_AGENT_STORE_WRITE',
  'ERR_AGENT_STORE_CLOSED',
]);

/** True when `err` is one of the agent store's coded errors. */
export function isAgentStoreError(err: unknown): err is SpireEdgeError<AgentStoreErrorCode> {
  return err instanceof SpireEdgeError && CODES.has(err.code);
}

const RECOVERABLE: ReadonlySet<string> = new Set<AgentStoreErrorCode>([
  'ERR_AGENT_STORE_CORRUPT',
  'ERR_AGENT_STORE_VERSION',
  'ERR_AGENT_STORE_FOREIGN',
  'ERR_AGENT_STORE_SEALED',
]);

/**
 * True when `err` is an open error the agent recovers from by quarantining the store and
 * starting fresh (corrupt, newer version, foreign, unsealable). Locked and I/O errors are not:
 * moving the store aside would not fix them.
 */
export function isRecoverableStoreError(err: unknown): err is SpireEdgeError<AgentStoreErrorCode> {
  return err instanceof SpireEdgeError && RECOVERABLE.has(err.code);
}
