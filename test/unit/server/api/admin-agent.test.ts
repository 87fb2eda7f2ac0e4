/**
 * The Agent management service, called directly with a real SQLite datastore: list/count
 * with every filter, pagination and masks over nodes created through the datastore; get
 * (with the evidence header), ban, delete; join tokens (random UUIDv4, stored hashed,
 * consumable once, node-alias entry for agent_id, never logged).
 */
import { createHash } from 'node:crypto';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../../../../src/common/random.js';
import { agentv1, types } from '../../../../src/protocol/index.js';
import {
  createAgentAdminService,
  EVIDENCE_HEADER,
  EVIDENCE_TRUNCATED_HEADER,
  newJoinToken,
  readAttestationEvidence,
} from '../../../../src/server/api/admin/agent.js';
import { parseExpiresBefore } from '../../../../src/server/api/filters.js';
import {
  type AdminFixture,
  handlerContext,
  rejection,
  sameFilter,
  startAdminFixture,
  TD,
} from './admin-support.js';

let fx: AdminFixture;
let svc: ReturnType<typeof createAgentAdminService>;
const ctx = (m: string) => handlerContext(agentv1.Agent, m);
const T = 2_000_000_000;
const id = (path: string) => ({ trustDomain: TD, path });
const A = '/spire/agent/tpm/aaaa';
const B = '/spire/agent/join_token/bbbb';
const C = '/spire/agent/x509pop/cccc';
const EVIDENCE = JSON.stringify({
  pub_hash: 'aaaa',
  ek_manufacturer: 'id:53574D20',
  pcrs: { 7: 'ab' },
});

beforeAll(async () => {
  fx = await startAdminFixture();
  svc = createAgentAdminService(fx.context);
  await fx.ds.createAttestedNode({
    spiffeId: `spiffe://${TD}${A}`,
    attestationDataType: 'tpm',
    certSerialNumber: '101',
    certNotAfter: T + 100,
    canReattest: true,
    selectors: [
      { type: 'tpm', value: 'pub_hash:aaaa' },
      { type: 'tpm', value: 'secure_boot:true' },
    ],
    evidence: EVIDENCE,
  });
  await fx.ds.createAttestedNode({
    spiffeId: `spiffe://${TD}${B}`,
    attestationDataType: 'join_token',
    certSerialNumber: '202',
    certNotAfter: T + 200,
    selectors: [{ type: 'join_token', value: 'bbbb' }],
  });
  await fx.ds.createAttestedNode({
    spiffeId: `spiffe://${TD}${C}`,
    attestationDataType: 'x509pop',
    certSerialNumber: '303',
    certNotAfter: T + 300,
    canReattest: true,
    selectors: [
      { type: 'tpm', value: 'secure_boot:true' },
      { type: 'x509pop', value: 'subject:cn:c' },
    ],
  });
});
afterAll(() => fx.close());

async function list(init: MessageInitShape<typeof agentv1.ListAgentsRequestSchema> = {}) {
  return (await svc.listAgents(
    create(agentv1.ListAgentsRequestSchema, init),
    ctx('listAgents'),
  )) as agentv1.ListAgentsResponse;
}
const paths = (r: agentv1.ListAgentsResponse) => r.agents.map((a) => a.id?.path);
const M = types.SelectorMatch_MatchBehavior;

