/**
 * The node identity manager on a manual clock against a fake server with a real CA and a real
 * store: attestation and persistence, renewal at half-life, re-attestation instead of renewal
 * for reattestable agents, start from the stored SVID without the server, backoff while the
 * server is unreachable, re-attestation without a restart after an eviction, and the stopped
 * states of a join-token agent (refused token, eviction, expiry).
 */
import { createPrivateKey } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { halfLifeAt } from '../../../src/agent/manager/lifetime.js';
import {
  type AgentCredentials,
  NodeIdentityManager,
  type NodeIdentityOptions,
} from '../../../src/agent/manager/node-identity.js';
import { seededRandom } from '../../../src/common/random.js';
import { parseCertificate } from '../../../src/spiffe/x509-cert.js';
import {
  entry,
  FakeServer,
  fakeAttestor,
  type StoreFixture,
  storeFixture,
  TD,
} from './manager-support.js';

let f: StoreFixture;
let server: FakeServer;
const managers: NodeIdentityManager[] = [];
let changes: Array<AgentCredentials | undefined>;

beforeEach(async () => {
  f = await storeFixture();
  server = await FakeServer.create(f.clock);
  changes = [];
});
afterEach(async () => {
  for (const m of managers.splice(0)) m.close();
  await f.close();
});

function manager(
  options: Partial<NodeIdentityOptions> & { noAttestor?: boolean } = {},
): NodeIdentityManager {
  const { noAttestor, ...rest } = options;
  const m = new NodeIdentityManager({
    store: f.managed,
    server,
    trustDomain: TD,
    ...(noAttestor === true ? {} : { attestor: fakeAttestor() }),
    bootstrapBundle: async () => server.bundleRecord(),
    clock: f.clock,
    random: seededRandom(5),
    onChange: (c) => changes.push(c),
    ...rest,
  });
  managers.push(m);
  return m;
}

/** Fires due timers and waits for the attempt they start. */
async function step(m: NodeIdentityManager, toMs = f.clock.nowMs()): Promise<void> {
  f.clock.set(Math.max(toMs, f.clock.nowMs()));
  await m.idle();
}

describe('attestation and renewal', () => {
  it('bootstraps, attests, persists the SVID and key in one batch, and renews at half-life', async () => {
    const m = manager();
    m.start();
    await step(m);
    expect(server.calls.attest).toBe(1);
    const c = m.current()!;
    expect(c.spiffeId).toBe(server.agentId);
    expect(m.state().status).toBe('ready');
    const stored = f.store.agentIdentity()!;
    expect(stored.spiffeId).toBe(server.agentId);
    expect(stored.attestorType).toBe('x509pop');
    const storedKey = createPrivateKey({
      key: Buffer.from(stored.privateKey!),
      format: 'der',
      type: 'pkcs8',
    });
    expect(storedKey.equals(c.privateKey)).toBe(true);
    expect(f.store.bundle()?.x509Authorities).toHaveLength(1);
    expect(changes).toHaveLength(1);

    // Renewal exactly at half-life: not a millisecond earlier.
    const renewAt = halfLifeAt(c.notBeforeMs, c.expiresAtMs);
    expect(m.state().renewAtMs).toBe(renewAt);
    expect(renewAt - f.clock.nowMs()).toBeGreaterThan(server.agentTtl * 500 - 1000);
    await step(m, renewAt - 1);
    expect(server.calls.renew).toBe(0);
    const batches = f.batches;
    await step(m, renewAt);
    expect(server.calls.renew).toBe(1);
    expect(f.batches - batches).toBe(1);
    const renewed = m.current()!;
    expect(renewed.expiresAtMs).toBeGreaterThan(c.expiresAtMs);
    expect(renewed.privateKey.equals(c.privateKey)).toBe(false);
    expect(f.store.agentIdentity()!.expiresAtMs).toBe(renewed.expiresAtMs);
    expect(server.calls.attest).toBe(1);
  });

  it('a reattestable agent attests again at half-life instead of renewing', async () => {
    server.reattestable = true;
    const m = manager();
    m.start();
    await step(m);
    const c = m.current()!;
    expect(c.reattestable).toBe(true);
    await step(m, halfLifeAt(c.notBeforeMs, c.expiresAtMs));
    expect(server.calls).toMatchObject({ attest: 2, renew: 0 });
    expect(m.current()!.expiresAtMs).toBeGreaterThan(c.expiresAtMs);
  });

  it('refuses an agent SVID that does not chain to the bundle, and retries', async () => {
    const other = await FakeServer.create(f.clock);
    const m = manager({ bootstrapBundle: async () => other.bundleRecord() });
    m.start();
    await step(m);
    expect(m.current()).toBeUndefined();
    expect(m.state().status).toBe('attesting');
    expect(m.state().error).toMatchObject({ code: 'ERR_AGENT_ISSUED_SVID_INVALID' });
    expect(f.store.agentIdentity()).toBeUndefined();
    expect(m.state().retryAtMs).toBeGreaterThan(f.clock.nowMs());
  });
});

