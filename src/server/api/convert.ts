/**
 * Shared conversions of the server APIs: spire-api-sdk protobuf messages (`spire.api.types`)
 * ↔ datastore records, request validation with SPIRE's rules, and the error/status helpers
 * every service answers with. Used by the admin API (src/server/api/admin) and the agent
 * API (src/server/api/agent); the names and behaviour here are a stable contract between
 * them — add, do not change.
 *
 * Rules follow SPIRE's `pkg/server/api` (entry.go, id.go, selector.go, bundle.go):
 * - SPIFFE IDs arrive as `{ trust_domain, path }`; the trust domain may be a name or a
 *   `spiffe://` ID, the path is validated by the SPIFFE ID standard.
 * - "member" IDs belong to our trust domain and have a path; "workload" IDs are members
 *   outside the reserved `/spire` namespace; "agent" IDs are members under `/spire/agent/`.
 * - A selector has a non-empty type without `:` and a non-empty value.
 *
 * Errors: every validation failure is a {@link SpireEdgeError} with code
 * `ERR_API_INVALID_ARGUMENT` and the message `invalid <proto field>: <broken rule>`, so the
 * gRPC status (InvalidArgument, via src/common/grpc/errors.ts) names the field. Datastore
 * errors are translated by {@link fromDataStoreError}. Pure: no I/O.
 */
import { createPublicKey } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import { statusOf } from '../../common/grpc/errors.js';
import { types } from '../../protocol/index.js';
import {
  parseTrustDomain,
  type SpiffeId,
  spiffeIdFromPath,
  type TrustDomain,
  toSpiffeId,
} from '../../spiffe/id.js';
import { parseCertificates } from '../../spiffe/x509-cert.js';
import type {
  AttestedNode,
  Bundle,
  BundleField,
  BundleInput,
  EntryField,
  EntryFields,
  JwtAuthorityInput,
  MatchBehavior,
  RegistrationEntry,
  Selector,
  SelectorFilter,
  X509AuthorityInput,
} from '../datastore/types.js';

// ------------------------------------------------------------------------------------------
// Errors and statuses

/** The codes the API layer throws; each maps to the gRPC status its suffix names. */
export type ApiErrorCode =
  | 'ERR_API_INVALID_ARGUMENT'
  | 'ERR_API_NOT_FOUND'
  | 'ERR_API_ALREADY_EXISTS'
  | 'ERR_API_FAILED_PRECONDITION'
  | 'ERR_API_PERMISSION_DENIED'
  | 'ERR_API_UNIMPLEMENTED'
  | 'ERR_API_INTERNAL';

/** Builds an API error (the message reaches the client: no secrets in it). */
export function apiError(code: ApiErrorCode, message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(code, message, cause === undefined ? {} : { cause });
}

/**
 * `ERR_API_INVALID_ARGUMENT` with the message `invalid <field>: <reason>` (the field in its
 * protobuf spelling, e.g. `spiffe_id`, `selectors[2]`).
 */
export function invalidField(field: string, reason: string, cause?: unknown): SpireEdgeError {
  return apiError('ERR_API_INVALID_ARGUMENT', `invalid ${field}: ${reason}`, cause);
}

/**
 * Translates a datastore rejection into an API error: invalid argument, not found (with
 * `notFound` as the message when given), already exists, conflict → FailedPrecondition;
 * anything else becomes `ERR_API_INTERNAL` "failed to <action>" with the original as
 * `cause` (its text may hold paths or SQL: it is logged, never sent). Errors that already
 * carry an `ERR_API_*` code pass through.
 */
