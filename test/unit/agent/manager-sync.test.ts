/**
 * The sync loop on a manual clock against a fake server and a real store: one store batch per
 * sync (entries, deletions with their SVIDs and JWT-SVIDs, bundles, sync state), the revision
 * protocol, backoff from the interval to the 8 min cap with jitter while the server is
 * unreachable, reset on success, rejections handed to the identity manager, early cycles for
 * rotation, and the sync state written at most once a minute when nothing changes.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SvidCache } from '../../../src/agent/manager/cache.js';
import type { AgentRejection } from '../../../src/agent/manager/server-client.js';
import {
  MAX_SYNC_BACKOFF_MS,
  SYNC_STATE_WRITE_INTERVAL_MS,
  SyncManager,
} from '../../../src/agent/manager/sync.js';
import { seededRandom } from '../../../src/common/random.js';
import { entry, FakeServer, type StoreFixture, storeFixture, TD } from './manager-support.js';

let f: StoreFixture;
let server: FakeServer;
const rejections: AgentRejection[] = [];
let hasIdentity = true;
const identity = {
  current: () => (hasIdentity ? {} : undefined),
  reportRejection: (r: AgentRejection) => {
    rejections.push(r);
  },
  noteAccepted: () => {},
};

beforeEach(async () => {
  f = await storeFixture();
  server = await FakeServer.create(f.clock);
  rejections.length = 0;
  hasIdentity = true;
});
afterEach(async () => {
  await f.close();
});

function svidCache() {
  return new SvidCache({
    store: f.managed,
    server,
    trustDomain: TD,
    clock: f.clock,
    random: seededRandom(3),
  });
}

function manager(options: { cache?: SvidCache; intervalMs?: number; seed?: number } = {}) {
  return new SyncManager({
    store: f.managed,
    server,
    identity,
    ...(options.cache === undefined ? {} : { cache: options.cache }),
    trustDomain: TD,
    intervalMs: options.intervalMs ?? 5000,
    clock: f.clock,
    random: seededRandom(options.seed ?? 11),
  });
}

/** Runs the cycle planned next and waits for it (and its rescheduling). */
async function nextCycle(m: SyncManager): Promise<number> {
  const at = m.state().nextRunAtMs;
  if (at === undefined) throw new Error('no cycle planned');
  f.clock.set(Math.max(at, f.clock.nowMs()));
  await m.idle();
  return at;
}

describe('syncOnce', () => {
  it('applies entries, the bundle and the sync state in one batch, and later only what changed', async () => {
    server.put(entry('a'));
    server.put(entry('b'));
    const m = manager();
    const before = f.batches;
    const r = await m.syncOnce();
    expect(r).toMatchObject({ upserted: 2, deleted: 0, bundleChanged: true, written: true });
    expect(f.batches - before).toBe(1);
    expect([...f.store.snapshot.entries.keys()].sort()).toEqual(['a', 'b']);
    expect(f.store.bundle()?.x509Authorities[0]).toEqual(server.caDer);
    expect(f.store.syncState()?.lastSyncAtMs).toBe(f.clock.nowMs());

    // A change of one entry: only it comes back in full, and one batch again.
    server.put(entry('b', { hint: 'new' }));
    f.clock.advance(5000);
    const r2 = await m.syncOnce();
    expect(r2).toMatchObject({ upserted: 1, deleted: 0, bundleChanged: false });
    expect(f.store.entry('b')).toMatchObject({ hint: 'new', revisionNumber: 1 });
    expect(f.batches - before).toBe(2);
  });

  it('an entry removed on the server removes its cached SVID and JWT-SVIDs in the same batch', async () => {
    const c = svidCache();
    server.put(entry('a'));
    server.put(entry('b'));
    const m = manager({ cache: c });
    await m.syncOnce();
    await c.reconcile();
    await c.fetchJwtSvid({ entryId: 'a', spiffeId: entry('a').spiffeId }, ['aud']);
    expect(f.store.x509Svid('a')).toBeDefined();
    expect(f.store.snapshot.jwtSvids.size).toBe(1);

    server.entries.delete('a');
    const before = f.batches;
    const r = await m.syncOnce();
    expect(r).toMatchObject({ upserted: 0, deleted: 1 });
    expect(f.batches - before).toBe(1);
    expect(f.store.entry('a')).toBeUndefined();
    expect(f.store.x509Svid('a')).toBeUndefined();
    expect(f.store.snapshot.jwtSvids.size).toBe(0);
    expect(f.store.x509Svid('b')).toBeDefined();
  });

  it('fetches, updates and drops federated bundles as entries need them', async () => {
    const partner = { ...server.bundleRecord(), trustDomain: 'partner.example' };
    server.federatedBundles.set('partner.example', partner);
    server.put(entry('a', { federatesWith: ['partner.example', 'nobody.example'] }));
    const m = manager();
    const r = await m.syncOnce();
    expect(r.federatedChanged).toBe(1);
    expect(f.store.federatedBundle('partner.example')?.trustDomain).toBe('partner.example');
    expect(f.store.federatedBundle('nobody.example')).toBeUndefined();
    server.put(entry('a', { federatesWith: [] }));
    await m.syncOnce();
    expect(f.store.federatedBundle('partner.example')).toBeUndefined();
  });

  it('writes the sync state at most once a minute when nothing changes', async () => {
    server.put(entry('a'));
    const m = manager();
    await m.syncOnce();
    const before = f.batches;
    f.clock.advance(5000);
    expect((await m.syncOnce()).written).toBe(false);
    expect(f.batches).toBe(before);
    f.clock.advance(SYNC_STATE_WRITE_INTERVAL_MS);
    expect((await m.syncOnce()).written).toBe(true);
    expect(f.batches).toBe(before + 1);
  });

  it('discards an answer when the agent identity changed meanwhile', async () => {
    await f.store.setAgentIdentity({
      spiffeId: 'spiffe://example.org/spire/agent/test/one',
      certChain: [server.caDer],
      expiresAtMs: f.clock.nowMs() + 1000,
      reattestable: false,
      attestorType: 'test',
      lastAttestedAtMs: 0,
    });
    server.put(entry('a'));
    const m = manager();
    const orig = server.getBundle.bind(server);
    server.getBundle = async () => {
      await f.store.setAgentIdentity({
        ...f.store.agentIdentity()!,
        spiffeId: 'spiffe://example.org/spire/agent/test/two',
      });
      return orig();
    };
    await expect(m.syncOnce()).rejects.toMatchObject({ code: 'ERR_AGENT_SYNC_STALE' });
    expect(f.store.snapshot.entries.size).toBe(0);
  });
});

