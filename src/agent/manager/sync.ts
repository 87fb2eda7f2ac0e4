/**
 * The sync loop (SPIRE's agent `manager` sync): every `sync_interval` (5 s by default) the agent
 * fetches its authorized entries (SyncAuthorizedEntries, sending the revisions it holds so that
 * only new or changed entries come back in full), the trust bundle and the federated bundles its
 * entries need, applies what changed to the store in ONE batch, then lets the SVID cache mint and
 * rotate. While the server is unreachable it backs off exponentially with ±10 % jitter up to
 * 8 minutes, and resumes at the normal pace after the first success. The next cycle also comes
 * early when a cached SVID is due for rotation.
 *
 * Offline: nothing here ever removes what the store holds because the server is unreachable;
 * entries and SVIDs change only on a successful answer. Expired SVIDs are pruned.
 *
 * What it trusts: the server's answers about what this agent is authorized for (the server is
 * the authority); their shape is checked (convert.ts), entries that fail the check are skipped
 * and logged. A bundle with no X.509 authority is refused (it would lock the agent out).
 *
 * Errors of a cycle are logged and retried; a PermissionDenied that says the server no longer
 * accepts this agent goes to the node identity manager (`reportRejection`).
 */
import { type Clock, systemClock } from '../../common/clock.js';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import { type Logger, nullLogger } from '../../common/log.js';
import type { RandomSource } from '../../common/random.js';
import { cryptoRandom } from '../../common/random.js';
import type { TrustDomain } from '../../spiffe/id.js';
import type { AgentStoreSnapshot } from '../storage/agent-store.js';
import type { BundleRecord } from '../storage/records.js';
import { Backoff } from './backoff.js';
import { bundleRecordsEqual } from './convert.js';
import type { ManagedStore } from './managed-store.js';
import { type AgentMetrics, nullAgentMetrics } from './metrics.js';
import { type AgentRejection, type AgentServerClient, agentRejection } from './server-client.js';

/** SPIRE's agent sync interval. */
export const DEFAULT_SYNC_INTERVAL_MS = 5_000;
/** The longest wait between two attempts while the server is unreachable (SPIRE's 8 min). */
export const MAX_SYNC_BACKOFF_MS = 8 * 60_000;
/** How often the sync state is written when nothing else changed. */
export const SYNC_STATE_WRITE_INTERVAL_MS = 60_000;

/** What the sync loop needs from the node identity manager. */
export interface SyncIdentity {
  /** The agent SVID, when it has an unexpired one. */
  current(): unknown;
  reportRejection(reason: AgentRejection): void;
  noteAccepted(): void;
}

/** What the sync loop needs from the SVID cache. */
export interface SyncCache {
  reconcile(signal?: AbortSignal): Promise<unknown>;
  /** The next planned rotation after `nowMs`, if any. */
  nextRotationAtMs(nowMs: number): number | undefined;
  prune(): Promise<unknown>;
}

/** Options of {@link SyncManager}. */
export interface SyncManagerOptions {
  readonly store: ManagedStore;
  readonly server: Pick<
    AgentServerClient,
    'syncAuthorizedEntries' | 'getBundle' | 'getFederatedBundle'
  >;
  readonly identity: SyncIdentity;
  readonly cache?: SyncCache;
  readonly trustDomain: TrustDomain;
  /** Default {@link DEFAULT_SYNC_INTERVAL_MS}. */
  readonly intervalMs?: number;
  /** Default {@link MAX_SYNC_BACKOFF_MS}. */
  readonly maxBackoffMs?: number;
  readonly clock?: Clock;
  readonly random?: RandomSource;
  readonly log?: Logger;
  readonly metrics?: AgentMetrics;
  /** Called after every fully successful cycle (sync and cache). */
  readonly onSynced?: () => void;
}

/** What one {@link SyncManager.syncOnce} changed. */
export interface SyncReport {
  readonly upserted: number;
  readonly deleted: number;
  readonly bundleChanged: boolean;
  readonly federatedChanged: number;
  /** Whether a batch was written (changes, or the periodic sync state). */
  readonly written: boolean;
}

/** The loop's state (for readiness, logs and tests). */
export interface SyncState {
  /** Last fully successful cycle, ms since the epoch; 0 = none in this process. */
  readonly lastSuccessAtMs: number;
  /** Consecutive failed cycles. */
  readonly failures: number;
  /** When the next cycle is planned, ms since the epoch; undefined while waiting for an identity. */
  readonly nextRunAtMs: number | undefined;
  readonly lastError: Error | undefined;
}

