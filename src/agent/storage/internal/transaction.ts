/**
 * The transaction behind every agent store write: records copied and frozen on entry (a caller
 * mutating its objects afterwards cannot change the store), arguments checked, changes kept in
 * order for the store to resolve against its snapshot at commit time.
 */
import type { AgentStoreTransaction, ClearableKind } from '../agent-store.js';
import type { DeviceRecord } from '../layout.js';
import {
  DEVICE_RECORD_MAX_BYTES,
  isDeviceRecordName,
  isSpiffeIdLike,
  KEY_AGENT,
  KEY_BUNDLE,
  KEY_SYNC,
  keys,
  normalizeAudience,
  PREFIX_ENTRY,
  PREFIX_FEDERATED,
  PREFIX_JWT,
  PREFIX_X509,
  RecordKind,
} from '../layout.js';
import type {
  AgentIdentityRecord,
  BundleRecord,
  EntryRecord,
  JwtSvidRecord,
  SyncStateRecord,
  X509SvidRecord,
} from '../records.js';

// Records are rebuilt field by field: the snapshot holds exactly what is persisted (no extra
// properties a restart would lose), and the caller's objects are not shared. The checks are
// the ones loading applies, so nothing written here can make the store fail to open.

function obj<T>(value: T, what: string): T {
  if (typeof value !== 'object' || value === null) throw new TypeError(`${what} must be an object`);
  return value;
}

function bytes(b: Uint8Array, field: string): Uint8Array {
  if (!(b instanceof Uint8Array)) throw new TypeError(`${field} must be a Uint8Array`);
  return new Uint8Array(b);
}

function list<T, U>(
  items: readonly T[],
  field: string,
  each: (item: T, field: string) => U,
): readonly U[] {
  if (!Array.isArray(items)) throw new TypeError(`${field} must be an array`);
  return Object.freeze(items.map((item, i) => each(item, `${field}[${String(i)}]`)));
}

function nonEmpty(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '') {
    throw new TypeError(`${field} must be a non-empty string`);
  }
  return value;
}

function spiffeId(value: unknown, field: string): string {
  if (typeof value !== 'string' || !isSpiffeIdLike(value)) {
    throw new TypeError(`${field} must be a SPIFFE ID (spiffe://…)`);
  }
  return value;
}

function text(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new TypeError(`${field} must be a string`);
  return value;
}

function copyBundle(b: BundleRecord): BundleRecord {
  obj(b, 'bundle');
  return Object.freeze({
    trustDomain: nonEmpty(b.trustDomain, 'bundle.trustDomain'),
    x509Authorities: list(b.x509Authorities, 'bundle.x509Authorities', bytes),
    jwtAuthorities: list(b.jwtAuthorities, 'bundle.jwtAuthorities', (a, f) =>
      Object.freeze({
        keyId: text(obj(a, f).keyId, `${f}.keyId`),
        publicKey: bytes(a.publicKey, `${f}.publicKey`),
        expiresAt: a.expiresAt,
      }),
    ),
    refreshHint: b.refreshHint,
    sequenceNumber: b.sequenceNumber,
  });
}

function copyEntry(e: EntryRecord): EntryRecord {
  obj(e, 'entry');
  return Object.freeze({
    id: nonEmpty(e.id, 'entry.id'),
    spiffeId: spiffeId(e.spiffeId, 'entry.spiffeId'),
    parentId: spiffeId(e.parentId, 'entry.parentId'),
    selectors: list(e.selectors, 'entry.selectors', (s, f) =>
      Object.freeze({
        type: text(obj(s, f).type, `${f}.type`),
        value: text(s.value, `${f}.value`),
      }),
    ),
    x509SvidTtl: e.x509SvidTtl,
    jwtSvidTtl: e.jwtSvidTtl,
    federatesWith: list(e.federatesWith, 'entry.federatesWith', text),
    admin: e.admin,
    downstream: e.downstream,
    expiresAt: e.expiresAt,
    dnsNames: list(e.dnsNames, 'entry.dnsNames', text),
    revisionNumber: e.revisionNumber,
    storeSvid: e.storeSvid,
    hint: e.hint,
    createdAt: e.createdAt,
  });
}