export function fromDataStoreError(
  err: unknown,
  action: string,
  notFound?: string,
): SpireEdgeError {
  if (err instanceof SpireEdgeError) {
    switch (err.code) {
      case 'ERR_DATASTORE_INVALID_ARGUMENT':
        return apiError('ERR_API_INVALID_ARGUMENT', err.message, err);
      case 'ERR_DATASTORE_NOT_FOUND':
        return apiError('ERR_API_NOT_FOUND', notFound ?? err.message, err);
      case 'ERR_DATASTORE_ALREADY_EXISTS':
        return apiError('ERR_API_ALREADY_EXISTS', err.message, err);
      case 'ERR_DATASTORE_CONFLICT':
        return apiError('ERR_API_FAILED_PRECONDITION', err.message, err);
      default:
        if (err.code.startsWith('ERR_API_')) return err;
    }
  }
  return apiError('ERR_API_INTERNAL', `failed to ${action}`, err);
}

/** The `spire.api.types.Status` of a successful batch item: `{ code: 0, message: 'OK' }`. */
export function okStatus(): types.Status {
  return create(types.StatusSchema, { code: 0, message: 'OK' });
}

/** The `spire.api.types.Status` of a failed batch item (same mapping as the unary errors). */
export function errorStatus(err: unknown): types.Status {
  return create(types.StatusSchema, statusOf(err));
}

/** A short, log-safe reason of an error, for server logs. */
export function logReason(err: unknown): string {
  const cause =
    err instanceof Error && err.cause !== undefined ? `: ${describeError(err.cause)}` : '';
  return `${describeError(err)}${cause}`;
}

/** The boolean fields of a protobuf mask message. */
export type MaskKey<T> = Exclude<keyof T, '$typeName' | '$unknown'>;

// ------------------------------------------------------------------------------------------
// Numbers

/** Converts a protobuf int64/uint64 (bigint) to a safe integer in [min, MAX_SAFE_INTEGER]. */
export function int64ToNumber(v: bigint, field: string, min = 0): number {
  if (v < BigInt(min)) {
    throw invalidField(field, min === 0 ? 'must not be negative' : `must be at least ${min}`);
  }
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidField(field, 'is too large');
  return Number(v);
}

/**
 * A request's page size: 0 means "no pagination" (SPIRE), a positive value a page of that
 * many, a negative one is refused (SPIRE ignores it).
 */
export function pageSizeFromProto(pageSize: number, field = 'page_size'): number | undefined {
  if (!Number.isInteger(pageSize) || pageSize < 0) {
    throw invalidField(field, 'must not be negative');
  }
  return pageSize === 0 ? undefined : pageSize;
}

// ------------------------------------------------------------------------------------------
// SPIFFE IDs

/** How a SPIFFE ID must relate to our trust domain (SPIRE's `pkg/server/api/id.go`). */
export type IdRule = 'any' | 'member' | 'workload' | 'agent';

/** True for paths in SPIRE's reserved namespace (`/spire` and below). */
export function isReservedPath(path: string): boolean {
  return path === '/spire' || path.startsWith('/spire/');
}

/** True for paths in the agent namespace (`/spire/agent/…`). */
export function isAgentPath(path: string): boolean {
  return path.startsWith('/spire/agent/');
}

/**
 * Parses a `spire.api.types.SPIFFEID` and checks `rule` against `td`.
 *
 * @throws SpireEdgeError `ERR_API_INVALID_ARGUMENT` "invalid <field>: <reason>".
 */
export function idFromProto(
  proto: types.SPIFFEID | undefined,
  field: string,
  td?: TrustDomain,
  rule: IdRule = 'any',
): SpiffeId {
  if (proto === undefined) throw invalidField(field, 'request must specify SPIFFE ID');
  let id: SpiffeId;
  try {
    id = spiffeIdFromPath(parseTrustDomain(proto.trustDomain), proto.path);
  } catch (err) {
    throw invalidField(field, describeError(err), err);
  }
  if (rule !== 'any' && td !== undefined) checkIdRule(id, field, td, rule);
  return id;
}

/**
 * What is wrong with `id` under `rule` for trust domain `td`, or undefined; SPIRE's wording
 * (`"spiffe://x/y" is not a member of trust domain "example.org"`).
 */
