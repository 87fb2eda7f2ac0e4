/**
 * The authorized-entries cache: which registration entries an agent may fetch SVIDs for,
 * answered from memory in time proportional to the answer (SPIRE's
 * `pkg/server/authorizedentries`).
 *
 * An agent is authorized for
 * 1. every entry whose parent ID is the agent's SPIFFE ID,
 * 2. every entry whose parent ID is the SPIFFE ID of a node-alias entry (an entry whose
 *    parent is the server, `spiffe://<td>/spire/server`) whose selectors are all among the
 *    agent's node selectors,
 * 3. recursively, every entry whose parent ID is the SPIFFE ID of an entry found so far
 *    (descendants: a workload that is itself a parent, e.g. a nested agent).
 *
 * Node-alias entries themselves are not returned (SPIRE does not return them either); they
 * only widen the set of parents. Entries and parents outside the trust domain are ignored.
 * Expired entries (non-zero `entryExpiry` at or before now) are left out and not descended
 * through; an agent whose SVID expired (its node's `certNotAfter` at or before now) keeps
 * only directly parented entries, as in SPIRE, where expired agents are pruned from the
 * alias index.
 *
 * Indexes: entries by ID and by parent ID; aliases by entry ID and by each of their
 * selectors; agents by ID. A lookup visits the agent's selectors, the aliases that share
 * at least one of them, and the entries it returns.
 *
 * Trusts: its callers. It is fed from the datastore (see authorized-entries.ts) and does
 * not authenticate anyone: the agent ID given to a lookup must already be authenticated.
 */
import { type Clock, systemClock } from '../../common/clock.js';
import { type TrustDomain, toTrustDomain } from '../../spiffe/id.js';
import type { RegistrationEntry, Selector } from '../datastore/types.js';

interface EntryRecord {
  readonly entry: RegistrationEntry;
}

interface AliasRecord {
  readonly entry: RegistrationEntry;
  /** `type:value` keys of the alias's selectors. */
  readonly selectorKeys: readonly string[];
}

interface AgentRecord {
  /** certNotAfter in seconds; 0 = unknown (never expires here). */
  readonly expiresAt: number;
  readonly selectorKeys: ReadonlySet<string>;
}

/** Sizes of the cache's indexes (for metrics and tests). */
export interface AuthorizedEntryCacheStats {
  /** Non-alias entries. */
  readonly entries: number;
  /** Node-alias entries. */
  readonly aliases: number;
  /** Alias index rows (one per alias selector). */
  readonly aliasSelectors: number;
  /** Agents with known node selectors. */
  readonly agents: number;
}

/** Options of {@link AuthorizedEntryCache}. */
export interface AuthorizedEntryCacheOptions {
  readonly trustDomain: TrustDomain | string;
  /** Used for entry and agent expiry; the system clock by default. */
  readonly clock?: Clock;
}

const selectorKey = (s: Selector): string => `${s.type}:${s.value}`;

/**
 * In-memory index of entries and agents' node selectors. Not thread-safe in any sense
 * that matters to Node: every method is synchronous, so a lookup never sees a half-applied
 * update.
 */
export class AuthorizedEntryCache {
  readonly trustDomain: TrustDomain;
  /** `spiffe://<td>/spire/server`: the parent ID of node-alias entries. */
  readonly serverId: string;
  readonly #prefix: string;
  readonly #clock: Clock;

  readonly #entries = new Map<string, EntryRecord>();
  readonly #byParent = new Map<string, Map<string, EntryRecord>>();
  readonly #aliases = new Map<string, AliasRecord>();
  readonly #aliasesBySelector = new Map<string, Map<string, AliasRecord>>();
  #aliasSelectorRows = 0;
  readonly #agents = new Map<string, AgentRecord>();