describe('the loop', () => {
  it('backs off from the interval to the 8 min cap with ±10 % jitter, and resets after a success', async () => {
    server.unreachable = true;
    const m = manager({ intervalMs: 5000 });
    m.start();
    const delays: number[] = [];
    for (let i = 0; i < 12; i++) {
      const ran = await nextCycle(m);
      delays.push(m.state().nextRunAtMs! - ran);
    }
    expect(m.state().failures).toBe(12);
    // 5 s, 10 s, 20 s, … doubling, each within ±10 %, never above 8 min.
    delays.forEach((d, i) => {
      const base = Math.min(MAX_SYNC_BACKOFF_MS, 5000 * 2 ** i);
      expect(d).toBeGreaterThanOrEqual(Math.floor(base * 0.9));
      expect(d).toBeLessThanOrEqual(Math.min(MAX_SYNC_BACKOFF_MS, Math.ceil(base * 1.1)));
    });
    expect(Math.max(...delays)).toBeLessThanOrEqual(MAX_SYNC_BACKOFF_MS);
    expect(delays.slice(8).every((d) => d >= MAX_SYNC_BACKOFF_MS * 0.9)).toBe(true);
    expect(new Set(delays.slice(8)).size).toBeGreaterThan(1); // jittered at the cap too
    expect(m.state().lastError?.message).toContain('connection refused');

    server.unreachable = false;
    server.put(entry('a'));
    const ran = await nextCycle(m);
    expect(m.state()).toMatchObject({ failures: 0, lastSuccessAtMs: ran });
    expect(m.state().nextRunAtMs! - ran).toBe(5000);
    expect(f.store.entry('a')).toBeDefined();
    m.close();
  });

  it('hands SPIRE rejections to the identity manager and keeps the store', async () => {
    server.put(entry('a'));
    const m = manager();
    m.start();
    await nextCycle(m);
    expect(f.store.entry('a')).toBeDefined();
    server.rejection = 'banned';
    await nextCycle(m);
    expect(rejections).toEqual(['banned']);
    expect(f.store.entry('a')).toBeDefined();
    m.close();
  });

  it('without an agent SVID it asks the server nothing, and a wake runs a cycle at once', async () => {
    hasIdentity = false;
    const m = manager();
    m.start();
    await nextCycle(m);
    expect(server.calls.sync).toBe(0);
    hasIdentity = true;
    m.wake();
    expect(m.state().nextRunAtMs).toBe(f.clock.nowMs());
    await nextCycle(m);
    expect(server.calls.sync).toBe(1);
    m.close();
  });

  it('mints after syncing and comes back early for the next rotation', async () => {
    server.x509Ttl = 600;
    server.put(entry('a'));
    const c = svidCache();
    const m = manager({ cache: c, intervalMs: 3_600_000 });
    m.start();
    const ran = await nextCycle(m);
    const svid = f.store.x509Svid('a')!;
    expect(m.state().nextRunAtMs).toBe(svid.rotateAtMs);
    expect(svid.rotateAtMs - ran).toBeLessThan(330_000);
    await nextCycle(m);
    const rotated = f.store.x509Svid('a')!;
    expect(rotated.rotateAtMs).toBeGreaterThan(svid.rotateAtMs);
    expect(Buffer.compare(rotated.certChain[0]!, svid.certChain[0]!)).not.toBe(0);
    m.close();
  });
});
