/**
 * The key layout of the agent store (layout version {@link LAYOUT_VERSION}). Keys are UTF-8
 * strings with one prefix per record kind:
 *
 * | key                      | value                                   |
 * |--------------------------|-----------------------------------------|
 * | `meta:version`           | the layout version, ASCII decimal (`2`)  |
 * | `meta:store`             | store info: trust domain, creation time |
 * | `meta:records`           | how many data records the store holds   |
 * | `agent:identity`         | {@link AgentIdentityRecord}             |
 * | `bundle:local`           | our trust domain's {@link BundleRecord} |
 * | `federated:<td>`         | a federated {@link BundleRecord}        |
 * | `entry:<entry id>`       | {@link EntryRecord}                     |
 * | `sync:state`             | {@link SyncStateRecord}                 |
 * | `x509:<entry id>`        | {@link X509SvidRecord}                  |
 * | `jwt:<cache key>`        | {@link JwtSvidRecord}                   |
 * | `device:<name>`          | opaque device state ({@link DeviceRecord}) |
 *
 * Layout history: 1 = everything above but `device:*`; 2 added the `device:*` key space (a v1
 * store is upgraded in place by rewriting `meta:version`, see internal/migrate.ts).
 *
 * `meta:version` is plain ASCII so that any version of the code can read it and refuse a newer
 * layout with `ERR_AGENT_STORE_VERSION` instead of misreading it. Every other value is encoded
 * by {@link "./codec.js"}.
 */
import type {
  AgentIdentityRecord,
  BundleRecord,
  EntryRecord,
  JwtSvidRecord,
  SyncStateRecord,
  X509SvidRecord,
} from './records.js';

/** The layout this code writes and reads. Bump it (and add a migration) on any change. */
export const LAYOUT_VERSION = 2;
/** The oldest layout this code still opens (and migrates to {@link LAYOUT_VERSION}). */
export const OLDEST_LAYOUT_VERSION = 1;

/** The store's directory name under `data_dir`. */
export const AGENT_STORE_DIRNAME = 'agent-store';
/** Prefix of the temporary directory a new store is created in before it is renamed into place. */
export const CREATING_PREFIX = `${AGENT_STORE_DIRNAME}.creating-`;

/** True for the store's own bookkeeping keys (`meta:*`), which are not data records. */
export function isMetaKey(key: string): boolean {
  return key.startsWith('meta:');
}

export const KEY_VERSION = 'meta:version';
export const KEY_STORE_INFO = 'meta:store';
export const KEY_RECORD_COUNT = 'meta:records';
export const KEY_AGENT = 'agent:identity';
export const KEY_BUNDLE = 'bundle:local';
export const KEY_SYNC = 'sync:state';
export const PREFIX_FEDERATED = 'federated:';
export const PREFIX_ENTRY = 'entry:';
export const PREFIX_X509 = 'x509:';
export const PREFIX_JWT = 'jwt:';
export const PREFIX_DEVICE = 'device:';

/**
 * The largest device record value, in bytes. Device records are small (a sealed data key, AK
 * blobs); the limit keeps a bug from turning the key space into a blob store.
 */
export const DEVICE_RECORD_MAX_BYTES = 64 * 1024;
const DEVICE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/**
 * True for a valid device record name: 1 to 63 characters of `a-z 0-9 . _ -`, starting with a
 * letter or digit (`sealing-key`, `tpm-ak`).
 */
export function isDeviceRecordName(name: unknown): name is string {
  return typeof name === 'string' && DEVICE_NAME.test(name);
}

/** The kinds of record, each with its own tag byte in encoded values. */
export const RecordKind = {
  storeInfo: 1,
  agent: 2,
  bundle: 3,
  federatedBundle: 4,
  entry: 5,
  sync: 6,
  x509Svid: 7,
  jwtSvid: 8,
  recordCount: 9,
  device: 10,
} as const;
/** A record kind tag. */
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

/** What the store records about itself. */
export interface StoreInfoRecord {
  /** The trust domain the store belongs to. */
  readonly trustDomain: string;
  /** When the store was created, ms since the epoch. */
  readonly createdAtMs: number;
  /** A random ID (hex), to tell stores apart in logs. */
  readonly storeId: string;
}

/**
 * How many data records (every key but `meta:*`) the store holds, rewritten by every batch. At
 * open it must equal what LevelDB returns: LevelDB reads table blocks without verifying their
 * checksums, so a damaged block can drop records silently, and the count is what notices.
 */
export interface RecordCountRecord {
  readonly count: number;
}

/**
 * The cache key of a JWT-SVID: its SPIFFE ID and audience set (order and duplicates do not
 * matter). Unambiguous for any strings.
 */