describe('ListAgents / CountAgents', () => {
  it('lists every agent with its fields, ordered by SPIFFE ID', async () => {
    const r = await list();
    expect(paths(r)).toEqual([B, A, C]);
    expect(r.agents[1]).toMatchObject({
      attestationType: 'tpm',
      x509svidSerialNumber: '101',
      x509svidExpiresAt: BigInt(T + 100),
      banned: false,
      canReattest: true,
    });
    expect(r.agents[1]?.selectors.map((s) => `${s.type}:${s.value}`)).toEqual([
      'tpm:pub_hash:aaaa',
      'tpm:secure_boot:true',
    ]);
  });

  const cases: Array<
    [string, MessageInitShape<typeof agentv1.ListAgentsRequest_FilterSchema>, string[]]
  > = [
    ['attestation type', { byAttestationType: 'tpm' }, [A]],
    ['can_reattest true', { byCanReattest: true }, [A, C]],
    ['can_reattest false', { byCanReattest: false }, [B]],
    ['banned false', { byBanned: false }, [B, A, C]],
    [
      'selectors superset',
      {
        bySelectorMatch: {
          selectors: [{ type: 'tpm', value: 'secure_boot:true' }],
          match: M.MATCH_SUPERSET,
        },
      },
      [A, C],
    ],
    [
      'selectors exact',
      {
        bySelectorMatch: {
          selectors: [
            { type: 'tpm', value: 'secure_boot:true' },
            { type: 'tpm', value: 'pub_hash:aaaa' },
          ],
          match: M.MATCH_EXACT,
        },
      },
      [A],
    ],
    [
      'selectors any',
      {
        bySelectorMatch: {
          selectors: [
            { type: 'join_token', value: 'bbbb' },
            { type: 'x509pop', value: 'subject:cn:c' },
          ],
          match: M.MATCH_ANY,
        },
      },
      [B, C],
    ],
    ['expires before (SPIRE layout)', { byExpiresBefore: '2033-05-18 03:36:40 +0000 +00' }, [A]],
    ['expires before (RFC 3339)', { byExpiresBefore: '2033-05-18T05:36:40+02:00' }, [A]],
    ['expires before (epoch seconds)', { byExpiresBefore: String(T + 250) }, [B, A]],
    ['combined', { byCanReattest: true, byAttestationType: 'x509pop' }, [C]],
  ];
  it.each(cases)('filters by %s', async (_n, filter, want) => {
    expect(paths(await list({ filter }))).toEqual(want);
    const count = await svc.countAgents(
      create(agentv1.CountAgentsRequestSchema, {
        filter: sameFilter<agentv1.CountAgentsRequest_Filter>(filter),
      }),
      ctx('countAgents'),
    );
    expect(count).toEqual({ count: want.length });
  });

  const bad: Array<
    [string, MessageInitShape<typeof agentv1.ListAgentsRequest_FilterSchema>, string]
  > = [
    [
      'empty selector set',
      { bySelectorMatch: { selectors: [] } },
      'invalid filter.by_selector_match: empty selector set',
    ],
    [
      'selector without value',
      { bySelectorMatch: { selectors: [{ type: 'tpm', value: '' }] } },
      'invalid filter.by_selector_match.selectors[0]: missing selector value',
    ],
    [
      'bad match',
      {
        bySelectorMatch: {
          selectors: [{ type: 'a', value: 'b' }],
          match: 4 as types.SelectorMatch_MatchBehavior,
        },
      },
      'unknown match behavior 4',
    ],
    [
      'month out of range',
      { byExpiresBefore: '2001-13-05 00:00:00 +0000 +00' },
      'invalid filter.by_expires_before',
    ],
    [
      'not a time',
      { byExpiresBefore: 'tomorrow' },
      'invalid filter.by_expires_before: "tomorrow" is not a time',
    ],
  ];
  it.each(bad)('refuses %s', async (_n, filter, message) => {
    const err = await rejection(() => list({ filter }));
    expect(err.code).toBe('ERR_API_INVALID_ARGUMENT');
    expect(err.message).toContain(message);
    const err2 = await rejection(() =>
      svc.countAgents(
        create(agentv1.CountAgentsRequestSchema, {
          filter: sameFilter<agentv1.CountAgentsRequest_Filter>(filter),
        }),
        ctx('countAgents'),
      ),
    );
    expect(err2.code).toBe('ERR_API_INVALID_ARGUMENT');
  });

  it('pages through agents and applies the output mask', async () => {
    const seen: string[] = [];
    let token = '';
    for (let i = 0; i < 5; i++) {
      const r = await list({ pageSize: 2, pageToken: token, outputMask: { banned: true } });
      expect(r.agents.length).toBeLessThanOrEqual(2);
      for (const a of r.agents) {
        expect(a.attestationType).toBe('');
        expect(a.selectors).toEqual([]);
        seen.push(a.id!.path);
      }
      token = r.nextPageToken;
      if (token === '') break;
    }
    expect(seen).toEqual([B, A, C]);
    expect((await rejection(() => list({ pageSize: -2 }))).message).toBe(
      'invalid page_size: must not be negative',
    );
  });

  it('parses expiry times in every accepted layout to the same second', () => {
    expect(parseExpiresBefore('2000-01-01 15:04:05 -0700 -07')).toBe(
      Date.UTC(2000, 0, 1, 22, 4, 5) / 1000,
    );
    expect(parseExpiresBefore('2000-01-01T22:04:05Z')).toBe(Date.UTC(2000, 0, 1, 22, 4, 5) / 1000);
    expect(
      (() => {
        try {
          parseExpiresBefore('2001-02-30 00:00:00 +0000 +00');
        } catch (err) {
          return (err as { code: string }).code;
        }
      })(),
    ).toBe('ERR_API_INVALID_ARGUMENT');
  });
});

