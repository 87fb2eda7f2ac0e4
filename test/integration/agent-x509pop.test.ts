/**
 * An x509pop agent against a real server (both in this process): the server marks it
 * reattestable, so at the half-life of its 12 s agent SVID it attests again instead of calling
 * RenewAgent; and when an operator evicts it (`DeleteAgent`), the next sync is refused with
 * AGENT_NOT_ATTESTED and it attests again without a restart — workloads keep their SVID
 * throughout and new entries keep arriving.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningAgent } from '../../src/agent/agent.js';
import { WorkloadApiClient } from '../../src/agent/workload-api/client.js';
import { encodePem } from '../../src/common/pem.js';
import type { RunningServer } from '../../src/server/server.js';
import { makeCa, makeLeaf } from '../unit/server/attestation/x509pop-support.js';
import {
  Admin,
  freePort,
  startInProcessAgent,
  startInProcessServer,
  TD,
  UID,
  waitFor,
  writeAgentConfig,
  writeServerConfig,
} from './agent-support.js';

const dir = mkdtempSync(join(tmpdir(), 'agent-x509pop-'));
const logs: string[] = [];
let server: RunningServer;
let admin: Admin;
let agent: RunningAgent;
let socketPath: string;
let agentId: string;

beforeAll(async () => {
  const root = await makeCa('fleet root');
  const leaf = await makeLeaf(root, { cn: 'gw-1' });
  agentId = `spiffe://${TD}/spire/agent/x509pop/${createHash('sha1').update(leaf.der).digest('hex')}`;
  // DER, not PEM: the server's config loader reads ca_bundle_path as bytes, which
  // parseCertificates takes for DER (reported to the lead; SPIRE's files are PEM).
  writeFileSync(join(dir, 'root.der'), root.der);
  writeFileSync(join(dir, 'leaf.pem'), encodePem('CERTIFICATE', leaf.der));
  writeFileSync(join(dir, 'leaf.key'), leaf.privateKey.export({ format: 'pem', type: 'pkcs8' }));
  const port = await freePort();
  const sc = writeServerConfig(join(dir, 'server'), port, {
    agentTtl: '12s',
    extraPlugins: `  NodeAttestor "x509pop" {
    plugin_data {
      ca_bundle_path = "${join(dir, 'root.der')}"
    }
  }`,
  });
  server = await startInProcessServer(sc.path, []);
  admin = new Admin(sc.socketPath);
  writeFileSync(join(dir, 'bundle.pem'), await admin.bundlePem());
  const ac = writeAgentConfig({
    dir: join(dir, 'agent'),
    port,
    bundlePath: join(dir, 'bundle.pem'),
    nodeAttestor: `  NodeAttestor "x509pop" {
    plugin_data {
      private_key_path = "${join(dir, 'leaf.key')}"
      certificate_path = "${join(dir, 'leaf.pem')}"
    }
  }`,
  });
  socketPath = ac.socketPath;
  agent = await startInProcessAgent(ac.path, logs);
});
afterAll(async () => {
  await agent?.close();
  admin?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function servedIds(): Promise<string[]> {
  const client = new WorkloadApiClient({ socket: socketPath });
  try {
    const ctx = await client.fetchX509Context({ timeoutMs: 2000 });
    return ctx.svids.map((s) => s.id.toString()).sort();
  } finally {
    client.close();
  }
}

const attestations = () =>
  logs
    .join('')
    .split('\n')
    .filter((l) => l.includes('Node attestation was successful')).length;

describe('an x509pop agent', () => {
  it('attests as reattestable and serves its entries', async () => {
    const c = await waitFor('attestation', () => agent.nodeIdentity.current());
    expect(c.spiffeId).toBe(agentId);
    expect(c.reattestable).toBe(true);
    await admin.createEntry('/pop/one', agentId, [`unix:uid:${UID}`]);
    expect(await waitFor('an SVID', servedIds, 15_000, 200)).toEqual([`spiffe://${TD}/pop/one`]);
  });

  it('attests again at half-life instead of renewing', async () => {
    const first = agent.nodeIdentity.current()!;
    const renewAt = agent.nodeIdentity.state().renewAtMs!;
    const again = await waitFor(
      're-attestation',
      () => {
        const c = agent.nodeIdentity.current();
        return c !== undefined && c.expiresAtMs > first.expiresAtMs ? c : undefined;
      },
      15_000,
    );
    expect(Date.now()).toBeGreaterThanOrEqual(renewAt);
    expect(again.spiffeId).toBe(agentId);
    expect(attestations()).toBe(2);
    expect(logs.join('')).not.toContain('renewed the agent SVID');
  }, 20_000);

  it('re-attests without a restart after an eviction, keeping its workloads served', async () => {
    const before = attestations();
    const url = new URL(agentId);
    await admin.agent.deleteAgent({ id: { trustDomain: url.host, path: url.pathname } });
    await waitFor('re-attestation after eviction', () => attestations() > before, 15_000);
    expect(logs.join('')).toContain('reason=not-attested');
    expect(await servedIds()).toEqual([`spiffe://${TD}/pop/one`]);
    await admin.createEntry('/pop/two', agentId, [`unix:uid:${UID}`]);
    expect(
      await waitFor(
        'the new entry',
        async () => {
          const ids = await servedIds();
          return ids.length === 2 ? ids : undefined;
        },
        15_000,
        200,
      ),
    ).toEqual([`spiffe://${TD}/pop/one`, `spiffe://${TD}/pop/two`]);
    expect(agent.nodeIdentity.state().status).toBe('ready');
  }, 30_000);
});
