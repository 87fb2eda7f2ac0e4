/**
 * Opaque pagination tokens: the kind of list and the last key of the previous page,
 * base64url-encoded. Keyset pagination on a unique, stably ordered key gives pages with no
 * duplicates and no gaps, even while records are added or removed.
 */
import { invalidArgument } from '../errors.js';
import type { Pagination } from '../types.js';
import { checkInt } from '../validate.js';

/** Encodes the token for the page after `lastKey`. */
export function encodePageToken(kind: string, lastKey: string): string {
  return Buffer.from(`${kind}\u0000${lastKey}`, 'utf8').toString('base64url');
}

/** The validated page size and the key to continue after (undefined for the first page). */
export function decodePagination(
  p: Pagination | undefined,
  kind: string,
): { pageSize: number; after: string | undefined } | undefined {
  if (p === undefined) return undefined;
  if (typeof p !== 'object' || p === null) throw invalidArgument('pagination must be an object');
  const pageSize = checkInt(p.pageSize, 'pagination.pageSize', 1, 1_000_000);
  const token = p.pageToken;
  if (token === undefined || token === '') return { pageSize, after: undefined };
  if (typeof token !== 'string' || !/^[A-Za-z0-9_-]+$/.test(token)) {
    throw invalidArgument('could not parse pagination token');
  }
  const text = Buffer.from(token, 'base64url').toString('utf8');
  const sep = text.indexOf('\u0000');
  if (sep < 0 || text.slice(0, sep) !== kind || sep === text.length - 1) {
    throw invalidArgument('could not parse pagination token');
  }
  return { pageSize, after: text.slice(sep + 1) };
}