describe('restarts and outages', () => {
  it('starts from the stored SVID without asking the server', async () => {
    const first = manager();
    first.start();
    await step(first);
    const c = first.current()!;
    first.close();
    await f.reopen();
    server.unreachable = true;
    const calls = { ...server.calls };
    const m = manager();
    m.start();
    expect(m.state().status).toBe('ready');
    expect(m.current()!.spiffeId).toBe(c.spiffeId);
    expect(m.current()!.privateKey.equals(c.privateKey)).toBe(true);
    expect(server.calls).toEqual(calls);
  });

  it('KeyManager "memory": no key is stored, so a restart attests again', async () => {
    const first = manager({ persistKey: false });
    first.start();
    await step(first);
    expect(f.store.agentIdentity()!.privateKey).toBeUndefined();
    first.close();
    const m = manager({ persistKey: false });
    m.start();
    expect(m.state().status).toBe('attesting');
    await step(m);
    expect(server.calls.attest).toBe(2);
    expect(m.state().status).toBe('ready');
  });

  it('backs off while the server is unreachable and keeps the SVID until it expires', async () => {
    const m = manager();
    m.start();
    await step(m);
    const c = m.current()!;
    server.unreachable = true;
    await step(m, m.state().renewAtMs!);
    const retries: number[] = [];
    for (let i = 0; i < 6; i++) {
      const at = m.state().retryAtMs!;
      retries.push(at - f.clock.nowMs());
      await step(m, at);
    }
    // 1 s, 2 s, 4 s… (±10 %).
    retries.forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(Math.floor(1000 * 2 ** i * 0.9));
      expect(d).toBeLessThanOrEqual(Math.ceil(1000 * 2 ** i * 1.1));
    });
    expect(m.current()).toBe(c); // still usable
    expect(m.state().status).toBe('ready');
    // Past expiry it is gone; attestation follows once the server is back.
    f.clock.set(c.expiresAtMs);
    expect(m.current()).toBeUndefined();
    server.unreachable = false;
    await step(m, m.state().retryAtMs!);
    await step(m);
    expect(m.current()?.expiresAtMs).toBeGreaterThan(c.expiresAtMs);
  });
});

describe('rejections', () => {
  it('an evicted x509pop agent attests again without a restart, keeping its entries', async () => {
    const m = manager();
    m.start();
    await step(m);
    await f.managed.write((_s, tx) => tx.putEntry(entry('a')));
    m.reportRejection('not-attested');
    await step(m);
    expect(server.calls.attest).toBe(2);
    expect(m.state().status).toBe('ready');
    expect(f.store.entry('a')).toBeDefined();
  });

  it('a re-attestation as another node clears what the old one was authorized for, in the same batch', async () => {
    const m = manager();
    m.start();
    await step(m);
    await f.managed.write((_s, tx) => tx.putEntry(entry('a')));
    server.agentPath = '/spire/agent/test/another';
    const batches = f.batches;
    m.reportRejection('not-attested');
    await step(m);
    expect(f.batches - batches).toBe(1);
    expect(f.store.agentIdentity()!.spiffeId).toBe(server.agentId);
    expect(f.store.entry('a')).toBeUndefined();
    expect(f.store.bundle()).toBeDefined();
  });

  it('a join token the server refuses stops the agent with a clear error and no retries', async () => {
    server.refuseAttestation = true;
    const m = manager({ attestor: fakeAttestor('join_token'), attestorSingleUse: true });
    m.start();
    await step(m);
    expect(m.state().status).toBe('stopped');
    expect(m.state().error).toMatchObject({ code: 'ERR_AGENT_ATTESTATION_REFUSED' });
    expect(m.state().error?.message).toContain('new join token');
    expect(f.clock.pendingTimers).toBe(0);
    expect(server.calls.attest).toBe(1);
  });

  it('an evicted join-token agent stops and drops its entries and SVIDs, keeping the bundle', async () => {
    const m = manager({ attestor: fakeAttestor('join_token'), attestorSingleUse: true });
    m.start();
    await step(m);
    await f.managed.write((_s, tx) => tx.putEntry(entry('a')));
    m.reportRejection('banned');
    await f.managed.settled();
    await step(m);
    expect(server.calls.attest).toBe(1);
    expect(m.state()).toMatchObject({ status: 'stopped', error: { code: 'ERR_AGENT_EVICTED' } });
    expect(m.current()).toBeUndefined();
    expect(changes.at(-1)).toBeUndefined();
    expect(f.store.agentIdentity()).toBeUndefined();
    expect(f.store.snapshot.entries.size).toBe(0);
    expect(f.store.bundle()).toBeDefined();
  });

  it('a join-token agent whose SVID expired offline stops but keeps serving cached SVIDs', async () => {
    const m = manager({ attestor: fakeAttestor('join_token'), attestorSingleUse: true });
    m.start();
    await step(m);
    await f.managed.write((_s, tx) => tx.putEntry(entry('a')));
    m.reportRejection('expired');
    await step(m);
    expect(m.state()).toMatchObject({
      status: 'stopped',
      error: { code: 'ERR_AGENT_SVID_EXPIRED' },
    });
    expect(f.store.entry('a')).toBeDefined();
  });

  it('with no attestor and no usable stored SVID it says why', async () => {
    const m = manager({ noAttestor: true });
    m.start();
    expect(m.state()).toMatchObject({
      status: 'stopped',
      error: { code: 'ERR_AGENT_CANNOT_ATTEST' },
    });
    expect(m.state().error?.message).toContain('no join token');
  });

  it('a join token already used for the stored identity is not tried again after expiry', async () => {
    const first = manager({ attestor: fakeAttestor('join_token'), attestorSingleUse: true });
    first.start();
    await step(first);
    const c = first.current()!;
    first.close();
    f.clock.set(c.expiresAtMs + 1);
    const m = manager({
      attestor: fakeAttestor('join_token'),
      attestorSingleUse: true,
      attestorUsed: true,
    });
    m.start();
    expect(m.state()).toMatchObject({
      status: 'stopped',
      error: { code: 'ERR_AGENT_CANNOT_ATTEST' },
    });
    expect(server.calls.attest).toBe(1);
    const leaf = parseCertificate(f.store.agentIdentity()!.certChain[0]!);
    expect(leaf.notAfter.getTime()).toBe(c.expiresAtMs);
  });
});
