/**
 * The Workload API's identity source over the agent store: selector subset matching, identities
 * only for SVIDs minted for the entry's current SPIFFE ID, bundles (X.509 and JWT) from the
 * stored records, a notification after every committed write, readiness (warm store at once,
 * cold store after the first sync), and JWT-SVIDs through the cache. Also the backoff and
 * lifetime arithmetic the managers share.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Backoff } from '../../../src/agent/manager/backoff.js';
import { SvidCache } from '../../../src/agent/manager/cache.js';
import { StoreIdentitySource } from '../../../src/agent/manager/identity-source.js';
import {
  halfLifeAt,
  issuedAtEstimate,
  jwtRenewAt,
  rotationAt,
} from '../../../src/agent/manager/lifetime.js';
import { seededRandom } from '../../../src/common/random.js';
import { entry, FakeServer, type StoreFixture, storeFixture, TD } from './manager-support.js';

let f: StoreFixture;
let server: FakeServer;
let cache: SvidCache;

beforeEach(async () => {
  f = await storeFixture();
  server = await FakeServer.create(f.clock);
  cache = new SvidCache({ store: f.managed, server, trustDomain: TD, clock: f.clock });
});
afterEach(async () => {
  await f.close();
});

const uid = (n: number) => ({ type: 'unix', value: `uid:${n}` });
const gid = (n: number) => ({ type: 'unix', value: `gid:${n}` });

async function seed() {
  await f.store.setBundle(server.bundleRecord());
  const a = server.put(entry('a', { selectors: [uid(1000)], hint: 'h' }));
  const b = server.put(entry('b', { selectors: [uid(1000), gid(50)] }));
  const c = server.put(entry('c', { selectors: [uid(2000)] }));
  await f.managed.write((_s, tx) => tx.putEntry(a).putEntry(b).putEntry(c));
  await cache.reconcile();
}

describe('StoreIdentitySource', () => {
  it('offers the entries whose selectors are a subset of the workload’s', async () => {
    await seed();
    const src = new StoreIdentitySource({ store: f.managed, jwt: cache });
    const ids = (sel: Array<{ type: string; value: string }>) =>
      src
        .identitiesFor(sel)
        .map((i) => i.entryId)
        .sort();
    expect(ids([uid(1000)])).toEqual(['a']);
    expect(ids([uid(1000), gid(50), gid(7)])).toEqual(['a', 'b']);
    expect(ids([gid(50)])).toEqual([]);
    expect(ids([uid(2000)])).toEqual(['c']);
    expect(ids([])).toEqual([]);
    const a = src.identitiesFor([uid(1000)])[0]!;
    const svid = f.store.x509Svid('a')!;
    expect(a).toMatchObject({
      spiffeId: 'spiffe://example.org/workload/a',
      hint: 'h',
      certChain: svid.certChain,
      privateKeyPkcs8: svid.privateKey,
      expiresAt: new Date(svid.expiresAtMs),
    });
  });

  it('answers the same selector set with the same array until the store changes', async () => {
    await seed();
    const src = new StoreIdentitySource({ store: f.managed, jwt: cache });
    const first = src.identitiesFor([uid(1000), gid(50)]);
    // another call's selectors: equal content, new objects
    expect(src.identitiesFor([{ ...uid(1000) }, { ...gid(50) }])).toBe(first);
    expect(first.map((i) => i.entryId).sort()).toEqual(['a', 'b']);
    // a different set is a different answer
    expect(src.identitiesFor([uid(1000)]).map((i) => i.entryId)).toEqual(['a']);
    await f.managed.write((_s, tx) => tx.deleteEntry('b').deleteX509Svid('b'));
    const after = src.identitiesFor([uid(1000), gid(50)]);
    expect(after).not.toBe(first);
    expect(after.map((i) => i.entryId)).toEqual(['a']);
  });

  it('never lets two different selector sets share a remembered answer', async () => {
    await f.store.setBundle(server.bundleRecord());
    // values a naive join of `type:value` texts would confuse: {"unix:a\nunix:b"} vs {unix:a, unix:b}
    const joined = server.put(entry('j', { selectors: [{ type: 'unix', value: 'a\nunix:b' }] }));
    const pair = server.put(
      entry('p', {
        selectors: [
          { type: 'unix', value: 'a' },
          { type: 'unix', value: 'b' },
        ],
      }),
    );
    await f.managed.write((_s, tx) => tx.putEntry(joined).putEntry(pair));
    await cache.reconcile();
    const src = new StoreIdentitySource({ store: f.managed, jwt: cache });
    const ids = (sel: Array<{ type: string; value: string }>) =>
      src.identitiesFor(sel).map((i) => i.entryId);
    expect(ids([{ type: 'unix', value: 'a\nunix:b' }])).toEqual(['j']);
    expect(
      ids([
        { type: 'unix', value: 'a' },
        { type: 'unix', value: 'b' },
      ]),
    ).toEqual(['p']);
    expect(ids([{ type: 'unix', value: 'a\nunix:b' }])).toEqual(['j']);
    // more distinct sets than the memo holds: still right for each
    for (let n = 0; n < 1100; n++) expect(ids([uid(n)])).toEqual([]);
    expect(
      ids([
        { type: 'unix', value: 'b' },
        { type: 'unix', value: 'a' },
      ]),
    ).toEqual(['p']);
  });

  it('holds back an identity whose entry changed its SPIFFE ID until the new SVID is minted', async () => {
    await seed();
    const src = new StoreIdentitySource({ store: f.managed, jwt: cache });
    const renamed = server.put({
      ...entry('a'),
      selectors: [uid(1000)],
      spiffeId: 'spiffe://example.org/new',
    });
    await f.managed.write((_s, tx) => tx.putEntry(renamed));
    expect(src.identitiesFor([uid(1000)])).toEqual([]);
    await cache.reconcile();
    expect(src.identitiesFor([uid(1000)]).map((i) => i.spiffeId)).toEqual([
      'spiffe://example.org/new',
    ]);
  });

  it('notifies after every committed write, not after empty ones; unsubscribes', async () => {
    await seed();
    const src = new StoreIdentitySource({ store: f.managed, jwt: cache });
    let calls = 0;
    const off = src.subscribe(() => calls++);
    expect(src.listenerCount).toBe(1);
    await f.managed.write((_s, tx) => tx.deleteEntry('c').deleteX509Svid('c'));
    expect(calls).toBe(1);
    await f.managed.write(() => {});
    expect(calls).toBe(1);
    off();
    await f.managed.write((_s, tx) => tx.deleteEntry('b'));
    expect(calls).toBe(1);
    expect(src.listenerCount).toBe(0);
  });

  it('is ready at once on a warm store, otherwise after markReady, and never without a bundle', async () => {
    const cold = new StoreIdentitySource({ store: f.managed, jwt: cache });
    expect(cold.ready()).toBe(false);
    cold.markReady();
    expect(cold.ready()).toBe(false); // still no bundle
    await seed();
    expect(cold.ready()).toBe(true);
    await f.store.update((tx) =>
      tx.setSyncState({ lastSyncAtMs: 1, lastFullSyncAtMs: 1, cursor: '' }),
    );
    await f.reopen();
    const warm = new StoreIdentitySource({ store: f.managed, jwt: cache });
    expect(warm.ready()).toBe(true);
  });

  it('serves the stored bundles as X.509 and JWT bundles, and federated ones by name', async () => {
    await seed();
    await f.store.update((tx) =>
      tx.putFederatedBundle({ ...server.bundleRecord(), trustDomain: 'partner.example' }),
    );
    const src = new StoreIdentitySource({ store: f.managed, jwt: cache });
    const b = src.bundle();
    expect(b.x509.trustDomain.name).toBe('example.org');
    expect(b.x509.x509Authorities).toEqual([server.caDer]);
    expect([...b.jwt.jwtAuthorities.keys()]).toEqual(['jwt-1']);
    expect(src.bundle()).toBe(b); // converted once per record
    const fed = src.federatedBundles(['partner.example', 'unknown.example']);
    expect([...fed.keys()]).toEqual(['partner.example']);
  });

  it('hands JWT-SVIDs out through the cache', async () => {
    await seed();
    const src = new StoreIdentitySource({ store: f.managed, jwt: cache });
    const id = src.identitiesFor([uid(2000)])[0]!;
    const t = await src.fetchJwtSvid(id, ['aud']);
    expect(f.store.jwtSvid(id.spiffeId, ['aud'])?.token).toBe(t.token);
  });
});

describe('backoff and lifetimes', () => {
  it('Backoff doubles from the first delay to the cap, jittered within ±10 %, and resets', () => {
    const b = new Backoff({ initialMs: 1000, maxMs: 60_000, random: seededRandom(1) });
    const got = Array.from({ length: 10 }, () => b.next());
    got.forEach((d, i) => {
      const base = Math.min(60_000, 1000 * 2 ** i);
      expect(d).toBeGreaterThanOrEqual(base * 0.9 - 1);
      expect(d).toBeLessThanOrEqual(Math.min(60_000, base * 1.1 + 1));
    });
    expect(b.failures).toBe(10);
    b.reset();
    expect(b.next()).toBeLessThanOrEqual(1100);
    expect(() => new Backoff({ initialMs: 0, maxMs: 1 })).toThrow(TypeError);
    expect(() => new Backoff({ initialMs: 10, maxMs: 5 })).toThrow(TypeError);
  });

  it('half-life counts from the issue time, not the backdated NotBefore', () => {
    const nb = 1_000_000;
    // A 1 h SVID backdated 10 s: issued at nb + 10 s, renewed 30 min later.
    expect(issuedAtEstimate(nb, nb + 3_610_000)).toBe(nb + 10_000);
    expect(halfLifeAt(nb, nb + 3_610_000)).toBe(nb + 10_000 + 1_800_000);
    // A 10 s certificate: the cushion is at most half the validity.
    expect(issuedAtEstimate(nb, nb + 10_000)).toBe(nb + 5_000);
    const r = seededRandom(9);
    for (let i = 0; i < 200; i++) {
      const at = rotationAt(nb, nb + 3_610_000, r);
      expect(at).toBeGreaterThanOrEqual(nb + 10_000 + 1_620_000);
      expect(at).toBeLessThanOrEqual(nb + 10_000 + 1_980_000);
    }
    expect(jwtRenewAt(0, 300_000)).toBe(150_000);
  });
});
