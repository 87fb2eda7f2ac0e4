/**
 * Registration of an enrolled device through the server's admin API (on the server host,
 * over the admin Unix socket): creates the node alias entry
 * `parent spiffe://<td>/spire/server, spiffeID <alias>, selector tpm:pub_hash:<hash>`.
 *
 * Idempotent: an alias entry already bound to the same `pub_hash` is success
 * (`already-registered`). An alias entry bound to another device (other `tpm:pub_hash`
 * selectors, or none) is refused with `ERR_ENROLL_ALIAS_CONFLICT` unless `replace` is set,
 * in which case its `tpm:pub_hash` selectors are replaced by this device's (other selectors
 * are kept).
 *
 * Trusts: the admin API's answers; access control is the socket's (the server's).
 */
import { create } from '@bufbuild/protobuf';
import type { Client } from '@connectrpc/connect';
import { SpireEdgeError } from '../common/errors.js';
import { type entryv1, types } from '../protocol/index.js';
import { parseSpiffeId } from '../spiffe/id.js';
import { SERVER_ID_PATH, TPM_SELECTOR_TYPE } from './record.js';

/** Error codes of registration. */
export type EnrollErrorCode = 'ERR_ENROLL_ALIAS_CONFLICT' | 'ERR_ENROLL_REGISTER_FAILED';

/** The entry API calls registration needs (a connect client of `spire.api.server.entry.v1.Entry`). */
export type EntryClient = Pick<
  Client<typeof entryv1.Entry>,
  'listEntries' | 'batchCreateEntry' | 'batchUpdateEntry'
>;

/** What {@link registerDevice} did. */
export type RegisterOutcome = 'created' | 'already-registered' | 'replaced';

/** The result of {@link registerDevice}. */
export interface RegisterResult {
  readonly outcome: RegisterOutcome;
  readonly entryId: string;
  /** The alias's previous `tpm:pub_hash` values (for `replaced`). */
  readonly previousPubHashes: readonly string[];
  /**
   * Other node alias IDs already bound to this same `pub_hash` (the device then holds all of
   * them): usually a mistake worth showing the operator, never changed here.
   */
  readonly otherAliases: readonly string[];
}

/** Options of {@link registerDevice}. */
export interface RegisterOptions {
  readonly client: EntryClient;
  /** The alias SPIFFE ID (`spiffe://example.org/gw/1`). */
  readonly spiffeId: string;
  /** The device's `pub_hash` (64 lower-case hex digits). */
  readonly pubHash: string;
  /** Rebind an alias that is bound to another device. */
  readonly replace?: boolean;
}

const PUB_HASH_PREFIX = 'pub_hash:';

function failed(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_ENROLL_REGISTER_FAILED',
    message,
    cause === undefined ? {} : { cause },
  );
}

function pubHashesOf(e: types.Entry): string[] {
  return e.selectors
    .filter((s) => s.type === TPM_SELECTOR_TYPE && s.value.startsWith(PUB_HASH_PREFIX))
    .map((s) => s.value.slice(PUB_HASH_PREFIX.length));
}

/**
 * Creates (or confirms, or with `replace` rebinds) the node alias entry; see the module
 * comment.
 *
 * @throws TypeError for a malformed `spiffeId` or `pubHash`.
 * @throws SpireEdgeError `ERR_ENROLL_ALIAS_CONFLICT` (alias bound to another device, or more
 *   than one alias entry), `ERR_ENROLL_REGISTER_FAILED` (the API refused or failed; the
 *   status as `cause`).
 */
