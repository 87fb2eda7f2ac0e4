/**
 * The DataStore contract: one suite that every implementation (SQLite, PostgreSQL) must
 * pass. A test file calls {@link runDataStoreContract} with a factory that makes fresh, empty
 * databases; each test gets its own database.
 */
import { createHash, generateKeyPairSync, sign, X509Certificate } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { bitString, oid, seq, set, smallInteger, time, tlv } from '../../src/common/der.js';
import {
  type DataStore,
  LATEST_SCHEMA_VERSION,
  type MatchBehavior,
  matchesSelectors,
  matchesSet,
  type RegistrationEntry,
  type Selector,
} from '../../src/server/datastore/index.js';

/** A fresh database under test. */
export interface TestDatabase {
  /** Opens a DataStore on this database (several may be open at once). */
  open(options?: { clock?: ManualClock }): Promise<DataStore>;
  /** Runs raw SQL (`?` placeholders) on the database, outside any DataStore. */
  sql(sql: string, params?: readonly unknown[]): Promise<Record<string, unknown>[]>;
  /** Applies migrations up to `version` only (to build an old database). */
  migrateTo(version: number): Promise<void>;
  /** Releases the database (raw connections). DataStores are closed by the suite. */
  dispose(): Promise<void>;
}

/** Makes fresh databases for the suite. */
export interface DataStoreContractFactory {
  newDatabase(): Promise<TestDatabase>;
}

/** 2026-01-01T00:00:00Z, the suite's clock start. */
const T0 = Date.UTC(2026, 0, 1);
const T0S = T0 / 1000;

const TD = 'example.org';
const AGENT = `spiffe://${TD}/spire/agent/join_token/abc`;
const sel = (type: string, value: string): Selector => ({ type, value });

/** A real self-signed P-256 certificate whose notAfter is `notAfter` (seconds). */
export function makeCertificate(cn: string, notAfter: number, serial = 1): Uint8Array {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
  const ecdsaSha256 = seq(oid('1.2.840.10045.4.3.2'));
  const name = seq(set(seq(oid('2.5.4.3'), tlv(0x0c, new TextEncoder().encode(cn)))));
  const tbs = seq(
    tlv(0xa0, smallInteger(2)),
    smallInteger(serial),
    ecdsaSha256,
    name,
    seq(time(new Date((notAfter - 86_400) * 1000)), time(new Date(notAfter * 1000))),
    name,
    spki,
  );
  const signature = new Uint8Array(sign('sha256', tbs, privateKey));
  return seq(tbs, ecdsaSha256, bitString(signature));
}

/** A P-256 SubjectPublicKeyInfo, DER. */
function makeJwtKey(): Uint8Array {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<Error> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected a rejection with ${code}`).toBeInstanceOf(Error);
  expect((caught as { code?: string }).code).toBe(code);
  return caught as Error;
}

function entryInput(path: string, selectors: Selector[], extra: Record<string, unknown> = {}) {
  return { spiffeId: `spiffe://${TD}${path}`, parentId: AGENT, selectors, ...extra };
}

/**
 * Registers the contract's `describe` blocks for one implementation.
 *
 * @param name Implementation name shown in test titles (`sqlite`, `postgres`).
 * @param factory Returns the factory; called when the tests run (after the file's beforeAll).
 */
