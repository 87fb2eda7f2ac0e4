/**
 * The SVID admin service (MintX509SVID, MintJWTSVID), called directly with a real CA: minted
 * SVIDs verify against the trust domain's bundle as the datastore holds it, the ID comes
 * from the CSR's URI SAN, DNS SANs are carried over, TTLs are honoured, metrics count the
 * mints, and every bad input is refused naming the field.
 */
import { createPublicKey } from 'node:crypto';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { svidv1 } from '../../../../src/protocol/index.js';
import { createSvidAdminService } from '../../../../src/server/api/admin/svid.js';
import { JwtBundle, jwtAuthorityFromKey } from '../../../../src/spiffe/jwt-bundle.js';
import { validateJwtSvid } from '../../../../src/spiffe/jwt-svid.js';
import { X509Bundle } from '../../../../src/spiffe/x509-bundle.js';
import { parseCertificate } from '../../../../src/spiffe/x509-cert.js';
import { verifyX509Svid } from '../../../../src/spiffe/x509-verify.js';
import {
  type AdminFixture,
  handlerContext,
  makeCsr,
  rejection,
  startAdminFixture,
  TD,
} from './admin-support.js';

let fx: AdminFixture;
let svc: ReturnType<typeof createSvidAdminService>;
const ctx = (m: string) => handlerContext(svidv1.SVID, m);

beforeAll(async () => {
  fx = await startAdminFixture();
  svc = createSvidAdminService(fx.context);
});
afterAll(() => fx.close());

async function x509Bundle(): Promise<X509Bundle> {
  const b = (await fx.ds.getBundle(TD))!;
  return new X509Bundle(
    TD,
    b.x509Authorities.map((a) => a.certificateDer),
  );
}

async function mintX509(csr: Uint8Array, ttl = 0) {
  return (await svc.mintX509SVID(
    create(svidv1.MintX509SVIDRequestSchema, { csr, ttl }),
    ctx('mintX509SVID'),
  )) as svidv1.MintX509SVIDResponse;
}

describe('MintX509SVID', () => {
  it('signs the CSR key for the URI SAN; the SVID verifies against the stored bundle', async () => {
    fx.metrics.svids.length = 0;
    const csr = await makeCsr({
      uris: ['spiffe://example.org/workload/db'],
      dnsNames: ['db.example.org', '*.db.svc'],
    });
    const res = await mintX509(csr, 600);
    const svid = res.svid!;
    expect(svid.id).toMatchObject({ trustDomain: TD, path: '/workload/db' });
    const verified = verifyX509Svid(svid.certChain, await x509Bundle());
    expect(verified.id.toString()).toBe('spiffe://example.org/workload/db');
    const leaf = parseCertificate(svid.certChain[0]!);
    expect(leaf.extensions.subjectAltName?.dnsNames).toEqual(['db.example.org', '*.db.svc']);
    const life = leaf.notAfter.getTime() / 1000 - Date.now() / 1000;
    expect(life).toBeGreaterThan(590);
    expect(life).toBeLessThanOrEqual(600);
    expect(svid.expiresAt).toBe(BigInt(leaf.notAfter.getTime() / 1000));
    expect(fx.metrics.svids).toEqual([{ type: 'x509', caller: 'admin', count: 1 }]);
    const line = fx.logs.find((l) => l.includes('"method":"MintX509SVID"'));
    expect(line).toContain('"spiffe_id":"spiffe://example.org/workload/db"');
    expect(line).toContain('"caller_uid":0');
  });

  it('uses the server default TTL for ttl 0', async () => {
    const res = await mintX509(await makeCsr({ uris: ['spiffe://example.org/default-ttl'] }));
    const life = Number(res.svid!.expiresAt) - Date.now() / 1000;
    expect(life).toBeGreaterThan(3590);
    expect(life).toBeLessThanOrEqual(3600);
  });

  it('refuses a CSR whose signature does not verify', async () => {
    const csr = await makeCsr({ uris: ['spiffe://example.org/w'] });
    csr[csr.length - 5] = (csr[csr.length - 5] ?? 0) ^ 0xff;
    const err = await rejection(() => mintX509(csr));
    expect(err.code).toBe('ERR_API_INVALID_ARGUMENT');
    expect(err.message).toMatch(/^invalid csr: /);
  });

  const bad: Array<[string, () => Promise<Uint8Array>, number, string]> = [
    ['a missing CSR', async () => new Uint8Array(), 0, 'invalid csr: missing CSR'],
    [
      'garbage',
      async () => new Uint8Array([0x30, 0x02, 0x05, 0x00]),
      0,
      'invalid csr: invalid certification request',
    ],
    [
      'no URI SAN',
      () => makeCsr({ dnsNames: ['a.org'] }),
      0,
      'invalid csr: CSR URI SAN is required',
    ],
    [
      'two URI SANs',
      () => makeCsr({ uris: ['spiffe://example.org/a', 'spiffe://example.org/b'] }),
      0,
      'invalid csr: only one URI SAN is expected',
    ],
    [
      'a non-SPIFFE URI',
      () => makeCsr({ uris: ['https://example.org/a'] }),
      0,
      'invalid csr: CSR URI SAN is invalid: scheme is missing or invalid',
    ],
    [
      'an ID of another trust domain',
      () => makeCsr({ uris: ['spiffe://evil.org/a'] }),
      0,
      'invalid csr: CSR URI SAN is invalid: "spiffe://evil.org/a" is not a member of trust domain "example.org"',
    ],
    [
      'an agent ID',
      () => makeCsr({ uris: ['spiffe://example.org/spire/agent/x'] }),
      0,
      'path is in the reserved namespace',
    ],
    [
      'an invalid DNS SAN',
      () => makeCsr({ uris: ['spiffe://example.org/a'], dnsNames: ['a..org'] }),
      0,
      'invalid csr: CSR DNS name "a..org" is invalid',
    ],
    [
      'overlapping wildcard DNS SANs',
      () => makeCsr({ uris: ['spiffe://example.org/a'], dnsNames: ['*.x.org', 'a.x.org'] }),
      0,
      'overlaps with an existing wildcard name',
    ],
    [
      'a negative TTL',
      () => makeCsr({ uris: ['spiffe://example.org/a'] }),
      -1,
      'invalid ttl: must not be negative',
    ],
  ];
  it.each(bad)('refuses %s', async (_n, csr, ttl, message) => {
    fx.metrics.svids.length = 0;
    const err = await rejection(async () => mintX509(await csr(), ttl));
    expect(err.code).toBe('ERR_API_INVALID_ARGUMENT');
    expect(err.message).toContain(message);
    expect(fx.metrics.svids).toEqual([]);
  });
});

