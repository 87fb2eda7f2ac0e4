/**
 * The agent's SVID cache (SPIRE's agent `cache` + `svid rotation`, persisted in the store so a
 * restarted agent serves at once and an offline agent keeps serving):
 *
 * - **X509-SVIDs are pre-minted** for every authorized entry: the agent generates an EC P-256
 *   key per SVID, sends CSRs to BatchNewX509SVID in batches (default 100 per call), checks every
 *   answer (issued-svid.ts: chain to the bundle, the entry's SPIFFE ID, the key it generated) and
 *   stores each batch's SVIDs in ONE store batch — only for entries that still exist at the same
 *   revision when the batch is written (a concurrent sync may have removed them).
 * - **Rotation**: an SVID is replaced at its half-life ±10 % jitter (lifetime.ts), when its entry
 *   changed (revision or SPIFFE ID), or once expired; {@link SvidCache.nextRotationAtMs} tells
 *   the sync loop when to come back.
 * - **JWT-SVIDs** are cached per (SPIFFE ID, audience set) — audience order and duplicates do not
 *   matter — and fetched again from the server once past half-life. While the server is
 *   unreachable an unexpired cached token is still served; an expired one never is. Concurrent
 *   requests for one key share one server call. The cache holds at most `jwtCacheMaxSize`
 *   tokens (the soonest-expiring go first).
 * - **Pruning** removes expired SVIDs from the store.
 * - **Size limit** (SPIRE's `x509_svid_cache_max_size`, default 1000, pkg/agent/manager/cache
 *   `LRUCache`): a soft limit on cached X509-SVIDs. While the agent holds at most that many
 *   entries nothing changes (every entry's SVID is pre-minted). Beyond it, entries without an
 *   SVID are minted only while there is room (most recently used first) or when a workload
 *   asks for them: an X509-SVID stream whose selectors match an entry ({@link SvidCache.retain},
 *   SPIRE's cache subscriber) gets its SVIDs minted at once whatever the limit, and waits for
 *   them before its first message (the Workload API asks {@link SvidCache.limited}). Each
 *   reconcile first removes SVIDs beyond the limit: those of entries no open stream matches,
 *   least recently used first (last use = the last stream opened for them). SVIDs of entries
 *   with an open stream are never removed, so the limit can be exceeded (hence "soft").
 *   Removed SVIDs leave the store too (this agent persists its cache; SPIRE's is memory-only).
 *
 * Errors: a server call that fails as a whole rejects {@link SvidCache.reconcile} (SVIDs already
 * stored stay); per-entry refusals are logged and counted. `fetchJwtSvid` rejects with the
 * server's error when nothing unexpired is cached, or `ERR_AGENT_ISSUED_JWT_SVID_INVALID` when
 * the server's token is not for the requested ID and audience.
 */
import { Code } from '@connectrpc/connect';
import { type Clock, systemClock } from '../../common/clock.js';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import { type Logger, nullLogger } from '../../common/log.js';
import type { RandomSource } from '../../common/random.js';
import { cryptoRandom } from '../../common/random.js';
import type { TrustDomain } from '../../spiffe/id.js';
import type { parseJwtSvidInsecure } from '../../spiffe/jwt-svid.js';
import { createCsr } from '../attestation/csr.js';
import type { PruneResult } from '../storage/agent-store.js';
import { jwtSvidCacheKey, normalizeAudience } from '../storage/layout.js';
import type { EntryRecord, JwtSvidRecord, X509SvidRecord } from '../storage/records.js';
import { entryMatches, type JwtSvidToken, selectorKeys } from '../workload-api/identity-source.js';
import type { Selector } from '../workload-attestors/selector.js';
import { checkIssuedX509Svid } from './issued-svid.js';
import { generateEcP256Key, type KeyGenerator, spkiOf } from './keys.js';
import { jwtRenewAt, rotationAt } from './lifetime.js';
import type { ManagedStore } from './managed-store.js';
import { type AgentMetrics, nullAgentMetrics } from './metrics.js';
import type { AgentServerClient } from './server-client.js';

