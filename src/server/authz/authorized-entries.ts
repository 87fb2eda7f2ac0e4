/**
 * Keeps an {@link AuthorizedEntryCache} in step with the datastore (SPIRE's event-based
 * `AuthorizedEntryFetcherEvents`): built once from a full read, then updated from the
 * entry and attested-node change events every `pollIntervalMs`. Every server reads the
 * same event tables, so a second server on the same PostgreSQL sees the first one's
 * changes on its next poll.
 *
 * Event gaps: event IDs come from a sequence, so an ID may be skipped (a rolled-back
 * write) or commit after a larger one. A skipped ID is tracked for `eventTimeoutMs`
 * (SPIRE's `event_timeout`, 15 min) and re-looked-for on every poll; if it shows up, its
 * record is re-read. A gap wider than `maxTrackedGaps` (events pruned while this server
 * was away) triggers a full reload instead. A full reload also runs every
 * `fullReloadIntervalMs` (SPIRE: 24 h) as a safety net.
 *
 * Applying an event re-reads the record it names (entry by ID, node by SPIFFE ID): events
 * carry no payload, so applying one twice or out of order is harmless.
 *
 * Trusts: the datastore. What the caller must still do: authenticate the agent whose ID it
 * looks up.
 */
import { type Clock, systemClock } from '../../common/clock.js';
import { describeError } from '../../common/errors.js';
import { type Logger, nullLogger } from '../../common/log.js';
import { type TrustDomain, toTrustDomain } from '../../spiffe/id.js';
import { noMetrics, type ServerMetrics } from '../context.js';
import type {
  AttestedNode,
  ChangeEvent,
  DataStore,
  ListEventsRequest,
  RegistrationEntry,
} from '../datastore/types.js';
import { AuthorizedEntryCache } from './authorized-entries-cache.js';

/** SPIRE's default `event_timeout`. */
export const DEFAULT_EVENT_TIMEOUT_MS = 15 * 60_000;
/** Poll interval (SPIRE's `cache_reload_interval` defaults to 5 s; we poll every second). */
export const DEFAULT_POLL_INTERVAL_MS = 1_000;
/** SPIRE's `full_cache_reload_interval`. */
export const DEFAULT_FULL_RELOAD_INTERVAL_MS = 24 * 3600_000;
/** SPIRE's `prune_events_older_than`. */
export const DEFAULT_PRUNE_EVENTS_OLDER_THAN_SECONDS = 12 * 3600;

/** Options of {@link AuthorizedEntries.start}. */
export interface AuthorizedEntriesOptions {
  readonly dataStore: DataStore;
  readonly trustDomain: TrustDomain | string;
  readonly clock?: Clock;
  readonly log?: Logger;
  readonly metrics?: ServerMetrics;
  /** How often events are polled; default 1 s. 0 disables the timer (call `poll()`). */
  readonly pollIntervalMs?: number;
  /** How long a skipped event ID is waited for; default 15 min. */
  readonly eventTimeoutMs?: number;
  /** Periodic full reload; default 24 h; 0 disables. */
  readonly fullReloadIntervalMs?: number;
  /**
   * Events older than this are deleted every half of it (SPIRE's
   * `prune_events_older_than`, 12 h); 0 disables pruning.
   */
  readonly pruneEventsOlderThanSeconds?: number;
  /** Records read per datastore page; default 1000. */
  readonly pageSize?: number;
  /** Skipped event IDs tracked at most before a full reload; default 10,000. */
  readonly maxTrackedGaps?: number;
}

/** What one poll changed. */
export interface PollResult {
  readonly entriesUpdated: number;
  readonly agentsUpdated: number;
  /** True when the poll fell back to a full reload. */
  readonly reloaded: boolean;
}

type ListEvents = (req: ListEventsRequest) => Promise<ChangeEvent[]>;

/** Follows one event table: the last ID applied and the skipped IDs still awaited. */
class EventCursor {
  #last: number;
  readonly #skipped = new Map<number, number>();

  constructor(
    readonly list: ListEvents,
    last: number,
    readonly timeoutMs: number,
    readonly maxGaps: number,
  ) {
    this.#last = last;
  }

  get trackedGaps(): number {
    return this.#skipped.size;
  }

