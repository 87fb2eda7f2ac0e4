/**
 * The CA journal (SPIRE's pkg/server/ca/manager/journal.go): what the CA manager must
 * remember across restarts — every X.509 CA and JWT key it prepared (slot, status, times,
 * certificate chain, public key), capped at {@link JOURNAL_CAP} entries per kind as SPIRE
 * does — plus the authorities it contributes to the trust bundle, so a restart neither mints
 * a new CA while the old one is still good nor forgets roots that agents still need.
 *
 * Private keys are never in the journal: they stay in the KeyManager. Each entry names the
 * KeyManager key id it was prepared under (`keyManagerKeyId`), unique to that preparation:
 * `<slot base>-<serial>`, for example `x509-CA-B-7` or `JWT-Signer-A-3` (see
 * {@link slotKeyIdBase}). The journal is bytes behind a {@link JournalStore}; the server
 * plugs in its datastore's CA-journal table. The encoding is versioned JSON: version 2 names
 * the key of every entry; version 1 (written before keys were unique per preparation) named
 * none, because every entry of a slot used the slot's fixed id (`x509-CA-A`), and is still
 * read, each entry getting its slot's fixed id.
 *
 * Errors: `ERR_CA_JOURNAL_CORRUPT` (bytes that do not decode; never silently reset).
 */
import { describeError, SpireEdgeError } from '../../common/errors.js';
import { assertKeyId } from '../../hsm/key-manager.js';

/** Where the journal's bytes live (the datastore's CA-journal table in the server). */
export interface JournalStore {
  /** The last saved bytes, or undefined when nothing was ever saved. */
  load(): Promise<Uint8Array | undefined>;
  /** Replaces the stored bytes; must be durable when it resolves. */
  save(bytes: Uint8Array): Promise<void>;
}

/** An in-memory {@link JournalStore} for tests and single-process tools. */
export class MemoryJournalStore implements JournalStore {
  #bytes: Uint8Array | undefined;
  /** How many times {@link save} succeeded. */
  saves = 0;

  constructor(initial?: Uint8Array) {
    this.#bytes = initial === undefined ? undefined : Uint8Array.from(initial);
  }

  /** The bytes last saved (a copy). */
  get bytes(): Uint8Array | undefined {
    return this.#bytes === undefined ? undefined : Uint8Array.from(this.#bytes);
  }

  async load(): Promise<Uint8Array | undefined> {
    return this.bytes;
  }

  async save(bytes: Uint8Array): Promise<void> {
    this.#bytes = Uint8Array.from(bytes);
    this.saves++;
  }
}

/** SPIRE's two slots per kind. */
export type SlotId = 'A' | 'B';

/** A journal entry's status (SPIRE's journal.Status: PREPARED, ACTIVE, OLD). */
export type AuthorityStatus = 'prepared' | 'active' | 'old';

/** The most entries kept per kind (SPIRE's journalCap). */
export const JOURNAL_CAP = 10;

/** The journal version {@link encodeJournal} writes; {@link decodeJournal} reads 1 and 2. */
export const JOURNAL_VERSION = 2;

/**
 * The base of a slot's KeyManager key ids, SPIRE's fixed slot key id: `x509-CA-A`,
 * `x509-CA-B`, `JWT-Signer-A`, `JWT-Signer-B`. The CA manager names each key it generates
 * `<base>-<serial>`; journals of version 1 used the base itself for every entry of the slot.
 */
export function slotKeyIdBase(kind: 'x509' | 'jwt', slotId: SlotId): string {
  return `${kind === 'x509' ? 'x509-CA' : 'JWT-Signer'}-${slotId}`;
}

/** One prepared X.509 CA. */
export interface X509CaJournalEntry {
  readonly slotId: SlotId;
  /** When it was prepared (ms since the epoch): the start of its rotation schedule. */
  readonly issuedAt: number;
  /** The CA certificate's notAfter (ms since the epoch). */
  readonly notAfter: number;
  /** The CA certificate (DER). */
  readonly certificate: Uint8Array;
  /** Upstream intermediates above the CA certificate, excluding roots (empty when self-signed). */
  readonly upstreamChain: readonly Uint8Array[];
  readonly status: AuthorityStatus;
  /** The KeyManager key id of the CA key (`x509-CA-A-1`; `x509-CA-A` from a version 1 journal). */
  readonly keyManagerKeyId: string;
}

