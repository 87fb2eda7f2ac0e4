/**
 * Continuous TPM attestation with the whole agent: a spire-agent (in this process) configured
 * with `NodeAttestor "tpm"` on a swtpm attests to a server with `NodeAttestor "tpm"`, gets a
 * workload SVID through a node alias keyed on PCR 7, and — after PCR 7 is extended (a
 * "firmware change") — re-attests at its SVID's half-life with a fresh quote: the node's
 * selectors change and the workload loses the identity the alias gave it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningAgent } from '../../src/agent/agent.js';
import { WorkloadApiClient } from '../../src/agent/workload-api/client.js';
import type { RunningServer } from '../../src/server/server.js';
import { type SwtpmInstance, startSwtpm } from '../harness/swtpm.js';
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

const dir = mkdtempSync(join(tmpdir(), 'tpm-agent-run-'));
const logs: string[] = [];
let swtpm: SwtpmInstance;
let server: RunningServer;
let admin: Admin;
let agent: RunningAgent;
let socketPath: string;
let agentId: string;

const extendOf = (old: string, value: string) =>
  createHash('sha256')
    .update(Buffer.from(old, 'hex'))
    .update(Buffer.from(value, 'hex'))
    .digest('hex');

const first = randomBytes(32).toString('hex');
const pcr7 = extendOf('00'.repeat(32), first);

beforeAll(async () => {
  swtpm = await startSwtpm();
  await swtpm.tpm2(['pcrextend', `7:sha256=${first}`]);
  writeFileSync(
    join(dir, 'ek-ca.pem'),
    swtpm.ekCaCertPaths.map((p) => readFileSync(p, 'utf8')).join('\n'),
  );
  const port = await freePort();
  const sc = writeServerConfig(join(dir, 'server'), port, {
    agentTtl: '8s',
    extraPlugins: `  NodeAttestor "tpm" {
    plugin_data {
      ek_ca_path = "${join(dir, 'ek-ca.pem')}"
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
    nodeAttestor: `  NodeAttestor "tpm" {
    plugin_data {
      tcti = "${swtpm.tcti}"
    }
  }`,
  });
  socketPath = ac.socketPath;
  agent = await startInProcessAgent(ac.path, logs);
}, 60_000);

afterAll(async () => {
  await agent?.close();
  admin?.close();
  await server?.close();
  await swtpm?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function servedIds(): Promise<string[]> {
  const client = new WorkloadApiClient({ socket: socketPath });
  try {
    const ctx = await client.fetchX509Context({ timeoutMs: 2000 });
    return ctx.svids.map((s) => s.id.toString()).sort();
  } catch {
    return [];
  } finally {
    client.close();
  }
}

describe('a spire-agent with NodeAttestor "tpm"', () => {
  it('attests as tpm/<pub_hash> and serves a workload through a PCR-7 node alias', async () => {
    const c = await waitFor('attestation', () => agent.nodeIdentity.current(), 20_000);
    expect(c.spiffeId).toMatch(new RegExp(`^spiffe://${TD}/spire/agent/tpm/[0-9a-f]{64}$`));
    expect(c.reattestable).toBe(true);
    agentId = c.spiffeId;
    const selectors = (await server.context.dataStore.getNodeSelectors(agentId)).map(
      (s) => s.value,
    );
    expect(selectors).toContain(`pcr:sha256:7:${pcr7}`);
    await admin.createEntry('/gw/firmware-good', `spiffe://${TD}/spire/server`, [
      `tpm:pcr:sha256:7:${pcr7}`,
    ]);
    await admin.createEntry('/app', `spiffe://${TD}/gw/firmware-good`, [`unix:uid:${UID}`]);
    expect(
      await waitFor(
        'the workload SVID',
        async () => {
          const ids = await servedIds();
          return ids.length > 0 ? ids : undefined;
        },
        20_000,
        200,
      ),
    ).toEqual([`spiffe://${TD}/app`]);
  }, 45_000);

  it('re-attests with a fresh quote at renewal: a changed PCR 7 loses the alias', async () => {
    const second = randomBytes(32).toString('hex');
    // The agent holds the TPM only during an attestation: tpm2-tools can use it meanwhile.
    await swtpm.tpm2(['pcrextend', `7:sha256=${second}`]);
    const changed = extendOf(pcr7, second);
    await waitFor(
      'the new PCR 7 in the node selectors',
      async () =>
        (await server.context.dataStore.getNodeSelectors(agentId)).some(
          (s) => s.value === `pcr:sha256:7:${changed}`,
        ) || undefined,
      20_000,
      200,
    );
    expect(agent.nodeIdentity.current()?.spiffeId).toBe(agentId);
    expect(
      await waitFor(
        'the workload losing its SVID',
        async () => ((await servedIds()).length === 0 ? true : undefined),
        20_000,
        200,
      ),
    ).toBe(true);
    const node = await server.context.dataStore.getAttestedNode(agentId);
    expect(JSON.parse(node!.evidence).pcrs.sha256['7']).toBe(changed);
  }, 45_000);
});