export function idRuleProblem(id: SpiffeId, td: TrustDomain, rule: IdRule): string | undefined {
  if (rule === 'any') return undefined;
  const q = JSON.stringify(id.toString());
  const t = JSON.stringify(td.name);
  if (!id.memberOf(td)) return `${q} is not a member of trust domain ${t}`;
  if (id.path === '') {
    const what =
      rule === 'member' ? 'a member of' : rule === 'agent' ? 'an agent in' : 'a workload in';
    return `${q} is not ${what} trust domain ${t}; path is empty`;
  }
  if (rule === 'workload' && isReservedPath(id.path)) {
    return `${q} is not a workload in trust domain ${t}; path is in the reserved namespace`;
  }
  if (rule === 'agent' && !isAgentPath(id.path)) {
    return `${q} is not an agent in trust domain ${t}; path is not in the agent namespace`;
  }
  return undefined;
}

/** Checks an already parsed ID against a rule ({@link idRuleProblem}) as `<field>`. */
export function checkIdRule(id: SpiffeId, field: string, td: TrustDomain, rule: IdRule): void {
  const problem = idRuleProblem(id, td, rule);
  if (problem !== undefined) throw invalidField(field, problem);
}

/** A SPIFFE ID (parsed or string) as `spire.api.types.SPIFFEID`. */
export function protoFromId(id: SpiffeId | string): types.SPIFFEID {
  const parsed = toSpiffeId(id);
  return create(types.SPIFFEIDSchema, {
    trustDomain: parsed.trustDomain.name,
    path: parsed.path,
  });
}

/** A trust domain given as a name or `spiffe://` ID, returned parsed. */
export function trustDomainFromString(value: string, field: string): TrustDomain {
  try {
    return parseTrustDomain(value);
  } catch (err) {
    throw invalidField(field, describeError(err), err);
  }
}

// ------------------------------------------------------------------------------------------
// Selectors

/**
 * Validates selectors (type non-empty without `:`, value non-empty); SPIRE's messages.
 * An empty list is refused unless `allowEmpty` ("selector list is empty").
 */
export function selectorsFromProto(
  list: readonly types.Selector[],
  field: string,
  { allowEmpty = false }: { allowEmpty?: boolean } = {},
): Selector[] {
  if (!allowEmpty && list.length === 0) throw invalidField(field, 'selector list is empty');
  return list.map((s, i) => {
    const f = `${field}[${i}]`;
    if (s.type === '') throw invalidField(f, 'missing selector type');
    if (s.type.includes(':')) throw invalidField(f, "selector type contains ':'");
    if (s.value === '') throw invalidField(f, 'missing selector value');
    return { type: s.type, value: s.value };
  });
}

/** Datastore selectors as protobuf selectors. */
export function protoFromSelectors(list: readonly Selector[]): types.Selector[] {
  return list.map((s) => create(types.SelectorSchema, { type: s.type, value: s.value }));
}

const MATCH_BY_ENUM: readonly MatchBehavior[] = ['exact', 'subset', 'superset', 'any'];

/**
 * The match behaviour of a `SelectorMatch` / `FederatesWithMatch` enum value
 * (MATCH_EXACT=0, MATCH_SUBSET=1, MATCH_SUPERSET=2, MATCH_ANY=3).
 */
export function matchFromProto(value: number, field: string): MatchBehavior {
  const m = MATCH_BY_ENUM[value];
  if (m === undefined) throw invalidField(field, `unknown match behavior ${value}`);
  return m;
}

/** A `SelectorMatch` filter; the selector set must not be empty ("empty selector set"). */
export function selectorFilterFromProto(m: types.SelectorMatch, field: string): SelectorFilter {
  const selectors = selectorsFromProto(m.selectors, `${field}.selectors`, { allowEmpty: true });
  if (selectors.length === 0) throw invalidField(field, 'empty selector set');
  return { selectors, match: matchFromProto(m.match, `${field}.match`) };
}

