/**
 * Schema v1: the base tables. Entry selectors and federated trust domains are child tables
 * (so the match filters run in SQL); a `similarity_key` (SHA-256 of SPIFFE ID, parent ID and
 * selector set) makes "similar entry already exists" a database constraint, which also holds
 * between two servers on one PostgreSQL. Events tables never reuse IDs (AUTOINCREMENT /
 * identity), so a cache's "last seen event" stays meaningful after pruning.
 */
import type { Migration } from './migration.js';

const sqlite = `
CREATE TABLE bundles (
  trust_domain TEXT PRIMARY KEY,
  data TEXT NOT NULL,
  sequence_number INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE registered_entries (
  id TEXT PRIMARY KEY,
  spiffe_id TEXT NOT NULL,
  parent_id TEXT NOT NULL,
  similarity_key TEXT NOT NULL CONSTRAINT registered_entries_similar UNIQUE,
  x509_svid_ttl INTEGER NOT NULL DEFAULT 0,
  jwt_svid_ttl INTEGER NOT NULL DEFAULT 0,
  dns_names TEXT NOT NULL DEFAULT '[]',
  admin INTEGER NOT NULL DEFAULT 0,
  downstream INTEGER NOT NULL DEFAULT 0,
  store_svid INTEGER NOT NULL DEFAULT 0,
  hint TEXT NOT NULL DEFAULT '',
  entry_expiry INTEGER NOT NULL DEFAULT 0,
  revision_number INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE entry_selectors (
  entry_id TEXT NOT NULL REFERENCES registered_entries(id) ON DELETE CASCADE,
  type TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (entry_id, type, value)
) WITHOUT ROWID;
CREATE TABLE entry_federates_with (
  entry_id TEXT NOT NULL REFERENCES registered_entries(id) ON DELETE CASCADE,
  trust_domain TEXT NOT NULL REFERENCES bundles(trust_domain),
  PRIMARY KEY (entry_id, trust_domain)
) WITHOUT ROWID;
CREATE INDEX entry_federates_with_trust_domain ON entry_federates_with(trust_domain);
CREATE TABLE registered_entries_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  entry_id TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE attested_nodes (
  spiffe_id TEXT PRIMARY KEY,
  attestation_data_type TEXT NOT NULL,
  cert_serial_number TEXT NOT NULL DEFAULT '',
  cert_not_after INTEGER NOT NULL DEFAULT 0,
  new_cert_serial_number TEXT NOT NULL DEFAULT '',
  new_cert_not_after INTEGER NOT NULL DEFAULT 0,
  can_reattest INTEGER NOT NULL DEFAULT 0,
  banned INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE node_selectors (
  spiffe_id TEXT NOT NULL REFERENCES attested_nodes(spiffe_id) ON DELETE CASCADE,
  type TEXT NOT NULL,
  value TEXT NOT NULL
);
CREATE INDEX node_selectors_spiffe_id ON node_selectors(spiffe_id);
CREATE TABLE attested_node_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  spiffe_id TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE join_tokens (
  token_hash TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE ca_journals (
  key TEXT PRIMARY KEY,
  data BLOB NOT NULL,
  updated_at INTEGER NOT NULL
);
`;

// COLLATE "C" on keys: byte order, as SQLite's BINARY, so pagination orders agree.
const postgres = `
CREATE TABLE bundles (
  trust_domain TEXT COLLATE "C" PRIMARY KEY,
  data TEXT NOT NULL,
  sequence_number BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE registered_entries (
  id TEXT COLLATE "C" PRIMARY KEY,
  spiffe_id TEXT COLLATE "C" NOT NULL,
  parent_id TEXT COLLATE "C" NOT NULL,
  similarity_key TEXT NOT NULL CONSTRAINT registered_entries_similar UNIQUE,
  x509_svid_ttl INTEGER NOT NULL DEFAULT 0,
  jwt_svid_ttl INTEGER NOT NULL DEFAULT 0,
  dns_names TEXT NOT NULL DEFAULT '[]',
  admin BOOLEAN NOT NULL DEFAULT FALSE,
  downstream BOOLEAN NOT NULL DEFAULT FALSE,
  store_svid BOOLEAN NOT NULL DEFAULT FALSE,
  hint TEXT NOT NULL DEFAULT '',
  entry_expiry BIGINT NOT NULL DEFAULT 0,
  revision_number BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE entry_selectors (
  entry_id TEXT COLLATE "C" NOT NULL REFERENCES registered_entries(id) ON DELETE CASCADE,
  type TEXT COLLATE "C" NOT NULL,
  value TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (entry_id, type, value)
);
CREATE TABLE entry_federates_with (
  entry_id TEXT COLLATE "C" NOT NULL REFERENCES registered_entries(id) ON DELETE CASCADE,
  trust_domain TEXT COLLATE "C" NOT NULL REFERENCES bundles(trust_domain),
  PRIMARY KEY (entry_id, trust_domain)
);
CREATE INDEX entry_federates_with_trust_domain ON entry_federates_with(trust_domain);
CREATE TABLE registered_entries_events (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  entry_id TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE attested_nodes (
  spiffe_id TEXT COLLATE "C" PRIMARY KEY,
  attestation_data_type TEXT NOT NULL,
  cert_serial_number TEXT NOT NULL DEFAULT '',
  cert_not_after BIGINT NOT NULL DEFAULT 0,
  new_cert_serial_number TEXT NOT NULL DEFAULT '',
  new_cert_not_after BIGINT NOT NULL DEFAULT 0,
  can_reattest BOOLEAN NOT NULL DEFAULT FALSE,
  banned BOOLEAN NOT NULL DEFAULT FALSE,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE node_selectors (
  spiffe_id TEXT COLLATE "C" NOT NULL REFERENCES attested_nodes(spiffe_id) ON DELETE CASCADE,
  type TEXT COLLATE "C" NOT NULL,
  value TEXT COLLATE "C" NOT NULL
);
CREATE INDEX node_selectors_spiffe_id ON node_selectors(spiffe_id);
CREATE TABLE attested_node_events (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  spiffe_id TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE join_tokens (
  token_hash TEXT COLLATE "C" PRIMARY KEY,
  expires_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE ca_journals (
  key TEXT COLLATE "C" PRIMARY KEY,
  data BYTEA NOT NULL,
  updated_at BIGINT NOT NULL
);
`;

/** Schema v1: base tables. */
export const v1Base: Migration = { version: 1, name: 'base tables', sqlite, postgres };
