/**
 * The Entry admin service, called directly with a real SQLite datastore: create (SPIRE's
 * validation, field by field), similar entries, caller-chosen IDs, get, list with every
 * filter and every match mode, pagination, output masks, update with input masks and
 * revisions, delete, and the audit log line of each mutating call.
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryv1, types } from '../../../../src/protocol/index.js';
import { createEntryAdminService } from '../../../../src/server/api/admin/entry.js';
import {
  type AdminFixture,
  handlerContext,
  type Init,
  parsedLogs,
  rejection,
  sameFilter,
  startAdminFixture,
  TD,
} from './admin-support.js';

let fx: AdminFixture;
let svc: ReturnType<typeof createEntryAdminService>;
const PARENT = '/spire/agent/x509pop/node1';
const ctx = (m: string) => handlerContext(entryv1.Entry, m);

beforeAll(async () => {
  fx = await startAdminFixture();
  svc = createEntryAdminService(fx.context);
  for (const td of ['td1.org', 'td2.org', 'td3.org']) {
    await fx.ds.createBundle({ trustDomain: td, x509Authorities: [] });
  }
});
afterAll(() => fx.close());

type EntryInit = Init<typeof types.EntrySchema>;

function entry(path: string, init: Partial<EntryInit> = {}): types.Entry {
  return create(types.EntrySchema, {
    spiffeId: { trustDomain: TD, path },
    parentId: { trustDomain: TD, path: PARENT },
    selectors: [{ type: 'unix', value: `uid:${path.length}` }],
    ...init,
  });
}

async function createEntries(entries: types.Entry[], outputMask?: types.EntryMask) {
  const res = await svc.batchCreateEntry(
    create(entryv1.BatchCreateEntryRequestSchema, {
      entries,
      ...(outputMask ? { outputMask } : {}),
    }),
    ctx('batchCreateEntry'),
  );
  return (res as entryv1.BatchCreateEntryResponse).results;
}

async function createOk(e: types.Entry): Promise<types.Entry> {
  const [r] = await createEntries([e]);
  expect(r?.status).toMatchObject({ code: 0, message: 'OK' });
  return r!.entry!;
}

async function list(init: MessageInitShape<typeof entryv1.ListEntriesRequestSchema> = {}) {
  return (await svc.listEntries(
    create(entryv1.ListEntriesRequestSchema, init),
    ctx('listEntries'),
  )) as entryv1.ListEntriesResponse;
}

const paths = (es: readonly types.Entry[]) => es.map((e) => e.spiffeId?.path).sort();

describe('BatchCreateEntry', () => {
  it('creates an entry, generates its ID and returns every field', async () => {
    const e = await createOk(
      entry('/create/full', {
        selectors: [
          { type: 'unix', value: 'uid:1000' },
          { type: 'unix', value: 'gid:1000' },
        ],
        x509SvidTtl: 600,
        jwtSvidTtl: 60,
        dnsNames: ['web.example.org', '*.svc.example.org'],
        federatesWith: ['td1.org', 'spiffe://td2.org'],
        admin: true,
        downstream: false,
        expiresAt: 4_000_000_000n,
        hint: 'web',
        storeSvid: true,
      }),
    );
    expect(e.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(e.spiffeId).toMatchObject({ trustDomain: TD, path: '/create/full' });
    expect(e.parentId).toMatchObject({ trustDomain: TD, path: PARENT });
    expect(e.selectors.map((s) => `${s.type}:${s.value}`)).toEqual([
      'unix:gid:1000',
      'unix:uid:1000',
    ]);
    expect(e).toMatchObject({
      x509SvidTtl: 600,
      jwtSvidTtl: 60,
      dnsNames: ['web.example.org', '*.svc.example.org'],
      federatesWith: ['td1.org', 'td2.org'],
      admin: true,
      expiresAt: 4_000_000_000n,
      hint: 'web',
      storeSvid: true,
      revisionNumber: 0n,
    });
    expect(e.createdAt).toBeGreaterThan(0n);
    const got = await svc.getEntry(
      create(entryv1.GetEntryRequestSchema, { id: e.id }),
      ctx('getEntry'),
    );
    expect(got).toEqual(e);
  });

  it('honours a caller-chosen entry ID and refuses a taken one', async () => {
    const e = await createOk(entry('/create/chosen-id', { id: 'my-entry.1_x' }));
    expect(e.id).toBe('my-entry.1_x');
    const [dup] = await createEntries([entry('/create/other', { id: 'my-entry.1_x' })]);
    expect(dup?.status?.code).toBe(Code.AlreadyExists);
    expect(dup?.status?.message).toBe('entry ID already exists');
  });

  it('answers a similar entry with AlreadyExists and the existing entry', async () => {
    const first = await createOk(entry('/create/similar', { hint: 'one' }));
    const [r] = await createEntries([entry('/create/similar', { hint: 'two', admin: true })]);
    expect(r?.status).toMatchObject({
      code: Code.AlreadyExists,
      message: 'similar entry already exists',
    });
    expect(r?.entry?.id).toBe(first.id);
    expect(r?.entry?.hint).toBe('one');
  });

  it('reports each item on its own: good items are created next to bad ones', async () => {
    const results = await createEntries([
      entry('/batch/good1'),
      entry('/batch/../bad'),
      entry('/batch/good2'),
    ]);
    expect(results.map((r) => r.status?.code)).toEqual([0, Code.InvalidArgument, 0]);
    const found = await list({ filter: { byParentId: { trustDomain: TD, path: PARENT } } });
    expect(paths(found.entries)).toEqual(expect.arrayContaining(['/batch/good1', '/batch/good2']));
  });

  const bad: Array<[string, Partial<EntryInit>, string]> = [
    [
      'spiffe_id missing',
      { spiffeId: undefined },
      'invalid spiffe_id: request must specify SPIFFE ID',
    ],
    [
      'spiffe_id dot segment',
      { spiffeId: { trustDomain: TD, path: '/a/../b' } },
      'invalid spiffe_id: path cannot contain dot segments',
    ],
    [
      'spiffe_id no leading slash',
      { spiffeId: { trustDomain: TD, path: 'a' } },
      'invalid spiffe_id: path must have a leading slash',
    ],
    [
      'spiffe_id bad trust domain',
      { spiffeId: { trustDomain: 'Example.org', path: '/a' } },
      'invalid spiffe_id: trust domain characters are limited',
    ],
    [
      'spiffe_id of another trust domain',
      { spiffeId: { trustDomain: 'other.org', path: '/a' } },
      'invalid spiffe_id: "spiffe://other.org/a" is not a member of trust domain "example.org"',
    ],
    ['spiffe_id without path', { spiffeId: { trustDomain: TD, path: '' } }, 'path is empty'],
    [
      'spiffe_id in the reserved namespace',
      { spiffeId: { trustDomain: TD, path: '/spire/agent/x' } },
      'path is in the reserved namespace',
    ],
    [
      'parent_id missing',
      { parentId: undefined },
      'invalid parent_id: request must specify SPIFFE ID',
    ],
    [
      'parent_id of another trust domain',
      { parentId: { trustDomain: 'td1.org', path: '/agent' } },
      'invalid parent_id: "spiffe://td1.org/agent" is not a member of trust domain',
    ],
    [
      'parent_id without path',
      { parentId: { trustDomain: TD, path: '' } },
      'invalid parent_id: "spiffe://example.org" is not a member of trust domain "example.org"; path is empty',
    ],
    ['selectors empty', { selectors: [] }, 'invalid selectors: selector list is empty'],
    [
      'selector type empty',
      { selectors: [{ type: '', value: 'x' }] },
      'invalid selectors[0]: missing selector type',
    ],
    [
      'selector type with a colon',
      {
        selectors: [
          { type: 'unix', value: 'uid:1' },
          { type: 'a:b', value: 'x' },
        ],
      },
      "invalid selectors[1]: selector type contains ':'",
    ],
    [
      'selector value empty',
      { selectors: [{ type: 'unix', value: '' }] },
      'invalid selectors[0]: missing selector value',
    ],
    ['negative x509_svid_ttl', { x509SvidTtl: -1 }, 'invalid x509_svid_ttl: must not be negative'],
    ['negative jwt_svid_ttl', { jwtSvidTtl: -5 }, 'invalid jwt_svid_ttl: must not be negative'],
    ['negative expires_at', { expiresAt: -1n }, 'invalid expires_at: must not be negative'],
    ['dns name with underscore', { dnsNames: ['a_b.example.org'] }, 'invalid dns_names[0]: label'],
    [
      'dns name ending in a dot',
      { dnsNames: ['ok.org', 'a.org.'] },
      'invalid dns_names[1]: domain ends with dot',
    ],
    [
      'dns name with two wildcards',
      { dnsNames: ['*.*.org'] },
      'invalid dns_names[0]: too many wildcards',
    ],
    ['dns name with inner wildcard', { dnsNames: ['a.*.org'] }, 'wildcard must be first label'],
    ['dns name leading hyphen', { dnsNames: ['-a.org'] }, 'invalid dns_names[0]'],
    [
      'dns name non-ascii',
      { dnsNames: ['bücher.org'] },
      'invalid dns_names[0]: name must be ascii',
    ],
    [
      'federates_with invalid',
      { federatesWith: ['spiffe://BAD'] },
      'invalid federates_with[0]: trust domain characters are limited',
    ],
    ['federates_with without a bundle', { federatesWith: ['nobundle.org'] }, 'nobundle.org'],
    [
      'hint too long',
      { hint: 'h'.repeat(1025) },
      'invalid hint: hint is too long, max length is 1024 characters',
    ],
    ['entry id with a slash', { id: 'a/b' }, 'invalid id: entry ID may only contain'],
    ['entry id too long', { id: 'x'.repeat(256) }, 'invalid id: entry ID is longer than 255'],
    [
      'additional attributes',
      { additionalAttributes: { jwtSvidIncludeJti: true } },
      'invalid additional_attributes: additional attributes are not supported',
    ],
  ];
  it.each(bad)('refuses %s with InvalidArgument naming the field', async (_name, init, message) => {
    const [r] = await createEntries([entry('/bad/input', init)]);
    expect(r?.status?.code).toBe(Code.InvalidArgument);
    expect(r?.status?.message).toContain(message);
    expect(r?.entry).toBeUndefined();
  });

  it('applies the output mask (the ID is always present)', async () => {
    const [r] = await createEntries(
      [entry('/create/masked', { hint: 'masked' })],
      create(types.EntryMaskSchema, { hint: true }),
    );
    expect(r?.entry?.id).not.toBe('');
    expect(r?.entry?.hint).toBe('masked');
    expect(r?.entry?.spiffeId).toBeUndefined();
    expect(r?.entry?.selectors).toEqual([]);
  });
});

describe('GetEntry', () => {
  it('refuses a missing ID and reports an unknown one as NotFound', async () => {
    expect(
      await rejection(() =>
        svc.getEntry(create(entryv1.GetEntryRequestSchema, { id: '' }), ctx('getEntry')),
      ),
    ).toMatchObject({ code: 'ERR_API_INVALID_ARGUMENT', message: 'invalid id: missing entry ID' });
    expect(
      await rejection(() =>
        svc.getEntry(create(entryv1.GetEntryRequestSchema, { id: 'nope' }), ctx('getEntry')),
      ),
    ).toMatchObject({ code: 'ERR_API_NOT_FOUND', message: 'entry not found' });
  });
});

describe('ListEntries and CountEntries filters', () => {
  const sel = (...s: string[]) =>
    s.map((x) => {
      const [type, value] = x.split('=') as [string, string];
      return { type, value };
    });
  const P = '/spire/agent/match/node';

  beforeAll(async () => {
    const mk = (path: string, init: Partial<EntryInit>) =>
      createOk(entry(path, { parentId: { trustDomain: TD, path: P }, ...init }));
    await mk('/m/A', { selectors: sel('k=a') });
    await mk('/m/B', { selectors: sel('k=a', 'k=b') });
    await mk('/m/C', { selectors: sel('k=b', 'k=c') });
    await mk('/m/D', { selectors: sel('f=d'), federatesWith: ['td1.org'] });
    await mk('/m/E', { selectors: sel('f=e'), federatesWith: ['td1.org', 'td2.org'] });
    await mk('/m/F', {
      selectors: sel('f=f'),
      federatesWith: ['td2.org', 'td3.org'],
      hint: 'hinted',
      downstream: true,
    });
  });

  const M = types.SelectorMatch_MatchBehavior;
  const selectorCases: Array<[string, string[], number, string[]]> = [
    ['exact a,b', ['k=a', 'k=b'], M.MATCH_EXACT, ['/m/B']],
    ['subset a,b', ['k=a', 'k=b'], M.MATCH_SUBSET, ['/m/A', '/m/B']],
    ['superset a,b', ['k=a', 'k=b'], M.MATCH_SUPERSET, ['/m/B']],
    ['any a,b', ['k=a', 'k=b'], M.MATCH_ANY, ['/m/A', '/m/B', '/m/C']],
    ['exact a', ['k=a'], M.MATCH_EXACT, ['/m/A']],
    ['subset a', ['k=a'], M.MATCH_SUBSET, ['/m/A']],
    ['superset a', ['k=a'], M.MATCH_SUPERSET, ['/m/A', '/m/B']],
    ['any c', ['k=c'], M.MATCH_ANY, ['/m/C']],
    ['superset b,c,z', ['k=b', 'k=c', 'k=z'], M.MATCH_SUPERSET, []],
    ['subset b,c,z', ['k=b', 'k=c', 'k=z'], M.MATCH_SUBSET, ['/m/C']],
  ];
  it.each(selectorCases)('by_selectors %s', async (_n, s, match, want) => {
    const filter = { bySelectors: { selectors: sel(...s), match } };
    expect(paths((await list({ filter })).entries)).toEqual(want);
    const count = await svc.countEntries(
      create(entryv1.CountEntriesRequestSchema, {
        filter: sameFilter<entryv1.CountEntriesRequest_Filter>(filter),
      }),
      ctx('countEntries'),
    );
    expect(count).toEqual({ count: want.length });
  });

  const F = types.FederatesWithMatch_MatchBehavior;
  const federationCases: Array<[string, string[], number, string[]]> = [
    ['exact td1,td2', ['td1.org', 'td2.org'], F.MATCH_EXACT, ['/m/E']],
    ['subset td1,td2', ['td1.org', 'spiffe://td2.org'], F.MATCH_SUBSET, ['/m/D', '/m/E']],
    ['superset td1,td2', ['td1.org', 'td2.org'], F.MATCH_SUPERSET, ['/m/E']],
    ['any td1,td2', ['td1.org', 'td2.org'], F.MATCH_ANY, ['/m/D', '/m/E', '/m/F']],
    ['superset td2', ['td2.org'], F.MATCH_SUPERSET, ['/m/E', '/m/F']],
    ['exact td3', ['td3.org'], F.MATCH_EXACT, []],
  ];
  it.each(federationCases)('by_federates_with %s', async (_n, tds, match, want) => {
    const filter = {
      byParentId: { trustDomain: TD, path: P },
      byFederatesWith: { trustDomains: tds, match },
    };
    expect(paths((await list({ filter })).entries)).toEqual(want);
  });

  it('filters by SPIFFE ID, parent ID, hint and downstream, all combined', async () => {
    expect(
      paths((await list({ filter: { bySpiffeId: { trustDomain: TD, path: '/m/C' } } })).entries),
    ).toEqual(['/m/C']);
    expect(
      (await list({ filter: { byParentId: { trustDomain: TD, path: P } } })).entries,
    ).toHaveLength(6);
    expect(paths((await list({ filter: { byHint: 'hinted' } })).entries)).toEqual(['/m/F']);
    expect(paths((await list({ filter: { byDownstream: true } })).entries)).toEqual(['/m/F']);
    const both = await list({
      filter: {
        byParentId: { trustDomain: TD, path: P },
        byDownstream: false,
        bySelectors: { selectors: sel('k=b'), match: M.MATCH_SUPERSET },
      },
    });
    expect(paths(both.entries)).toEqual(['/m/B', '/m/C']);
  });

  const badFilters: Array<
    [string, MessageInitShape<typeof entryv1.ListEntriesRequest_FilterSchema>, string]
  > = [
    [
      'by_spiffe_id of another trust domain',
      { bySpiffeId: { trustDomain: 'td1.org', path: '/x' } },
      'invalid filter.by_spiffe_id: "spiffe://td1.org/x" is not a member',
    ],
    [
      'by_spiffe_id malformed',
      { bySpiffeId: { trustDomain: TD, path: '//x' } },
      'invalid filter.by_spiffe_id: path cannot contain empty segments',
    ],
    [
      'by_parent_id malformed',
      { byParentId: { trustDomain: '', path: '/x' } },
      'invalid filter.by_parent_id: trust domain is missing',
    ],
    [
      'by_selectors empty',
      { bySelectors: { selectors: [] } },
      'invalid filter.by_selectors: empty selector set',
    ],
    [
      'by_selectors bad selector',
      { bySelectors: { selectors: [{ type: '', value: 'x' }] } },
      'invalid filter.by_selectors.selectors[0]: missing selector type',
    ],
    [
      'by_selectors unknown match',
      { bySelectors: { selectors: sel('k=a'), match: 7 as types.SelectorMatch_MatchBehavior } },
      'invalid filter.by_selectors.match: unknown match behavior 7',
    ],
    [
      'by_federates_with empty',
      { byFederatesWith: { trustDomains: [] } },
      'invalid filter.by_federates_with: empty trust domain set',
    ],
    [
      'by_federates_with malformed',
      { byFederatesWith: { trustDomains: ['a b'] } },
      'invalid filter.by_federates_with.trust_domains[0]',
    ],
  ];
  it.each(badFilters)('refuses %s', async (_n, filter, message) => {
    const err = await rejection(() => list({ filter }));
    expect(err.code).toBe('ERR_API_INVALID_ARGUMENT');
    expect(err.message).toContain(message);
    const err2 = await rejection(() =>
      svc.countEntries(
        create(entryv1.CountEntriesRequestSchema, {
          filter: sameFilter<entryv1.CountEntriesRequest_Filter>(filter),
        }),
        ctx('countEntries'),
      ),
    );
    expect(err2.code).toBe('ERR_API_INVALID_ARGUMENT');
  });

  it('applies the output mask to listed entries', async () => {
    const r = await list({
      filter: { bySpiffeId: { trustDomain: TD, path: '/m/F' } },
      outputMask: { spiffeId: true, federatesWith: true },
    });
    expect(r.entries[0]).toMatchObject({ federatesWith: ['td2.org', 'td3.org'], hint: '' });
    expect(r.entries[0]?.selectors).toEqual([]);
    expect(r.entries[0]?.parentId).toBeUndefined();
  });
});

describe('ListEntries pagination', () => {
  const P = '/spire/agent/page/node';
  beforeAll(async () => {
    for (let i = 0; i < 7; i++) {
      await createOk(entry(`/page/${i}`, { parentId: { trustDomain: TD, path: P } }));
    }
  });

  it('walks every entry exactly once in pages of page_size', async () => {
    const seen: string[] = [];
    let token = '';
    let pages = 0;
    do {
      const r = await list({
        filter: { byParentId: { trustDomain: TD, path: P } },
        pageSize: 3,
        pageToken: token,
      });
      expect(r.entries.length).toBeLessThanOrEqual(3);
      seen.push(...r.entries.map((e) => e.spiffeId!.path));
      token = r.nextPageToken;
      pages++;
    } while (token !== '' && pages < 10);
    expect(pages).toBe(3);
    expect(seen.sort()).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `/page/${i}`));
  });

  it('refuses a negative page size and a forged page token', async () => {
    expect(await rejection(() => list({ pageSize: -1 }))).toMatchObject({
      code: 'ERR_API_INVALID_ARGUMENT',
      message: 'invalid page_size: must not be negative',
    });
    const err = await rejection(() => list({ pageSize: 2, pageToken: 'bm90LWEtdG9rZW4' }));
    expect(err.code).toBe('ERR_API_INVALID_ARGUMENT');
    expect(err.message).toMatch(/^invalid page_token: /);
  });
});

describe('BatchUpdateEntry', () => {
  it('changes only the masked fields and bumps the revision', async () => {
    const e = await createOk(entry('/update/masked', { hint: 'before', x509SvidTtl: 100 }));
    const res = (await svc.batchUpdateEntry(
      create(entryv1.BatchUpdateEntryRequestSchema, {
        entries: [{ id: e.id, hint: 'after', x509SvidTtl: 999 }],
        inputMask: { hint: true },
      }),
      ctx('batchUpdateEntry'),
    )) as entryv1.BatchUpdateEntryResponse;
    expect(res.results[0]?.status?.code).toBe(0);
    expect(res.results[0]?.entry).toMatchObject({
      hint: 'after',
      x509SvidTtl: 100,
      revisionNumber: 1n,
    });
    const again = (await svc.batchUpdateEntry(
      create(entryv1.BatchUpdateEntryRequestSchema, {
        entries: [{ id: e.id, dnsNames: ['x.example.org'] }],
        inputMask: { dnsNames: true },
      }),
      ctx('batchUpdateEntry'),
    )) as entryv1.BatchUpdateEntryResponse;
    expect(again.results[0]?.entry).toMatchObject({
      dnsNames: ['x.example.org'],
      revisionNumber: 2n,
    });
  });

  it('replaces every field without a mask, validating them all', async () => {
    const e = await createOk(entry('/update/full', { hint: 'x', admin: true }));
    const res = (await svc.batchUpdateEntry(
      create(entryv1.BatchUpdateEntryRequestSchema, {
        entries: [entry('/update/full2', { id: e.id }), { id: e.id, hint: 'no ids' }],
      }),
      ctx('batchUpdateEntry'),
    )) as entryv1.BatchUpdateEntryResponse;
    expect(res.results[0]?.status?.code).toBe(0);
    expect(res.results[0]?.entry).toMatchObject({ hint: '', admin: false });
    expect(res.results[0]?.entry?.spiffeId?.path).toBe('/update/full2');
    expect(res.results[1]?.status).toMatchObject({
      code: Code.InvalidArgument,
      message: 'invalid parent_id: request must specify SPIFFE ID',
    });
  });

  it('reports unknown IDs, missing IDs, bad masked fields and similar entries per item', async () => {
    const a = await createOk(entry('/update/a'));
    const b = await createOk(entry('/update/b'));
    const update = async (
      entries: MessageInitShape<typeof types.EntrySchema>[],
      inputMask: MessageInitShape<typeof types.EntryMaskSchema>,
    ) => {
      const res = (await svc.batchUpdateEntry(
        create(entryv1.BatchUpdateEntryRequestSchema, { entries, inputMask }),
        ctx('batchUpdateEntry'),
      )) as entryv1.BatchUpdateEntryResponse;
      return res.results.map((r) => [r.status?.code, r.status?.message]);
    };
    expect(
      await update(
        [
          { id: 'does-not-exist', hint: 'x' },
          { id: '', hint: 'x' },
          { id: a.id, hint: 'h'.repeat(2000) },
          { id: b.id, hint: 'fine' },
        ],
        { hint: true },
      ),
    ).toEqual([
      [Code.NotFound, 'entry not found'],
      [Code.InvalidArgument, 'invalid id: missing entry ID'],
      [Code.InvalidArgument, 'invalid hint: hint is too long, max length is 1024 characters'],
      [0, 'OK'],
    ]);
    const [reserved, similar] = await update(
      [
        { id: a.id, spiffeId: { trustDomain: TD, path: '/spire/x' }, selectors: a.selectors },
        { id: b.id, spiffeId: a.spiffeId, selectors: a.selectors },
      ],
      { spiffeId: true, selectors: true },
    );
    expect(reserved?.[0]).toBe(Code.InvalidArgument);
    expect(reserved?.[1]).toContain('invalid spiffe_id: ');
    expect(reserved?.[1]).toContain('reserved namespace');
    expect(similar).toEqual([Code.AlreadyExists, 'similar entry already exists']);
  });
});

describe('BatchDeleteEntry', () => {
  it('deletes, and reports unknown and empty IDs per item', async () => {
    const e = await createOk(entry('/delete/me'));
    const res = (await svc.batchDeleteEntry(
      create(entryv1.BatchDeleteEntryRequestSchema, { ids: [e.id, e.id, '', 'a/b'] }),
      ctx('batchDeleteEntry'),
    )) as entryv1.BatchDeleteEntryResponse;
    expect(res.results.map((r) => [r.id, r.status?.code, r.status?.message])).toEqual([
      [e.id, 0, 'OK'],
      [e.id, Code.NotFound, 'entry not found'],
      ['', Code.InvalidArgument, 'invalid ids: missing entry ID'],
      [
        'a/b',
        Code.InvalidArgument,
        "invalid ids: entry ID may only contain letters, digits, '.', '_' and '-'",
      ],
    ]);
    expect(await fx.ds.getEntry(e.id)).toBeUndefined();
  });
});

describe('audit log', () => {
  it('writes one line per mutating call with the caller uid', async () => {
    fx.logs.length = 0;
    await createEntries([entry('/log/a'), entry('/log/../b')]);
    const lines = parsedLogs(fx.logs).filter((l) => l.method === 'BatchCreateEntry');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'info', caller_uid: 0, ok: 1, failed: 1 });
  });
});
