/**
 * The `spire-server` commands against the real admin API (real SQLite datastore, real CA
 * manager) on a real Unix socket: an operator's session end to end — health, entries created
 * from flags and from a batch file, filtered, updated and deleted, the bundle, a join token,
 * and minted X509- and JWT-SVIDs checked against the bundle.
 */
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePem } from '../../../../src/common/pem.js';
import { parseSpiffeId } from '../../../../src/spiffe/id.js';
import { parseJwtSvidInsecure } from '../../../../src/spiffe/jwt-svid.js';
import { X509Bundle } from '../../../../src/spiffe/x509-bundle.js';
import { verifyX509Svid } from '../../../../src/spiffe/x509-verify.js';
import { type CliResult, type RealAdmin, runCli, startRealAdmin, TD } from './support.js';

let admin: RealAdmin;

beforeAll(async () => {
  admin = await startRealAdmin();
});
afterAll(async () => {
  await admin?.close();
});

function cli(args: string[], opts: Parameters<typeof runCli>[1] = {}): Promise<CliResult> {
  return runCli([...args, '-socketPath', admin.socketPath], opts);
}

function entryIds(text: string): string[] {
  return [...text.matchAll(/^Entry ID {16}: (.+)$/gm)].map((m) => m[1]!);
}

describe('spire-server commands on the real admin API', () => {
  it('reports the server healthy', async () => {
    expect(await cli(['healthcheck'])).toEqual({ code: 0, out: 'Server is healthy.\n', err: '' });
  });

  it('creates, shows, filters, counts, updates and deletes entries', async () => {
    const node = await cli([
      'entry',
      'create',
      '-node',
      '-spiffeID',
      `spiffe://${TD}/gw/17`,
      '-selector',
      'tpm:pub_hash:ab12',
    ]);
    expect(node.err).toBe('');
    expect(node.code).toBe(0);
    expect(node.out).toMatch(
      new RegExp(
        `^Entry ID {16}: [\\w-]+\\nSPIFFE ID {15}: spiffe://${TD}/gw/17\\nParent ID {15}: spiffe://${TD}/spire/server\\nRevision {16}: 0\\nX509-SVID TTL {11}: default\\nJWT-SVID TTL {12}: default\\nSelector {16}: tpm:pub_hash:ab12\\n\\n$`,
      ),
    );
    const web = await cli([
      'entry',
      'create',
      '-parentID',
      `spiffe://${TD}/gw/17`,
      '-spiffeID',
      `spiffe://${TD}/web`,
      '-selector',
      'unix:uid:1000',
      '-selector',
      'unix:gid:1000',
      '-x509SVIDTTL',
      '600',
      '-dns',
      'web.example.org',
      '-hint',
      'web',
    ]);
    expect(web.code).toBe(0);
    const [webId] = entryIds(web.out);
    expect(webId).toBeDefined();

    const dup = await cli([
      'entry',
      'create',
      '-parentID',
      `spiffe://${TD}/gw/17`,
      '-spiffeID',
      `spiffe://${TD}/web`,
      '-selector',
      'unix:gid:1000',
      '-selector',
      'unix:uid:1000',
    ]);
    expect(dup.code).toBe(1);
    expect(dup.out).toBe('');
    expect(dup.err).toMatch(
      /^Failed to create the following entry \(code: AlreadyExists, msg: "similar entry already exists"\):\nEntry ID {16}: \(none\)\n[\s\S]+\nError: failed to create one or more entries\n$/,
    );

    const batch = await cli(['entry', 'create', '-data', '-'], {
      stdin: JSON.stringify({
        entries: [
          {
            spiffe_id: `spiffe://${TD}/db`,
            parent_id: `spiffe://${TD}/gw/17`,
            selectors: [{ type: 'unix', value: 'uid:2000' }],
            jwt_svid_ttl: 120,
          },
          {
            spiffe_id: `spiffe://${TD}/cache`,
            parent_id: `spiffe://${TD}/gw/17`,
            selectors: [
              { type: 'unix', value: 'uid:3000' },
              { type: 'unix', value: 'gid:1000' },
            ],
          },
        ],
      }),
    });
    expect(batch.err).toBe('');
    expect(entryIds(batch.out)).toHaveLength(2);

    const all = await cli(['entry', 'show']);
    expect(all.out.startsWith('Found 4 entries\n')).toBe(true);
    expect([...all.out.matchAll(/^SPIFFE ID {15}: (.+)$/gm)].map((m) => m[1])).toEqual([
      `spiffe://${TD}/cache`,
      `spiffe://${TD}/db`,
      `spiffe://${TD}/gw/17`,
      `spiffe://${TD}/web`,
    ]);
    const bySelector = await cli(['entry', 'show', '-selector', 'unix:gid:1000']);
    expect(bySelector.out.startsWith('Found 2 entries\n')).toBe(true);
    const exact = await cli([
      'entry',
      'show',
      '-selector',
      'unix:gid:1000',
      '-matchSelectorsOn',
      'exact',
    ]);
    expect(exact.out).toBe('Found 0 entries\n');
    const any = await cli([
      'entry',
      'count',
      '-selector',
      'unix:uid:2000',
      '-selector',
      'unix:uid:3000',
      '-matchSelectorsOn',
      'any',
    ]);
    expect(any).toEqual({ code: 0, out: '2 registration entries\n', err: '' });
    const byParent = await cli(['entry', 'count', '-parentID', `spiffe://${TD}/gw/17`]);
    expect(byParent.out).toBe('3 registration entries\n');
    const byHint = await cli(['entry', 'show', '-hint', 'web', '-output', 'json']);
    const parsed = JSON.parse(byHint.out) as {
      entries: Array<{ id: string; x509_svid_ttl: number }>;
    };
    expect(parsed.entries.map((e) => [e.id, e.x509_svid_ttl])).toEqual([[webId, 600]]);

    const upd = await cli([
      'entry',
      'update',
      '-entryID',
      webId!,
      '-parentID',
      `spiffe://${TD}/gw/17`,
      '-spiffeID',
      `spiffe://${TD}/web`,
      '-selector',
      'unix:uid:1001',
      '-jwtSVIDTTL',
      '60',
    ]);
    expect(upd.err).toBe('');
    expect(upd.out).toContain('Revision                : 1\n');
    expect(upd.out).toContain('JWT-SVID TTL            : 60\n');
    expect(upd.out).not.toContain('Hint');
    const shown = await cli(['entry', 'show', '-entryID', webId!]);
    expect(shown.out).toContain('Selector                : unix:uid:1001\n');

    const del = await cli(['entry', 'delete', '-entryID', webId!]);
    expect(del).toEqual({
      code: 0,
      out: `Deleted entry with ID: ${webId}\n\n\nDeleted 1 entries successfully`,
      err: '',
    });
    const gone = await cli(['entry', 'show', '-entryID', webId!]);
    expect(gone.code).toBe(1);
    expect(gone.err).toMatch(
      new RegExp(`^Error: error fetching entry ID ${webId}: rpc error: code = NotFound desc = `),
    );
    expect((await cli(['entry', 'count'])).out).toBe('3 registration entries\n');
  });

  it('shows and counts the bundle, generates a token, lists no agents', async () => {
    const pem = await cli(['bundle', 'show']);
    expect(pem.code).toBe(0);
    const blocks = decodePem(pem.out);
    expect(blocks.length).toBeGreaterThan(0);
    expect(new X509Certificate(Buffer.from(blocks[0]!.der)).ca).toBe(true);
    const doc = await cli(['bundle', 'show', '-format', 'spiffe']);
    const jwks = JSON.parse(doc.out) as { keys: Array<{ use: string }> };
    expect(jwks.keys.map((k) => k.use)).toContain('x509-svid');
    expect(jwks.keys.map((k) => k.use)).toContain('jwt-svid');
    expect(await cli(['bundle', 'count'])).toEqual({ code: 0, out: '1 bundle\n', err: '' });
    const token = await cli(['token', 'generate', '-spiffeID', `spiffe://${TD}/gw/18`]);
    expect(token.out).toMatch(/^Token: [0-9a-f-]{36}\n$/);
    expect(await cli(['agent', 'list'])).toEqual({
      code: 0,
      out: 'No attested agents found\n',
      err: '',
    });
    expect(await cli(['agent', 'count'])).toEqual({ code: 0, out: '0 attested agents\n', err: '' });
  });

  it('mints X509- and JWT-SVIDs that verify against the bundle', async () => {
    const x = await cli([
      'x509',
      'mint',
      '-spiffeID',
      `spiffe://${TD}/minted`,
      '-dns',
      'minted.example.org',
      '-ttl',
      '10m',
    ]);
    // The server's expiry is whole seconds from its own clock: SPIRE's check then reports it.
    expect(x.err).toMatch(
      /^(X509-SVID lifetime was capped shorter than specified ttl; expires "[^"]+"\n)?$/,
    );
    expect(x.code).toBe(0);
    const sections = x.out.split(/\n(?=Private key:\n|Root CAs:\n)/);
    const chain = decodePem(sections[0]!).map((b) => b.der);
    const roots = decodePem(sections[2]!).map((b) => b.der);
    const bundle = new X509Bundle(TD, roots);
    const verified = verifyX509Svid(chain, bundle, { now: new Date() });
    expect(verified.id.toString()).toBe(`spiffe://${TD}/minted`);
    const j = await cli(['jwt', 'mint', '-spiffeID', `spiffe://${TD}/minted`, '-audience', 'db']);
    expect(j.err).toBe('');
    const svid = parseJwtSvidInsecure(j.out.trim());
    expect(svid.id.equals(parseSpiffeId(`spiffe://${TD}/minted`))).toBe(true);
    expect(svid.audience).toEqual(['db']);
  });
});
