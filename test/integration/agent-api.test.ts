/**
 * The agent API over real TLS on 127.0.0.1 with a real SQLite datastore and CA manager:
 * join-token attestation through the client helper, SVID verification against the bundle,
 * renewal and the serial handoff, authorized entries, batch signing with per-item
 * statuses, JWT-SVIDs, bundles, bans and evictions, rate limits.
 */
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attestAgent, renewAgent } from '../../src/agent/attestation/attest-agent.js';
import { createCsr } from '../../src/agent/attestation/csr.js';
import { createJoinTokenAttestorClient } from '../../src/agent/attestation/join-token.js';
import type { AgentNodeAttestor } from '../../src/agent/attestation/node-attestor.js';
import { bundlev1, entryv1, svidv1, types } from '../../src/protocol/index.js';
import { parseJwtSvidInsecure } from '../../src/spiffe/jwt-svid.js';
import { X509Bundle } from '../../src/spiffe/x509-bundle.js';
import { parseCertificate } from '../../src/spiffe/x509-cert.js';
import { verifyX509Svid } from '../../src/spiffe/x509-verify.js';
import { type Harness, joinTokenAgent, newKey, startHarness, TD } from './agent-api-support.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ server: { entryPageSize: 2 } });
});
afterAll(async () => {
  await h?.close();
});

async function rejection(p: Promise<unknown>): Promise<ConnectError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected the call to fail').toBeInstanceOf(ConnectError);
  return err as ConnectError;
}

const reasonOf = (err: ConnectError) =>
  err.findDetails(types.PermissionDeniedDetailsSchema)[0]?.reason;

function verify(chain: Uint8Array[]) {
  return verifyX509Svid(chain, new X509Bundle(TD, h.bundle()));
}

function serialOf(der: Uint8Array): string {
  let v = 0n;
  for (const b of parseCertificate(der).serial) v = (v << 8n) | BigInt(b);
  return v.toString(10);
}

