/**
 * The recovery path for a store the agent cannot use: move it aside, keep it for a post-mortem,
 * and start fresh (the agent then re-attests and resyncs). Used for the recoverable open errors
 * (`isRecoverableStoreError`: corrupt, newer layout, foreign, unsealable) so that a damaged store
 * never turns into a crash loop. Never used for a locked store (another agent owns it) or an
 * I/O error (moving the store would not fix the disk).
 *
 * Quarantined copies are named `agent-store.corrupt-<UTC time>` beside the store, in `data_dir`;
 * only the newest few are kept (default 3) so repeated failures cannot fill an edge device's disk.
 */
import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Clock, systemClock } from '../../common/clock.js';
import { describeError, type SpireEdgeError } from '../../common/errors.js';
import type { AgentStore } from './agent-store.js';
import { AGENT_STORE_DIRNAME } from './layout.js';
import { type OpenAgentStoreOptions, openAgentStore } from './open-agent-store.js';
import { type AgentStoreErrorCode, isRecoverableStoreError, storeError } from './store-errors.js';

const QUARANTINE_PREFIX = `${AGENT_STORE_DIRNAME}.corrupt-`;

/** Options of {@link quarantineAgentStore}. */
export interface QuarantineOptions {
  readonly clock?: Clock;
  /** How many quarantined stores to keep, newest first (default 3, at least 1). */
  readonly keep?: number;
}

function stamp(ms: number): string {
  // 2026-01-01T00-00-00-000Z: sortable, no colons (portable file names).
  return new Date(ms).toISOString().replaceAll(':', '-').replace('.', '-');
}

/**
 * Renames `<dataDir>/agent-store` to `<dataDir>/agent-store.corrupt-<UTC time>` (adding `-1`,
 * `-2`… if that name exists) and deletes the oldest quarantined stores beyond `keep`. Returns
 * the new path, or undefined when there was no store. The store must not be open.
 *
 * @throws SpireEdgeError `ERR_AGENT_STORE_IO` when the rename fails.
 */
export async function quarantineAgentStore(
  dataDir: string,
  options: QuarantineOptions = {},
): Promise<string | undefined> {
  if (typeof dataDir !== 'string' || dataDir === '')
    throw new TypeError('dataDir must be a non-empty string');
  const keep = options.keep ?? 3;
  if (!Number.isInteger(keep) || keep < 1) throw new TypeError('keep must be an integer ≥ 1');
  const clock = options.clock ?? systemClock;
  const from = join(dataDir, AGENT_STORE_DIRNAME);
  const base = QUARANTINE_PREFIX + stamp(clock.nowMs());
  let target: string | undefined;
  for (let i = 0; i < 1000 && target === undefined; i++) {
    const name = i === 0 ? base : `${base}-${String(i)}`;
    try {
      // rename(2) replaces an empty directory at the target: check it is free ourselves.
      const existing = await readdir(dataDir);
      if (existing.includes(name)) continue;
      await rename(from, join(dataDir, name));
      target = join(dataDir, name);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      if (code === 'EEXIST' || code === 'ENOTEMPTY') continue;
      throw storeError(
        'ERR_AGENT_STORE_IO',
        `could not move the agent store ${from} aside: ${describeError(err)}`,
        err,
      );
    }
  }
  if (target === undefined) {
    throw storeError('ERR_AGENT_STORE_IO', `could not find a free name to move ${from} aside`);
  }
  await pruneQuarantined(dataDir, keep);
  return target;
}

async function pruneQuarantined(dataDir: string, keep: number): Promise<void> {
  let names: string[];
  try {
    names = (await readdir(dataDir)).filter((n) => n.startsWith(QUARANTINE_PREFIX));
  } catch {
    return;
  }
  // The stamps sort chronologically; a "-N" suffix sorts after its base name.
  names.sort();
  for (const name of names.slice(0, Math.max(0, names.length - keep))) {
    await rm(join(dataDir, name), { recursive: true, force: true }).catch(() => {});
  }
}

/** What {@link openAgentStoreWithRecovery} did. */
export interface RecoveredStore {
  readonly store: AgentStore;
  /** Set when the previous store was unusable and was moved aside. */
  readonly quarantined?: {
    /** Where the old store now is. */
    readonly path: string;
    /** Why it could not be used. */
    readonly error: SpireEdgeError<AgentStoreErrorCode>;
  };
}

/**
 * Opens the agent store; when that fails with a recoverable error (corrupt, newer layout,
 * foreign, unsealable), quarantines the store, calls `onQuarantine` (log it loudly: the agent
 * will re-attest and resync), and opens a fresh one. A second failure is thrown.
 *
 * @throws SpireEdgeError `ERR_AGENT_STORE_LOCKED`, `ERR_AGENT_STORE_IO`, or the fresh store's error.
 */
export async function openAgentStoreWithRecovery(
  options: OpenAgentStoreOptions & {
    readonly keepQuarantined?: number;
    readonly onQuarantine?: (info: {
      readonly path: string;
      readonly error: SpireEdgeError<AgentStoreErrorCode>;
    }) => void;
  },
): Promise<RecoveredStore> {
  try {
    return { store: await openAgentStore(options) };
  } catch (err) {
    if (!isRecoverableStoreError(err)) throw err;
    const path = await quarantineAgentStore(options.dataDir, {
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(options.keepQuarantined === undefined ? {} : { keep: options.keepQuarantined }),
    });
    if (path === undefined) throw err;
    options.onQuarantine?.({ path, error: err });
    return { store: await openAgentStore(options), quarantined: { path, error: err } };
  }
}
