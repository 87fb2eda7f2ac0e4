/**
 * Record ↔ wire conversions of the agent API: registration entries, X509-SVIDs, bundles
 * (spire.api.types), with SPIRE's output masks.
 *
 * Entries converted once are remembered per record object (records in the authorized
 * entries cache are immutable and replaced on change), so a busy server does not rebuild
 * the same messages for every agent sync.
 */
import { create } from '@bufbuild/protobuf';
import { types } from '../../../protocol/index.js';
import type { Bundle, RegistrationEntry } from '../../datastore/types.js';

/** `spiffe://td/path` → `SPIFFEID { trust_domain, path }` (the ID must be well formed). */
export function spiffeIdToProto(id: string): types.SPIFFEID {
  const rest = id.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  return create(types.SPIFFEIDSchema, {
    trustDomain: slash < 0 ? rest : rest.slice(0, slash),
    path: slash < 0 ? '' : rest.slice(slash),
  });
}

/** `SPIFFEID` → `spiffe://td/path`. */
export function spiffeIdFromProto(id: types.SPIFFEID | undefined): string {
  return id === undefined ? '' : `spiffe://${id.trustDomain}${id.path}`;
}

const entryProtos = new WeakMap<RegistrationEntry, types.Entry>();

/** An entry as `spire.api.types.Entry` (cached per record object; do not mutate it). */
export function entryToProto(e: RegistrationEntry): types.Entry {
  let p = entryProtos.get(e);
  if (p === undefined) {
    p = create(types.EntrySchema, {
      id: e.id,
      spiffeId: spiffeIdToProto(e.spiffeId),
      parentId: spiffeIdToProto(e.parentId),
      selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })),
      x509SvidTtl: e.x509SvidTtl,
      federatesWith: [...e.federatesWith],
      admin: e.admin,
      downstream: e.downstream,
      expiresAt: BigInt(e.entryExpiry),
      dnsNames: [...e.dnsNames],
      revisionNumber: BigInt(e.revisionNumber),
      storeSvid: e.storeSvid,
      jwtSvidTtl: e.jwtSvidTtl,
      hint: e.hint,
      createdAt: BigInt(e.createdAt),
    });
    entryProtos.set(e, p);
  }
  return p;
}

/**
 * The entry with only the fields the mask selects (the ID is always kept), as SPIRE's
 * `applyMask`; without a mask, the entry itself.
 */
export function maskEntry(e: types.Entry, mask: types.EntryMask | undefined): types.Entry {
  if (mask === undefined) return e;
  const out = create(types.EntrySchema, { id: e.id });
  if (mask.spiffeId && e.spiffeId !== undefined) out.spiffeId = e.spiffeId;
  if (mask.parentId && e.parentId !== undefined) out.parentId = e.parentId;
  if (mask.selectors) out.selectors = e.selectors;
  if (mask.x509SvidTtl) out.x509SvidTtl = e.x509SvidTtl;
  if (mask.federatesWith) out.federatesWith = e.federatesWith;
  if (mask.admin) out.admin = e.admin;
  if (mask.downstream) out.downstream = e.downstream;
  if (mask.expiresAt) out.expiresAt = e.expiresAt;
  if (mask.dnsNames) out.dnsNames = e.dnsNames;
  if (mask.revisionNumber) out.revisionNumber = e.revisionNumber;
  if (mask.storeSvid) out.storeSvid = e.storeSvid;
  if (mask.jwtSvidTtl) out.jwtSvidTtl = e.jwtSvidTtl;
  if (mask.hint) out.hint = e.hint;
  if (mask.createdAt) out.createdAt = e.createdAt;
  if (mask.additionalAttributes && e.additionalAttributes !== undefined) {
    out.additionalAttributes = e.additionalAttributes;
  }
  return out;
}

/** A signed X509-SVID as `spire.api.types.X509SVID`. */
export function x509SvidToProto(
  spiffeId: string,
  certChain: readonly Uint8Array[],
  expiresAt: Date,
): types.X509SVID {
  return create(types.X509SVIDSchema, {
    id: spiffeIdToProto(spiffeId),
    certChain: [...certChain],
    expiresAt: BigInt(Math.floor(expiresAt.getTime() / 1000)),
  });
}

/** A stored bundle as `spire.api.types.Bundle`. */
export function bundleToProto(b: Bundle): types.Bundle {
  return create(types.BundleSchema, {
    trustDomain: b.trustDomain,
    x509Authorities: b.x509Authorities.map((a) => ({ asn1: a.certificateDer, tainted: a.tainted })),
    jwtAuthorities: b.jwtAuthorities.map((k) => ({
      publicKey: k.publicKeyDer,
      keyId: k.keyId,
      expiresAt: BigInt(k.notAfter),
      tainted: k.tainted,
    })),
    refreshHint: BigInt(b.refreshHint),
    sequenceNumber: BigInt(b.sequenceNumber),
  });
}

/** SPIRE's `applyBundleMask`: clears the fields the mask does not select. */
export function maskBundle(b: types.Bundle, mask: types.BundleMask | undefined): types.Bundle {
  if (mask === undefined) return b;
  if (!mask.x509Authorities) b.x509Authorities = [];
  if (!mask.jwtAuthorities) b.jwtAuthorities = [];
  if (!mask.refreshHint) b.refreshHint = 0n;
  if (!mask.sequenceNumber) b.sequenceNumber = 0n;
  if (!mask.witAuthorities) b.witAuthorities = [];
  return b;
}

/** A certificate serial (INTEGER contents, positive) in decimal, as SPIRE stores it. */
export function serialToDecimal(serialContents: Uint8Array): string {
  let v = 0n;
  for (const b of serialContents) v = (v << 8n) | BigInt(b);
  if (serialContents.length > 0 && (serialContents[0]! & 0x80) !== 0) {
    v -= 1n << BigInt(serialContents.length * 8);
  }
  return v.toString(10);
}
