/**
 * Input validation and normalisation for the datastore. Every check rejects with
 * `ERR_DATASTORE_INVALID_ARGUMENT` and a message naming the field and the rule; SPIFFE ID and
 * trust domain errors are chained as `cause`. Pure: no I/O.
 */
import { createPublicKey } from 'node:crypto';
import { parseSpiffeId, parseTrustDomain } from '../../spiffe/id.js';
import { certificateNotAfter } from './certificate.js';
import { invalidArgument } from './errors.js';
import { canonicalSelectors, MATCH_BEHAVIORS } from './selectors.js';
import type {
  AttestedNodeField,
  AttestedNodeFields,
  EntryField,
  EntryFields,
  FederatesWithFilter,
  JwtAuthority,
  MatchBehavior,
  Selector,
  SelectorFilter,
  X509Authority,
} from './types.js';

/** Longest entry ID SPIRE accepts. */
export const MAX_ENTRY_ID_LENGTH = 255;
/** Longest hint SPIRE accepts. */
export const MAX_HINT_LENGTH = 1024;
/** Largest TTL (int32 in SPIRE's API). */
export const MAX_TTL = 2 ** 31 - 1;
/** Longest free-text field (selector values, serial numbers, node attestor names). */
export const MAX_TEXT_LENGTH = 8192;
/**
 * Longest selector value, in UTF-8 bytes. Selector rows are indexed on (entry, type, value);
 * PostgreSQL's B-tree refuses index rows over ~2.7 kB, so type (≤ 255) plus value must fit.
 */
export const MAX_SELECTOR_VALUE_BYTES = 2048;
/** Longest selector type, in UTF-8 bytes. */
export const MAX_SELECTOR_TYPE_BYTES = 255;
/** Largest evidence summary / CA journal accepted. */
export const MAX_BLOB_BYTES = 4 * 1024 * 1024;

const ENTRY_ID_RE = /^[A-Za-z0-9._-]+$/;
const DNS_LABEL_RE = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** A non-empty (unless allowed) string without NUL characters, at most `max` characters. */
export function checkText(
  v: unknown,
  field: string,
  { allowEmpty = false, max = MAX_TEXT_LENGTH }: { allowEmpty?: boolean; max?: number } = {},
): string {
  if (typeof v !== 'string') throw invalidArgument(`${field} must be a string`);
  if (!allowEmpty && v.length === 0) throw invalidArgument(`${field} cannot be empty`);
  if (v.length > max) throw invalidArgument(`${field} is longer than ${max} characters`);
  if (v.includes('\u0000')) throw invalidArgument(`${field} cannot contain NUL characters`);
  return v;
}

/** An integer in [min, max]. */
export function checkInt(
  v: unknown,
  field: string,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw invalidArgument(`${field} must be an integer`);
  }
  if (v < min) throw invalidArgument(`${field} must be at least ${min}`);
  if (v > max) throw invalidArgument(`${field} must be at most ${max}`);
  return v;
}

/** A boolean. */
export function checkBool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw invalidArgument(`${field} must be a boolean`);
  return v;
}

/** A SPIFFE ID, returned in its string form. */
export function checkSpiffeId(v: unknown, field: string): string {
  if (typeof v !== 'string') throw invalidArgument(`${field} must be a string`);
  try {
    return parseSpiffeId(v).toString();
  } catch (err) {
    throw invalidArgument(`${field} is not a valid SPIFFE ID: ${(err as Error).message}`, err);
  }
}

/** A trust domain given as a name or `spiffe://` ID, returned as its name. */
export function checkTrustDomain(v: unknown, field: string): string {
  if (typeof v !== 'string') throw invalidArgument(`${field} must be a string`);
  try {
    return parseTrustDomain(v).name;
  } catch (err) {
    throw invalidArgument(`${field} is not a valid trust domain: ${(err as Error).message}`, err);
  }
}

/** A registration entry ID (SPIRE's rule: `[A-Za-z0-9._-]`, at most 255 characters). */
export function checkEntryId(v: unknown, field = 'entry id'): string {
  if (typeof v !== 'string') throw invalidArgument(`${field} must be a string`);
  if (v.length === 0) throw invalidArgument(`${field} cannot be empty`);
  if (v.length > MAX_ENTRY_ID_LENGTH) {
    throw invalidArgument(`${field} is longer than ${MAX_ENTRY_ID_LENGTH} characters`);
  }
  if (!ENTRY_ID_RE.test(v)) {
    throw invalidArgument(
      `${field} contains invalid characters (letters, digits, '.', '_' and '-' only)`,
    );
  }
  return v;
}

