/**
 * The DataStore logic, written once over {@link SqlDriver} and shared by SQLite and
 * PostgreSQL. Every write is one transaction that also appends its change events; every
 * read is a single statement (a consistent snapshot on both databases).
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../../../common/clock.js';
import { isSpireEdgeError, SpireEdgeError } from '../../../common/errors.js';
import type { RandomSource } from '../../../common/random.js';
import { dsError, invalidArgument } from '../errors.js';
import { currentVersion } from '../migrations/index.js';
import { compareSelectors } from '../selectors.js';
import type {
  AttestedNode,
  AttestedNodeField,
  AttestedNodeFields,
  AttestedNodeUpdate,
  Bundle,
  BundleDeleteMode,
  BundleField,
  BundleInput,
  BundleUpdate,
  ChangeEvent,
  DataStore,
  EntryField,
  EntryUpdate,
  JoinTokenRecord,
  JwtAuthority,
  ListAttestedNodesFilter,
  ListAttestedNodesRequest,
  ListEntriesFilter,
  ListEntriesRequest,
  ListEventsRequest,
  MatchBehavior,
  NewAttestedNode,
  NewProvisioningToken,
  NewRegistrationEntry,
  Page,
  Pagination,
  ProvisioningTokenRecord,
  RegistrationEntry,
  Selector,
} from '../types.js';
import {
  type BundleContent,
  bytesEqual,
  checkBlob,
  checkBool,
  checkBundleInput,
  checkBundleTrustDomain,
  checkEntryField,
  checkEntryId,
  checkEntryRules,
  checkFederatesWithFilter,
  checkInt,
  checkJoinToken,
  checkJournalKey,
  checkNewEntry,
  checkNewJoinToken,
  checkNewNode,
  checkNodeField,
  checkSelectorFilter,
  checkSelectors,
  checkSpiffeId,
  checkText,
  checkUpdateShape,
  ENTRY_FIELDS,
  type EntryValues,
  entryFieldZero,
  MAX_HINT_LENGTH,
  maskedFields,
  NODE_FIELDS,
  nodeFieldZero,
} from '../validate.js';
import { decodeBundleContent, encodeBundleContent, toBundle } from './bundle-codec.js';
import type { Row, SqlDriver, SqlTx } from './driver.js';
import { decodePagination, encodePageToken } from './page-token.js';
import {
  checkNewProvisioningToken,
  checkProvisioningToken,
  hashProvisioningToken,
  provisioningTokenFromRow,
} from './provisioning-tokens.js';

/** Rows per multi-row INSERT / IN list (well under both databases' parameter limits). */
const CHUNK = 200;

const BUNDLE_FIELDS: readonly BundleField[] = [
  'x509Authorities',
  'jwtAuthorities',
  'refreshHint',
  'sequenceNumber',
];

/** Change events collected during a write transaction, inserted just before commit. */
class EventQueue {
  readonly entries: string[] = [];
  readonly nodes: string[] = [];
}

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
const bool = (v: unknown): boolean => v === true || v === 1 || v === '1' || v === 't';