/** One prepared JWT signing key. */
export interface JwtKeyJournalEntry {
  readonly slotId: SlotId;
  readonly issuedAt: number;
  readonly notAfter: number;
  /** The key id (`kid`) published in the bundle. */
  readonly keyId: string;
  /** The public key (SubjectPublicKeyInfo DER). */
  readonly publicKey: Uint8Array;
  readonly status: AuthorityStatus;
  /**
   * The KeyManager key id of the signing key (`JWT-Signer-A-1`; `JWT-Signer-A` from a
   * version 1 journal). Not the `kid`, which is {@link keyId}.
   */
  readonly keyManagerKeyId: string;
}

/** An X.509 authority (root certificate) the CA manager put in the bundle. */
export interface X509AuthorityJournalEntry {
  readonly certificate: Uint8Array;
  /** The certificate's notAfter (ms since the epoch). */
  readonly notAfter: number;
}

/** A JWT authority the CA manager put in the bundle. */
export interface JwtAuthorityJournalEntry {
  readonly keyId: string;
  /** SubjectPublicKeyInfo DER. */
  readonly publicKey: Uint8Array;
  readonly notAfter: number;
}

/** Everything the journal holds. Entries are oldest first. */
export interface JournalData {
  readonly x509Cas: readonly X509CaJournalEntry[];
  readonly jwtKeys: readonly JwtKeyJournalEntry[];
  readonly x509Authorities: readonly X509AuthorityJournalEntry[];
  readonly jwtAuthorities: readonly JwtAuthorityJournalEntry[];
}

/** An empty journal. */
export const EMPTY_JOURNAL: JournalData = Object.freeze({
  x509Cas: [],
  jwtKeys: [],
  x509Authorities: [],
  jwtAuthorities: [],
});

const FORMAT = 'spire-edge-ca-journal';

const b64 = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
const iso = (ms: number): string => new Date(ms).toISOString();

/** Encodes the journal (entries beyond {@link JOURNAL_CAP} per kind are dropped, oldest first). */
export function encodeJournal(data: JournalData): Uint8Array {
  const doc = {
    format: FORMAT,
    version: JOURNAL_VERSION,
    x509CAs: data.x509Cas.slice(-JOURNAL_CAP).map((e) => ({
      slotId: e.slotId,
      issuedAt: iso(e.issuedAt),
      notAfter: iso(e.notAfter),
      certificate: b64(e.certificate),
      upstreamChain: e.upstreamChain.map(b64),
      status: e.status,
      keyManagerKeyId: e.keyManagerKeyId,
    })),
    jwtKeys: data.jwtKeys.slice(-JOURNAL_CAP).map((e) => ({
      slotId: e.slotId,
      issuedAt: iso(e.issuedAt),
      notAfter: iso(e.notAfter),
      keyId: e.keyId,
      publicKey: b64(e.publicKey),
      status: e.status,
      keyManagerKeyId: e.keyManagerKeyId,
    })),
    x509Authorities: data.x509Authorities.map((a) => ({
      certificate: b64(a.certificate),
      notAfter: iso(a.notAfter),
    })),
    jwtAuthorities: data.jwtAuthorities.map((a) => ({
      keyId: a.keyId,
      publicKey: b64(a.publicKey),
      notAfter: iso(a.notAfter),
    })),
  };
  return Buffer.from(JSON.stringify(doc), 'utf8');
}

function corrupt(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_CA_JOURNAL_CORRUPT',
    `CA journal: ${message}`,
    cause === undefined ? {} : { cause },
  );
}

type Obj = Record<string, unknown>;
const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function obj(v: unknown, what: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw corrupt(`${what} must be an object`);
  }
  return v as Obj;
}

function arr(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw corrupt(`${what} must be an array`);
  return v;
}

function str(o: Obj, k: string, what: string): string {
  const v = o[k];
  if (typeof v !== 'string') throw corrupt(`${what}.${k} must be a string`);
  return v;
}

function bytes(v: unknown, what: string): Uint8Array {
  if (typeof v !== 'string' || v === '' || !B64_RE.test(v) || v.length % 4 !== 0) {
    throw corrupt(`${what} must be non-empty base64`);
  }
  return new Uint8Array(Buffer.from(v, 'base64'));
}

function time(o: Obj, k: string, what: string): number {
  const s = str(o, k, what);
  const ms = ISO_RE.test(s) ? Date.parse(s) : Number.NaN;
  if (!Number.isFinite(ms) || iso(ms) !== s)
    throw corrupt(`${what}.${k} must be an ISO 8601 UTC time`);
  return ms;
}

