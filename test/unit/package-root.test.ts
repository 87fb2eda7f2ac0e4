import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Signer } from '../../src/index.js';
import * as api from '../../src/index.js';

describe('package root', () => {
  it('exports the names the docs and outside checks use', () => {
    for (const name of [
      'parseSpiffeId',
      'parseTrustDomain',
      'parseX509Svid',
      'verifyX509Svid',
      'parseX509Bundle',
      'parseJwtBundle',
      'parseSpiffeBundle',
      'marshalSpiffeBundle',
      'validateJwtSvid',
      'mintJwtSvid',
      'mintX509CaCertificate',
      'X509SvidMinter',
      'BundleSet',
      'SpireEdgeError',
    ]) {
      expect(typeof (api as Record<string, unknown>)[name], name).toBe('function');
    }
  });

  it('mints, verifies and validates end to end through the root API only', async () => {
    const ca = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const signer: Signer = {
      keyType: 'ec-p256',
      publicKey: ca.publicKey,
      publicKeySpki: new Uint8Array(ca.publicKey.export({ type: 'spki', format: 'der' })),
      sign: async (d) =>
        new Uint8Array(sign('sha256', d, { key: ca.privateKey, dsaEncoding: 'ieee-p1363' })),
    };
    const now = new Date();
    const rootDer = await api.mintX509CaCertificate({
      trustDomain: 'example.org',
      subject: { organization: ['Example'] },
      publicKey: ca.publicKey,
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + 3_600_000),
      signer,
    });
    const leafKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const leaf = await new api.X509SvidMinter({ issuerCertDer: rootDer, signer }).mint({
      spiffeId: 'spiffe://example.org/web',
      publicKey: leafKey.publicKey,
      notBefore: now,
      notAfter: new Date(now.getTime() + 600_000),
    });
    const bundle = new api.X509Bundle('example.org', [rootDer]);
    expect(api.verifyX509Svid([leaf], bundle).id.toString()).toBe('spiffe://example.org/web');
    expect(() => api.verifyX509Svid([leaf], new api.X509Bundle('example.org', []))).toThrow(
      expect.objectContaining({ code: 'ERR_SVID_VERIFICATION_FAILED' }),
    );

    const jwtBundle = new api.JwtBundle('example.org');
    jwtBundle.addJwtAuthority('k1', ca.publicKey);
    const token = await api.mintJwtSvid({
      signer,
      keyId: 'k1',
      spiffeId: 'spiffe://example.org/web',
      audience: ['db'],
      expiresAt: new Date(now.getTime() + 300_000),
    });
    const svid = await api.validateJwtSvid(token, new api.BundleSet([jwtBundle]), ['db']);
    expect(svid.id.toString()).toBe('spiffe://example.org/web');
    await expect(api.validateJwtSvid(token, jwtBundle, ['other'])).rejects.toMatchObject({
      code: 'ERR_JWT_SVID_INVALID',
    });
  });
});
