/**
 * The value encoding of the agent store: a small, strict binary codec.
 *
 * ```text
 * byte 0      codec version (CODEC_VERSION = 1)
 * byte 1      record kind tag (see RecordKind)
 * bytes 2..5  CRC-32 (big-endian) over the key's UTF-8 bytes, bytes 0..1 and the payload
 * bytes 6..   payload: the record's fields in a fixed order
 * ```
 *
 * Field encodings: `u8`; `bool` = one byte, 0 or 1 only; `int` = IEEE-754 float64
 * (big-endian) holding a non-negative safe integer; `str` = u32 length + UTF-8 (must be
 * valid); `bytes` = u32 length + raw; `list` = u32 count + items; `secret` = u8 flag (0 as is,
 * 1 sealed) + bytes; `opt` = u8 presence flag + value. A device record (kind 10, layout 2) is
 * one `bytes` field.
 *
 * The CRC covers the key, so a value copied under another key is caught, and it catches bit
 * rot that LevelDB reads without verifying (classic-level does not ask LevelDB to verify
 * block checksums). Decoding is strict: wrong version, wrong kind, bad CRC, short or trailing
 * bytes, invalid UTF-8, a bool other than 0/1 or a non-integer number are all
 * `ERR_AGENT_STORE_CORRUPT` (a newer codec version is `ERR_AGENT_STORE_VERSION`), naming the key.
 *
 * Encoding trusts its input to have the record types' shapes but checks the values it would
 * otherwise write wrongly (non-integers, negative times): those are TypeErrors, the caller's
 * bug. Pure: no I/O.
 */
import { crc32 } from 'node:zlib';
import {
  RecordKind,
  type StoredAgentIdentity,
  type StoredJwtSvid,
  type StoredSecret,
  type StoredValue,
  type StoredX509Svid,
  type StoreInfoRecord,
} from './layout.js';
import type {
  BundleRecord,
  EntryRecord,
  JwtAuthorityRecord,
  SelectorRecord,
  SyncStateRecord,
} from './records.js';
import { storeError } from './store-errors.js';

/** The codec version this code writes; values with a higher one are refused as newer. */
export const CODEC_VERSION = 1;
const HEADER = 6;

// ---------------------------------------------------------------------------------------------
// Writer

const textEncoder = new TextEncoder();

class Writer {
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;

  constructor(capacity = 256) {
    this.#buf = new Uint8Array(capacity);
    this.#view = new DataView(this.#buf.buffer);
  }

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.#reserve(1);
    this.#buf[this.#len++] = v;
    return this;
  }

  u32(v: number): this {
    this.#reserve(4);
    this.#view.setUint32(this.#len, v);
    this.#len += 4;
    return this;
  }

  bool(v: boolean, field: string): this {
    if (typeof v !== 'boolean') throw new TypeError(`${field} must be a boolean`);
    return this.u8(v ? 1 : 0);
  }

  int(v: number, field: string): this {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new TypeError(`${field} must be a non-negative safe integer`);
    }
    this.#reserve(8);
    // + 0 turns -0 into 0: the decoder accepts only the canonical zero.
    this.#view.setFloat64(this.#len, v + 0);
    this.#len += 8;
    return this;
  }

  raw(b: Uint8Array): this {
    this.#reserve(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
    return this;
  }

  bytes(b: Uint8Array, field: string): this {
    if (!(b instanceof Uint8Array)) throw new TypeError(`${field} must be a Uint8Array`);
    return this.u32(b.length).raw(b);
  }

  str(s: string, field: string): this {
    if (typeof s !== 'string') throw new TypeError(`${field} must be a string`);
    return this.bytes(textEncoder.encode(s), field);
  }

  list<T>(items: readonly T[], field: string, each: (item: T, field: string) => void): this {
    if (!Array.isArray(items)) throw new TypeError(`${field} must be an array`);
    this.u32(items.length);
    items.forEach((item, i) => {
      each(item, `${field}[${String(i)}]`);
    });
    return this;
  }

  secret(s: StoredSecret, field: string): this {
    return this.bool(s.sealed, `${field}.sealed`).bytes(s.bytes, field);
  }

  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

// ---------------------------------------------------------------------------------------------
// Reader

const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Thrown inside the reader; turned into ERR_AGENT_STORE_CORRUPT naming the key. */
class Malformed extends Error {}

