/**
 * The agent's gRPC client of the server's agent API against a real agent API server (SQLite, CA
 * manager, authorized-entries cache, TLS on 127.0.0.1): attestation with a join token, SPIRE's
 * revision-paged SyncAuthorizedEntries (page size 3, so the paging path runs), batch X509-SVIDs
 * with per-item statuses, JWT-SVIDs, bundles, renewal, and the PermissionDenied reasons that
 * `agentRejection` reads after an eviction.
 */
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCsr } from '../../src/agent/attestation/csr.js';
import { createJoinTokenAttestorClient } from '../../src/agent/attestation/join-token.js';
import { checkIssuedX509Svid } from '../../src/agent/manager/issued-svid.js';
import { generateEcP256Key, spkiOf } from '../../src/agent/manager/keys.js';
import {
  type AgentCallCredentials,
  type AgentServerClient,
  agentRejection,
  createAgentServerClient,
} from '../../src/agent/manager/server-client.js';
import { parseTrustDomain } from '../../src/spiffe/id.js';
import { parseJwtSvidInsecure } from '../../src/spiffe/jwt-svid.js';
import { type Harness, startHarness, TD } from './agent-api-support.js';

let h: Harness;
let client: AgentServerClient;
let creds: AgentCallCredentials;
let agentId: string;
const ids: string[] = [];

beforeAll(async () => {
  h = await startHarness({ server: { entryPageSize: 3 } });
  creds = { bundle: h.bundle() };
  client = createAgentServerClient({
    host: '127.0.0.1',
    port: h.port,
    trustDomain: parseTrustDomain(TD),
    credentials: () => creds,
  });
  const token = 'agent-client-token';
  await h.ds.createJoinToken({ token, expiresAt: Math.floor(Date.now() / 1000) + 600 });
  const key = await generateEcP256Key();
  const r = await client.attestAgent(createJoinTokenAttestorClient(token), createCsr(key));
  agentId = r.svid.id;
  expect(agentId).toBe(`spiffe://${TD}/spire/agent/join_token/${token}`);
  checkIssuedX509Svid(r.svid.certChain, {
    trustDomain: parseTrustDomain(TD),
    authorities: h.bundle(),
    spki: spkiOf(key),
    expectedId: agentId,
    now: new Date(),
  });
  creds = { bundle: h.bundle(), svid: { certChain: r.svid.certChain, privateKey: key } };
  for (let i = 0; i < 8; i++) {
    const e = await h.ds.createEntry({
      spiffeId: `spiffe://${TD}/w/${i}`,
      parentId: agentId,
      selectors: [{ type: 'unix', value: `uid:${i}` }],
      hint: i === 0 ? 'zero' : '',
    });
    ids.push(e.id);
  }
  await h.entries.poll();
});
afterAll(async () => {
  client?.close();
  await h?.close();
});

describe('SyncAuthorizedEntries through pages of revisions', () => {
  it('sends every entry in full the first time, then only what changed', async () => {
    const first = await client.syncAuthorizedEntries(new Map());
    expect(first.revisions.size).toBe(8);
    expect(first.changed.map((e) => e.id).sort()).toEqual([...ids].sort());
    expect(first.changed.find((e) => e.id === ids[0])).toMatchObject({
      spiffeId: `spiffe://${TD}/w/0`,
      parentId: agentId,
      selectors: [{ type: 'unix', value: 'uid:0' }],
      hint: 'zero',
      revisionNumber: 0,
    });
    const known = new Map(first.changed.map((e) => [e.id, e.revisionNumber]));
    const again = await client.syncAuthorizedEntries(known);
    expect(again.changed).toEqual([]);
    expect(again.revisions).toEqual(first.revisions);

    await h.ds.updateEntry({ id: ids[3]!, set: { hint: 'changed' } });
    await h.ds.deleteEntry(ids[7]!);
    await h.entries.poll();
    const delta = await client.syncAuthorizedEntries(known);
    expect(delta.changed.map((e) => [e.id, e.hint, e.revisionNumber])).toEqual([
      [ids[3], 'changed', 1],
    ]);
    expect(delta.revisions.size).toBe(7);
    expect(delta.revisions.has(ids[7]!)).toBe(false);
  });
});

describe('SVIDs and bundles', () => {
  it('mints X509-SVIDs in a batch with a status per item', async () => {
    const k1 = await generateEcP256Key();
    const k2 = await generateEcP256Key();
    const results = await client.batchNewX509Svid([
      { entryId: ids[1]!, csr: createCsr(k1) },
      { entryId: 'no-such-entry', csr: createCsr(k2) },
    ]);
    expect(results[1]).toMatchObject({ ok: false, code: Code.NotFound });
    const ok = results[0]!;
    if (!ok.ok) throw new Error(ok.message);
    expect(ok.spiffeId).toBe(`spiffe://${TD}/w/1`);
    const checked = checkIssuedX509Svid(ok.certChain, {
      trustDomain: parseTrustDomain(TD),
      authorities: h.bundle(),
      spki: spkiOf(k1),
      expectedId: `spiffe://${TD}/w/1`,
      now: new Date(),
    });
    expect(checked.notAfterMs - Date.now()).toBeGreaterThan(3_500_000);
  });

  it('mints JWT-SVIDs and fetches the bundle', async () => {
    const jwt = await client.newJwtSvid(ids[2]!, ['aud-1', 'aud-2']);
    const parsed = parseJwtSvidInsecure(jwt.token);
    expect(parsed.id.toString()).toBe(`spiffe://${TD}/w/2`);
    expect(parsed.audience).toEqual(['aud-1', 'aud-2']);
    expect(jwt.expiresAtMs).toBe(parsed.expiresAt.getTime());
    const b = await client.getBundle();
    expect(b.trustDomain).toBe(TD);
    expect(b.x509Authorities.length).toBeGreaterThan(0);
    expect(b.jwtAuthorities.length).toBeGreaterThan(0);
    expect(await client.getFederatedBundle('partner.example')).toBeUndefined();
  });

  it('renews the agent SVID, and a banned agent is refused with a reason', async () => {
    const key = await generateEcP256Key();
    const svid = await client.renewAgent(createCsr(key));
    expect(svid.id).toBe(agentId);
    creds = { bundle: h.bundle(), svid: { certChain: svid.certChain, privateKey: key } };
    // The new serial becomes current on first use.
    expect((await client.getBundle()).trustDomain).toBe(TD);
    await h.ds.updateAttestedNode({ spiffeId: agentId, set: { banned: true } });
    const err = await client.syncAuthorizedEntries(new Map()).catch((e: unknown) => e);
    expect(agentRejection(err)).toBe('banned');
    await h.ds.deleteAttestedNode(agentId);
    const err2 = await client.newJwtSvid(ids[2]!, ['a']).catch((e: unknown) => e);
    expect(agentRejection(err2)).toBe('not-attested');
  });
});
