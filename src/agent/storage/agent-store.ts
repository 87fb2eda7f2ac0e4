/**
 * The agent's persistent state: the {@link AgentStore} interface, its immutable
 * {@link AgentStoreSnapshot} and the {@link AgentStoreTransaction} every write goes through.
 *
 * Reads are synchronous and come from an in-memory snapshot loaded when the store is opened
 * (LevelDB is the durable copy, never the per-request read path). Writes are async: each is
 * ONE atomic LevelDB batch, written with `sync` (fsync), and only when it has committed does the
 * store swap in a new snapshot. A reader that holds a snapshot keeps a consistent view; a new
 * read after a write's promise resolves sees the write.
 *
 * What the store checks: the shape and encoding of what it writes (TypeError otherwise), that
 * bundles belong to the right trust domain, and at open that every record is intact and ours.
 * What the caller must still check: that SVIDs are unexpired before serving them
 * (`expiresAtMs`), that chains verify against the bundle, and that entries are authorized —
 * the store keeps what it was given.
 */
import type {
  AgentIdentityRecord,
  BundleRecord,
  EntryRecord,
  JwtSvidRecord,
  SyncStateRecord,
  X509SvidRecord,
} from './records.js';

/** An immutable view of everything in the store at one moment. */
export interface AgentStoreSnapshot {
  /** Increments with every committed write in this process (compare to detect changes). */
  readonly revision: number;
  /** The trust domain the store belongs to (`example.org`). */
  readonly trustDomain: string;
  readonly agent: AgentIdentityRecord | undefined;
  /** Our trust domain's bundle. */
  readonly bundle: BundleRecord | undefined;
  /** Federated bundles by trust domain name. */
  readonly federatedBundles: ReadonlyMap<string, BundleRecord>;
  /** Authorized entries by entry ID. */
  readonly entries: ReadonlyMap<string, EntryRecord>;
  readonly sync: SyncStateRecord | undefined;
  /** Cached workload X509-SVIDs by entry ID. */
  readonly x509Svids: ReadonlyMap<string, X509SvidRecord>;
  /** Cached JWT-SVIDs by {@link jwtSvidCacheKey}(spiffeId, audience). */
  readonly jwtSvids: ReadonlyMap<string, JwtSvidRecord>;
  /**
   * Device records by name: opaque, non-secret state of the device (the TPM sealer's sealed
   * data key, the TPM attestor's AK blobs). Never mutate the bytes.
   */
  readonly devices: ReadonlyMap<string, Uint8Array>;
}

/** Groups of records {@link AgentStoreTransaction.clear} can remove. */
export type ClearableKind =
  | 'agent'
  | 'bundle'
  | 'federatedBundles'
  | 'entries'
  | 'sync'
  | 'x509Svids'
  | 'jwtSvids';

/**
 * Collects the changes of one atomic write. Operations apply in order: a later operation on
 * the same record replaces an earlier one; `clear` removes what exists when the batch is
 * committed and what earlier operations of the same transaction put.
 *
 * Methods throw TypeError for arguments that cannot be right (a bundle of another trust
 * domain, an empty ID); field types are checked when the batch is encoded, which rejects
 * the write's promise with a TypeError.
 */
export interface AgentStoreTransaction {
  setAgentIdentity(record: AgentIdentityRecord): this;
  deleteAgentIdentity(): this;
  /** Our trust domain's bundle; its `trustDomain` must be the store's. */
  setBundle(record: BundleRecord): this;
  deleteBundle(): this;
  /** A federated bundle; its `trustDomain` must not be the store's. */
  putFederatedBundle(record: BundleRecord): this;
  deleteFederatedBundle(trustDomain: string): this;
  putEntry(record: EntryRecord): this;
  deleteEntry(id: string): this;
  setSyncState(record: SyncStateRecord): this;
  putX509Svid(record: X509SvidRecord): this;
  deleteX509Svid(entryId: string): this;
  /** Caches a JWT-SVID; its audience is normalised (sorted, duplicates removed). */
  putJwtSvid(record: JwtSvidRecord): this;
  deleteJwtSvid(spiffeId: string, audience: readonly string[]): this;
  /**
   * Stores the device record `name` (1–63 characters of `a-z 0-9 . _ -`, starting with a letter
   * or digit; the value at most 64 KiB, copied). Device records are not secrets: they are not
   * sealed.
   */
  putDeviceRecord(name: string, bytes: Uint8Array): this;
  deleteDeviceRecord(name: string): this;
  /**
   * Removes every record of the given kinds (default: all of them). The store's meta records
   * and the device records stay: they describe the store and the device, not the agent.
   */
  clear(kinds?: readonly ClearableKind[]): this;
}

