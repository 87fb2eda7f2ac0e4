/**
 * The node alias rules of device registration, written once and shared by the two ways a
 * device is registered: `tpm-enroll -register` over the admin socket (register.ts) and the
 * server's enrollment service with a provisioning token (src/server/api/enrollment).
 *
 * A node alias entry is `parent spiffe://<td>/spire/server, spiffeID <alias>, selector
 * tpm:pub_hash:<hash>`. Given the alias entries that exist for one alias (same SPIFFE ID and
 * parent), {@link planAliasBinding} decides:
 *
 * | existing alias entries | result |
 * |---|---|
 * | none | `create` |
 * | one or more, one of them has this `pub_hash` | `keep` (idempotent: nothing to write) |
 * | exactly one, bound to another device (other `pub_hash`, or none) | `replace` when allowed, else `ERR_ENROLL_ALIAS_CONFLICT` |
 * | several, none with this `pub_hash` | `ERR_ENROLL_ALIAS_CONFLICT`, even when replacing is allowed |
 *
 * `replace` swaps the entry's `tpm:pub_hash` selectors for this device's and keeps its other
 * selectors and its entry ID.
 *
 * Pure: it trusts the entry list it is given to be complete for the alias; the caller must
 * read it (and write the result) without another registration of the same alias in between.
 */
import { SpireEdgeError } from '../common/errors.js';

/** The selector type of the `tpm` NodeAttestor. */
export const TPM_SELECTOR_TYPE = 'tpm';

/** The prefix of the `tpm` selector value that names the device. */
export const PUB_HASH_PREFIX = 'pub_hash:';

/** What a registration did. */
export type RegisterOutcome = 'created' | 'already-registered' | 'replaced';

/** A selector, as both the entry API and the datastore spell it. */
export interface AliasSelector {
  readonly type: string;
  readonly value: string;
}

/** An existing node entry, as the plan reads it. */
export interface AliasEntryView {
  readonly id: string;
  readonly selectors: readonly AliasSelector[];
}

/** The decision of {@link planAliasBinding}. */
export type AliasPlan =
  | {
      /** Create the alias entry with `selectors`. */
      readonly action: 'create';
      readonly selectors: AliasSelector[];
    }
  | {
      /** The alias is bound to this device already: write nothing. */
      readonly action: 'keep';
      readonly entryId: string;
    }
  | {
      /** Set the selectors of entry `entryId` to `selectors`. */
      readonly action: 'replace';
      readonly entryId: string;
      readonly previousPubHashes: string[];
      readonly selectors: AliasSelector[];
    };

/** Input of {@link planAliasBinding}. */
export interface AliasPlanInput {
  /** The alias SPIFFE ID (for messages). */
  readonly spiffeId: string;
  /** The device's `pub_hash` (64 lower-case hex digits). */
  readonly pubHash: string;
  /** Whether rebinding an alias bound to another device is allowed. */
  readonly replace: boolean;
  /** Every node entry of this alias (same SPIFFE ID, parent the server). */
  readonly existing: readonly AliasEntryView[];
  /**
   * How the caller gets permission to rebind, ending the conflict message; default
   * `use -replace to rebind it`.
   */
  readonly replaceHint?: string;
}

/** `tpm:pub_hash:<hash>`. */
export function pubHashSelector(pubHash: string): AliasSelector {
  return { type: TPM_SELECTOR_TYPE, value: `${PUB_HASH_PREFIX}${pubHash}` };
}

/** True for `tpm:pub_hash:…` selectors. */
export function isPubHashSelector(s: AliasSelector): boolean {
  return s.type === TPM_SELECTOR_TYPE && s.value.startsWith(PUB_HASH_PREFIX);
}

/** The `pub_hash` values among `selectors`, in order. */
export function pubHashesOf(selectors: readonly AliasSelector[]): string[] {
  return selectors.filter(isPubHashSelector).map((s) => s.value.slice(PUB_HASH_PREFIX.length));
}

/**
 * Decides what registering `pubHash` under the alias does; see the module comment.
 *
 * @throws TypeError when `pubHash` is not 64 lower-case hex digits.
 * @throws SpireEdgeError `ERR_ENROLL_ALIAS_CONFLICT` (alias bound to another device without
 *   `replace`, or several alias entries without this device), naming the alias, the bound
 *   `pub_hash` and the entry.
 */
export function planAliasBinding(input: AliasPlanInput): AliasPlan {
  const { spiffeId, pubHash, existing } = input;
  if (!/^[0-9a-f]{64}$/.test(pubHash)) throw new TypeError('pubHash must be 64 hex digits');
  if (existing.length === 0) return { action: 'create', selectors: [pubHashSelector(pubHash)] };
  const same = existing.find((e) => pubHashesOf(e.selectors).includes(pubHash));
  if (same !== undefined) return { action: 'keep', entryId: same.id };
  if (existing.length > 1) {
    throw new SpireEdgeError(
      'ERR_ENROLL_ALIAS_CONFLICT',
      `${spiffeId} has ${existing.length} node alias entries: resolve them with spire-server entry show/delete first`,
      { details: { entryIds: existing.map((e) => e.id) } },
    );
  }
  const entry = existing[0]!;
  const previous = pubHashesOf(entry.selectors);
  if (!input.replace) {
    const bound =
      previous.length > 0 ? `pub_hash ${previous.join(', ')}` : 'selectors without a pub_hash';
    throw new SpireEdgeError(
      'ERR_ENROLL_ALIAS_CONFLICT',
      `${spiffeId} is already bound to another device (${bound}, entry ${entry.id}): ${input.replaceHint ?? 'use -replace to rebind it'}`,
      { details: { entryId: entry.id, previousPubHashes: previous } },
    );
  }
  return {
    action: 'replace',
    entryId: entry.id,
    previousPubHashes: previous,
    selectors: [
      ...entry.selectors
        .filter((s) => !isPubHashSelector(s))
        .map((s) => ({ type: s.type, value: s.value })),
      pubHashSelector(pubHash),
    ],
  };
}

/** The outcome a plan leads to once carried out. */
export function outcomeOf(plan: AliasPlan): RegisterOutcome {
  return plan.action === 'create'
    ? 'created'
    : plan.action === 'keep'
      ? 'already-registered'
      : 'replaced';
}

/**
 * The aliases (sorted) of other node entries bound to `pubHash`, given the server's node
 * entries carrying that selector: the device then holds all of them, usually a mistake worth
 * showing the operator.
 */
export function otherAliasesOf(
  entries: ReadonlyArray<AliasEntryView & { readonly spiffeId: string }>,
  entryId: string,
  pubHash: string,
): string[] {
  return entries
    .filter((e) => e.id !== entryId && pubHashesOf(e.selectors).includes(pubHash))
    .map((e) => e.spiffeId)
    .sort();
}
