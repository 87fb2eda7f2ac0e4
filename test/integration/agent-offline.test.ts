/**
 * Offline operation, the product's edge over SPIRE, with a real spire-server as a child process
 * (SIGKILLed, then restarted on the same port and data) and the agent in this process, read
 * through the real Workload API on its Unix socket:
 *
 * 1. server killed → workloads keep getting their valid SVIDs; a short-lived SVID that cannot be
 *    rotated leaves the open stream at its expiry and is never served after;
 * 2. agent restarted while the server is down → serves from LevelDB at once (the time from
 *    `startAgent` to the first SVID a client receives is measured and must be under 1 s);
 * 3. server back → the agent resyncs, mints and rotates again, and pushes the new SVIDs to the
 *    streams that stayed open.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningAgent } from '../../src/agent/agent.js';
import { WorkloadApiClient } from '../../src/agent/workload-api/client.js';
import { parseCertificate } from '../../src/spiffe/x509-cert.js';
import {
  Admin,
  type ChildService,
  freePort,
  idsOf,
  startInProcessAgent,
  startServerProcess,
  TD,
  UID,
  waitFor,
  writeAgentConfig,
  writeServerConfig,
  writeServerScript,
  X509Stream,
} from './agent-support.js';

const dir = mkdtempSync(join(tmpdir(), 'agent-offline-'));
const logs: string[] = [];
let serverScript: string;
let serverConfig: { path: string; socketPath: string };
let server: ChildService | undefined;
let admin: Admin;
let agent: RunningAgent | undefined;
let agentConfig: { path: string; socketPath: string };
let token: string;
const streams: X509Stream[] = [];
const GID = process.getegid!();
const LONG = `spiffe://${TD}/offline/long`;
const SHORT = `spiffe://${TD}/offline/short`;
let shortEntry: string;

beforeAll(async () => {
  const port = await freePort();
  serverConfig = writeServerConfig(join(dir, 'server'), port);
  serverScript = writeServerScript(dir);
  server = await startServerProcess(serverScript, serverConfig.path);
  admin = new Admin(serverConfig.socketPath);
  token = await admin.joinToken();
  const bundlePath = join(dir, 'bundle.pem');
  writeFileSync(bundlePath, await admin.bundlePem());
  agentConfig = writeAgentConfig({ dir: join(dir, 'agent'), port, joinToken: token, bundlePath });
  agent = await startInProcessAgent(agentConfig.path, logs);
}, 90_000);

afterAll(async () => {
  for (const s of streams) s.close();
  await agent?.close();
  admin?.close();
  await server?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function openStream(): X509Stream {
  const s = new X509Stream(agentConfig.socketPath);
  streams.push(s);
  return s;
}

async function fetchIds(): Promise<string[]> {
  const client = new WorkloadApiClient({ socket: agentConfig.socketPath });
  try {
    const ctx = await client.fetchX509Context({ timeoutMs: 2000 });
    return ctx.svids.map((s) => s.id.toString()).sort();
  } finally {
    client.close();
  }
}

describe('offline', () => {
  it('server killed: workloads keep their valid SVIDs; an expired one is never served', async () => {
    const a = agent!;
    const agentId = await waitFor('attestation', () => a.nodeIdentity.current()?.spiffeId);
    await admin.createEntry('/offline/long', agentId, [`unix:uid:${UID}`]);
    shortEntry = await admin.createEntry('/offline/short', agentId, [`unix:gid:${GID}`], {
      x509SvidTtl: 8,
    });
    await waitFor('both SVIDs', () => a.store.snapshot.x509Svids.size === 2);
    const stream = openStream();
    expect(idsOf(await stream.next())).toEqual([LONG, SHORT]);
    const shortExpiry = a.store.x509Svid(shortEntry)!.expiresAtMs;

    const code = await server!.kill('SIGKILL');
    expect(code).toBe('SIGKILL');
    server = undefined;
    await waitFor('a failed sync', () => a.sync.state().failures > 0, 10_000);
    expect(await fetchIds()).toEqual([LONG, SHORT]);

    // The short SVID cannot be rotated: at its expiry it leaves the stream...
    const next = await stream.next(15_000);
    expect(Date.now()).toBeGreaterThanOrEqual(shortExpiry);
    expect(idsOf(next)).toEqual([LONG]);
    // ...and a new call never gets it either.
    expect(await fetchIds()).toEqual([LONG]);
    const stored = a.store.x509Svid(shortEntry);
    expect(stored === undefined || stored.expiresAtMs <= Date.now()).toBe(true);
  }, 40_000);

  it('agent restarted while the server is down: serves from LevelDB within a second', async () => {
    await agent!.close();
    agent = undefined;
    const t0 = performance.now();
    const restarted = await startInProcessAgent(agentConfig.path, logs);
    agent = restarted;
    const started = performance.now() - t0;
    let ids: string[] = [];
    await waitFor(
      'the first SVID after restart',
      async () => {
        ids = await fetchIds();
        return true;
      },
      2_000,
      5,
    );
    const firstSvidMs = performance.now() - t0;
    process.stdout.write(
      `agent warm restart, server down: startAgent ${started.toFixed(1)} ms (Workload API listening after ${restarted.startedInMs.toFixed(1)} ms), first SVID served ${firstSvidMs.toFixed(1)} ms after start\n`,
    );
    expect(ids).toEqual([LONG]);
    expect(firstSvidMs).toBeLessThan(1000);
    // From the store: the spent join token was not used again, the stored agent SVID was.
    expect(restarted.nodeIdentity.state().status).toBe('ready');
    expect(restarted.source.ready()).toBe(true);
    expect(restarted.ready()).toBe(true);
  });

  it('server back: the agent resyncs, mints and rotates, and pushes to the open stream', async () => {
    const a = agent!;
    const stream = openStream();
    expect(idsOf(await stream.next())).toEqual([LONG]);
    server = await startServerProcess(serverScript, serverConfig.path);
    // The short entry's SVID is minted again and pushed to the stream that stayed open.
    const back = await stream.next(30_000);
    expect(idsOf(back)).toEqual([LONG, SHORT]);
    expect(a.sync.state().failures).toBe(0);
    const first = back.svids.find((s) => s.spiffeId === SHORT)!;
    const firstLeaf = parseCertificate(first.x509Svid);
    // ...then rotated at half-life and pushed again.
    const rotated = await stream.next(15_000);
    const leaf = parseCertificate(rotated.svids.find((s) => s.spiffeId === SHORT)!.x509Svid);
    expect(Buffer.from(leaf.serial).equals(Buffer.from(firstLeaf.serial))).toBe(false);
    expect(leaf.notAfter.getTime()).toBeGreaterThan(firstLeaf.notAfter.getTime());
    expect(idsOf(rotated)).toEqual([LONG, SHORT]);
  }, 60_000);
});