function checkArray(v: unknown, field: string): readonly unknown[] {
  if (!Array.isArray(v)) throw invalidArgument(`${field} must be an array`);
  return v;
}

function checkObject(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw invalidArgument(`${field} must be an object`);
  }
  return v as Record<string, unknown>;
}

/** One selector: type non-empty without ':', value non-empty. */
export function checkSelector(v: unknown, field: string): Selector {
  const o = checkObject(v, field);
  const type = checkText(o.type, `${field}.type`, { max: MAX_SELECTOR_TYPE_BYTES });
  if (type.includes(':')) throw invalidArgument(`${field}.type cannot contain ':'`);
  if (Buffer.byteLength(type, 'utf8') > MAX_SELECTOR_TYPE_BYTES) {
    throw invalidArgument(`${field}.type is longer than ${MAX_SELECTOR_TYPE_BYTES} bytes`);
  }
  const value = checkText(o.value, `${field}.value`, { max: MAX_SELECTOR_VALUE_BYTES });
  if (Buffer.byteLength(value, 'utf8') > MAX_SELECTOR_VALUE_BYTES) {
    throw invalidArgument(`${field}.value is longer than ${MAX_SELECTOR_VALUE_BYTES} bytes`);
  }
  return { type, value };
}

/** A selector list, canonicalised (sorted, duplicates dropped). */
export function checkSelectors(
  v: unknown,
  field: string,
  { allowEmpty = false }: { allowEmpty?: boolean } = {},
): Selector[] {
  const list = checkArray(v, field).map((s, i) => checkSelector(s, `${field}[${i}]`));
  if (!allowEmpty && list.length === 0) throw invalidArgument(`${field} cannot be empty`);
  return canonicalSelectors(list);
}

/** A list of trust domains, normalised to names, sorted and de-duplicated. */
export function checkTrustDomains(v: unknown, field: string): string[] {
  const names = checkArray(v, field).map((t, i) => checkTrustDomain(t, `${field}[${i}]`));
  return [...new Set(names)].sort();
}

/** A DNS name: labels of letters, digits, '-' and '_', the first label may be `*`. */
export function checkDnsName(v: unknown, field: string): string {
  const name = checkText(v, field, { max: 253 });
  const labels = name.split('.');
  labels.forEach((label, i) => {
    if (i === 0 && label === '*' && labels.length > 1) return;
    if (!DNS_LABEL_RE.test(label)) {
      throw invalidArgument(`${field} ${JSON.stringify(name)} is not a valid DNS name`);
    }
  });
  return name;
}

/** A match behaviour. */
export function checkMatch(v: unknown, field: string): MatchBehavior {
  if (!MATCH_BEHAVIORS.includes(v as MatchBehavior)) {
    throw invalidArgument(`${field} must be one of ${MATCH_BEHAVIORS.join(', ')}`);
  }
  return v as MatchBehavior;
}

/** A selector filter (non-empty selector set). */
export function checkSelectorFilter(v: unknown, field: string): SelectorFilter {
  const o = checkObject(v, field);
  const selectors = checkSelectors(o.selectors, `${field}.selectors`, { allowEmpty: true });
  if (selectors.length === 0) throw invalidArgument(`cannot list by empty selector set`);
  return { selectors, match: checkMatch(o.match, `${field}.match`) };
}

/** A federates-with filter (non-empty trust domain set). */
export function checkFederatesWithFilter(v: unknown, field: string): FederatesWithFilter {
  const o = checkObject(v, field);
  const trustDomains = checkTrustDomains(o.trustDomains, `${field}.trustDomains`);
  if (trustDomains.length === 0) throw invalidArgument(`cannot list by empty federates with set`);
  return { trustDomains, match: checkMatch(o.match, `${field}.match`) };
}

/** Normalised entry fields. */
export type EntryValues = Omit<EntryFields, 'selectors' | 'dnsNames' | 'federatesWith'> & {
  selectors: Selector[];
  dnsNames: string[];
  federatesWith: string[];
};

const ENTRY_DEFAULTS: Omit<EntryValues, 'spiffeId' | 'parentId' | 'selectors'> = {
  x509SvidTtl: 0,
  jwtSvidTtl: 0,
  dnsNames: [],
  federatesWith: [],
  admin: false,
  downstream: false,
  hint: '',
  storeSvid: false,
  entryExpiry: 0,
};

