/**
 * The plain record types the agent keeps in its store: its own identity, the bundles, the
 * authorized registration entries as last synced, the sync state and the cached workload
 * SVIDs. They are plain data (no classes) so the store can encode them strictly and the sync
 * manager, the Workload API and the tests can build them without the store.
 *
 * Times are integers: `…Ms` fields are milliseconds since the epoch; fields that mirror
 * `spire.api.types.Entry` keep its units (seconds). Byte fields are DER or PKCS#8 as named.
 * Records read from the store are frozen (shallowly); never mutate a record or its bytes.
 */

/** A workload or node selector, `type:value` (`unix:uid:1000` is `{ type: 'unix', value: 'uid:1000' }`). */
export interface SelectorRecord {
  readonly type: string;
  readonly value: string;
}

/**
 * A registration entry the agent is authorized for, as last synced from the server. Mirrors
 * `spire.api.types.Entry` (field for field, SPIFFE IDs as strings, `int64` as safe integers).
 */
export interface EntryRecord {
  /** The entry ID (server-assigned, opaque). */
  readonly id: string;
  /** `spiffe://…` ID the entry's SVIDs carry. */
  readonly spiffeId: string;
  /** `spiffe://…` ID of the parent (the agent or a node alias). */
  readonly parentId: string;
  readonly selectors: readonly SelectorRecord[];
  /** X509-SVID TTL in seconds; 0 = the server's default. */
  readonly x509SvidTtl: number;
  /** JWT-SVID TTL in seconds; 0 = the server's default. */
  readonly jwtSvidTtl: number;
  /** Trust domain names (`example.org`) whose bundles the entry's workloads also get. */
  readonly federatesWith: readonly string[];
  readonly admin: boolean;
  readonly downstream: boolean;
  /** When the entry itself expires, seconds since the epoch; 0 = never. */
  readonly expiresAt: number;
  readonly dnsNames: readonly string[];
  /** The server's revision of the entry; the sync compares it to decide what changed. */
  readonly revisionNumber: number;
  readonly storeSvid: boolean;
  readonly hint: string;
  /** Creation time, seconds since the epoch. */
  readonly createdAt: number;
}

/** A JWT signing authority of a bundle (`spire.api.types.JWTKey`). */
export interface JwtAuthorityRecord {
  readonly keyId: string;
  /** The public key, SubjectPublicKeyInfo DER. */
  readonly publicKey: Uint8Array;
  /** Seconds since the epoch; 0 = no expiry. */
  readonly expiresAt: number;
}

/** A trust bundle (`spire.api.types.Bundle`): our trust domain's or a federated one. */
export interface BundleRecord {
  /** Trust domain name, e.g. `example.org`. */
  readonly trustDomain: string;
  /** X.509 authorities (CA certificates), DER each. */
  readonly x509Authorities: readonly Uint8Array[];
  readonly jwtAuthorities: readonly JwtAuthorityRecord[];
  /** Refresh hint in seconds; 0 = none. */
  readonly refreshHint: number;
  /** The bundle's sequence number; 0 = none. */
  readonly sequenceNumber: number;
}

/**
 * The agent's own identity: its X509-SVID, the key, and what attestation said. `privateKey`
 * is optional so a `KeyManager "memory"` agent can choose not to persist its key (it then
 * re-attests after a restart, as in SPIRE).
 */
export interface AgentIdentityRecord {
  /** The agent's SPIFFE ID (`spiffe://td/spire/agent/…`). */
  readonly spiffeId: string;
  /** Leaf first, then intermediates; DER each. */
  readonly certChain: readonly Uint8Array[];
  /** PKCS#8 DER of the agent SVID's key, when persisted. Sealed at rest when a sealer is set. */
  readonly privateKey?: Uint8Array;
  /** The leaf's notAfter, ms since the epoch. */
  readonly expiresAtMs: number;
  /** Whether the server lets this agent attest again instead of renewing (SPIRE's `reattestable`). */
  readonly reattestable: boolean;
  /** The node attestor that produced the identity (`join_token`, `x509pop`, `tpm`). */
  readonly attestorType: string;
  /** When the agent last attested (or re-attested), ms since the epoch. */
  readonly lastAttestedAtMs: number;
}

/** What the sync manager needs to remember across restarts. */
export interface SyncStateRecord {
  /** When the last sync succeeded, ms since the epoch; 0 = never. */
  readonly lastSyncAtMs: number;
  /** When the last full (not incremental) sync succeeded, ms since the epoch; 0 = never. */
  readonly lastFullSyncAtMs: number;
  /** An opaque cursor for incremental syncs ('' when unused). */
  readonly cursor: string;
}

/** A cached workload X509-SVID, minted for one entry. */
export interface X509SvidRecord {
  /** The entry the SVID was minted for (the cache key). */
  readonly entryId: string;
  /** The SPIFFE ID in the certificate. */
  readonly spiffeId: string;
  /** Leaf first, then intermediates; DER each. */
  readonly certChain: readonly Uint8Array[];
  /** PKCS#8 DER of the SVID's key. Sealed at rest when a sealer is set. */
  readonly privateKey: Uint8Array;
  /** The leaf's notAfter, ms since the epoch: never serve it at or after this time. */
  readonly expiresAtMs: number;
  /** When the cache manager plans to replace it (half-life ± jitter), ms since the epoch. */
  readonly rotateAtMs: number;
  /** `revisionNumber` of the entry when the SVID was minted. */
  readonly entryRevision: number;
}

/** A cached JWT-SVID, keyed by its SPIFFE ID and audience set. */
export interface JwtSvidRecord {
  readonly spiffeId: string;
  /** The audience, sorted and without duplicates (the store normalises it). */
  readonly audience: readonly string[];
  /** The compact JWS. A bearer credential: sealed at rest when a sealer is set. */
  readonly token: string;
  /** When it was issued, ms since the epoch. */
  readonly issuedAtMs: number;
  /** Its `exp`, ms since the epoch: never serve it at or after this time. */
  readonly expiresAtMs: number;
}
