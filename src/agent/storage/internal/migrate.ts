/**
 * Layout migrations: the one batch that upgrades a store of an older layout to
 * {@link LAYOUT_VERSION}. It is applied at open, after every record was loaded and checked
 * against the layout the store has, and before anything else is written — so a damaged store
 * is never migrated, and a crash leaves the old layout (intact) or the new one.
 *
 * Downgrades are not migrations: an older agent refuses a newer layout with
 * `ERR_AGENT_STORE_VERSION` (load-records.ts) and the store is quarantined.
 */
import { KEY_VERSION, LAYOUT_VERSION } from '../layout.js';

/** A LevelDB batch operation. */
export type MigrationOp =
  | { type: 'put'; key: string; value: Uint8Array }
  | { type: 'del'; key: string };

/**
 * The changes of each step, by the version it starts from. A step adds its own operations;
 * the new `meta:version` is written once, by {@link migrationBatch}.
 */
const STEPS: Readonly<Record<number, (ops: MigrationOp[]) => void>> = {
  // 1 → 2: the `device:*` key space was added. Nothing in a v1 store changes.
  1: () => {},
};

/**
 * The batch that takes a store of layout `from` to {@link LAYOUT_VERSION} (empty when it is
 * current), ending with the new `meta:version`.
 *
 * @throws TypeError when `from` is newer than this code or has no migration (loading refuses
 * those first).
 */
export function migrationBatch(from: number): MigrationOp[] {
  if (!Number.isInteger(from) || from > LAYOUT_VERSION) {
    throw new TypeError(`no migration from layout ${String(from)}`);
  }
  if (from === LAYOUT_VERSION) return [];
  const ops: MigrationOp[] = [];
  for (let v = from; v < LAYOUT_VERSION; v++) {
    const step = STEPS[v];
    if (step === undefined) throw new TypeError(`no migration from layout ${String(v)}`);
    step(ops);
  }
  ops.push({
    type: 'put',
    key: KEY_VERSION,
    value: new TextEncoder().encode(String(LAYOUT_VERSION)),
  });
  return ops;
}
