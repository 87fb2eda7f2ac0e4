/**
 * The event-driven cache updater against a real SQLite datastore in a temp dir (two
 * connections to one database stand in for two servers sharing PostgreSQL).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../src/common/clock.js';
import { AuthorizedEntries } from '../../../../src/server/authz/authorized-entries.js';
import { noMetrics } from '../../../../src/server/context.js';
import { openDataStore } from '../../../../src/server/datastore/index.js';
import type { ChangeEvent, DataStore, Selector } from '../../../../src/server/datastore/types.js';

const TD = 'example.org';
const SERVER = 'spiffe://example.org/spire/server';
const AGENT = 'spiffe://example.org/spire/agent/x509pop/a1';
const T0 = Date.UTC(2026, 0, 1);
const sel = (value: string): Selector => ({ type: 'x509pop', value });

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  const dir = await mkdtemp(join(tmpdir(), 'authz-'));
  const clock = new ManualClock(T0);
  const path = join(dir, 'datastore.sqlite3');
  const ds = await openDataStore({ databaseType: 'sqlite3', connectionString: path, clock });
  cleanups.push(async () => {
    await ds.close();
    await rm(dir, { recursive: true, force: true });
  });
  const second = async () => {
    const ds2 = await openDataStore({ databaseType: 'sqlite3', connectionString: path, clock });
    cleanups.push(() => ds2.close());
    return ds2;
  };
  return { ds, clock, second };
}

async function start(ds: DataStore, clock: ManualClock, extra: object = {}) {
  const sizes: number[] = [];
  const a = await AuthorizedEntries.start({
    dataStore: ds,
    trustDomain: TD,
    clock,
    pollIntervalMs: 0,
    metrics: { ...noMetrics, authorizedEntriesCacheSize: (n) => sizes.push(n) },
    ...extra,
  });
  cleanups.push(() => a.close());
  return { a, sizes };
}

const ids = (list: { id: string }[]) => list.map((e) => e.id).sort();

/** The datastore with `listEntryEvents` replaced (methods stay bound to the real store). */
function withEntryEvents(
  ds: DataStore,
  list: (req: { greaterThanEventId?: number }) => Promise<ChangeEvent[]>,
): DataStore {
  return new Proxy(ds, {
    get(target, prop) {
      if (prop === 'listEntryEvents') return list;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

describe('AuthorizedEntries', () => {
  it('builds the cache from the datastore, then follows entry events', async () => {
    const { ds, clock } = await setup();
    await ds.createEntry({
      id: 'alias',
      spiffeId: 'spiffe://example.org/node/eu',
      parentId: SERVER,
      selectors: [sel('subject:cn:eu')],
    });
    await ds.createEntry({
      id: 'w1',
      spiffeId: 'spiffe://example.org/eu/app',
      parentId: 'spiffe://example.org/node/eu',
      selectors: [sel('x')],
    });
    await ds.createAttestedNode({
      spiffeId: AGENT,
      attestationDataType: 'x509pop',
      certSerialNumber: '1',
      certNotAfter: T0 / 1000 + 3600,
      selectors: [sel('subject:cn:eu')],
    });
    const { a, sizes } = await start(ds, clock);
    expect(ids(a.getAuthorizedEntries(AGENT))).toEqual(['w1']);
    expect(sizes.at(-1)).toBe(2);

    await ds.createEntry({
      id: 'w2',
      spiffeId: 'spiffe://example.org/direct',
      parentId: AGENT,
      selectors: [sel('y')],
    });
    await ds.updateEntry({ id: 'w1', set: { dnsNames: ['app.example.org'] } });
    expect(ids(a.getAuthorizedEntries(AGENT))).toEqual(['w1']); // not yet polled
    const r = await a.poll();
    expect(r).toEqual({ entriesUpdated: 2, agentsUpdated: 0, reloaded: false });
    const got = a.getAuthorizedEntries(AGENT);
    expect(ids(got)).toEqual(['w1', 'w2']);
    expect(got.find((e) => e.id === 'w1')?.dnsNames).toEqual(['app.example.org']);
    expect(sizes.at(-1)).toBe(3);

    await ds.deleteEntry('alias');
    await a.poll();
    expect(ids(a.getAuthorizedEntries(AGENT))).toEqual(['w2']);
    expect(a.lookupAuthorizedEntries(AGENT, new Set(['w1', 'w2'])).has('w1')).toBe(false);
  });

  it('follows attested-node events: selector changes and deletion', async () => {
    const { ds, clock } = await setup();
    await ds.createEntry({
      id: 'alias',
      spiffeId: 'spiffe://example.org/node/gw',
      parentId: SERVER,
      selectors: [sel('san:role:gw')],
    });
    await ds.createEntry({
      id: 'w',
      spiffeId: 'spiffe://example.org/gw/app',
      parentId: 'spiffe://example.org/node/gw',
      selectors: [sel('x')],
    });
    await ds.createAttestedNode({
      spiffeId: AGENT,
      attestationDataType: 'x509pop',
      certSerialNumber: '1',
      certNotAfter: T0 / 1000 + 3600,
      selectors: [sel('other')],
    });
    const { a } = await start(ds, clock);
    expect(a.getAuthorizedEntries(AGENT)).toEqual([]);
    await ds.setNodeSelectors(AGENT, [sel('san:role:gw'), sel('other')]);
    expect((await a.poll()).agentsUpdated).toBe(1);
    expect(ids(a.getAuthorizedEntries(AGENT))).toEqual(['w']);
    await ds.deleteAttestedNode(AGENT);
    await a.poll();
    expect(a.getAuthorizedEntries(AGENT)).toEqual([]);
    expect(a.cache.stats().agents).toBe(0);
  });

  it('lets a second server on the same database see the first one’s changes', async () => {
    const { ds, clock, second } = await setup();
    const ds2 = await second();
    const { a: serverA } = await start(ds, clock);
    const { a: serverB } = await start(ds2, clock);
    await ds.createEntry({
      id: 'w',
      spiffeId: 'spiffe://example.org/w',
      parentId: AGENT,
      selectors: [sel('x')],
    });
    await serverB.poll();
    await serverA.poll();
    expect(ids(serverB.getAuthorizedEntries(AGENT))).toEqual(['w']);
    expect(ids(serverA.getAuthorizedEntries(AGENT))).toEqual(['w']);
    await ds2.deleteEntry('w');
    await serverA.poll();
    expect(serverA.getAuthorizedEntries(AGENT)).toEqual([]);
  });

  it('tracks a skipped event ID and applies it when it shows up late', async () => {
    const { ds, clock } = await setup();
    let hide: number | undefined;
    const view = withEntryEvents(ds, async (req) =>
      (await ds.listEntryEvents(req)).filter((e) => e.eventId !== hide),
    );
    const { a } = await start(view, clock, { eventTimeoutMs: 60_000 });
    const e1 = await ds.createEntry({
      id: 'late',
      spiffeId: 'spiffe://example.org/late',
      parentId: AGENT,
      selectors: [sel('x')],
    });
    await ds.createEntry({
      id: 'on-time',
      spiffeId: 'spiffe://example.org/t',
      parentId: AGENT,
      selectors: [sel('x')],
    });
    expect(e1.id).toBe('late');
    hide = (await ds.getLatestEntryEventId()) - 1; // the event of "late" is not visible yet
    await a.poll();
    expect(ids(a.getAuthorizedEntries(AGENT))).toEqual(['on-time']);
    expect(a.trackedGaps.entries).toBe(1);
    hide = undefined; // its transaction "commits"
    await a.poll();
    expect(ids(a.getAuthorizedEntries(AGENT))).toEqual(['late', 'on-time']);
    expect(a.trackedGaps.entries).toBe(0);

    // a gap that never fills is forgotten after the event timeout
    await ds.createEntry({
      id: 'lost',
      spiffeId: 'spiffe://example.org/l',
      parentId: AGENT,
      selectors: [sel('x')],
    });
    await ds.createEntry({
      id: 'next',
      spiffeId: 'spiffe://example.org/n',
      parentId: AGENT,
      selectors: [sel('x')],
    });
    hide = (await ds.getLatestEntryEventId()) - 1;
    await a.poll();
    expect(a.trackedGaps.entries).toBe(1);
    clock.advance(61_000);
    await a.poll();
    expect(a.trackedGaps.entries).toBe(0);
  });

  it('falls back to a full reload when a gap is too wide to track', async () => {
    const { ds, clock } = await setup();
    let hideBelow = 0;
    const view = withEntryEvents(ds, async (req) =>
      (await ds.listEntryEvents(req)).filter((e) => e.eventId >= hideBelow),
    );
    const { a } = await start(view, clock, { maxTrackedGaps: 2 });
    for (let i = 0; i < 5; i++) {
      await ds.createEntry({
        id: `e${i}`,
        spiffeId: `spiffe://example.org/e${i}`,
        parentId: AGENT,
        selectors: [sel('x')],
      });
    }
    hideBelow = await ds.getLatestEntryEventId(); // as if pruned while we were away
    const r = await a.poll();
    expect(r.reloaded).toBe(true);
    expect(ids(a.getAuthorizedEntries(AGENT))).toEqual(['e0', 'e1', 'e2', 'e3', 'e4']);
  });

  it('polls on its timer and prunes old events', async () => {
    const { ds, clock } = await setup();
    const { a } = await start(ds, clock, {
      pollIntervalMs: 1000,
      pruneEventsOlderThanSeconds: 60,
    });
    await ds.createEntry({
      id: 'w',
      spiffeId: 'spiffe://example.org/w',
      parentId: AGENT,
      selectors: [sel('x')],
    });
    clock.advance(1000);
    await a.poll(); // queued behind the timer's poll
    expect(ids(a.getAuthorizedEntries(AGENT))).toEqual(['w']);
    expect((await ds.listEntryEvents()).length).toBe(1);
    clock.advance(120_000); // pruning runs every 30 s and deletes events older than 60 s
    await a.poll();
    clock.advance(1000);
    await a.poll();
    expect(await ds.listEntryEvents()).toEqual([]);
    await a.close();
    expect(clock.pendingTimers).toBe(0);
  });
});