export function jwtSvidCacheKey(spiffeId: string, audience: readonly string[]): string {
  return JSON.stringify([spiffeId, ...normalizeAudience(audience)]);
}

/** The audience as the store keeps it: sorted (by UTF-16 code units), without duplicates. */
export function normalizeAudience(audience: readonly string[]): string[] {
  return [...new Set(audience)].sort();
}

/**
 * A device record: opaque, non-secret state of the device the agent runs on (the TPM sealer's
 * sealed data key, the TPM attestor's AK blobs). It describes the device, not the agent's
 * identity, so `AgentStore.reset()` keeps it.
 */
export interface DeviceRecord {
  readonly bytes: Uint8Array;
}

/** Where each record lives. */
export const keys = {
  agent: (): string => KEY_AGENT,
  bundle: (): string => KEY_BUNDLE,
  sync: (): string => KEY_SYNC,
  federatedBundle: (trustDomain: string): string => PREFIX_FEDERATED + trustDomain,
  entry: (id: string): string => PREFIX_ENTRY + id,
  x509Svid: (entryId: string): string => PREFIX_X509 + entryId,
  jwtSvid: (spiffeId: string, audience: readonly string[]): string =>
    PREFIX_JWT + jwtSvidCacheKey(spiffeId, audience),
  device: (name: string): string => PREFIX_DEVICE + name,
} as const;

/** The record kind a key holds, or undefined for a key this layout does not define. */
export function kindOfKey(key: string): RecordKind | undefined {
  switch (key) {
    case KEY_STORE_INFO:
      return RecordKind.storeInfo;
    case KEY_RECORD_COUNT:
      return RecordKind.recordCount;
    case KEY_AGENT:
      return RecordKind.agent;
    case KEY_BUNDLE:
      return RecordKind.bundle;
    case KEY_SYNC:
      return RecordKind.sync;
  }
  if (key.startsWith(PREFIX_ENTRY) && key.length > PREFIX_ENTRY.length) return RecordKind.entry;
  if (key.startsWith(PREFIX_X509) && key.length > PREFIX_X509.length) return RecordKind.x509Svid;
  if (key.startsWith(PREFIX_JWT) && key.length > PREFIX_JWT.length) return RecordKind.jwtSvid;
  if (key.startsWith(PREFIX_FEDERATED) && key.length > PREFIX_FEDERATED.length) {
    return RecordKind.federatedBundle;
  }
  if (key.startsWith(PREFIX_DEVICE) && isDeviceRecordName(key.slice(PREFIX_DEVICE.length))) {
    return RecordKind.device;
  }
  return undefined;
}

/**
 * The shape check the store applies to SPIFFE IDs it keeps (writing and loading alike): the
 * scheme and something after it. Full validation is the sync manager's job.
 */
export function isSpiffeIdLike(id: string): boolean {
  return id.startsWith('spiffe://') && id.length > 'spiffe://'.length;
}

/** A secret as stored: sealed by the store's sealer, or as is. */
export interface StoredSecret {
  readonly sealed: boolean;
  readonly bytes: Uint8Array;
}

/** {@link AgentIdentityRecord} with its key as stored. */
export type StoredAgentIdentity = Omit<AgentIdentityRecord, 'privateKey'> & {
  readonly privateKey?: StoredSecret;
};
/** {@link X509SvidRecord} with its key as stored. */
export type StoredX509Svid = Omit<X509SvidRecord, 'privateKey'> & {
  readonly privateKey: StoredSecret;
};
/** {@link JwtSvidRecord} with its token as stored (UTF-8 bytes, maybe sealed). */
export type StoredJwtSvid = Omit<JwtSvidRecord, 'token'> & { readonly token: StoredSecret };

/** A decoded value, tagged with its kind. */
export type StoredValue =
  | { readonly kind: typeof RecordKind.storeInfo; readonly record: StoreInfoRecord }
  | { readonly kind: typeof RecordKind.recordCount; readonly record: RecordCountRecord }
  | { readonly kind: typeof RecordKind.agent; readonly record: StoredAgentIdentity }
  | { readonly kind: typeof RecordKind.bundle; readonly record: BundleRecord }
  | { readonly kind: typeof RecordKind.federatedBundle; readonly record: BundleRecord }
  | { readonly kind: typeof RecordKind.entry; readonly record: EntryRecord }
  | { readonly kind: typeof RecordKind.sync; readonly record: SyncStateRecord }
  | { readonly kind: typeof RecordKind.x509Svid; readonly record: StoredX509Svid }
  | { readonly kind: typeof RecordKind.jwtSvid; readonly record: StoredJwtSvid }
  | { readonly kind: typeof RecordKind.device; readonly record: DeviceRecord };
