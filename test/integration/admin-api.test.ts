/**
 * The admin API over its real Unix socket, as `spire-server` CLI commands reach it: a
 * connect client over `createUdsTransport`, peer credentials from the native addon, a real
 * SQLite datastore and a real CA. Entries (create, filter with every match mode, paginate,
 * update, delete), join tokens consumed through the datastore, bundles, agents (with the
 * evidence header), minted SVIDs verified against the bundle, bad input for every field
 * family, the transport's size limit, Unimplemented agent-API methods, health, the socket
 * directory's mode, and the audit log's caller uid.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUdsTransport, type GrpcClientTransport } from '../../src/common/grpc.js';
import { agentv1, bundlev1, entryv1, healthv1, svidv1, types } from '../../src/protocol/index.js';
import { type AdminServer, startAdminServer } from '../../src/server/api/admin/admin-server.js';
import { readAttestationEvidence } from '../../src/server/api/admin/agent.js';
import { X509Bundle } from '../../src/spiffe/x509-bundle.js';
import { verifyX509Svid } from '../../src/spiffe/x509-verify.js';
import {
  type AdminFixture,
  type Init,
  makeCsr,
  parsedLogs,
  startAdminFixture,
  TD,
} from '../unit/server/api/admin-support.js';
import { makePki } from '../unit/spiffe/x509-support.js';

const MAX_MESSAGE = 64 * 1024;
let fx: AdminFixture;
let server: AdminServer;
let transport: GrpcClientTransport;
let entry: ReturnType<typeof createClient<typeof entryv1.Entry>>;
let bundle: ReturnType<typeof createClient<typeof bundlev1.Bundle>>;
let agent: ReturnType<typeof createClient<typeof agentv1.Agent>>;
let svid: ReturnType<typeof createClient<typeof svidv1.SVID>>;
let health: ReturnType<typeof createClient<typeof healthv1.Health>>;

beforeAll(async () => {
  fx = await startAdminFixture();
  server = await startAdminServer({
    context: fx.context,
    socketPath: join(fx.dir, 'private', 'api.sock'),
    maxMessageBytes: MAX_MESSAGE,
    // The refused over-long request leaves its HTTP/2 stream half-open until the client's
    // connection goes away; do not wait the default 5 s for it at teardown.
    shutdownGraceMs: 500,
  });
  transport = createUdsTransport(server.socketPath);
  entry = createClient(entryv1.Entry, transport);
  bundle = createClient(bundlev1.Bundle, transport);
  agent = createClient(agentv1.Agent, transport);
  svid = createClient(svidv1.SVID, transport);
  health = createClient(healthv1.Health, transport);
});
afterAll(async () => {
  transport?.close();
  await server?.close();
  await fx?.close();
});

/** The ConnectError a call fails with. */
async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  expect.fail('expected the call to fail');
}

type EntryInit = Init<typeof types.EntrySchema>;
const PARENT = { trustDomain: TD, path: '/spire/agent/join_token/node-1' };
const e = (path: string, init: Partial<EntryInit> = {}): EntryInit => ({
  spiffeId: { trustDomain: TD, path },
  parentId: PARENT,
  selectors: [{ type: 'unix', value: `uid:${path}` }],
  ...init,
});

describe('socket', () => {
  it('listens in a directory only the server user can enter', () => {
    expect(statSync(join(fx.dir, 'private')).mode & 0o777).toBe(0o700);
    expect(statSync(server.socketPath).isSocket()).toBe(true);
  });

  it('answers the health check and Unimplemented for agent-API methods', async () => {
    expect((await health.check({})).status).toBe(
      healthv1.HealthCheckResponse_ServingStatus.SERVING,
    );
    expect((await health.check({ service: 'spire.api.server.entry.v1.Entry' })).status).toBe(
      healthv1.HealthCheckResponse_ServingStatus.SERVING,
    );
    expect((await failure(health.check({ service: 'nope' }))).code).toBe(Code.NotFound);
    expect((await failure(entry.getAuthorizedEntries({}))).code).toBe(Code.Unimplemented);
    expect((await failure(agent.renewAgent({}))).code).toBe(Code.Unimplemented);
    expect((await failure(svid.batchNewX509SVID({}))).code).toBe(Code.Unimplemented);
  });
});

