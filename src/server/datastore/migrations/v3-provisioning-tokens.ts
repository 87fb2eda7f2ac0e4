/**
 * Schema v3: one-time provisioning tokens for device enrollment (`tpm-enroll
 * -provisioningToken`, ours, not SPIRE's). Like join tokens, only the SHA-256 of a token is
 * stored; each row also names the node alias SPIFFE ID the token authorises and whether it
 * may rebind an alias already bound to another device.
 */
import type { Migration } from './migration.js';

const sqlite = `
CREATE TABLE provisioning_tokens (
  token_hash TEXT PRIMARY KEY,
  spiffe_id TEXT NOT NULL,
  allow_replace INTEGER NOT NULL DEFAULT 0,
  expires_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX provisioning_tokens_spiffe_id ON provisioning_tokens(spiffe_id);
CREATE INDEX provisioning_tokens_expires_at ON provisioning_tokens(expires_at);
`;

const postgres = `
CREATE TABLE provisioning_tokens (
  token_hash TEXT COLLATE "C" PRIMARY KEY,
  spiffe_id TEXT COLLATE "C" NOT NULL,
  allow_replace BOOLEAN NOT NULL DEFAULT FALSE,
  expires_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX provisioning_tokens_spiffe_id ON provisioning_tokens(spiffe_id);
CREATE INDEX provisioning_tokens_expires_at ON provisioning_tokens(expires_at);
`;

/** Schema v3: provisioning tokens. */
export const v3ProvisioningTokens: Migration = {
  version: 3,
  name: 'provisioning tokens for device enrollment',
  sqlite,
  postgres,
};
