/**
 * Parsers for `/etc/passwd` and `/etc/group` (passwd(5), group(5)): the ID → name maps the
 * `unix` workload attestor uses for `unix:user`, `unix:group` and
 * `unix:supplementary_group`. Pure: takes the files' text.
 *
 * Only the files are read — no NSS (LDAP, sssd, systemd-userdb): a user that exists only in
 * a directory service gets `unix:uid` but no `unix:user` selector. SPIRE's pure-Go lookup
 * reads the same files; its cgo build also asks NSS.
 */

/** ID → name, first entry wins (as getpwuid/getgrgid return the first match). */
export type NameMap = ReadonlyMap<number, string>;

const ID_RE = /^(0|[1-9][0-9]{0,9})$/;

/**
 * Parses `name:password:ID:…` lines into ID → name. Lines that are empty, comments (`#`),
 * NIS compat entries (`+…`, `-…`), or have an empty name or a non-numeric / out-of-range
 * ID are skipped; the first line for an ID wins.
 *
 * @param minFields the fields a valid line has at least (7 for passwd, 4 for group).
 */
function parseColonFile(text: string, minFields: number): Map<number, string> {
  if (typeof text !== 'string') throw new TypeError('text must be a string');
  const out = new Map<number, string>();
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) {
      continue;
    }
    const fields = line.split(':');
    if (fields.length < minFields) continue;
    const name = fields[0]!;
    const id = fields[2]!;
    if (name === '' || !ID_RE.test(id)) continue;
    const n = Number(id);
    if (n > 0xfffffffe || out.has(n)) continue;
    out.set(n, name);
  }
  return out;
}

/** uid → user name from `/etc/passwd` text (`name:x:uid:gid:gecos:home:shell`). */
export function parsePasswd(text: string): NameMap {
  return parseColonFile(text, 7);
}

/** gid → group name from `/etc/group` text (`name:x:gid:members`). */
export function parseGroup(text: string): NameMap {
  return parseColonFile(text, 4);
}
