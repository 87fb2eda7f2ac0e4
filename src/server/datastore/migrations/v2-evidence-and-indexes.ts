/**
 * Schema v2: the attestation evidence summary on attested nodes (shown by `agent show`),
 * and the secondary indexes the list filters, pruning and the entry cache use.
 */
import type { Migration } from './migration.js';

const common = `
ALTER TABLE attested_nodes ADD COLUMN evidence TEXT NOT NULL DEFAULT '';
CREATE INDEX registered_entries_parent_id ON registered_entries(parent_id);
CREATE INDEX registered_entries_spiffe_id ON registered_entries(spiffe_id);
CREATE INDEX registered_entries_entry_expiry ON registered_entries(entry_expiry);
CREATE INDEX entry_selectors_type_value ON entry_selectors(type, value);
CREATE INDEX node_selectors_type_value ON node_selectors(type, value);
CREATE INDEX attested_nodes_cert_not_after ON attested_nodes(cert_not_after);
CREATE INDEX registered_entries_events_created_at ON registered_entries_events(created_at);
CREATE INDEX attested_node_events_created_at ON attested_node_events(created_at);
CREATE INDEX join_tokens_expires_at ON join_tokens(expires_at);
`;

/** Schema v2: node evidence column and secondary indexes. */
export const v2EvidenceAndIndexes: Migration = {
  version: 2,
  name: 'attested node evidence and secondary indexes',
  sqlite: common,
  postgres: common,
};
