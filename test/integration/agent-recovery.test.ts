/**
 * Recovery and bootstrap paths of a real agent against a real server (both in this process):
 * `insecure_bootstrap` (the bundle taken from the server with a loud warning, then the server
 * authenticated against it), a corrupt store moved aside at start with a loud log line instead of
 * a crash loop, and a fresh attestation with a new join token that serves workloads again.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningAgent } from '../../src/agent/agent.js';
import { WorkloadApiClient } from '../../src/agent/workload-api/client.js';
import type { RunningServer } from '../../src/server/server.js';
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

const dir = mkdtempSync(join(tmpdir(), 'agent-recovery-'));
const logs: string[] = [];
let server: RunningServer;
let admin: Admin;
let agent: RunningAgent | undefined;
let config: { path: string; socketPath: string };

beforeAll(async () => {
  const port = await freePort();
  const sc = writeServerConfig(join(dir, 'server'), port);
  server = await startInProcessServer(sc.path, []);
  admin = new Admin(sc.socketPath);
  config = writeAgentConfig({ dir: join(dir, 'agent'), port });
});
afterAll(async () => {
  await agent?.close();
  admin?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function servedIds(): Promise<string[]> {
  const client = new WorkloadApiClient({ socket: config.socketPath });
  try {
    const ctx = await client.fetchX509Context({ timeoutMs: 2000 });
    return ctx.svids.map((s) => s.id.toString());
  } finally {
    client.close();
  }
}

describe('bootstrap and recovery', () => {
  it('insecure_bootstrap takes the bundle from the server, warning loudly, and attests', async () => {
    const token = await admin.joinToken();
    agent = await startInProcessAgent(config.path, logs, { joinToken: token });
    const id = await waitFor('attestation', () => agent!.nodeIdentity.current()?.spiffeId);
    expect(id).toBe(`spiffe://${TD}/spire/agent/join_token/${token}`);
    const text = logs.join('');
    expect(text).toContain('insecure_bootstrap is set');
    expect(text).toContain('INSECURE BOOTSTRAP');
    const served = (await admin.bundle.getBundle({})).x509Authorities.map((a) =>
      Buffer.from(a.asn1).toString('hex'),
    );
    expect(
      agent.store.bundle()!.x509Authorities.map((d) => Buffer.from(d).toString('hex')),
    ).toEqual(served);
    await admin.createEntry('/recovery/one', id, [`unix:uid:${UID}`]);
    expect(await waitFor('an SVID', servedIds, 15_000, 200)).toEqual([
      `spiffe://${TD}/recovery/one`,
    ]);
    await agent.close();
    agent = undefined;
  });

  it('a corrupt store is moved aside with a loud log; a new join token brings workloads back', async () => {
    // Something that is not LevelDB's appears in the store directory.
    writeFileSync(join(dir, 'agent', 'agent-data', 'agent-store', 'stray.bin'), 'not leveldb');
    logs.length = 0;
    const token = await admin.joinToken();
    agent = await startInProcessAgent(config.path, logs, { joinToken: token });
    expect(agent.quarantined?.error.code).toBe('ERR_AGENT_STORE_CORRUPT');
    expect(existsSync(agent.quarantined!.path)).toBe(true);
    expect(logs.join('')).toMatch(
      /level=error msg="THE AGENT STORE COULD NOT BE USED AND WAS MOVED ASIDE/,
    );
    expect(agent.store.created).toBe(true);
    const id = await waitFor('attestation', () => agent!.nodeIdentity.current()?.spiffeId);
    expect(id).toBe(`spiffe://${TD}/spire/agent/join_token/${token}`);
    await admin.createEntry('/recovery/two', id, [`unix:uid:${UID}`]);
    expect(await waitFor('an SVID', servedIds, 15_000, 200)).toEqual([
      `spiffe://${TD}/recovery/two`,
    ]);
  });
});
