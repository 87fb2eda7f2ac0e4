/**
 * Conversions between the server API's wire types (`spire.api.types`) and the agent store's
 * records, and from stored bundles to the bundle objects the Workload API serves.
 *
 * What is checked: the shape the agent relies on — entry IDs, SPIFFE IDs (parsed), selector
 * types and values, integers that fit a safe integer, bundle trust domains, DER that parses as
 * a certificate or a public key. What is trusted: that the server authorized the entries it
 * sent (it is the authority on that). Errors: `ERR_AGENT_SERVER_RESPONSE_INVALID`.
 */
import { createPublicKey } from 'node:crypto';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import type { types } from '../../protocol/index.js';
import { parseSpiffeId, parseTrustDomain, type TrustDomain } from '../../spiffe/id.js';
import { JwtBundle } from '../../spiffe/jwt-bundle.js';
import type { SpiffeBundle } from '../../spiffe/spiffe-bundle.js';
import { X509Bundle } from '../../spiffe/x509-bundle.js';
import { parseCertificate } from '../../spiffe/x509-cert.js';
import type { BundleRecord, EntryRecord, JwtAuthorityRecord } from '../storage/records.js';
import type { TrustDomainBundles } from '../workload-api/identity-source.js';

/** A server answer the agent cannot use. */
export function invalidResponse(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_AGENT_SERVER_RESPONSE_INVALID',
    message,
    cause === undefined ? {} : { cause },
  );
}

function safeInt(v: bigint | number, what: string): number {
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (!Number.isSafeInteger(n) || n < 0) {
    throw invalidResponse(`${what} must be a non-negative safe integer`);
  }
  return n;
}

/** `SPIFFEID {trust_domain, path}` → `spiffe://td/path`, parsed (so well formed). */
export function spiffeIdString(id: types.SPIFFEID | undefined, what: string): string {
  if (id === undefined) throw invalidResponse(`${what} is missing`);
  if ((id.path !== '' && !id.path.startsWith('/')) || id.trustDomain.includes('/')) {
    throw invalidResponse(`${what} is not a valid SPIFFE ID: malformed trust domain or path`);
  }
  try {
    return parseSpiffeId(`spiffe://${id.trustDomain}${id.path}`).toString();
  } catch (err) {
    throw invalidResponse(`${what} is not a valid SPIFFE ID: ${describeError(err)}`, err);
  }
}

/**
 * A registration entry from the server as an {@link EntryRecord}.
 *
 * @throws SpireEdgeError `ERR_AGENT_SERVER_RESPONSE_INVALID` naming the field.
 */
export function entryFromProto(e: types.Entry): EntryRecord {
  if (typeof e.id !== 'string' || e.id === '') throw invalidResponse('entry id is empty');
  const what = `entry ${JSON.stringify(e.id)}`;
  const selectors = e.selectors.map((s, i) => {
    if (s.type === '' || s.type.includes(':') || s.value === '') {
      throw invalidResponse(`${what}: selector ${i} must be type:value with a non-empty type`);
    }
    return { type: s.type, value: s.value };
  });
  const federatesWith = e.federatesWith.map((td) => {
    try {
      return parseTrustDomain(td).name;
    } catch (err) {
      throw invalidResponse(
        `${what}: federates_with ${JSON.stringify(td)} is not a trust domain`,
        err,
      );
    }
  });
  const ttl = (v: number, field: string) => {
    if (!Number.isSafeInteger(v) || v < 0) throw invalidResponse(`${what}: ${field} is negative`);
    return v;
  };
  return {
    id: e.id,
    spiffeId: spiffeIdString(e.spiffeId, `${what} spiffe_id`),
    parentId: e.parentId === undefined ? '' : spiffeIdString(e.parentId, `${what} parent_id`),
    selectors,
    x509SvidTtl: ttl(e.x509SvidTtl, 'x509_svid_ttl'),
    jwtSvidTtl: ttl(e.jwtSvidTtl, 'jwt_svid_ttl'),
    federatesWith,
    admin: e.admin,
    downstream: e.downstream,
    expiresAt: safeInt(e.expiresAt, `${what} expires_at`),
    dnsNames: [...e.dnsNames],
    revisionNumber: safeInt(e.revisionNumber, `${what} revision_number`),
    storeSvid: e.storeSvid,
    hint: e.hint,
    createdAt: safeInt(e.createdAt, `${what} created_at`),
  };
}

