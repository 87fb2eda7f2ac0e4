/**
 * An operator's session against a real `spire-server run` process, driven only through
 * `./bin/spire-server` commands (plus an agent attesting with a generated join token).
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attestAgent } from '../../src/agent/attestation/attest-agent.js';
import { createCsr } from '../../src/agent/attestation/csr.js';
import { createJoinTokenAttestorClient } from '../../src/agent/attestation/join-token.js';
import { createAgentApiTransport } from '../../src/agent/attestation/server-transport.js';
import { parseSpiffeBundle } from '../../src/spiffe/spiffe-bundle.js';
import {
  agentApiPort,
  runCommand,
  type ServiceProcess,
  SPIRE_SERVER,
  startServerProcess,
  writeServerConfig,
} from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'e2e-server-'));
const { path: configPath, socketPath } = writeServerConfig({ dir });
let server: ServiceProcess;

const cli = (...args: string[]) => runCommand(SPIRE_SERVER, [...args, '-socketPath', socketPath]);

beforeAll(async () => {
  server = await startServerProcess(configPath, socketPath);
}, 240_000);

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
  rmSync(dir, { recursive: true, force: true });
});

function entryId(out: string): string {
  const m = /Entry ID\s+: (\S+)/.exec(out);
  if (m === null) throw new Error(`no entry ID in:\n${out}`);
  return m[1]!;
}

describe('spire-server entry, bundle, token and agent commands', () => {
  it('creates, shows, updates, filters and deletes entries with SPIRE layouts', async () => {
    const c = await cli(
      'entry',
      'create',
      '-parentID',
      'spiffe://example.org/spire/agent/join_token/x',
      '-spiffeID',
      'spiffe://example.org/web',
      '-selector',
      'unix:uid:1000',
      '-selector',
      'unix:gid:1000',
      '-x509SVIDTTL',
      '600',
      '-dns',
      'web.example.org',
    );
    expect(c.err).toBe('');
    expect(c.code).toBe(0);
    expect(c.out).toMatch(/^Entry ID {16}: [0-9a-f-]{36}$/m);
    expect(c.out).toMatch(/^SPIFFE ID {15}: spiffe:\/\/example\.org\/web$/m);
    expect(c.out).toMatch(/^Selector {16}: unix:uid:1000$/m);
    expect(c.out).toMatch(/^DNS name {16}: web\.example\.org$/m);
    const id = entryId(c.out);

    const show = await cli('entry', 'show', '-spiffeID', 'spiffe://example.org/web');
    expect(show.code).toBe(0);
    expect(show.out).toMatch(/^Found 1 entry$/m);
    expect(entryId(show.out)).toBe(id);

    const u = await cli(
      'entry',
      'update',
      '-entryID',
      id,
      '-parentID',
      'spiffe://example.org/spire/agent/join_token/x',
      '-spiffeID',
      'spiffe://example.org/web',
      '-selector',
      'unix:uid:1001',
    );
    expect(u.code).toBe(0);
    expect(u.out).toMatch(/^Revision {16}: 1$/m);
    const bySel = await cli('entry', 'show', '-selector', 'unix:uid:1001');
    expect(entryId(bySel.out)).toBe(id);
    const none = await cli('entry', 'show', '-selector', 'unix:uid:1000');
    expect(none.out).toMatch(/^Found 0 entries$/m);

    const json = await cli('entry', 'show', '-entryID', id, '-output', 'json');
    const parsed = JSON.parse(json.out) as { entries: Array<{ spiffe_id: { path: string } }> };
    expect(parsed.entries[0]!.spiffe_id.path).toBe('/web');

    const d = await cli('entry', 'delete', '-entryID', id);
    expect(d.code).toBe(0);
    expect((await cli('entry', 'show', '-entryID', id)).code).toBe(1);
  });

  it('creates a batch from -data and refuses the duplicate in it', async () => {
    const file = join(dir, 'entries.json');
    const e = (path: string, uid: number) => ({
      spiffe_id: `spiffe://example.org/batch/${path}`,
      parent_id: 'spiffe://example.org/spire/agent/join_token/y',
      selectors: [{ type: 'unix', value: `uid:${uid}` }],
    });
    writeFileSync(file, JSON.stringify({ entries: [e('a', 1), e('b', 2), e('c', 3)] }));
    const ok = await cli('entry', 'create', '-data', file);
    expect(ok.code).toBe(0);
    expect(ok.out.match(/^Entry ID/gm)).toHaveLength(3);
    const count = await cli(
      'entry',
      'count',
      '-parentID',
      'spiffe://example.org/spire/agent/join_token/y',
    );
    expect(count.out).toMatch(/3 registration entries/);
    writeFileSync(file, JSON.stringify({ entries: [e('d', 4), e('a', 1)] }));
    const dup = await cli('entry', 'create', '-data', file);
    expect(dup.code).toBe(1);
    expect(dup.err).toMatch(/AlreadyExists/);
    expect(dup.err).toMatch(/similar entry already exists/);
  });

  it('rejects bad input with errors that name the problem, and keeps serving', async () => {
    const bad: Array<[string[], RegExp]> = [
      [
        [
          '-spiffeID',
          'spiffe://example.org/a/../b',
          '-parentID',
          'spiffe://example.org/p',
          '-selector',
          'unix:uid:1',
        ],
        /dot segments/,
      ],
      [
        [
          '-spiffeID',
          'http://example.org/a',
          '-parentID',
          'spiffe://example.org/p',
          '-selector',
          'unix:uid:1',
        ],
        /scheme/,
      ],
      [
        [
          '-spiffeID',
          'spiffe://example.org/a',
          '-parentID',
          'spiffe://example.org/p',
          '-selector',
          'nocolon',
        ],
        /selector/i,
      ],
      [
        [
          '-spiffeID',
          'spiffe://example.org/a',
          '-parentID',
          'spiffe://example.org/p',
          '-selector',
          'unix:uid:1',
          '-x509SVIDTTL',
          '-5',
        ],
        /ttl/i,
      ],
    ];
    for (const [args, re] of bad) {
      const r = await cli('entry', 'create', ...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(`${r.out}${r.err}`, args.join(' ')).toMatch(re);
    }
    const health = await cli('healthcheck');
    expect(health.code).toBe(0);
    expect(health.out).toMatch(/Server is healthy/);
  });

  it('bundle show -format spiffe parses with the library', async () => {
    const r = await cli('bundle', 'show', '-format', 'spiffe');
    expect(r.code).toBe(0);
    const b = parseSpiffeBundle('example.org', r.out);
    expect(b.x509Authorities.length).toBeGreaterThanOrEqual(1);
    expect(b.jwtAuthorities.size).toBeGreaterThanOrEqual(1);
  });

  it('token generate gives a token an agent attests with once; agents can be listed, banned and evicted', async () => {
    const t = await cli(
      'token',
      'generate',
      '-spiffeID',
      'spiffe://example.org/gw/1',
      '-ttl',
      '600',
    );
    expect(t.code).toBe(0);
    const token = /^Token: ([0-9a-f-]{36})$/m.exec(t.out)?.[1];
    expect(token).toBeDefined();

    const pem = (await cli('bundle', 'show')).out;
    const roots = [
      ...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g),
    ].map((m) => new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64')));
    const transport = createAgentApiTransport({
      host: '127.0.0.1',
      port: agentApiPort(server),
      trustDomain: 'example.org',
      bundle: roots,
    });
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const res = await attestAgent(transport, createJoinTokenAttestorClient(token!), {
      csr: createCsr(key.privateKey),
    });
    const agentId = `spiffe://example.org/spire/agent/join_token/${token}`;
    expect(res.svid.id).toBe(agentId);

    // The node alias entry the token created maps the agent to spiffe://example.org/gw/1.
    const alias = await cli('entry', 'show', '-spiffeID', 'spiffe://example.org/gw/1');
    expect(alias.out).toContain(`Parent ID               : ${agentId}`);

    const list = await cli('agent', 'list');
    expect(list.code).toBe(0);
    expect(list.out).toContain(agentId);
    const show = await cli('agent', 'show', '-spiffeID', agentId);
    expect(show.out).toMatch(/Attestation type\s+: join_token/);

    expect((await cli('agent', 'ban', '-spiffeID', agentId)).code).toBe(0);
    expect((await cli('agent', 'show', '-spiffeID', agentId)).out).toMatch(/Banned\s+: true/);
    expect((await cli('agent', 'evict', '-spiffeID', agentId)).code).toBe(0);
    expect((await cli('agent', 'count')).out).toMatch(/0 attested agents/);
    await transport.close?.();
  });
});