/** What one sync with the server produced, applied by {@link AgentStore.applySyncResult}. */
export interface SyncResult {
  /** Entries new or changed since the last sync. */
  readonly upsertEntries?: readonly EntryRecord[];
  /** Entries no longer authorized: removed, with their cached X509-SVIDs. */
  readonly deleteEntryIds?: readonly string[];
  readonly syncState: SyncStateRecord;
  /** Our trust domain's bundle, when it changed. */
  readonly bundle?: BundleRecord;
  readonly federatedBundles?: {
    readonly put?: readonly BundleRecord[];
    readonly delete?: readonly string[];
  };
}

/** How many records {@link AgentStore.pruneExpired} removed. */
export interface PruneResult {
  readonly x509Svids: number;
  readonly jwtSvids: number;
}

/** The agent's persistent state (see the module docs). */
export interface AgentStore {
  /** The LevelDB directory (`<data_dir>/agent-store`). */
  readonly location: string;
  readonly dataDir: string;
  /** The trust domain the store belongs to. */
  readonly trustDomain: string;
  /** A random ID of this store (hex), for logs. */
  readonly storeId: string;
  /** When the store was created, ms since the epoch. */
  readonly createdAtMs: number;
  /** True when the store was created by this open (nothing was stored before). */
  readonly created: boolean;
  /** True after {@link AgentStore.close}. */
  readonly closed: boolean;

  /** The current snapshot (synchronous; replaced, never mutated, by each write). */
  readonly snapshot: AgentStoreSnapshot;
  agentIdentity(): AgentIdentityRecord | undefined;
  bundle(): BundleRecord | undefined;
  federatedBundle(trustDomain: string): BundleRecord | undefined;
  entry(id: string): EntryRecord | undefined;
  syncState(): SyncStateRecord | undefined;
  /** The cached X509-SVID of an entry; the caller checks `expiresAtMs` before serving it. */
  x509Svid(entryId: string): X509SvidRecord | undefined;
  /** The cached JWT-SVID for an ID and audience set; the caller checks `expiresAtMs`. */
  jwtSvid(spiffeId: string, audience: readonly string[]): JwtSvidRecord | undefined;
  /** A copy of the device record `name`, or undefined. */
  deviceRecord(name: string): Uint8Array | undefined;

  /**
   * Applies the changes `build` records as one atomic batch, then swaps in the new snapshot
   * and returns it. Writes are serialised in call order. An empty transaction writes nothing.
   *
   * @throws SpireEdgeError `ERR_AGENT_STORE_WRITE` (nothing applied), `ERR_AGENT_STORE_CLOSED`.
   * @throws TypeError for records the store cannot hold.
   */
  update(build: (tx: AgentStoreTransaction) => void): Promise<AgentStoreSnapshot>;
  /** Stores the agent identity (after attestation or renewal). One batch. */
  setAgentIdentity(record: AgentIdentityRecord): Promise<AgentStoreSnapshot>;
  /** Stores our trust domain's bundle. One batch. */
  setBundle(record: BundleRecord): Promise<AgentStoreSnapshot>;
  /**
   * Applies a sync result: upserts and deletes entries (and the cached X509-SVIDs of deleted
   * entries), bundles, and the sync state — all in one batch.
   */
  applySyncResult(result: SyncResult): Promise<AgentStoreSnapshot>;
  /** Stores minted or rotated X509-SVIDs (and drops others) in one batch. */
  storeX509Svids(
    svids: readonly X509SvidRecord[],
    options?: { readonly deleteEntryIds?: readonly string[] },
  ): Promise<AgentStoreSnapshot>;
  /** Caches one JWT-SVID. */
  putJwtSvid(record: JwtSvidRecord): Promise<AgentStoreSnapshot>;
  /**
   * Removes cached SVIDs whose `expiresAtMs` is at or before `nowMs` (default: the store's
   * clock), in one batch.
   */
  pruneExpired(nowMs?: number): Promise<PruneResult>;
  /**
   * Removes everything but the store's own meta records and the device records (the agent was
   * evicted or re-attested as another node), in one batch. Device records stay: the TPM sealer's
   * data key must outlive the agent's identity, and the AK belongs to the device.
   */
  reset(): Promise<AgentStoreSnapshot>;
  /** Waits for pending writes and closes LevelDB. Idempotent. */
  close(): Promise<void>;
}