// ------------------------------------------------------------------------------------------
// DNS names

const DNS_LABEL_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * What is wrong with a DNS name for an X509-SVID SAN, or undefined. SPIRE's rules
 * (x509util.ValidateLabel: strict IDNA with hyphen checks): ASCII, at most one wildcard and
 * only as the whole first label (`*.example.org`), labels of letters, digits and inner
 * hyphens of 1–63 characters, no `--` in the 3rd and 4th positions except `xn--`, no
 * trailing dot, at most 253 characters.
 */
export function dnsNameProblem(name: string): string | undefined {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range check is the point
  if (!/^[\x00-\x7f]*$/.test(name)) return 'name must be ascii';
  const stars = name.split('*').length - 1;
  let rest = name;
  if (stars > 1) return 'too many wildcards';
  if (stars === 1) {
    if (!name.startsWith('*.')) return 'wildcard must be first label';
    rest = name.slice(2);
  }
  rest = rest.trim();
  if (rest === '') return 'empty or only whitespace';
  if (rest.endsWith('.')) return 'domain ends with dot';
  if (rest.length > 253) return 'name is longer than 253 characters';
  for (const label of rest.split('.')) {
    if (label === '') return 'name contains an empty label';
    if (!DNS_LABEL_RE.test(label)) return `label ${JSON.stringify(label)} is not a valid DNS label`;
    if (label.slice(2, 4) === '--' && !label.toLowerCase().startsWith('xn--')) {
      return `label ${JSON.stringify(label)} has hyphens in the third and fourth positions`;
    }
  }
  return undefined;
}

/** Validates DNS names ({@link dnsNameProblem}) as `<field>[i]`. */
export function dnsNamesFromProto(names: readonly string[], field: string): string[] {
  return names.map((n, i) => {
    const problem = dnsNameProblem(n);
    if (problem !== undefined) throw invalidField(`${field}[${i}]`, problem);
    return n;
  });
}

/**
 * Refuses a name list where a wildcard covers a listed name (`*.example.org` with
 * `a.example.org`), as SPIRE's `x509util.CheckForWildcardOverlap`.
 */
export function checkWildcardOverlap(names: readonly string[], field: string): void {
  const set = new Set(names);
  for (const n of set) {
    if (n.startsWith('*')) continue;
    const labels = n.split('.');
    labels[0] = '*';
    if (set.has(labels.join('.'))) {
      throw invalidField(
        field,
        `name ${JSON.stringify(n)} overlaps with an existing wildcard name in the list`,
      );
    }
  }
}

// ------------------------------------------------------------------------------------------
// Registration entries

/** Longest hint SPIRE accepts. */
export const MAX_HINT_LENGTH = 1024;
/** Longest entry ID accepted (the datastore's and SPIRE's limit). */
export const MAX_ENTRY_ID_LENGTH = 255;
const ENTRY_ID_RE = /^[A-Za-z0-9._-]+$/;

/** Validates an entry ID (`[A-Za-z0-9._-]`, 1–255 characters). */
export function entryIdFromProto(id: string, field = 'id'): string {
  if (id === '') throw invalidField(field, 'missing entry ID');
  if (id.length > MAX_ENTRY_ID_LENGTH) {
    throw invalidField(field, `entry ID is longer than ${MAX_ENTRY_ID_LENGTH} characters`);
  }
  if (!ENTRY_ID_RE.test(id)) {
    throw invalidField(field, "entry ID may only contain letters, digits, '.', '_' and '-'");
  }
  return id;
}

/** Proto EntryMask field → datastore entry field (`revision_number`, `created_at` are read-only). */
const ENTRY_MASK_FIELDS: ReadonlyArray<readonly [MaskKey<types.EntryMask>, EntryField]> = [
  ['parentId', 'parentId'],
  ['spiffeId', 'spiffeId'],
  ['selectors', 'selectors'],
  ['x509SvidTtl', 'x509SvidTtl'],
  ['jwtSvidTtl', 'jwtSvidTtl'],
  ['dnsNames', 'dnsNames'],
  ['federatesWith', 'federatesWith'],
  ['admin', 'admin'],
  ['downstream', 'downstream'],
  ['hint', 'hint'],
  ['storeSvid', 'storeSvid'],
  ['expiresAt', 'entryExpiry'],
];