export async function registerDevice(o: RegisterOptions): Promise<RegisterResult> {
  let alias: ReturnType<typeof parseSpiffeId>;
  try {
    alias = parseSpiffeId(o.spiffeId);
  } catch (err) {
    throw new TypeError(`spiffeID ${o.spiffeId}: ${(err as Error).message}`, { cause: err });
  }
  if (!/^[0-9a-f]{64}$/.test(o.pubHash)) throw new TypeError('pubHash must be 64 hex digits');
  const td = alias.trustDomain.name;
  const spiffeId = create(types.SPIFFEIDSchema, { trustDomain: td, path: alias.path });
  const parentId = create(types.SPIFFEIDSchema, { trustDomain: td, path: SERVER_ID_PATH });
  const selector = create(types.SelectorSchema, {
    type: TPM_SELECTOR_TYPE,
    value: `${PUB_HASH_PREFIX}${o.pubHash}`,
  });

  /** Alias IDs of other node entries carrying this pub_hash (best effort: [] on failure). */
  const others = async (entryId: string): Promise<string[]> => {
    try {
      const resp = await o.client.listEntries({
        pageSize: 500,
        filter: {
          byParentId: parentId,
          bySelectors: create(types.SelectorMatchSchema, {
            selectors: [selector],
            match: types.SelectorMatch_MatchBehavior.MATCH_SUPERSET,
          }),
        },
      });
      return resp.entries
        .filter((e) => e.id !== entryId && pubHashesOf(e).includes(o.pubHash))
        .map((e) => `spiffe://${e.spiffeId?.trustDomain ?? ''}${e.spiffeId?.path ?? ''}`)
        .sort();
    } catch {
      return [];
    }
  };

  const existing: types.Entry[] = [];
  let pageToken = '';
  try {
    do {
      const resp = await o.client.listEntries({
        pageSize: 500,
        pageToken,
        filter: { bySpiffeId: spiffeId, byParentId: parentId },
      });
      existing.push(...resp.entries);
      pageToken = resp.nextPageToken;
    } while (pageToken !== '');
  } catch (err) {
    throw failed(`could not list entries for ${o.spiffeId}: ${(err as Error).message}`, err);
  }

  if (existing.length === 0) {
    const entry = create(types.EntrySchema, { parentId, spiffeId, selectors: [selector] });
    const resp = await call(() => o.client.batchCreateEntry({ entries: [entry] }), 'create');
    const r = resp.results[0];
    if (r === undefined || (r.status?.code ?? 0) !== 0) {
      throw failed(`could not create the alias entry: ${r?.status?.message ?? 'no result'}`);
    }
    const entryId = r.entry?.id ?? '';
    return {
      outcome: 'created',
      entryId,
      previousPubHashes: [],
      otherAliases: await others(entryId),
    };
  }

  const same = existing.find((e) => pubHashesOf(e).includes(o.pubHash));
  if (same !== undefined) {
    return {
      outcome: 'already-registered',
      entryId: same.id,
      previousPubHashes: [o.pubHash],
      otherAliases: await others(same.id),
    };
  }
  if (existing.length > 1) {
    throw new SpireEdgeError(
      'ERR_ENROLL_ALIAS_CONFLICT',
      `${o.spiffeId} has ${existing.length} node alias entries: resolve them with spire-server entry show/delete first`,
    );
  }
  const entry = existing[0]!;
  const previous = pubHashesOf(entry);
  if (o.replace !== true) {
    const bound =
      previous.length > 0 ? `pub_hash ${previous.join(', ')}` : 'selectors without a pub_hash';
    throw new SpireEdgeError(
      'ERR_ENROLL_ALIAS_CONFLICT',
      `${o.spiffeId} is already bound to another device (${bound}, entry ${entry.id}): use -replace to rebind it`,
      { details: { entryId: entry.id, previousPubHashes: previous } },
    );
  }
  const selectors = [
    ...entry.selectors.filter(
      (s) => !(s.type === TPM_SELECTOR_TYPE && s.value.startsWith(PUB_HASH_PREFIX)),
    ),
    selector,
  ];
  const update = create(types.EntrySchema, { id: entry.id, selectors });
  const resp = await call(
    () =>
      o.client.batchUpdateEntry({
        entries: [update],
        inputMask: create(types.EntryMaskSchema, { selectors: true }),
      }),
    'update',
  );
  const r = resp.results[0];
  if (r === undefined || (r.status?.code ?? 0) !== 0) {
    throw failed(`could not update the alias entry: ${r?.status?.message ?? 'no result'}`);
  }
  return {
    outcome: 'replaced',
    entryId: entry.id,
    previousPubHashes: previous,
    otherAliases: await others(entry.id),
  };
}

async function call<T>(fn: () => Promise<T>, verb: string): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw failed(`could not ${verb} the alias entry: ${(err as Error).message}`, err);
  }
}
