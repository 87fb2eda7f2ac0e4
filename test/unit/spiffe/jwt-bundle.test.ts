import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { exportJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import { parseTrustDomain } from '../../../src/spiffe/id.js';
import { JwtBundle, parseJwtBundle } from '../../../src/spiffe/jwt-bundle.js';

const pool: Array<{ publicKey: KeyObject; privateKey: KeyObject }> = [
  generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  generateKeyPairSync('ec', { namedCurve: 'P-384' }),
  generateKeyPairSync('ec', { namedCurve: 'P-521' }),
  generateKeyPairSync('rsa', { modulusLength: 2048 }),
  generateKeyPairSync('rsa', { modulusLength: 3072 }),
];
const jwkOf = (k: KeyObject): Record<string, unknown> =>
  k.export({ format: 'jwk' }) as Record<string, unknown>;

const TD = parseTrustDomain('example.org');
const jwks = (...keys: unknown[]): string => JSON.stringify({ keys });

function expectInvalid(fn: () => unknown, fragment: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toMatchObject({ code: 'ERR_BUNDLE_INVALID' });
  expect((caught as Error).message).toContain(fragment);
}

describe('parseJwtBundle', () => {
  it('parses EC P-256/P-384/P-521 and RSA keys by kid', () => {
    const doc = jwks(...pool.map((p, i) => ({ ...jwkOf(p.publicKey), kid: `k${i}` })));
    const b = parseJwtBundle('example.org', doc);
    expect(b.trustDomain.name).toBe('example.org');
    expect([...b.jwtAuthorities.keys()]).toEqual(pool.map((_p, i) => `k${i}`));
    expect(b.findJwtAuthority('k2')!.jwk).toMatchObject({ kty: 'EC', crv: 'P-384', kid: 'k2' });
    expect(b.findJwtAuthority('k4')!.jwk).toMatchObject({ kty: 'RSA', e: 'AQAB', kid: 'k4' });
    expect(parseJwtBundle(TD, new TextEncoder().encode(doc)).equals(b)).toBe(true);
  });

  it('accepts jose-exported JWKs with use sig or jwt-svid and alg', async () => {
    const jwk = await exportJWK(pool[0]!.publicKey);
    const b = parseJwtBundle(
      TD,
      jwks({ ...jwk, kid: 'a', use: 'sig', alg: 'ES256' }, { ...jwk, kid: 'b', use: 'jwt-svid' }),
    );
    expect(b.findJwtAuthority('a')!.jwk['alg']).toBe('ES256');
    expect(b.findJwtAuthority('b')!.jwk['use']).toBeUndefined();
  });

  it('accepts an empty set and keys: null (Go encoding of an empty list)', () => {
    expect(parseJwtBundle(TD, '{"keys":[]}').jwtAuthorities.size).toBe(0);
    expect(parseJwtBundle(TD, '{"keys":null}').jwtAuthorities.size).toBe(0);
  });

  const ec = jwkOf(pool[0]!.publicKey);
  it.each<[string, string | Uint8Array, string]>([
    ['a key without kid', jwks(ec), 'has no kid'],
    ['an empty kid', jwks({ ...ec, kid: '' }), 'has no kid'],
    ['a duplicate kid', jwks({ ...ec, kid: 'a' }, { ...ec, kid: 'a' }), 'duplicate kid a'],
    [
      'an EC private key',
      jwks({ ...jwkOf(pool[0]!.privateKey), kid: 'a' }),
      'private key member d',
    ],
    [
      'an RSA private key',
      jwks({ ...jwkOf(pool[4]!.privateKey), kid: 'a' }),
      'private key member d',
    ],
    ['a symmetric key', jwks({ kty: 'oct', k: 'c2VjcmV0', kid: 'a' }), 'private key member k'],
    [
      'an Ed25519 key',
      jwks({ ...jwkOf(generateKeyPairSync('ed25519').publicKey), kid: 'a' }),
      'key type OKP is not supported',
    ],
    [
      'a secp256k1 key',
      jwks({
        ...jwkOf(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey),
        kid: 'a',
      }),
      'curve secp256k1 is not supported',
    ],
    ['a point off the curve', jwks({ ...ec, x: ec['y'], kid: 'a' }), 'cannot import EC'],
    ['an unknown kty', jwks({ kty: 'XYZ', kid: 'a' }), 'cannot import XYZ'],
    ['a missing kty', jwks({ kid: 'a', x: 'AA' }), 'kty is missing'],
    ['an x509-svid key', jwks({ ...ec, kid: 'a', use: 'x509-svid' }), 'not jwt-svid'],
    ['no keys member', '{}', 'keys member is missing'],
    ['keys not an array', '{"keys":{}}', 'keys must be an array'],
    ['a key that is not an object', '{"keys":[1]}', 'key 0 must be a JSON object'],
    ['a JSON array', '[]', 'must be a JSON object'],
    ['not JSON', '{"keys":', 'not valid JSON'],
    ['invalid UTF-8', Uint8Array.of(0x7b, 0xff, 0x7d), 'not valid UTF-8'],
  ])('rejects %s with ERR_BUNDLE_INVALID', (_n, doc, fragment) => {
    expectInvalid(() => parseJwtBundle(TD, doc), fragment);
  });

  it('rejects a bad trust domain and bad argument types', () => {
    expect(() => parseJwtBundle('Bad TD', '{"keys":[]}')).toThrow(
      expect.objectContaining({ code: 'ERR_TRUST_DOMAIN_INVALID' }),
    );
    expect(() => parseJwtBundle(TD, 42 as unknown as string)).toThrow(TypeError);
  });
});

describe('JwtBundle', () => {
  it('adds, finds, removes and is a source for its own trust domain only', () => {
    const b = new JwtBundle('example.org');
    const a = b.addJwtAuthority('k', pool[0]!.publicKey);
    expect(a.jwk).toMatchObject({ kty: 'EC', kid: 'k', crv: 'P-256' });
    expect(Object.isFrozen(a.jwk)).toBe(true);
    expect(b.findJwtAuthority('k')).toBe(a);
    expect(b.getJwtAuthorities(TD)!.get('k')).toBe(a);
    expect(b.getJwtAuthorities(parseTrustDomain('other.org'))).toBeUndefined();
    expect(b.removeJwtAuthority('k')).toBe(true);
    expect(b.removeJwtAuthority('k')).toBe(false);
    expect(b.hasJwtAuthority('k')).toBe(false);
  });

  it('refuses private keys and empty key IDs as arguments', () => {
    const b = new JwtBundle(TD);
    expect(() => b.addJwtAuthority('k', pool[0]!.privateKey)).toThrow(TypeError);
    expect(() => b.addJwtAuthority('', pool[0]!.publicKey)).toThrow(TypeError);
  });

  it('marshals a JWKS with kid on every key and no private members', () => {
    const b = new JwtBundle(TD);
    for (const [i, p] of pool.entries()) b.addJwtAuthority(`k${i}`, p.publicKey);
    const doc = JSON.parse(b.marshal()) as { keys: Array<Record<string, unknown>> };
    expect(doc.keys).toHaveLength(pool.length);
    for (const k of doc.keys) {
      expect(typeof k['kid']).toBe('string');
      expect(k['d']).toBeUndefined();
    }
  });

  it('round-trips random sets of keys through marshal and parse (property)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.tuple(fc.string({ minLength: 1, maxLength: 12 }), fc.nat(pool.length - 1)),
          {
            maxLength: 8,
            selector: ([kid]) => kid,
          },
        ),
        (entries) => {
          const b = new JwtBundle(TD);
          for (const [kid, i] of entries) b.addJwtAuthority(kid, pool[i]!.publicKey);
          const back = parseJwtBundle(TD, b.marshal());
          expect(back.equals(b)).toBe(true);
          expect(back.marshal()).toBe(b.marshal());
        },
      ),
      { numRuns: 150 },
    );
  });

  it('never throws anything but ERR_BUNDLE_INVALID on mutated or random JSON (property)', () => {
    const b = new JwtBundle(TD);
    for (const [i, p] of pool.entries()) b.addJwtAuthority(`k${i}`, p.publicKey);
    const base = JSON.parse(b.marshal()) as unknown;
    fc.assert(
      fc.property(
        fc.oneof(mutatedJson(base), fc.json(), fc.string(), fc.uint8Array({ maxLength: 64 })),
        (doc) => {
          try {
            parseJwtBundle(TD, doc);
          } catch (err) {
            if (!isSpireEdgeError(err, 'ERR_BUNDLE_INVALID')) throw err;
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});

/** Lists every path (object keys and array indices) in a JSON value. */
function paths(v: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> {
  const out: Array<Array<string | number>> = [prefix];
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) out.push(...paths(x, [...prefix, i]));
  } else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...prefix, k]));
  }
  return out;
}

/** The JSON text of `base` with one member replaced by a random JSON value or deleted. */
function mutatedJson(base: unknown): fc.Arbitrary<string> {
  const all = paths(base).filter((p) => p.length > 0);
  return fc
    .tuple(fc.constantFrom(...all), fc.option(fc.jsonValue({ maxDepth: 2 })))
    .map(([path, value]) => {
      const copy = structuredClone(base) as Record<string | number, unknown>;
      let node = copy;
      for (const seg of path.slice(0, -1)) node = node[seg] as Record<string | number, unknown>;
      const last = path[path.length - 1]!;
      if (value === null) delete node[last];
      else node[last] = value;
      return JSON.stringify(copy);
    });
}