/** The datastore entry fields an `EntryMask` selects (all settable fields when absent). */
export function entryFieldsOfMask(mask: types.EntryMask | undefined): EntryField[] {
  return ENTRY_MASK_FIELDS.filter(([p]) => mask === undefined || mask[p] === true).map(
    ([, f]) => f,
  );
}

/** A validated entry from a request: its ID (when given) and the fields named by the mask. */
export interface EntryFromProto {
  /** The caller's entry ID; undefined when the request left it empty. */
  readonly id: string | undefined;
  /** The validated values of the selected fields. */
  readonly fields: Partial<EntryFields>;
  /** The selected fields (all of them without an input mask). */
  readonly mask: EntryField[];
}

/**
 * Validates a `spire.api.types.Entry` of a create or update request with SPIRE's rules
 * (`ProtoToRegistrationEntryWithMask`): only the fields selected by `mask` (all without one)
 * are read and checked. The parent ID must be a member of `td`; the SPIFFE ID a workload of
 * `td` (not in `/spire/`); selectors non-empty and well formed; TTLs and expiry ≥ 0; DNS names
 * valid; federated trust domains valid (normalised to names); hint ≤ 1024 characters.
 * `additional_attributes` are not stored: a request that sets any of them is refused.
 *
 * Trusts nothing. The datastore still checks that federated trust domains have a bundle and
 * that no similar entry exists.
 *
 * @throws SpireEdgeError `ERR_API_INVALID_ARGUMENT` naming the field.
 */
export function entryFromProto(
  td: TrustDomain,
  e: types.Entry | undefined,
  mask?: types.EntryMask,
): EntryFromProto {
  if (e === undefined) throw invalidField('entry', 'missing entry');
  const fields: Partial<EntryFields> = {};
  const selected = entryFieldsOfMask(mask);
  const id = e.id === '' ? undefined : entryIdFromProto(e.id);
  for (const f of selected) {
    switch (f) {
      case 'parentId':
        fields.parentId = idFromProto(e.parentId, 'parent_id', td, 'member').toString();
        break;
      case 'spiffeId':
        fields.spiffeId = idFromProto(e.spiffeId, 'spiffe_id', td, 'workload').toString();
        break;
      case 'selectors':
        fields.selectors = selectorsFromProto(e.selectors, 'selectors');
        break;
      case 'x509SvidTtl':
        if (e.x509SvidTtl < 0) throw invalidField('x509_svid_ttl', 'must not be negative');
        fields.x509SvidTtl = e.x509SvidTtl;
        break;
      case 'jwtSvidTtl':
        if (e.jwtSvidTtl < 0) throw invalidField('jwt_svid_ttl', 'must not be negative');
        fields.jwtSvidTtl = e.jwtSvidTtl;
        break;
      case 'entryExpiry':
        fields.entryExpiry = int64ToNumber(e.expiresAt, 'expires_at');
        break;
      case 'dnsNames':
        fields.dnsNames = dnsNamesFromProto(e.dnsNames, 'dns_names');
        break;
      case 'federatesWith':
        fields.federatesWith = e.federatesWith.map(
          (t, i) => trustDomainFromString(t, `federates_with[${i}]`).name,
        );
        break;
      case 'admin':
        fields.admin = e.admin;
        break;
      case 'downstream':
        fields.downstream = e.downstream;
        break;
      case 'storeSvid':
        fields.storeSvid = e.storeSvid;
        break;
      case 'hint':
        if (e.hint.length > MAX_HINT_LENGTH) {
          throw invalidField(
            'hint',
            `hint is too long, max length is ${MAX_HINT_LENGTH} characters`,
          );
        }
        fields.hint = e.hint;
        break;
    }
  }
  const extra = e.additionalAttributes;
  if (
    (mask === undefined || mask.additionalAttributes) &&
    extra !== undefined &&
    (extra.disableX509SvidPrefetch || extra.jwtSvidIncludeJti)
  ) {
    throw invalidField('additional_attributes', 'additional attributes are not supported');
  }
  return { id, fields, mask: selected };
}

