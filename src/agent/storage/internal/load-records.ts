/**
 * Loading an agent store: every LevelDB row decoded and checked (layout version, trust domain,
 * key ↔ record consistency), secrets collected for unsealing, LevelDB open errors classified.
 * Rows are checked against the layout the store *has* (a v1 store may not hold `device:*`
 * keys); migrating it to the current layout is the caller's next step (migrate.ts).
 */
import type { ClassicLevel } from 'classic-level';
import { describeError, type SpireEdgeError } from '../../../common/errors.js';
import { decodeValue } from '../codec.js';
import {
  DEVICE_RECORD_MAX_BYTES,
  isMetaKey,
  isSpiffeIdLike,
  KEY_RECORD_COUNT,
  KEY_STORE_INFO,
  KEY_VERSION,
  keys,
  kindOfKey,
  LAYOUT_VERSION,
  normalizeAudience,
  OLDEST_LAYOUT_VERSION,
  PREFIX_DEVICE,
  PREFIX_JWT,
  RecordKind,
  type StoredSecret,
  type StoreInfoRecord,
} from '../layout.js';
import type { AgentIdentityRecord } from '../records.js';
import { storeError } from '../store-errors.js';
import type { Tables } from './tables.js';

const textDecoder = new TextDecoder('utf-8', { fatal: true });

function corrupt(message: string, cause?: unknown, key?: string): SpireEdgeError {
  return storeError(
    'ERR_AGENT_STORE_CORRUPT',
    message,
    cause,
    key === undefined ? undefined : { key },
  );
}

function checkSpiffeId(id: string, field: string, key: string): void {
  if (!isSpiffeIdLike(id)) {
    throw corrupt(
      `record ${JSON.stringify(key)} is corrupt: ${field} is not a SPIFFE ID`,
      undefined,
      key,
    );
  }
}

/** What {@link loadRecords} found. */
export interface Loaded {
  /** The store's layout version as found ({@link OLDEST_LAYOUT_VERSION}..LAYOUT_VERSION). */
  readonly version: number;
  readonly info: StoreInfoRecord;
  /** How many data records (not `meta:*`) the store holds. */
  readonly count: number;
  readonly tables: Tables;
  /** Secrets to unseal (or reseal): where they are and how to put them back. */
  readonly secrets: Array<{
    key: string;
    secret: StoredSecret;
    apply: (plain: Uint8Array) => void;
  }>;
}

function parseVersion(bytes: Uint8Array): number {
  const text = Buffer.from(bytes).toString('latin1');
  if (!/^[1-9][0-9]{0,8}$/.test(text)) {
    throw corrupt(
      `record "${KEY_VERSION}" is corrupt: ${JSON.stringify(text.slice(0, 20))} is not a layout version`,
      undefined,
      KEY_VERSION,
    );
  }
  return Number(text);
}

/** Every row of the database, in key order. */
export async function readAll(
  db: ClassicLevel<string, Uint8Array>,
): Promise<Array<[string, Uint8Array]>> {
  try {
    return await db.iterator().all();
  } catch (err) {
    throw corrupt(`the agent store could not be read: ${describeError(err)}`, err);
  }
}

/**
 * Decodes and checks every row against `trustDomain`.
 *
 * @throws SpireEdgeError `ERR_AGENT_STORE_FOREIGN`, `ERR_AGENT_STORE_VERSION`, `ERR_AGENT_STORE_CORRUPT`.
 */
