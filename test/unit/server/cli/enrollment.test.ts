/**
 * `spire-server enrollment token generate|list|revoke` against a real admin server (SQLite,
 * admin socket with the provisioning-token service mounted as `spire-server run` mounts it):
 * output formats, what is stored, errors, and the command list.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AdminServer, startAdminServer } from '../../../../src/server/api/admin/index.js';
import {
  createEnrollmentServices,
  PROVISIONING_TOKEN_PATTERN,
} from '../../../../src/server/api/enrollment/index.js';
import { type AdminFixture, startAdminFixture } from '../api/admin-support.js';
import { runCli } from './support.js';

let fx: AdminFixture;
let admin: AdminServer;
let sock: string[];

beforeAll(async () => {
  fx = await startAdminFixture();
  const enrollment = createEnrollmentServices({ context: fx.context });
  admin = await startAdminServer({
    context: fx.context,
    socketPath: join(fx.dir, 'private', 'api.sock'),
    shutdownGraceMs: 100,
    extraRoutes: enrollment.registerAdmin,
  });
  sock = ['-socketPath', admin.socketPath];
});

afterAll(async () => {
  await admin?.close();
  await fx?.close();
});

const ALIAS = 'spiffe://example.org/gw/1';

describe('spire-server enrollment token', () => {
  it('generates a token (pretty and json), lists it without the value, and revokes it', async () => {
    const g = await runCli(['enrollment', 'token', 'generate', '-spiffeID', ALIAS, ...sock]);
    expect(g.err).toBe('');
    expect(g.code).toBe(0);
    const token = /^Token: (\S+)\n$/.exec(g.out)?.[1];
    expect(token).toMatch(PROVISIONING_TOKEN_PATTERN);

    const before = Math.floor(Date.now() / 1000);
    const j = await runCli([
      'enrollment',
      'token',
      'generate',
      '-spiffeID',
      'spiffe://example.org/gw/2',
      '-ttl',
      '60',
      '-replace',
      '-output',
      'json',
      ...sock,
    ]);
    expect(j.code).toBe(0);
    const doc = JSON.parse(j.out) as Record<string, unknown>;
    expect(doc).toMatchObject({ spiffe_id: 'spiffe://example.org/gw/2', replace: true });
    expect(doc.value).toMatch(PROVISIONING_TOKEN_PATTERN);
    expect(Number(doc.expires_at) - before).toBeGreaterThanOrEqual(59);
    expect(Number(doc.expires_at) - before).toBeLessThanOrEqual(61);

    const note = await runCli([
      'enrollment',
      'token',
      'generate',
      '-spiffeID',
      'spiffe://example.org/gw/3',
      '-replace',
      ...sock,
    ]);
    expect(note.out).toMatch(
      /^Token: \S+\nNote: this token may rebind spiffe:\/\/example\.org\/gw\/3 if it is bound to another device\n$/,
    );

    const list = await runCli(['enrollment', 'token', 'list', ...sock]);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(
      /^Found 3 provisioning tokens\n\nSPIFFE ID {15}: spiffe:\/\/example\.org\/gw\/1\nFingerprint {13}: [0-9a-f]{16}\nReplace {17}: false\nExpires at {14}: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC\nCreated at {14}: /,
    );
    expect(list.out).not.toContain(token!);
    expect(list.out).not.toContain(String(doc.value));
    const one = await runCli([
      'enrollment',
      'token',
      'list',
      '-spiffeID',
      ALIAS,
      '-output',
      'json',
      ...sock,
    ]);
    const listed = JSON.parse(one.out) as { tokens: Array<Record<string, unknown>> };
    expect(listed.tokens.map((t) => t.spiffe_id)).toEqual([ALIAS]);

    const r = await runCli(['enrollment', 'token', 'revoke', '-spiffeID', ALIAS, ...sock]);
    expect(r).toEqual({ code: 0, out: `Revoked 1 provisioning token for ${ALIAS}\n`, err: '' });
    const again = await runCli([
      'enrollment',
      'token',
      'revoke',
      '-spiffeID',
      ALIAS,
      '-output',
      'json',
      ...sock,
    ]);
    expect(again.out).toBe('{"revoked":0}\n');
    expect((await fx.ds.listProvisioningTokens()).map((t) => t.spiffeId)).toEqual([
      'spiffe://example.org/gw/2',
      'spiffe://example.org/gw/3',
    ]);
  });

  for (const [args, message] of [
    [['generate'], 'Error: a SPIFFE ID is required (-spiffeID)\n'],
    [['revoke'], 'Error: a SPIFFE ID is required (-spiffeID)\n'],
    [
      ['generate', '-spiffeID', ALIAS, '-ttl', '0'],
      'Error: invalid value for TTL: must be at least 1 second\n',
    ],
    [
      ['generate', '-spiffeID', ALIAS, '-ttl', '4294967296'],
      'Error: invalid value for TTL: overflow converting int(4294967296) to int32\n',
    ],
    [
      ['generate', '-spiffeID', 'spiffe://example.org/spire/server'],
      'Error: rpc error: code = InvalidArgument desc = invalid spiffe_id: "spiffe://example.org/spire/server" is not a workload in trust domain "example.org"; path is in the reserved namespace\n',
    ],
    [
      ['generate', '-spiffeID', 'spiffe://elsewhere.org/gw'],
      'Error: rpc error: code = InvalidArgument desc = invalid spiffe_id: "spiffe://elsewhere.org/gw" is not a member of trust domain "example.org"\n',
    ],
  ] as const) {
    it(`fails: enrollment token ${args.join(' ')}`, async () => {
      const r = await runCli(['enrollment', 'token', ...args, ...sock]);
      expect(r.code).toBe(1);
      expect(r.err).toBe(message);
      expect(r.out).toBe('');
    });
  }

  it('fails with the socket error when no server listens', async () => {
    const r = await runCli([
      'enrollment',
      'token',
      'list',
      '-socketPath',
      join(fx.dir, 'none.sock'),
    ]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /^Error: rpc error: code = Unavailable desc = connection error: .*no such file or directory/,
    );
  });

  it('is listed with its subcommands and documents its flags', async () => {
    const group = await runCli(['enrollment', 'token']);
    expect(group.code).toBe(1);
    expect(group.err).toContain(
      '    generate    Generates a one-time provisioning token for tpm-enroll',
    );
    expect(group.err).toContain('    list        Lists unused provisioning tokens');
    expect(group.err).toContain('    revoke      Revokes the provisioning tokens of a node alias');
    const help = await runCli(['enrollment', 'token', 'generate', '-h']);
    expect(help.code).toBe(0);
    expect(help.err).toMatch(/^Usage of enrollment token generate:\n/);
    for (const f of ['-spiffeID', '-ttl', '-replace', '-output', '-socketPath', '-instance']) {
      expect(help.err).toMatch(new RegExp(`\\n  ${f}[ \\n]`));
    }
  });
});