function staleError(): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_AGENT_SYNC_STALE',
    'the agent identity changed during the sync; its answer was discarded',
  );
}

function noAuthority(): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_AGENT_SERVER_RESPONSE_INVALID',
    'the server sent a trust bundle with no X.509 authority',
  );
}

/** Runs the sync loop (see the module docs). */
export class SyncManager {
  readonly #o: SyncManagerOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #metrics: AgentMetrics;
  readonly #interval: number;
  readonly #backoff: Backoff;
  readonly #abort = new AbortController();
  #cancelTimer: () => void = () => {};
  #nextRunAtMs: number | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;
  #started = false;
  #lastSuccessAtMs = 0;
  #lastError: Error | undefined;

  constructor(options: SyncManagerOptions) {
    if (typeof options?.store?.write !== 'function') throw new TypeError('store is required');
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#log = options.log ?? nullLogger;
    this.#metrics = options.metrics ?? nullAgentMetrics;
    this.#interval = options.intervalMs ?? DEFAULT_SYNC_INTERVAL_MS;
    if (!Number.isFinite(this.#interval) || this.#interval <= 0) {
      throw new TypeError('intervalMs must be a positive number');
    }
    this.#backoff = new Backoff({
      initialMs: this.#interval,
      maxMs: Math.max(this.#interval, options.maxBackoffMs ?? MAX_SYNC_BACKOFF_MS),
      random: options.random ?? cryptoRandom,
    });
  }

  /** The loop's state. */
  state(): SyncState {
    return {
      lastSuccessAtMs: this.#lastSuccessAtMs,
      failures: this.#backoff.failures,
      nextRunAtMs: this.#nextRunAtMs,
      lastError: this.#lastError,
    };
  }