describe('entries over the socket', () => {
  it('creates, gets, updates and deletes, logging the caller uid read from the socket', async () => {
    fx.logs.length = 0;
    const created = await entry.batchCreateEntry({
      entries: [e('/wire/a', { dnsNames: ['a.example.org'], hint: 'a' })],
    });
    expect(created.results[0]?.status).toMatchObject({ code: 0, message: 'OK' });
    const id = created.results[0]!.entry!.id;
    const got = await entry.getEntry({ id });
    expect(got).toMatchObject({ id, hint: 'a', dnsNames: ['a.example.org'] });
    const updated = await entry.batchUpdateEntry({
      entries: [{ id, hint: 'b' }],
      inputMask: { hint: true },
    });
    expect(updated.results[0]?.entry).toMatchObject({ hint: 'b', revisionNumber: 1n });
    const deleted = await entry.batchDeleteEntry({ ids: [id] });
    expect(deleted.results[0]?.status?.code).toBe(0);
    expect((await failure(entry.getEntry({ id }))).code).toBe(Code.NotFound);
    const audit = parsedLogs(fx.logs).filter((l) => typeof l.method === 'string');
    expect(audit.map((l) => l.method)).toEqual([
      'BatchCreateEntry',
      'BatchUpdateEntry',
      'BatchDeleteEntry',
    ]);
    for (const l of audit) {
      expect(l.caller_uid).toBe(process.getuid!());
      expect(l.caller_pid).toBe(process.pid);
    }
  });

  describe('filters by selectors with every match mode', () => {
    const P = { trustDomain: TD, path: '/spire/agent/join_token/match' };
    const sel = (...xs: string[]) => xs.map((value) => ({ type: 'k', value }));
    beforeAll(async () => {
      const res = await entry.batchCreateEntry({
        entries: [
          e('/sel/1', { parentId: P, selectors: sel('a') }),
          e('/sel/2', { parentId: P, selectors: sel('a', 'b') }),
          e('/sel/3', { parentId: P, selectors: sel('b', 'c') }),
        ],
      });
      expect(res.results.map((r) => r.status?.code)).toEqual([0, 0, 0]);
    });
    const M = types.SelectorMatch_MatchBehavior;
    it.each([
      ['MATCH_EXACT', M.MATCH_EXACT, ['/sel/2']],
      ['MATCH_SUBSET', M.MATCH_SUBSET, ['/sel/1', '/sel/2']],
      ['MATCH_SUPERSET', M.MATCH_SUPERSET, ['/sel/2']],
      ['MATCH_ANY', M.MATCH_ANY, ['/sel/1', '/sel/2', '/sel/3']],
    ] as const)('%s {a,b}', async (_n, match, want) => {
      const filter = { byParentId: P, bySelectors: { selectors: sel('a', 'b'), match } };
      const r = await entry.listEntries({ filter });
      expect(r.entries.map((x) => x.spiffeId?.path).sort()).toEqual(want);
      expect((await entry.countEntries({ filter })).count).toBe(want.length);
    });
  });

  it('paginates without duplicates or gaps', async () => {
    const P = { trustDomain: TD, path: '/spire/agent/join_token/pages' };
    await entry.batchCreateEntry({
      entries: Array.from({ length: 5 }, (_, i) => e(`/pages/${i}`, { parentId: P })),
    });
    const seen: string[] = [];
    let pageToken = '';
    let pages = 0;
    do {
      const r = await entry.listEntries({ filter: { byParentId: P }, pageSize: 2, pageToken });
      seen.push(...r.entries.map((x) => x.spiffeId!.path));
      pageToken = r.nextPageToken;
      pages++;
    } while (pageToken !== '' && pages < 10);
    expect(pages).toBe(3);
    expect(seen.sort()).toEqual([0, 1, 2, 3, 4].map((i) => `/pages/${i}`));
  });

  const badEntries: Array<[string, Partial<EntryInit>, string]> = [
    [
      'spiffe_id',
      { spiffeId: { trustDomain: TD, path: '/a/../b' } },
      'invalid spiffe_id: path cannot contain dot segments',
    ],
    ['parent_id', { parentId: { trustDomain: 'other.org', path: '/x' } }, 'invalid parent_id: '],
    [
      'selectors',
      { selectors: [{ type: 'unix', value: '' }] },
      'invalid selectors[0]: missing selector value',
    ],
    ['x509_svid_ttl', { x509SvidTtl: -1 }, 'invalid x509_svid_ttl: must not be negative'],
    ['jwt_svid_ttl', { jwtSvidTtl: -1 }, 'invalid jwt_svid_ttl: must not be negative'],
    ['expires_at', { expiresAt: -1n }, 'invalid expires_at: must not be negative'],
    ['dns_names', { dnsNames: ['bad_name.org'] }, 'invalid dns_names[0]: '],
    ['federates_with', { federatesWith: ['UPPER.org'] }, 'invalid federates_with[0]: '],
    ['hint', { hint: 'x'.repeat(1025) }, 'invalid hint: '],
    ['id', { id: 'no spaces' }, 'invalid id: '],
  ];
  it.each(badEntries)('refuses a bad %s per item and keeps serving', async (_f, init, message) => {
    const r = await entry.batchCreateEntry({ entries: [e('/bad/wire', init), e('/good/after')] });
    expect(r.results[0]?.status?.code).toBe(Code.InvalidArgument);
    expect(r.results[0]?.status?.message).toContain(message);
    expect([0, Code.AlreadyExists]).toContain(r.results[1]?.status?.code);
  });

  it('refuses bad filters with InvalidArgument naming the field', async () => {
    const err = await failure(
      entry.listEntries({ filter: { bySpiffeId: { trustDomain: 'x.org', path: '/a' } } }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain('invalid filter.by_spiffe_id: ');
    expect((await failure(entry.listEntries({ pageSize: -1 }))).rawMessage).toBe(
      'invalid page_size: must not be negative',
    );
    expect((await failure(entry.getEntry({ id: '' }))).rawMessage).toBe(
      'invalid id: missing entry ID',
    );
  });

  it('refuses an over-long request at the transport limit and keeps serving', async () => {
    const huge = Array.from({ length: 80 }, (_, i) => e(`/huge/${i}`, { hint: 'h'.repeat(1000) }));
    const err = await failure(entry.batchCreateEntry({ entries: huge }));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(await fx.ds.countEntries({ byHint: 'h'.repeat(1000) })).toBe(0);
    expect((await entry.countEntries({})).count).toBeGreaterThan(0);
  });
});

describe('join tokens over the socket', () => {
  it('creates a token the datastore consumes exactly once, with the alias entry', async () => {
    const t = await agent.createJoinToken({
      ttl: 300,
      agentId: { trustDomain: TD, path: '/gw/17' },
    });
    const now = Math.floor(Date.now() / 1000);
    expect(Number(t.expiresAt)).toBeGreaterThanOrEqual(now + 299);
    const alias = await entry.listEntries({
      filter: { byParentId: { trustDomain: TD, path: `/spire/agent/join_token/${t.value}` } },
    });
    expect(alias.entries.map((x) => x.spiffeId?.path)).toEqual(['/gw/17']);
    await fx.ds.consumeJoinToken(t.value, now);
    await expect(fx.ds.consumeJoinToken(t.value, now)).rejects.toMatchObject({
      code: 'ERR_DATASTORE_NOT_FOUND',
    });
    for (const l of fx.logs) expect(l).not.toContain(t.value);
    const bad = await failure(agent.createJoinToken({ ttl: 0 }));
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.rawMessage).toBe('invalid ttl: must be a positive number of seconds');
  });
});

describe('bundles over the socket', () => {
  it('gets our bundle and sets, gets and deletes a federated one', async () => {
    const own = await bundle.getBundle({});
    expect(own.trustDomain).toBe(TD);
    expect(own.x509Authorities.length).toBeGreaterThan(0);
    const root = (await makePki('partner.org')).rootDer;
    const set = await bundle.batchSetFederatedBundle({
      bundle: [{ trustDomain: 'partner.org', x509Authorities: [{ asn1: root }], refreshHint: 60n }],
    });
    expect(set.results[0]?.status?.code).toBe(0);
    const got = await bundle.getFederatedBundle({ trustDomain: 'partner.org' });
    expect(Buffer.from(got.x509Authorities[0]!.asn1).equals(Buffer.from(root))).toBe(true);
    expect((await bundle.listFederatedBundles({})).bundles.map((b) => b.trustDomain)).toEqual([
      'partner.org',
    ]);
    const own2 = await bundle.batchSetFederatedBundle({ bundle: [{ trustDomain: TD }] });
    expect(own2.results[0]?.status?.code).toBe(Code.InvalidArgument);
    const del = await bundle.batchDeleteFederatedBundle({ trustDomains: ['partner.org'] });
    expect(del.results[0]?.status?.code).toBe(0);
    expect((await failure(bundle.getFederatedBundle({ trustDomain: 'partner.org' }))).code).toBe(
      Code.NotFound,
    );
    expect((await failure(bundle.appendBundle({}))).rawMessage).toBe('no authorities to append');
  });
});

describe('agents over the socket', () => {
  const A = `spiffe://${TD}/spire/agent/tpm/feed`;
  beforeAll(async () => {
    await fx.ds.createAttestedNode({
      spiffeId: A,
      attestationDataType: 'tpm',
      certSerialNumber: '7',
      certNotAfter: 2_000_000_000,
      canReattest: true,
      selectors: [{ type: 'tpm', value: 'pub_hash:feed' }],
      evidence: '{"pub_hash":"feed"}',
    });
  });

  it('lists, gets (with evidence), bans and deletes', async () => {
    const list = await agent.listAgents({ filter: { byAttestationType: 'tpm' } });
    expect(list.agents.map((a) => a.id?.path)).toEqual(['/spire/agent/tpm/feed']);
    let headers: Headers | undefined;
    const a = await agent.getAgent(
      { id: { trustDomain: TD, path: '/spire/agent/tpm/feed' } },
      { onHeader: (h) => (headers = h) },
    );
    expect(a).toMatchObject({
      attestationType: 'tpm',
      x509svidSerialNumber: '7',
      canReattest: true,
    });
    expect(readAttestationEvidence(headers!)).toBe('{"pub_hash":"feed"}');
    await agent.banAgent({ id: { trustDomain: TD, path: '/spire/agent/tpm/feed' } });
    expect((await agent.countAgents({ filter: { byBanned: true } })).count).toBe(1);
    await agent.deleteAgent({ id: { trustDomain: TD, path: '/spire/agent/tpm/feed' } });
    expect(await fx.ds.getAttestedNode(A)).toBeUndefined();
    const err = await failure(agent.getAgent({ id: { trustDomain: TD, path: '/workload' } }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain('path is not in the agent namespace');
  });
});

describe('SVIDs over the socket', () => {
  it('mints an X509-SVID that verifies against the bundle GetBundle returns', async () => {
    const csr = await makeCsr({ uris: ['spiffe://example.org/wire/svid'] });
    const res = await svid.mintX509SVID({ csr, ttl: 300 });
    const own = await bundle.getBundle({});
    const verified = verifyX509Svid(
      res.svid!.certChain,
      new X509Bundle(
        TD,
        own.x509Authorities.map((x) => x.asn1),
      ),
    );
    expect(verified.id.toString()).toBe('spiffe://example.org/wire/svid');
    const bad = await failure(
      svid.mintX509SVID({ csr: await makeCsr({ uris: ['spiffe://x.org/a'] }) }),
    );
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.rawMessage).toContain('CSR URI SAN is invalid');
    const jwt = await svid.mintJWTSVID({
      id: { trustDomain: TD, path: '/wire/jwt' },
      audience: ['x'],
    });
    expect(jwt.svid?.token.split('.')).toHaveLength(3);
    expect(
      (await failure(svid.mintJWTSVID({ id: { trustDomain: TD, path: '/w' } }))).rawMessage,
    ).toBe('invalid audience: at least one audience is required');
  });
});