/** Every settable entry field, in a fixed order. */
export const ENTRY_FIELDS: readonly EntryField[] = [
  'spiffeId',
  'parentId',
  'selectors',
  'x509SvidTtl',
  'jwtSvidTtl',
  'dnsNames',
  'federatesWith',
  'admin',
  'downstream',
  'hint',
  'storeSvid',
  'entryExpiry',
];

/** Validates one entry field's value and returns it normalised. */
export function checkEntryField<K extends EntryField>(
  key: K,
  v: unknown,
  prefix: string,
): EntryValues[K] {
  const f = `${prefix}${key}`;
  switch (key) {
    case 'spiffeId':
    case 'parentId':
      return checkSpiffeId(v, f) as EntryValues[K];
    case 'selectors':
      return checkSelectors(v, f) as EntryValues[K];
    case 'x509SvidTtl':
    case 'jwtSvidTtl':
      return checkInt(v, f, 0, MAX_TTL) as EntryValues[K];
    case 'entryExpiry':
      return checkInt(v, f) as EntryValues[K];
    case 'dnsNames':
      return checkArray(v, f).map((d, i) => checkDnsName(d, `${f}[${i}]`)) as EntryValues[K];
    case 'federatesWith':
      return checkTrustDomains(v, f) as EntryValues[K];
    case 'admin':
    case 'downstream':
    case 'storeSvid':
      return checkBool(v, f) as EntryValues[K];
    case 'hint':
      return checkText(v, f, { allowEmpty: true, max: MAX_HINT_LENGTH }) as EntryValues[K];
    default:
      throw invalidArgument(`${f} is not an entry field`);
  }
}

/** Cross-field rules of a complete entry (SPIRE's `validateRegistrationEntry`). */
export function checkEntryRules(e: EntryValues, prefix: string): void {
  if (e.storeSvid && e.selectors.some((s) => s.type !== e.selectors[0]!.type)) {
    throw invalidArgument(`${prefix}selectors must all have the same type when storeSvid is set`);
  }
}

/** Validates a new entry; returns its ID (or undefined to generate one) and its values. */
export function checkNewEntry(
  v: unknown,
  index: number,
): { id: string | undefined; values: EntryValues } {
  const prefix = `entries[${index}].`;
  const o = checkObject(v, `entries[${index}]`);
  for (const k of Object.keys(o)) {
    if (k !== 'id' && !ENTRY_FIELDS.includes(k as EntryField)) {
      throw invalidArgument(`${prefix}${k} is not an entry field`);
    }
  }
  const id = o.id === undefined ? undefined : checkEntryId(o.id, `${prefix}id`);
  const values = { ...ENTRY_DEFAULTS } as EntryValues;
  for (const key of ENTRY_FIELDS) {
    const raw = o[key];
    if (raw === undefined) {
      if (key === 'spiffeId' || key === 'parentId' || key === 'selectors') {
        throw invalidArgument(`${prefix}${key} is required`);
      }
      continue;
    }
    (values as Record<string, unknown>)[key] = checkEntryField(key, raw, prefix);
  }
  checkEntryRules(values, prefix);
  return { id, values };
}

/** The zero value of a masked-but-absent entry field. */
export function entryFieldZero(key: EntryField): unknown {
  switch (key) {
    case 'selectors':
    case 'dnsNames':
    case 'federatesWith':
      return [];
    case 'x509SvidTtl':
    case 'jwtSvidTtl':
    case 'entryExpiry':
      return 0;
    case 'admin':
    case 'downstream':
    case 'storeSvid':
      return false;
    default:
      return '';
  }
}

/** Resolves a field mask: the masked fields, or the fields present in `set`. */
export function maskedFields<K extends string>(
  set: Record<string, unknown>,
  mask: unknown,
  all: readonly K[],
  field: string,
): K[] {
  if (mask === undefined) {
    for (const k of Object.keys(set)) {
      if (!all.includes(k as K)) throw invalidArgument(`${field}.set.${k} is not a settable field`);
    }
    return all.filter((k) => set[k] !== undefined);
  }
  const list = checkArray(mask, `${field}.mask`);
  for (const k of list) {
    if (!all.includes(k as K)) {
      throw invalidArgument(`${field}.mask names unknown field ${JSON.stringify(k)}`);
    }
  }
  return all.filter((k) => list.includes(k));
}

/** Validates the shape of an update request (`{ id|spiffeId, set, mask? }`). */
export function checkUpdateShape(v: unknown, field: string): Record<string, unknown> {
  const o = checkObject(v, field);
  checkObject(o.set, `${field}.set`);
  return o;
}

// ------------------------------------------------------------------------------------------
// Attested nodes