/**
 * A stored entry as `spire.api.types.Entry`, with `outputMask` applied as SPIRE does (the ID
 * is always present; unselected fields are zero).
 */
export function protoFromEntry(e: RegistrationEntry, outputMask?: types.EntryMask): types.Entry {
  const m = (k: MaskKey<types.EntryMask>): boolean => outputMask === undefined || outputMask[k];
  return create(types.EntrySchema, {
    id: e.id,
    ...(m('spiffeId') ? { spiffeId: protoFromId(e.spiffeId) } : {}),
    ...(m('parentId') ? { parentId: protoFromId(e.parentId) } : {}),
    selectors: m('selectors') ? protoFromSelectors(e.selectors) : [],
    x509SvidTtl: m('x509SvidTtl') ? e.x509SvidTtl : 0,
    jwtSvidTtl: m('jwtSvidTtl') ? e.jwtSvidTtl : 0,
    federatesWith: m('federatesWith') ? [...e.federatesWith] : [],
    admin: m('admin') ? e.admin : false,
    downstream: m('downstream') ? e.downstream : false,
    expiresAt: m('expiresAt') ? BigInt(e.entryExpiry) : 0n,
    dnsNames: m('dnsNames') ? [...e.dnsNames] : [],
    revisionNumber: m('revisionNumber') ? BigInt(e.revisionNumber) : 0n,
    storeSvid: m('storeSvid') ? e.storeSvid : false,
    hint: m('hint') ? e.hint : '',
    createdAt: m('createdAt') ? BigInt(e.createdAt) : 0n,
  });
}

// ------------------------------------------------------------------------------------------
// Agents

/**
 * A stored node as `spire.api.types.Agent` with `outputMask` applied (the ID is always
 * present). `agent_version` is not recorded: always empty. A banned node reports an empty
 * serial number, as in SPIRE.
 */
export function protoFromAttestedNode(n: AttestedNode, outputMask?: types.AgentMask): types.Agent {
  const m = (k: MaskKey<types.AgentMask>): boolean => outputMask === undefined || outputMask[k];
  return create(types.AgentSchema, {
    id: protoFromId(n.spiffeId),
    attestationType: m('attestationType') ? n.attestationDataType : '',
    x509svidSerialNumber: m('x509svidSerialNumber') ? n.certSerialNumber : '',
    x509svidExpiresAt: m('x509svidExpiresAt') ? BigInt(n.certNotAfter) : 0n,
    selectors: m('selectors') ? protoFromSelectors(n.selectors) : [],
    banned: m('banned') ? n.banned : false,
    canReattest: m('canReattest') ? n.canReattest : false,
    agentVersion: '',
  });
}

// ------------------------------------------------------------------------------------------
// Bundles

/**
 * X.509 authorities of a request: each `asn1` holds one or more DER certificates
 * (concatenated, as SPIRE accepts); each certificate becomes one authority. The `tainted`
 * flag of a request is ignored (tainting is the CA's decision), as in SPIRE.
 */
export function x509AuthoritiesFromProto(
  list: readonly types.X509Certificate[],
  field: string,
): X509AuthorityInput[] {
  const out: X509AuthorityInput[] = [];
  list.forEach((a, i) => {
    if (a.asn1.length === 0) throw invalidField(`${field}[${i}]`, 'missing certificate');
    try {
      for (const cert of parseCertificates(a.asn1)) out.push({ certificateDer: cert.der });
    } catch (err) {
      throw invalidField(`${field}[${i}]`, describeError(err), err);
    }
  });
  return out;
}

