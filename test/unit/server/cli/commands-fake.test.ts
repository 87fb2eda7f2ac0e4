/**
 * Every `spire-server` command against fake service handlers on a real gRPC Unix socket: the
 * request each command sends (flags → API fields, SPIRE's defaults), the exact output, the
 * exit code, and SPIRE's error texts.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  X509Certificate,
} from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError, type ConnectRouter } from '@connectrpc/connect';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  agentv1,
  bundlev1,
  entryv1,
  healthv1,
  svidv1,
  types,
} from '../../../../src/protocol/index.js';
import { formatEntry } from '../../../../src/server/cli/entry/print.js';
import { parseCsr } from '../../../../src/spiffe/csr.js';
import { makePki } from '../../spiffe/x509-support.js';
import { type CliResult, runCli, startFakeServer, tempDir } from './support.js';

/** Requests the fakes saw, by method. */
const seen: Record<string, unknown[]> = {};
/** Canned behaviour the tests set per call. */
const behaviour: {
  createStatus?: { code: number; message: string };
  pages?: types.Entry[][];
  health?: healthv1.HealthCheckResponse_ServingStatus;
  existing?: types.Entry;
} = {};

function record(method: string, req: unknown): void {
  const list = seen[method] ?? [];
  list.push(req);
  seen[method] = list;
}

/** The `index`-th request `method` received (`-1`: the last). */
function sent<T>(method: string, index = 0): T {
  const req = seen[method]?.at(index);
  if (req === undefined) expect.fail(`${method} was not called`);
  return req as T;
}

const ENTRY = (
  path: string,
  extra: Omit<MessageInitShape<typeof types.EntrySchema>, '$typeName'> = {},
) =>
  create(types.EntrySchema, {
    id: `id${path.replaceAll('/', '-')}`,
    spiffeId: { trustDomain: 'example.org', path },
    parentId: { trustDomain: 'example.org', path: '/spire/agent/x' },
    selectors: [{ type: 'unix', value: 'uid:1000' }],
    revisionNumber: 1n,
    ...extra,
  });

let rootDer: Uint8Array;
const jwtKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });

function routes(router: ConnectRouter): void {
  router.service(entryv1.Entry, {
    async batchCreateEntry(req) {
      record('batchCreateEntry', req);
      return create(entryv1.BatchCreateEntryResponseSchema, {
        results: req.entries.map((e, i) => {
          const status =
            i === 1 && behaviour.createStatus ? behaviour.createStatus : { code: 0, message: 'OK' };
          return status.code === 0
            ? { status, entry: { ...e, id: e.id || `new-${i}`, revisionNumber: 0n } }
            : { status };
        }),
      });
    },
    async batchUpdateEntry(req) {
      record('batchUpdateEntry', req);
      return create(entryv1.BatchUpdateEntryResponseSchema, {
        results: req.entries.map((e) => ({ status: { code: 0, message: 'OK' }, entry: e })),
      });
    },
    async batchDeleteEntry(req) {
      record('batchDeleteEntry', req);
      return create(entryv1.BatchDeleteEntryResponseSchema, {
        results: req.ids.map((id) =>
          id.startsWith('missing')
            ? { id, status: { code: Code.NotFound, message: 'entry not found' } }
            : { id, status: { code: 0, message: 'OK' } },
        ),
      });
    },
    async getEntry(req) {
      record('getEntry', req);
      if (behaviour.existing !== undefined && req.id === behaviour.existing.id) {
        return behaviour.existing;
      }
      throw new ConnectError('entry not found', Code.NotFound);
    },
    async listEntries(req) {
      record('listEntries', req);
      const pages = behaviour.pages ?? [[]];
      const index = req.pageToken === '' ? 0 : Number(req.pageToken);
      return create(entryv1.ListEntriesResponseSchema, {
        entries: pages[index] ?? [],
        nextPageToken: index + 1 < pages.length ? String(index + 1) : '',
      });
    },
    async countEntries(req) {
      record('countEntries', req);
      return create(entryv1.CountEntriesResponseSchema, { count: 3 });
    },
  });
  router.service(bundlev1.Bundle, {
    async getBundle() {
      return create(types.BundleSchema, {
        trustDomain: 'example.org',
        x509Authorities: [{ asn1: rootDer }],
      });
    },
    async countBundles() {
      return create(bundlev1.CountBundlesResponseSchema, { count: 1 });
    },
    async listFederatedBundles() {
      return create(bundlev1.ListFederatedBundlesResponseSchema, {
        bundles: [
          { trustDomain: 'a.test', x509Authorities: [{ asn1: rootDer }] },
          { trustDomain: 'b.test', x509Authorities: [{ asn1: rootDer }] },
        ],
      });
    },
    async getFederatedBundle(req) {
      record('getFederatedBundle', req);
      throw new ConnectError('bundle not found', Code.NotFound);
    },
    async batchSetFederatedBundle(req) {
      record('batchSetFederatedBundle', req);
      return create(bundlev1.BatchSetFederatedBundleResponseSchema, {
        results: [{ status: { code: 0, message: 'OK' }, bundle: req.bundle[0] }],
      });
    },
    async batchDeleteFederatedBundle(req) {
      record('batchDeleteFederatedBundle', req);
      return create(bundlev1.BatchDeleteFederatedBundleResponseSchema, {
        results: [
          req.mode === bundlev1.BatchDeleteFederatedBundleRequest_Mode.RESTRICT
            ? {
                trustDomain: req.trustDomains[0]!,
                status: { code: Code.FailedPrecondition, message: 'bundle is in use' },
              }
            : { trustDomain: req.trustDomains[0]!, status: { code: 0, message: 'OK' } },
        ],
      });
    },
  });
  router.service(agentv1.Agent, {
    async listAgents(req) {
      record('listAgents', req);
      return create(agentv1.ListAgentsResponseSchema, {
        agents: [
          {
            id: { trustDomain: 'example.org', path: '/spire/agent/join_token/t1' },
            attestationType: 'join_token',
            x509svidSerialNumber: '42',
            x509svidExpiresAt: 1_700_000_000n,
            canReattest: false,
          },
        ],
      });
    },
    async countAgents(req) {
      record('countAgents', req);
      return create(agentv1.CountAgentsResponseSchema, { count: 1 });
    },
    async getAgent(req) {
      record('getAgent', req);
      return create(types.AgentSchema, {
        id: req.id,
        attestationType: 'x509pop',
        banned: true,
        canReattest: true,
        x509svidExpiresAt: 1_700_000_000n,
        selectors: [{ type: 'x509pop', value: 'subject:cn:node1' }],
      });
    },
    async deleteAgent(req) {
      record('deleteAgent', req);
      return {};
    },
    async banAgent(req) {
      record('banAgent', req);
      throw new ConnectError('agent not found', Code.NotFound);
    },
    async createJoinToken(req) {
      record('createJoinToken', req);
      return create(types.JoinTokenSchema, {
        value: '7b6e3c5a-0d61-4d3a-9a7e-6f0b1f0c2d3e',
        expiresAt: 1_700_000_600n,
      });
    },
  });
  router.service(svidv1.SVID, {
    async mintX509SVID(req) {
      record('mintX509SVID', req);
      return create(svidv1.MintX509SVIDResponseSchema, {
        svid: { certChain: [rootDer], expiresAt: BigInt(Math.floor(Date.now() / 1000) + 60) },
      });
    },
    async mintJWTSVID(req) {
      record('mintJWTSVID', req);
      const exp = Math.floor(Date.now() / 1000) + 30;
      const token = await new SignJWT({ sub: 'spiffe://example.org/w', aud: req.audience })
        .setProtectedHeader({ alg: 'ES256', kid: 'k' })
        .setExpirationTime(exp)
        .sign(jwtKey.privateKey);
      return create(svidv1.MintJWTSVIDResponseSchema, { svid: { token, expiresAt: BigInt(exp) } });
    },
  });
  router.service(healthv1.Health, {
    async check() {
      return create(healthv1.HealthCheckResponseSchema, {
        status: behaviour.health ?? healthv1.HealthCheckResponse_ServingStatus.SERVING,
      });
    },
  });
}

let server: Awaited<ReturnType<typeof startFakeServer>>;
const tmp = tempDir('cli-fake-files-');

beforeAll(async () => {
  rootDer = Uint8Array.from((await makePki()).rootDer);
  server = await startFakeServer(routes);
});
afterAll(async () => {
  await server?.close();
  tmp.cleanup();
});
beforeEach(() => {
  for (const k of Object.keys(seen)) delete seen[k];
  for (const k of Object.keys(behaviour)) delete behaviour[k as keyof typeof behaviour];
});

function cli(args: string[], opts: Parameters<typeof runCli>[1] = {}): Promise<CliResult> {
  return runCli([...args, '-socketPath', server.socketPath], opts);
}

