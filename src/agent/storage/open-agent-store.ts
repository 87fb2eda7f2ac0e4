/**
 * The LevelDB (classic-level) implementation of {@link AgentStore}: {@link openAgentStore}.
 *
 * Open, in this order:
 * 1. inspect `<data_dir>/agent-store` (see store-dir.ts; a missing store is created atomically
 *    with its meta records) and open LevelDB;
 * 2. read every record and check the layout version, the trust domain, each record's encoding
 *    and key, and the record count (against the layout the store has);
 * 3. migrate an older layout (one fsynced batch, see internal/migrate.ts);
 * 4. get the sealer: the `sealer` option, or `createSealer(devices)` — the factory reads and
 *    writes `device:*` records (its sealed data key) through {@link DeviceRecordAccess}, each
 *    write one fsynced batch, before any secret is touched;
 * 5. unseal the secrets (each with its record key as context), build the in-memory snapshot,
 *    and reseal secrets stored as is when a sealer is configured.
 *
 * Write: each update is resolved against the current snapshot, its secrets are sealed, it is
 * encoded and written as ONE LevelDB batch with `sync: true` (with the new `meta:records`
 * count); the snapshot is replaced only after the batch committed. LevelDB applies a batch atomically (one log record; a torn tail
 * is dropped on recovery), so a crash leaves either the old or the new state.
 *
 * Errors at open: `ERR_AGENT_STORE_CORRUPT`, `ERR_AGENT_STORE_VERSION`, `ERR_AGENT_STORE_FOREIGN`,
 * `ERR_AGENT_STORE_SEALED` (recoverable: see quarantine.ts), `ERR_AGENT_STORE_LOCKED`,
 * `ERR_AGENT_STORE_IO`.
 */

import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { type Clock, systemClock } from '../../common/clock.js';
import { describeError } from '../../common/errors.js';
import { cryptoRandom, type RandomSource } from '../../common/random.js';
import { parseTrustDomain, type TrustDomain } from '../../spiffe/id.js';
import type {
  AgentStore,
  AgentStoreSnapshot,
  AgentStoreTransaction,
  PruneResult,
  SyncResult,
} from './agent-store.js';
import { encodeValue } from './codec.js';
import { classifyOpenError, loadRecords, readAll } from './internal/load-records.js';
import { migrationBatch } from './internal/migrate.js';
import { mapLimit, SEAL_CONCURRENCY, toStored } from './internal/secrets.js';
import { freezeSnapshot, snapshotHas, type Tables } from './internal/tables.js';
import {
  type Change,
  copyDevice,
  deviceName,
  keyMatchesKind,
  type StoredRecordInput,
  Transaction,
} from './internal/transaction.js';
import {
  AGENT_STORE_DIRNAME,
  jwtSvidCacheKey,
  KEY_AGENT,
  KEY_BUNDLE,
  KEY_RECORD_COUNT,
  KEY_STORE_INFO,
  KEY_SYNC,
  KEY_VERSION,
  keys,
  LAYOUT_VERSION,
  PREFIX_DEVICE,
  PREFIX_ENTRY,
  PREFIX_FEDERATED,
  PREFIX_JWT,
  PREFIX_X509,
  RecordKind,
  type StoreInfoRecord,
} from './layout.js';
import type {
  AgentIdentityRecord,
  BundleRecord,
  EntryRecord,
  JwtSvidRecord,
  SyncStateRecord,
  X509SvidRecord,
} from './records.js';
import type { DeviceRecordAccess, Sealer, SealerFactory } from './sealer.js';
import { createStoreDir, inspectStoreDir, tightenFileModes } from './store-dir.js';
import { isAgentStoreError, storeError } from './store-errors.js';

/** Options of {@link openAgentStore}. */
export interface OpenAgentStoreOptions {
  /** The agent's `data_dir`; the store is its `agent-store` subdirectory. */
  readonly dataDir: string;
  /** The agent's trust domain: a store of another trust domain is refused as foreign. */
  readonly trustDomain: TrustDomain | string;
  /** Seals secrets at rest (see sealer.ts). Without it they are stored as is. */
  readonly sealer?: Sealer;
  /**
   * Creates the sealer from state it keeps in the store's device records (the TPM sealer's
   * sealed data key), called once per open between loading the records and unsealing the
   * secrets (see the module docs). The store closes the sealer it returns. Exclusive with
   * `sealer`.
   */
  readonly createSealer?: SealerFactory;
  /** Time source (creation time, {@link AgentStore.pruneExpired}). */
  readonly clock?: Clock;
  /** Randomness for the store ID. */
  readonly random?: RandomSource;
}

