/**
 * A join-token agent end to end, in this process, against a real spire-server (in this process
 * too, SQLite, disk key manager) over mutual TLS, served to this test process through the real
 * Workload API on its Unix socket (SO_PEERCRED + the unix attestor): the agent attests, an
 * entry created for this uid appears on an open FetchX509SVID stream as an SVID that verifies
 * against the bundle, a JWT-SVID is cached, deleting the entry takes the identity away
 * (PermissionDenied on the stream), an entry with a 10 s TTL is rotated at half-life and pushed
 * to the stream, the agent SVID (16 s TTL) is renewed at half-life, and health and metrics
 * answer. Then a clean stop.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningAgent } from '../../src/agent/agent.js';
import { WorkloadApiClient } from '../../src/agent/workload-api/client.js';
import type { RunningServer } from '../../src/server/server.js';
import { parseX509Bundle } from '../../src/spiffe/x509-bundle.js';
import { parseCertificate } from '../../src/spiffe/x509-cert.js';
import { verifyX509Svid } from '../../src/spiffe/x509-verify.js';
import {
  Admin,
  freePort,
  idsOf,
  startInProcessAgent,
  startInProcessServer,
  TD,
  UID,
  waitFor,
  writeAgentConfig,
  writeServerConfig,
  X509Stream,
} from './agent-support.js';

const dir = mkdtempSync(join(tmpdir(), 'agent-run-'));
const serverLogs: string[] = [];
const agentLogs: string[] = [];
let server: RunningServer;
let admin: Admin;
let agent: RunningAgent;
let socketPath: string;
let bundlePem: string;
let token: string;

beforeAll(async () => {
  const port = await freePort();
  const sc = writeServerConfig(join(dir, 'server'), port, { agentTtl: '16s' });
  server = await startInProcessServer(sc.path, serverLogs);
  admin = new Admin(sc.socketPath);
  token = await admin.joinToken();
  bundlePem = await admin.bundlePem();
  const bundlePath = join(dir, 'bundle.pem');
  writeFileSync(bundlePath, bundlePem);
  const ac = writeAgentConfig({
    dir: join(dir, 'agent'),
    port,
    joinToken: token,
    bundlePath,
    health: true,
  });
  socketPath = ac.socketPath;
  agent = await startInProcessAgent(ac.path, agentLogs);
});

afterAll(async () => {
  if (process.env['DUMP_AGENT_LOGS'] !== undefined) process.stderr.write(agentLogs.join(''));
  await agent?.close();
  admin?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const agentId = () => `spiffe://${TD}/spire/agent/join_token/${token}`;

describe('spire-agent with a join token against a real server', () => {
  let stream: X509Stream;
  let entryId: string;

  it('attests and persists its identity', async () => {
    const c = await waitFor('node attestation', () => agent.nodeIdentity.current(), 15_000);
    expect(c.spiffeId).toBe(agentId());
    expect(agent.store.agentIdentity()?.spiffeId).toBe(agentId());
    expect(agent.store.agentIdentity()?.privateKey).toBeDefined();
    expect(agentLogs.join('')).toContain('Node attestation was successful');
    // Logs never carry the join token outside the (consumed) agent ID.
    const text = agentLogs.join('');
    expect(text.split(token).length - 1).toBe(text.split(`join_token/${token}`).length - 1);
  });

  it('serves a new entry to an open stream as an SVID that verifies against the bundle', async () => {
    await waitFor('the first sync', () => agent.ready());
    stream = new X509Stream(socketPath);
    // No entry yet: the stream ends with PermissionDenied.
    const none = await stream.next().catch((e: unknown) => e);
    expect((none as ConnectError).code).toBe(Code.PermissionDenied);
    stream.close();

    entryId = await admin.createEntry('/workload/a', agentId(), [`unix:uid:${UID}`]);
    const client = new WorkloadApiClient({ socket: socketPath });
    const ctx = await waitFor(
      'the SVID',
      async () => client.fetchX509Context({ timeoutMs: 2000 }),
      15_000,
      200,
    );
    client.close();
    expect(ctx.svids.map((s) => s.id.toString())).toEqual([`spiffe://${TD}/workload/a`]);
    const bundle = parseX509Bundle(TD, bundlePem);
    const v = verifyX509Svid([...ctx.svids[0]!.certificates], bundle);
    expect(v.id.toString()).toBe(`spiffe://${TD}/workload/a`);

    stream = new X509Stream(socketPath);
    const first = await stream.next();
    expect(idsOf(first)).toEqual([`spiffe://${TD}/workload/a`]);
    expect(agent.store.x509Svid(entryId)?.spiffeId).toBe(`spiffe://${TD}/workload/a`);
  });

  it('caches JWT-SVIDs per audience', async () => {
    const client = new WorkloadApiClient({ socket: socketPath });
    const [a] = await client.fetchJwtSvids({ audience: ['svc'] });
    const [b] = await client.fetchJwtSvids({ audience: ['svc'] });
    expect(b!.svid.token).toBe(a!.svid.token);
    expect(a!.svid.id.toString()).toBe(`spiffe://${TD}/workload/a`);
    const validated = await client.validateJwtSvid(a!.svid.token, 'svc');
    expect(validated.spiffeId.toString()).toBe(`spiffe://${TD}/workload/a`);
    client.close();
    expect(agent.store.jwtSvid(`spiffe://${TD}/workload/a`, ['svc'])?.token).toBe(a!.svid.token);
  });

  it('deleting the entry removes the identity from the open stream', async () => {
    await admin.deleteEntry(entryId);
    const err = await stream.next().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);
    stream.close();
    expect(agent.store.entry(entryId)).toBeUndefined();
    expect(agent.store.x509Svid(entryId)).toBeUndefined();
    expect(agent.store.snapshot.jwtSvids.size).toBe(0);
  });

  it('rotates a short-lived SVID at half-life and pushes it to the open stream', async () => {
    const id = await admin.createEntry('/workload/short', agentId(), [`unix:uid:${UID}`], {
      x509SvidTtl: 10,
    });
    await waitFor('the short-lived SVID', () => agent.store.x509Svid(id));
    stream = new X509Stream(socketPath);
    const first = await stream.next();
    expect(idsOf(first)).toEqual([`spiffe://${TD}/workload/short`]);
    const firstLeaf = parseCertificate(first.svids[0]!.x509Svid);
    const rotateAt = agent.store.x509Svid(id)!.rotateAtMs;
    // 10 s TTL: half-life 5 s after issue, ±10 %.
    expect(rotateAt - (firstLeaf.notBefore.getTime() + 10_000)).toBeGreaterThanOrEqual(4_500 - 1);
    expect(rotateAt - (firstLeaf.notBefore.getTime() + 10_000)).toBeLessThanOrEqual(5_500);
    const second = await stream.next(15_000);
    const secondLeaf = parseCertificate(second.svids[0]!.x509Svid);
    expect(Buffer.from(secondLeaf.serial).toString('hex')).not.toBe(
      Buffer.from(firstLeaf.serial).toString('hex'),
    );
    expect(Date.now()).toBeGreaterThanOrEqual(rotateAt);
    expect(Date.now()).toBeLessThan(firstLeaf.notAfter.getTime());
    expect(secondLeaf.notAfter.getTime()).toBeGreaterThan(firstLeaf.notAfter.getTime());
    stream.close();
  }, 30_000);

  it('renews its own SVID at half-life and keeps syncing with it', async () => {
    const first = agent.nodeIdentity.current()!;
    const renewAt = agent.nodeIdentity.state().renewAtMs!;
    expect(renewAt).toBeLessThan(first.expiresAtMs);
    const renewed = await waitFor(
      'agent SVID renewal',
      () => {
        const c = agent.nodeIdentity.current();
        return c !== undefined && c.expiresAtMs > first.expiresAtMs ? c : undefined;
      },
      20_000,
    );
    expect(Date.now()).toBeGreaterThanOrEqual(renewAt);
    expect(renewed.spiffeId).toBe(first.spiffeId);
    expect(agent.store.agentIdentity()?.expiresAtMs).toBe(renewed.expiresAtMs);
    const before = agent.sync.state().lastSuccessAtMs;
    await waitFor(
      'a sync with the renewed SVID',
      () => agent.sync.state().lastSuccessAtMs > before,
    );
    expect(agent.sync.state().failures).toBe(0);
  }, 30_000);

  it('answers health and metrics', async () => {
    const h = agent.healthAddress!;
    expect((await fetch(`http://127.0.0.1:${h.port}/live`)).status).toBe(200);
    const ready = await fetch(`http://127.0.0.1:${h.port}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true });
    const metrics = await (
      await fetch(`http://127.0.0.1:${agent.metricsAddress!.port}/metrics`)
    ).text();
    expect(metrics).toMatch(/spire_edge_agent_syncs_total\{result="ok"\} [1-9]/);
    expect(metrics).toMatch(/spire_edge_agent_x509_svids_minted_total [2-9]/);
    expect(metrics).toMatch(
      /spire_edge_agent_node_attestations_total\{kind="renew",result="ok"\} [1-9]/,
    );
    expect(metrics).toContain('spire_edge_agent_server_reachable 1');
  });
});