/** Default number of CSRs per BatchNewX509SVID call. */
export const DEFAULT_X509_BATCH_SIZE = 100;
/** Default limit of cached JWT-SVIDs (SPIRE's `jwt_svid_cache_max_size`). */
export const DEFAULT_JWT_CACHE_MAX_SIZE = 1000;
/** Default soft limit of cached X509-SVIDs (SPIRE's `x509_svid_cache_max_size`). */
export const DEFAULT_X509_CACHE_MAX_SIZE = 1000;
/** Mints in one reconcile after which `releaseMemory` is called. */
export const RELEASE_MEMORY_AFTER_MINTS = 50;
/** Delay of the second release after a big mint. */
export const RELEASE_MEMORY_AGAIN_MS = 3000;
/** Shortest gap between two mints for newly opened streams (SPIRE's `SVIDSyncInterval`). */
export const DEMAND_MINT_INTERVAL_MS = 500;
/** Longest wait between failed mints for open streams (the sync loop retries as well). */
const DEMAND_MINT_MAX_BACKOFF_MS = 30_000;

/** Options of {@link SvidCache}. */
export interface SvidCacheOptions {
  readonly store: ManagedStore;
  readonly server: Pick<AgentServerClient, 'batchNewX509Svid' | 'newJwtSvid'>;
  readonly trustDomain: TrustDomain;
  readonly clock?: Clock;
  readonly random?: RandomSource;
  readonly log?: Logger;
  readonly metrics?: AgentMetrics;
  /** CSRs per BatchNewX509SVID call; default {@link DEFAULT_X509_BATCH_SIZE}. */
  readonly batchSize?: number;
  /** Default {@link DEFAULT_JWT_CACHE_MAX_SIZE}. */
  readonly jwtCacheMaxSize?: number;
  /** Soft limit of cached X509-SVIDs; default {@link DEFAULT_X509_CACHE_MAX_SIZE}. */
  readonly x509CacheMaxSize?: number;
  /**
   * Called after a reconcile that minted at least {@link RELEASE_MEMORY_AFTER_MINTS} SVIDs, to
   * give the memory that work left behind back (the agent passes `releaseFreedMemory`).
   */
  readonly releaseMemory?: () => void;
  /** Workload keys; default EC P-256. */
  readonly generateKey?: KeyGenerator;
}

/** What one {@link SvidCache.reconcile} did. */
export interface ReconcileResult {
  /** SVIDs minted and stored. */
  readonly minted: number;
  /** SVIDs the server refused or that failed the checks. */
  readonly failed: number;
}

/** The identity a JWT-SVID is asked for (a Workload API identity). */
export interface JwtSvidSubject {
  readonly entryId: string;
  readonly spiffeId: string;
}

function noBundle(): SpireEdgeError {
  return new SpireEdgeError('ERR_AGENT_NO_BUNDLE', 'the agent has no trust bundle yet');
}

function badJwt(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_AGENT_ISSUED_JWT_SVID_INVALID',
    message,
    cause === undefined ? {} : { cause },
  );
}

/** Manages the cached workload SVIDs (see the module docs). */
export class SvidCache {
  readonly #o: SvidCacheOptions;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  readonly #log: Logger;
  readonly #metrics: AgentMetrics;
  readonly #batchSize: number;
  readonly #jwtMax: number;
  readonly #generateKey: KeyGenerator;
  readonly #jwtInFlight = new Map<string, Promise<JwtSvidToken>>();
  #reconciling: Promise<ReconcileResult> | undefined;
  readonly #x509Max: number;
  /** Open X509-SVID streams by their selector set (`type:value` texts, sorted, joined). */
  readonly #subscribers = new Map<string, { keys: ReadonlySet<string>; count: number }>();
  /** Entry ID → when a stream last asked for it (epoch ms): the LRU order. */
  readonly #lastUse = new Map<string, number>();
  #demandTimer: (() => void) | undefined;
  #demandRunning = false;
  #demandAgain = false;
  #demandLastMs = Number.NEGATIVE_INFINITY;
  #demandBackoffMs = DEMAND_MINT_INTERVAL_MS;
  #closed = false;

