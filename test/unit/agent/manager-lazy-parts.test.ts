/**
 * The parts of the agent that load their modules late (docs/performance.md, "Agent"): the
 * deferred metrics count what happens before prom-client is loaded and hand it over exactly
 * (counters summed, gauges at their last value, `server_reachable` from the last sync), then
 * forward; the lazy server client loads the real one on its first call, once, forwards every
 * call unchanged, retries a failed load, and honours a `close` that came first.
 */
import { describe, expect, it } from 'vitest';
import { createLazyAgentServerClient } from '../../../src/agent/manager/lazy-server-client.js';
import { DeferredAgentMetrics } from '../../../src/agent/manager/metrics.js';
import type {
  AgentServerClient,
  createAgentServerClient,
} from '../../../src/agent/manager/server-client.js';
import { TD } from './manager-support.js';

/** `name{labels} value` lines of a Prometheus text exposition, for the agent's metrics. */
function samples(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('spire_edge_agent_')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice('spire_edge_agent_'.length, i)] = Number(line.slice(i + 1));
  }
  return out;
}

describe('DeferredAgentMetrics', () => {
  it('hands what it counted before loading over to Prometheus, then forwards', async () => {
    const m = new DeferredAgentMetrics();
    m.sync('ok');
    m.sync('error');
    m.sync('ok');
    m.x509SvidsMinted(100);
    m.x509SvidsMinted(20);
    m.x509SvidMintFailures(3);
    m.jwtSvidFetched('server');
    m.jwtSvidFetched('cache');
    m.jwtSvidFetched('cache');
    m.nodeAttestation('attest', 'error');
    m.nodeAttestation('attest', 'ok');
    m.nodeAttestation('renew', 'ok');
    m.cacheSizes({ entries: 9, x509Svids: 8, jwtSvids: 7 });
    m.cacheSizes({ entries: 10, x509Svids: 9, jwtSvids: 1 });
    m.agentSvidExpiry(1_800_000_999);
    const first = await m.load();
    expect(await m.load()).toBe(first);
    expect(samples(await first.registry.metrics())).toEqual({
      'syncs_total{result="ok"}': 2,
      'syncs_total{result="error"}': 1,
      x509_svids_minted_total: 120,
      x509_svid_mint_failures_total: 3,
      'jwt_svids_fetched_total{source="server"}': 1,
      'jwt_svids_fetched_total{source="cache"}': 2,
      'node_attestations_total{kind="attest",result="error"}': 1,
      'node_attestations_total{kind="attest",result="ok"}': 1,
      'node_attestations_total{kind="renew",result="ok"}': 1,
      cached_entries: 10,
      cached_x509_svids: 9,
      cached_jwt_svids: 1,
      server_reachable: 1,
      agent_svid_expiry_seconds: 1_800_000,
    });
    // after loading, calls go straight to Prometheus
    m.sync('error');
    m.x509SvidsMinted(5);
    const after = samples(await first.registry.metrics());
    expect(after['syncs_total{result="error"}']).toBe(2);
    expect(after['server_reachable']).toBe(0);
    expect(after['x509_svids_minted_total']).toBe(125);
  });

  it('reports the server unreachable when the last sync before loading failed', async () => {
    const m = new DeferredAgentMetrics();
    m.sync('ok');
    m.sync('error');
    const s = samples(await (await m.load()).registry.metrics());
    expect(s['server_reachable']).toBe(0);
    expect(s['syncs_total{result="ok"}']).toBe(1);
  });
});

describe('createLazyAgentServerClient', () => {
  const options = {
    host: '127.0.0.1',
    port: 1,
    trustDomain: TD,
    credentials: () => ({ bundle: [] }),
  };

  function fakeModule() {
    const calls: string[] = [];
    let created = 0;
    let closed = 0;
    const client = {
      attestAgent: async () => {
        calls.push('attestAgent');
        return {} as never;
      },
      renewAgent: async () => {
        calls.push('renewAgent');
        return {} as never;
      },
      getBundle: async () => {
        calls.push('getBundle');
        return { sequenceNumber: 42 } as never;
      },
      getFederatedBundle: async (td: string) => {
        calls.push(`getFederatedBundle ${td}`);
        return undefined;
      },
      syncAuthorizedEntries: async (known: ReadonlyMap<string, number>) => {
        calls.push(`sync ${known.size}`);
        return {} as never;
      },
      batchNewX509Svid: async (params: readonly unknown[]) => {
        calls.push(`batch ${params.length}`);
        return [];
      },
      newJwtSvid: async (entryId: string, audience: readonly string[]) => {
        calls.push(`jwt ${entryId} ${audience.join(',')}`);
        return {} as never;
      },
      close: () => {
        closed++;
      },
    } satisfies AgentServerClient;
    const create: typeof createAgentServerClient = (o) => {
      expect(o).toBe(options);
      created++;
      return client;
    };
    return {
      calls,
      created: () => created,
      closed: () => closed,
      load: async () => ({ createAgentServerClient: create }),
    };
  }

  it('loads the client on its first call, once, and forwards every call', async () => {
    const f = fakeModule();
    const c = createLazyAgentServerClient(options, f.load);
    expect(f.created()).toBe(0);
    const [bundle] = await Promise.all([c.getBundle(), c.getFederatedBundle('partner.example')]);
    expect(bundle).toEqual({ sequenceNumber: 42 });
    await c.syncAuthorizedEntries(new Map([['a', 1]]));
    await c.batchNewX509Svid([{ entryId: 'a', csr: new Uint8Array() }]);
    await c.newJwtSvid('a', ['x', 'y']);
    await c.renewAgent(new Uint8Array());
    expect(f.created()).toBe(1);
    expect(f.calls).toEqual([
      'getBundle',
      'getFederatedBundle partner.example',
      'sync 1',
      'batch 1',
      'jwt a x,y',
      'renewAgent',
    ]);
    c.close();
    expect(f.closed()).toBe(1);
  });

  it('retries a failed load, and closes a client loaded after close()', async () => {
    const f = fakeModule();
    let fail = true;
    const c = createLazyAgentServerClient(options, async () => {
      if (fail) throw new Error('cannot load');
      return f.load();
    });
    await expect(c.getBundle()).rejects.toThrow('cannot load');
    fail = false;
    c.close();
    await c.getBundle();
    expect(f.created()).toBe(1);
    expect(f.closed()).toBe(1);
  });
});