function copyAgent(a: AgentIdentityRecord): AgentIdentityRecord {
  obj(a, 'agent identity');
  return Object.freeze({
    spiffeId: spiffeId(a.spiffeId, 'agent.spiffeId'),
    certChain: list(a.certChain, 'agent.certChain', bytes),
    ...(a.privateKey === undefined ? {} : { privateKey: bytes(a.privateKey, 'agent.privateKey') }),
    expiresAtMs: a.expiresAtMs,
    reattestable: a.reattestable,
    attestorType: a.attestorType,
    lastAttestedAtMs: a.lastAttestedAtMs,
  });
}

function copySync(s: SyncStateRecord): SyncStateRecord {
  obj(s, 'sync state');
  return Object.freeze({
    lastSyncAtMs: s.lastSyncAtMs,
    lastFullSyncAtMs: s.lastFullSyncAtMs,
    cursor: s.cursor,
  });
}

function copyX509(s: X509SvidRecord): X509SvidRecord {
  obj(s, 'X509-SVID');
  if (!Array.isArray(s.certChain) || s.certChain.length === 0) {
    throw new TypeError('x509Svid.certChain must hold at least the leaf');
  }
  return Object.freeze({
    entryId: nonEmpty(s.entryId, 'x509Svid.entryId'),
    spiffeId: spiffeId(s.spiffeId, 'x509Svid.spiffeId'),
    certChain: list(s.certChain, 'x509Svid.certChain', bytes),
    privateKey: bytes(s.privateKey, 'x509Svid.privateKey'),
    expiresAtMs: s.expiresAtMs,
    rotateAtMs: s.rotateAtMs,
    entryRevision: s.entryRevision,
  });
}

function copyJwt(s: JwtSvidRecord): JwtSvidRecord {
  obj(s, 'JWT-SVID');
  return Object.freeze({
    spiffeId: spiffeId(s.spiffeId, 'jwtSvid.spiffeId'),
    audience: Object.freeze(normalizeAudience(list(s.audience, 'jwtSvid.audience', text))),
    token: nonEmpty(s.token, 'jwtSvid.token'),
    issuedAtMs: s.issuedAtMs,
    expiresAtMs: s.expiresAtMs,
  });
}

/** Checks a device record name (see `isDeviceRecordName`). */
export function deviceName(name: unknown): string {
  if (!isDeviceRecordName(name)) {
    throw new TypeError(
      'device record name must be 1 to 63 characters of a-z, 0-9, ".", "_", "-", starting with a letter or digit',
    );
  }
  return name;
}

/** Checks and copies a device record value. */
export function copyDevice(value: Uint8Array): DeviceRecord {
  const b = bytes(value, 'device record');
  if (b.length > DEVICE_RECORD_MAX_BYTES) {
    throw new TypeError(`device record must be at most ${String(DEVICE_RECORD_MAX_BYTES)} bytes`);
  }
  return Object.freeze({ bytes: b });
}

/** One recorded change. */
export type Change =
  | { kind: 'put'; key: string; value: StoredRecordInput }
  | { kind: 'del'; key: string }
  | { kind: 'clear'; kinds: readonly ClearableKind[] };

/** A record to put, before its secrets are sealed. */
export type StoredRecordInput =
  | { kind: typeof RecordKind.agent; record: AgentIdentityRecord }
  | { kind: typeof RecordKind.bundle; record: BundleRecord }
  | { kind: typeof RecordKind.federatedBundle; record: BundleRecord }
  | { kind: typeof RecordKind.entry; record: EntryRecord }
  | { kind: typeof RecordKind.sync; record: SyncStateRecord }
  | { kind: typeof RecordKind.x509Svid; record: X509SvidRecord }
  | { kind: typeof RecordKind.jwtSvid; record: JwtSvidRecord }
  | { kind: typeof RecordKind.device; record: DeviceRecord };

export const ALL_KINDS: readonly ClearableKind[] = [
  'agent',
  'bundle',
  'federatedBundles',
  'entries',
  'sync',
  'x509Svids',
  'jwtSvids',
];

