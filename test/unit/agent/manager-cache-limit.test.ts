/**
 * `x509_svid_cache_max_size` (SPIRE's LRU SVID cache) on a manual clock, a fake server with a
 * real CA and a real LevelDB store, through the SVID cache and the Workload API's identity
 * source: within the limit every entry is pre-minted; beyond it only as many as fit (most
 * recently used first), an entry an open stream asks for is minted at once whatever the limit
 * and its stream waits for it; the least recently used SVIDs without an open stream go first
 * when the cache is over the limit; SVIDs of open streams are never removed (a soft limit).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SvidCache } from '../../../src/agent/manager/cache.js';
import { StoreIdentitySource } from '../../../src/agent/manager/identity-source.js';
import { seededRandom } from '../../../src/common/random.js';
import { entry, FakeServer, type StoreFixture, storeFixture, TD } from './manager-support.js';

let f: StoreFixture;
let server: FakeServer;

beforeEach(async () => {
  f = await storeFixture();
  server = await FakeServer.create(f.clock);
  await f.store.setBundle(server.bundleRecord());
});
afterEach(async () => {
  await f.close();
});

/** Entries `ids`, entry `id` selecting `unix:uid:<n>` where n is its position + 1000. */
async function authorize(...ids: string[]) {
  const recs = ids.map((id, i) =>
    server.put(entry(id, { selectors: [{ type: 'unix', value: `uid:${1000 + i}` }] })),
  );
  await f.managed.write((_s, tx) => {
    for (const r of recs) tx.putEntry(r);
  });
  return recs;
}

const uid = (n: number) => [{ type: 'unix', value: `uid:${n}` }];

function setup(x509CacheMaxSize: number) {
  const cache = new SvidCache({
    store: f.managed,
    server,
    trustDomain: TD,
    clock: f.clock,
    random: seededRandom(3),
    x509CacheMaxSize,
  });
  const source = new StoreIdentitySource({
    store: f.managed,
    jwt: cache,
    svids: cache,
    clock: f.clock,
    readyAtStart: true,
  });
  return { cache, source };
}

const cached = () => [...f.store.snapshot.x509Svids.keys()].sort();

/** Waits (real time) until `cond` holds: key generation and store writes run on the pool. */
async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Fires the cache's on-demand mint timer (due after `ms`). */
async function fireDemand(ms = 0): Promise<void> {
  await f.clock.waitForTimer();
  f.clock.advance(ms);
}

