/**
 * Outages with real processes: `./bin/spire-server run` on a fixed loopback port (so it can be
 * killed and started again where the agent looks for it), `./bin/spire-agent run` attested
 * with a join token, workloads as other uids (test/e2e/workload-process.ts under `setpriv`).
 *
 * 1. The server SIGKILLed: workloads keep getting their SVIDs from the agent (an open stream
 *    and a new workload alike).
 * 2. The agent restarted (SIGTERM, then `spire-agent run` again) while the server is down: the
 *    Workload API serves from the LevelDB store — the same certificate. The time from spawning
 *    the agent process to the first SVID received by a workload that was already waiting is
 *    measured and printed (not asserted: timed tests do not assert speed; see
 *    docs/performance.md for the benchmark).
 * 3. The server back: the agent resyncs — a new entry reaches the open stream — and rotates a
 *    30 s TTL SVID on its open stream.
 * 4. The agent SIGKILLed while it mints and rotates 200 SVIDs, several times: each time the
 *    store opens cleanly (`openAgentStore` in this process: the agent's identity and bundle
 *    are there, no SVID without its entry), and the next agent process opens it warm (nothing
 *    moved aside) and serves.
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAgentStore } from '../../src/agent/storage/open-agent-store.js';
import {
  freeTcpPort,
  generateJoinToken,
  type ReportedSvid,
  runCommand,
  type ServiceProcess,
  SPIRE_AGENT,
  serverCommand,
  setServerBindPort,
  signalProcess,
  startAgentProcess,
  startServerProcess,
  type WorkloadEvent,
  WorkloadProcess,
  writeAgentConfig,
  writeServerConfig,
} from './support.js';

const TD = 'example.org';
const W = 64301;
const R = 64302;
const NODE_ID = `spiffe://${TD}/node/edge-1`;
const id = (path: string) => `spiffe://${TD}${path}`;

const dir = mkdtempSync(join(tmpdir(), 'e2e-agent-outage-'));
chmodSync(dir, 0o755);
let serverConfig: { path: string; socketPath: string };
let agentConfig: { path: string; socketPath: string; dataDir: string };
let server: ServiceProcess | undefined;
let agent: ServiceProcess | undefined;
let cli: ReturnType<typeof serverCommand>;
const workloads: WorkloadProcess[] = [];

function workload(args: string[], uid: number): WorkloadProcess {
  const w = new WorkloadProcess(args, { uid, socketPath: agentConfig.socketPath });
  workloads.push(w);
  return w;
}

async function createEntry(path: string, uid: number, ...extra: string[]): Promise<void> {
  const r = await cli(
    'entry',
    'create',
    '-parentID',
    NODE_ID,
    '-spiffeID',
    id(path),
    '-selector',
    `unix:uid:${uid}`,
    ...extra,
  );
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
}

/** `spire-agent api fetch x509 -output json` as `uid`: the SPIFFE IDs served, or the error. */
async function fetchAs(uid: number): Promise<{ ids: string[]; err: string }> {
  const r = await runCommand('setpriv', [
    `--reuid=${uid}`,
    `--regid=${uid}`,
    '--clear-groups',
    SPIRE_AGENT,
    'api',
    'fetch',
    'x509',
    '-output',
    'json',
    '-socketPath',
    agentConfig.socketPath,
  ]);
  if (r.code !== 0) return { ids: [], err: r.err };
  const json = JSON.parse(r.out) as { svids: Array<{ spiffe_id: string }> };
  return { ids: json.svids.map((s) => s.spiffe_id).sort(), err: '' };
}