describe('GetAgent', () => {
  it('returns the agent and its attestation evidence in a response header', async () => {
    const c = ctx('getAgent');
    const a = (await svc.getAgent(
      create(agentv1.GetAgentRequestSchema, { id: id(A) }),
      c,
    )) as types.Agent;
    expect(a).toMatchObject({ attestationType: 'tpm', x509svidSerialNumber: '101' });
    expect(c.responseHeader.get(EVIDENCE_HEADER)).not.toBeNull();
    expect(readAttestationEvidence(c.responseHeader)).toBe(EVIDENCE);
    const c2 = ctx('getAgent');
    await svc.getAgent(create(agentv1.GetAgentRequestSchema, { id: id(B) }), c2);
    expect(readAttestationEvidence(c2.responseHeader)).toBeUndefined();
  });

  it('omits an oversized evidence summary and says so', async () => {
    const big = `/spire/agent/tpm/big`;
    await fx.ds.createAttestedNode({
      spiffeId: `spiffe://${TD}${big}`,
      attestationDataType: 'tpm',
      evidence: JSON.stringify({ blob: 'x'.repeat(20_000) }),
    });
    const c = ctx('getAgent');
    await svc.getAgent(create(agentv1.GetAgentRequestSchema, { id: id(big) }), c);
    expect(c.responseHeader.get(EVIDENCE_HEADER)).toBeNull();
    expect(Number(c.responseHeader.get(EVIDENCE_TRUNCATED_HEADER))).toBeGreaterThan(20_000);
    await fx.ds.deleteAttestedNode(`spiffe://${TD}${big}`);
  });

  const badIds: Array<[string, MessageInitShape<typeof types.SPIFFEIDSchema> | undefined, string]> =
    [
      ['missing', undefined, 'invalid id: request must specify SPIFFE ID'],
      [
        'outside the agent namespace',
        { trustDomain: TD, path: '/workload' },
        'path is not in the agent namespace',
      ],
      [
        'of another trust domain',
        { trustDomain: 'other.org', path: '/spire/agent/x' },
        'is not a member of trust domain',
      ],
      [
        'malformed',
        { trustDomain: TD, path: '/spire/agent/%41' },
        'invalid id: path cannot contain percent-encoded',
      ],
    ];
  it.each(badIds)('refuses an id %s', async (_n, spiffeId, message) => {
    for (const method of ['getAgent', 'banAgent', 'deleteAgent'] as const) {
      const schema =
        method === 'getAgent'
          ? agentv1.GetAgentRequestSchema
          : method === 'banAgent'
            ? agentv1.BanAgentRequestSchema
            : agentv1.DeleteAgentRequestSchema;
      const req = create(
        schema as typeof agentv1.GetAgentRequestSchema,
        spiffeId ? { id: spiffeId } : {},
      );
      const err = await rejection(() =>
        (svc[method] as (r: typeof req, c: unknown) => Promise<unknown>)(req, ctx(method)),
      );
      expect(err.code).toBe('ERR_API_INVALID_ARGUMENT');
      expect(err.message).toContain(message);
    }
  });

  it('reports an unknown agent as NotFound', async () => {
    expect(
      await rejection(() =>
        svc.getAgent(
          create(agentv1.GetAgentRequestSchema, { id: id('/spire/agent/tpm/none') }),
          ctx('getAgent'),
        ),
      ),
    ).toMatchObject({ code: 'ERR_API_NOT_FOUND', message: 'agent not found' });
  });
});