describe('MintJWTSVID', () => {
  async function mintJwt(init: MessageInitShape<typeof svidv1.MintJWTSVIDRequestSchema>) {
    return (await svc.mintJWTSVID(
      create(svidv1.MintJWTSVIDRequestSchema, init),
      ctx('mintJWTSVID'),
    )) as svidv1.MintJWTSVIDResponse;
  }

  it('mints a token that validates against the stored JWT authorities', async () => {
    fx.metrics.svids.length = 0;
    const res = await mintJwt({
      id: { trustDomain: TD, path: '/workload/api' },
      audience: ['aud-1', 'aud-2'],
      ttl: 120,
    });
    const stored = (await fx.ds.getBundle(TD))!;
    const bundle = new JwtBundle(
      TD,
      stored.jwtAuthorities.map((k) =>
        jwtAuthorityFromKey(
          k.keyId,
          createPublicKey({ key: Buffer.from(k.publicKeyDer), format: 'der', type: 'spki' }),
        ),
      ),
    );
    const svid = res.svid!;
    const jwt = await validateJwtSvid(svid.token, bundle, ['aud-2']);
    expect(jwt.id.toString()).toBe('spiffe://example.org/workload/api');
    expect(svid.id).toMatchObject({ trustDomain: TD, path: '/workload/api' });
    expect(svid.expiresAt).toBe(BigInt(jwt.expiresAt.getTime() / 1000));
    expect(svid.issuedAt).toBe(BigInt(jwt.issuedAt!.getTime() / 1000));
    expect(Number(svid.expiresAt - svid.issuedAt)).toBeLessThanOrEqual(120);
    expect(Number(svid.expiresAt - svid.issuedAt)).toBeGreaterThanOrEqual(119);
    expect(fx.metrics.svids).toEqual([{ type: 'jwt', caller: 'admin', count: 1 }]);
    for (const l of fx.logs) expect(l).not.toContain(svid.token);
  });

  const bad: Array<[string, MessageInitShape<typeof svidv1.MintJWTSVIDRequestSchema>, string]> = [
    ['a missing id', { audience: ['a'] }, 'invalid id: request must specify SPIFFE ID'],
    [
      'a reserved id',
      { id: { trustDomain: TD, path: '/spire/server' }, audience: ['a'] },
      'path is in the reserved namespace',
    ],
    ['an id without path', { id: { trustDomain: TD, path: '' }, audience: ['a'] }, 'path is empty'],
    [
      'no audience',
      { id: { trustDomain: TD, path: '/w' } },
      'invalid audience: at least one audience is required',
    ],
    [
      'an empty audience',
      { id: { trustDomain: TD, path: '/w' }, audience: ['a', ''] },
      'invalid audience[1]: audience cannot be empty',
    ],
    [
      'a negative ttl',
      { id: { trustDomain: TD, path: '/w' }, audience: ['a'], ttl: -3 },
      'invalid ttl: must not be negative',
    ],
  ];
  it.each(bad)('refuses %s', async (_n, init, message) => {
    const err = await rejection(() => mintJwt(init));
    expect(err.code).toBe('ERR_API_INVALID_ARGUMENT');
    expect(err.message).toContain(message);
  });

  it('answers MintWITSVID with Unimplemented', async () => {
    const err = await rejection(() =>
      svc.mintWITSVID(create(svidv1.MintWITSVIDRequestSchema), ctx('mintWITSVID')),
    );
    expect(err.code).toBe('ERR_API_UNIMPLEMENTED');
  });
});