describe('agent API: join_token agents', () => {
  it('attests with a join token and returns an agent SVID that verifies against the bundle', async () => {
    const { svid, token, reattestable } = await joinTokenAgent(h, 'e2e-token-1');
    const agentId = `spiffe://example.org/spire/agent/join_token/${token}`;
    expect(svid.id).toBe(agentId);
    expect(reattestable).toBe(false);
    expect(verify(svid.certChain).id.toString()).toBe(agentId);
    const node = await h.ds.getAttestedNode(agentId);
    expect(node).toMatchObject({
      attestationDataType: 'join_token',
      certSerialNumber: serialOf(svid.certChain[0]!),
      certNotAfter: svid.expiresAt,
      canReattest: false,
      banned: false,
    });
    expect(svid.expiresAt - Math.floor(Date.now() / 1000)).toBeGreaterThan(3500);
    expect(h.metrics.attestations).toContainEqual(['join_token', 'ok']);
  });

  it('refuses a reused join token with InvalidArgument', async () => {
    await joinTokenAgent(h, 'e2e-token-2');
    const err = await rejection(
      attestAgent(h.anonymous(), createJoinTokenAttestorClient('e2e-token-2'), {
        csr: createCsr(newKey()),
      }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/join token does not exist, has already been used/);
  });

  it('refuses a malformed CSR before consuming the token', async () => {
    await h.ds.createJoinToken({
      token: 'keep-me',
      expiresAt: Math.floor(Date.now() / 1000) + 600,
    });
    const err = await rejection(
      attestAgent(h.anonymous(), createJoinTokenAttestorClient('keep-me'), {
        csr: Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x00),
      }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/failed to parse CSR/);
    // the token is still usable
    const r = await attestAgent(h.anonymous(), createJoinTokenAttestorClient('keep-me'), {
      csr: createCsr(newKey()),
    });
    expect(r.svid.id).toMatch(/join_token\/keep-me$/);
  });

  it('refuses an unknown attestation type with FailedPrecondition', async () => {
    const fake: AgentNodeAttestor = {
      type: 'aws_iid',
      payload: async () => Uint8Array.of(1),
      respond: async () => Uint8Array.of(1),
    };
    const err = await rejection(attestAgent(h.anonymous(), fake, { csr: createCsr(newKey()) }));
    expect(err.code).toBe(Code.FailedPrecondition);
  });

  it('serves authorized entries and batch-signs SVIDs for them with per-item statuses', async () => {
    const { svid, key } = await joinTokenAgent(h);
    const other = await joinTokenAgent(h);
    const e1 = await h.ds.createEntry({
      spiffeId: 'spiffe://example.org/gw/web',
      parentId: svid.id,
      selectors: [{ type: 'unix', value: 'uid:1000' }],
      dnsNames: ['web.example.org'],
      x509SvidTtl: 600,
      jwtSvidTtl: 120,
    });
    const e2 = await h.ds.createEntry({
      spiffeId: 'spiffe://example.org/gw/web/sidecar',
      parentId: 'spiffe://example.org/gw/web',
      selectors: [{ type: 'unix', value: 'uid:1001' }],
    });
    const foreign = await h.ds.createEntry({
      spiffeId: 'spiffe://example.org/other/app',
      parentId: other.svid.id,
      selectors: [{ type: 'unix', value: 'uid:1' }],
    });
    await h.entries.poll();
    const t = h.as(svid, key);

    const entryClient = createClient(entryv1.Entry, t);
    const got = await entryClient.getAuthorizedEntries({});
    expect(got.entries.map((e) => e.id).sort()).toEqual([e1.id, e2.id].sort());
    const web = got.entries.find((e) => e.id === e1.id)!;
    expect(web.spiffeId).toMatchObject({ trustDomain: TD, path: '/gw/web' });
    expect(web.dnsNames).toEqual(['web.example.org']);
    const masked = await entryClient.getAuthorizedEntries({ outputMask: { spiffeId: true } });
    expect(masked.entries.every((e) => e.selectors.length === 0 && e.spiffeId !== undefined)).toBe(
      true,
    );

    const svidClient = createClient(svidv1.SVID, t);
    const goodCsr = createCsr(newKey());
    const badSig = createCsr(newKey());
    badSig[badSig.length - 1]! ^= 0x01;
    const res = await svidClient.batchNewX509SVID({
      params: [
        { entryId: e1.id, csr: goodCsr },
        { entryId: e2.id, csr: createCsr(newKey()) },
        { entryId: foreign.id, csr: createCsr(newKey()) },
        { entryId: 'no-such-entry', csr: createCsr(newKey()) },
        { entryId: e1.id, csr: Uint8Array.of(1, 2, 3) },
        { entryId: e1.id, csr: badSig },
        { entryId: '', csr: createCsr(newKey()) },
        { entryId: e1.id, csr: new Uint8Array() },
      ],
    });
    const codes = res.results.map((r) => r.status?.code);
    expect(codes).toEqual([
      0,
      0,
      Code.NotFound,
      Code.NotFound,
      Code.InvalidArgument,
      Code.InvalidArgument,
      Code.InvalidArgument,
      Code.InvalidArgument,
    ]);
    expect(res.results[2]!.status?.message).toBe('entry not found or not authorized');
    const s1 = res.results[0]!.svid!;
    const v1 = verify(s1.certChain);
    expect(v1.id.toString()).toBe('spiffe://example.org/gw/web');
    const leaf = parseCertificate(s1.certChain[0]!);
    expect(leaf.extensions.subjectAltName?.dnsNames).toEqual(['web.example.org']);
    const ttl = (leaf.notAfter.getTime() - Date.now()) / 1000;
    expect(ttl).toBeGreaterThan(580);
    expect(ttl).toBeLessThanOrEqual(600);
    expect(Number(s1.expiresAt)).toBe(Math.floor(leaf.notAfter.getTime() / 1000));
    expect(verify(res.results[1]!.svid!.certChain).id.toString()).toBe(
      'spiffe://example.org/gw/web/sidecar',
    );
    // the sidecar uses the default TTL (1 h)
    const leaf2 = parseCertificate(res.results[1]!.svid!.certChain[0]!);
    expect((leaf2.notAfter.getTime() - Date.now()) / 1000).toBeGreaterThan(3500);

    const empty = await rejection(svidClient.batchNewX509SVID({ params: [] }));
    expect(empty.code).toBe(Code.InvalidArgument);

    const jwt = await svidClient.newJWTSVID({
      entryId: e1.id,
      audience: ['spiffe://example.org/db'],
    });
    const parsed = parseJwtSvidInsecure(jwt.svid!.token);
    expect(parsed.id.toString()).toBe('spiffe://example.org/gw/web');
    expect(parsed.audience).toEqual(['spiffe://example.org/db']);
    expect(Number(jwt.svid!.expiresAt - jwt.svid!.issuedAt)).toBeLessThanOrEqual(120);
    expect((await rejection(svidClient.newJWTSVID({ entryId: e1.id, audience: [] }))).code).toBe(
      Code.InvalidArgument,
    );
    expect(
      (await rejection(svidClient.newJWTSVID({ entryId: foreign.id, audience: ['x'] }))).code,
    ).toBe(Code.NotFound);
    expect(h.metrics.issued.jwt).toBeGreaterThanOrEqual(1);
  });

  it('syncs entries by revision when the agent has more than a page', async () => {
    const { svid, key } = await joinTokenAgent(h);
    const created = [];
    for (let i = 0; i < 3; i++) {
      created.push(
        await h.ds.createEntry({
          spiffeId: `spiffe://example.org/sync/${i}`,
          parentId: svid.id,
          selectors: [{ type: 'unix', value: `uid:${i}` }],
        }),
      );
    }
    await h.entries.poll();
    const client = createClient(entryv1.Entry, h.as(svid, key));
    const queue: entryv1.SyncAuthorizedEntriesRequest[] = [];
    let wake: (() => void) | undefined;
    let closed = false;
    const requests = {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          const next = queue.shift();
          if (next !== undefined) {
            yield next;
            continue;
          }
          if (closed) return;
          await new Promise<void>((r) => {
            wake = r;
          });
        }
      },
    };
    const send = (r: entryv1.SyncAuthorizedEntriesRequest) => {
      queue.push(r);
      wake?.();
    };
    send(create(entryv1.SyncAuthorizedEntriesRequestSchema, {}));
    const it = client.syncAuthorizedEntries(requests)[Symbol.asyncIterator]();
    const revisions: entryv1.EntryRevision[] = [];
    for (;;) {
      const r = (await it.next()).value as entryv1.SyncAuthorizedEntriesResponse;
      expect(r.entries).toEqual([]);
      revisions.push(...r.entryRevisions);
      if (!r.more) break;
    }
    expect(revisions.map((r) => r.id).sort()).toEqual(created.map((e) => e.id).sort());
    expect(revisions.every((r) => r.revisionNumber === 0n)).toBe(true);
    // ask for all three in full (and one unknown ID): two pages
    send(
      create(entryv1.SyncAuthorizedEntriesRequestSchema, {
        ids: [...created.map((e) => e.id), 'unknown'],
      }),
    );
    const full: types.Entry[] = [];
    for (;;) {
      const r = (await it.next()).value as entryv1.SyncAuthorizedEntriesResponse;
      full.push(...r.entries);
      if (!r.more) break;
    }
    expect(full.map((e) => e.id).sort()).toEqual(created.map((e) => e.id).sort());
    closed = true;
    wake?.();
    expect((await it.next()).done).toBe(true);

    // IDs on the first request are refused
    const bad = client.syncAuthorizedEntries(
      (async function* () {
        yield create(entryv1.SyncAuthorizedEntriesRequestSchema, { ids: ['x'] });
      })(),
    );
    const err = await rejection(
      (async () => {
        for await (const _ of bad) {
          // drain
        }
      })(),
    );
    expect(err.code).toBe(Code.InvalidArgument);
  });

  it('renews the agent SVID and hands over to the new serial on first use', async () => {
    const { svid, key } = await joinTokenAgent(h);
    const key2 = newKey();
    const renewed = await renewAgent(h.as(svid, key), { csr: createCsr(key2) });
    expect(renewed.id).toBe(svid.id);
    expect(verify(renewed.certChain).id.toString()).toBe(svid.id);
    const newSerial = serialOf(renewed.certChain[0]!);
    let node = await h.ds.getAttestedNode(svid.id);
    expect(node?.newCertSerialNumber).toBe(newSerial);
    expect(node?.certSerialNumber).toBe(serialOf(svid.certChain[0]!));

    // the old SVID still works until the new one is used
    const bundleWithOld = await createClient(bundlev1.Bundle, h.as(svid, key))
      .getFederatedBundle({
        trustDomain: 'unknown.org',
      })
      .catch((e: ConnectError) => e);
    expect((bundleWithOld as ConnectError).code).toBe(Code.NotFound);

    const viaNew = createClient(entryv1.Entry, h.as(renewed, key2));
    await viaNew.getAuthorizedEntries({});
    node = await h.ds.getAttestedNode(svid.id);
    expect(node).toMatchObject({ certSerialNumber: newSerial, newCertSerialNumber: '' });

    const stale = await rejection(
      createClient(entryv1.Entry, h.as(svid, key)).getAuthorizedEntries({}),
    );
    expect(stale.code).toBe(Code.PermissionDenied);
    expect(reasonOf(stale)).toBe(types.PermissionDeniedDetails_Reason.AGENT_NOT_ACTIVE);
  });

  it('requires an agent SVID for everything but AttestAgent and GetBundle', async () => {
    const anon = h.anonymous();
    const noCert = await rejection(createClient(entryv1.Entry, anon).getAuthorizedEntries({}));
    expect(noCert.code).toBe(Code.PermissionDenied);
    expect(noCert.rawMessage).toBe('caller does not have an X509-SVID');
    const renew = await rejection(renewAgent(anon, { csr: createCsr(newKey()) }));
    expect(renew.code).toBe(Code.PermissionDenied);

    const bundle = await createClient(bundlev1.Bundle, anon).getBundle({});
    expect(bundle.trustDomain).toBe(TD);
    expect(bundle.x509Authorities.map((a) => Buffer.from(a.asn1).toString('hex'))).toEqual(
      h.bundle().map((d) => Buffer.from(d).toString('hex')),
    );
    expect(bundle.jwtAuthorities.length).toBeGreaterThan(0);
    const masked = await createClient(bundlev1.Bundle, anon).getBundle({
      outputMask: { jwtAuthorities: true },
    });
    expect(masked.x509Authorities).toEqual([]);

    const { svid, key } = await joinTokenAgent(h);
    const fed = createClient(bundlev1.Bundle, h.as(svid, key));
    expect((await rejection(fed.getFederatedBundle({ trustDomain: TD }))).code).toBe(
      Code.InvalidArgument,
    );
    expect((await rejection(fed.getFederatedBundle({ trustDomain: 'not a td' }))).code).toBe(
      Code.InvalidArgument,
    );
  });

  it('refuses banned and evicted agents', async () => {
    const a = await joinTokenAgent(h);
    const client = createClient(entryv1.Entry, h.as(a.svid, a.key));
    await client.getAuthorizedEntries({});
    await h.ds.updateAttestedNode({ spiffeId: a.svid.id, set: { banned: true } });
    const banned = await rejection(client.getAuthorizedEntries({}));
    expect(banned.code).toBe(Code.PermissionDenied);
    expect(reasonOf(banned)).toBe(types.PermissionDeniedDetails_Reason.AGENT_BANNED);

    const b = await joinTokenAgent(h);
    const clientB = createClient(svidv1.SVID, h.as(b.svid, b.key));
    await h.ds.deleteAttestedNode(b.svid.id);
    const evicted = await rejection(clientB.newJWTSVID({ entryId: 'x', audience: ['a'] }));
    expect(evicted.code).toBe(Code.PermissionDenied);
    expect(reasonOf(evicted)).toBe(types.PermissionDeniedDetails_Reason.AGENT_NOT_ATTESTED);
  });

  it('times out an agent that does not answer a challenge', async () => {
    const h2 = await startHarness({
      server: { challengeTimeoutMs: 200 },
      attestors: () => [
        {
          type: 'slow',
          attest: async (_payload, challenge) => {
            await challenge(Uint8Array.of(1));
            return {
              agentId: 'spiffe://example.org/spire/agent/slow/1',
              selectors: [],
              canReattest: true,
            };
          },
        },
      ],
    });
    try {
      const silent: AgentNodeAttestor = {
        type: 'slow',
        payload: async () => Uint8Array.of(1),
        respond: () => new Promise(() => {}),
      };
      const err = await rejection(
        attestAgent(h2.anonymous(), silent, { csr: createCsr(newKey()), timeoutMs: 5000 }),
      );
      expect(err.code).toBe(Code.DeadlineExceeded);
    } finally {
      await h2.close();
    }
  });
});