describe('BanAgent and DeleteAgent', () => {
  it('bans: the agent is marked banned and its serial number cleared', async () => {
    await svc.banAgent(create(agentv1.BanAgentRequestSchema, { id: id(C) }), ctx('banAgent'));
    const node = await fx.ds.getAttestedNode(`spiffe://${TD}${C}`);
    expect(node).toMatchObject({ banned: true, certSerialNumber: '' });
    expect(paths(await list({ filter: { byBanned: true } }))).toEqual([C]);
    expect(
      await rejection(() =>
        svc.banAgent(
          create(agentv1.BanAgentRequestSchema, { id: id('/spire/agent/x/none') }),
          ctx('banAgent'),
        ),
      ),
    ).toMatchObject({ code: 'ERR_API_NOT_FOUND', message: 'agent not found' });
  });

  it('deletes (evicts) an agent with its selectors, once', async () => {
    const agentId = `spiffe://${TD}${B}`;
    await svc.deleteAgent(
      create(agentv1.DeleteAgentRequestSchema, { id: id(B) }),
      ctx('deleteAgent'),
    );
    expect(await fx.ds.getAttestedNode(agentId)).toBeUndefined();
    expect(await fx.ds.getNodeSelectors(agentId)).toEqual([]);
    expect(
      await rejection(() =>
        svc.deleteAgent(
          create(agentv1.DeleteAgentRequestSchema, { id: id(B) }),
          ctx('deleteAgent'),
        ),
      ),
    ).toMatchObject({ code: 'ERR_API_NOT_FOUND', message: 'agent not found' });
    const lines = fx.logs.filter((l) => l.includes('"method":"DeleteAgent"'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('"caller_uid":0');
  });
});

describe('CreateJoinToken', () => {
  async function createToken(init: MessageInitShape<typeof agentv1.CreateJoinTokenRequestSchema>) {
    return (await svc.createJoinToken(
      create(agentv1.CreateJoinTokenRequestSchema, init),
      ctx('createJoinToken'),
    )) as types.JoinToken;
  }

  it('creates a random UUIDv4 token that the datastore holds hashed and consumes once', async () => {
    fx.logs.length = 0;
    const before = Math.floor(Date.now() / 1000);
    const t = await createToken({ ttl: 600 });
    expect(t.value).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    expect(Number(t.expiresAt) - before).toBeGreaterThanOrEqual(600);
    expect(Number(t.expiresAt) - before).toBeLessThanOrEqual(601);
    const other = await createToken({ ttl: 600 });
    expect(other.value).not.toBe(t.value);
    const rec = await fx.ds.consumeJoinToken(t.value, before);
    expect(rec.tokenHash).toBe(createHash('sha256').update(t.value).digest('hex'));
    const again = await rejection(() => fx.ds.consumeJoinToken(t.value, before));
    expect(again.code).toBe('ERR_DATASTORE_NOT_FOUND');
    for (const line of fx.logs) {
      expect(line).not.toContain(t.value);
      expect(line).not.toContain(other.value);
    }
    expect(fx.logs.filter((l) => l.includes('"method":"CreateJoinToken"'))).toHaveLength(2);
  });

  it('creates the node-alias entry for agent_id, as SPIRE does', async () => {
    const t = await createToken({ ttl: 60, agentId: id('/gateways/17') });
    const parent = `spiffe://${TD}/spire/agent/join_token/${t.value}`;
    const page = await fx.ds.listEntries({ byParentId: parent });
    expect(page.items).toHaveLength(1);
    expect(page.items[0]).toMatchObject({
      spiffeId: `spiffe://${TD}/gateways/17`,
      parentId: parent,
      selectors: [{ type: 'spiffe_id', value: parent }],
    });
    for (const line of fx.logs) expect(line).not.toContain(t.value);
  });

  it('honours a caller-chosen token and refuses it twice', async () => {
    const t = await createToken({ ttl: 60, token: 'my-token.1' });
    expect(t.value).toBe('my-token.1');
    expect(await rejection(() => createToken({ ttl: 60, token: 'my-token.1' }))).toMatchObject({
      code: 'ERR_API_ALREADY_EXISTS',
    });
  });

  const bad: Array<
    [string, MessageInitShape<typeof agentv1.CreateJoinTokenRequestSchema>, string]
  > = [
    ['zero ttl', { ttl: 0 }, 'invalid ttl: must be a positive number of seconds'],
    ['negative ttl', { ttl: -10 }, 'invalid ttl: must be a positive number of seconds'],
    [
      'agent_id in the reserved namespace',
      { ttl: 60, agentId: id('/spire/agent/x') },
      'invalid agent_id: ',
    ],
    [
      'agent_id of another trust domain',
      { ttl: 60, agentId: { trustDomain: 'other.org', path: '/x' } },
      'invalid agent_id: ',
    ],
    [
      'agent_id malformed',
      { ttl: 60, agentId: { trustDomain: TD, path: '/a/./b' } },
      'invalid agent_id: path cannot contain dot segments',
    ],
    ['token with a slash', { ttl: 60, token: 'a/b' }, 'invalid token: '],
    ['token dot-dot', { ttl: 60, token: '..' }, 'invalid token: '],
  ];
  it.each(bad)('refuses %s and stores nothing', async (_n, init, message) => {
    const entries = await fx.ds.countEntries();
    const err = await rejection(() => createToken(init));
    expect(err.code).toBe('ERR_API_INVALID_ARGUMENT');
    expect(err.message).toContain(message);
    expect(await fx.ds.countEntries()).toBe(entries);
  });

  it('builds RFC 4122 version 4 tokens from the injected random source', () => {
    const a = newJoinToken(seededRandom(1));
    expect(a).toBe(newJoinToken(seededRandom(1)));
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