  /** The keys changed since the last call, or `undefined` when a full reload is needed. */
  async next(nowMs: number): Promise<Set<string> | undefined> {
    let from = this.#last;
    for (const [id, since] of this.#skipped) {
      if (nowMs - since > this.timeoutMs) this.#skipped.delete(id);
      else if (id - 1 < from) from = id - 1;
    }
    const events = await this.list({ greaterThanEventId: from });
    const keys = new Set<string>();
    let last = this.#last;
    for (const e of events) {
      if (e.eventId <= last) {
        if (this.#skipped.delete(e.eventId)) keys.add(e.key);
        continue;
      }
      const gap = e.eventId - last - 1;
      if (gap > 0) {
        if (this.#skipped.size + gap > this.maxGaps) return undefined;
        for (let id = last + 1; id < e.eventId; id++) this.#skipped.set(id, nowMs);
      }
      keys.add(e.key);
      last = e.eventId;
    }
    this.#last = last;
    return keys;
  }

  reset(last: number): void {
    this.#last = last;
    this.#skipped.clear();
  }
}

function nonNegativeInt(v: number | undefined, fallback: number, name: string): number {
  if (v === undefined) return fallback;
  if (!Number.isSafeInteger(v) || v < 0) throw new TypeError(`${name} must be an integer >= 0`);
  return v;
}

/**
 * The authorized-entries cache plus the task that keeps it current. Start it with
 * {@link AuthorizedEntries.start}; stop it with {@link AuthorizedEntries.close}.
 */
export class AuthorizedEntries {
  readonly #ds: DataStore;
  readonly #td: TrustDomain;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #metrics: ServerMetrics;
  readonly #pollMs: number;
  readonly #fullReloadMs: number;
  readonly #pruneSeconds: number;
  readonly #pageSize: number;
  #cache: AuthorizedEntryCache;
  readonly #entryCursor: EventCursor;
  readonly #nodeCursor: EventCursor;
  #lastFullReload: number;
  #lastPrune: number;
  #tail: Promise<unknown> = Promise.resolve();
  #cancelTimer: (() => void) | undefined;
  #closed = false;

  private constructor(o: AuthorizedEntriesOptions) {
    this.#ds = o.dataStore;
    this.#td = toTrustDomain(o.trustDomain);
    this.#clock = o.clock ?? systemClock;
    this.#log = o.log ?? nullLogger;
    this.#metrics = o.metrics ?? noMetrics;
    this.#pollMs = nonNegativeInt(o.pollIntervalMs, DEFAULT_POLL_INTERVAL_MS, 'pollIntervalMs');
    this.#fullReloadMs = nonNegativeInt(
      o.fullReloadIntervalMs,
      DEFAULT_FULL_RELOAD_INTERVAL_MS,
      'fullReloadIntervalMs',
    );
    this.#pruneSeconds = nonNegativeInt(
      o.pruneEventsOlderThanSeconds,
      DEFAULT_PRUNE_EVENTS_OLDER_THAN_SECONDS,
      'pruneEventsOlderThanSeconds',
    );
    this.#pageSize = nonNegativeInt(o.pageSize, 1000, 'pageSize') || 1000;
    const timeout = nonNegativeInt(o.eventTimeoutMs, DEFAULT_EVENT_TIMEOUT_MS, 'eventTimeoutMs');
    const maxGaps = nonNegativeInt(o.maxTrackedGaps, 10_000, 'maxTrackedGaps');
    this.#cache = new AuthorizedEntryCache({ trustDomain: this.#td, clock: this.#clock });
    this.#entryCursor = new EventCursor((r) => this.#ds.listEntryEvents(r), 0, timeout, maxGaps);
    this.#nodeCursor = new EventCursor(
      (r) => this.#ds.listAttestedNodeEvents(r),
      0,
      timeout,
      maxGaps,
    );
    this.#lastFullReload = this.#clock.nowMs();
    this.#lastPrune = this.#clock.nowMs();
  }

  /**
   * Builds the cache from the datastore and starts polling.
   *
   * @throws the datastore's coded error when the first full read fails.
   */
  static async start(options: AuthorizedEntriesOptions): Promise<AuthorizedEntries> {
    if (options === null || typeof options !== 'object' || options.dataStore === undefined) {
      throw new TypeError('AuthorizedEntries.start needs options with a dataStore');
    }
    const a = new AuthorizedEntries(options);
    await a.#fullLoad();
    a.#schedule();
    return a;
  }

  /** The current cache (replaced by a full reload: do not hold on to it). */
  get cache(): AuthorizedEntryCache {
    return this.#cache;
  }

  /** Skipped event IDs currently awaited (entries, nodes). */
  get trackedGaps(): { entries: number; nodes: number } {
    return { entries: this.#entryCursor.trackedGaps, nodes: this.#nodeCursor.trackedGaps };
  }

  /** See {@link AuthorizedEntryCache.getAuthorizedEntries}. */
  getAuthorizedEntries(agentId: string): RegistrationEntry[] {
    return this.#cache.getAuthorizedEntries(agentId);
  }

  /** See {@link AuthorizedEntryCache.lookupAuthorizedEntries}. */
  lookupAuthorizedEntries(
    agentId: string,
    entryIds: ReadonlySet<string>,
  ): Map<string, RegistrationEntry> {
    return this.#cache.lookupAuthorizedEntries(agentId, entryIds);
  }

  /**
   * Applies a node this server just wrote (attestation, renewal), so the agent's
   * node-alias entries are served before the next poll. The event that the write also
   * produced is applied again later, harmlessly.
   */
  noteAttestedNode(node: AttestedNode): void {
    this.#cache.updateAgent(node.spiffeId, node.certNotAfter, node.selectors);
  }

  /** Applies the events written since the last poll now (serialised with the timer). */
  poll(): Promise<PollResult> {
    return this.#run(() => this.#poll());
  }

  /** Rebuilds the cache from a full read now. */
  reload(): Promise<void> {
    return this.#run(() => this.#fullLoad());
  }

  /** Stops polling and waits for a poll in progress. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    await this.#tail.catch(() => undefined);
  }

  #run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#tail.then(fn, fn);
    this.#tail = p.catch(() => undefined);
    return p;
  }

  #schedule(): void {
    if (this.#closed || this.#pollMs === 0) return;
    this.#cancelTimer = this.#clock.setTimer(this.#pollMs, () => {
      this.#cancelTimer = undefined;
      void this.#run(() => this.#tick()).finally(() => this.#schedule());
    });
  }

  async #tick(): Promise<void> {
    if (this.#closed) return;
    try {
      const now = this.#clock.nowMs();
      if (this.#fullReloadMs > 0 && now - this.#lastFullReload >= this.#fullReloadMs) {
        await this.#fullLoad();
      } else {
        await this.#poll();
        const pruned = this.#cache.pruneExpiredAgents();
        if (pruned > 0) this.#log.debug('pruned expired agents from entry cache', { pruned });
      }
      if (this.#pruneSeconds > 0 && now - this.#lastPrune >= (this.#pruneSeconds * 1000) / 2) {
        this.#lastPrune = now;
        const e = await this.#ds.pruneEntryEvents(this.#pruneSeconds);
        const n = await this.#ds.pruneAttestedNodeEvents(this.#pruneSeconds);
        if (e + n > 0) this.#log.debug('pruned change events', { entries: e, nodes: n });
      }
    } catch (err) {
      this.#log.error('failed to update the authorized entries cache', {
        error: describeError(err),
      });
    }
  }

  async #poll(): Promise<PollResult> {
    const now = this.#clock.nowMs();
    const entryKeys = await this.#entryCursor.next(now);
    const nodeKeys = await this.#nodeCursor.next(now);
    if (entryKeys === undefined || nodeKeys === undefined) {
      this.#log.warn('too many skipped change events; reloading the entry cache');
      await this.#fullLoad();
      return { entriesUpdated: 0, agentsUpdated: 0, reloaded: true };
    }
    const cache = this.#cache;
    const ids = [...entryKeys];
    for (let i = 0; i < ids.length; i += this.#pageSize) {
      const page = ids.slice(i, i + this.#pageSize);
      const found = new Map((await this.#ds.getEntries(page)).map((e) => [e.id, e]));
      for (const id of page) {
        const e = found.get(id);
        if (e === undefined) cache.removeEntry(id);
        else cache.updateEntry(e);
      }
    }
    const agents = [...nodeKeys];
    const CONCURRENCY = 16;
    for (let i = 0; i < agents.length; i += CONCURRENCY) {
      const batch = agents.slice(i, i + CONCURRENCY);
      const nodes = await Promise.all(batch.map((id) => this.#ds.getAttestedNode(id)));
      batch.forEach((id, j) => {
        const node = nodes[j];
        if (node === undefined) cache.removeAgent(id);
        else cache.updateAgent(id, node.certNotAfter, node.selectors);
      });
    }
    this.#metrics.authorizedEntriesCacheSize(cache.size);
    return { entriesUpdated: ids.length, agentsUpdated: agents.length, reloaded: false };
  }

  async #fullLoad(): Promise<void> {
    // Read the event positions first: anything written during the load has a larger event
    // ID and is applied (again) by the next poll.
    const entryLast = await this.#ds.getLatestEntryEventId();
    const nodeLast = await this.#ds.getLatestAttestedNodeEventId();
    const cache = new AuthorizedEntryCache({ trustDomain: this.#td, clock: this.#clock });
    let token: string | undefined;
    do {
      const page = await this.#ds.listEntries({
        pagination: {
          pageSize: this.#pageSize,
          ...(token === undefined ? {} : { pageToken: token }),
        },
      });
      for (const e of page.items) cache.updateEntry(e);
      token = page.nextPageToken;
    } while (token !== undefined && token !== '');
    const nowSeconds = Math.floor(this.#clock.nowMs() / 1000);
    token = undefined;
    do {
      const page = await this.#ds.listAttestedNodes({
        pagination: {
          pageSize: this.#pageSize,
          ...(token === undefined ? {} : { pageToken: token }),
        },
      });
      for (const n of page.items) {
        if (n.certNotAfter === 0 || n.certNotAfter > nowSeconds) {
          cache.updateAgent(n.spiffeId, n.certNotAfter, n.selectors);
        }
      }
      token = page.nextPageToken;
    } while (token !== undefined && token !== '');
    this.#entryCursor.reset(entryLast);
    this.#nodeCursor.reset(nodeLast);
    this.#cache = cache;
    this.#lastFullReload = this.#clock.nowMs();
    this.#metrics.authorizedEntriesCacheSize(cache.size);
  }
}
