/**
 * Selector and set-matching helpers shared by the datastore implementations, the entry
 * cache and the tests: canonical ordering, SPIRE's `type:value` text form, and the four
 * match behaviours (SPIRE's `MatchBehavior`, see {@link MatchBehavior}) on plain sets.
 * Pure: no I/O.
 */
import { invalidArgument } from './errors.js';
import type { MatchBehavior, Selector } from './types.js';

/** Orders selectors by type, then value (code-unit order, as the databases' binary collation). */
export function compareSelectors(a: Selector, b: Selector): number {
  if (a.type !== b.type) return a.type < b.type ? -1 : 1;
  if (a.value !== b.value) return a.value < b.value ? -1 : 1;
  return 0;
}

/** The selectors sorted, with duplicates dropped, as plain `{ type, value }` objects. */
export function canonicalSelectors(selectors: readonly Selector[]): Selector[] {
  const sorted = selectors.map((s) => ({ type: s.type, value: s.value })).sort(compareSelectors);
  return sorted.filter((s, i) => i === 0 || compareSelectors(s, sorted[i - 1]!) !== 0);
}

/** The text form `type:value` (what `-selector` takes on SPIRE's CLI). */
export function formatSelector(s: Selector): string {
  return `${s.type}:${s.value}`;
}

/**
 * Parses `type:value` (the value may contain further colons, as `unix:uid:1000` has type
 * `unix` and value `uid:1000`).
 *
 * @throws SpireEdgeError `ERR_DATASTORE_INVALID_ARGUMENT` when the type or value is empty.
 */
export function parseSelector(text: string): Selector {
  const i = text.indexOf(':');
  if (i <= 0 || i === text.length - 1) {
    throw invalidArgument(`selector ${JSON.stringify(text)} must have the form type:value`);
  }
  return { type: text.slice(0, i), value: text.slice(i + 1) };
}

/** A string key identifying a selector in a set (`type` and `value` joined by NUL). */
export function selectorSetKey(s: Selector): string {
  return `${s.type}\u0000${s.value}`;
}

/**
 * Whether a record's set `have` matches a filter's set `want` under `match` (both as sets of
 * keys): exact R = F; subset R ⊆ F with R non-empty; superset R ⊇ F; any R ∩ F ≠ ∅.
 */
export function matchesSet(
  have: ReadonlySet<string>,
  want: ReadonlySet<string>,
  match: MatchBehavior,
): boolean {
  switch (match) {
    case 'exact':
      return have.size === want.size && [...have].every((k) => want.has(k));
    case 'subset':
      return have.size > 0 && [...have].every((k) => want.has(k));
    case 'superset':
      return [...want].every((k) => have.has(k));
    case 'any':
      return [...want].some((k) => have.has(k));
  }
}

/** {@link matchesSet} for selector lists. */
export function matchesSelectors(
  have: readonly Selector[],
  want: readonly Selector[],
  match: MatchBehavior,
): boolean {
  return matchesSet(new Set(have.map(selectorSetKey)), new Set(want.map(selectorSetKey)), match);
}

/** The match behaviours, for validation and table-driven tests. */
export const MATCH_BEHAVIORS: readonly MatchBehavior[] = ['exact', 'subset', 'superset', 'any'];