/** True when `key` holds a record of the group `kind`. */
export function keyMatchesKind(key: string, kind: ClearableKind): boolean {
  switch (kind) {
    case 'agent':
      return key === KEY_AGENT;
    case 'bundle':
      return key === KEY_BUNDLE;
    case 'sync':
      return key === KEY_SYNC;
    case 'federatedBundles':
      return key.startsWith(PREFIX_FEDERATED);
    case 'entries':
      return key.startsWith(PREFIX_ENTRY);
    case 'x509Svids':
      return key.startsWith(PREFIX_X509);
    case 'jwtSvids':
      return key.startsWith(PREFIX_JWT);
  }
}

/** The {@link AgentStoreTransaction} implementation. */
export class Transaction implements AgentStoreTransaction {
  readonly changes: Change[] = [];
  readonly #trustDomain: string;

  constructor(trustDomain: string) {
    this.#trustDomain = trustDomain;
  }

  #put(key: string, value: StoredRecordInput): this {
    this.changes.push({ kind: 'put', key, value });
    return this;
  }

  #del(key: string): this {
    this.changes.push({ kind: 'del', key });
    return this;
  }

  setAgentIdentity(record: AgentIdentityRecord): this {
    return this.#put(KEY_AGENT, { kind: RecordKind.agent, record: copyAgent(record) });
  }

  deleteAgentIdentity(): this {
    return this.#del(KEY_AGENT);
  }

  setBundle(record: BundleRecord): this {
    const b = copyBundle(record);
    if (b.trustDomain !== this.#trustDomain) {
      throw new TypeError(
        `bundle of ${String(b.trustDomain)} given as the bundle of ${this.#trustDomain}`,
      );
    }
    return this.#put(KEY_BUNDLE, { kind: RecordKind.bundle, record: b });
  }

  deleteBundle(): this {
    return this.#del(KEY_BUNDLE);
  }

  putFederatedBundle(record: BundleRecord): this {
    const b = copyBundle(record);
    nonEmpty(b.trustDomain, 'bundle.trustDomain');
    if (b.trustDomain === this.#trustDomain) {
      throw new TypeError(`the bundle of ${this.#trustDomain} is not a federated bundle`);
    }
    return this.#put(keys.federatedBundle(b.trustDomain), {
      kind: RecordKind.federatedBundle,
      record: b,
    });
  }

  deleteFederatedBundle(trustDomain: string): this {
    return this.#del(keys.federatedBundle(nonEmpty(trustDomain, 'trustDomain')));
  }

  putEntry(record: EntryRecord): this {
    const e = copyEntry(record);
    return this.#put(keys.entry(e.id), { kind: RecordKind.entry, record: e });
  }

  deleteEntry(id: string): this {
    return this.#del(keys.entry(nonEmpty(id, 'entry id')));
  }

  setSyncState(record: SyncStateRecord): this {
    return this.#put(KEY_SYNC, { kind: RecordKind.sync, record: copySync(record) });
  }

  putX509Svid(record: X509SvidRecord): this {
    const s = copyX509(record);
    return this.#put(keys.x509Svid(s.entryId), { kind: RecordKind.x509Svid, record: s });
  }

  deleteX509Svid(entryId: string): this {
    return this.#del(keys.x509Svid(nonEmpty(entryId, 'entry id')));
  }

  putJwtSvid(record: JwtSvidRecord): this {
    const s = copyJwt(record);
    return this.#put(keys.jwtSvid(s.spiffeId, s.audience), { kind: RecordKind.jwtSvid, record: s });
  }

  deleteJwtSvid(spiffeId: string, audience: readonly string[]): this {
    if (!Array.isArray(audience)) throw new TypeError('audience must be an array');
    return this.#del(keys.jwtSvid(nonEmpty(spiffeId, 'spiffeId'), audience));
  }

  putDeviceRecord(name: string, value: Uint8Array): this {
    const record = copyDevice(value);
    return this.#put(keys.device(deviceName(name)), { kind: RecordKind.device, record });
  }

  deleteDeviceRecord(name: string): this {
    return this.#del(keys.device(deviceName(name)));
  }

  clear(kinds: readonly ClearableKind[] = ALL_KINDS): this {
    for (const k of kinds) {
      if (!ALL_KINDS.includes(k)) throw new TypeError(`unknown record group ${String(k)}`);
    }
    this.changes.push({ kind: 'clear', kinds: [...kinds] });
    return this;
  }
}