/** Every settable node field, in a fixed order. */
export const NODE_FIELDS: readonly AttestedNodeField[] = [
  'attestationDataType',
  'certSerialNumber',
  'certNotAfter',
  'newCertSerialNumber',
  'newCertNotAfter',
  'canReattest',
  'banned',
  'evidence',
];

/** Validates one node field. */
export function checkNodeField<K extends AttestedNodeField>(
  key: K,
  v: unknown,
  prefix: string,
): AttestedNodeFields[K] {
  const f = `${prefix}${key}`;
  switch (key) {
    case 'attestationDataType':
      return checkText(v, f, { max: 255 }) as AttestedNodeFields[K];
    case 'certSerialNumber':
    case 'newCertSerialNumber':
      return checkText(v, f, { allowEmpty: true, max: 255 }) as AttestedNodeFields[K];
    case 'certNotAfter':
    case 'newCertNotAfter':
      return checkInt(v, f) as AttestedNodeFields[K];
    case 'canReattest':
    case 'banned':
      return checkBool(v, f) as AttestedNodeFields[K];
    case 'evidence': {
      const s = checkText(v, f, { allowEmpty: true, max: MAX_BLOB_BYTES });
      if (s !== '') {
        try {
          JSON.parse(s);
        } catch (err) {
          throw invalidArgument(`${f} must be JSON text`, err);
        }
      }
      return s as AttestedNodeFields[K];
    }
    default:
      throw invalidArgument(`${f} is not an attested node field`);
  }
}

/** The zero value of a masked-but-absent node field. */
export function nodeFieldZero(key: AttestedNodeField): unknown {
  switch (key) {
    case 'certNotAfter':
    case 'newCertNotAfter':
      return 0;
    case 'canReattest':
    case 'banned':
      return false;
    default:
      return '';
  }
}

/** Validates a new node. */
export function checkNewNode(v: unknown): {
  spiffeId: string;
  values: AttestedNodeFields;
  selectors: Selector[];
} {
  const o = checkObject(v, 'node');
  for (const k of Object.keys(o)) {
    if (k !== 'spiffeId' && k !== 'selectors' && !NODE_FIELDS.includes(k as AttestedNodeField)) {
      throw invalidArgument(`node.${k} is not an attested node field`);
    }
  }
  const spiffeId = checkSpiffeId(o.spiffeId, 'node.spiffeId');
  const values: AttestedNodeFields = {
    attestationDataType: '',
    certSerialNumber: '',
    certNotAfter: 0,
    newCertSerialNumber: '',
    newCertNotAfter: 0,
    canReattest: false,
    banned: false,
    evidence: '',
  };
  for (const key of NODE_FIELDS) {
    if (o[key] === undefined) {
      if (key === 'attestationDataType')
        throw invalidArgument('node.attestationDataType is required');
      continue;
    }
    (values as unknown as Record<string, unknown>)[key] = checkNodeField(key, o[key], 'node.');
  }
  if (values.banned) {
    values.certSerialNumber = '';
    values.newCertSerialNumber = '';
  }
  const selectors =
    o.selectors === undefined
      ? []
      : checkSelectors(o.selectors, 'node.selectors', { allowEmpty: true });
  return { spiffeId, values, selectors };
}

// ------------------------------------------------------------------------------------------
// Bundles

/** Normalised bundle content (without the trust domain and sequence number). */
export interface BundleContent {
  x509Authorities: X509Authority[];
  jwtAuthorities: JwtAuthority[];
  refreshHint: number;
}

function bytes(v: unknown, field: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw invalidArgument(`${field} must be a Uint8Array`);
  if (v.length === 0) throw invalidArgument(`${field} cannot be empty`);
  if (v.length > MAX_BLOB_BYTES)
    throw invalidArgument(`${field} is larger than ${MAX_BLOB_BYTES} bytes`);
  return new Uint8Array(v);
}

/** Validates an X.509 authority: the DER must be a certificate (its notAfter is read). */
export function checkX509Authority(v: unknown, field: string): X509Authority {
  const o = checkObject(v, field);
  const der = bytes(o.certificateDer, `${field}.certificateDer`);
  let notAfter: number;
  try {
    notAfter = certificateNotAfter(der);
  } catch (err) {
    throw invalidArgument(`${field}.certificateDer is not a DER certificate`, err);
  }
  const tainted = o.tainted === undefined ? false : checkBool(o.tainted, `${field}.tainted`);
  return { certificateDer: der, notAfter, tainted };
}