  constructor(options: AuthorizedEntryCacheOptions) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError('AuthorizedEntryCache options are required');
    }
    this.trustDomain = toTrustDomain(options.trustDomain);
    this.#prefix = `${this.trustDomain.idString()}/`;
    this.serverId = `${this.trustDomain.idString()}/spire/server`;
    this.#clock = options.clock ?? systemClock;
  }

  /** Index sizes. */
  stats(): AuthorizedEntryCacheStats {
    return {
      entries: this.#entries.size,
      aliases: this.#aliases.size,
      aliasSelectors: this.#aliasSelectorRows,
      agents: this.#agents.size,
    };
  }

  /** Entries held (aliases included): the `authorizedEntriesCacheSize` metric. */
  get size(): number {
    return this.#entries.size + this.#aliases.size;
  }

  /** The cached entry with this ID (alias or not), or undefined. */
  getEntry(id: string): RegistrationEntry | undefined {
    return (this.#entries.get(id) ?? this.#aliases.get(id))?.entry;
  }

  /**
   * Adds or replaces an entry. Entries whose SPIFFE ID or parent ID is outside the trust
   * domain are dropped (and any previous version removed), as SPIRE does.
   */
  updateEntry(entry: RegistrationEntry): void {
    this.removeEntry(entry.id);
    if (!entry.spiffeId.startsWith(this.#prefix) || !entry.parentId.startsWith(this.#prefix)) {
      return;
    }
    if (entry.parentId === this.serverId) {
      const rec: AliasRecord = { entry, selectorKeys: entry.selectors.map(selectorKey) };
      this.#aliases.set(entry.id, rec);
      for (const key of new Set(rec.selectorKeys)) {
        let bucket = this.#aliasesBySelector.get(key);
        if (bucket === undefined) {
          bucket = new Map();
          this.#aliasesBySelector.set(key, bucket);
        }
        bucket.set(entry.id, rec);
        this.#aliasSelectorRows++;
      }
      return;
    }
    const rec: EntryRecord = { entry };
    this.#entries.set(entry.id, rec);
    let siblings = this.#byParent.get(entry.parentId);
    if (siblings === undefined) {
      siblings = new Map();
      this.#byParent.set(entry.parentId, siblings);
    }
    siblings.set(entry.id, rec);
  }

  /** Removes an entry (alias or not); no-op when absent. */
  removeEntry(id: string): void {
    const rec = this.#entries.get(id);
    if (rec !== undefined) {
      this.#entries.delete(id);
      const siblings = this.#byParent.get(rec.entry.parentId);
      if (siblings !== undefined) {
        siblings.delete(id);
        if (siblings.size === 0) this.#byParent.delete(rec.entry.parentId);
      }
      return;
    }
    const alias = this.#aliases.get(id);
    if (alias === undefined) return;
    this.#aliases.delete(id);
    for (const key of new Set(alias.selectorKeys)) {
      const bucket = this.#aliasesBySelector.get(key);
      if (bucket?.delete(id) === true) this.#aliasSelectorRows--;
      if (bucket !== undefined && bucket.size === 0) this.#aliasesBySelector.delete(key);
    }
  }

  /**
   * Records an agent's node selectors and SVID expiry (`certNotAfter`, seconds; 0 when
   * unknown). Replaces what was known.
   */
  updateAgent(agentId: string, expiresAt: number, selectors: readonly Selector[]): void {
    this.#agents.set(agentId, {
      expiresAt,
      selectorKeys: new Set(selectors.map(selectorKey)),
    });
  }

  /** Forgets an agent (evicted or deleted). */
  removeAgent(agentId: string): void {
    this.#agents.delete(agentId);
  }

  /** Forgets agents whose SVID expired at or before now; returns how many. */
  pruneExpiredAgents(): number {
    const now = this.#nowSeconds();
    let pruned = 0;
    for (const [id, a] of this.#agents) {
      if (a.expiresAt !== 0 && a.expiresAt <= now) {
        this.#agents.delete(id);
        pruned++;
      }
    }
    return pruned;
  }

  /** Drops everything (before a full reload). */
  clear(): void {
    this.#entries.clear();
    this.#byParent.clear();
    this.#aliases.clear();
    this.#aliasesBySelector.clear();
    this.#aliasSelectorRows = 0;
    this.#agents.clear();
  }

  /**
   * Every entry the agent is authorized for (see the file comment), each once, in crawl
   * order (direct children first, depth first).
   *
   * Trusts: `agentId` is authenticated. An agent the cache does not know yet (an
   * attestation the cache has not caught up with) gets its directly parented entries only.
   */
  getAuthorizedEntries(agentId: string): RegistrationEntry[] {
    const out: RegistrationEntry[] = [];
    this.#crawl(agentId, (e) => {
      out.push(e);
      return false;
    });
    return out;
  }

  /**
   * The entries among `entryIds` that the agent is authorized for, keyed by ID. Stops
   * crawling as soon as all are found (BatchNewX509SVID's check).
   */
  lookupAuthorizedEntries(
    agentId: string,
    entryIds: ReadonlySet<string>,
  ): Map<string, RegistrationEntry> {
    const found = new Map<string, RegistrationEntry>();
    if (entryIds.size === 0) return found;
    this.#crawl(agentId, (e) => {
      if (entryIds.has(e.id)) found.set(e.id, e);
      return found.size === entryIds.size;
    });
    return found;
  }

  #nowSeconds(): number {
    return Math.floor(this.#clock.nowMs() / 1000);
  }

  /** Visits authorized entries; `visit` returns true to stop. */
  #crawl(agentId: string, visit: (e: RegistrationEntry) => boolean): void {
    const now = this.#nowSeconds();
    const live = (e: RegistrationEntry): boolean => e.entryExpiry === 0 || e.entryExpiry > now;
    const seenParents = new Set<string>();
    const stack: string[] = [];
    // Depth-first over parents; returns true when the visitor asked to stop.
    const descend = (root: string): boolean => {
      stack.push(root);
      while (stack.length > 0) {
        const parent = stack.pop()!;
        if (seenParents.has(parent)) continue;
        seenParents.add(parent);
        const children = this.#byParent.get(parent);
        if (children === undefined) continue;
        for (const rec of children.values()) {
          if (!live(rec.entry)) continue;
          if (visit(rec.entry)) {
            stack.length = 0;
            return true;
          }
          if (this.#byParent.has(rec.entry.spiffeId)) stack.push(rec.entry.spiffeId);
        }
      }
      return false;
    };

    if (descend(agentId)) return;
    const agent = this.#agents.get(agentId);
    if (agent === undefined || (agent.expiresAt !== 0 && agent.expiresAt <= now)) return;
    const aliasesSeen = new Set<string>();
    for (const key of agent.selectorKeys) {
      const bucket = this.#aliasesBySelector.get(key);
      if (bucket === undefined) continue;
      for (const alias of bucket.values()) {
        if (aliasesSeen.has(alias.entry.id)) continue;
        aliasesSeen.add(alias.entry.id);
        if (!live(alias.entry)) continue;
        if (!alias.selectorKeys.every((k) => agent.selectorKeys.has(k))) continue;
        if (descend(alias.entry.spiffeId)) return;
      }
    }
  }
}