export function runDataStoreContract(name: string, factory: () => DataStoreContractFactory): void {
  let db: TestDatabase;
  let ds: DataStore;
  let clock: ManualClock;
  const opened: DataStore[] = [];

  const open = async (c: ManualClock = clock): Promise<DataStore> => {
    const s = await db.open({ clock: c });
    opened.push(s);
    return s;
  };

  beforeEach(async () => {
    clock = new ManualClock(T0);
    db = await factory().newDatabase();
    ds = await open();
  });

  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
    await db.dispose();
  });

  describe(`${name}: registration entries`, () => {
    it('creates an entry with every field and reads it back', async () => {
      await ds.createBundle({ trustDomain: 'fed.example' });
      const created = await ds.createEntry(
        entryInput('/web', [sel('unix', 'uid:1000'), sel('docker', 'label:app:web')], {
          x509SvidTtl: 3600,
          jwtSvidTtl: 300,
          dnsNames: ['web.example.org', '*.web.example.org'],
          federatesWith: ['spiffe://fed.example'],
          admin: true,
          downstream: true,
          hint: 'external',
          storeSvid: false,
          entryExpiry: T0S + 86_400,
        }),
      );
      expect(created.id).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      );
      expect(created).toEqual({
        id: created.id,
        spiffeId: `spiffe://${TD}/web`,
        parentId: AGENT,
        selectors: [sel('docker', 'label:app:web'), sel('unix', 'uid:1000')],
        x509SvidTtl: 3600,
        jwtSvidTtl: 300,
        dnsNames: ['web.example.org', '*.web.example.org'],
        federatesWith: ['fed.example'],
        admin: true,
        downstream: true,
        hint: 'external',
        storeSvid: false,
        entryExpiry: T0S + 86_400,
        revisionNumber: 0,
        createdAt: T0S,
      });
      expect(await ds.getEntry(created.id)).toEqual(created);
      expect(await ds.getEntry('no-such-entry')).toBeUndefined();
      expect(await ds.countEntries()).toBe(1);
    });

    it('fills defaults and accepts a caller-chosen id, refusing a taken one', async () => {
      const e = await ds.createEntry({
        ...entryInput('/a', [sel('unix', 'uid:1')]),
        id: 'my-entry_1.x',
      });
      expect(e).toMatchObject({
        id: 'my-entry_1.x',
        x509SvidTtl: 0,
        jwtSvidTtl: 0,
        dnsNames: [],
        federatesWith: [],
        admin: false,
        downstream: false,
        hint: '',
        storeSvid: false,
        entryExpiry: 0,
      });
      const err = await rejectsWith(
        ds.createEntry({ ...entryInput('/b', [sel('unix', 'uid:2')]), id: 'my-entry_1.x' }),
        'ERR_DATASTORE_ALREADY_EXISTS',
      );
      expect(err.message).toContain('my-entry_1.x');
    });

    it('rejects a similar entry (same SPIFFE ID, parent and selector set) and names it', async () => {
      const first = await ds.createEntry(
        entryInput('/a', [sel('unix', 'uid:1'), sel('unix', 'gid:2')]),
      );
      const err = await rejectsWith(
        ds.createEntry(
          entryInput('/a', [sel('unix', 'gid:2'), sel('unix', 'uid:1'), sel('unix', 'uid:1')]),
        ),
        'ERR_DATASTORE_ALREADY_EXISTS',
      );
      expect(err.message).toBe('similar entry already exists');
      expect((err as unknown as { details: Record<string, unknown> }).details.existingEntryId).toBe(
        first.id,
      );
      // A different selector set, parent or SPIFFE ID is not similar.
      await ds.createEntry(entryInput('/a', [sel('unix', 'uid:1')]));
      await ds.createEntry({
        ...entryInput('/a', [sel('unix', 'uid:1'), sel('unix', 'gid:2')]),
        parentId: `spiffe://${TD}/other`,
      });
      await ds.createEntry(entryInput('/b', [sel('unix', 'uid:1'), sel('unix', 'gid:2')]));
      expect(await ds.countEntries()).toBe(4);
    });

    const invalid: Array<[string, Record<string, unknown>]> = [
      ['bad SPIFFE ID', { spiffeId: 'http://example.org/x' }],
      ['SPIFFE ID with a trailing slash', { spiffeId: `spiffe://${TD}/x/` }],
      ['bad parent ID', { parentId: 'spiffe://UPPER/x' }],
      ['empty selectors', { selectors: [] }],
      ['selector type with a colon', { selectors: [sel('unix:uid', '1')] }],
      ['empty selector type', { selectors: [sel('', '1')] }],
      ['empty selector value', { selectors: [sel('unix', '')] }],
      ['negative X509 TTL', { x509SvidTtl: -1 }],
      ['fractional JWT TTL', { jwtSvidTtl: 1.5 }],
      ['TTL above int32', { x509SvidTtl: 2 ** 31 }],
      ['negative expiry', { entryExpiry: -5 }],
      ['hint too long', { hint: 'h'.repeat(1025) }],
      ['NUL in hint', { hint: 'a\u0000b' }],
      ['bad DNS name', { dnsNames: ['not a dns name'] }],
      ['bad federated trust domain', { federatesWith: ['Bad Domain'] }],
      ['id with invalid characters', { id: 'éntry' }],
      ['id too long', { id: 'e'.repeat(256) }],
      [
        'storeSvid with mixed selector types',
        { storeSvid: true, selectors: [sel('a', '1'), sel('b', '1')] },
      ],
      ['unknown field', { color: 'blue' }],
      ['admin not a boolean', { admin: 'yes' }],
      ['selector value over 2048 bytes', { selectors: [sel('k8s', 'é'.repeat(1025))] }],
      ['selector type over 255 bytes', { selectors: [sel('t'.repeat(256), 'v')] }],
    ];
    for (const [what, patch] of invalid) {
      it(`rejects ${what} with ERR_DATASTORE_INVALID_ARGUMENT`, async () => {
        await rejectsWith(
          ds.createEntry({ ...entryInput('/x', [sel('unix', 'uid:1')]), ...patch } as never),
          'ERR_DATASTORE_INVALID_ARGUMENT',
        );
        expect(await ds.countEntries()).toBe(0);
        expect(await ds.getLatestEntryEventId()).toBe(0);
      });
    }

    it('stores the longest selector value and SPIFFE IDs it accepts', async () => {
      const value = `${'é'.repeat(1000)}${'v'.repeat(48)}`; // 2048 bytes
      const longPath = `/${'p'.repeat(2000)}`;
      const e = await ds.createEntry({
        spiffeId: `spiffe://${TD}${longPath}`,
        parentId: `spiffe://${TD}${longPath}/agent`,
        selectors: [sel('t'.repeat(255), value)],
      });
      expect(await ds.getEntry(e.id)).toEqual(e);
      const n = `spiffe://${TD}${longPath}/node`;
      await ds.createAttestedNode({
        spiffeId: n,
        attestationDataType: 'tpm',
        selectors: [sel('t'.repeat(255), value)],
      });
      expect(await ds.getNodeSelectors(n)).toEqual([sel('t'.repeat(255), value)]);
    });

    it('rejects federating with a trust domain that has no bundle', async () => {
      const err = await rejectsWith(
        ds.createEntry(
          entryInput('/x', [sel('unix', 'uid:1')], { federatesWith: ['nobundle.org'] }),
        ),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      expect(err.message).toContain('nobundle.org');
    });

    it('creates a batch all or nothing', async () => {
      const batch = [
        entryInput('/1', [sel('unix', 'uid:1')]),
        entryInput('/2', [sel('unix', 'uid:2')]),
        entryInput('/1', [sel('unix', 'uid:1')]), // similar to the first
      ];
      await rejectsWith(ds.createEntries(batch), 'ERR_DATASTORE_ALREADY_EXISTS');
      expect(await ds.countEntries()).toBe(0);
      expect(await ds.listEntryEvents()).toEqual([]);
      const ok = await ds.createEntries(batch.slice(0, 2));
      expect(ok.map((e) => e.spiffeId)).toEqual([`spiffe://${TD}/1`, `spiffe://${TD}/2`]);
      expect(await ds.countEntries()).toBe(2);
      expect(await ds.createEntries([])).toEqual([]);
    });

    it('updates only the masked fields and bumps the revision', async () => {
      await ds.createBundle({ trustDomain: 'fed.example' });
      const e = await ds.createEntry(
        entryInput('/a', [sel('unix', 'uid:1')], {
          hint: 'old',
          x509SvidTtl: 60,
          dnsNames: ['a.example'],
        }),
      );
      clock.advance(10_000);
      const u = await ds.updateEntry({
        id: e.id,
        set: { hint: 'new', x509SvidTtl: 999, admin: true },
        mask: ['hint', 'admin'],
      });
      expect(u).toEqual({ ...e, hint: 'new', admin: true, revisionNumber: 1 });
      // Without a mask, the fields present in `set` change.
      const u2 = await ds.updateEntry({
        id: e.id,
        set: {
          selectors: [sel('unix', 'uid:2'), sel('unix', 'gid:3')],
          federatesWith: ['fed.example'],
        },
      });
      expect(u2.selectors).toEqual([sel('unix', 'gid:3'), sel('unix', 'uid:2')]);
      expect(u2.federatesWith).toEqual(['fed.example']);
      expect(u2.hint).toBe('new');
      expect(u2.revisionNumber).toBe(2);
      // A masked field absent from `set` is reset to its zero value.
      const u3 = await ds.updateEntry({ id: e.id, set: {}, mask: ['dnsNames', 'hint'] });
      expect(u3.dnsNames).toEqual([]);
      expect(u3.hint).toBe('');
      expect(u3.x509SvidTtl).toBe(60);
      expect(await ds.getEntry(e.id)).toEqual(u3);
      // The old selectors no longer match, the new ones do.
      expect(
        (await ds.listEntries({ bySelectors: { selectors: [sel('unix', 'uid:1')], match: 'any' } }))
          .items,
      ).toEqual([]);
      expect(
        (await ds.listEntries({ bySelectors: { selectors: [sel('unix', 'uid:2')], match: 'any' } }))
          .items,
      ).toHaveLength(1);
    });

    it('refuses bad updates with precise codes and leaves the batch unwritten', async () => {
      const a = await ds.createEntry(entryInput('/a', [sel('unix', 'uid:1')]));
      const b = await ds.createEntry(entryInput('/b', [sel('unix', 'uid:2')]));
      await rejectsWith(
        ds.updateEntry({ id: 'missing', set: { hint: 'x' } }),
        'ERR_DATASTORE_NOT_FOUND',
      );
      await rejectsWith(
        ds.updateEntry({ id: a.id, set: { hint: 'x' }, ifRevision: 7 }),
        'ERR_DATASTORE_CONFLICT',
      );
      await rejectsWith(
        ds.updateEntry({ id: b.id, set: { spiffeId: a.spiffeId, selectors: a.selectors } }),
        'ERR_DATASTORE_ALREADY_EXISTS',
      );
      await rejectsWith(
        ds.updateEntry({ id: a.id, set: { x509SvidTtl: -1 } }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      await rejectsWith(
        ds.updateEntry({ id: a.id, set: {}, mask: ['selectors'] }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      await rejectsWith(
        ds.updateEntry({ id: a.id, set: {}, mask: ['bogus' as never] }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      await rejectsWith(
        ds.updateEntries([
          { id: a.id, set: { hint: 'changed' } },
          { id: 'missing', set: { hint: 'changed' } },
        ]),
        'ERR_DATASTORE_NOT_FOUND',
      );
      expect(await ds.getEntry(a.id)).toEqual(a);
      const ok = await ds.updateEntry({ id: a.id, set: { hint: 'cas' }, ifRevision: 0 });
      expect(ok.revisionNumber).toBe(1);
    });

    it('deletes entries, all or nothing', async () => {
      const [a, b, c] = await ds.createEntries([
        entryInput('/a', [sel('unix', 'uid:1')]),
        entryInput('/b', [sel('unix', 'uid:2')]),
        entryInput('/c', [sel('unix', 'uid:3')]),
      ]);
      await rejectsWith(ds.deleteEntries([a!.id, 'missing']), 'ERR_DATASTORE_NOT_FOUND');
      expect(await ds.countEntries()).toBe(3);
      expect(await ds.deleteEntry(a!.id)).toEqual(a);
      expect(await ds.getEntry(a!.id)).toBeUndefined();
      await rejectsWith(ds.deleteEntry(a!.id), 'ERR_DATASTORE_NOT_FOUND');
      expect(await ds.deleteEntries([b!.id, c!.id, b!.id])).toEqual([b, c]);
      expect(await ds.countEntries()).toBe(0);
      expect(
        (await ds.listEntries({ bySelectors: { selectors: [sel('unix', 'uid:2')], match: 'any' } }))
          .items,
      ).toEqual([]);
    });

    it('fetches several entries by id in the order asked, skipping missing ones', async () => {
      const [a, b] = await ds.createEntries([
        entryInput('/a', [sel('unix', 'uid:1')]),
        entryInput('/b', [sel('unix', 'uid:2')]),
      ]);
      expect(await ds.getEntries([b!.id, 'gone', a!.id])).toEqual([b, a]);
      await rejectsWith(ds.getEntries(['bad id!']), 'ERR_DATASTORE_INVALID_ARGUMENT');
    });

    it('prunes expired entries (expiry 0 never expires) and records delete events', async () => {
      const [old, , never] = await ds.createEntries([
        entryInput('/old', [sel('u', '1')], { entryExpiry: T0S - 10 }),
        entryInput('/fresh', [sel('u', '2')], { entryExpiry: T0S + 3600 }),
        entryInput('/never', [sel('u', '3')], { entryExpiry: 0 }),
      ]);
      const before = await ds.getLatestEntryEventId();
      expect(await ds.pruneEntries(T0S)).toBe(1);
      expect(await ds.getEntry(old!.id)).toBeUndefined();
      expect(await ds.getEntry(never!.id)).toBeDefined();
      expect((await ds.listEntryEvents({ greaterThanEventId: before })).map((e) => e.key)).toEqual([
        old!.id,
      ]);
      expect(await ds.pruneEntries(T0S + 7200)).toBe(1);
      expect(await ds.countEntries()).toBe(1);
    });
  });

  describe(`${name}: entry list filters`, () => {
    // Selector fixtures over a small universe, and federation fixtures over three bundles.
    const a1 = sel('a', '1');
    const a2 = sel('a', '2');
    const b1 = sel('b', '1');
    const c1 = sel('c', '1');
    const d9 = sel('d', '9');
    const selectorSets: Record<string, Selector[]> = {
      E1: [a1],
      E2: [a1, a2],
      E3: [a1, a2, b1],
      E4: [b1],
      E5: [c1, a2],
    };
    const fedSets: Record<string, string[]> = {
      F0: [],
      F1: ['td1.org'],
      F2: ['td1.org', 'td2.org'],
      F3: ['td2.org', 'td3.org'],
    };
    let byName: Map<string, RegistrationEntry>;

    beforeEach(async () => {
      for (const td of ['td1.org', 'td2.org', 'td3.org'])
        await ds.createBundle({ trustDomain: td });
      byName = new Map();
      for (const [n, s] of Object.entries(selectorSets)) {
        byName.set(
          n,
          await ds.createEntry(
            entryInput(`/sel/${n}`, s, {
              hint: n === 'E1' ? 'first' : '',
              downstream: n === 'E2',
              ...(n === 'E5' ? { parentId: `spiffe://${TD}/other-agent` } : {}),
            }),
          ),
        );
      }
      for (const [n, f] of Object.entries(fedSets)) {
        byName.set(
          n,
          await ds.createEntry(entryInput(`/fed/${n}`, [sel('f', n)], { federatesWith: f })),
        );
      }
    });

    const names = (entries: RegistrationEntry[]): string[] =>
      entries.map((e) => e.spiffeId.split('/').pop()!).sort();

    const pinned: Array<[MatchBehavior, Selector[], string[]]> = [
      ['exact', [a1, a2], ['E2']],
      ['subset', [a1, a2], ['E1', 'E2']],
      ['superset', [a1, a2], ['E2', 'E3']],
      ['any', [b1, c1], ['E3', 'E4', 'E5']],
      ['subset', [d9], []],
      ['superset', [a2], ['E2', 'E3', 'E5']],
      ['exact', [b1], ['E4']],
    ];
    for (const [match, filter, expected] of pinned) {
      it(`selectors ${match} ${filter.map((s) => `${s.type}:${s.value}`).join(',')} → ${expected.join(',') || 'none'}`, async () => {
        const page = await ds.listEntries({ bySelectors: { selectors: filter, match } });
        expect(names(page.items)).toEqual(expected);
        expect(await ds.countEntries({ bySelectors: { selectors: filter, match } })).toBe(
          expected.length,
        );
      });
    }

    it('selector match modes agree with the set definitions for every filter (table)', async () => {
      const filters = [[a1], [a1, a2], [a1, a2, b1], [b1, c1], [d9], [a1, a2, b1, c1], [a2, c1]];
      const selectorEntries = [...byName.values()].filter((e) => e.spiffeId.includes('/sel/'));
      for (const filter of filters) {
        for (const match of ['exact', 'subset', 'superset', 'any'] as const) {
          const expected = selectorEntries.filter((e) =>
            matchesSelectors(e.selectors, filter, match),
          );
          const got = (await ds.listEntries({ bySelectors: { selectors: filter, match } })).items;
          expect(names(got), `${match} ${JSON.stringify(filter)}`).toEqual(names(expected));
        }
      }
    });

    const fedPinned: Array<[MatchBehavior, string[], string[]]> = [
      ['exact', ['td2.org', 'td3.org'], ['F3']],
      ['subset', ['td1.org', 'td2.org'], ['F1', 'F2']],
      ['superset', ['td1.org'], ['F1', 'F2']],
      ['any', ['td3.org', 'td1.org'], ['F1', 'F2', 'F3']],
      ['superset', ['td1.org', 'td3.org'], []],
    ];
    for (const [match, filter, expected] of fedPinned) {
      it(`federates with ${match} ${filter.join(',')} → ${expected.join(',') || 'none'}`, async () => {
        const got = await ds.listEntries({ byFederatesWith: { trustDomains: filter, match } });
        expect(names(got.items)).toEqual(expected);
      });
    }

    it('federates-with match modes agree with the set definitions (table)', async () => {
      const filters = [
        ['td1.org'],
        ['td1.org', 'td2.org'],
        ['td2.org', 'td3.org'],
        ['td3.org'],
        ['spiffe://td1.org', 'td3.org'],
      ];
      const fedEntries = [...byName.values()].filter((e) => e.spiffeId.includes('/fed/'));
      for (const filter of filters) {
        const want = new Set(filter.map((t) => t.replace('spiffe://', '')));
        for (const match of ['exact', 'subset', 'superset', 'any'] as const) {
          const expected = fedEntries.filter((e) =>
            matchesSet(new Set(e.federatesWith), want, match),
          );
          const got = (await ds.listEntries({ byFederatesWith: { trustDomains: filter, match } }))
            .items;
          expect(names(got), `${match} ${JSON.stringify(filter)}`).toEqual(names(expected));
        }
      }
    });

    it('filters by SPIFFE ID, parent ID, hint and downstream, combined with AND', async () => {
      expect(names((await ds.listEntries({ bySpiffeId: `spiffe://${TD}/sel/E3` })).items)).toEqual([
        'E3',
      ]);
      expect(
        names((await ds.listEntries({ byParentId: `spiffe://${TD}/other-agent` })).items),
      ).toEqual(['E5']);
      expect(names((await ds.listEntries({ byHint: 'first' })).items)).toEqual(['E1']);
      expect(names((await ds.listEntries({ byDownstream: true })).items)).toEqual(['E2']);
      expect(
        names(
          (
            await ds.listEntries({
              byParentId: AGENT,
              bySelectors: { selectors: [a2], match: 'superset' },
            })
          ).items,
        ),
      ).toEqual(['E2', 'E3']);
      expect(await ds.countEntries({ byParentId: AGENT })).toBe(8);
      expect((await ds.listEntries({ bySpiffeId: `spiffe://${TD}/none` })).items).toEqual([]);
    });

    it('rejects malformed filters', async () => {
      await rejectsWith(
        ds.listEntries({ bySelectors: { selectors: [], match: 'any' } }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      await rejectsWith(
        ds.listEntries({ bySelectors: { selectors: [a1], match: 'most' as never } }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      await rejectsWith(
        ds.listEntries({ byFederatesWith: { trustDomains: [], match: 'any' } }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      await rejectsWith(
        ds.listEntries({ byParentId: 'not-an-id' }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      await rejectsWith(
        ds.countEntries({ byDownstream: 'yes' as never }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
    });
  });

  describe(`${name}: pagination`, () => {
    it('pages through 250 entries, 50 at a time, with no duplicates or gaps', async () => {
      const created = await ds.createEntries(
        Array.from({ length: 250 }, (_, i) => entryInput(`/p/${i}`, [sel('unix', `uid:${i}`)])),
      );
      const seen: string[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const page = await ds.listEntries({
          pagination: { pageSize: 50, ...(token === undefined ? {} : { pageToken: token }) },
        });
        pages++;
        expect(page.items.length).toBe(50);
        seen.push(...page.items.map((e) => e.id));
        token = page.nextPageToken;
      } while (token !== undefined);
      expect(pages).toBe(5);
      expect(new Set(seen).size).toBe(250);
      expect([...seen].sort()).toEqual(created.map((e) => e.id).sort());
      expect(seen).toEqual([...seen].sort()); // stable order: by ID
    });

    it('keeps pages stable while entries are added and removed between pages', async () => {
      const created = await ds.createEntries(
        Array.from({ length: 30 }, (_, i) => ({
          ...entryInput(`/s/${i}`, [sel('u', `${i}`)]),
          id: `e${String(i).padStart(3, '0')}`,
        })),
      );
      const first = await ds.listEntries({ pagination: { pageSize: 10 } });
      await ds.deleteEntry(created[2]!.id); // already seen
      await ds.createEntry({ ...entryInput('/s/new', [sel('u', 'new')]), id: 'e0005a' }); // before the cursor
      await ds.createEntry({ ...entryInput('/s/late', [sel('u', 'late')]), id: 'e999' }); // after it
      const rest: string[] = [];
      let token = first.nextPageToken;
      while (token !== undefined) {
        const page = await ds.listEntries({ pagination: { pageSize: 10, pageToken: token } });
        rest.push(...page.items.map((e) => e.id));
        token = page.nextPageToken;
      }
      expect(first.items.map((e) => e.id)).toEqual(created.slice(0, 10).map((e) => e.id));
      expect(rest).toEqual([...created.slice(10).map((e) => e.id), 'e999']);
    });

    it('paginates a filtered list and rejects bad tokens and sizes', async () => {
      await ds.createEntries(
        Array.from({ length: 7 }, (_, i) =>
          entryInput(`/f/${i}`, [sel('k', i % 2 === 0 ? 'even' : 'odd')]),
        ),
      );
      const p1 = await ds.listEntries({
        bySelectors: { selectors: [sel('k', 'even')], match: 'exact' },
        pagination: { pageSize: 3 },
      });
      expect(p1.items).toHaveLength(3);
      const p2 = await ds.listEntries({
        bySelectors: { selectors: [sel('k', 'even')], match: 'exact' },
        pagination: { pageSize: 3, pageToken: p1.nextPageToken! },
      });
      expect(p2.items).toHaveLength(1);
      expect(p2.nextPageToken).toBeUndefined();
      await rejectsWith(
        ds.listEntries({ pagination: { pageSize: 0 } }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      await rejectsWith(
        ds.listEntries({ pagination: { pageSize: 5, pageToken: 'garbage!' } }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      const nodeToken = Buffer.from('nodes\u0000spiffe://x/y').toString('base64url');
      await rejectsWith(
        ds.listEntries({ pagination: { pageSize: 5, pageToken: nodeToken } }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
    });
  });

  describe(`${name}: events`, () => {
    it('appends an event for every entry create, update and delete, in order', async () => {
      const [a, b] = await ds.createEntries([
        entryInput('/a', [sel('u', '1')]),
        entryInput('/b', [sel('u', '2')]),
      ]);
      clock.advance(5_000);
      await ds.updateEntry({ id: a!.id, set: { hint: 'x' } });
      await ds.deleteEntry(b!.id);
      const events = await ds.listEntryEvents();
      expect(events.map((e) => e.key)).toEqual([a!.id, b!.id, a!.id, b!.id]);
      for (let i = 1; i < events.length; i++)
        expect(events[i]!.eventId).toBeGreaterThan(events[i - 1]!.eventId);
      expect(events.map((e) => e.createdAt)).toEqual([T0S, T0S, T0S + 5, T0S + 5]);
      expect(await ds.getLatestEntryEventId()).toBe(events[3]!.eventId);
      expect(
        (await ds.listEntryEvents({ greaterThanEventId: events[1]!.eventId })).map((e) => e.key),
      ).toEqual([a!.id, b!.id]);
      expect(
        await ds.listEntryEvents({ greaterThanEventId: events[0]!.eventId, limit: 1 }),
      ).toEqual([events[1]]);
      expect(await ds.listEntryEvents({ greaterThanEventId: events[3]!.eventId })).toEqual([]);
    });

    it('prunes old events by age and never reuses an event id', async () => {
      await ds.createEntry(entryInput('/a', [sel('u', '1')]));
      clock.advance(3_600_000);
      await ds.createEntry(entryInput('/b', [sel('u', '2')]));
      const latest = await ds.getLatestEntryEventId();
      expect(await ds.pruneEntryEvents(1800)).toBe(1);
      expect((await ds.listEntryEvents()).map((e) => e.eventId)).toEqual([latest]);
      expect(await ds.pruneEntryEvents(0)).toBe(0); // created_at is not strictly older than now
      clock.advance(1000);
      expect(await ds.pruneEntryEvents(0)).toBe(1);
      expect(await ds.getLatestEntryEventId()).toBe(0);
      await ds.createEntry(entryInput('/c', [sel('u', '3')]));
      expect(await ds.getLatestEntryEventId()).toBeGreaterThan(latest);
      await rejectsWith(ds.pruneEntryEvents(-1), 'ERR_DATASTORE_INVALID_ARGUMENT');
    });

    it('appends node events for create, update, selector changes and delete', async () => {
      const id = `spiffe://${TD}/spire/agent/tpm/n1`;
      await ds.createAttestedNode({ spiffeId: id, attestationDataType: 'tpm' });
      await ds.updateAttestedNode({ spiffeId: id, set: { certSerialNumber: '42' } });
      await ds.setNodeSelectors(id, [sel('tpm', 'pub_hash:ab')]);
      await ds.deleteAttestedNode(id);
      const events = await ds.listAttestedNodeEvents();
      expect(events.map((e) => e.key)).toEqual([id, id, id, id]);
      expect(await ds.getLatestAttestedNodeEventId()).toBe(events[3]!.eventId);
      clock.advance(10_000);
      expect(await ds.pruneAttestedNodeEvents(5)).toBe(4);
      expect(await ds.listAttestedNodeEvents()).toEqual([]);
      // Entry events are separate.
      expect(await ds.listEntryEvents()).toEqual([]);
    });
  });

  describe(`${name}: attested nodes`, () => {
    const nodeId = (n: string) => `spiffe://${TD}/spire/agent/tpm/${n}`;

    it('creates a node with selectors and evidence and reads it back', async () => {
      clock.advance(1000);
      const n = await ds.createAttestedNode({
        spiffeId: nodeId('a'),
        attestationDataType: 'tpm',
        certSerialNumber: '1234',
        certNotAfter: T0S + 3600,
        canReattest: true,
        evidence: JSON.stringify({ ekHash: 'ab', pcrs: { 7: '00' } }),
        selectors: [sel('tpm', 'pub_hash:ab'), sel('tpm', 'ek_manufacturer:IBM')],
      });
      expect(n).toEqual({
        spiffeId: nodeId('a'),
        attestationDataType: 'tpm',
        certSerialNumber: '1234',
        certNotAfter: T0S + 3600,
        newCertSerialNumber: '',
        newCertNotAfter: 0,
        canReattest: true,
        banned: false,
        selectors: [sel('tpm', 'ek_manufacturer:IBM'), sel('tpm', 'pub_hash:ab')],
        evidence: '{"ekHash":"ab","pcrs":{"7":"00"}}',
        createdAt: T0S + 1,
        updatedAt: T0S + 1,
      });
      expect(await ds.getAttestedNode(nodeId('a'))).toEqual(n);
      expect(await ds.getAttestedNode(nodeId('b'))).toBeUndefined();
      await rejectsWith(
        ds.createAttestedNode({ spiffeId: nodeId('a'), attestationDataType: 'tpm' }),
        'ERR_DATASTORE_ALREADY_EXISTS',
      );
      await rejectsWith(
        ds.createAttestedNode({ spiffeId: 'nope', attestationDataType: 'tpm' }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      await rejectsWith(
        ds.createAttestedNode({ spiffeId: nodeId('c'), attestationDataType: '' }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      await rejectsWith(
        ds.createAttestedNode({
          spiffeId: nodeId('c'),
          attestationDataType: 'tpm',
          evidence: '{not json',
        }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      await rejectsWith(
        ds.createAttestedNode({
          spiffeId: nodeId('c'),
          attestationDataType: 'tpm',
          certNotAfter: -1,
        }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      expect(await ds.countAttestedNodes()).toBe(1);
    });

    it('updates masked fields, refreshes last-seen, and bans by clearing serials', async () => {
      const n = await ds.createAttestedNode({
        spiffeId: nodeId('a'),
        attestationDataType: 'tpm',
        certSerialNumber: '1',
        certNotAfter: T0S + 100,
      });
      clock.advance(60_000);
      const u = await ds.updateAttestedNode({
        spiffeId: nodeId('a'),
        set: { newCertSerialNumber: '2', newCertNotAfter: T0S + 200, certSerialNumber: 'ignored' },
        mask: ['newCertSerialNumber', 'newCertNotAfter'],
      });
      expect(u).toEqual({
        ...n,
        newCertSerialNumber: '2',
        newCertNotAfter: T0S + 200,
        updatedAt: T0S + 60,
      });
      const banned = await ds.updateAttestedNode({ spiffeId: nodeId('a'), set: { banned: true } });
      expect(banned).toMatchObject({ banned: true, certSerialNumber: '', newCertSerialNumber: '' });
      await rejectsWith(
        ds.updateAttestedNode({ spiffeId: nodeId('zz'), set: { banned: true } }),
        'ERR_DATASTORE_NOT_FOUND',
      );
      await rejectsWith(
        ds.updateAttestedNode({ spiffeId: nodeId('a'), set: { banned: 'yes' as never } }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      await rejectsWith(
        ds.updateAttestedNode({ spiffeId: nodeId('a'), set: {}, mask: ['attestationDataType'] }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
    });

    it('replaces node selectors atomically and lists them', async () => {
      await ds.createAttestedNode({
        spiffeId: nodeId('a'),
        attestationDataType: 'tpm',
        certNotAfter: T0S + 10,
        selectors: [sel('x', '1')],
      });
      await ds.createAttestedNode({
        spiffeId: nodeId('b'),
        attestationDataType: 'tpm',
        certNotAfter: T0S - 10,
      });
      await ds.setNodeSelectors(nodeId('a'), [sel('tpm', 'b'), sel('tpm', 'a'), sel('tpm', 'a')]);
      expect(await ds.getNodeSelectors(nodeId('a'))).toEqual([sel('tpm', 'a'), sel('tpm', 'b')]);
      await ds.setNodeSelectors(nodeId('b'), [sel('tpm', 'c')]);
      expect(await ds.listNodeSelectors()).toEqual(
        new Map([
          [nodeId('a'), [sel('tpm', 'a'), sel('tpm', 'b')]],
          [nodeId('b'), [sel('tpm', 'c')]],
        ]),
      );
      expect([...(await ds.listNodeSelectors({ validAt: T0S })).keys()]).toEqual([nodeId('a')]);
      await ds.setNodeSelectors(nodeId('a'), []);
      expect(await ds.getNodeSelectors(nodeId('a'))).toEqual([]);
      await rejectsWith(
        ds.setNodeSelectors(nodeId('none'), [sel('x', '1')]),
        'ERR_DATASTORE_NOT_FOUND',
      );
      await rejectsWith(
        ds.setNodeSelectors(nodeId('a'), [sel('x:y', '1')]),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      expect(await ds.getNodeSelectors(nodeId('none'))).toEqual([]);
    });

    it('deletes a node with its selectors', async () => {
      const n = await ds.createAttestedNode({
        spiffeId: nodeId('a'),
        attestationDataType: 'tpm',
        selectors: [sel('x', '1')],
      });
      expect(await ds.deleteAttestedNode(nodeId('a'))).toEqual(n);
      expect(await ds.getAttestedNode(nodeId('a'))).toBeUndefined();
      expect(await ds.getNodeSelectors(nodeId('a'))).toEqual([]);
      await rejectsWith(ds.deleteAttestedNode(nodeId('a')), 'ERR_DATASTORE_NOT_FOUND');
      // The ID is free again.
      await ds.createAttestedNode({ spiffeId: nodeId('a'), attestationDataType: 'tpm' });
    });

    it('filters nodes by type, banned, expiry, re-attestability and selectors, and paginates', async () => {
      const fixtures = [
        {
          n: 'n1',
          type: 'tpm',
          notAfter: T0S + 100,
          reattest: true,
          banned: false,
          sels: [sel('tpm', 'a'), sel('tpm', 'b')],
        },
        {
          n: 'n2',
          type: 'tpm',
          notAfter: T0S - 100,
          reattest: true,
          banned: true,
          sels: [sel('tpm', 'a')],
        },
        {
          n: 'n3',
          type: 'join_token',
          notAfter: T0S + 500,
          reattest: false,
          banned: false,
          sels: [] as Selector[],
        },
        {
          n: 'n4',
          type: 'x509pop',
          notAfter: T0S + 50,
          reattest: true,
          banned: false,
          sels: [sel('tpm', 'b'), sel('x', 'c')],
        },
      ];
      for (const f of fixtures) {
        await ds.createAttestedNode({
          spiffeId: nodeId(f.n),
          attestationDataType: f.type,
          certSerialNumber: '1',
          certNotAfter: f.notAfter,
          canReattest: f.reattest,
          banned: f.banned,
          selectors: f.sels,
        });
      }
      const list = async (r: Parameters<DataStore['listAttestedNodes']>[0]) =>
        (await ds.listAttestedNodes(r)).items.map((n) => n.spiffeId.split('/').pop()).sort();
      expect(await list({ byAttestationType: 'tpm' })).toEqual(['n1', 'n2']);
      expect(await list({ byBanned: true })).toEqual(['n2']);
      expect(await list({ byBanned: false })).toEqual(['n1', 'n3', 'n4']);
      expect(await list({ byExpiresBefore: T0S + 100 })).toEqual(['n2', 'n4']);
      expect(await list({ byCanReattest: false })).toEqual(['n3']);
      expect(
        await list({ bySelectors: { selectors: [sel('tpm', 'a')], match: 'superset' } }),
      ).toEqual(['n1', 'n2']);
      expect(
        await list({
          bySelectors: { selectors: [sel('tpm', 'a'), sel('tpm', 'b')], match: 'subset' },
        }),
      ).toEqual(['n1', 'n2']);
      expect(
        await list({
          bySelectors: { selectors: [sel('tpm', 'a'), sel('tpm', 'b')], match: 'exact' },
        }),
      ).toEqual(['n1']);
      expect(
        await list({ bySelectors: { selectors: [sel('x', 'c'), sel('q', 'q')], match: 'any' } }),
      ).toEqual(['n4']);
      for (const match of ['exact', 'subset', 'superset', 'any'] as const) {
        for (const filter of [
          [sel('tpm', 'a')],
          [sel('tpm', 'b'), sel('x', 'c')],
          [sel('tpm', 'a'), sel('tpm', 'b'), sel('x', 'c')],
        ]) {
          const expected = fixtures
            .filter((f) => matchesSelectors(f.sels, filter, match))
            .map((f) => f.n);
          expect(
            await list({ bySelectors: { selectors: filter, match } }),
            `${match} ${JSON.stringify(filter)}`,
          ).toEqual(expected);
        }
      }
      expect(await list({ byAttestationType: 'tpm', byBanned: false })).toEqual(['n1']);
      expect(await ds.countAttestedNodes({ byCanReattest: true })).toBe(3);
      const p1 = await ds.listAttestedNodes({ pagination: { pageSize: 3 } });
      const p2 = await ds.listAttestedNodes({
        pagination: { pageSize: 3, pageToken: p1.nextPageToken! },
      });
      expect([...p1.items, ...p2.items].map((n) => n.spiffeId)).toEqual(
        fixtures.map((f) => nodeId(f.n)),
      );
      expect(p2.nextPageToken).toBeUndefined();
      await rejectsWith(
        ds.listAttestedNodes({ byExpiresBefore: -1 }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
    });
  });

  describe(`${name}: join tokens`, () => {
    it('stores only the hash and is single use', async () => {
      const token = 'f2d7b1c5-secret-token';
      const rec = await ds.createJoinToken({ token, expiresAt: T0S + 600 });
      expect(rec.tokenHash).toMatch(/^[0-9a-f]{64}$/);
      const rows = await db.sql('SELECT * FROM join_tokens');
      expect(rows).toHaveLength(1);
      expect(JSON.stringify(rows)).not.toContain(token);
      await rejectsWith(
        ds.createJoinToken({ token, expiresAt: T0S + 600 }),
        'ERR_DATASTORE_ALREADY_EXISTS',
      );
      expect(await ds.consumeJoinToken(token, T0S)).toEqual(rec);
      const err = await rejectsWith(ds.consumeJoinToken(token, T0S), 'ERR_DATASTORE_NOT_FOUND');
      expect(err.message).toContain('already used');
      await rejectsWith(ds.consumeJoinToken('never-issued', T0S), 'ERR_DATASTORE_NOT_FOUND');
      await rejectsWith(ds.consumeJoinToken('', T0S), 'ERR_DATASTORE_INVALID_ARGUMENT');
      await rejectsWith(
        ds.createJoinToken({ token: 'x', expiresAt: -1 }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
    });

    it('refuses an expired token (and removes it) and prunes expired tokens', async () => {
      await ds.createJoinToken({ token: 'old', expiresAt: T0S - 1 });
      await ds.createJoinToken({ token: 'edge', expiresAt: T0S });
      await ds.createJoinToken({ token: 'fresh', expiresAt: T0S + 60 });
      const err = await rejectsWith(ds.consumeJoinToken('edge', T0S), 'ERR_DATASTORE_NOT_FOUND');
      expect(err.message).toContain('expired');
      expect(await ds.pruneJoinTokens(T0S)).toBe(1); // 'old'
      expect(await ds.consumeJoinToken('fresh', T0S)).toMatchObject({ expiresAt: T0S + 60 });
    });

    it('lets exactly one of many concurrent consumers on two servers win', async () => {
      const other = await open();
      for (let round = 0; round < 3; round++) {
        const token = `race-${round}`;
        await ds.createJoinToken({ token, expiresAt: T0S + 600 });
        const attempts = Array.from({ length: 12 }, (_, i) =>
          (i % 2 === 0 ? ds : other).consumeJoinToken(token, T0S),
        );
        const results = await Promise.allSettled(attempts);
        const won = results.filter((r) => r.status === 'fulfilled');
        expect(won).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected')
            expect((r.reason as { code?: string }).code).toBe('ERR_DATASTORE_NOT_FOUND');
        }
      }
    });
  });

  describe(`${name}: provisioning tokens`, () => {
    const GW1 = `spiffe://${TD}/gw/1`;
    const GW2 = `spiffe://${TD}/gw/2`;

    it('stores only the hash with the alias, lists without the token, and is single use', async () => {
      const token = 'Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1u';
      const rec = await ds.createProvisioningToken({
        token,
        spiffeId: GW1,
        replace: true,
        expiresAt: T0S + 600,
      });
      expect(rec).toEqual({
        tokenHash: createHash('sha256').update(token).digest('hex'),
        spiffeId: GW1,
        replace: true,
        expiresAt: T0S + 600,
        createdAt: T0S,
      });
      const rows = await db.sql('SELECT * FROM provisioning_tokens');
      expect(JSON.stringify(rows)).not.toContain(token);
      expect(await ds.listProvisioningTokens()).toEqual([rec]);
      await rejectsWith(
        ds.createProvisioningToken({ token, spiffeId: GW2, expiresAt: T0S + 600 }),
        'ERR_DATASTORE_ALREADY_EXISTS',
      );
      expect(await ds.consumeProvisioningToken(token, T0S + 599)).toEqual(rec);
      const err = await rejectsWith(
        ds.consumeProvisioningToken(token, T0S),
        'ERR_DATASTORE_NOT_FOUND',
      );
      expect(err.message).toContain('already used');
      expect(await ds.listProvisioningTokens()).toEqual([]);
      await rejectsWith(
        ds.consumeProvisioningToken('never-issued', T0S),
        'ERR_DATASTORE_NOT_FOUND',
      );
    });

    it('refuses malformed input with ERR_DATASTORE_INVALID_ARGUMENT', async () => {
      await rejectsWith(ds.consumeProvisioningToken('', T0S), 'ERR_DATASTORE_INVALID_ARGUMENT');
      await rejectsWith(
        ds.consumeProvisioningToken('x'.repeat(256), T0S),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      for (const bad of [
        { token: 't', spiffeId: 'not-an-id', expiresAt: T0S },
        { token: 't', spiffeId: GW1, expiresAt: -1 },
        { token: '', spiffeId: GW1, expiresAt: T0S },
        { token: 't', spiffeId: GW1, expiresAt: T0S, replace: 'yes' },
      ]) {
        await rejectsWith(
          ds.createProvisioningToken(bad as never),
          'ERR_DATASTORE_INVALID_ARGUMENT',
        );
      }
      await rejectsWith(ds.deleteProvisioningTokens('nope'), 'ERR_DATASTORE_INVALID_ARGUMENT');
      await rejectsWith(
        ds.listProvisioningTokens({ bySpiffeId: 'nope' }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
    });

    it('refuses an expired token (and deletes it), prunes, filters and revokes by alias', async () => {
      await ds.createProvisioningToken({ token: 'old', spiffeId: GW1, expiresAt: T0S - 1 });
      await ds.createProvisioningToken({ token: 'edge', spiffeId: GW1, expiresAt: T0S });
      const b = await ds.createProvisioningToken({
        token: 'b',
        spiffeId: GW2,
        expiresAt: T0S + 60,
      });
      const a = await ds.createProvisioningToken({
        token: 'a',
        spiffeId: GW1,
        expiresAt: T0S + 90,
      });
      expect(b.replace).toBe(false);
      const err = await rejectsWith(
        ds.consumeProvisioningToken('edge', T0S),
        'ERR_DATASTORE_NOT_FOUND',
      );
      expect(err.message).toContain('expired');
      expect((await ds.listProvisioningTokens()).map((t) => t.expiresAt)).toEqual([
        T0S - 1,
        T0S + 90,
        T0S + 60,
      ]);
      expect(await ds.pruneProvisioningTokens(T0S)).toBe(1); // 'old'
      expect(await ds.listProvisioningTokens({ bySpiffeId: GW1 })).toEqual([a]);
      expect(await ds.deleteProvisioningTokens(GW1)).toBe(1);
      expect(await ds.deleteProvisioningTokens(GW1)).toBe(0);
      expect(await ds.listProvisioningTokens()).toEqual([b]);
      await rejectsWith(ds.consumeProvisioningToken('a', T0S), 'ERR_DATASTORE_NOT_FOUND');
      expect(await ds.consumeProvisioningToken('b', T0S)).toEqual(b);
    });

    it('lets exactly one of many concurrent consumers on two servers win', async () => {
      const other = await open();
      for (let round = 0; round < 3; round++) {
        const token = `race-${round}`;
        await ds.createProvisioningToken({ token, spiffeId: GW1, expiresAt: T0S + 600 });
        const results = await Promise.allSettled(
          Array.from({ length: 12 }, (_, i) =>
            (i % 2 === 0 ? ds : other).consumeProvisioningToken(token, T0S),
          ),
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected')
            expect((r.reason as { code?: string }).code).toBe('ERR_DATASTORE_NOT_FOUND');
        }
      }
    });
  });

  describe(`${name}: bundles`, () => {
    const certA = makeCertificate('A', T0S + 86_400);
    const certB = makeCertificate('B', T0S + 2 * 86_400);
    const certOld = makeCertificate('Old', T0S - 60);
    const jwtKey1 = makeJwtKey();
    const jwtKey2 = makeJwtKey();

    it('builds real certificates for the fixtures', () => {
      expect(new X509Certificate(certA).subject).toBe('CN=A');
    });

    it('creates, gets, lists and counts bundles', async () => {
      const b = await ds.createBundle({
        trustDomain: 'spiffe://example.org',
        x509Authorities: [{ certificateDer: certA }, { certificateDer: certA }],
        jwtAuthorities: [{ keyId: 'k1', publicKeyDer: jwtKey1, notAfter: T0S + 100 }],
        refreshHint: 300,
      });
      expect(b).toEqual({
        trustDomain: 'example.org',
        x509Authorities: [{ certificateDer: certA, notAfter: T0S + 86_400, tainted: false }],
        jwtAuthorities: [
          { keyId: 'k1', publicKeyDer: jwtKey1, notAfter: T0S + 100, tainted: false },
        ],
        refreshHint: 300,
        sequenceNumber: 1,
      });
      expect(await ds.getBundle('example.org')).toEqual(b);
      expect(await ds.getBundle('spiffe://example.org')).toEqual(b);
      expect(await ds.getBundle('other.org')).toBeUndefined();
      await rejectsWith(
        ds.createBundle({ trustDomain: 'example.org' }),
        'ERR_DATASTORE_ALREADY_EXISTS',
      );
      await ds.createBundle({ trustDomain: 'b.org', sequenceNumber: 9 });
      await ds.createBundle({ trustDomain: 'a.org' });
      expect(await ds.countBundles()).toBe(3);
      const p1 = await ds.listBundles({ pagination: { pageSize: 2 } });
      expect(p1.items.map((x) => x.trustDomain)).toEqual(['a.org', 'b.org']);
      const p2 = await ds.listBundles({
        pagination: { pageSize: 2, pageToken: p1.nextPageToken! },
      });
      expect(p2.items.map((x) => x.trustDomain)).toEqual(['example.org']);
      expect(p2.nextPageToken).toBeUndefined();
      expect((await ds.listBundles()).items).toHaveLength(3);
    });

    it('rejects malformed bundles', async () => {
      await rejectsWith(
        ds.createBundle({ trustDomain: 'Bad TD' }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      await rejectsWith(
        ds.createBundle({
          trustDomain: 'x.org',
          x509Authorities: [{ certificateDer: Uint8Array.of(0x30, 0x03, 1, 2, 3) }],
        }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      await rejectsWith(
        ds.createBundle({
          trustDomain: 'x.org',
          jwtAuthorities: [{ keyId: 'k', publicKeyDer: Uint8Array.of(1, 2, 3) }],
        }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      await rejectsWith(
        ds.createBundle({
          trustDomain: 'x.org',
          jwtAuthorities: [
            { keyId: 'k', publicKeyDer: jwtKey1 },
            { keyId: 'k', publicKeyDer: jwtKey2 },
          ],
        }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      await rejectsWith(
        ds.createBundle({ trustDomain: 'x.org', refreshHint: -1 }),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      expect(await ds.countBundles()).toBe(0);
    });

    it('updates with a field mask and compare-and-swap on the sequence number', async () => {
      await ds.createBundle({
        trustDomain: TD,
        x509Authorities: [{ certificateDer: certA }],
        refreshHint: 300,
      });
      const u = await ds.updateBundle({
        bundle: { trustDomain: TD, x509Authorities: [{ certificateDer: certB }], refreshHint: 60 },
        mask: ['refreshHint'],
      });
      expect(u.refreshHint).toBe(60);
      expect(u.x509Authorities.map((a) => a.certificateDer)).toEqual([certA]);
      expect(u.sequenceNumber).toBe(2);
      await rejectsWith(
        ds.updateBundle({ bundle: { trustDomain: TD, refreshHint: 1 }, ifSequenceNumber: 1 }),
        'ERR_DATASTORE_CONFLICT',
      );
      const v = await ds.updateBundle({
        bundle: { trustDomain: TD, sequenceNumber: 40 },
        ifSequenceNumber: 2,
      });
      expect(v.sequenceNumber).toBe(40);
      expect(v.refreshHint).toBe(60);
      await rejectsWith(
        ds.updateBundle({ bundle: { trustDomain: 'none.org', refreshHint: 1 } }),
        'ERR_DATASTORE_NOT_FOUND',
      );
    });

    it('sets (upserts) bundles', async () => {
      const s1 = await ds.setBundle({
        trustDomain: 'fed.org',
        x509Authorities: [{ certificateDer: certA }],
      });
      expect(s1.sequenceNumber).toBe(1);
      const s2 = await ds.setBundle({
        trustDomain: 'fed.org',
        x509Authorities: [{ certificateDer: certB }],
      });
      expect(s2.x509Authorities.map((a) => a.certificateDer)).toEqual([certB]);
      expect(s2.sequenceNumber).toBe(2);
      const s3 = await ds.setBundle({ trustDomain: 'fed.org', sequenceNumber: 77 });
      expect(s3).toEqual({
        trustDomain: 'fed.org',
        x509Authorities: [],
        jwtAuthorities: [],
        refreshHint: 0,
        sequenceNumber: 77,
      });
      expect(await ds.getBundle('fed.org')).toEqual(s3);
    });

    it('appends only new authorities, creating the bundle when needed', async () => {
      const a1 = await ds.appendBundle({
        trustDomain: TD,
        x509Authorities: [{ certificateDer: certA }],
      });
      expect(a1.sequenceNumber).toBe(1);
      const a2 = await ds.appendBundle({
        trustDomain: TD,
        x509Authorities: [{ certificateDer: certA }, { certificateDer: certB }],
        jwtAuthorities: [{ keyId: 'k1', publicKeyDer: jwtKey1 }],
      });
      expect(a2.x509Authorities.map((a) => a.certificateDer)).toEqual([certA, certB]);
      expect(a2.jwtAuthorities.map((a) => a.keyId)).toEqual(['k1']);
      expect(a2.sequenceNumber).toBe(2);
      const same = await ds.appendBundle({
        trustDomain: TD,
        x509Authorities: [{ certificateDer: certB }],
      });
      expect(same.sequenceNumber).toBe(2);
      await rejectsWith(
        ds.appendBundle({
          trustDomain: TD,
          jwtAuthorities: [{ keyId: 'k1', publicKeyDer: jwtKey2 }],
        }),
        'ERR_DATASTORE_CONFLICT',
      );
      expect(await ds.getBundle(TD)).toEqual(a2);
    });

    it('keeps every authority appended concurrently by two servers', async () => {
      const other = await open();
      await ds.createBundle({ trustDomain: TD });
      const certs = Array.from({ length: 16 }, (_, i) =>
        makeCertificate(`C${i}`, T0S + 1000 + i, i + 1),
      );
      const keys = Array.from({ length: 6 }, () => makeJwtKey());
      await Promise.all([
        ...certs.map((c, i) =>
          (i % 2 === 0 ? ds : other).appendBundle({
            trustDomain: TD,
            x509Authorities: [{ certificateDer: c }],
          }),
        ),
        ...keys.map((k, i) =>
          (i % 2 === 0 ? other : ds).appendBundle({
            trustDomain: TD,
            jwtAuthorities: [{ keyId: `k${i}`, publicKeyDer: k }],
          }),
        ),
      ]);
      const b = (await other.getBundle(TD))!;
      expect(b.x509Authorities).toHaveLength(16);
      for (const c of certs)
        expect(b.x509Authorities.some((a) => Buffer.compare(a.certificateDer, c) === 0)).toBe(true);
      expect(b.jwtAuthorities.map((a) => a.keyId).sort()).toEqual([
        'k0',
        'k1',
        'k2',
        'k3',
        'k4',
        'k5',
      ]);
      expect(b.sequenceNumber).toBe(1 + 16 + 6);
    });

    it('deletes bundles per mode: restrict, delete, dissociate', async () => {
      for (const td of ['r.org', 'd.org', 's.org']) await ds.createBundle({ trustDomain: td });
      const [er, ed, es] = await ds.createEntries([
        entryInput('/r', [sel('u', 'r')], { federatesWith: ['r.org'] }),
        entryInput('/d', [sel('u', 'd')], { federatesWith: ['d.org'] }),
        entryInput('/s', [sel('u', 's')], { federatesWith: ['s.org', 'r.org'] }),
      ]);
      const err = await rejectsWith(ds.deleteBundle('r.org'), 'ERR_DATASTORE_CONFLICT');
      expect(err.message).toContain('federated with 2 registration entries');
      expect(await ds.getBundle('r.org')).toBeDefined();
      const mark = await ds.getLatestEntryEventId();
      await ds.deleteBundle('d.org', 'delete');
      expect(await ds.getBundle('d.org')).toBeUndefined();
      expect(await ds.getEntry(ed!.id)).toBeUndefined();
      await ds.deleteBundle('s.org', 'dissociate');
      const s = (await ds.getEntry(es!.id))!;
      expect(s.federatesWith).toEqual(['r.org']);
      expect(s.revisionNumber).toBe(1);
      expect((await ds.listEntryEvents({ greaterThanEventId: mark })).map((e) => e.key)).toEqual([
        ed!.id,
        es!.id,
      ]);
      expect((await ds.getEntry(er!.id))!.federatesWith).toEqual(['r.org']);
      await rejectsWith(ds.deleteBundle('none.org'), 'ERR_DATASTORE_NOT_FOUND');
      await rejectsWith(
        ds.deleteBundle('r.org', 'cascade' as never),
        'ERR_DATASTORE_INVALID_ARGUMENT',
      );
      await ds.deleteBundle('r.org', 'dissociate');
      expect(await ds.countBundles()).toBe(0);
    });

    it('prunes expired authorities but never every X.509 authority', async () => {
      await ds.createBundle({
        trustDomain: TD,
        x509Authorities: [{ certificateDer: certOld }, { certificateDer: certA }],
        jwtAuthorities: [
          { keyId: 'old', publicKeyDer: jwtKey1, notAfter: T0S - 1 },
          { keyId: 'forever', publicKeyDer: jwtKey2 },
        ],
      });
      expect(await ds.pruneBundle(TD, T0S)).toBe(true);
      const b = (await ds.getBundle(TD))!;
      expect(b.x509Authorities.map((a) => a.certificateDer)).toEqual([certA]);
      expect(b.jwtAuthorities.map((a) => a.keyId)).toEqual(['forever']);
      expect(b.sequenceNumber).toBe(2);
      expect(await ds.pruneBundle(TD, T0S)).toBe(false);
      await rejectsWith(ds.pruneBundle(TD, T0S + 10 * 86_400), 'ERR_DATASTORE_CONFLICT');
      expect((await ds.getBundle(TD))!.x509Authorities).toHaveLength(1);
      await rejectsWith(ds.pruneBundle('none.org', T0S), 'ERR_DATASTORE_NOT_FOUND');
    });

    it('taints and revokes authorities (revoking needs a taint first)', async () => {
      await ds.createBundle({
        trustDomain: TD,
        x509Authorities: [{ certificateDer: certA }, { certificateDer: certB }],
        jwtAuthorities: [{ keyId: 'k1', publicKeyDer: jwtKey1 }],
      });
      await rejectsWith(ds.revokeX509Authority(TD, certA), 'ERR_DATASTORE_CONFLICT');
      const t = await ds.taintX509Authority(TD, certA);
      expect(t.x509Authorities.map((a) => a.tainted)).toEqual([true, false]);
      await rejectsWith(ds.taintX509Authority(TD, certA), 'ERR_DATASTORE_CONFLICT');
      const r = await ds.revokeX509Authority(TD, certA);
      expect(r.x509Authorities.map((a) => a.certificateDer)).toEqual([certB]);
      await rejectsWith(ds.taintX509Authority(TD, certOld), 'ERR_DATASTORE_NOT_FOUND');
      await rejectsWith(ds.revokeJwtAuthority(TD, 'k1'), 'ERR_DATASTORE_CONFLICT');
      await ds.taintJwtAuthority(TD, 'k1');
      const rj = await ds.revokeJwtAuthority(TD, 'k1');
      expect(rj.jwtAuthorities).toEqual([]);
      expect(rj.sequenceNumber).toBe(5);
      await rejectsWith(ds.taintJwtAuthority(TD, 'k9'), 'ERR_DATASTORE_NOT_FOUND');
    });
  });

  describe(`${name}: CA journal`, () => {
    it('saves, replaces, loads and deletes journals per key', async () => {
      expect(await ds.loadCaJournal('server-1')).toBeUndefined();
      await ds.saveCaJournal('server-1', Uint8Array.of(1, 2, 3));
      await ds.saveCaJournal('server-2', Uint8Array.of(9));
      await ds.saveCaJournal('server-1', Uint8Array.of(4, 5));
      expect(await ds.loadCaJournal('server-1')).toEqual(Uint8Array.of(4, 5));
      expect(await ds.loadCaJournal('server-2')).toEqual(Uint8Array.of(9));
      await ds.deleteCaJournal('server-2');
      expect(await ds.loadCaJournal('server-2')).toBeUndefined();
      await rejectsWith(ds.deleteCaJournal('server-2'), 'ERR_DATASTORE_NOT_FOUND');
      await rejectsWith(ds.saveCaJournal('', Uint8Array.of(1)), 'ERR_DATASTORE_INVALID_ARGUMENT');
      await rejectsWith(ds.saveCaJournal('k', 'text' as never), 'ERR_DATASTORE_INVALID_ARGUMENT');
    });
  });

  describe(`${name}: schema migrations`, () => {
    it('opens at the latest schema version with every step recorded', async () => {
      expect(await ds.schemaVersion()).toBe(LATEST_SCHEMA_VERSION);
      const rows = await db.sql('SELECT version FROM migrations ORDER BY version');
      expect(rows.map((r) => Number(r.version))).toEqual(
        Array.from({ length: LATEST_SCHEMA_VERSION }, (_, i) => i + 1),
      );
    });

    it('upgrades a v1 database to the latest with its data intact', async () => {
      const old = await factory().newDatabase();
      try {
        await old.migrateTo(1);
        expect((await old.sql('SELECT MAX(version) AS v FROM migrations'))[0]!.v).toBe(1);
        // Rows as the v1 code wrote them (no evidence column yet).
        await old.sql(
          `INSERT INTO bundles (trust_domain, data, sequence_number, created_at, updated_at) VALUES (?, ?, 3, ?, ?)`,
          ['fed.org', JSON.stringify({ v: 1, x509: [], jwt: [], refreshHint: 60 }), T0S, T0S],
        );
        await old.sql(
          `INSERT INTO registered_entries (id, spiffe_id, parent_id, similarity_key, x509_svid_ttl, jwt_svid_ttl,
            dns_names, admin, downstream, store_svid, hint, entry_expiry, revision_number, created_at, updated_at)
           VALUES ('v1-entry', ?, ?, 'legacy-key', 60, 30, '["v1.example"]', TRUE, FALSE, FALSE, 'h', 0, 4, ?, ?)`,
          [`spiffe://${TD}/v1`, AGENT, T0S, T0S],
        );
        await old.sql(
          `INSERT INTO entry_selectors (entry_id, type, value) VALUES ('v1-entry', 'unix', 'uid:7')`,
        );
        await old.sql(
          `INSERT INTO entry_federates_with (entry_id, trust_domain) VALUES ('v1-entry', 'fed.org')`,
        );
        await old.sql(
          `INSERT INTO attested_nodes (spiffe_id, attestation_data_type, cert_serial_number, cert_not_after,
            new_cert_serial_number, new_cert_not_after, can_reattest, banned, created_at, updated_at)
           VALUES (?, 'tpm', '99', ?, '', 0, TRUE, FALSE, ?, ?)`,
          [`spiffe://${TD}/spire/agent/tpm/old`, T0S + 60, T0S, T0S],
        );
        await old.sql(
          `INSERT INTO node_selectors (spiffe_id, type, value) VALUES (?, 'tpm', 'pub_hash:01')`,
          [`spiffe://${TD}/spire/agent/tpm/old`],
        );
        const up = await old.open({ clock });
        try {
          expect(await up.schemaVersion()).toBe(LATEST_SCHEMA_VERSION);
          expect(await up.getEntry('v1-entry')).toEqual({
            id: 'v1-entry',
            spiffeId: `spiffe://${TD}/v1`,
            parentId: AGENT,
            selectors: [sel('unix', 'uid:7')],
            x509SvidTtl: 60,
            jwtSvidTtl: 30,
            dnsNames: ['v1.example'],
            federatesWith: ['fed.org'],
            admin: true,
            downstream: false,
            hint: 'h',
            storeSvid: false,
            entryExpiry: 0,
            revisionNumber: 4,
            createdAt: T0S,
          });
          expect(await up.getAttestedNode(`spiffe://${TD}/spire/agent/tpm/old`)).toMatchObject({
            certSerialNumber: '99',
            canReattest: true,
            evidence: '',
            selectors: [sel('tpm', 'pub_hash:01')],
          });
          expect((await up.getBundle('fed.org'))!.sequenceNumber).toBe(3);
          // The upgraded database works normally.
          const e = await up.updateEntry({ id: 'v1-entry', set: { hint: 'upgraded' } });
          expect(e.revisionNumber).toBe(5);
        } finally {
          await up.close();
        }
      } finally {
        await old.dispose();
      }
    });

    it('refuses to open a database whose schema is newer than the code', async () => {
      await db.sql(
        `INSERT INTO migrations (version, name, applied_at) VALUES (?, 'from the future', 0)`,
        [LATEST_SCHEMA_VERSION + 1],
      );
      const err = await rejectsWith(db.open({ clock }), 'ERR_DATASTORE_SCHEMA_UNSUPPORTED');
      expect(err.message).toContain(`version ${LATEST_SCHEMA_VERSION + 1}`);
    });

    it('migrates once when several servers open a fresh database at the same time', async () => {
      const fresh = await factory().newDatabase();
      try {
        const stores = await Promise.all([
          fresh.open({ clock }),
          fresh.open({ clock }),
          fresh.open({ clock }),
        ]);
        try {
          const rows = await fresh.sql('SELECT version FROM migrations ORDER BY version');
          expect(rows.map((r) => Number(r.version))).toEqual(
            Array.from({ length: LATEST_SCHEMA_VERSION }, (_, i) => i + 1),
          );
          await stores[0]!.createEntry(entryInput('/x', [sel('u', '1')]));
          expect(await stores[2]!.countEntries()).toBe(1);
        } finally {
          for (const s of stores) await s.close();
        }
      } finally {
        await fresh.dispose();
      }
    });
  });

  describe(`${name}: two servers on one database`, () => {
    it("see each other's entries, nodes and events", async () => {
      const other = await open();
      const mark = await other.getLatestEntryEventId();
      const a = await ds.createEntry(entryInput('/from-a', [sel('u', 'a')]));
      expect(await other.getEntry(a.id)).toEqual(a);
      const b = await other.createEntry(entryInput('/from-b', [sel('u', 'b')]));
      const u = await ds.updateEntry({ id: b.id, set: { hint: 'touched by a' } });
      expect((await other.getEntry(b.id))!.hint).toBe('touched by a');
      expect(u.revisionNumber).toBe(1);
      const seenByA = await ds.listEntryEvents({ greaterThanEventId: mark });
      const seenByB = await other.listEntryEvents({ greaterThanEventId: mark });
      expect(seenByA).toEqual(seenByB);
      expect(seenByA.map((e) => e.key)).toEqual([a.id, b.id, b.id]);
      await other.createAttestedNode({
        spiffeId: `spiffe://${TD}/spire/agent/x/1`,
        attestationDataType: 'x',
      });
      expect(await ds.countAttestedNodes()).toBe(1);
      expect((await ds.listAttestedNodeEvents()).map((e) => e.key)).toEqual([
        `spiffe://${TD}/spire/agent/x/1`,
      ]);
      // Concurrent creations from both servers: all land, events are unique and increasing.
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 === 0 ? ds : other).createEntry(entryInput(`/c/${i}`, [sel('c', `${i}`)])),
        ),
      );
      const all = await other.listEntryEvents({ greaterThanEventId: mark });
      expect(all).toHaveLength(23);
      expect(new Set(all.map((e) => e.eventId)).size).toBe(23);
      expect(await ds.countEntries()).toBe(22);
    });
  });

  describe(`${name}: lifecycle`, () => {
    it('rejects calls after close', async () => {
      const s = await open();
      await s.close();
      await rejectsWith(s.countEntries(), 'ERR_DATASTORE_INTERNAL');
      await s.close(); // idempotent
    });
  });
}
