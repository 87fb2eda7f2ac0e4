/**
 * Selectors as workload attestors produce them: `type:value`, where `type` names the
 * attestor (`unix`, `systemd`, `docker`) and `value` may itself contain colons
 * (`uid:1000`, `label:com.example.name:foo`). Same shape as the server's registration
 * entry selectors (`spire.api.types.Selector`), so `unix:uid:1000` in
 * `spire-server entry create -selector unix:uid:1000` matches `{ type: 'unix', value: 'uid:1000' }`.
 */

/** A selector: the attestor's name and a value. */
export interface Selector {
  /** The attestor that produced it (`unix`, `systemd`, `docker`); non-empty, no `:`. */
  readonly type: string;
  /** The value, possibly with `:` inside (`uid:1000`); non-empty. */
  readonly value: string;
}

/** The `type:value` text of a selector (as SPIRE prints and parses it). */
export function formatSelector(s: Selector): string {
  return `${s.type}:${s.value}`;
}

/**
 * Selectors without duplicates (same type and value), in first-seen order.
 * Attestors may report the same selector twice (a supplementary group equal to the primary
 * group); entry matching treats selectors as a set.
 */
export function uniqueSelectors(selectors: Iterable<Selector>): Selector[] {
  const seen = new Set<string>();
  const out: Selector[] = [];
  for (const s of selectors) {
    const key = formatSelector(s);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(s);
  }
  return out;
}