/**
 * JWT authorities of a request: the public key must be a SubjectPublicKeyInfo, the key ID
 * non-empty; `expires_at` ≥ 0; `tainted` is ignored.
 */
export function jwtAuthoritiesFromProto(
  list: readonly types.JWTKey[],
  field: string,
): JwtAuthorityInput[] {
  return list.map((k, i) => {
    const f = `${field}[${i}]`;
    if (k.keyId === '') throw invalidField(`${f}.key_id`, 'missing key ID');
    if (k.publicKey.length === 0) throw invalidField(`${f}.public_key`, 'missing public key');
    try {
      createPublicKey({ key: Buffer.from(k.publicKey), format: 'der', type: 'spki' });
    } catch (err) {
      throw invalidField(`${f}.public_key`, 'not a DER SubjectPublicKeyInfo', err);
    }
    return {
      keyId: k.keyId,
      publicKeyDer: Uint8Array.from(k.publicKey),
      notAfter: int64ToNumber(k.expiresAt, `${f}.expires_at`),
    };
  });
}

/**
 * A `spire.api.types.Bundle` of a request as a datastore input. The trust domain may be a
 * name or a `spiffe://` ID; `wit_authorities` are not supported (refused when present).
 */
export function bundleInputFromProto(b: types.Bundle | undefined, field = 'bundle'): BundleInput {
  if (b === undefined) throw invalidField(field, 'no bundle provided');
  const td = trustDomainFromString(b.trustDomain, `${field}.trust_domain`);
  if (b.witAuthorities.length > 0) {
    throw invalidField(`${field}.wit_authorities`, 'WIT authorities are not supported');
  }
  return {
    trustDomain: td.name,
    x509Authorities: x509AuthoritiesFromProto(b.x509Authorities, `${field}.x509_authorities`),
    jwtAuthorities: jwtAuthoritiesFromProto(b.jwtAuthorities, `${field}.jwt_authorities`),
    refreshHint: int64ToNumber(b.refreshHint, `${field}.refresh_hint`),
    sequenceNumber: int64ToNumber(b.sequenceNumber, `${field}.sequence_number`),
  };
}

/** The datastore bundle fields a `BundleMask` selects (all without a mask). */
export function bundleFieldsOfMask(mask: types.BundleMask | undefined): BundleField[] {
  const all: ReadonlyArray<readonly [MaskKey<types.BundleMask>, BundleField]> = [
    ['x509Authorities', 'x509Authorities'],
    ['jwtAuthorities', 'jwtAuthorities'],
    ['refreshHint', 'refreshHint'],
    ['sequenceNumber', 'sequenceNumber'],
  ];
  return all.filter(([p]) => mask === undefined || mask[p] === true).map(([, f]) => f);
}

/** A stored bundle as `spire.api.types.Bundle` with `outputMask` applied. */
export function protoFromBundle(b: Bundle, outputMask?: types.BundleMask): types.Bundle {
  const m = (k: MaskKey<types.BundleMask>): boolean => outputMask === undefined || outputMask[k];
  return create(types.BundleSchema, {
    trustDomain: b.trustDomain,
    x509Authorities: m('x509Authorities')
      ? b.x509Authorities.map((a) =>
          create(types.X509CertificateSchema, { asn1: a.certificateDer, tainted: a.tainted }),
        )
      : [],
    jwtAuthorities: m('jwtAuthorities')
      ? b.jwtAuthorities.map((k) =>
          create(types.JWTKeySchema, {
            publicKey: k.publicKeyDer,
            keyId: k.keyId,
            expiresAt: BigInt(k.notAfter),
            tainted: k.tainted,
          }),
        )
      : [],
    refreshHint: m('refreshHint') ? BigInt(b.refreshHint) : 0n,
    sequenceNumber: m('sequenceNumber') ? BigInt(b.sequenceNumber) : 0n,
  });
}
