/**
 * SIGKILL of a real agent process (`runAgent` under tsx) while it writes — 200 entries with a
 * 10 s TTL, so it mints and rotates in batches constantly, plus entry churn between runs — in a
 * loop: after every kill the store opens cleanly (no quarantine, no error), holds an agent
 * identity, and never an SVID without its entry. Then an agent process starts on that store,
 * serves this test process through the Workload API (time from spawn to first SVID measured,
 * Node and tsx start-up included), and stops cleanly on SIGTERM.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAgentStore } from '../../src/agent/storage/open-agent-store.js';
import { WorkloadApiClient } from '../../src/agent/workload-api/client.js';
import type { RunningServer } from '../../src/server/server.js';
import {
  Admin,
  type ChildService,
  freePort,
  sleep,
  spawnTsx,
  startInProcessServer,
  TD,
  UID,
  waitFor,
  writeAgentConfig,
  writeAgentScript,
  writeServerConfig,
} from './agent-support.js';

const dir = mkdtempSync(join(tmpdir(), 'agent-crash-'));
const logs: string[] = [];
let server: RunningServer;
let admin: Admin;
let agentConfig: { path: string; socketPath: string };
let script: string;
let agentId: string;
const children: ChildService[] = [];
const dataDir = join(dir, 'agent', 'agent-data');

beforeAll(async () => {
  const port = await freePort();
  const sc = writeServerConfig(join(dir, 'server'), port);
  server = await startInProcessServer(sc.path, logs);
  admin = new Admin(sc.socketPath);
  const token = await admin.joinToken();
  agentId = `spiffe://${TD}/spire/agent/join_token/${token}`;
  const bundlePath = join(dir, 'bundle.pem');
  writeFileSync(bundlePath, await admin.bundlePem());
  agentConfig = writeAgentConfig({
    dir: join(dir, 'agent'),
    port,
    joinToken: token,
    bundlePath,
    syncInterval: '200ms',
  });
  script = writeAgentScript(dir);
  await admin.createEntry('/crash/me', agentId, [`unix:uid:${UID}`]);
  const specs = Array.from(
    { length: 200 },
    (_, i) => [`/crash/${i}`, `unix:uid:${70000 + i}`] as const,
  );
  await admin.createEntries(agentId, specs, 10);
}, 60_000);

afterAll(async () => {
  for (const c of children) await c.kill('SIGKILL');
  admin?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

function startAgentProcess(): ChildService {
  const c = spawnTsx(script, [agentConfig.path]);
  children.push(c);
  return c;
}

async function waitForOutput(c: ChildService, text: string, timeoutMs = 30_000): Promise<void> {
  await Promise.race([
    waitFor(`"${text}" from the agent`, () => c.output().includes(text), timeoutMs, 20),
    c.exited.then((code) => {
      throw new Error(`the agent exited (${String(code)}):\n${c.output()}`);
    }),
  ]);
}

describe('SIGKILL of the agent during writes', () => {
  it('leaves a store that opens cleanly, every time', async () => {
    let churn = 0;
    let killedAfterWrites = 0;
    for (let i = 0; i < 6; i++) {
      const c = startAgentProcess();
      await waitForOutput(c, 'AGENT READY');
      // The first run must keep its identity: the join token works once.
      if (i === 0) await waitForOutput(c, 'Node attestation was successful');
      await sleep(150 + Math.floor(Math.random() * 1200));
      if (c.output().includes('minted workload X509-SVIDs')) killedAfterWrites++;
      expect(await c.kill('SIGKILL')).toBe('SIGKILL');

      const store = await openAgentStore({ dataDir, trustDomain: TD });
      try {
        const snap = store.snapshot;
        expect(snap.agent?.spiffeId).toBe(agentId);
        for (const id of snap.x509Svids.keys()) expect(snap.entries.has(id)).toBe(true);
        expect(snap.bundle?.x509Authorities.length).toBeGreaterThan(0);
      } finally {
        await store.close();
      }
      // Churn: the next run has entries to add and remove, as well as rotations.
      const { entries } = await admin.entry.listEntries({ pageSize: 1000 });
      const victims = entries.filter(
        (e) => e.spiffeId?.path.startsWith('/crash/') && e.spiffeId.path !== '/crash/me',
      );
      await admin.deleteEntries(victims.slice(0, 20).map((e) => e.id));
      await admin.createEntries(
        agentId,
        Array.from(
          { length: 20 },
          (_, k) => [`/crash/new-${churn}-${k}`, `unix:uid:${80000 + churn * 20 + k}`] as const,
        ),
        10,
      );
      churn++;
    }
    expect(killedAfterWrites).toBeGreaterThan(0);
    const quarantined = readdirSync(join(dir, 'agent', 'agent-data')).filter((n) =>
      n.includes('.corrupt-'),
    );
    expect(quarantined).toEqual([]);
  }, 120_000);

  it('then serves from that store and stops cleanly on SIGTERM', async () => {
    const t0 = performance.now();
    const c = startAgentProcess();
    await waitForOutput(c, 'AGENT READY');
    const client = new WorkloadApiClient({ socket: agentConfig.socketPath });
    const ctx = await waitFor(
      'an SVID from the restarted agent process',
      () => client.fetchX509Context({ timeoutMs: 1000 }),
      15_000,
      10,
    );
    const spawnToSvid = performance.now() - t0;
    client.close();
    const ready = JSON.parse(/AGENT READY (\{.*\})/.exec(c.output())![1]!) as {
      startedInMs: number;
      sinceMainMs: number;
    };
    process.stdout.write(
      `agent process restart: spawn to first SVID ${spawnToSvid.toFixed(0)} ms (Node + tsx start-up included); runAgent to Workload API listening ${ready.startedInMs.toFixed(1)} ms; runAgent to ready ${ready.sinceMainMs.toFixed(1)} ms\n`,
    );
    expect(ctx.svids.map((s) => s.id.toString())).toEqual([`spiffe://${TD}/crash/me`]);
    expect(await c.kill('SIGTERM')).toBe(0);
    expect(c.output()).toContain('Stopping agent');
  }, 60_000);
});
