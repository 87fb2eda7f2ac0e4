/**
 * Registration entries as SPIRE's `spire-server entry` commands print them (SPIRE v1.15
 * `printEntry`): one `Label : value` line per field with labels padded to 24 columns, optional
 * fields only when set, a blank line after each entry; and SPIRE's sort order for `entry show`.
 */
import { compareBytes as compareStrings } from '../../../common/cli/flag-set.js';
import { formatGoTime } from '../../../common/cli/go-time.js';
import type { types } from '../../../protocol/index.js';
import { protoToIdString } from '../util.js';

/** Labels padded as SPIRE pads them. */
function line(label: string, value: string): string {
  return `${label.padEnd(24)}: ${value}\n`;
}

/** The text SPIRE's `printEntry` writes for one entry, ending with a blank line. */
export function formatEntry(e: types.Entry): string {
  let out = '';
  out += line('Entry ID', e.id === '' ? '(none)' : e.id);
  out += line('SPIFFE ID', protoToIdString(e.spiffeId));
  out += line('Parent ID', protoToIdString(e.parentId));
  out += line('Revision', String(e.revisionNumber));
  if (e.downstream) out += line('Downstream', 'true');
  out += line('X509-SVID TTL', e.x509SvidTtl === 0 ? 'default' : String(e.x509SvidTtl));
  out += line('JWT-SVID TTL', e.jwtSvidTtl === 0 ? 'default' : String(e.jwtSvidTtl));
  if (e.expiresAt !== 0n) out += line('Expiration time', formatGoTime(e.expiresAt));
  for (const s of e.selectors) out += line('Selector', `${s.type}:${s.value}`);
  for (const td of e.federatesWith) out += line('FederatesWith', td);
  for (const dns of e.dnsNames) out += line('DNS name', dns);
  if (e.admin) out += line('Admin', 'true');
  if (e.storeSvid) out += line('StoreSvid', 'true');
  if (e.hint !== '') out += line('Hint', e.hint);
  const attrs = e.additionalAttributes;
  if (attrs !== undefined) {
    if (attrs.disableX509SvidPrefetch) out += line('DisableX509SvidPrefetch', 'true');
    if (attrs.jwtSvidIncludeJti) out += line('JwtSvidIncludeJti', 'true');
  }
  return `${out}\n`;
}

function compareSelector(a: types.Selector, b: types.Selector): number {
  return compareStrings(a.type, b.type) || compareStrings(a.value, b.value);
}

function compareEntries(a: types.Entry, b: types.Entry): number {
  const byText =
    compareStrings(a.spiffeId?.trustDomain ?? '', b.spiffeId?.trustDomain ?? '') ||
    compareStrings(a.spiffeId?.path ?? '', b.spiffeId?.path ?? '') ||
    compareStrings(a.parentId?.trustDomain ?? '', b.parentId?.trustDomain ?? '') ||
    compareStrings(a.parentId?.path ?? '', b.parentId?.path ?? '');
  if (byText !== 0) return byText;
  if (a.x509SvidTtl !== b.x509SvidTtl) return a.x509SvidTtl < b.x509SvidTtl ? -1 : 1;
  if (a.jwtSvidTtl !== b.jwtSvidTtl) return a.jwtSvidTtl < b.jwtSvidTtl ? -1 : 1;
  if (a.selectors.length !== b.selectors.length) {
    return a.selectors.length < b.selectors.length ? -1 : 1;
  }
  for (let i = 0; i < a.selectors.length; i++) {
    const c = compareSelector(a.selectors[i]!, b.selectors[i]!);
    if (c !== 0) return c;
  }
  return 0;
}

/**
 * SPIRE's `SortTypesEntries`, in place: each entry's selectors by type then value, then the
 * entries by SPIFFE ID, parent ID, X509-SVID TTL, JWT-SVID TTL and selectors.
 */
export function sortEntries(entries: types.Entry[]): void {
  for (const e of entries) e.selectors.sort(compareSelector);
  entries.sort(compareEntries);
}
