import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BundleSet } from '../../../src/spiffe/bundle-set.js';
import { parseTrustDomain } from '../../../src/spiffe/id.js';
import { JwtBundle } from '../../../src/spiffe/jwt-bundle.js';
import { SpiffeBundle } from '../../../src/spiffe/spiffe-bundle.js';
import { X509Bundle } from '../../../src/spiffe/x509-bundle.js';

const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
const A = parseTrustDomain('a.example');
const B = parseTrustDomain('b.example');
const C = parseTrustDomain('c.example');
const FAKE_DER = Uint8Array.of(0x30, 0x00);

describe('BundleSet', () => {
  it('holds one bundle per trust domain and answers as a source for each', () => {
    const jwt = new JwtBundle(A);
    jwt.addJwtAuthority('k', key);
    const x = new X509Bundle(B, [FAKE_DER]);
    const spiffe = SpiffeBundle.fromJwtBundle(new JwtBundle(C, jwt.jwtAuthorities.values()));
    const set = new BundleSet([x, spiffe, jwt]);

    expect(set.size).toBe(3);
    expect(set.trustDomains().map((t) => t.name)).toEqual(['a.example', 'b.example', 'c.example']);
    expect(set.bundles()).toEqual([jwt, x, spiffe]);
    expect(set.get('a.example')).toBe(jwt);
    expect(set.get(B)).toBe(x);
    expect(set.has('spiffe://c.example')).toBe(true);

    expect(set.getJwtAuthorities(A)!.get('k')).toBe(jwt.findJwtAuthority('k'));
    expect(set.getJwtAuthorities(C)!.has('k')).toBe(true);
    // An X.509 bundle has no JWT authorities and a JWT bundle no X.509 authorities.
    expect(set.getJwtAuthorities(B)).toBeUndefined();
    expect(set.getX509Authorities(A)).toBeUndefined();
    expect(set.getX509Authorities(B)).toEqual([FAKE_DER]);
    expect(set.getX509Authorities(C)).toEqual([]);
    expect(set.getJwtAuthorities(parseTrustDomain('unknown.example'))).toBeUndefined();
  });

  it('replaces the bundle of a trust domain on set and forgets it on delete', () => {
    const set = new BundleSet();
    const first = new JwtBundle(A);
    const second = new JwtBundle(A);
    second.addJwtAuthority('new', key);
    set.set(first);
    set.set(second);
    expect(set.size).toBe(1);
    expect(set.getJwtAuthorities(A)!.has('new')).toBe(true);
    expect(set.delete(A)).toBe(true);
    expect(set.delete(A)).toBe(false);
    expect(set.get(A)).toBeUndefined();
  });

  it('sees later changes to a stored bundle', () => {
    const b = new JwtBundle(A);
    const set = new BundleSet([b]);
    b.addJwtAuthority('late', key);
    expect(set.getJwtAuthorities(A)!.has('late')).toBe(true);
  });

  it('rejects an invalid trust domain name', () => {
    expect(() => new BundleSet().get('Not Valid')).toThrow(
      expect.objectContaining({ code: 'ERR_TRUST_DOMAIN_INVALID' }),
    );
  });
});