describe('entry create', () => {
  it('sends the entry built from flags and prints it', async () => {
    const r = await cli([
      'entry',
      'create',
      '-spiffeID',
      'spiffe://example.org/web',
      '-parentID=spiffe://example.org/spire/agent/x',
      '-selector',
      'unix:uid:1000',
      '-selector',
      'k8s:ns:default',
      '-x509SVIDTTL',
      '3600',
      '-jwtSVIDTTL=300',
      '-dns',
      'web.example.org',
      '-federatesWith',
      'spiffe://domain.test',
      '-admin',
      '-downstream',
      '-storeSVID',
      '-hint',
      'h1',
      '-entryExpiry',
      '1700000000',
      '-entryID',
      'my-id',
      '-jwtSVIDIncludeJTI',
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const req = sent<entryv1.BatchCreateEntryRequest>('batchCreateEntry');
    expect(req.entries).toHaveLength(1);
    const entry = req.entries[0]!;
    expect(entry).toMatchObject({
      id: 'my-id',
      spiffeId: { trustDomain: 'example.org', path: '/web' },
      parentId: { trustDomain: 'example.org', path: '/spire/agent/x' },
      selectors: [
        { type: 'unix', value: 'uid:1000' },
        { type: 'k8s', value: 'ns:default' },
      ],
      x509SvidTtl: 3600,
      jwtSvidTtl: 300,
      dnsNames: ['web.example.org'],
      federatesWith: ['spiffe://domain.test'],
      admin: true,
      downstream: true,
      storeSvid: true,
      hint: 'h1',
      expiresAt: 1_700_000_000n,
      additionalAttributes: { disableX509SvidPrefetch: false, jwtSvidIncludeJti: true },
    });
    expect(r.out).toBe(formatEntry({ ...entry, revisionNumber: 0n }));
    expect(r.out).toContain('Entry ID                : my-id\n');
  });

  it('makes -node entries children of the server ID', async () => {
    const r = await cli([
      'entry',
      'create',
      '-node',
      '-spiffeID',
      'spiffe://example.org/gw/17',
      '-selector',
      'tpm:pub_hash:ab12',
    ]);
    expect(r.code).toBe(0);
    const entry = sent<entryv1.BatchCreateEntryRequest>('batchCreateEntry').entries[0];
    expect(entry?.parentId).toMatchObject({ trustDomain: 'example.org', path: '/spire/server' });
    expect(entry?.additionalAttributes).toBeUndefined();
  });

  it('checks flags as SPIRE does, before calling the server', async () => {
    const cases: Array<[string[], string]> = [
      [
        ['-spiffeID', 'spiffe://td/w', '-parentID', 'spiffe://td/p'],
        'at least one selector is required',
      ],
      [
        ['-node', '-federatesWith', 'td2', '-selector', 'a:b', '-spiffeID', 'spiffe://td/w'],
        'node entries can not federate',
      ],
      [
        ['-selector', 'a:b', '-spiffeID', 'spiffe://td/w'],
        'a parent ID is required if the node flag is not set',
      ],
      [['-selector', 'a:b', '-parentID', 'spiffe://td/p'], 'a SPIFFE ID is required'],
      [
        [
          '-selector',
          'a:b',
          '-parentID',
          'spiffe://td/p',
          '-spiffeID',
          'spiffe://td/w',
          '-x509SVIDTTL',
          '-1',
        ],
        'a positive x509-SVID TTL is required',
      ],
      [
        [
          '-selector',
          'a:b',
          '-parentID',
          'spiffe://td/p',
          '-spiffeID',
          'spiffe://td/w',
          '-jwtSVIDTTL',
          '-1',
        ],
        'a positive JWT-SVID TTL is required',
      ],
      [
        [
          '-selector',
          'a:b',
          '-parentID',
          'spiffe://td/p',
          '-spiffeID',
          'spiffe://td/w',
          '-x509SVIDTTL',
          '2147483648',
        ],
        'invalid value for X509 SVID TTL: overflow converting int(2147483648) to int32',
      ],
      [
        ['-selector', 'a:b', '-parentID', 'spiffe://td/p', '-spiffeID', 'td/w'],
        'scheme is missing or invalid',
      ],
      [
        ['-selector', 'nocolon', '-parentID', 'spiffe://td/p', '-spiffeID', 'spiffe://td/w'],
        'selector "nocolon" must be formatted as type:value',
      ],
    ];
    for (const [args, message] of cases) {
      const r = await cli(['entry', 'create', ...args]);
      expect({ code: r.code, out: r.out, err: r.err }).toEqual({
        code: 1,
        out: '',
        err: `Error: ${message}\n`,
      });
    }
    expect(seen['batchCreateEntry']).toBeUndefined();
  });

  it('prints refused entries on stderr with their status, exit 1; JSON keeps exit 0', async () => {
    behaviour.createStatus = { code: Code.AlreadyExists, message: 'similar entry already exists' };
    const data = JSON.stringify({
      entries: [
        {
          spiffe_id: 'spiffe://example.org/a',
          parent_id: 'spiffe://example.org/p',
          selectors: [{ type: 'u', value: '1' }],
        },
        {
          spiffe_id: 'spiffe://example.org/b',
          parent_id: 'spiffe://example.org/p',
          selectors: [{ type: 'u', value: '2' }],
        },
      ],
    });
    const r = await cli(['entry', 'create', '-data', '-'], { stdin: data });
    expect(r.code).toBe(1);
    const [a, b] = sent<entryv1.BatchCreateEntryRequest>('batchCreateEntry').entries;
    expect(r.out).toBe(formatEntry({ ...a!, id: 'new-0', revisionNumber: 0n }));
    expect(r.err).toBe(
      `Failed to create the following entry (code: AlreadyExists, msg: "similar entry already exists"):\n${formatEntry(b!)}Error: failed to create one or more entries\n`,
    );
    const j = await cli(['entry', 'create', '-data', '-', '-output', 'json'], { stdin: data });
    expect(j.code).toBe(0);
    const parsed = JSON.parse(j.out) as {
      results: Array<{
        status: { code: number; message: string };
        entry: { spiffe_id: { path: string } };
      }>;
    };
    expect(parsed.results.map((x) => [x.status.code, x.entry.spiffe_id.path])).toEqual([
      [0, '/a'],
      [6, '/b'],
    ]);
    expect(j.out.endsWith('}\n')).toBe(true);
  });

  it('reads -data from a file, and reports a missing file as Go does', async () => {
    const file = join(tmp.dir, 'entries.json');
    writeFileSync(
      file,
      JSON.stringify({
        entries: [
          {
            spiffe_id: 'spiffe://example.org/f',
            parent_id: 'spiffe://example.org/p',
            selectors: [{ type: 'u', value: '1' }],
          },
        ],
      }),
    );
    const r = await cli(['entry', 'create', '-data', file]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('SPIFFE ID               : spiffe://example.org/f\n');
    const missing = await cli(['entry', 'create', '-data', join(tmp.dir, 'nope.json')]);
    expect(missing).toEqual({
      code: 1,
      out: '',
      err: `Error: open ${join(tmp.dir, 'nope.json')}: no such file or directory\n`,
    });
  });
});

describe('entry show / count', () => {
  it('builds the filter with SPIRE defaults (superset, by_downstream=false) and pages', async () => {
    behaviour.pages = [[ENTRY('/b')], [ENTRY('/a', { downstream: true })]];
    const r = await cli([
      'entry',
      'show',
      '-spiffeID',
      'spiffe://example.org/a',
      '-parentID',
      'spiffe://example.org/spire/agent/x',
      '-selector',
      'unix:uid:1000',
      '-federatesWith',
      'spiffe://domain.test',
      '-matchFederatesWithOn',
      'exact',
      '-hint',
      'h',
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const reqs = (seen['listEntries'] ?? []) as entryv1.ListEntriesRequest[];
    expect(reqs.map((q) => [q.pageSize, q.pageToken])).toEqual([
      [500, ''],
      [500, '1'],
    ]);
    expect(reqs[0]!.filter).toMatchObject({
      bySpiffeId: { trustDomain: 'example.org', path: '/a' },
      byParentId: { trustDomain: 'example.org', path: '/spire/agent/x' },
      bySelectors: {
        selectors: [{ type: 'unix', value: 'uid:1000' }],
        match: types.SelectorMatch_MatchBehavior.MATCH_SUPERSET,
      },
      byFederatesWith: {
        trustDomains: ['spiffe://domain.test'],
        match: types.FederatesWithMatch_MatchBehavior.MATCH_EXACT,
      },
      byHint: 'h',
      byDownstream: false,
    });
    expect(r.out).toBe(
      `Found 2 entries\n${formatEntry(ENTRY('/a', { downstream: true }))}${formatEntry(ENTRY('/b'))}`,
    );
  });

  it('prints one entry by ID, singular count line, and SPIRE errors', async () => {
    behaviour.existing = ENTRY('/one');
    const one = await cli(['entry', 'show', '-entryID', 'id-one']);
    expect(one).toEqual({ code: 0, out: `Found 1 entry\n${formatEntry(ENTRY('/one'))}`, err: '' });
    expect(await cli(['entry', 'show', '-entryID', 'x', '-spiffeID', 'spiffe://td/a'])).toEqual({
      code: 1,
      out: '',
      err: "Error: the -entryID flag can't be combined with others\n",
    });
    expect(await cli(['entry', 'show', '-entryID', 'nope'])).toEqual({
      code: 1,
      out: '',
      err: 'Error: error fetching entry ID nope: rpc error: code = NotFound desc = entry not found\n',
    });
    expect(await cli(['entry', 'show', '-selector', 'a:b', '-matchSelectorsOn', 'all'])).toEqual({
      code: 1,
      out: '',
      err: 'Error: match behavior "all" unknown\n',
    });
    expect((await cli(['entry', 'show', '-parentID', 'bad'])).err).toBe(
      'Error: error parsing parent ID "bad": scheme is missing or invalid\n',
    );
    const empty = await cli(['entry', 'show', '-downstream', '-output', 'json']);
    expect(empty).toEqual({ code: 0, out: '{"entries":[],"next_page_token":""}\n', err: '' });
    expect(sent<entryv1.ListEntriesRequest>('listEntries', -1).filter?.byDownstream).toBe(true);
  });

  it('counts with the same filters', async () => {
    const r = await cli(['entry', 'count', '-selector', 'a:b', '-matchSelectorsOn', 'any']);
    expect(r).toEqual({ code: 0, out: '3 registration entries\n', err: '' });
    const req = sent<entryv1.CountEntriesRequest>('countEntries');
    expect(req.filter?.bySelectors?.match).toBe(types.SelectorMatch_MatchBehavior.MATCH_ANY);
    expect(req.filter?.byDownstream).toBe(false);
    expect((await cli(['entry', 'count', '-output', 'json'])).out).toBe('{"count":3}\n');
  });
});

describe('entry update / delete', () => {
  it('updates from flags, keeping stored additional attributes not given', async () => {
    behaviour.existing = ENTRY('/u', {
      id: 'eid',
      additionalAttributes: { disableX509SvidPrefetch: false, jwtSvidIncludeJti: true },
    });
    const r = await cli([
      'entry',
      'update',
      '-entryID',
      'eid',
      '-spiffeID',
      'spiffe://example.org/u',
      '-parentID',
      'spiffe://example.org/p',
      '-selector',
      'unix:uid:1',
      '-disableX509SVIDPrefetch',
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(seen['getEntry']).toHaveLength(1);
    const entry = sent<entryv1.BatchUpdateEntryRequest>('batchUpdateEntry').entries[0];
    expect(entry?.additionalAttributes).toMatchObject({
      disableX509SvidPrefetch: true,
      jwtSvidIncludeJti: true,
    });
    expect(r.out).toContain('DisableX509SvidPrefetch : true\nJwtSvidIncludeJti       : true\n');
    expect((await cli(['entry', 'update', '-selector', 'a:b'])).err).toBe(
      'Error: entry ID is required\n',
    );
    const noAttrs = await cli([
      'entry',
      'update',
      '-entryID',
      'x',
      '-spiffeID',
      'spiffe://example.org/u',
      '-parentID',
      'spiffe://example.org/p',
      '-selector',
      'unix:uid:1',
    ]);
    expect(noAttrs.code).toBe(0);
    expect(seen['getEntry']).toHaveLength(1);
  });

  it('updates a batch from -data', async () => {
    const r = await cli(['entry', 'update', '-data', '-'], {
      stdin: JSON.stringify({
        entries: [
          {
            entry_id: 'e1',
            spiffe_id: 'spiffe://example.org/a',
            parent_id: 'spiffe://example.org/p',
            selectors: [{ type: 'u', value: '1' }],
            x509_svid_ttl: 60,
          },
        ],
      }),
    });
    expect(r.code).toBe(0);
    const entry = sent<entryv1.BatchUpdateEntryRequest>('batchUpdateEntry').entries[0];
    expect(entry).toMatchObject({ id: 'e1', x509SvidTtl: 60 });
  });

  it('deletes with SPIRE spacing and summary, failures on stderr with exit 1', async () => {
    expect(await cli(['entry', 'delete', '-entryID', 'e1'])).toEqual({
      code: 0,
      out: 'Deleted entry with ID: e1\n\n\nDeleted 1 entries successfully',
      err: '',
    });
    const r = await cli(['entry', 'delete', '-file', '-'], {
      stdin: '{"ids": ["e1", "missing-2"]}',
    });
    expect(r).toEqual({
      code: 1,
      out: 'Deleted entry with ID: e1\n\n\n\n\nDeleted 1 entries successfully, but failed to delete 1 entries',
      err: 'Failed to delete entry with ID missing-2 (code: NotFound, msg: "entry not found")\nError: failed to delete one or more entries\n',
    });
    expect(await cli(['entry', 'delete'])).toEqual({
      code: 1,
      out: '',
      err: 'Error: an entry ID is required\n',
    });
  });
});

describe('bundle commands', () => {
  it('shows, counts, lists, sets and deletes bundles', async () => {
    const show = await cli(['bundle', 'show']);
    expect(show.code).toBe(0);
    expect(show.out).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
    expect(await cli(['bundle', 'count'])).toEqual({ code: 0, out: '1 bundle\n', err: '' });
    const list = await cli(['bundle', 'list']);
    expect(list.out).toBe(
      `****************************************\n* a.test\n****************************************\n${show.out}\n` +
        `****************************************\n* b.test\n****************************************\n${show.out}`,
    );
    expect(await cli(['bundle', 'list', '-id', 'spiffe://c.test'])).toEqual({
      code: 1,
      out: '',
      err: 'Error: rpc error: code = NotFound desc = bundle not found\n',
    });
    const set = await cli(['bundle', 'set', '-id', 'spiffe://a.test'], { stdin: show.out });
    expect(set).toEqual({ code: 0, out: 'bundle set.\n', err: '' });
    const setReq = sent<bundlev1.BatchSetFederatedBundleRequest>('batchSetFederatedBundle');
    expect(setReq.bundle[0]?.trustDomain).toBe('spiffe://a.test');
    expect(await cli(['bundle', 'set', '-path', '/x'])).toMatchObject({
      code: 1,
      err: 'Error: id flag is required\n',
    });
    expect(await cli(['bundle', 'delete', '-id', 'a.test'])).toEqual({
      code: 1,
      out: '',
      err: 'Error: failed to delete federated bundle "a.test": bundle is in use\n',
    });
    expect(await cli(['bundle', 'delete', '-id', 'a.test', '-mode', 'dissociate'])).toEqual({
      code: 0,
      out: 'bundle deleted.\n',
      err: '',
    });
    expect(await cli(['bundle', 'delete', '-id', 'a.test', '-mode', 'all'])).toMatchObject({
      code: 1,
      err: 'Error: unsupported mode "all"\n',
    });
  });
});

describe('agent commands', () => {
  it('lists, counts, shows, evicts and bans agents', async () => {
    // Agent expiry prints in the local zone (Go's time.Unix(…).String()): pin it.
    const prev = process.env['TZ'];
    process.env['TZ'] = 'UTC';
    try {
      const list = await cli([
        'agent',
        'list',
        '-attestationType',
        'join_token',
        '-banned',
        'false',
        '-canReattest',
        'maybe',
      ]);
      expect(list).toEqual({
        code: 0,
        out:
          'Found 1 attested agent:\n\n' +
          'SPIFFE ID         : spiffe://example.org/spire/agent/join_token/t1\n' +
          'Attestation type  : join_token\n' +
          'Expiration time   : 2023-11-14 22:13:20 +0000 UTC\n' +
          'Serial number     : 42\n' +
          'Can re-attest     : false\n\n',
        err: '',
      });
      const req = sent<agentv1.ListAgentsRequest>('listAgents');
      expect(req.pageSize).toBe(1000);
      expect(req.filter).toMatchObject({ byAttestationType: 'join_token', byBanned: false });
      expect(req.filter?.byCanReattest).toBeUndefined();
      const show = await cli(['agent', 'show', '-spiffeID', 'spiffe://example.org/spire/agent/x']);
      expect(show.out).toBe(
        'Found an attested agent given its SPIFFE ID\n\n' +
          'SPIFFE ID         : spiffe://example.org/spire/agent/x\n' +
          'Attestation type  : x509pop\n' +
          'Expiration time   : 2023-11-14 22:13:20 +0000 UTC\n' +
          'Banned            : true\n' +
          'Can re-attest     : true\n\n' +
          'Selectors         : x509pop:subject:cn:node1\n',
      );
    } finally {
      if (prev === undefined) delete process.env['TZ'];
      else process.env['TZ'] = prev;
    }
    expect(
      await cli(['agent', 'count', '-expiresBefore', '2024-01-02 15:04:05 +0000 +00']),
    ).toEqual({
      code: 0,
      out: '1 attested agent\n',
      err: '',
    });
    expect(sent<agentv1.CountAgentsRequest>('countAgents').filter?.byExpiresBefore).toBe(
      '2024-01-02 15:04:05 +0000 +00',
    );
    expect((await cli(['agent', 'count', '-expiresBefore', '2024-01-02'])).err).toMatch(
      /^Error: date is not valid: parsing time "2024-01-02"/,
    );
    expect(
      await cli(['agent', 'evict', '-spiffeID', 'spiffe://example.org/spire/agent/x']),
    ).toEqual({ code: 0, out: 'Agent evicted successfully\n', err: '' });
    expect(
      (await cli(['agent', 'evict', '-spiffeID', 'spiffe://example.org/a', '-output', 'json'])).out,
    ).toBe('{}\n');
    expect(await cli(['agent', 'ban', '-spiffeID', 'spiffe://example.org/spire/agent/x'])).toEqual({
      code: 1,
      out: '',
      err: 'Error: rpc error: code = NotFound desc = agent not found\n',
    });
    expect(await cli(['agent', 'show'])).toEqual({
      code: 1,
      out: '',
      err: 'Error: a SPIFFE ID is required\n',
    });
  });
});

describe('token, SVID minting and health', () => {
  it('generates join tokens', async () => {
    expect(await cli(['token', 'generate'])).toEqual({
      code: 0,
      out: 'Token: 7b6e3c5a-0d61-4d3a-9a7e-6f0b1f0c2d3e\nWarning: Missing SPIFFE ID.\n',
      err: '',
    });
    expect(sent<agentv1.CreateJoinTokenRequest>('createJoinToken').ttl).toBe(600);
    const r = await cli([
      'token',
      'generate',
      '-spiffeID',
      'spiffe://example.org/gw',
      '-ttl',
      '60',
      '-output',
      'json',
    ]);
    expect(r.out).toBe(
      '{"expires_at":"1700000600","value":"7b6e3c5a-0d61-4d3a-9a7e-6f0b1f0c2d3e"}\n',
    );
    expect(sent('createJoinToken', 1)).toMatchObject({
      ttl: 60,
      agentId: { trustDomain: 'example.org', path: '/gw' },
    });
  });

  it('mints an X509-SVID from a local key and CSR, and warns when the TTL was capped', async () => {
    const r = await cli([
      'x509',
      'mint',
      '-spiffeID',
      'spiffe://example.org/w',
      '-dns',
      'w.example.org',
      '-ttl',
      '1h',
    ]);
    expect(r.code).toBe(0);
    const req = sent<svidv1.MintX509SVIDRequest>('mintX509SVID');
    expect(req.ttl).toBe(3600);
    const csr = parseCsr(req.csr);
    expect(csr.extensions.subjectAltName?.uris).toEqual(['spiffe://example.org/w']);
    expect(csr.extensions.subjectAltName?.dnsNames).toEqual(['w.example.org']);
    expect(r.out).toMatch(
      /^X509-SVID:\n-----BEGIN CERTIFICATE-----\n[\s\S]+\n\nPrivate key:\n-----BEGIN PRIVATE KEY-----\n[\s\S]+\n\nRoot CAs:\n-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n\n$/,
    );
    expect(r.err).toMatch(
      /^X509-SVID lifetime was capped shorter than specified ttl; expires "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"\n$/,
    );
    const j = await cli(['x509', 'mint', '-spiffeID', 'spiffe://example.org/w', '-output', 'json']);
    const parsed = JSON.parse(j.out) as Record<string, unknown>;
    expect(Object.keys(parsed)).toEqual(['x509_svid', 'private_key', 'root_cas']);
    expect(j.err).toBe('');
    const dir = join(tmp.dir, 'out');
    const missing = await cli([
      'x509',
      'mint',
      '-spiffeID',
      'spiffe://example.org/w',
      '-write',
      dir,
    ]);
    expect(missing).toEqual({
      code: 1,
      out: '',
      err: `Error: unable to write SVID: open ${dir}/svid.pem.tmp: no such file or directory\n`,
    });
    mkdirSync(dir);
    const w = await cli([
      'x509',
      'mint',
      '-spiffeID',
      'spiffe://example.org/w',
      '-write',
      `${dir}/`,
    ]);
    expect(w).toEqual({
      code: 0,
      out: `X509-SVID written to ${dir}/svid.pem\nPrivate key written to ${dir}/key.pem\nRoot CAs written to ${dir}/bundle.pem\n`,
      err: '',
    });
    expect(statSync(join(dir, 'key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'svid.pem')).mode & 0o777).toBe(0o644);
    const keyPem = readFileSync(join(dir, 'key.pem'), 'utf8');
    const key = createPrivateKey(keyPem);
    const cert = new X509Certificate(readFileSync(join(dir, 'bundle.pem')));
    expect(cert.raw.equals(Buffer.from(rootDer))).toBe(true);
    // The key in key.pem is the one the CSR was made with.
    const csrKey = parseCsr(sent<svidv1.MintX509SVIDRequest>('mintX509SVID', -1).csr);
    expect(
      createPublicKey(key)
        .export({ format: 'der', type: 'spki' })
        .equals(Buffer.from(csrKey.spkiDer)),
    ).toBe(true);
    expect(await cli(['x509', 'mint'])).toEqual({
      code: 1,
      out: '',
      err: 'Error: spiffeID must be specified\n',
    });
  });

  it('mints JWT-SVIDs', async () => {
    const r = await cli([
      'jwt',
      'mint',
      '-spiffeID',
      'spiffe://example.org/w',
      '-audience',
      'a1',
      '-audience',
      'a2',
      '-ttl',
      '5m',
    ]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    expect(r.err).toMatch(/^JWT-SVID lifetime was capped shorter than specified ttl; expires "/);
    expect(sent('mintJWTSVID')).toMatchObject({ audience: ['a1', 'a2'], ttl: 300 });
    expect(await cli(['jwt', 'mint', '-spiffeID', 'spiffe://example.org/w'])).toEqual({
      code: 1,
      out: '',
      err: 'Error: at least one audience must be specified\n',
    });
  });

  it('reports health', async () => {
    expect(await cli(['healthcheck'])).toEqual({ code: 0, out: 'Server is healthy.\n', err: '' });
    behaviour.health = healthv1.HealthCheckResponse_ServingStatus.NOT_SERVING;
    expect(await cli(['healthcheck', '-shallow'])).toEqual({
      code: 1,
      out: '',
      err: 'Error: server is unhealthy: server returned status "NOT_SERVING"\n',
    });
    const none = await runCli(['healthcheck', '-verbose', '-socketPath', join(tmp.dir, 'no.sock')]);
    expect(none).toEqual({
      code: 1,
      out: 'Checking server health...\n',
      err:
        `Failed to check health: rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial unix ${join(tmp.dir, 'no.sock')}: connect: no such file or directory"\n` +
        'Error: server is unhealthy: unable to determine health\n',
    });
  });
});

describe('socket selection and flag errors', () => {
  it('uses SPIRE_SERVER_PRIVATE_SOCKET, and -instance with the socket template', async () => {
    expect(
      await runCli(['bundle', 'count'], {
        env: { SPIRE_SERVER_PRIVATE_SOCKET: server.socketPath },
      }),
    ).toEqual({ code: 0, out: '1 bundle\n', err: '' });
    const template = server.socketPath.replace('api.sock', '%i.sock');
    expect(
      await runCli(['bundle', 'count', '-instance', 'api'], {
        env: { SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE: template },
      }),
    ).toEqual({ code: 0, out: '1 bundle\n', err: '' });
    expect(await runCli(['bundle', 'count', '-instance', 'api'])).toEqual({
      code: 1,
      out: '',
      err: 'Error: you must define SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE to use the instance flag\n',
    });
    expect(
      await runCli(['bundle', 'count', '-instance', 'api'], {
        env: { SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE: '/tmp/x.sock' },
      }),
    ).toMatchObject({
      code: 1,
      err: 'Error: failed to find %i in SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE\n',
    });
  });

  it('prints the flag error and usage for an unknown flag, exit 1, and help with exit 0', async () => {
    const r = await cli(['entry', 'count', '-ttl', '5']);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(
      /^flag provided but not defined: -ttl\nUsage of entry count:\n {2}-downstream\n/,
    );
    const h = await runCli(['entry', 'count', '-h']);
    expect(h.code).toBe(0);
    expect(h.err).toMatch(
      /^Usage of entry count:\n[\s\S]+ {2}-matchSelectorsOn string\n {4}\tThe match mode used when filtering by selectors. Options: exact, any, superset and subset \(default "superset"\)\n[\s\S]+flag: help requested\n$/,
    );
  });
});