/**
 * A bundle from the server as a {@link BundleRecord}: its trust domain must be `expected`,
 * every X.509 authority must parse as a certificate and every JWT authority's key as a public
 * key (one that does not is an error: a bundle is all or nothing).
 *
 * @throws SpireEdgeError `ERR_AGENT_SERVER_RESPONSE_INVALID`.
 */
export function bundleFromProto(b: types.Bundle, expected: TrustDomain | string): BundleRecord {
  const td = typeof expected === 'string' ? parseTrustDomain(expected) : expected;
  let name: string;
  try {
    name = parseTrustDomain(b.trustDomain).name;
  } catch (err) {
    throw invalidResponse(`bundle trust domain ${JSON.stringify(b.trustDomain)} is invalid`, err);
  }
  if (name !== td.name) {
    throw invalidResponse(`bundle is for trust domain ${name}, expected ${td.name}`);
  }
  const x509Authorities = b.x509Authorities.map((a, i) => {
    const der = new Uint8Array(a.asn1);
    try {
      parseCertificate(der);
    } catch (err) {
      throw invalidResponse(`bundle ${name}: X.509 authority ${i} is not a certificate`, err);
    }
    return der;
  });
  const jwtAuthorities: JwtAuthorityRecord[] = b.jwtAuthorities.map((k, i) => {
    if (k.keyId === '') throw invalidResponse(`bundle ${name}: JWT authority ${i} has no key ID`);
    const publicKey = new Uint8Array(k.publicKey);
    try {
      createPublicKey({ key: Buffer.from(publicKey), format: 'der', type: 'spki' });
    } catch (err) {
      throw invalidResponse(
        `bundle ${name}: JWT authority ${k.keyId} has no valid public key`,
        err,
      );
    }
    return {
      keyId: k.keyId,
      publicKey,
      expiresAt: safeInt(k.expiresAt, `bundle ${name} JWT authority expires_at`),
    };
  });
  return {
    trustDomain: name,
    x509Authorities,
    jwtAuthorities,
    refreshHint: safeInt(b.refreshHint, `bundle ${name} refresh_hint`),
    sequenceNumber: safeInt(b.sequenceNumber, `bundle ${name} sequence_number`),
  };
}

/** A SPIFFE bundle document (`trust_bundle_format = "spiffe"`) as a {@link BundleRecord}. */
export function bundleFromSpiffeBundle(b: SpiffeBundle): BundleRecord {
  return {
    trustDomain: b.trustDomain.name,
    x509Authorities: [...b.x509Authorities],
    jwtAuthorities: [...b.jwtAuthorities.values()].map((a) => ({
      keyId: a.keyId,
      publicKey: new Uint8Array(
        createPublicKey({ key: a.jwk as never, format: 'jwk' }).export({
          format: 'der',
          type: 'spki',
        }),
      ),
      expiresAt: 0,
    })),
    refreshHint: b.refreshHint ?? 0,
    sequenceNumber: b.sequenceNumber ?? 0,
  };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** True when two bundle records hold the same data. */
export function bundleRecordsEqual(a: BundleRecord | undefined, b: BundleRecord): boolean {
  if (a === undefined) return false;
  return (
    a.trustDomain === b.trustDomain &&
    a.refreshHint === b.refreshHint &&
    a.sequenceNumber === b.sequenceNumber &&
    a.x509Authorities.length === b.x509Authorities.length &&
    a.x509Authorities.every((d, i) => bytesEqual(d, b.x509Authorities[i]!)) &&
    a.jwtAuthorities.length === b.jwtAuthorities.length &&
    a.jwtAuthorities.every((k, i) => {
      const o = b.jwtAuthorities[i]!;
      return (
        k.keyId === o.keyId && k.expiresAt === o.expiresAt && bytesEqual(k.publicKey, o.publicKey)
      );
    })
  );
}

/**
 * A stored bundle as the X.509 and JWT bundles the Workload API serves. JWT authorities whose
 * key the JWT bundle refuses (a key type JWT-SVIDs cannot use) are left out.
 */
export function trustDomainBundlesOf(record: BundleRecord): TrustDomainBundles {
  const x509 = new X509Bundle(record.trustDomain, record.x509Authorities);
  const jwt = new JwtBundle(record.trustDomain);
  for (const k of record.jwtAuthorities) {
    try {
      jwt.addJwtAuthority(
        k.keyId,
        createPublicKey({ key: Buffer.from(k.publicKey), format: 'der', type: 'spki' }),
      );
    } catch {
      // Not a JWT-SVID key type: it cannot verify a JWT-SVID, so serving it helps nobody.
    }
  }
  return { x509, jwt };
}