function chunks<T>(list: readonly T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

const marks = (n: number): string => Array.from({ length: n }, () => '?').join(', ');

function pairsFromJson(text: unknown): Selector[] {
  const list = JSON.parse(String(text ?? '[]')) as Array<[string, string]>;
  return list.map(([type, value]) => ({ type, value })).sort(compareSelectors);
}

function listFromJson(text: unknown): string[] {
  return (JSON.parse(String(text ?? '[]')) as string[]).sort();
}

/** SHA-256 over SPIFFE ID, parent ID and canonical selector set: "similar entry" identity. */
function similarityKey(spiffeId: string, parentId: string, selectors: readonly Selector[]): string {
  const canon = JSON.stringify([spiffeId, parentId, selectors.map((s) => [s.type, s.value])]);
  return createHash('sha256').update(canon).digest('hex');
}

/** Lower-case hex SHA-256 of a join token. */
export function hashJoinToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * SQL for a set-valued filter: `outer` names the record key, `table` the child table keyed by
 * `keyCol`, `cols` the columns of one element. Tuples are de-duplicated by the caller, and
 * child rows are unique per record, so COUNT(*) = n means "has all n".
 */
function setMatchSql(
  table: string,
  keyCol: string,
  outer: string,
  cols: readonly string[],
  tuples: readonly (readonly string[])[],
  match: MatchBehavior,
): { sql: string; params: string[] } {
  const one = `(${cols.map((c) => `x.${c} = ?`).join(' AND ')})`;
  const anyOf = tuples.map(() => one).join(' OR ');
  const flat = tuples.flat();
  const hasAny = `${outer} IN (SELECT x.${keyCol} FROM ${table} x WHERE ${anyOf})`;
  const hasAll = `${outer} IN (SELECT x.${keyCol} FROM ${table} x WHERE ${anyOf} GROUP BY x.${keyCol} HAVING COUNT(*) = ${tuples.length})`;
  const noOthers = `NOT EXISTS (SELECT 1 FROM ${table} x WHERE x.${keyCol} = ${outer} AND NOT (${anyOf}))`;
  switch (match) {
    case 'any':
      return { sql: hasAny, params: flat };
    case 'superset':
      return { sql: hasAll, params: flat };
    case 'subset':
      return { sql: `(${hasAny} AND ${noOthers})`, params: [...flat, ...flat] };
    case 'exact':
      return { sql: `(${hasAll} AND ${noOthers})`, params: [...flat, ...flat] };
  }
}

/** Options of {@link SqlDataStore}. */
export interface SqlDataStoreOptions {
  readonly databaseType: 'sqlite3' | 'postgres';
  readonly clock: Clock;
  readonly random: RandomSource;
}

/** The DataStore over an SQL driver. Construct through `openDataStore`. */
export class SqlDataStore implements DataStore {
  readonly databaseType: 'sqlite3' | 'postgres';
  readonly #d: SqlDriver;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  readonly #inflight = new Set<Promise<unknown>>();
  #closed = false;
  readonly #entrySelect: string;
  readonly #nodeSelect: string;

  constructor(driver: SqlDriver, options: SqlDataStoreOptions) {
    this.#d = driver;
    this.databaseType = options.databaseType;
    this.#clock = options.clock;
    this.#random = options.random;
    this.#entrySelect = `SELECT e.id, e.spiffe_id, e.parent_id, e.x509_svid_ttl, e.jwt_svid_ttl,
      e.dns_names, e.admin, e.downstream, e.store_svid, e.hint, e.entry_expiry,
      e.revision_number, e.created_at,
      (SELECT ${driver.jsonPairs('s.type', 's.value')} FROM entry_selectors s WHERE s.entry_id = e.id) AS sel,
      (SELECT ${driver.jsonList('f.trust_domain')} FROM entry_federates_with f WHERE f.entry_id = e.id) AS fed
      FROM registered_entries e`;
    this.#nodeSelect = `SELECT n.spiffe_id, n.attestation_data_type, n.cert_serial_number,
      n.cert_not_after, n.new_cert_serial_number, n.new_cert_not_after, n.can_reattest,
      n.banned, n.evidence, n.created_at, n.updated_at,
      (SELECT ${driver.jsonPairs('s.type', 's.value')} FROM node_selectors s WHERE s.spiffe_id = n.spiffe_id) AS sel
      FROM attested_nodes n`;
  }

  // ----------------------------------------------------------------------------------------
  // Plumbing

  #now(): number {
    return Math.floor(this.#clock.nowMs() / 1000);
  }

  #uuid(): string {
    const b = this.#random.bytes(16);
    b[6] = (b[6]! & 0x0f) | 0x40;
    b[8] = (b[8]! & 0x3f) | 0x80;
    const h = Buffer.from(b).toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  /** Runs an operation: refuses after close, tracks it for close, maps driver errors. */
  async #op<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw dsError('ERR_DATASTORE_INTERNAL', 'datastore is closed');
    const p = fn().catch((err: unknown) => {
      throw this.#mapError(err);
    });
    this.#inflight.add(p);
    try {
      return await p;
    } finally {
      this.#inflight.delete(p);
    }
  }

  #mapError(err: unknown): unknown {
    if (err instanceof SpireEdgeError) return err;
    const c = this.#d.classify(err);
    if (c.kind === 'unique') {
      return dsError('ERR_DATASTORE_ALREADY_EXISTS', `record already exists (${c.detail})`, {
        cause: err,
      });
    }
    if (c.kind === 'foreign-key') {
      return dsError(
        'ERR_DATASTORE_CONFLICT',
        `a referenced record changed concurrently (${c.detail})`,
        { cause: err },
      );
    }
    return dsError('ERR_DATASTORE_INTERNAL', `database operation failed: ${describe(err)}`, {
      cause: err,
    });
  }

  /** A write transaction that appends the change events it queued before committing. */
  #write<T>(fn: (tx: SqlTx, ev: EventQueue) => Promise<T>): Promise<T> {
    return this.#d.write(async (tx) => {
      const ev = new EventQueue();
      const result = await fn(tx, ev);
      const now = this.#now();
      for (const part of chunks(ev.entries)) {
        await this.#d.insertEvents(tx, 'registered_entries_events', 'entry_id', part, now);
      }
      for (const part of chunks(ev.nodes)) {
        await this.#d.insertEvents(tx, 'attested_node_events', 'spiffe_id', part, now);
      }
      return result;
    });
  }

  async #insertRows(
    tx: SqlTx,
    table: string,
    cols: readonly string[],
    rows: readonly (readonly unknown[])[],
  ): Promise<void> {
    const one = `(${marks(cols.length)})`;
    for (const part of chunks(rows)) {
      await tx.run(
        `INSERT INTO ${table} (${cols.join(', ')}) VALUES ${part.map(() => one).join(', ')}`,
        part.flat(),
      );
    }
  }

  async schemaVersion(): Promise<number> {
    return this.#op(() => this.#d.read((tx) => currentVersion(tx)));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#inflight]);
    await this.#d.close();
  }

  // ----------------------------------------------------------------------------------------
  // Entries

  #toEntry(r: Row): RegistrationEntry {
    return {
      id: String(r.id),
      spiffeId: String(r.spiffe_id),
      parentId: String(r.parent_id),
      selectors: pairsFromJson(r.sel),
      x509SvidTtl: num(r.x509_svid_ttl),
      jwtSvidTtl: num(r.jwt_svid_ttl),
      dnsNames: JSON.parse(String(r.dns_names)) as string[],
      federatesWith: listFromJson(r.fed),
      admin: bool(r.admin),
      downstream: bool(r.downstream),
      hint: String(r.hint),
      storeSvid: bool(r.store_svid),
      entryExpiry: num(r.entry_expiry),
      revisionNumber: num(r.revision_number),
      createdAt: num(r.created_at),
    };
  }

  async #fetchEntries(tx: SqlTx, ids: readonly string[]): Promise<Map<string, RegistrationEntry>> {
    const out = new Map<string, RegistrationEntry>();
    for (const part of chunks([...new Set(ids)])) {
      const rows = await tx.all(`${this.#entrySelect} WHERE e.id IN (${marks(part.length)})`, part);
      for (const r of rows) {
        const e = this.#toEntry(r);
        out.set(e.id, e);
      }
    }
    return out;
  }

  async #checkBundlesExist(tx: SqlTx, tds: readonly string[], field: string): Promise<void> {
    if (tds.length === 0) return;
    const found = new Set<string>();
    for (const part of chunks(tds)) {
      const rows = await tx.all(
        `SELECT trust_domain FROM bundles WHERE trust_domain IN (${marks(part.length)})`,
        part,
      );
      for (const r of rows) found.add(String(r.trust_domain));
    }
    const missing = tds.filter((t) => !found.has(t));
    if (missing.length > 0) {
      throw invalidArgument(`${field}: no bundle for federated trust domain ${missing[0]}`);
    }
  }

  async #insertEntry(tx: SqlTx, id: string, v: EntryValues, now: number): Promise<void> {
    await tx.run(
      `INSERT INTO registered_entries (id, spiffe_id, parent_id, similarity_key, x509_svid_ttl,
        jwt_svid_ttl, dns_names, admin, downstream, store_svid, hint, entry_expiry,
        revision_number, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
      [
        id,
        v.spiffeId,
        v.parentId,
        similarityKey(v.spiffeId, v.parentId, v.selectors),
        v.x509SvidTtl,
        v.jwtSvidTtl,
        JSON.stringify(v.dnsNames),
        v.admin,
        v.downstream,
        v.storeSvid,
        v.hint,
        v.entryExpiry,
        now,
        now,
      ],
    );
    await this.#insertRows(
      tx,
      'entry_selectors',
      ['entry_id', 'type', 'value'],
      v.selectors.map((s) => [id, s.type, s.value]),
    );
    await this.#insertRows(
      tx,
      'entry_federates_with',
      ['entry_id', 'trust_domain'],
      v.federatesWith.map((td) => [id, td]),
    );
  }

  /** Turns a unique violation on an entry into a precise ALREADY_EXISTS. */
  async #entryConflict(err: unknown, id: string, v: EntryValues): Promise<unknown> {
    if (isSpireEdgeError(err)) return err;
    const c = this.#d.classify(err);
    if (c.kind !== 'unique') return err;
    if (c.detail.includes('similar')) {
      const key = similarityKey(v.spiffeId, v.parentId, v.selectors);
      const rows = await this.#d.query(
        'SELECT id FROM registered_entries WHERE similarity_key = ?',
        [key],
      );
      const existing = rows[0] === undefined ? undefined : String(rows[0].id);
      return dsError('ERR_DATASTORE_ALREADY_EXISTS', 'similar entry already exists', {
        cause: err,
        details: existing === undefined ? {} : { existingEntryId: existing },
      });
    }
    return dsError('ERR_DATASTORE_ALREADY_EXISTS', `entry id ${id} already exists`, {
      cause: err,
      details: { existingEntryId: id },
    });
  }

  createEntry(entry: NewRegistrationEntry): Promise<RegistrationEntry> {
    return this.createEntries([entry]).then((r) => r[0]!);
  }

  createEntries(entries: readonly NewRegistrationEntry[]): Promise<RegistrationEntry[]> {
    return this.#op(async () => {
      if (!Array.isArray(entries)) throw invalidArgument('entries must be an array');
      const checked = entries.map((e, i) => {
        const { id, values } = checkNewEntry(e, i);
        return { id: id ?? this.#uuid(), values };
      });
      let current = checked[0];
      try {
        return await this.#write(async (tx, ev) => {
          const now = this.#now();
          for (const [i, c] of checked.entries()) {
            current = c;
            await this.#checkBundlesExist(
              tx,
              c.values.federatesWith,
              `entries[${i}].federatesWith`,
            );
            await this.#insertEntry(tx, c.id, c.values, now);
            ev.entries.push(c.id);
          }
          return checked.map(
            (c): RegistrationEntry => ({
              id: c.id,
              ...c.values,
              revisionNumber: 0,
              createdAt: now,
            }),
          );
        });
      } catch (err) {
        throw current === undefined
          ? err
          : await this.#entryConflict(err, current.id, current.values);
      }
    });
  }

  getEntry(id: string): Promise<RegistrationEntry | undefined> {
    return this.#op(async () => {
      checkEntryId(id);
      const rows = await this.#d.query(`${this.#entrySelect} WHERE e.id = ?`, [id]);
      return rows[0] === undefined ? undefined : this.#toEntry(rows[0]);
    });
  }

  getEntries(ids: readonly string[]): Promise<RegistrationEntry[]> {
    return this.#op(async () => {
      if (!Array.isArray(ids)) throw invalidArgument('ids must be an array');
      for (const [i, id] of ids.entries()) checkEntryId(id, `ids[${i}]`);
      const map = await this.#d.read((tx) => this.#fetchEntries(tx, ids));
      return ids.flatMap((id) => {
        const e = map.get(id);
        return e === undefined ? [] : [e];
      });
    });
  }

  #entryWhere(f: ListEntriesFilter): { where: string[]; params: unknown[] } {
    if (typeof f !== 'object' || f === null) throw invalidArgument('filter must be an object');
    const where: string[] = [];
    const params: unknown[] = [];
    if (f.bySpiffeId !== undefined) {
      where.push('e.spiffe_id = ?');
      params.push(checkSpiffeId(f.bySpiffeId, 'bySpiffeId'));
    }
    if (f.byParentId !== undefined) {
      where.push('e.parent_id = ?');
      params.push(checkSpiffeId(f.byParentId, 'byParentId'));
    }
    if (f.byHint !== undefined) {
      where.push('e.hint = ?');
      params.push(checkText(f.byHint, 'byHint', { allowEmpty: true, max: MAX_HINT_LENGTH }));
    }
    if (f.byDownstream !== undefined) {
      where.push('e.downstream = ?');
      params.push(checkBool(f.byDownstream, 'byDownstream'));
    }
    if (f.bySelectors !== undefined) {
      const s = checkSelectorFilter(f.bySelectors, 'bySelectors');
      const m = setMatchSql(
        'entry_selectors',
        'entry_id',
        'e.id',
        ['type', 'value'],
        s.selectors.map((x) => [x.type, x.value]),
        s.match,
      );
      where.push(m.sql);
      params.push(...m.params);
    }
    if (f.byFederatesWith !== undefined) {
      const s = checkFederatesWithFilter(f.byFederatesWith, 'byFederatesWith');
      const m = setMatchSql(
        'entry_federates_with',
        'entry_id',
        'e.id',
        ['trust_domain'],
        s.trustDomains.map((t) => [t]),
        s.match,
      );
      where.push(m.sql);
      params.push(...m.params);
    }
    return { where, params };
  }

  async #page<T>(
    base: string,
    keyExpr: string,
    where: string[],
    params: unknown[],
    pagination: Pagination | undefined,
    kind: string,
    map: (r: Row) => T,
    keyOf: (t: T) => string,
  ): Promise<Page<T>> {
    const p = decodePagination(pagination, kind);
    const w = [...where];
    const ps = [...params];
    if (p?.after !== undefined) {
      w.push(`${keyExpr} > ?`);
      ps.push(p.after);
    }
    let sql = `${base}${w.length > 0 ? ` WHERE ${w.join(' AND ')}` : ''} ORDER BY ${keyExpr}`;
    if (p !== undefined) {
      sql += ' LIMIT ?';
      ps.push(p.pageSize + 1);
    }
    const items = (await this.#d.query(sql, ps)).map(map);
    if (p === undefined || items.length <= p.pageSize) return { items };
    items.length = p.pageSize;
    return { items, nextPageToken: encodePageToken(kind, keyOf(items[items.length - 1]!)) };
  }

  listEntries(request: ListEntriesRequest = {}): Promise<Page<RegistrationEntry>> {
    return this.#op(async () => {
      const { where, params } = this.#entryWhere(request);
      return this.#page(
        this.#entrySelect,
        'e.id',
        where,
        params,
        request.pagination,
        'entries',
        (r) => this.#toEntry(r),
        (e) => e.id,
      );
    });
  }

  countEntries(filter: ListEntriesFilter = {}): Promise<number> {
    return this.#op(async () => {
      const { where, params } = this.#entryWhere(filter);
      const rows = await this.#d.query(
        `SELECT COUNT(*) AS n FROM registered_entries e${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''}`,
        params,
      );
      return num(rows[0]?.n ?? 0);
    });
  }

  updateEntry(update: EntryUpdate): Promise<RegistrationEntry> {
    return this.updateEntries([update]).then((r) => r[0]!);
  }

  updateEntries(updates: readonly EntryUpdate[]): Promise<RegistrationEntry[]> {
    return this.#op(async () => {
      if (!Array.isArray(updates)) throw invalidArgument('updates must be an array');
      const checked = updates.map((u, i) => {
        const field = `updates[${i}]`;
        const o = checkUpdateShape(u, field);
        const id = checkEntryId(o.id, `${field}.id`);
        const set = o.set as Record<string, unknown>;
        const fields = maskedFields<EntryField>(set, o.mask, ENTRY_FIELDS, field);
        const changes: Partial<EntryValues> = {};
        for (const k of fields) {
          (changes as Record<string, unknown>)[k] = checkEntryField(
            k,
            set[k] ?? entryFieldZero(k),
            `${field}.`,
          );
        }
        const ifRevision =
          o.ifRevision === undefined ? undefined : checkInt(o.ifRevision, `${field}.ifRevision`);
        return { id, fields, changes, ifRevision, field };
      });
      let current: { id: string; values: EntryValues } | undefined;
      try {
        return await this.#write(async (tx, ev) => {
          const now = this.#now();
          const latest = new Map<string, RegistrationEntry>();
          for (const u of checked) {
            const locked = await tx.all(
              `SELECT revision_number FROM registered_entries WHERE id = ?${this.#d.forUpdate}`,
              [u.id],
            );
            if (locked[0] === undefined) {
              throw dsError('ERR_DATASTORE_NOT_FOUND', `entry ${u.id} not found`, {
                details: { entryId: u.id },
              });
            }
            const revision = num(locked[0].revision_number);
            if (u.ifRevision !== undefined && revision !== u.ifRevision) {
              throw dsError(
                'ERR_DATASTORE_CONFLICT',
                `entry ${u.id} is at revision ${revision}, not ${u.ifRevision}`,
                { details: { entryId: u.id, revisionNumber: revision } },
              );
            }
            const old = (await this.#fetchEntries(tx, [u.id])).get(u.id)!;
            const merged: EntryValues = {
              spiffeId: old.spiffeId,
              parentId: old.parentId,
              selectors: old.selectors,
              x509SvidTtl: old.x509SvidTtl,
              jwtSvidTtl: old.jwtSvidTtl,
              dnsNames: old.dnsNames,
              federatesWith: old.federatesWith,
              admin: old.admin,
              downstream: old.downstream,
              hint: old.hint,
              storeSvid: old.storeSvid,
              entryExpiry: old.entryExpiry,
              ...u.changes,
            };
            checkEntryRules(merged, `${u.field}.`);
            current = { id: u.id, values: merged };
            await tx.run(
              `UPDATE registered_entries SET spiffe_id = ?, parent_id = ?, similarity_key = ?,
                x509_svid_ttl = ?, jwt_svid_ttl = ?, dns_names = ?, admin = ?, downstream = ?,
                store_svid = ?, hint = ?, entry_expiry = ?, revision_number = revision_number + 1,
                updated_at = ? WHERE id = ?`,
              [
                merged.spiffeId,
                merged.parentId,
                similarityKey(merged.spiffeId, merged.parentId, merged.selectors),
                merged.x509SvidTtl,
                merged.jwtSvidTtl,
                JSON.stringify(merged.dnsNames),
                merged.admin,
                merged.downstream,
                merged.storeSvid,
                merged.hint,
                merged.entryExpiry,
                now,
                u.id,
              ],
            );
            if (u.fields.includes('selectors')) {
              await tx.run('DELETE FROM entry_selectors WHERE entry_id = ?', [u.id]);
              await this.#insertRows(
                tx,
                'entry_selectors',
                ['entry_id', 'type', 'value'],
                merged.selectors.map((s) => [u.id, s.type, s.value]),
              );
            }
            if (u.fields.includes('federatesWith')) {
              await this.#checkBundlesExist(tx, merged.federatesWith, `${u.field}.federatesWith`);
              await tx.run('DELETE FROM entry_federates_with WHERE entry_id = ?', [u.id]);
              await this.#insertRows(
                tx,
                'entry_federates_with',
                ['entry_id', 'trust_domain'],
                merged.federatesWith.map((td) => [u.id, td]),
              );
            }
            ev.entries.push(u.id);
            latest.set(u.id, {
              id: u.id,
              ...merged,
              revisionNumber: revision + 1,
              createdAt: old.createdAt,
            });
          }
          return checked.map((u) => latest.get(u.id)!);
        });
      } catch (err) {
        throw current === undefined
          ? err
          : await this.#entryConflict(err, current.id, current.values);
      }
    });
  }

  deleteEntry(id: string): Promise<RegistrationEntry> {
    return this.deleteEntries([id]).then((r) => r[0]!);
  }

  deleteEntries(ids: readonly string[]): Promise<RegistrationEntry[]> {
    return this.#op(async () => {
      if (!Array.isArray(ids)) throw invalidArgument('ids must be an array');
      for (const [i, id] of ids.entries()) checkEntryId(id, `ids[${i}]`);
      const unique = [...new Set(ids)];
      return this.#write(async (tx, ev) => {
        const map = await this.#fetchEntries(tx, unique);
        const missing = unique.find((id) => !map.has(id));
        if (missing !== undefined) {
          throw dsError('ERR_DATASTORE_NOT_FOUND', `entry ${missing} not found`, {
            details: { entryId: missing },
          });
        }
        for (const part of chunks(unique)) {
          await tx.run(`DELETE FROM registered_entries WHERE id IN (${marks(part.length)})`, part);
        }
        ev.entries.push(...unique);
        return unique.map((id) => map.get(id)!);
      });
    });
  }

  pruneEntries(expiresBefore: number): Promise<number> {
    return this.#op(async () => {
      const t = checkInt(expiresBefore, 'expiresBefore');
      return this.#write(async (tx, ev) => {
        const rows = await tx.all(
          'DELETE FROM registered_entries WHERE entry_expiry > 0 AND entry_expiry < ? RETURNING id',
          [t],
        );
        ev.entries.push(...rows.map((r) => String(r.id)));
        return rows.length;
      });
    });
  }

  // ----------------------------------------------------------------------------------------
  // Events

  async #listEvents(table: string, keyCol: string, req: ListEventsRequest): Promise<ChangeEvent[]> {
    if (typeof req !== 'object' || req === null) throw invalidArgument('request must be an object');
    const after =
      req.greaterThanEventId === undefined
        ? 0
        : checkInt(req.greaterThanEventId, 'greaterThanEventId');
    const params: unknown[] = [after];
    let sql = `SELECT id, ${keyCol} AS k, created_at FROM ${table} WHERE id > ? ORDER BY id`;
    if (req.limit !== undefined) {
      sql += ' LIMIT ?';
      params.push(checkInt(req.limit, 'limit', 1));
    }
    const rows = await this.#d.query(sql, params);
    return rows.map((r) => ({
      eventId: num(r.id),
      key: String(r.k),
      createdAt: num(r.created_at),
    }));
  }

  async #latestEvent(table: string): Promise<number> {
    const rows = await this.#d.query(`SELECT MAX(id) AS m FROM ${table}`);
    const m = rows[0]?.m;
    return m === null || m === undefined ? 0 : num(m);
  }

  async #pruneEvents(table: string, olderThanSeconds: number): Promise<number> {
    const age = checkInt(olderThanSeconds, 'olderThanSeconds');
    const cutoff = this.#now() - age;
    return this.#d.write((tx) => tx.run(`DELETE FROM ${table} WHERE created_at < ?`, [cutoff]));
  }

  listEntryEvents(request: ListEventsRequest = {}): Promise<ChangeEvent[]> {
    return this.#op(() => this.#listEvents('registered_entries_events', 'entry_id', request));
  }

  getLatestEntryEventId(): Promise<number> {
    return this.#op(() => this.#latestEvent('registered_entries_events'));
  }

  pruneEntryEvents(olderThanSeconds: number): Promise<number> {
    return this.#op(() => this.#pruneEvents('registered_entries_events', olderThanSeconds));
  }

  listAttestedNodeEvents(request: ListEventsRequest = {}): Promise<ChangeEvent[]> {
    return this.#op(() => this.#listEvents('attested_node_events', 'spiffe_id', request));
  }

  getLatestAttestedNodeEventId(): Promise<number> {
    return this.#op(() => this.#latestEvent('attested_node_events'));
  }

  pruneAttestedNodeEvents(olderThanSeconds: number): Promise<number> {
    return this.#op(() => this.#pruneEvents('attested_node_events', olderThanSeconds));
  }

  // ----------------------------------------------------------------------------------------
  // Attested nodes

  #toNode(r: Row): AttestedNode {
    return {
      spiffeId: String(r.spiffe_id),
      attestationDataType: String(r.attestation_data_type),
      certSerialNumber: String(r.cert_serial_number),
      certNotAfter: num(r.cert_not_after),
      newCertSerialNumber: String(r.new_cert_serial_number),
      newCertNotAfter: num(r.new_cert_not_after),
      canReattest: bool(r.can_reattest),
      banned: bool(r.banned),
      selectors: pairsFromJson(r.sel),
      evidence: String(r.evidence),
      createdAt: num(r.created_at),
      updatedAt: num(r.updated_at),
    };
  }

  async #fetchNode(tx: SqlTx, spiffeId: string): Promise<AttestedNode | undefined> {
    const rows = await tx.all(`${this.#nodeSelect} WHERE n.spiffe_id = ?`, [spiffeId]);
    return rows[0] === undefined ? undefined : this.#toNode(rows[0]);
  }

  async #lockNode(tx: SqlTx, spiffeId: string): Promise<void> {
    const rows = await tx.all(
      `SELECT spiffe_id FROM attested_nodes WHERE spiffe_id = ?${this.#d.forUpdate}`,
      [spiffeId],
    );
    if (rows[0] === undefined) {
      throw dsError('ERR_DATASTORE_NOT_FOUND', `attested node ${spiffeId} not found`, {
        details: { spiffeId },
      });
    }
  }

  createAttestedNode(node: NewAttestedNode): Promise<AttestedNode> {
    return this.#op(async () => {
      const { spiffeId, values: v, selectors } = checkNewNode(node);
      try {
        return await this.#write(async (tx, ev) => {
          const now = this.#now();
          await tx.run(
            `INSERT INTO attested_nodes (spiffe_id, attestation_data_type, cert_serial_number,
              cert_not_after, new_cert_serial_number, new_cert_not_after, can_reattest, banned,
              evidence, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
            [
              spiffeId,
              v.attestationDataType,
              v.certSerialNumber,
              v.certNotAfter,
              v.newCertSerialNumber,
              v.newCertNotAfter,
              v.canReattest,
              v.banned,
              v.evidence,
              now,
              now,
            ],
          );
          await this.#insertRows(
            tx,
            'node_selectors',
            ['spiffe_id', 'type', 'value'],
            selectors.map((s) => [spiffeId, s.type, s.value]),
          );
          ev.nodes.push(spiffeId);
          return (await this.#fetchNode(tx, spiffeId))!;
        });
      } catch (err) {
        if (!isSpireEdgeError(err) && this.#d.classify(err).kind === 'unique') {
          throw dsError(
            'ERR_DATASTORE_ALREADY_EXISTS',
            `attested node ${spiffeId} already exists`,
            {
              cause: err,
              details: { spiffeId },
            },
          );
        }
        throw err;
      }
    });
  }

  getAttestedNode(spiffeId: string): Promise<AttestedNode | undefined> {
    return this.#op(async () => {
      const id = checkSpiffeId(spiffeId, 'spiffeId');
      const rows = await this.#d.query(`${this.#nodeSelect} WHERE n.spiffe_id = ?`, [id]);
      return rows[0] === undefined ? undefined : this.#toNode(rows[0]);
    });
  }

  #nodeWhere(f: ListAttestedNodesFilter): { where: string[]; params: unknown[] } {
    if (typeof f !== 'object' || f === null) throw invalidArgument('filter must be an object');
    const where: string[] = [];
    const params: unknown[] = [];
    if (f.byAttestationType !== undefined) {
      where.push('n.attestation_data_type = ?');
      params.push(checkText(f.byAttestationType, 'byAttestationType', { max: 255 }));
    }
    if (f.byBanned !== undefined) {
      where.push('n.banned = ?');
      params.push(checkBool(f.byBanned, 'byBanned'));
    }
    if (f.byExpiresBefore !== undefined) {
      where.push('n.cert_not_after < ?');
      params.push(checkInt(f.byExpiresBefore, 'byExpiresBefore'));
    }
    if (f.byCanReattest !== undefined) {
      where.push('n.can_reattest = ?');
      params.push(checkBool(f.byCanReattest, 'byCanReattest'));
    }
    if (f.bySelectors !== undefined) {
      const s = checkSelectorFilter(f.bySelectors, 'bySelectors');
      const m = setMatchSql(
        'node_selectors',
        'spiffe_id',
        'n.spiffe_id',
        ['type', 'value'],
        s.selectors.map((x) => [x.type, x.value]),
        s.match,
      );
      where.push(m.sql);
      params.push(...m.params);
    }
    return { where, params };
  }

  listAttestedNodes(request: ListAttestedNodesRequest = {}): Promise<Page<AttestedNode>> {
    return this.#op(async () => {
      const { where, params } = this.#nodeWhere(request);
      return this.#page(
        this.#nodeSelect,
        'n.spiffe_id',
        where,
        params,
        request.pagination,
        'nodes',
        (r) => this.#toNode(r),
        (n) => n.spiffeId,
      );
    });
  }

  countAttestedNodes(filter: ListAttestedNodesFilter = {}): Promise<number> {
    return this.#op(async () => {
      const { where, params } = this.#nodeWhere(filter);
      const rows = await this.#d.query(
        `SELECT COUNT(*) AS n FROM attested_nodes n${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''}`,
        params,
      );
      return num(rows[0]?.n ?? 0);
    });
  }

  updateAttestedNode(update: AttestedNodeUpdate): Promise<AttestedNode> {
    return this.#op(async () => {
      const o = checkUpdateShape(update, 'update');
      const spiffeId = checkSpiffeId(o.spiffeId, 'update.spiffeId');
      const set = o.set as Record<string, unknown>;
      const fields = maskedFields<AttestedNodeField>(set, o.mask, NODE_FIELDS, 'update');
      const changes: Partial<AttestedNodeFields> = {};
      for (const k of fields) {
        (changes as Record<string, unknown>)[k] = checkNodeField(
          k,
          set[k] ?? nodeFieldZero(k),
          'update.',
        );
      }
      if (changes.banned === true) {
        // SPIRE's ban: the agent's current and pending SVIDs stop matching.
        changes.certSerialNumber = '';
        changes.newCertSerialNumber = '';
      }
      const columns: Record<AttestedNodeField, string> = {
        attestationDataType: 'attestation_data_type',
        certSerialNumber: 'cert_serial_number',
        certNotAfter: 'cert_not_after',
        newCertSerialNumber: 'new_cert_serial_number',
        newCertNotAfter: 'new_cert_not_after',
        canReattest: 'can_reattest',
        banned: 'banned',
        evidence: 'evidence',
      };
      const keys = Object.keys(changes) as AttestedNodeField[];
      return this.#write(async (tx, ev) => {
        await this.#lockNode(tx, spiffeId);
        await tx.run(
          `UPDATE attested_nodes SET ${[...keys.map((k) => `${columns[k]} = ?`), 'updated_at = ?'].join(', ')} WHERE spiffe_id = ?`,
          [...keys.map((k) => changes[k]), this.#now(), spiffeId],
        );
        ev.nodes.push(spiffeId);
        return (await this.#fetchNode(tx, spiffeId))!;
      });
    });
  }

  deleteAttestedNode(spiffeId: string): Promise<AttestedNode> {
    return this.#op(async () => {
      const id = checkSpiffeId(spiffeId, 'spiffeId');
      return this.#write(async (tx, ev) => {
        await this.#lockNode(tx, id);
        const node = (await this.#fetchNode(tx, id))!;
        await tx.run('DELETE FROM attested_nodes WHERE spiffe_id = ?', [id]);
        ev.nodes.push(id);
        return node;
      });
    });
  }

  setNodeSelectors(spiffeId: string, selectors: readonly Selector[]): Promise<void> {
    return this.#op(async () => {
      const id = checkSpiffeId(spiffeId, 'spiffeId');
      const list = checkSelectors(selectors, 'selectors', { allowEmpty: true });
      await this.#write(async (tx, ev) => {
        await this.#lockNode(tx, id);
        await tx.run('DELETE FROM node_selectors WHERE spiffe_id = ?', [id]);
        await this.#insertRows(
          tx,
          'node_selectors',
          ['spiffe_id', 'type', 'value'],
          list.map((s) => [id, s.type, s.value]),
        );
        ev.nodes.push(id);
      });
    });
  }

  getNodeSelectors(spiffeId: string): Promise<Selector[]> {
    return this.#op(async () => {
      const id = checkSpiffeId(spiffeId, 'spiffeId');
      const rows = await this.#d.query(
        'SELECT type, value FROM node_selectors WHERE spiffe_id = ? ORDER BY type, value',
        [id],
      );
      return rows.map((r) => ({ type: String(r.type), value: String(r.value) }));
    });
  }

  listNodeSelectors(options: { validAt?: number } = {}): Promise<Map<string, Selector[]>> {
    return this.#op(async () => {
      if (typeof options !== 'object' || options === null) {
        throw invalidArgument('options must be an object');
      }
      const params: unknown[] = [];
      let sql = 'SELECT s.spiffe_id, s.type, s.value FROM node_selectors s';
      if (options.validAt !== undefined) {
        sql += ' JOIN attested_nodes n ON n.spiffe_id = s.spiffe_id WHERE n.cert_not_after > ?';
        params.push(checkInt(options.validAt, 'validAt'));
      }
      const out = new Map<string, Selector[]>();
      for (const r of await this.#d.query(`${sql} ORDER BY s.spiffe_id, s.type, s.value`, params)) {
        const id = String(r.spiffe_id);
        let list = out.get(id);
        if (list === undefined) {
          list = [];
          out.set(id, list);
        }
        list.push({ type: String(r.type), value: String(r.value) });
      }
      return out;
    });
  }

  // ----------------------------------------------------------------------------------------
  // Join tokens

  createJoinToken(token: { token: string; expiresAt: number }): Promise<JoinTokenRecord> {
    return this.#op(async () => {
      const t = checkNewJoinToken(token);
      const tokenHash = hashJoinToken(t.token);
      try {
        await this.#d.write((tx) =>
          tx.run('INSERT INTO join_tokens (token_hash, expires_at, created_at) VALUES (?, ?, ?)', [
            tokenHash,
            t.expiresAt,
            this.#now(),
          ]),
        );
      } catch (err) {
        if (this.#d.classify(err).kind === 'unique') {
          throw dsError('ERR_DATASTORE_ALREADY_EXISTS', 'join token already exists', {
            cause: err,
          });
        }
        throw err;
      }
      return { tokenHash, expiresAt: t.expiresAt };
    });
  }

  consumeJoinToken(token: string, now: number): Promise<JoinTokenRecord> {
    return this.#op(async () => {
      const tokenHash = hashJoinToken(checkJoinToken(token));
      const at = checkInt(now, 'now');
      // One DELETE … RETURNING: of concurrent consumers (on any server) exactly one gets the row.
      const rows = await this.#d.write((tx) =>
        tx.all('DELETE FROM join_tokens WHERE token_hash = ? RETURNING expires_at', [tokenHash]),
      );
      if (rows[0] === undefined) {
        throw dsError('ERR_DATASTORE_NOT_FOUND', 'join token does not exist or was already used', {
          details: { reason: 'unknown' },
        });
      }
      const expiresAt = num(rows[0].expires_at);
      if (expiresAt <= at) {
        throw dsError('ERR_DATASTORE_NOT_FOUND', 'join token has expired', {
          details: { reason: 'expired', expiresAt },
        });
      }
      return { tokenHash, expiresAt };
    });
  }

  pruneJoinTokens(expiresBefore: number): Promise<number> {
    return this.#op(async () => {
      const t = checkInt(expiresBefore, 'expiresBefore');
      return this.#d.write((tx) => tx.run('DELETE FROM join_tokens WHERE expires_at < ?', [t]));
    });
  }

  // ----------------------------------------------------------------------------------------
  // Provisioning tokens (device enrollment; see provisioning-tokens.ts)

  createProvisioningToken(token: NewProvisioningToken): Promise<ProvisioningTokenRecord> {
    return this.#op(async () => {
      const t = checkNewProvisioningToken(token);
      const record: ProvisioningTokenRecord = {
        tokenHash: hashProvisioningToken(t.token),
        spiffeId: t.spiffeId,
        replace: t.replace,
        expiresAt: t.expiresAt,
        createdAt: this.#now(),
      };
      try {
        await this.#d.write((tx) =>
          tx.run(
            'INSERT INTO provisioning_tokens (token_hash, spiffe_id, allow_replace, expires_at, created_at) VALUES (?, ?, ?, ?, ?)',
            [record.tokenHash, record.spiffeId, record.replace, record.expiresAt, record.createdAt],
          ),
        );
      } catch (err) {
        if (this.#d.classify(err).kind === 'unique') {
          throw dsError('ERR_DATASTORE_ALREADY_EXISTS', 'provisioning token already exists', {
            cause: err,
          });
        }
        throw err;
      }
      return record;
    });
  }

  consumeProvisioningToken(token: string, now: number): Promise<ProvisioningTokenRecord> {
    return this.#op(async () => {
      const tokenHash = hashProvisioningToken(checkProvisioningToken(token));
      const at = checkInt(now, 'now');
      // One DELETE … RETURNING: of concurrent consumers (on any server) exactly one gets the row.
      const rows = await this.#d.write((tx) =>
        tx.all(
          'DELETE FROM provisioning_tokens WHERE token_hash = ? RETURNING token_hash, spiffe_id, allow_replace, expires_at, created_at',
          [tokenHash],
        ),
      );
      if (rows[0] === undefined) {
        throw dsError(
          'ERR_DATASTORE_NOT_FOUND',
          'provisioning token does not exist or was already used',
          { details: { reason: 'unknown' } },
        );
      }
      const record = provisioningTokenFromRow(rows[0]);
      if (record.expiresAt <= at) {
        throw dsError('ERR_DATASTORE_NOT_FOUND', 'provisioning token has expired', {
          details: { reason: 'expired', expiresAt: record.expiresAt },
        });
      }
      return record;
    });
  }

  listProvisioningTokens(filter: { bySpiffeId?: string } = {}): Promise<ProvisioningTokenRecord[]> {
    return this.#op(async () => {
      let sql =
        'SELECT token_hash, spiffe_id, allow_replace, expires_at, created_at FROM provisioning_tokens';
      const params: unknown[] = [];
      if (filter?.bySpiffeId !== undefined) {
        sql += ' WHERE spiffe_id = ?';
        params.push(checkSpiffeId(filter.bySpiffeId, 'bySpiffeId'));
      }
      const rows = await this.#d.query(`${sql} ORDER BY spiffe_id, expires_at, token_hash`, params);
      return rows.map(provisioningTokenFromRow);
    });
  }

  deleteProvisioningTokens(spiffeId: string): Promise<number> {
    return this.#op(async () => {
      const id = checkSpiffeId(spiffeId, 'spiffeId');
      return this.#d.write((tx) =>
        tx.run('DELETE FROM provisioning_tokens WHERE spiffe_id = ?', [id]),
      );
    });
  }

  pruneProvisioningTokens(expiresBefore: number): Promise<number> {
    return this.#op(async () => {
      const t = checkInt(expiresBefore, 'expiresBefore');
      return this.#d.write((tx) =>
        tx.run('DELETE FROM provisioning_tokens WHERE expires_at < ?', [t]),
      );
    });
  }

  // ----------------------------------------------------------------------------------------
  // Bundles

  async #lockBundle(
    tx: SqlTx,
    td: string,
  ): Promise<{ content: BundleContent; seq: number } | undefined> {
    const rows = await tx.all(
      `SELECT data, sequence_number FROM bundles WHERE trust_domain = ?${this.#d.forUpdate}`,
      [td],
    );
    const r = rows[0];
    if (r === undefined) return undefined;
    return { content: decodeBundleContent(r.data, td), seq: num(r.sequence_number) };
  }

  async #mustLockBundle(tx: SqlTx, td: string): Promise<{ content: BundleContent; seq: number }> {
    const b = await this.#lockBundle(tx, td);
    if (b === undefined) {
      throw dsError('ERR_DATASTORE_NOT_FOUND', `bundle for trust domain ${td} not found`, {
        details: { trustDomain: td },
      });
    }
    return b;
  }

  async #storeBundle(tx: SqlTx, td: string, c: BundleContent, seq: number): Promise<Bundle> {
    await tx.run(
      'UPDATE bundles SET data = ?, sequence_number = ?, updated_at = ? WHERE trust_domain = ?',
      [encodeBundleContent(c), seq, this.#now(), td],
    );
    return toBundle(td, c, seq);
  }

  /** Inserts an empty bundle unless one exists (row to lock); true when it inserted. */
  async #ensureBundle(tx: SqlTx, td: string, refreshHint: number): Promise<boolean> {
    const now = this.#now();
    const changed = await tx.run(
      `INSERT INTO bundles (trust_domain, data, sequence_number, created_at, updated_at)
       VALUES (?, ?, 0, ?, ?) ON CONFLICT (trust_domain) DO NOTHING`,
      [td, encodeBundleContent({ x509Authorities: [], jwtAuthorities: [], refreshHint }), now, now],
    );
    return changed > 0;
  }

  createBundle(bundle: BundleInput): Promise<Bundle> {
    return this.#op(async () => {
      const v = checkBundleInput(bundle);
      const content: BundleContent = {
        x509Authorities: v.content.x509Authorities ?? [],
        jwtAuthorities: v.content.jwtAuthorities ?? [],
        refreshHint: v.content.refreshHint ?? 0,
      };
      const seq = v.sequenceNumber ?? 1;
      try {
        await this.#d.write(async (tx) => {
          const now = this.#now();
          await tx.run(
            `INSERT INTO bundles (trust_domain, data, sequence_number, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?)`,
            [v.trustDomain, encodeBundleContent(content), seq, now, now],
          );
        });
      } catch (err) {
        if (this.#d.classify(err).kind === 'unique') {
          throw dsError(
            'ERR_DATASTORE_ALREADY_EXISTS',
            `bundle for trust domain ${v.trustDomain} already exists`,
            { cause: err, details: { trustDomain: v.trustDomain } },
          );
        }
        throw err;
      }
      return toBundle(v.trustDomain, content, seq);
    });
  }

  getBundle(trustDomain: string): Promise<Bundle | undefined> {
    return this.#op(async () => {
      const td = checkBundleTrustDomain(trustDomain);
      const rows = await this.#d.query(
        'SELECT data, sequence_number FROM bundles WHERE trust_domain = ?',
        [td],
      );
      const r = rows[0];
      if (r === undefined) return undefined;
      return toBundle(td, decodeBundleContent(r.data, td), num(r.sequence_number));
    });
  }

  listBundles(options: { pagination?: Pagination } = {}): Promise<Page<Bundle>> {
    return this.#op(async () => {
      if (typeof options !== 'object' || options === null) {
        throw invalidArgument('options must be an object');
      }
      return this.#page(
        'SELECT b.trust_domain, b.data, b.sequence_number FROM bundles b',
        'b.trust_domain',
        [],
        [],
        options.pagination,
        'bundles',
        (r) => {
          const td = String(r.trust_domain);
          return toBundle(td, decodeBundleContent(r.data, td), num(r.sequence_number));
        },
        (b) => b.trustDomain,
      );
    });
  }

  countBundles(): Promise<number> {
    return this.#op(async () => {
      const rows = await this.#d.query('SELECT COUNT(*) AS n FROM bundles');
      return num(rows[0]?.n ?? 0);
    });
  }

  updateBundle(update: BundleUpdate): Promise<Bundle> {
    return this.#op(async () => {
      if (typeof update !== 'object' || update === null) {
        throw invalidArgument('update must be an object');
      }
      const v = checkBundleInput(update.bundle, 'update.bundle');
      const present: Record<string, unknown> = {
        ...v.content,
        ...(v.sequenceNumber === undefined ? {} : { sequenceNumber: v.sequenceNumber }),
      };
      const fields = maskedFields<BundleField>(present, update.mask, BUNDLE_FIELDS, 'update');
      const ifSeq =
        update.ifSequenceNumber === undefined
          ? undefined
          : checkInt(update.ifSequenceNumber, 'update.ifSequenceNumber');
      return this.#d.write(async (tx) => {
        const cur = await this.#mustLockBundle(tx, v.trustDomain);
        if (ifSeq !== undefined && cur.seq !== ifSeq) {
          throw dsError(
            'ERR_DATASTORE_CONFLICT',
            `bundle of ${v.trustDomain} is at sequence number ${cur.seq}, not ${ifSeq}`,
            { details: { trustDomain: v.trustDomain, sequenceNumber: cur.seq } },
          );
        }
        const next: BundleContent = {
          x509Authorities: fields.includes('x509Authorities')
            ? (v.content.x509Authorities ?? [])
            : cur.content.x509Authorities,
          jwtAuthorities: fields.includes('jwtAuthorities')
            ? (v.content.jwtAuthorities ?? [])
            : cur.content.jwtAuthorities,
          refreshHint: fields.includes('refreshHint')
            ? (v.content.refreshHint ?? 0)
            : cur.content.refreshHint,
        };
        const changed = encodeBundleContent(next) !== encodeBundleContent(cur.content);
        const seq = fields.includes('sequenceNumber')
          ? (v.sequenceNumber ?? 0)
          : changed
            ? cur.seq + 1
            : cur.seq;
        return this.#storeBundle(tx, v.trustDomain, next, seq);
      });
    });
  }

  setBundle(bundle: BundleInput): Promise<Bundle> {
    return this.#op(async () => {
      const v = checkBundleInput(bundle);
      return this.#d.write(async (tx) => {
        await this.#ensureBundle(tx, v.trustDomain, 0);
        const cur = await this.#mustLockBundle(tx, v.trustDomain);
        const next: BundleContent = {
          x509Authorities: v.content.x509Authorities ?? [],
          jwtAuthorities: v.content.jwtAuthorities ?? [],
          refreshHint: v.content.refreshHint ?? 0,
        };
        return this.#storeBundle(tx, v.trustDomain, next, v.sequenceNumber ?? cur.seq + 1);
      });
    });
  }

  appendBundle(bundle: BundleInput): Promise<Bundle> {
    return this.#op(async () => {
      const v = checkBundleInput(bundle);
      return this.#d.write(async (tx) => {
        const inserted = await this.#ensureBundle(tx, v.trustDomain, v.content.refreshHint ?? 0);
        // Row lock (PostgreSQL) / write lock (SQLite): concurrent appenders queue here and
        // each merges into what the previous one committed.
        const cur = await this.#mustLockBundle(tx, v.trustDomain);
        const x509 = [...cur.content.x509Authorities];
        const jwt = [...cur.content.jwtAuthorities];
        let changed = inserted;
        for (const a of v.content.x509Authorities ?? []) {
          if (!x509.some((b) => bytesEqual(a.certificateDer, b.certificateDer))) {
            x509.push(a);
            changed = true;
          }
        }
        for (const a of v.content.jwtAuthorities ?? []) {
          const same = jwt.find((b) => b.keyId === a.keyId);
          if (same === undefined) {
            jwt.push(a);
            changed = true;
          } else if (!bytesEqual(same.publicKeyDer, a.publicKeyDer)) {
            throw dsError(
              'ERR_DATASTORE_CONFLICT',
              `bundle of ${v.trustDomain} already has a different JWT authority with key id ${a.keyId}`,
              { details: { trustDomain: v.trustDomain, keyId: a.keyId } },
            );
          }
        }
        const next = { ...cur.content, x509Authorities: x509, jwtAuthorities: jwt };
        if (!changed) return toBundle(v.trustDomain, cur.content, cur.seq);
        return this.#storeBundle(tx, v.trustDomain, next, cur.seq + 1);
      });
    });
  }

  deleteBundle(trustDomain: string, mode: BundleDeleteMode = 'restrict'): Promise<void> {
    return this.#op(async () => {
      const td = checkBundleTrustDomain(trustDomain);
      if (mode !== 'restrict' && mode !== 'delete' && mode !== 'dissociate') {
        throw invalidArgument('mode must be one of restrict, delete, dissociate');
      }
      await this.#write(async (tx, ev) => {
        await this.#mustLockBundle(tx, td);
        const rows = await tx.all(
          'SELECT entry_id FROM entry_federates_with WHERE trust_domain = ? ORDER BY entry_id',
          [td],
        );
        const ids = rows.map((r) => String(r.entry_id));
        if (ids.length > 0) {
          if (mode === 'restrict') {
            throw dsError(
              'ERR_DATASTORE_CONFLICT',
              `cannot delete bundle; federated with ${ids.length} registration entries`,
              { details: { trustDomain: td, entries: ids.length } },
            );
          }
          if (mode === 'delete') {
            for (const part of chunks(ids)) {
              await tx.run(
                `DELETE FROM registered_entries WHERE id IN (${marks(part.length)})`,
                part,
              );
            }
          } else {
            await tx.run('DELETE FROM entry_federates_with WHERE trust_domain = ?', [td]);
            const now = this.#now();
            for (const part of chunks(ids)) {
              await tx.run(
                `UPDATE registered_entries SET revision_number = revision_number + 1, updated_at = ?
                 WHERE id IN (${marks(part.length)})`,
                [now, ...part],
              );
            }
          }
          ev.entries.push(...ids);
        }
        await tx.run('DELETE FROM bundles WHERE trust_domain = ?', [td]);
      });
    });
  }

  pruneBundle(trustDomain: string, expiresBefore: number): Promise<boolean> {
    return this.#op(async () => {
      const td = checkBundleTrustDomain(trustDomain);
      const t = checkInt(expiresBefore, 'expiresBefore');
      return this.#d.write(async (tx) => {
        const cur = await this.#mustLockBundle(tx, td);
        const x509 = cur.content.x509Authorities.filter((a) => a.notAfter >= t);
        const jwt = cur.content.jwtAuthorities.filter((a) => a.notAfter === 0 || a.notAfter >= t);
        if (x509.length === 0 && cur.content.x509Authorities.length > 0) {
          throw dsError(
            'ERR_DATASTORE_CONFLICT',
            'prune failed: would prune all X.509 authorities',
            {
              details: { trustDomain: td },
            },
          );
        }
        const changed =
          x509.length !== cur.content.x509Authorities.length ||
          jwt.length !== cur.content.jwtAuthorities.length;
        if (changed) {
          await this.#storeBundle(
            tx,
            td,
            { ...cur.content, x509Authorities: x509, jwtAuthorities: jwt },
            cur.seq + 1,
          );
        }
        return changed;
      });
    });
  }

  /** Validates with `check`, then edits the locked bundle and bumps its sequence number. */
  #modifyAuthority<A>(
    trustDomain: string,
    check: () => A,
    edit: (c: BundleContent, td: string, arg: A) => BundleContent,
  ): Promise<Bundle> {
    return this.#op(async () => {
      const td = checkBundleTrustDomain(trustDomain);
      const arg = check();
      return this.#d.write(async (tx) => {
        const cur = await this.#mustLockBundle(tx, td);
        return this.#storeBundle(tx, td, edit(cur.content, td, arg), cur.seq + 1);
      });
    });
  }

  #x509Index(c: BundleContent, der: Uint8Array, td: string): number {
    const i = c.x509Authorities.findIndex((a) => bytesEqual(a.certificateDer, der));
    if (i < 0) {
      throw dsError('ERR_DATASTORE_NOT_FOUND', `no such X.509 authority in bundle of ${td}`, {
        details: { trustDomain: td },
      });
    }
    return i;
  }

  #jwtIndex(c: BundleContent, keyId: string, td: string): number {
    const i = c.jwtAuthorities.findIndex((a) => a.keyId === keyId);
    if (i < 0) {
      throw dsError(
        'ERR_DATASTORE_NOT_FOUND',
        `no JWT authority with key id ${keyId} in bundle of ${td}`,
        {
          details: { trustDomain: td, keyId },
        },
      );
    }
    return i;
  }

  taintX509Authority(trustDomain: string, certificateDer: Uint8Array): Promise<Bundle> {
    const check = () => checkBlob(certificateDer, 'certificateDer');
    return this.#modifyAuthority(trustDomain, check, (c, td, der) => {
      const i = this.#x509Index(c, der, td);
      if (c.x509Authorities[i]!.tainted) {
        throw dsError('ERR_DATASTORE_CONFLICT', 'X.509 authority is already tainted');
      }
      const x509 = c.x509Authorities.map((a, j) => (j === i ? { ...a, tainted: true } : a));
      return { ...c, x509Authorities: x509 };
    });
  }

  revokeX509Authority(trustDomain: string, certificateDer: Uint8Array): Promise<Bundle> {
    const check = () => checkBlob(certificateDer, 'certificateDer');
    return this.#modifyAuthority(trustDomain, check, (c, td, der) => {
      const i = this.#x509Index(c, der, td);
      if (!c.x509Authorities[i]!.tainted) {
        throw dsError(
          'ERR_DATASTORE_CONFLICT',
          'it is not possible to revoke an untainted X.509 authority',
        );
      }
      return { ...c, x509Authorities: c.x509Authorities.filter((_, j) => j !== i) };
    });
  }

  taintJwtAuthority(trustDomain: string, keyId: string): Promise<Bundle> {
    const check = () => checkText(keyId, 'keyId', { max: 255 });
    return this.#modifyAuthority(trustDomain, check, (c, td, kid) => {
      const i = this.#jwtIndex(c, kid, td);
      if (c.jwtAuthorities[i]!.tainted) {
        throw dsError('ERR_DATASTORE_CONFLICT', 'JWT authority is already tainted');
      }
      const jwt: JwtAuthority[] = c.jwtAuthorities.map((a, j) =>
        j === i ? { ...a, tainted: true } : a,
      );
      return { ...c, jwtAuthorities: jwt };
    });
  }

  revokeJwtAuthority(trustDomain: string, keyId: string): Promise<Bundle> {
    const check = () => checkText(keyId, 'keyId', { max: 255 });
    return this.#modifyAuthority(trustDomain, check, (c, td, kid) => {
      const i = this.#jwtIndex(c, kid, td);
      if (!c.jwtAuthorities[i]!.tainted) {
        throw dsError(
          'ERR_DATASTORE_CONFLICT',
          'it is not possible to revoke an untainted JWT authority',
        );
      }
      return { ...c, jwtAuthorities: c.jwtAuthorities.filter((_, j) => j !== i) };
    });
  }

  // ----------------------------------------------------------------------------------------
  // CA journal

  saveCaJournal(key: string, data: Uint8Array): Promise<void> {
    return this.#op(async () => {
      const k = checkJournalKey(key);
      const blob = checkBlob(data, 'data');
      await this.#d.write((tx) =>
        tx.run(
          `INSERT INTO ca_journals (key, data, updated_at) VALUES (?, ?, ?)
           ON CONFLICT (key) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
          [k, blob, this.#now()],
        ),
      );
    });
  }

  loadCaJournal(key: string): Promise<Uint8Array | undefined> {
    return this.#op(async () => {
      const k = checkJournalKey(key);
      const rows = await this.#d.query('SELECT data FROM ca_journals WHERE key = ?', [k]);
      const d = rows[0]?.data;
      return d === undefined ? undefined : new Uint8Array(d as Uint8Array);
    });
  }

  deleteCaJournal(key: string): Promise<void> {
    return this.#op(async () => {
      const k = checkJournalKey(key);
      const n = await this.#d.write((tx) => tx.run('DELETE FROM ca_journals WHERE key = ?', [k]));
      if (n === 0) throw dsError('ERR_DATASTORE_NOT_FOUND', `ca journal ${k} not found`);
    });
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
