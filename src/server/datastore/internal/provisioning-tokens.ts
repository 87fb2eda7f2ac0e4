/**
 * Validation and row mapping of provisioning tokens (device enrollment), for the shared SQL
 * datastore. The SQL itself lives in sql-store.ts with the other statements.
 */
import { createHash } from 'node:crypto';
import { invalidArgument } from '../errors.js';
import type { NewProvisioningToken, ProvisioningTokenRecord } from '../types.js';
import { checkBool, checkInt, checkSpiffeId, checkText } from '../validate.js';
import type { Row } from './driver.js';

/** Longest token accepted (ours are 43 characters). */
const MAX_TOKEN_LENGTH = 255;

/** Lower-case hex SHA-256 of a provisioning token's UTF-8 bytes. */
export function hashProvisioningToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A token given to consume. */
export function checkProvisioningToken(v: unknown): string {
  return checkText(v, 'provisioning token', { max: MAX_TOKEN_LENGTH });
}

/** Input of `createProvisioningToken`, checked. */
export function checkNewProvisioningToken(v: unknown): Required<NewProvisioningToken> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw invalidArgument('provisioning token must be an object');
  }
  const o = v as Record<string, unknown>;
  return {
    token: checkProvisioningToken(o.token),
    spiffeId: checkSpiffeId(o.spiffeId, 'provisioning token spiffeId'),
    replace: o.replace === undefined ? false : checkBool(o.replace, 'provisioning token replace'),
    expiresAt: checkInt(o.expiresAt, 'provisioning token expiresAt'),
  };
}

/** A `provisioning_tokens` row as a record. */
export function provisioningTokenFromRow(r: Row): ProvisioningTokenRecord {
  const b = r.allow_replace;
  return {
    tokenHash: String(r.token_hash),
    spiffeId: String(r.spiffe_id),
    replace: b === true || b === 1 || b === '1' || b === 't',
    expiresAt: Number(r.expires_at),
    createdAt: Number(r.created_at),
  };
}