function slot(o: Obj, what: string): SlotId {
  const s = str(o, 'slotId', what);
  if (s !== 'A' && s !== 'B') throw corrupt(`${what}.slotId must be A or B`);
  return s;
}

function status(o: Obj, what: string): AuthorityStatus {
  const s = str(o, 'status', what);
  if (s !== 'prepared' && s !== 'active' && s !== 'old') {
    throw corrupt(`${what}.status must be prepared, active or old`);
  }
  return s;
}

/** Version 2: the entry's own key id. Version 1: the slot's fixed id. */
function keyManagerKeyId(
  o: Obj,
  version: number,
  kind: 'x509' | 'jwt',
  slotId: SlotId,
  what: string,
): string {
  if (version === 1) return slotKeyIdBase(kind, slotId);
  const id = str(o, 'keyManagerKeyId', what);
  try {
    assertKeyId(id);
  } catch (err) {
    throw corrupt(`${what}.keyManagerKeyId is not a valid key id (${describeError(err)})`, err);
  }
  return id;
}

/**
 * Decodes journal bytes written by {@link encodeJournal}, of version 2 or 1 (version 1
 * entries get their slot's fixed key id, {@link slotKeyIdBase}). Checks structure only: the
 * CA manager still checks every entry against the KeyManager before using it.
 *
 * @throws SpireEdgeError `ERR_CA_JOURNAL_CORRUPT` naming the broken field.
 */
export function decodeJournal(data: Uint8Array): JournalData {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
  } catch (err) {
    throw corrupt(`not valid JSON (${describeError(err)})`, err);
  }
  const top = obj(doc, 'journal');
  if (top['format'] !== FORMAT) throw corrupt(`format must be ${FORMAT}`);
  const version = top['version'];
  if (version !== 1 && version !== JOURNAL_VERSION)
    throw corrupt(`version ${String(version)} is not supported`);
  const x509Cas = arr(top['x509CAs'], 'x509CAs').map((v, i): X509CaJournalEntry => {
    const w = `x509CAs[${i}]`;
    const o = obj(v, w);
    const slotId = slot(o, w);
    return {
      slotId,
      issuedAt: time(o, 'issuedAt', w),
      notAfter: time(o, 'notAfter', w),
      certificate: bytes(o['certificate'], `${w}.certificate`),
      upstreamChain: arr(o['upstreamChain'], `${w}.upstreamChain`).map((c, j) =>
        bytes(c, `${w}.upstreamChain[${j}]`),
      ),
      status: status(o, w),
      keyManagerKeyId: keyManagerKeyId(o, version, 'x509', slotId, w),
    };
  });
  const jwtKeys = arr(top['jwtKeys'], 'jwtKeys').map((v, i): JwtKeyJournalEntry => {
    const w = `jwtKeys[${i}]`;
    const o = obj(v, w);
    const keyId = str(o, 'keyId', w);
    if (keyId === '') throw corrupt(`${w}.keyId must not be empty`);
    const slotId = slot(o, w);
    return {
      slotId,
      issuedAt: time(o, 'issuedAt', w),
      notAfter: time(o, 'notAfter', w),
      keyId,
      publicKey: bytes(o['publicKey'], `${w}.publicKey`),
      status: status(o, w),
      keyManagerKeyId: keyManagerKeyId(o, version, 'jwt', slotId, w),
    };
  });
  const x509Authorities = arr(top['x509Authorities'], 'x509Authorities').map(
    (v, i): X509AuthorityJournalEntry => {
      const w = `x509Authorities[${i}]`;
      const o = obj(v, w);
      return {
        certificate: bytes(o['certificate'], `${w}.certificate`),
        notAfter: time(o, 'notAfter', w),
      };
    },
  );
  const jwtAuthorities = arr(top['jwtAuthorities'], 'jwtAuthorities').map(
    (v, i): JwtAuthorityJournalEntry => {
      const w = `jwtAuthorities[${i}]`;
      const o = obj(v, w);
      const keyId = str(o, 'keyId', w);
      if (keyId === '') throw corrupt(`${w}.keyId must not be empty`);
      return {
        keyId,
        publicKey: bytes(o['publicKey'], `${w}.publicKey`),
        notAfter: time(o, 'notAfter', w),
      };
    },
  );
  return { x509Cas, jwtKeys, x509Authorities, jwtAuthorities };
}