class Reader {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  #pos: number;

  constructor(buf: Uint8Array, pos: number) {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.#pos = pos;
  }

  #need(n: number, field: string): void {
    if (this.#buf.length - this.#pos < n) throw new Malformed(`${field} is truncated`);
  }

  u8(field: string): number {
    this.#need(1, field);
    return this.#buf[this.#pos++]!;
  }

  u32(field: string): number {
    this.#need(4, field);
    const v = this.#view.getUint32(this.#pos);
    this.#pos += 4;
    return v;
  }

  bool(field: string): boolean {
    const b = this.u8(field);
    if (b > 1) throw new Malformed(`${field} is not a boolean`);
    return b === 1;
  }

  int(field: string): number {
    this.#need(8, field);
    const v = this.#view.getFloat64(this.#pos);
    this.#pos += 8;
    if (!Number.isSafeInteger(v) || v < 0 || Object.is(v, -0)) {
      throw new Malformed(`${field} is not a non-negative integer`);
    }
    return v;
  }

  bytes(field: string): Uint8Array {
    const n = this.u32(field);
    this.#need(n, field);
    const out = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  str(field: string): string {
    const b = this.bytes(field);
    try {
      return textDecoder.decode(b);
    } catch {
      throw new Malformed(`${field} is not valid UTF-8`);
    }
  }

  list<T>(field: string, each: (field: string) => T): T[] {
    const n = this.u32(field);
    // Every item takes at least one byte: a huge count cannot make us allocate.
    if (n > this.#buf.length - this.#pos) throw new Malformed(`${field} count is too large`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(each(`${field}[${String(i)}]`));
    return out;
  }

  secret(field: string): StoredSecret {
    const flag = this.u8(`${field}.sealed`);
    if (flag > 1) throw new Malformed(`${field} has an unknown sealing flag`);
    return { sealed: flag === 1, bytes: this.bytes(field) };
  }

  end(): void {
    if (this.#pos !== this.#buf.length) {
      throw new Malformed(`${String(this.#buf.length - this.#pos)} trailing bytes`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Records

function writeSelectors(w: Writer, list: readonly SelectorRecord[], field: string): void {
  w.list(list, field, (s, f) => {
    w.str(s.type, `${f}.type`).str(s.value, `${f}.value`);
  });
}

function writeStrings(w: Writer, list: readonly string[], field: string): void {
  w.list(list, field, (s, f) => {
    w.str(s, f);
  });
}

function writeChain(w: Writer, list: readonly Uint8Array[], field: string): void {
  w.list(list, field, (b, f) => {
    w.bytes(b, f);
  });
}

function writeBundle(w: Writer, b: BundleRecord): void {
  w.str(b.trustDomain, 'trustDomain');
  writeChain(w, b.x509Authorities, 'x509Authorities');
  w.list(b.jwtAuthorities, 'jwtAuthorities', (a: JwtAuthorityRecord, f) => {
    w.str(a.keyId, `${f}.keyId`)
      .bytes(a.publicKey, `${f}.publicKey`)
      .int(a.expiresAt, `${f}.expiresAt`);
  });
  w.int(b.refreshHint, 'refreshHint').int(b.sequenceNumber, 'sequenceNumber');
}

function readBundle(r: Reader): BundleRecord {
  return {
    trustDomain: r.str('trustDomain'),
    x509Authorities: r.list('x509Authorities', (f) => r.bytes(f)),
    jwtAuthorities: r.list('jwtAuthorities', (f) => ({
      keyId: r.str(`${f}.keyId`),
      publicKey: r.bytes(`${f}.publicKey`),
      expiresAt: r.int(`${f}.expiresAt`),
    })),
    refreshHint: r.int('refreshHint'),
    sequenceNumber: r.int('sequenceNumber'),
  };
}

function writePayload(w: Writer, value: StoredValue): void {
  switch (value.kind) {
    case RecordKind.storeInfo: {
      const s = value.record;
      w.str(s.trustDomain, 'trustDomain')
        .int(s.createdAtMs, 'createdAtMs')
        .str(s.storeId, 'storeId');
      return;
    }
    case RecordKind.recordCount:
      w.int(value.record.count, 'count');
      return;
    case RecordKind.agent: {
      const a = value.record;
      w.str(a.spiffeId, 'spiffeId');
      writeChain(w, a.certChain, 'certChain');
      if (a.privateKey === undefined) w.u8(0);
      else w.u8(1).secret(a.privateKey, 'privateKey');
      w.int(a.expiresAtMs, 'expiresAtMs')
        .bool(a.reattestable, 'reattestable')
        .str(a.attestorType, 'attestorType')
        .int(a.lastAttestedAtMs, 'lastAttestedAtMs');
      return;
    }
    case RecordKind.bundle:
    case RecordKind.federatedBundle:
      writeBundle(w, value.record);
      return;
    case RecordKind.entry: {
      const e = value.record;
      w.str(e.id, 'id').str(e.spiffeId, 'spiffeId').str(e.parentId, 'parentId');
      writeSelectors(w, e.selectors, 'selectors');
      w.int(e.x509SvidTtl, 'x509SvidTtl').int(e.jwtSvidTtl, 'jwtSvidTtl');
      writeStrings(w, e.federatesWith, 'federatesWith');
      w.bool(e.admin, 'admin').bool(e.downstream, 'downstream').int(e.expiresAt, 'expiresAt');
      writeStrings(w, e.dnsNames, 'dnsNames');
      w.int(e.revisionNumber, 'revisionNumber')
        .bool(e.storeSvid, 'storeSvid')
        .str(e.hint, 'hint')
        .int(e.createdAt, 'createdAt');
      return;
    }
    case RecordKind.sync: {
      const s = value.record;
      w.int(s.lastSyncAtMs, 'lastSyncAtMs')
        .int(s.lastFullSyncAtMs, 'lastFullSyncAtMs')
        .str(s.cursor, 'cursor');
      return;
    }
    case RecordKind.x509Svid: {
      const s = value.record;
      w.str(s.entryId, 'entryId').str(s.spiffeId, 'spiffeId');
      writeChain(w, s.certChain, 'certChain');
      w.secret(s.privateKey, 'privateKey')
        .int(s.expiresAtMs, 'expiresAtMs')
        .int(s.rotateAtMs, 'rotateAtMs')
        .int(s.entryRevision, 'entryRevision');
      return;
    }
    case RecordKind.jwtSvid: {
      const s = value.record;
      w.str(s.spiffeId, 'spiffeId');
      writeStrings(w, s.audience, 'audience');
      w.secret(s.token, 'token').int(s.issuedAtMs, 'issuedAtMs').int(s.expiresAtMs, 'expiresAtMs');
      return;
    }
    case RecordKind.device:
      w.bytes(value.record.bytes, 'bytes');
      return;
  }
}

function readPayload(r: Reader, kind: number): StoredValue {
  switch (kind) {
    case RecordKind.storeInfo: {
      const record: StoreInfoRecord = {
        trustDomain: r.str('trustDomain'),
        createdAtMs: r.int('createdAtMs'),
        storeId: r.str('storeId'),
      };
      return { kind, record };
    }
    case RecordKind.recordCount:
      return { kind, record: { count: r.int('count') } };
    case RecordKind.agent: {
      const spiffeId = r.str('spiffeId');
      const certChain = r.list('certChain', (f) => r.bytes(f));
      const hasKey = r.bool('privateKey present');
      const privateKey = hasKey ? r.secret('privateKey') : undefined;
      const record: StoredAgentIdentity = {
        spiffeId,
        certChain,
        ...(privateKey === undefined ? {} : { privateKey }),
        expiresAtMs: r.int('expiresAtMs'),
        reattestable: r.bool('reattestable'),
        attestorType: r.str('attestorType'),
        lastAttestedAtMs: r.int('lastAttestedAtMs'),
      };
      return { kind, record };
    }
    case RecordKind.bundle:
    case RecordKind.federatedBundle:
      return { kind, record: readBundle(r) };
    case RecordKind.entry: {
      const record: EntryRecord = {
        id: r.str('id'),
        spiffeId: r.str('spiffeId'),
        parentId: r.str('parentId'),
        selectors: r.list('selectors', (f) => ({
          type: r.str(`${f}.type`),
          value: r.str(`${f}.value`),
        })),
        x509SvidTtl: r.int('x509SvidTtl'),
        jwtSvidTtl: r.int('jwtSvidTtl'),
        federatesWith: r.list('federatesWith', (f) => r.str(f)),
        admin: r.bool('admin'),
        downstream: r.bool('downstream'),
        expiresAt: r.int('expiresAt'),
        dnsNames: r.list('dnsNames', (f) => r.str(f)),
        revisionNumber: r.int('revisionNumber'),
        storeSvid: r.bool('storeSvid'),
        hint: r.str('hint'),
        createdAt: r.int('createdAt'),
      };
      return { kind, record };
    }
    case RecordKind.sync: {
      const record: SyncStateRecord = {
        lastSyncAtMs: r.int('lastSyncAtMs'),
        lastFullSyncAtMs: r.int('lastFullSyncAtMs'),
        cursor: r.str('cursor'),
      };
      return { kind, record };
    }
    case RecordKind.x509Svid: {
      const record: StoredX509Svid = {
        entryId: r.str('entryId'),
        spiffeId: r.str('spiffeId'),
        certChain: r.list('certChain', (f) => r.bytes(f)),
        privateKey: r.secret('privateKey'),
        expiresAtMs: r.int('expiresAtMs'),
        rotateAtMs: r.int('rotateAtMs'),
        entryRevision: r.int('entryRevision'),
      };
      return { kind, record };
    }
    case RecordKind.jwtSvid: {
      const record: StoredJwtSvid = {
        spiffeId: r.str('spiffeId'),
        audience: r.list('audience', (f) => r.str(f)),
        token: r.secret('token'),
        issuedAtMs: r.int('issuedAtMs'),
        expiresAtMs: r.int('expiresAtMs'),
      };
      return { kind, record };
    }
    case RecordKind.device:
      return { kind, record: { bytes: r.bytes('bytes') } };
    default:
      throw new Malformed(`unknown record kind ${String(kind)}`);
  }
}

function checksum(key: string, head: Uint8Array, payload: Uint8Array): number {
  return crc32(payload, crc32(head, crc32(textEncoder.encode(key))));
}

/**
 * Encodes a record for `key`.
 *
 * @throws TypeError when a field has a value the format cannot hold (see module docs).
 */
export function encodeValue(key: string, value: StoredValue): Uint8Array {
  const w = new Writer();
  writePayload(w, value);
  const payload = w.finish();
  const out = new Uint8Array(HEADER + payload.length);
  out[0] = CODEC_VERSION;
  out[1] = value.kind;
  new DataView(out.buffer).setUint32(2, checksum(key, out.subarray(0, 2), payload));
  out.set(payload, HEADER);
  return out;
}

/**
 * Decodes the value stored under `key`, checking its version, CRC and every field; when
 * `expected` is given, the kind must be that one.
 *
 * @throws SpireEdgeError `ERR_AGENT_STORE_CORRUPT` (naming the key and what is wrong),
 * `ERR_AGENT_STORE_VERSION` for a value written by a newer codec.
 */
export function decodeValue(key: string, bytes: Uint8Array, expected?: number): StoredValue {
  const corrupt = (why: string, cause?: unknown) =>
    storeError(
      'ERR_AGENT_STORE_CORRUPT',
      `record ${JSON.stringify(key)} is corrupt: ${why}`,
      cause,
      {
        key,
      },
    );
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
  if (bytes.length < HEADER) throw corrupt(`value is ${String(bytes.length)} bytes, too short`);
  const version = bytes[0]!;
  if (version === 0) throw corrupt('codec version 0 is not a version');
  if (version > CODEC_VERSION) {
    throw storeError(
      'ERR_AGENT_STORE_VERSION',
      `record ${JSON.stringify(key)} was written with codec version ${String(version)}, newer than this agent knows (${String(CODEC_VERSION)})`,
      undefined,
      { key, version },
    );
  }
  const kind = bytes[1]!;
  const payload = bytes.subarray(HEADER);
  const stored = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(2);
  if (stored !== checksum(key, bytes.subarray(0, 2), payload)) throw corrupt('checksum mismatch');
  if (expected !== undefined && kind !== expected) {
    throw corrupt(`holds record kind ${String(kind)}, expected ${String(expected)}`);
  }
  try {
    // A plain Uint8Array view (LevelDB hands out Buffers): records hold plain byte arrays.
    const r = new Reader(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), HEADER);
    const value = readPayload(r, kind);
    r.end();
    return value;
  } catch (err) {
    if (err instanceof Malformed) throw corrupt(err.message, err);
    throw err;
  }
}
