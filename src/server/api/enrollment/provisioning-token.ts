/**
 * One-time provisioning tokens (device enrollment, ours, not SPIRE's): their form, default
 * lifetime, and the one message every refused token gets.
 *
 * A token is 32 random bytes (256 bits) in base64url without padding: 43 characters of
 * `A-Z a-z 0-9 - _`. The server stores only its SHA-256 (datastore), bound at creation to
 * one node alias SPIFFE ID and to whether it may rebind an alias bound to another device.
 */
import type { RandomSource } from '../../../common/random.js';

/** Default token lifetime, seconds (as `spire-server token generate`). */
export const DEFAULT_PROVISIONING_TOKEN_TTL = 600;

/** Random bytes per token. */
export const PROVISIONING_TOKEN_BYTES = 32;

/** What a token looks like: base64url of {@link PROVISIONING_TOKEN_BYTES} bytes. */
export const PROVISIONING_TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/**
 * The message of every refused token, whatever the reason (unknown, already used, expired,
 * malformed): a caller learns nothing about which tokens exist.
 */
export const TOKEN_REFUSED_MESSAGE = 'provisioning token is unknown, used or expired';

/** A fresh token from `random`. */
export function newProvisioningToken(random: RandomSource): string {
  return Buffer.from(random.bytes(PROVISIONING_TOKEN_BYTES)).toString('base64url');
}

/**
 * The first 16 hex digits of a token's SHA-256 (given the stored full hash): enough to tell
 * tokens apart in listings, useless for presenting one.
 */
export function tokenFingerprint(tokenHash: string): string {
  return tokenHash.slice(0, 16);
}
