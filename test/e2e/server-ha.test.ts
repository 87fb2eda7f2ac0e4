/**
 * HA: two `spire-server run` processes on one PostgreSQL database serve the same entries and
 * agents, and both servers' roots appear in the trust bundle.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attestAgent } from '../../src/agent/attestation/attest-agent.js';
import { createCsr } from '../../src/agent/attestation/csr.js';
import { createJoinTokenAttestorClient } from '../../src/agent/attestation/join-token.js';
import { createAgentApiTransport } from '../../src/agent/attestation/server-transport.js';
import { entryv1 } from '../../src/protocol/index.js';
import { parseSpiffeBundle } from '../../src/spiffe/spiffe-bundle.js';
import { type PostgresInstance, startPostgres } from '../harness/postgres.js';
import {
  agentApiPort,
  runCommand,
  type ServiceProcess,
  SPIRE_SERVER,
  startServerProcess,
  writeServerConfig,
} from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'e2e-ha-'));
let pg: PostgresInstance;
const servers: Array<{ proc: ServiceProcess; socketPath: string }> = [];

beforeAll(async () => {
  pg = await startPostgres();
  const connectionString = await pg.createDatabase('spire_ha');
  for (const name of ['a', 'b']) {
    const d = join(dir, name);
    mkdirSync(d);
    const { path, socketPath } = writeServerConfig({ dir: d, postgres: connectionString });
    servers.push({ proc: await startServerProcess(path, socketPath), socketPath });
  }
}, 240_000);

afterAll(async () => {
  for (const s of servers) expect(await s.proc.stop()).toBe(0);
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const cli = (i: number, ...args: string[]) =>
  runCommand(SPIRE_SERVER, [...args, '-socketPath', servers[i]!.socketPath]);

describe('two servers on one PostgreSQL', () => {
  it('an entry created through one is listed by the other', async () => {
    const c = await cli(
      0,
      'entry',
      'create',
      '-parentID',
      'spiffe://example.org/spire/agent/join_token/ha',
      '-spiffeID',
      'spiffe://example.org/ha/web',
      '-selector',
      'unix:uid:1000',
    );
    expect(c.code).toBe(0);
    const show = await cli(1, 'entry', 'show', '-spiffeID', 'spiffe://example.org/ha/web');
    expect(show.out).toMatch(/^Found 1 entry$/m);
  });

  it("both servers' roots are in the bundle each one serves", async () => {
    for (const i of [0, 1]) {
      const b = parseSpiffeBundle(
        'example.org',
        (await cli(i, 'bundle', 'show', '-format', 'spiffe')).out,
      );
      expect(b.x509Authorities.length, `server ${i}`).toBe(2);
    }
  });

  it('an agent attested by one server syncs its authorized entries from the other', async () => {
    const t = await cli(0, 'token', 'generate', '-spiffeID', 'spiffe://example.org/ha/gw');
    const token = /^Token: (\S+)$/m.exec(t.out)![1]!;
    const agentId = `spiffe://example.org/spire/agent/join_token/${token}`;
    expect(
      (
        await cli(
          1,
          'entry',
          'create',
          '-parentID',
          'spiffe://example.org/ha/gw',
          '-spiffeID',
          'spiffe://example.org/ha/workload',
          '-selector',
          'unix:uid:1234',
        )
      ).code,
    ).toBe(0);

    const pem = (await cli(1, 'bundle', 'show')).out;
    const roots = [
      ...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g),
    ].map((m) => new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64')));
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const toA = createAgentApiTransport({
      host: '127.0.0.1',
      port: agentApiPort(servers[0]!.proc),
      trustDomain: 'example.org',
      bundle: roots,
    });
    const attested = await attestAgent(toA, createJoinTokenAttestorClient(token), {
      csr: createCsr(key.privateKey),
    });
    expect(attested.svid.id).toBe(agentId);

    // Server B accepts the SVID that server A's CA signed and serves the agent's entries.
    const toB = createAgentApiTransport({
      host: '127.0.0.1',
      port: agentApiPort(servers[1]!.proc),
      trustDomain: 'example.org',
      bundle: roots,
      svid: { certChain: attested.svid.certChain, privateKey: key.privateKey },
    });
    const client = createClient(entryv1.Entry, toB);
    let ids: string[] = [];
    for (let i = 0; i < 50; i++) {
      const res = await client.getAuthorizedEntries({});
      ids = res.entries.map((e) => `spiffe://${e.spiffeId?.trustDomain}${e.spiffeId?.path}`);
      if (ids.includes('spiffe://example.org/ha/workload')) break;
      await new Promise((r) => setTimeout(r, 200)); // B's entry cache follows events (1 s poll)
    }
    expect(ids).toContain('spiffe://example.org/ha/gw');
    expect(ids).toContain('spiffe://example.org/ha/workload');
    expect((await cli(1, 'agent', 'list')).out).toContain(agentId);
    await toA.close?.();
    await toB.close?.();
  });
});
