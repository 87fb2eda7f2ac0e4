/**
 * The agent store as the managers share it: every write goes through {@link ManagedStore.write},
 * which runs writes one after the other and builds each one against the snapshot left by the
 * previous write (so the cache can never store an SVID for an entry a concurrent sync just
 * deleted), and tells listeners after every committed change (the Workload API streams).
 *
 * Each write is still ONE batch of the underlying store (one fsynced LevelDB batch); this layer
 * only orders them. Reads are the store's synchronous snapshot.
 */
import type {
  AgentStore,
  AgentStoreSnapshot,
  AgentStoreTransaction,
} from '../storage/agent-store.js';

/** Builds one write from the snapshot it applies to. */
export type StoreWriteBuilder = (snapshot: AgentStoreSnapshot, tx: AgentStoreTransaction) => void;

/** The serialised, observable view of an {@link AgentStore}. */
export class ManagedStore {
  readonly store: AgentStore;
  readonly #listeners = new Set<(snapshot: AgentStoreSnapshot) => void>();
  #queue: Promise<unknown> = Promise.resolve();

  constructor(store: AgentStore) {
    if (typeof store?.update !== 'function') throw new TypeError('store must be an AgentStore');
    this.store = store;
  }

  /** The current snapshot. */
  get snapshot(): AgentStoreSnapshot {
    return this.store.snapshot;
  }

  /**
   * Waits for earlier writes, then calls `build` with the current snapshot and commits what it
   * recorded as one batch. Listeners are told when the snapshot changed. A build that throws
   * rejects the write and records nothing.
   *
   * @throws SpireEdgeError `ERR_AGENT_STORE_WRITE`, `ERR_AGENT_STORE_CLOSED` (the store's).
   */
  write(build: StoreWriteBuilder): Promise<AgentStoreSnapshot> {
    if (typeof build !== 'function') throw new TypeError('build must be a function');
    const run = this.#queue.then(async () => {
      const before = this.store.snapshot;
      const after = await this.store.update((tx) => build(this.store.snapshot, tx));
      if (after.revision !== before.revision) this.#emit(after);
      return after;
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Resolves once every write queued so far has settled. */
  async settled(): Promise<void> {
    await this.#queue;
  }

  /** Calls `listener` after every committed change; returns the unsubscribe function. */
  onChange(listener: (snapshot: AgentStoreSnapshot) => void): () => void {
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    const wrapped = (s: AgentStoreSnapshot) => listener(s);
    this.#listeners.add(wrapped);
    return () => {
      this.#listeners.delete(wrapped);
    };
  }

  #emit(snapshot: AgentStoreSnapshot): void {
    for (const l of [...this.#listeners]) {
      try {
        l(snapshot);
      } catch {
        // A listener's failure is its own; the write has committed.
      }
    }
  }
}