describe('x509_svid_cache_max_size', () => {
  it('mints every entry within the limit; beyond it only as many as fit', async () => {
    await authorize('a', 'b', 'c');
    const within = setup(3);
    expect(within.cache.limited()).toBe(false);
    expect(await within.cache.reconcile()).toEqual({ minted: 3, failed: 0 });
    expect(cached()).toEqual(['a', 'b', 'c']);

    await f.managed.write((_s, tx) => {
      for (const id of ['d', 'e']) tx.putEntry(server.put(entry(id)));
    });
    expect(within.cache.limited()).toBe(true);
    // no room: d and e wait for a workload to ask for them
    expect(within.cache.due().map((e) => e.id)).toEqual([]);
    expect(await within.cache.reconcile()).toEqual({ minted: 0, failed: 0 });
    expect(cached()).toEqual(['a', 'b', 'c']);
    within.cache.close();
  });

  it('fills the room by most recent use, then by entry ID', async () => {
    await authorize('a', 'b', 'c', 'd', 'e');
    const { cache, source } = setup(2);
    // d was asked for (a stream opened and closed again) before anything was minted
    source.retain(uid(1003))();
    expect(cache.due().map((e) => e.id)).toEqual(['d', 'a']);
    expect(await cache.reconcile()).toEqual({ minted: 2, failed: 0 });
    expect(cached()).toEqual(['a', 'd']);
    cache.close();
  });

  it('mints at once for a stream that asks beyond the limit, makes it wait until then, and evicts the least recently used later', async () => {
    await authorize('a', 'b', 'c', 'd');
    const { cache, source } = setup(3);
    await cache.reconcile();
    expect(cached()).toEqual(['a', 'b', 'c']);
    // b and c are used (streams opened and ended), a never
    f.clock.advance(1000);
    source.retain(uid(1001))();
    f.clock.advance(1000);
    source.retain(uid(1002))();

    // a workload with d's selectors opens a stream: d has no SVID, the limit held it back
    expect(source.identitiesFor(uid(1003))).toEqual([]);
    expect(source.pendingFor(uid(1003))).toBe(true);
    expect(source.pendingFor(uid(1001))).toBe(false);
    const release = source.retain(uid(1003));
    expect(server.calls.batch).toBe(1);
    // minted by the cache itself, without waiting for the next sync
    await fireDemand();
    await until('d to be minted', () => f.store.snapshot.x509Svids.has('d'));
    expect(server.calls.batch).toBe(2);
    expect(cached()).toEqual(['a', 'b', 'c', 'd']);
    expect(source.pendingFor(uid(1003))).toBe(false);
    expect(source.identitiesFor(uid(1003)).map((i) => i.entryId)).toEqual(['d']);

    // the next reconcile (a sync) removes the least recently used SVID without a stream: a
    await cache.reconcile();
    expect(cached()).toEqual(['b', 'c', 'd']);
    // d's stream ends; a stream for a comes: a is minted (4 SVIDs), and the reconcile after
    // removes b, the least recently used of those without a stream
    release();
    f.clock.advance(1000);
    const releaseA = source.retain(uid(1000));
    await cache.reconcile();
    expect(cached()).toEqual(['a', 'b', 'c', 'd']);
    await cache.reconcile();
    expect(cached()).toEqual(['a', 'c', 'd']);
    releaseA();
    cache.close();
  });

  it('never removes the SVIDs of open streams: a soft limit', async () => {
    await authorize('a', 'b', 'c', 'd');
    const { cache, source } = setup(2);
    const releases = [1000, 1001, 1002, 1003].map((n) => source.retain(uid(n)));
    expect(cache.streamCount).toBe(4);
    await cache.reconcile();
    expect(cached()).toEqual(['a', 'b', 'c', 'd']);
    await cache.reconcile();
    expect(cached()).toEqual(['a', 'b', 'c', 'd']);
    // the streams end: the next reconcile brings the cache back to the limit (all were used
    // at the same instant, so by entry ID: a and b go)
    for (const r of releases) r();
    releases[0]!(); // releasing twice is harmless
    expect(cache.streamCount).toBe(0);
    await cache.reconcile();
    expect(cached()).toEqual(['c', 'd']);
    cache.close();
  });

  it('keeps waiting streams waiting while the server cannot mint, retrying with backoff', async () => {
    await authorize('a', 'b');
    const { cache, source } = setup(1);
    await cache.reconcile();
    expect(cached()).toEqual(['a']);
    server.unreachable = true;
    const before = server.calls.batch;
    const release = source.retain(uid(1001));
    await fireDemand();
    await until('the failed mint', () => server.calls.batch === before + 1);
    expect(source.pendingFor(uid(1001))).toBe(true);
    // retried after 1 s (500 ms doubled), not sooner
    await f.clock.waitForTimer();
    f.clock.advance(999);
    await new Promise((r) => setTimeout(r, 20));
    expect(server.calls.batch).toBe(before + 1);
    server.unreachable = false;
    f.clock.advance(1);
    await until('b to be minted', () => f.store.snapshot.x509Svids.has('b'));
    expect(server.calls.batch).toBe(before + 2);
    expect(source.pendingFor(uid(1001))).toBe(false);
    release();
    cache.close();
  });

  it('gives memory back after a reconcile that minted many SVIDs, not after small ones', async () => {
    const ids = Array.from({ length: 60 }, (_, i) => `e${String(i).padStart(2, '0')}`);
    await authorize(...ids.slice(0, 10));
    let released = 0;
    const cache = new SvidCache({
      store: f.managed,
      server,
      trustDomain: TD,
      clock: f.clock,
      random: seededRandom(3),
      releaseMemory: () => {
        released++;
      },
    });
    expect(await cache.reconcile()).toEqual({ minted: 10, failed: 0 });
    expect(released).toBe(0);
    await authorize(...ids);
    expect((await cache.reconcile()).minted).toBeGreaterThanOrEqual(50);
    expect(released).toBe(1);
    expect(await cache.reconcile()).toEqual({ minted: 0, failed: 0 });
    expect(released).toBe(1);
    cache.close();
  });

  it('refuses a limit that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => setup(bad)).toThrow(TypeError);
    }
  });
});
