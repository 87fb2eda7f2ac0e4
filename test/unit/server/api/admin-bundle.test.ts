/**
 * The Bundle admin service, called directly with a real SQLite datastore and a real CA: the
 * own bundle (get, append), federated bundles (batch create/update/set/delete with the three
 * delete modes, get, list with pagination), and validation of every bundle field.
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundlev1, type types } from '../../../../src/protocol/index.js';
import { createBundleAdminService } from '../../../../src/server/api/admin/bundle.js';
import { generateKey, makePki } from '../../spiffe/x509-support.js';
import {
  type AdminFixture,
  handlerContext,
  type Init,
  rejection,
  startAdminFixture,
  TD,
} from './admin-support.js';

let fx: AdminFixture;
let svc: ReturnType<typeof createBundleAdminService>;
const ctx = (m: string) => handlerContext(bundlev1.Bundle, m);
let rootA: Uint8Array;
let rootB: Uint8Array;
const jwtKey = generateKey('ec-p256').spki;

beforeAll(async () => {
  fx = await startAdminFixture();
  svc = createBundleAdminService(fx.context);
  rootA = (await makePki('fed-a.org')).rootDer;
  rootB = (await makePki('fed-b.org')).rootDer;
});
afterAll(() => fx.close());

type BundleInit = Init<typeof types.BundleSchema>;
const fed = (trustDomain: string, init: Partial<BundleInit> = {}): BundleInit => ({
  trustDomain,
  x509Authorities: [{ asn1: rootA }],
  jwtAuthorities: [{ keyId: 'k1', publicKey: jwtKey, expiresAt: 2_000_000_000n }],
  refreshHint: 300n,
  ...init,
});

async function batchCreate(bundle: BundleInit[]) {
  return (
    (await svc.batchCreateFederatedBundle(
      create(bundlev1.BatchCreateFederatedBundleRequestSchema, { bundle }),
      ctx('batchCreateFederatedBundle'),
    )) as bundlev1.BatchCreateFederatedBundleResponse
  ).results;
}

describe('own bundle', () => {
  it('GetBundle returns the CA authorities the datastore holds for our trust domain', async () => {
    const b = (await svc.getBundle(
      create(bundlev1.GetBundleRequestSchema),
      ctx('getBundle'),
    )) as types.Bundle;
    expect(b.trustDomain).toBe(TD);
    const ca = fx.manager.bundle;
    expect(b.x509Authorities.map((a) => Buffer.from(a.asn1).toString('hex'))).toEqual(
      ca.x509Authorities.map((a) => Buffer.from(a.certificate).toString('hex')),
    );
    expect(b.jwtAuthorities.map((k) => k.keyId)).toEqual(ca.jwtAuthorities.map((k) => k.keyId));
    const masked = (await svc.getBundle(
      create(bundlev1.GetBundleRequestSchema, { outputMask: { jwtAuthorities: true } }),
      ctx('getBundle'),
    )) as types.Bundle;
    expect(masked.x509Authorities).toEqual([]);
    expect(masked.jwtAuthorities).toHaveLength(ca.jwtAuthorities.length);
  });

  it('AppendBundle adds authorities once and bumps the sequence number', async () => {
    const before = (await fx.ds.getBundle(TD))!;
    const req = create(bundlev1.AppendBundleRequestSchema, {
      x509Authorities: [{ asn1: rootB }],
      jwtAuthorities: [{ keyId: 'extra', publicKey: jwtKey }],
    });
    const after = (await svc.appendBundle(req, ctx('appendBundle'))) as types.Bundle;
    expect(after.x509Authorities).toHaveLength(before.x509Authorities.length + 1);
    expect(after.jwtAuthorities.map((k) => k.keyId)).toContain('extra');
    expect(after.sequenceNumber).toBe(BigInt(before.sequenceNumber + 1));
    const again = (await svc.appendBundle(req, ctx('appendBundle'))) as types.Bundle;
    expect(again.x509Authorities).toHaveLength(after.x509Authorities.length);
    expect(fx.logs.filter((l) => l.includes('"method":"AppendBundle"'))).toHaveLength(2);
  });

  const badAppend: Array<
    [string, MessageInitShape<typeof bundlev1.AppendBundleRequestSchema>, string]
  > = [
    ['nothing', {}, 'no authorities to append'],
    [
      'an empty certificate',
      { x509Authorities: [{ asn1: new Uint8Array() }] },
      'invalid x509_authorities[0]: missing certificate',
    ],
    [
      'garbage for a certificate',
      { x509Authorities: [{ asn1: new Uint8Array([0x30, 0x03, 1, 2, 3]) }] },
      'invalid x509_authorities[0]: ',
    ],
    [
      'a JWT key without key ID',
      { jwtAuthorities: [{ publicKey: jwtKey }] },
      'invalid jwt_authorities[0].key_id: missing key ID',
    ],
    [
      'a JWT key that is not SPKI',
      { jwtAuthorities: [{ keyId: 'x', publicKey: new Uint8Array([1, 2, 3]) }] },
      'invalid jwt_authorities[0].public_key: not a DER SubjectPublicKeyInfo',
    ],
    [
      'a negative JWT expiry',
      { jwtAuthorities: [{ keyId: 'x', publicKey: jwtKey, expiresAt: -1n }] },
      'invalid jwt_authorities[0].expires_at: must not be negative',
    ],
  ];
  it.each(badAppend)('AppendBundle refuses %s', async (_n, init, message) => {
    const err = await rejection(() =>
      svc.appendBundle(create(bundlev1.AppendBundleRequestSchema, init), ctx('appendBundle')),
    );
    expect(err.code).toBe('ERR_API_INVALID_ARGUMENT');
    expect(err.message).toContain(message);
  });

  it('PublishJWTAuthority validates, then answers Unimplemented (no SPIRE upstream)', async () => {
    expect(
      await rejection(() =>
        svc.publishJWTAuthority(
          create(bundlev1.PublishJWTAuthorityRequestSchema),
          ctx('publishJWTAuthority'),
        ),
      ),
    ).toMatchObject({ code: 'ERR_API_INVALID_ARGUMENT', message: 'missing JWT authority' });
    expect(
      (
        await rejection(() =>
          svc.publishJWTAuthority(
            create(bundlev1.PublishJWTAuthorityRequestSchema, {
              jwtAuthority: { keyId: 'k', publicKey: jwtKey },
            }),
            ctx('publishJWTAuthority'),
          ),
        )
      ).code,
    ).toBe('ERR_API_UNIMPLEMENTED');
  });
});

describe('federated bundles', () => {
  it('creates, gets, counts and lists them (never our own)', async () => {
    const results = await batchCreate([
      fed('fed-a.org'),
      fed('spiffe://fed-b.org', { x509Authorities: [{ asn1: rootB }] }),
    ]);
    expect(results.map((r) => r.status?.code)).toEqual([0, 0]);
    expect(results[1]?.bundle?.trustDomain).toBe('fed-b.org');
    const got = (await svc.getFederatedBundle(
      create(bundlev1.GetFederatedBundleRequestSchema, { trustDomain: 'fed-a.org' }),
      ctx('getFederatedBundle'),
    )) as types.Bundle;
    expect(got).toMatchObject({ trustDomain: 'fed-a.org', refreshHint: 300n });
    expect(Buffer.from(got.x509Authorities[0]!.asn1).equals(Buffer.from(rootA))).toBe(true);
    expect(got.jwtAuthorities[0]).toMatchObject({ keyId: 'k1', expiresAt: 2_000_000_000n });
    const count = await svc.countBundles(
      create(bundlev1.CountBundlesRequestSchema),
      ctx('countBundles'),
    );
    expect(count).toEqual({ count: 3 });
    const all = (await svc.listFederatedBundles(
      create(bundlev1.ListFederatedBundlesRequestSchema),
      ctx('listFederatedBundles'),
    )) as bundlev1.ListFederatedBundlesResponse;
    expect(all.bundles.map((b) => b.trustDomain)).toEqual(['fed-a.org', 'fed-b.org']);
    const seen: string[] = [];
    let token = '';
    for (let i = 0; i < 5; i++) {
      const page = (await svc.listFederatedBundles(
        create(bundlev1.ListFederatedBundlesRequestSchema, { pageSize: 1, pageToken: token }),
        ctx('listFederatedBundles'),
      )) as bundlev1.ListFederatedBundlesResponse;
      seen.push(...page.bundles.map((b) => b.trustDomain));
      token = page.nextPageToken;
      if (token === '') break;
    }
    expect(seen).toEqual(['fed-a.org', 'fed-b.org']);
  });

  it('reports per item: own trust domain, bad trust domain, duplicates, bad authorities', async () => {
    const results = await batchCreate([
      fed(TD),
      fed('Not Valid'),
      fed('fed-a.org'),
      fed('fed-c.org', { x509Authorities: [{ asn1: new Uint8Array([1]) }] }),
      fed('fed-d.org', { witAuthorities: [{ keyId: 'w' }] }),
      fed('fed-e.org', { refreshHint: -5n }),
    ]);
    expect(results.map((r) => [r.status?.code, r.status?.message])).toEqual([
      [
        Code.InvalidArgument,
        "creating a federated bundle for the server's own trust domain is not allowed",
      ],
      [Code.InvalidArgument, expect.stringContaining('invalid bundle.trust_domain: ')],
      [Code.AlreadyExists, 'bundle already exists'],
      [Code.InvalidArgument, expect.stringContaining('invalid bundle.x509_authorities[0]: ')],
      [Code.InvalidArgument, 'invalid bundle.wit_authorities: WIT authorities are not supported'],
      [Code.InvalidArgument, 'invalid bundle.refresh_hint: must not be negative'],
    ]);
    expect(await fx.ds.getBundle('fed-c.org')).toBeUndefined();
  });

  it('GetFederatedBundle refuses our own and malformed trust domains, and reports unknown ones', async () => {
    const get = (trustDomain: string) =>
      rejection(() =>
        svc.getFederatedBundle(
          create(bundlev1.GetFederatedBundleRequestSchema, { trustDomain }),
          ctx('getFederatedBundle'),
        ),
      );
    expect(await get(TD)).toMatchObject({
      code: 'ERR_API_INVALID_ARGUMENT',
      message: "getting a federated bundle for the server's own trust domain is not allowed",
    });
    expect((await get('')).message).toBe('invalid trust_domain: trust domain is missing');
    expect(await get('unknown.org')).toMatchObject({
      code: 'ERR_API_NOT_FOUND',
      message: 'bundle not found',
    });
  });

  it('BatchUpdateFederatedBundle changes only masked fields; unknown bundles are NotFound', async () => {
    const res = (await svc.batchUpdateFederatedBundle(
      create(bundlev1.BatchUpdateFederatedBundleRequestSchema, {
        bundle: [
          { trustDomain: 'fed-a.org', refreshHint: 60n },
          { trustDomain: 'nobody.org', refreshHint: 60n },
          { trustDomain: TD, refreshHint: 60n },
        ],
        inputMask: { refreshHint: true },
      }),
      ctx('batchUpdateFederatedBundle'),
    )) as bundlev1.BatchUpdateFederatedBundleResponse;
    expect(res.results.map((r) => [r.status?.code, r.status?.message])).toEqual([
      [0, 'OK'],
      [Code.NotFound, 'bundle not found'],
      [
        Code.InvalidArgument,
        "updating a federated bundle for the server's own trust domain is not allowed",
      ],
    ]);
    const b = (await fx.ds.getBundle('fed-a.org'))!;
    expect(b.refreshHint).toBe(60);
    expect(b.x509Authorities).toHaveLength(1);
  });

  it('BatchSetFederatedBundle creates or replaces', async () => {
    const res = (await svc.batchSetFederatedBundle(
      create(bundlev1.BatchSetFederatedBundleRequestSchema, {
        bundle: [
          fed('fed-b.org', { x509Authorities: [{ asn1: rootA }], jwtAuthorities: [] }),
          fed('fed-new.org'),
        ],
      }),
      ctx('batchSetFederatedBundle'),
    )) as bundlev1.BatchSetFederatedBundleResponse;
    expect(res.results.map((r) => r.status?.code)).toEqual([0, 0]);
    const b = (await fx.ds.getBundle('fed-b.org'))!;
    expect(Buffer.from(b.x509Authorities[0]!.certificateDer).equals(Buffer.from(rootA))).toBe(true);
    expect(b.jwtAuthorities).toEqual([]);
    expect(await fx.ds.getBundle('fed-new.org')).toBeDefined();
  });

  it('BatchDeleteFederatedBundle honours RESTRICT, DISSOCIATE and DELETE', async () => {
    const Mode = bundlev1.BatchDeleteFederatedBundleRequest_Mode;
    for (const td of ['del-r.org', 'del-s.org', 'del-d.org']) {
      await fx.ds.createBundle({ trustDomain: td, x509Authorities: [{ certificateDer: rootA }] });
    }
    const mk = (path: string, td: string) =>
      fx.ds.createEntry({
        spiffeId: `spiffe://${TD}${path}`,
        parentId: `spiffe://${TD}/spire/server`,
        selectors: [{ type: 'unix', value: path }],
        federatesWith: [td],
      });
    const r = await mk('/fed/r', 'del-r.org');
    const s = await mk('/fed/s', 'del-s.org');
    const d = await mk('/fed/d', 'del-d.org');
    const del = async (trustDomains: string[], mode: number) =>
      (
        (await svc.batchDeleteFederatedBundle(
          create(bundlev1.BatchDeleteFederatedBundleRequestSchema, { trustDomains, mode }),
          ctx('batchDeleteFederatedBundle'),
        )) as bundlev1.BatchDeleteFederatedBundleResponse
      ).results.map((x) => [x.trustDomain, x.status?.code, x.status?.message]);

    const restricted = await del(['del-r.org'], Mode.RESTRICT);
    expect(restricted[0]?.[1]).toBe(Code.FailedPrecondition);
    expect(await fx.ds.getBundle('del-r.org')).toBeDefined();

    expect(await del(['del-s.org'], Mode.DISSOCIATE)).toEqual([['del-s.org', 0, 'OK']]);
    expect((await fx.ds.getEntry(s.id))?.federatesWith).toEqual([]);

    expect(await del(['del-d.org', 'nobody.org', TD, '?'], Mode.DELETE)).toEqual([
      ['del-d.org', 0, 'OK'],
      ['nobody.org', Code.NotFound, 'bundle not found'],
      [TD, Code.InvalidArgument, 'removing the bundle for the server trust domain is not allowed'],
      ['?', Code.InvalidArgument, expect.stringContaining('invalid trust_domains: ')],
    ]);
    expect(await fx.ds.getEntry(d.id)).toBeUndefined();
    expect(await fx.ds.getEntry(r.id)).toBeDefined();

    expect(
      await rejection(() =>
        svc.batchDeleteFederatedBundle(
          create(bundlev1.BatchDeleteFederatedBundleRequestSchema, {
            trustDomains: ['del-r.org'],
            mode: 9 as bundlev1.BatchDeleteFederatedBundleRequest_Mode,
          }),
          ctx('batchDeleteFederatedBundle'),
        ),
      ),
    ).toMatchObject({
      code: 'ERR_API_INVALID_ARGUMENT',
      message: 'invalid mode: unknown deletion mode 9',
    });
  });
});