type Db = ClassicLevel<string, Uint8Array>;
type Op = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

function encodeRecordCount(count: number): Uint8Array {
  return encodeValue(KEY_RECORD_COUNT, { kind: RecordKind.recordCount, record: { count } });
}

function newDb(location: string, createIfMissing: boolean): Db {
  return new ClassicLevel<string, Uint8Array>(location, {
    keyEncoding: 'utf8',
    valueEncoding: 'view',
    // Only the creation step may create a database; an existing store is opened as it is.
    createIfMissing,
  });
}

/** Builds a new, empty store with its meta records in `dir` (see store-dir.ts). */
async function populateNewStore(dir: string, info: StoreInfoRecord): Promise<void> {
  const db = newDb(dir, true);
  try {
    await db.open();
    await db.batch(
      [
        { type: 'put', key: KEY_VERSION, value: new TextEncoder().encode(String(LAYOUT_VERSION)) },
        {
          type: 'put',
          key: KEY_STORE_INFO,
          value: encodeValue(KEY_STORE_INFO, { kind: RecordKind.storeInfo, record: info }),
        },
        { type: 'put', key: KEY_RECORD_COUNT, value: encodeRecordCount(0) },
      ],
      { sync: true },
    );
  } finally {
    await db.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The store

class LevelAgentStore implements AgentStore {
  readonly location: string;
  readonly dataDir: string;
  readonly trustDomain: string;
  readonly storeId: string;
  readonly createdAtMs: number;
  readonly created: boolean;
  readonly #db: Db;
  readonly #sealer: Sealer | undefined;
  readonly #ownsSealer: boolean;
  readonly #clock: Clock;
  #snapshot: AgentStoreSnapshot;
  /** Data records in LevelDB (what `meta:records` says). */
  #count: number;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(init: {
    location: string;
    dataDir: string;
    trustDomain: string;
    info: StoreInfoRecord;
    created: boolean;
    db: Db;
    sealer: Sealer | undefined;
    ownsSealer: boolean;
    clock: Clock;
    tables: Tables;
    count: number;
  }) {
    this.location = init.location;
    this.dataDir = init.dataDir;
    this.trustDomain = init.trustDomain;
    this.storeId = init.info.storeId;
    this.createdAtMs = init.info.createdAtMs;
    this.created = init.created;
    this.#db = init.db;
    this.#sealer = init.sealer;
    this.#ownsSealer = init.ownsSealer;
    this.#clock = init.clock;
    this.#snapshot = freezeSnapshot(0, init.trustDomain, init.tables);
    this.#count = init.count;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get snapshot(): AgentStoreSnapshot {
    return this.#snapshot;
  }

  agentIdentity(): AgentIdentityRecord | undefined {
    return this.#snapshot.agent;
  }

  bundle(): BundleRecord | undefined {
    return this.#snapshot.bundle;
  }

  federatedBundle(trustDomain: string): BundleRecord | undefined {
    return this.#snapshot.federatedBundles.get(trustDomain);
  }

  entry(id: string): EntryRecord | undefined {
    return this.#snapshot.entries.get(id);
  }

  syncState(): SyncStateRecord | undefined {
    return this.#snapshot.sync;
  }

  x509Svid(entryId: string): X509SvidRecord | undefined {
    return this.#snapshot.x509Svids.get(entryId);
  }

  jwtSvid(spiffeId: string, audience: readonly string[]): JwtSvidRecord | undefined {
    return this.#snapshot.jwtSvids.get(jwtSvidCacheKey(spiffeId, audience));
  }

  deviceRecord(name: string): Uint8Array | undefined {
    const v = this.#snapshot.devices.get(deviceName(name));
    return v === undefined ? undefined : new Uint8Array(v);
  }

  update(build: (tx: AgentStoreTransaction) => void): Promise<AgentStoreSnapshot> {
    if (typeof build !== 'function') throw new TypeError('build must be a function');
    if (this.#closing !== undefined) {
      return Promise.reject(storeError('ERR_AGENT_STORE_CLOSED', 'the agent store is closed'));
    }
    const tx = new Transaction(this.trustDomain);
    build(tx);
    const run = this.#queue.then(() => this.#commit(tx.changes));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #commit(changes: readonly Change[]): Promise<AgentStoreSnapshot> {
    if (this.#closed) throw storeError('ERR_AGENT_STORE_CLOSED', 'the agent store is closed');
    const current = this.#snapshot;
    // Resolve the changes into a final operation per key.
    const final = new Map<string, { kind: 'put'; value: StoredRecordInput } | { kind: 'del' }>();
    const existing = (): string[] => [
      ...(current.agent === undefined ? [] : [KEY_AGENT]),
      ...(current.bundle === undefined ? [] : [KEY_BUNDLE]),
      ...(current.sync === undefined ? [] : [KEY_SYNC]),
      ...[...current.federatedBundles.keys()].map(keys.federatedBundle),
      ...[...current.entries.keys()].map(keys.entry),
      ...[...current.x509Svids.keys()].map(keys.x509Svid),
      ...[...current.jwtSvids.keys()].map((k) => PREFIX_JWT + k),
    ];
    for (const c of changes) {
      if (c.kind === 'put') final.set(c.key, { kind: 'put', value: c.value });
      else if (c.kind === 'del') final.set(c.key, { kind: 'del' });
      else {
        const matches = (k: string) => c.kinds.some((kind) => keyMatchesKind(k, kind));
        for (const k of existing()) if (matches(k)) final.set(k, { kind: 'del' });
        for (const k of final.keys()) if (matches(k)) final.set(k, { kind: 'del' });
      }
    }
    // Deleting what is not there writes nothing.
    for (const [key, op] of final) {
      if (op.kind === 'del' && !snapshotHas(current, key)) final.delete(key);
    }
    if (final.size === 0) return current;

    // Seal and encode (a TypeError here means nothing is written).
    const entries = [...final.entries()];
    let ops: Op[];
    try {
      ops = await mapLimit(entries, SEAL_CONCURRENCY, async ([key, op]): Promise<Op> => {
        if (op.kind === 'del') return { type: 'del', key };
        return {
          type: 'put',
          key,
          value: encodeValue(key, await toStored(op.value, this.#sealer, key)),
        };
      });
    } catch (err) {
      if (err instanceof TypeError) throw err;
      throw storeError(
        'ERR_AGENT_STORE_WRITE',
        `could not seal a secret for the agent store: ${describeError(err)}`,
        err,
      );
    }
    let count = this.#count;
    for (const [key, op] of entries) {
      const had = snapshotHas(current, key);
      if (op.kind === 'put' && !had) count++;
      else if (op.kind === 'del' && had) count--;
    }
    ops.push({ type: 'put', key: KEY_RECORD_COUNT, value: encodeRecordCount(count) });
    try {
      await this.#db.batch(ops, { sync: true });
      this.#count = count;
    } catch (err) {
      throw storeError(
        'ERR_AGENT_STORE_WRITE',
        `could not write to the agent store: ${describeError(err)}`,
        err,
      );
    }

    // Committed: build the next snapshot (copy-on-write of the maps that changed).
    const t: Tables = {
      agent: current.agent,
      bundle: current.bundle,
      federatedBundles: current.federatedBundles as Map<string, BundleRecord>,
      entries: current.entries as Map<string, EntryRecord>,
      sync: current.sync,
      x509Svids: current.x509Svids as Map<string, X509SvidRecord>,
      jwtSvids: current.jwtSvids as Map<string, JwtSvidRecord>,
      devices: current.devices as Map<string, Uint8Array>,
    };
    const copied = new Set<string>();
    const writable = <
      K extends 'federatedBundles' | 'entries' | 'x509Svids' | 'jwtSvids' | 'devices',
    >(
      name: K,
    ): Tables[K] => {
      if (!copied.has(name)) {
        copied.add(name);
        (t as unknown as Record<string, unknown>)[name] = new Map(t[name] as Map<string, unknown>);
      }
      return t[name];
    };
    for (const [key, op] of entries) {
      const v = op.kind === 'put' ? op.value : undefined;
      if (key === KEY_AGENT) t.agent = v?.kind === RecordKind.agent ? v.record : undefined;
      else if (key === KEY_BUNDLE) t.bundle = v?.kind === RecordKind.bundle ? v.record : undefined;
      else if (key === KEY_SYNC) t.sync = v?.kind === RecordKind.sync ? v.record : undefined;
      else if (key.startsWith(PREFIX_FEDERATED)) {
        const m = writable('federatedBundles');
        const td = key.slice(PREFIX_FEDERATED.length);
        if (v?.kind === RecordKind.federatedBundle) m.set(td, v.record);
        else m.delete(td);
      } else if (key.startsWith(PREFIX_ENTRY)) {
        const m = writable('entries');
        const id = key.slice(PREFIX_ENTRY.length);
        if (v?.kind === RecordKind.entry) m.set(id, v.record);
        else m.delete(id);
      } else if (key.startsWith(PREFIX_X509)) {
        const m = writable('x509Svids');
        const id = key.slice(PREFIX_X509.length);
        if (v?.kind === RecordKind.x509Svid) m.set(id, v.record);
        else m.delete(id);
      } else if (key.startsWith(PREFIX_JWT)) {
        const m = writable('jwtSvids');
        const k = key.slice(PREFIX_JWT.length);
        if (v?.kind === RecordKind.jwtSvid) m.set(k, v.record);
        else m.delete(k);
      } else if (key.startsWith(PREFIX_DEVICE)) {
        const m = writable('devices');
        const name = key.slice(PREFIX_DEVICE.length);
        if (v?.kind === RecordKind.device) m.set(name, v.record.bytes);
        else m.delete(name);
      }
    }
    this.#snapshot = freezeSnapshot(current.revision + 1, this.trustDomain, t);
    await tightenFileModes(this.location);
    return this.#snapshot;
  }

  setAgentIdentity(record: AgentIdentityRecord): Promise<AgentStoreSnapshot> {
    return this.update((tx) => tx.setAgentIdentity(record));
  }

  setBundle(record: BundleRecord): Promise<AgentStoreSnapshot> {
    return this.update((tx) => tx.setBundle(record));
  }

  applySyncResult(result: SyncResult): Promise<AgentStoreSnapshot> {
    if (typeof result !== 'object' || result === null)
      throw new TypeError('result must be an object');
    return this.update((tx) => {
      for (const id of result.deleteEntryIds ?? []) tx.deleteEntry(id).deleteX509Svid(id);
      for (const e of result.upsertEntries ?? []) tx.putEntry(e);
      if (result.bundle !== undefined) tx.setBundle(result.bundle);
      for (const td of result.federatedBundles?.delete ?? []) tx.deleteFederatedBundle(td);
      for (const b of result.federatedBundles?.put ?? []) tx.putFederatedBundle(b);
      tx.setSyncState(result.syncState);
    });
  }

  storeX509Svids(
    svids: readonly X509SvidRecord[],
    options: { readonly deleteEntryIds?: readonly string[] } = {},
  ): Promise<AgentStoreSnapshot> {
    if (!Array.isArray(svids)) throw new TypeError('svids must be an array');
    return this.update((tx) => {
      for (const id of options.deleteEntryIds ?? []) tx.deleteX509Svid(id);
      for (const s of svids) tx.putX509Svid(s);
    });
  }

  putJwtSvid(record: JwtSvidRecord): Promise<AgentStoreSnapshot> {
    return this.update((tx) => tx.putJwtSvid(record));
  }

  async pruneExpired(nowMs: number = this.#clock.nowMs()): Promise<PruneResult> {
    if (!Number.isFinite(nowMs)) throw new TypeError('nowMs must be a finite number');
    let x509Svids = 0;
    let jwtSvids = 0;
    await this.update((tx) => {
      // Decided against the snapshot when the batch is built; a concurrent put of a fresh
      // SVID for the same key is serialised after or before this whole batch.
      for (const s of this.#snapshot.x509Svids.values()) {
        if (s.expiresAtMs <= nowMs) {
          tx.deleteX509Svid(s.entryId);
          x509Svids++;
        }
      }
      for (const s of this.#snapshot.jwtSvids.values()) {
        if (s.expiresAtMs <= nowMs) {
          tx.deleteJwtSvid(s.spiffeId, s.audience);
          jwtSvids++;
        }
      }
    });
    return { x509Svids, jwtSvids };
  }

  reset(): Promise<AgentStoreSnapshot> {
    return this.update((tx) => tx.clear());
  }

  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closing = (async () => {
      await this.#queue;
      this.#closed = true;
      try {
        await this.#db.close();
      } finally {
        if (this.#ownsSealer) await this.#sealer?.close?.();
      }
    })();
    return this.#closing;
  }
}

/**
 * Opens (creating when missing) the agent store under `options.dataDir` and loads it into
 * memory. Trusts nothing on disk: every record is checked (see the module docs).
 *
 * @throws SpireEdgeError `ERR_AGENT_STORE_CORRUPT`, `ERR_AGENT_STORE_VERSION`,
 * `ERR_AGENT_STORE_FOREIGN`, `ERR_AGENT_STORE_SEALED` — recoverable by
 * {@link quarantineAgentStore} then a fresh open (or use {@link openAgentStoreWithRecovery});
 * `ERR_AGENT_STORE_LOCKED`, `ERR_AGENT_STORE_IO`.
 * @throws TypeError for bad options.
 */
export async function openAgentStore(options: OpenAgentStoreOptions): Promise<AgentStore> {
  if (typeof options !== 'object' || options === null)
    throw new TypeError('options must be an object');
  if (typeof options.dataDir !== 'string' || options.dataDir === '') {
    throw new TypeError('dataDir must be a non-empty string');
  }
  const td =
    typeof options.trustDomain === 'string'
      ? parseTrustDomain(options.trustDomain)
      : options.trustDomain;
  if (td === undefined || typeof td.name !== 'string')
    throw new TypeError('trustDomain is required');
  const trustDomain = td.name;
  const clock = options.clock ?? systemClock;
  const random = options.random ?? cryptoRandom;
  if (options.sealer !== undefined && options.createSealer !== undefined) {
    throw new TypeError('give sealer or createSealer, not both');
  }
  if (options.createSealer !== undefined && typeof options.createSealer !== 'function') {
    throw new TypeError('createSealer must be a function');
  }
  const location = join(options.dataDir, AGENT_STORE_DIRNAME);

  let created = false;
  if ((await inspectStoreDir(location)) === 'missing') {
    const info: StoreInfoRecord = {
      trustDomain,
      createdAtMs: clock.nowMs(),
      storeId: Buffer.from(random.bytes(8)).toString('hex'),
    };
    await createStoreDir(options.dataDir, location, info.storeId, (dir) =>
      populateNewStore(dir, info),
    );
    created = true;
  }
  const db = newDb(location, false);
  try {
    await db.open();
  } catch (err) {
    throw classifyOpenError(err, location);
  }
  let sealer = options.sealer;
  let ownsSealer = false;
  try {
    const loaded = loadRecords(await readAll(db), trustDomain);
    const count = { value: loaded.count };
    await migrate(db, loaded.version);

    if (options.createSealer !== undefined) {
      sealer = await runSealerFactory(options.createSealer, db, loaded.tables.devices, count);
      ownsSealer = true;
    }

    // Secrets: unseal (or, for plain ones, keep), then reseal plain secrets if a sealer is
    // configured now (e.g. the TPM was enabled after the store was created).
    const plainOnes = loaded.secrets.filter((s) => !s.secret.sealed);
    const sealedOnes = loaded.secrets.filter((s) => s.secret.sealed);
    const unsealer = sealer;
    if (sealedOnes.length > 0 && unsealer === undefined) {
      throw storeError(
        'ERR_AGENT_STORE_SEALED',
        `the agent store holds ${String(sealedOnes.length)} sealed secrets and no sealer was configured to unseal them`,
      );
    }
    const plains = await mapLimit(sealedOnes, SEAL_CONCURRENCY, async (s) => {
      try {
        const plain = await unsealer!.unseal(s.secret.bytes, { recordKey: s.key });
        if (!(plain instanceof Uint8Array)) {
          throw new TypeError('the sealer must return a Uint8Array');
        }
        return new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength);
      } catch (err) {
        throw storeError(
          'ERR_AGENT_STORE_SEALED',
          `the secret of record ${JSON.stringify(s.key)} could not be unsealed: ${describeError(err)}`,
          err,
          { key: s.key },
        );
      }
    });
    sealedOnes.forEach((s, i) => {
      s.apply(plains[i]!);
    });
    for (const s of plainOnes) s.apply(s.secret.bytes);

    const store = new LevelAgentStore({
      location,
      dataDir: options.dataDir,
      trustDomain,
      info: loaded.info,
      created,
      db,
      sealer,
      ownsSealer,
      clock,
      tables: loaded.tables,
      count: count.value,
    });
    if (sealer !== undefined && plainOnes.length > 0) {
      await resealPlainSecrets(store, new Set(plainOnes.map((s) => s.key)));
      // Push the rewritten values down and drop the old, unsealed versions from the files.
      await db.compactRange('', '\u{10ffff}');
    }
    await tightenFileModes(location);
    return store;
  } catch (err) {
    await db.close().catch(() => {});
    if (ownsSealer) await Promise.resolve(sealer?.close?.()).catch(() => {});
    throw err;
  }
}

/** Upgrades a store of an older layout in one fsynced batch (nothing for a current one). */
async function migrate(db: Db, version: number): Promise<void> {
  const ops = migrationBatch(version);
  if (ops.length === 0) return;
  try {
    await db.batch(ops, { sync: true });
  } catch (err) {
    throw storeError(
      'ERR_AGENT_STORE_WRITE',
      `could not migrate the agent store from layout ${String(version)} to ${String(LAYOUT_VERSION)}: ${describeError(err)}`,
      err,
    );
  }
}

/**
 * Calls the sealer factory with access to the device records (`devices` and `count` are the
 * open's tables, updated by its writes) and checks what it returns. Store errors and TypeErrors
 * pass through; anything else (the TPM unreachable) becomes `ERR_AGENT_STORE_IO`.
 */
async function runSealerFactory(
  factory: SealerFactory,
  db: Db,
  devices: Map<string, Uint8Array>,
  count: { value: number },
): Promise<Sealer> {
  let live = true;
  const check = (name: unknown): string => {
    if (!live) {
      throw new TypeError(
        'device record access ended when the sealer was created: use the store instead',
      );
    }
    return deviceName(name);
  };
  const writeNow = async (name: string, value: Uint8Array | undefined): Promise<void> => {
    const key = keys.device(name);
    const had = devices.has(name);
    if (value === undefined && !had) return;
    const next = count.value + (value === undefined ? -1 : had ? 0 : 1);
    const ops: Op[] = [
      value === undefined
        ? { type: 'del', key }
        : {
            type: 'put',
            key,
            value: encodeValue(key, { kind: RecordKind.device, record: { bytes: value } }),
          },
      { type: 'put', key: KEY_RECORD_COUNT, value: encodeRecordCount(next) },
    ];
    try {
      await db.batch(ops, { sync: true });
    } catch (err) {
      throw storeError(
        'ERR_AGENT_STORE_WRITE',
        `could not write device record ${JSON.stringify(name)}: ${describeError(err)}`,
        err,
      );
    }
    count.value = next;
    if (value === undefined) devices.delete(name);
    else devices.set(name, value);
  };
  // One write at a time, so each batch carries the right record count.
  let queue: Promise<unknown> = Promise.resolve();
  const write = (name: string, value: Uint8Array | undefined): Promise<void> => {
    const run = queue.then(() => writeNow(name, value));
    queue = run.catch(() => {});
    return run;
  };
  const access: DeviceRecordAccess = {
    get(name) {
      const v = devices.get(check(name));
      return v === undefined ? undefined : new Uint8Array(v);
    },
    put(name, bytes) {
      const n = check(name);
      return write(n, copyDevice(bytes).bytes);
    },
    delete(name) {
      return write(check(name), undefined);
    },
  };
  let sealer: Sealer;
  try {
    sealer = await factory(access);
  } catch (err) {
    if (err instanceof TypeError || isAgentStoreError(err)) throw err;
    throw storeError(
      'ERR_AGENT_STORE_IO',
      `could not create the agent store's sealer: ${describeError(err)}`,
      err,
    );
  } finally {
    live = false;
    // A write the factory did not wait for still lands before the store is built on `count`.
    await queue;
  }
  if (
    typeof sealer !== 'object' ||
    sealer === null ||
    typeof sealer.seal !== 'function' ||
    typeof sealer.unseal !== 'function'
  ) {
    throw new TypeError('createSealer must resolve to a Sealer');
  }
  return sealer;
}

/** Rewrites the records whose secrets are stored as is (`keys`), now sealed, in one batch. */
async function resealPlainSecrets(
  store: AgentStore,
  plainKeys: ReadonlySet<string>,
): Promise<void> {
  const snap = store.snapshot;
  await store.update((tx) => {
    if (snap.agent !== undefined && plainKeys.has(KEY_AGENT)) tx.setAgentIdentity(snap.agent);
    for (const s of snap.x509Svids.values()) {
      if (plainKeys.has(keys.x509Svid(s.entryId))) tx.putX509Svid(s);
    }
    for (const s of snap.jwtSvids.values()) {
      if (plainKeys.has(keys.jwtSvid(s.spiffeId, s.audience))) tx.putJwtSvid(s);
    }
  });
}