  /** Starts the loop: the first cycle runs at once. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.wake();
  }

  /** Runs a cycle now (after the one in progress, if any). */
  wake(): void {
    if (!this.#started || this.#closed) return;
    this.#schedule(0);
  }

  /** Resolves when the cycle in progress (if any) has finished (tests). */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  /** Stops the loop and aborts calls in flight. */
  close(): void {
    this.#closed = true;
    this.#cancelTimer();
    this.#nextRunAtMs = undefined;
    this.#abort.abort();
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return;
    if (this.#running !== undefined) {
      if (delayMs === 0) this.#again = true;
      return;
    }
    this.#cancelTimer();
    const d = Math.max(0, Math.round(delayMs));
    this.#nextRunAtMs = this.#clock.nowMs() + d;
    this.#cancelTimer = this.#clock.setTimer(d, () => {
      this.#cancelTimer = () => {};
      this.#nextRunAtMs = undefined;
      const run = async (): Promise<void> => {
        const delay = await this.#cycle();
        this.#running = undefined;
        // A wake() during the cycle runs the next one at once (a new agent SVID).
        const next = this.#again ? 0 : delay;
        this.#again = false;
        this.#schedule(next);
      };
      this.#running = run();
    });
  }

  /** One cycle; never throws. Returns the delay before the next one. */
  async #cycle(): Promise<number> {
    let delay = this.#interval;
    if (this.#o.identity.current() !== undefined) {
      try {
        await this.syncOnce(this.#abort.signal);
        await this.#o.cache?.reconcile(this.#abort.signal);
        this.#o.identity.noteAccepted();
        this.#backoff.reset();
        this.#lastSuccessAtMs = this.#clock.nowMs();
        this.#lastError = undefined;
        this.#metrics.sync('ok');
        this.#o.onSynced?.();
        const now = this.#clock.nowMs();
        const rotation = this.#o.cache?.nextRotationAtMs(now);
        if (rotation !== undefined) delay = Math.min(delay, Math.max(0, rotation - now));
      } catch (err) {
        if (this.#closed) return delay;
        this.#metrics.sync('error');
        this.#lastError = err instanceof Error ? err : new Error(String(err));
        delay = this.#backoff.next();
        const rejection = agentRejection(err);
        this.#log.warn('sync with the server failed', {
          error: describeError(err),
          retry_in_ms: delay,
          attempt: this.#backoff.failures,
          ...(rejection === undefined ? {} : { rejection }),
        });
        if (rejection !== undefined) this.#o.identity.reportRejection(rejection);
      }
    }
    // Without an agent SVID (attesting, or stopped) there is nothing to ask the server; the
    // identity manager wakes the loop when it has one. Pruning goes on regardless.
    try {
      await this.#o.cache?.prune();
    } catch (err) {
      this.#log.warn('could not prune expired SVIDs', { error: describeError(err) });
    }
    return delay;
  }

  /**
   * One sync with the server: entries, bundle, federated bundles, written as one batch.
   * Throws what the server call threw (nothing is written then).
   */
  async syncOnce(signal?: AbortSignal): Promise<SyncReport> {
    const server = this.#o.server;
    const td = this.#o.trustDomain.name;
    const start = this.#o.store.snapshot;
    const agentId = start.agent?.spiffeId;
    const known = new Map<string, number>();
    for (const [id, e] of start.entries) known.set(id, e.revisionNumber);

    const answer = await server.syncAuthorizedEntries(known, signal);
    for (const bad of answer.invalid) {
      this.#log.warn('skipping an entry the agent cannot use', {
        entry_id: bad.id,
        error: describeError(bad.error),
      });
    }
    const bundle = await server.getBundle(signal);
    if (bundle.x509Authorities.length === 0) throw noAuthority();

    // The trust domains the entries federate with, after this sync.
    const changedById = new Map(answer.changed.map((e) => [e.id, e]));
    const tds = new Set<string>();
    for (const id of answer.revisions.keys()) {
      const e = changedById.get(id) ?? start.entries.get(id);
      for (const f of e?.federatesWith ?? []) if (f !== td) tds.add(f);
    }
    const federated = new Map<string, BundleRecord | undefined>();
    for (const f of [...tds].sort()) {
      try {
        federated.set(f, await server.getFederatedBundle(f, signal));
      } catch (err) {
        if (agentRejection(err) !== undefined || signal?.aborted === true) throw err;
        // Keep what is held; one federation's trouble must not stop the sync.
        this.#log.warn('could not fetch a federated bundle', {
          trust_domain: f,
          error: describeError(err),
        });
      }
    }

    const now = this.#clock.nowMs();
    let report: SyncReport | undefined;
    await this.#o.store.write((s: AgentStoreSnapshot, tx) => {
      if (s.agent?.spiffeId !== agentId) throw staleError();
      let upserted = 0;
      let deleted = 0;
      let federatedChanged = 0;
      for (const id of s.entries.keys()) {
        if (!answer.revisions.has(id)) {
          tx.deleteEntry(id).deleteX509Svid(id);
          deleted++;
        }
      }
      for (const e of answer.changed) {
        const held = s.entries.get(e.id);
        if (held !== undefined && held.revisionNumber === e.revisionNumber) continue;
        tx.putEntry(e);
        upserted++;
      }
      const bundleChanged = !bundleRecordsEqual(s.bundle, bundle);
      if (bundleChanged) tx.setBundle(bundle);
      for (const [f, b] of federated) {
        const held = s.federatedBundles.get(f);
        if (b === undefined) {
          if (held !== undefined) {
            tx.deleteFederatedBundle(f);
            federatedChanged++;
          }
        } else if (!bundleRecordsEqual(held, b)) {
          tx.putFederatedBundle(b);
          federatedChanged++;
        }
      }
      for (const f of s.federatedBundles.keys()) {
        if (!tds.has(f)) {
          tx.deleteFederatedBundle(f);
          federatedChanged++;
        }
      }
      // JWT-SVIDs of SPIFFE IDs no entry carries any more.
      const ids = new Set<string>();
      for (const [id, e] of s.entries) if (answer.revisions.has(id)) ids.add(e.spiffeId);
      for (const e of answer.changed) ids.add(e.spiffeId);
      for (const j of s.jwtSvids.values()) {
        if (!ids.has(j.spiffeId)) tx.deleteJwtSvid(j.spiffeId, j.audience);
      }
      const changed = upserted + deleted + federatedChanged > 0 || bundleChanged;
      const stateDue =
        s.sync === undefined || now - s.sync.lastSyncAtMs >= SYNC_STATE_WRITE_INTERVAL_MS;
      if (changed || stateDue) {
        tx.setSyncState({ lastSyncAtMs: now, lastFullSyncAtMs: now, cursor: '' });
      }
      report = {
        upserted,
        deleted,
        bundleChanged,
        federatedChanged,
        written: changed || stateDue,
      };
    });
    const r = report!;
    if (r.upserted + r.deleted + r.federatedChanged > 0 || r.bundleChanged) {
      this.#log.info('synced with the server', {
        entries_upserted: r.upserted,
        entries_deleted: r.deleted,
        bundle_changed: r.bundleChanged,
        federated_bundles_changed: r.federatedChanged,
      });
    }
    return r;
  }
}