/** Validates a JWT authority: the key must parse as a SubjectPublicKeyInfo. */
export function checkJwtAuthority(v: unknown, field: string): JwtAuthority {
  const o = checkObject(v, field);
  const keyId = checkText(o.keyId, `${field}.keyId`, { max: 255 });
  const publicKeyDer = bytes(o.publicKeyDer, `${field}.publicKeyDer`);
  try {
    createPublicKey({ key: Buffer.from(publicKeyDer), format: 'der', type: 'spki' });
  } catch (err) {
    throw invalidArgument(`${field}.publicKeyDer is not a DER SubjectPublicKeyInfo`, err);
  }
  const notAfter = o.notAfter === undefined ? 0 : checkInt(o.notAfter, `${field}.notAfter`);
  const tainted = o.tainted === undefined ? false : checkBool(o.tainted, `${field}.tainted`);
  return { keyId, publicKeyDer, notAfter, tainted };
}

/** Validates a bundle input; returns the trust domain name and the fields present. */
export function checkBundleInput(
  v: unknown,
  field = 'bundle',
): {
  trustDomain: string;
  content: Partial<BundleContent>;
  sequenceNumber: number | undefined;
} {
  const o = checkObject(v, field);
  for (const k of Object.keys(o)) {
    if (
      ![
        'trustDomain',
        'x509Authorities',
        'jwtAuthorities',
        'refreshHint',
        'sequenceNumber',
      ].includes(k)
    ) {
      throw invalidArgument(`${field}.${k} is not a bundle field`);
    }
  }
  const trustDomain = checkTrustDomain(o.trustDomain, `${field}.trustDomain`);
  const content: Partial<BundleContent> = {};
  if (o.x509Authorities !== undefined) {
    const list = checkArray(o.x509Authorities, `${field}.x509Authorities`).map((a, i) =>
      checkX509Authority(a, `${field}.x509Authorities[${i}]`),
    );
    content.x509Authorities = dedupeX509(list);
  }
  if (o.jwtAuthorities !== undefined) {
    const list = checkArray(o.jwtAuthorities, `${field}.jwtAuthorities`).map((a, i) =>
      checkJwtAuthority(a, `${field}.jwtAuthorities[${i}]`),
    );
    const seen = new Map<string, JwtAuthority>();
    for (const a of list) {
      const prev = seen.get(a.keyId);
      if (prev !== undefined && !bytesEqual(prev.publicKeyDer, a.publicKeyDer)) {
        throw invalidArgument(
          `${field}.jwtAuthorities has key id ${JSON.stringify(a.keyId)} twice with different keys`,
        );
      }
      if (prev === undefined) seen.set(a.keyId, a);
    }
    content.jwtAuthorities = [...seen.values()];
  }
  if (o.refreshHint !== undefined) {
    content.refreshHint = checkInt(o.refreshHint, `${field}.refreshHint`, 0, MAX_TTL);
  }
  const sequenceNumber =
    o.sequenceNumber === undefined
      ? undefined
      : checkInt(o.sequenceNumber, `${field}.sequenceNumber`);
  return { trustDomain, content, sequenceNumber };
}

function dedupeX509(list: X509Authority[]): X509Authority[] {
  const out: X509Authority[] = [];
  for (const a of list) {
    if (!out.some((b) => bytesEqual(a.certificateDer, b.certificateDer))) out.push(a);
  }
  return out;
}

/** Byte-wise equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** A CA journal key: non-empty, at most 255 characters. */
export function checkJournalKey(v: unknown): string {
  return checkText(v, 'ca journal key', { max: 255 });
}

/** A byte blob up to {@link MAX_BLOB_BYTES} (may be empty). */
export function checkBlob(v: unknown, field: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw invalidArgument(`${field} must be a Uint8Array`);
  if (v.length > MAX_BLOB_BYTES)
    throw invalidArgument(`${field} is larger than ${MAX_BLOB_BYTES} bytes`);
  return new Uint8Array(v);
}

/** A join token: 1–255 printable characters. */
export function checkJoinToken(v: unknown): string {
  return checkText(v, 'join token', { max: 255 });
}

/** Input of `createJoinToken`. */
export function checkNewJoinToken(v: unknown): { token: string; expiresAt: number } {
  const o = checkObject(v, 'join token');
  return {
    token: checkJoinToken(o.token),
    expiresAt: checkInt(o.expiresAt, 'join token expiresAt'),
  };
}

/** A bundle input used only for its trust domain (deletion, taint…). */
export function checkBundleTrustDomain(v: unknown): string {
  return checkTrustDomain(v, 'trust domain');
}