async function untilServed(uid: number, ids: string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = { ids: [] as string[], err: '' };
  while (Date.now() < deadline) {
    last = await fetchAs(uid);
    if (JSON.stringify(last.ids) === JSON.stringify(ids)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(
    `uid ${uid} was not served ${ids.join(',')} in time (last: ${last.ids.join(',')} ${last.err})\n${agent?.output().slice(-3000)}`,
  );
}

async function x509Event(w: WorkloadProcess, timeoutMs = 20_000): Promise<WorkloadEvent> {
  const e = await w.next(timeoutMs);
  if (e.event !== 'x509') throw new Error(`expected an x509 message, got ${JSON.stringify(e)}`);
  return e;
}

const svidsOf = (e: WorkloadEvent) => e['svids'] as ReportedSvid[];

beforeAll(async () => {
  const serverDir = join(dir, 'server');
  mkdirSync(serverDir);
  serverConfig = writeServerConfig({ dir: serverDir });
  const port = setServerBindPort(serverConfig.path, await freeTcpPort());
  server = await startServerProcess(serverConfig.path, serverConfig.socketPath);
  cli = serverCommand(serverConfig.socketPath);
  const bundlePath = join(dir, 'bundle.pem');
  writeFileSync(bundlePath, (await cli('bundle', 'show')).out);
  agentConfig = writeAgentConfig({
    dir: join(dir, 'agent'),
    serverPort: port,
    bundlePath,
    logLevel: 'INFO',
  });
  const token = await generateJoinToken(serverConfig.socketPath, NODE_ID);
  agent = await startAgentProcess(agentConfig.path, { joinToken: token });
  await createEntry('/outage/w', W);
  await createEntry('/outage/rotating', R, '-x509SVIDTTL', '30');
  await Promise.all([untilServed(W, [id('/outage/w')]), untilServed(R, [id('/outage/rotating')])]);
}, 120_000);

afterAll(async () => {
  for (const w of workloads) await w.kill();
  const agentExit = await agent?.stop();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
  expect(agentExit).toBe(0);
}, 60_000);

describe('outages', () => {
  let before: ReportedSvid;
  let waiting: WorkloadProcess;
  let rotating: WorkloadProcess;
  let rotatingSerial: string;
  let serverBackAt: number;

  it('server killed: an open stream and a new workload are still served', async () => {
    const open = workload(['watch'], W);
    [before] = svidsOf(await x509Event(open)) as [ReportedSvid];
    expect(before.id).toBe(id('/outage/w'));

    expect(await signalProcess(server!, 'SIGKILL')).toBe('SIGKILL');
    server = undefined;
    // the agent notices (a failed sync), and keeps serving
    const deadline = Date.now() + 20_000;
    while (!agent!.output().includes('sync with the server failed') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(agent!.output()).toContain('sync with the server failed');

    const fresh = workload(['watch'], W);
    const [served] = svidsOf(await x509Event(fresh)) as [ReportedSvid];
    expect(served.id).toBe(id('/outage/w'));
    expect(served.serial).toBe(before.serial);
    expect(await fetchAs(W)).toEqual({ ids: [id('/outage/w')], err: '' });
    // the stream opened before the outage is still open: nothing ended or changed it
    await expect(open.next(1000)).rejects.toThrow(/no workload event within/);
    await fresh.kill();
    await open.kill();
  }, 60_000);

  it('agent restarted while the server is down: served from its store', async () => {
    const code = await agent!.stop();
    expect(code).toBe(0);
    agent = undefined;

    waiting = workload(['watch', '--retry'], W);
    expect((await waiting.next(30_000)).event).toBe('waiting');
    const spawnedAt = Date.now();
    agent = await startAgentProcess(agentConfig.path);
    const first = await x509Event(waiting);
    const spawnToSvidMs = first.at - spawnedAt;
    const [served] = svidsOf(first) as [ReportedSvid];
    expect(served.id).toBe(id('/outage/w'));
    expect(served.serial).toBe(before.serial);
    expect(served.notAfter).toBeGreaterThan(Date.now());
    expect(agent.output()).toMatch(/msg="agent store opened".* warm=true/);
    expect(agent.output()).toMatch(/msg="Starting Workload API".* ready=true/);
    const listening = /msg="Starting Workload API".* elapsed_ms=(\d+)/.exec(agent.output());
    process.stdout.write(
      `agent restart with the server down: spawn of ./bin/spire-agent to the first SVID received by a waiting workload ${spawnToSvidMs} ms (Workload API listening ${listening?.[1]} ms after the agent started)\n`,
    );

    rotating = workload(['watch'], R);
    const [r] = svidsOf(await x509Event(rotating)) as [ReportedSvid];
    expect(r.id).toBe(id('/outage/rotating'));
    rotatingSerial = r.serial;
  }, 60_000);

  it('server back: the agent resyncs (a new entry reaches the open stream) and rotates', async () => {
    server = await startServerProcess(serverConfig.path, serverConfig.socketPath);
    serverBackAt = Date.now();
    await createEntry('/outage/w-new', W);
    for (;;) {
      const e = await x509Event(waiting, 60_000);
      const ids = svidsOf(e)
        .map((s) => s.id)
        .sort();
      if (ids.length === 1) continue;
      expect(ids).toEqual([id('/outage/w'), id('/outage/w-new')]);
      process.stdout.write(
        `server back: new entry on the open stream ${e.at - serverBackAt} ms after the server was healthy\n`,
      );
      break;
    }
    // the 30 s SVID: a new certificate on the open stream, minted after the server returned
    for (;;) {
      const e = await x509Event(rotating, 40_000);
      const [s] = svidsOf(e) as [ReportedSvid];
      if (s.serial === rotatingSerial) continue;
      expect(e.at).toBeGreaterThan(serverBackAt);
      expect(s.id).toBe(id('/outage/rotating'));
      break;
    }
  }, 90_000);

  it('agent SIGKILLed while it mints and rotates 200 SVIDs: its store opens cleanly, every time', async () => {
    const file = join(dir, 'entries.json');
    writeFileSync(
      file,
      JSON.stringify({
        entries: Array.from({ length: 200 }, (_, i) => ({
          spiffe_id: id(`/bulk/${i}`),
          parent_id: NODE_ID,
          selectors: [{ type: 'unix', value: `uid:${70_000 + i}` }],
          x509_svid_ttl: 20,
        })),
      }),
    );
    const created = await cli('entry', 'create', '-data', file);
    expect(created.code).toBe(0);

    let killedWhileWriting = 0;
    for (let round = 0; round < 4; round++) {
      const p = agent!;
      const minted = () => /msg="minted workload X509-SVIDs"/.test(p.output());
      const deadline = Date.now() + 20_000;
      while (!minted() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 400)));
      if (minted()) killedWhileWriting++;
      expect(await signalProcess(p, 'SIGKILL')).toBe('SIGKILL');
      // the store as the killed process left it: opens, holds the agent, no SVID without entry
      const store = await openAgentStore({ dataDir: agentConfig.dataDir, trustDomain: TD });
      try {
        const snap = store.snapshot;
        expect(snap.agent?.spiffeId).toMatch(
          /^spiffe:\/\/example\.org\/spire\/agent\/join_token\//,
        );
        expect(snap.bundle?.x509Authorities.length).toBeGreaterThan(0);
        for (const entryId of snap.x509Svids.keys()) expect(snap.entries.has(entryId)).toBe(true);
      } finally {
        await store.close();
      }
      agent = await startAgentProcess(agentConfig.path);
      expect(agent.output()).toMatch(/msg="agent store opened".* warm=true/);
      expect(agent.output()).not.toContain('MOVED ASIDE');
      const f = await fetchAs(W);
      expect(f).toEqual({ ids: [id('/outage/w'), id('/outage/w-new')], err: '' });
    }
    expect(killedWhileWriting).toBeGreaterThan(0);
    expect(readdirSync(agentConfig.dataDir).filter((n) => n.includes('.corrupt-'))).toEqual([]);
  }, 180_000);
});