export function loadRecords(
  rows: ReadonlyArray<readonly [string, Uint8Array]>,
  trustDomain: string,
): Loaded {
  const tables: Tables = {
    agent: undefined,
    bundle: undefined,
    federatedBundles: new Map(),
    entries: new Map(),
    sync: undefined,
    x509Svids: new Map(),
    jwtSvids: new Map(),
    devices: new Map(),
  };
  if (rows.length === 0) {
    // A store is created with its meta records in place (store-dir.ts), so an empty one has
    // lost them.
    throw corrupt('the agent store is empty: its meta records are missing');
  }
  const versionRow = rows.find(([k]) => k === KEY_VERSION);
  if (versionRow === undefined) {
    throw storeError(
      'ERR_AGENT_STORE_FOREIGN',
      `the LevelDB database holds ${String(rows.length)} records but no "${KEY_VERSION}": it is not an agent store`,
    );
  }
  const version = parseVersion(versionRow[1]);
  if (version > LAYOUT_VERSION) {
    throw storeError(
      'ERR_AGENT_STORE_VERSION',
      `the agent store has layout version ${String(version)}, newer than this agent knows (${String(LAYOUT_VERSION)}): it was written by a newer spire-edge agent`,
      undefined,
      { version, known: LAYOUT_VERSION },
    );
  }
  if (version < OLDEST_LAYOUT_VERSION) {
    throw corrupt(
      `record "${KEY_VERSION}" is corrupt: layout version ${String(version)} never existed`,
      undefined,
      KEY_VERSION,
    );
  }
  const infoRow = rows.find(([k]) => k === KEY_STORE_INFO);
  if (infoRow === undefined)
    throw corrupt(`the agent store has no "${KEY_STORE_INFO}" record`, undefined, KEY_STORE_INFO);
  const info = decodeValue(KEY_STORE_INFO, infoRow[1], RecordKind.storeInfo);
  if (info.kind !== RecordKind.storeInfo) throw corrupt('unreachable');
  if (info.record.trustDomain !== trustDomain) {
    throw storeError(
      'ERR_AGENT_STORE_FOREIGN',
      `the agent store belongs to trust domain ${JSON.stringify(info.record.trustDomain)}, not ${JSON.stringify(trustDomain)}`,
      undefined,
      { storeTrustDomain: info.record.trustDomain, trustDomain },
    );
  }
  const countRow = rows.find(([k]) => k === KEY_RECORD_COUNT);
  if (countRow === undefined) {
    throw corrupt(
      `the agent store has no "${KEY_RECORD_COUNT}" record`,
      undefined,
      KEY_RECORD_COUNT,
    );
  }
  const count = decodeValue(KEY_RECORD_COUNT, countRow[1], RecordKind.recordCount);
  if (count.kind !== RecordKind.recordCount) throw corrupt('unreachable');
  const dataRows = rows.filter(([k]) => !isMetaKey(k)).length;
  const loaded: Loaded = { version, info: info.record, count: dataRows, tables, secrets: [] };

  for (const [key, bytes] of rows) {
    if (key === KEY_VERSION || key === KEY_STORE_INFO || key === KEY_RECORD_COUNT) continue;
    // Layout 1 had no device records: one in a v1 store was not written by us.
    const kind = version < 2 && key.startsWith(PREFIX_DEVICE) ? undefined : kindOfKey(key);
    if (kind === undefined)
      throw corrupt(
        `the agent store holds an unknown key ${JSON.stringify(key.slice(0, 80))}`,
        undefined,
        key,
      );
    const value = decodeValue(key, bytes, kind);
    const bad = (why: string) =>
      corrupt(`record ${JSON.stringify(key)} is corrupt: ${why}`, undefined, key);
    switch (value.kind) {
      case RecordKind.agent: {
        const { privateKey, ...rest } = value.record;
        checkSpiffeId(rest.spiffeId, 'spiffeId', key);
        const agent: AgentIdentityRecord = { ...rest };
        tables.agent = Object.freeze(agent);
        if (privateKey !== undefined) {
          loaded.secrets.push({
            key,
            secret: privateKey,
            apply: (plain) => {
              tables.agent = Object.freeze({ ...agent, privateKey: plain });
            },
          });
        }
        break;
      }
      case RecordKind.bundle:
        if (value.record.trustDomain !== trustDomain) {
          throw bad(`holds the bundle of ${JSON.stringify(value.record.trustDomain)}`);
        }
        tables.bundle = Object.freeze(value.record);
        break;
      case RecordKind.federatedBundle:
        if (
          key !== keys.federatedBundle(value.record.trustDomain) ||
          value.record.trustDomain === trustDomain
        ) {
          throw bad(`holds the bundle of ${JSON.stringify(value.record.trustDomain)}`);
        }
        tables.federatedBundles.set(value.record.trustDomain, Object.freeze(value.record));
        break;
      case RecordKind.entry:
        if (key !== keys.entry(value.record.id))
          throw bad(`holds entry ${JSON.stringify(value.record.id)}`);
        checkSpiffeId(value.record.spiffeId, 'spiffeId', key);
        checkSpiffeId(value.record.parentId, 'parentId', key);
        tables.entries.set(value.record.id, Object.freeze(value.record));
        break;
      case RecordKind.sync:
        tables.sync = Object.freeze(value.record);
        break;
      case RecordKind.x509Svid: {
        const { privateKey, ...rest } = value.record;
        if (key !== keys.x509Svid(rest.entryId))
          throw bad(`holds the SVID of entry ${JSON.stringify(rest.entryId)}`);
        if (rest.certChain.length === 0) throw bad('certChain is empty');
        checkSpiffeId(rest.spiffeId, 'spiffeId', key);
        loaded.secrets.push({
          key,
          secret: privateKey,
          apply: (plain) => {
            tables.x509Svids.set(rest.entryId, Object.freeze({ ...rest, privateKey: plain }));
          },
        });
        break;
      }
      case RecordKind.jwtSvid: {
        const { token, ...rest } = value.record;
        const normalized = normalizeAudience(rest.audience);
        if (
          normalized.length !== rest.audience.length ||
          normalized.some((a, i) => a !== rest.audience[i]) ||
          key !== keys.jwtSvid(rest.spiffeId, rest.audience)
        ) {
          throw bad('its key does not match its SPIFFE ID and audience');
        }
        checkSpiffeId(rest.spiffeId, 'spiffeId', key);
        loaded.secrets.push({
          key,
          secret: token,
          apply: (plain) => {
            let text: string;
            try {
              text = textDecoder.decode(plain);
            } catch (err) {
              throw corrupt(
                `record ${JSON.stringify(key)} is corrupt: its token is not UTF-8`,
                err,
                key,
              );
            }
            tables.jwtSvids.set(
              key.slice(PREFIX_JWT.length),
              Object.freeze({ ...rest, audience: Object.freeze(rest.audience), token: text }),
            );
          },
        });
        break;
      }
      case RecordKind.device:
        if (value.record.bytes.length > DEVICE_RECORD_MAX_BYTES) {
          throw bad(`is larger than ${String(DEVICE_RECORD_MAX_BYTES)} bytes`);
        }
        tables.devices.set(key.slice(PREFIX_DEVICE.length), value.record.bytes);
        break;
      case RecordKind.storeInfo:
      case RecordKind.recordCount:
        throw bad('a meta record under a data key');
    }
  }
  // Last, so that a damaged record is reported by its key first.
  if (count.record.count !== dataRows) {
    throw corrupt(
      `the agent store should hold ${String(count.record.count)} records and holds ${String(dataRows)}: records were lost or added behind its back`,
      undefined,
      KEY_RECORD_COUNT,
    );
  }
  return loaded;
}

/** Maps a LevelDB open failure to the store's codes (by classic-level's `code`, never the message). */
export function classifyOpenError(err: unknown, location: string): SpireEdgeError {
  const cause = (err as { cause?: { code?: unknown } } | undefined)?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : (err as { code?: unknown }).code;
  const detail = describeError(cause ?? err);
  switch (code) {
    case 'LEVEL_LOCKED':
      return storeError(
        'ERR_AGENT_STORE_LOCKED',
        `the agent store ${location} is in use by another process (is another agent running with the same data_dir?)`,
        err,
      );
    case 'LEVEL_CORRUPTION':
      return storeError(
        'ERR_AGENT_STORE_CORRUPT',
        `the agent store ${location} is corrupt: ${detail}`,
        err,
      );
    default:
      return storeError(
        'ERR_AGENT_STORE_IO',
        `cannot open the agent store ${location}: ${detail}`,
        err,
      );
  }
}