describe('agent API: rate limits', () => {
  it('limits attestations per IP and CSRs per agent with ResourceExhausted', async () => {
    const h2 = await startHarness({
      server: {
        rateLimit: { attestationPerSecond: 1, signingPerSecond: 2, maxWaitMs: 0 },
      },
    });
    try {
      const a = await joinTokenAgent(h2);
      await h2.ds.createJoinToken({
        token: 'second',
        expiresAt: Math.floor(Date.now() / 1000) + 600,
      });
      const err = await rejection(
        attestAgent(h2.anonymous(), createJoinTokenAttestorClient('second'), {
          csr: createCsr(newKey()),
        }),
      );
      expect(err.code).toBe(Code.ResourceExhausted);
      const svid = createClient(svidv1.SVID, h2.as(a.svid, a.key));
      const params = [1, 2, 3].map(() => ({ entryId: 'x', csr: createCsr(newKey()) }));
      const burst = await rejection(svid.batchNewX509SVID({ params }));
      expect(burst.code).toBe(Code.ResourceExhausted);
      expect(burst.rawMessage).toMatch(/exceeds burst size/);
      const ok = await svid.batchNewX509SVID({ params: params.slice(0, 2) });
      expect(ok.results.map((r) => r.status?.code)).toEqual([Code.NotFound, Code.NotFound]);
      expect((await rejection(svid.batchNewX509SVID({ params: params.slice(0, 1) }))).code).toBe(
        Code.ResourceExhausted,
      );
    } finally {
      await h2.close();
    }
  });
});