  constructor(options: SvidCacheOptions) {
    if (typeof options?.store?.write !== 'function') throw new TypeError('store is required');
    if (typeof options.server?.batchNewX509Svid !== 'function') {
      throw new TypeError('server is required');
    }
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? cryptoRandom;
    this.#log = options.log ?? nullLogger;
    this.#metrics = options.metrics ?? nullAgentMetrics;
    this.#batchSize = options.batchSize ?? DEFAULT_X509_BATCH_SIZE;
    this.#jwtMax = options.jwtCacheMaxSize ?? DEFAULT_JWT_CACHE_MAX_SIZE;
    this.#x509Max = options.x509CacheMaxSize ?? DEFAULT_X509_CACHE_MAX_SIZE;
    if (!Number.isSafeInteger(this.#x509Max) || this.#x509Max < 1) {
      throw new TypeError('x509CacheMaxSize must be a positive integer');
    }
    if (!Number.isSafeInteger(this.#batchSize) || this.#batchSize < 1) {
      throw new TypeError('batchSize must be a positive integer');
    }
    if (!Number.isSafeInteger(this.#jwtMax) || this.#jwtMax < 1) {
      throw new TypeError('jwtCacheMaxSize must be a positive integer');
    }
    this.#generateKey = options.generateKey ?? generateEcP256Key;
  }

  /** True when `entry` needs a (new) X509-SVID at `nowMs` (see the module docs). */
  needsSvid(entry: EntryRecord, svid: X509SvidRecord | undefined, nowMs: number): boolean {
    if (entry.expiresAt > 0 && entry.expiresAt * 1000 <= nowMs) return false;
    return (
      svid === undefined ||
      svid.entryRevision !== entry.revisionNumber ||
      svid.spiffeId !== entry.spiffeId ||
      nowMs >= svid.rotateAtMs ||
      nowMs >= svid.expiresAtMs
    );
  }

  /**
   * The entries whose SVID is missing, stale or due for rotation at `nowMs`. Beyond the size
   * limit, entries without an SVID are included only while there is room (most recently used
   * first, then by entry ID) or when an open stream matches them (see the module docs).
   */
  due(nowMs: number = this.#clock.nowMs()): EntryRecord[] {
    const snap = this.#o.store.snapshot;
    const out: EntryRecord[] = [];
    const missing: EntryRecord[] = [];
    for (const e of snap.entries.values()) {
      const svid = snap.x509Svids.get(e.id);
      if (!this.needsSvid(e, svid, nowMs)) continue;
      if (svid === undefined && snap.entries.size > this.#x509Max) missing.push(e);
      else out.push(e);
    }
    if (missing.length === 0) return out;
    const active = this.#activeEntries(snap.entries.values());
    let room = this.#x509Max - snap.x509Svids.size;
    for (const e of missing) if (active.has(e.id)) room--;
    missing.sort(
      (a, b) =>
        (this.#lastUse.get(b.id) ?? 0) - (this.#lastUse.get(a.id) ?? 0) ||
        (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
    );
    for (const e of missing) {
      if (active.has(e.id)) out.push(e);
      else if (room > 0) {
        out.push(e);
        room--;
      }
    }
    return out;
  }

  /**
   * True while the size limit shapes the cache (the agent holds more entries than the limit):
   * an entry without an SVID is then one the limit held back, which a stream opened for it
   * should wait for rather than be told "no identity".
   */
  limited(): boolean {
    return this.#o.store.snapshot.entries.size > this.#x509Max;
  }

  /**
   * An X509-SVID stream for `selectors` opened (SPIRE's cache subscriber): `entryIds` (the
   * entries they match) become the most recently used; while the stream is open, the SVIDs of
   * the entries its selectors match are never removed for the limit, and missing ones are
   * minted at once. Returns the release (idempotent), called when the stream ends.
   */
  retain(selectors: readonly Selector[], entryIds: readonly string[]): () => void {
    const keys = selectorKeys(selectors);
    const id = [...keys].sort().join('\n');
    let sub = this.#subscribers.get(id);
    if (sub === undefined) {
      sub = { keys, count: 0 };
      this.#subscribers.set(id, sub);
    }
    sub.count++;
    const now = this.#clock.nowMs();
    const snap = this.#o.store.snapshot;
    let missing = false;
    for (const e of entryIds) {
      this.#lastUse.set(e, now);
      if (!snap.x509Svids.has(e)) missing = true;
    }
    if (missing && this.limited()) this.#demand();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const s = this.#subscribers.get(id);
      if (s !== undefined && --s.count === 0) this.#subscribers.delete(id);
    };
  }

  /** Open streams (distinct selector sets). */
  get streamCount(): number {
    let n = 0;
    for (const s of this.#subscribers.values()) n += s.count;
    return n;
  }

  /** Stops on-demand minting (the agent is stopping). */
  close(): void {
    this.#closed = true;
    this.#demandTimer?.();
    this.#demandTimer = undefined;
  }

  /** IDs of the entries an open stream's selectors match. */
  #activeEntries(entries: Iterable<EntryRecord>): Set<string> {
    const out = new Set<string>();
    if (this.#subscribers.size === 0) return out;
    for (const e of entries) {
      for (const s of this.#subscribers.values()) {
        if (entryMatches(e.selectors, s.keys)) {
          out.add(e.id);
          break;
        }
      }
    }
    return out;
  }

  /** The SVIDs to remove for the limit: unused ones, least recently used first. */
  #evictions(): string[] {
    const snap = this.#o.store.snapshot;
    const excess = snap.x509Svids.size - this.#x509Max;
    if (excess <= 0) return [];
    const active = this.#activeEntries(snap.entries.values());
    return [...snap.x509Svids.keys()]
      .filter((id) => !active.has(id))
      .sort(
        (a, b) =>
          (this.#lastUse.get(a) ?? 0) - (this.#lastUse.get(b) ?? 0) || (a < b ? -1 : a > b ? 1 : 0),
      )
      .slice(0, excess);
  }

  /**
   * Mints for newly opened streams soon: at most one run at a time, runs at least
   * {@link DEMAND_MINT_INTERVAL_MS} apart, backing off after failures (the server may be down;
   * the sync loop keeps trying as well).
   */
  #demand(): void {
    if (this.#closed) return;
    if (this.#demandRunning) {
      this.#demandAgain = true;
      return;
    }
    if (this.#demandTimer !== undefined) return;
    const wait = Math.max(0, this.#demandLastMs + this.#demandBackoffMs - this.#clock.nowMs());
    this.#demandTimer = this.#clock.setTimer(wait, () => {
      this.#demandTimer = undefined;
      this.#demandRunning = true;
      this.#demandLastMs = this.#clock.nowMs();
      this.reconcile().then(
        () => {
          this.#demandBackoffMs = DEMAND_MINT_INTERVAL_MS;
          this.#demandDone();
        },
        (err: unknown) => {
          this.#demandBackoffMs = Math.min(DEMAND_MINT_MAX_BACKOFF_MS, this.#demandBackoffMs * 2);
          this.#log.debug('could not mint SVIDs for newly opened streams', {
            error: describeError(err),
            retry_in_ms: this.#demandBackoffMs,
          });
          this.#demandAgain = true;
          this.#demandDone();
        },
      );
    });
  }

  #demandDone(): void {
    this.#demandRunning = false;
    if (this.#demandAgain) {
      this.#demandAgain = false;
      const snap = this.#o.store.snapshot;
      const active = this.#activeEntries(snap.entries.values());
      if ([...active].some((id) => !snap.x509Svids.has(id))) this.#demand();
    }
  }

  /** The earliest planned rotation after `nowMs`, ms since the epoch. */
  nextRotationAtMs(nowMs: number): number | undefined {
    let next: number | undefined;
    for (const s of this.#o.store.snapshot.x509Svids.values()) {
      if (s.rotateAtMs > nowMs && (next === undefined || s.rotateAtMs < next)) next = s.rotateAtMs;
    }
    return next;
  }

  /**
   * Mints every due X509-SVID (see the module docs). One reconcile runs at a time; a call while
   * one runs waits for it and then runs again.
   */
  async reconcile(signal?: AbortSignal): Promise<ReconcileResult> {
    while (this.#reconciling !== undefined) await this.#reconciling.catch(() => {});
    const run = this.#reconcileOnce(signal);
    this.#reconciling = run;
    try {
      return await run;
    } finally {
      this.#reconciling = undefined;
    }
  }

  async #reconcileOnce(signal?: AbortSignal): Promise<ReconcileResult> {
    await this.#evict();
    const due = this.due();
    if (due.length === 0) return { minted: 0, failed: 0 };
    if (this.#o.store.snapshot.bundle === undefined) throw noBundle();
    let minted = 0;
    let failed = 0;
    for (let i = 0; i < due.length; i += this.#batchSize) {
      signal?.throwIfAborted();
      const batch = due.slice(i, i + this.#batchSize);
      const keys = await Promise.all(batch.map(() => this.#generateKey()));
      const results = await this.#o.server.batchNewX509Svid(
        batch.map((e, j) => ({ entryId: e.id, csr: createCsr(keys[j]!) })),
        signal,
      );
      const bundle = this.#o.store.snapshot.bundle;
      if (bundle === undefined) throw noBundle();
      const now = this.#clock.now();
      const records: X509SvidRecord[] = [];
      batch.forEach((entry, j) => {
        const r = results[j]!;
        if (!r.ok) {
          failed++;
          const fields = { entry_id: entry.id, spiffe_id: entry.spiffeId, error: r.message };
          // NotFound: the entry was removed or is no longer authorized; the next sync drops it.
          if (r.code === Code.NotFound) this.#log.debug('the server did not mint an SVID', fields);
          else this.#log.warn('the server did not mint an SVID', fields);
          return;
        }
        const key = keys[j]!;
        try {
          const checked = checkIssuedX509Svid(r.certChain, {
            trustDomain: this.#o.trustDomain,
            authorities: bundle.x509Authorities,
            spki: spkiOf(key),
            expectedId: entry.spiffeId,
            now,
          });
          records.push({
            entryId: entry.id,
            spiffeId: checked.spiffeId,
            certChain: r.certChain,
            privateKey: new Uint8Array(key.export({ format: 'der', type: 'pkcs8' })),
            expiresAtMs: checked.notAfterMs,
            rotateAtMs: rotationAt(checked.notBeforeMs, checked.notAfterMs, this.#random),
            entryRevision: entry.revisionNumber,
          });
        } catch (err) {
          failed++;
          this.#log.warn('refusing an SVID the server issued', {
            entry_id: entry.id,
            error: describeError(err),
          });
        }
      });
      if (records.length > 0) {
        let stored = 0;
        await this.#o.store.write((s, tx) => {
          stored = 0;
          for (const rec of records) {
            const e = s.entries.get(rec.entryId);
            if (e === undefined || e.revisionNumber !== rec.entryRevision) continue;
            tx.putX509Svid(rec);
            stored++;
          }
        });
        minted += stored;
        this.#metrics.x509SvidsMinted(stored);
      }
    }
    if (failed > 0) this.#metrics.x509SvidMintFailures(failed);
    if (minted + failed >= RELEASE_MEMORY_AFTER_MINTS) {
      this.#o.releaseMemory?.();
      // Again once the writes, stream pushes and TLS buffers that follow a big mint are done.
      const release = this.#o.releaseMemory;
      if (release !== undefined) setTimeout(release, RELEASE_MEMORY_AGAIN_MS).unref();
    }
    if (minted > 0 || failed > 0) {
      this.#log.info('minted workload X509-SVIDs', { minted, failed });
    }
    return { minted, failed };
  }

  /**
   * A JWT-SVID for `subject` and `audience` (at least one value): the cached one while it is
   * before its half-life, else a new one from the server; while the server cannot answer, the
   * cached one until it expires (see the module docs).
   */
  async fetchJwtSvid(
    subject: JwtSvidSubject,
    audience: readonly string[],
    signal?: AbortSignal,
  ): Promise<JwtSvidToken> {
    if (!Array.isArray(audience) || audience.length === 0) {
      throw new TypeError('audience must hold at least one value');
    }
    const aud = normalizeAudience(audience);
    const key = jwtSvidCacheKey(subject.spiffeId, aud);
    const cached = this.#o.store.snapshot.jwtSvids.get(key);
    const now = this.#clock.nowMs();
    if (
      cached !== undefined &&
      cached.expiresAtMs > now &&
      now < jwtRenewAt(cached.issuedAtMs, cached.expiresAtMs)
    ) {
      this.#metrics.jwtSvidFetched('cache');
      return { token: cached.token, expiresAt: new Date(cached.expiresAtMs) };
    }
    let inFlight = this.#jwtInFlight.get(key);
    if (inFlight === undefined) {
      inFlight = this.#newJwtSvid(subject, aud, key, cached, signal).finally(() => {
        this.#jwtInFlight.delete(key);
      });
      this.#jwtInFlight.set(key, inFlight);
    }
    return inFlight;
  }

  async #newJwtSvid(
    subject: JwtSvidSubject,
    aud: string[],
    key: string,
    cached: JwtSvidRecord | undefined,
    signal?: AbortSignal,
  ): Promise<JwtSvidToken> {
    let record: JwtSvidRecord;
    try {
      const issued = await this.#o.server.newJwtSvid(subject.entryId, aud, signal);
      // Loaded on first use: it brings in jose, which an agent serving X509-SVIDs never needs.
      const jwtSvid = await import('../../spiffe/jwt-svid.js');
      let parsed: ReturnType<typeof parseJwtSvidInsecure>;
      try {
        parsed = jwtSvid.parseJwtSvidInsecure(issued.token);
      } catch (err) {
        throw badJwt(`the server issued a malformed JWT-SVID: ${describeError(err)}`, err);
      }
      if (parsed.id.toString() !== subject.spiffeId) {
        throw badJwt(
          `the server issued a JWT-SVID for ${parsed.id.toString()}, not ${subject.spiffeId}`,
        );
      }
      if (!aud.every((a) => parsed.audience.includes(a))) {
        throw badJwt('the server issued a JWT-SVID without the requested audience');
      }
      const expiresAtMs = parsed.expiresAt.getTime();
      if (expiresAtMs <= this.#clock.nowMs()) {
        throw badJwt('the server issued a JWT-SVID that has already expired');
      }
      record = {
        spiffeId: subject.spiffeId,
        audience: aud,
        token: issued.token,
        issuedAtMs: parsed.issuedAt?.getTime() ?? Math.min(issued.issuedAtMs, this.#clock.nowMs()),
        expiresAtMs,
      };
    } catch (err) {
      if (cached !== undefined && cached.expiresAtMs > this.#clock.nowMs()) {
        this.#log.debug('serving a cached JWT-SVID: the server did not issue a new one', {
          spiffe_id: subject.spiffeId,
          error: describeError(err),
        });
        this.#metrics.jwtSvidFetched('cache');
        return { token: cached.token, expiresAt: new Date(cached.expiresAtMs) };
      }
      throw err;
    }
    try {
      await this.#o.store.write((s, tx) => {
        tx.putJwtSvid(record);
        const excess = s.jwtSvids.size + (s.jwtSvids.has(key) ? 0 : 1) - this.#jwtMax;
        if (excess > 0) {
          const others = [...s.jwtSvids.entries()]
            .filter(([k]) => k !== key)
            .sort(([, a], [, b]) => a.expiresAtMs - b.expiresAtMs)
            .slice(0, excess);
          for (const [, j] of others) tx.deleteJwtSvid(j.spiffeId, j.audience);
        }
      });
    } catch (err) {
      // Not cached this time; the workload still gets its token.
      this.#log.warn('could not cache a JWT-SVID', { error: describeError(err) });
    }
    this.#metrics.jwtSvidFetched('server');
    return { token: record.token, expiresAt: new Date(record.expiresAtMs) };
  }

  /** Removes the SVIDs beyond the size limit (one batch; see the module docs). */
  async #evict(): Promise<void> {
    if (this.#evictions().length === 0) return;
    let removed = 0;
    await this.#o.store.write((s, tx) => {
      removed = 0;
      for (const id of this.#evictions()) {
        if (!s.x509Svids.has(id)) continue;
        tx.deleteX509Svid(id);
        removed++;
      }
    });
    if (removed > 0) {
      this.#log.debug('removed X509-SVIDs beyond x509_svid_cache_max_size', {
        removed,
        max: this.#x509Max,
      });
    }
  }

  /** Removes expired SVIDs from the store (one batch, none when nothing expired). */
  async prune(): Promise<PruneResult> {
    const now = this.#clock.nowMs();
    let x509Svids = 0;
    let jwtSvids = 0;
    const snap = this.#o.store.snapshot;
    const any =
      [...snap.x509Svids.values()].some((s) => s.expiresAtMs <= now) ||
      [...snap.jwtSvids.values()].some((s) => s.expiresAtMs <= now);
    if (!any) return { x509Svids, jwtSvids };
    await this.#o.store.write((s, tx) => {
      x509Svids = 0;
      jwtSvids = 0;
      for (const v of s.x509Svids.values()) {
        if (v.expiresAtMs <= now) {
          tx.deleteX509Svid(v.entryId);
          x509Svids++;
        }
      }
      for (const v of s.jwtSvids.values()) {
        if (v.expiresAtMs <= now) {
          tx.deleteJwtSvid(v.spiffeId, v.audience);
          jwtSvids++;
        }
      }
    });
    if (x509Svids + jwtSvids > 0) {
      this.#log.info('pruned expired SVIDs', { x509_svids: x509Svids, jwt_svids: jwtSvids });
    }
    return { x509Svids, jwtSvids };
  }
}
