import {
  constants,
  createHmac,
  sign as cryptoSign,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import fc from 'fast-check';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import { hashForKeyType, type KeyType, type Signer } from '../../../src/common/signer.js';
import { BundleSet } from '../../../src/spiffe/bundle-set.js';
import { parseTrustDomain } from '../../../src/spiffe/id.js';
import { JwtBundle } from '../../../src/spiffe/jwt-bundle.js';
import {
  type JwtSvidRule,
  mintJwtSvid,
  parseJwtSvidInsecure,
  validateJwtSvid,
} from '../../../src/spiffe/jwt-svid.js';
import { SpiffeBundle } from '../../../src/spiffe/spiffe-bundle.js';

// ---------------------------------------------------------------------------------------------
// Keys, bundles and a tiny Signer over node:crypto keys.

const ec256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const ec521 = generateKeyPairSync('ec', { namedCurve: 'P-521' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const otherEc = generateKeyPairSync('ec', { namedCurve: 'P-256' });

const TD = 'example.org';
const bundle = new JwtBundle(TD);
bundle.addJwtAuthority('k256', ec256.publicKey);
bundle.addJwtAuthority('k384', ec384.publicKey);
bundle.addJwtAuthority('k521', ec521.publicKey);
bundle.addJwtAuthority('krsa', rsa.publicKey);
bundle.addJwtAuthority('kalg', { ...ec256.publicKey.export({ format: 'jwk' }), alg: 'ES384' });
bundle.addJwtAuthority('shared', ec256.publicKey);
const other = new JwtBundle('other.org');
other.addJwtAuthority('kother', otherEc.publicKey);
other.addJwtAuthority('shared', otherEc.publicKey);
const bundles = new BundleSet([bundle, other]);

const NOW = new Date('2026-03-01T12:00:00Z');
const T = NOW.getTime() / 1000;
const AUD = ['reports'];

class TestSigner implements Signer {
  readonly publicKeySpki: Uint8Array;
  readonly signSync?: (data: Uint8Array) => Uint8Array;
  constructor(
    readonly keyType: KeyType,
    readonly privateKey: KeyObject,
    readonly publicKey: KeyObject,
    { sync = true, mangle = false }: { sync?: boolean; mangle?: boolean } = {},
  ) {
    this.publicKeySpki = publicKey.export({ format: 'der', type: 'spki' });
    const raw = (data: Uint8Array): Uint8Array =>
      cryptoSign(hashForKeyType(keyType), data, {
        key: privateKey,
        dsaEncoding: mangle ? 'der' : 'ieee-p1363',
      });
    if (sync) this.signSync = raw;
    this.sign = async (data) => raw(data);
  }
  sign: (data: Uint8Array) => Promise<Uint8Array>;
}

// ---------------------------------------------------------------------------------------------
// Crafting tokens by hand, each breaking exactly one rule.

const b64u = (v: unknown): string =>
  Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

type SignFn = (input: Buffer) => Buffer;

function signer(alg: string, key: KeyObject | string): SignFn {
  const hash = `sha${alg.slice(2)}`;
  return (input) => {
    if (alg === 'none') return Buffer.alloc(0);
    if (alg.startsWith('HS'))
      return createHmac(hash, key as string)
        .update(input)
        .digest();
    if (alg === 'EdDSA') return cryptoSign(null, input, key as KeyObject);
    if (alg.startsWith('ES')) {
      return cryptoSign(hash, input, { key: key as KeyObject, dsaEncoding: 'ieee-p1363' });
    }
    if (alg.startsWith('PS')) {
      return cryptoSign(hash, input, {
        key: key as KeyObject,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
      });
    }
    return cryptoSign(hash, input, key as KeyObject);
  };
}

function craft(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  sign: SignFn,
): string {
  const input = `${b64u(header)}.${b64u(payload)}`;
  return `${input}.${sign(Buffer.from(input)).toString('base64url')}`;
}

const HEADER = { alg: 'ES256', kid: 'k256', typ: 'JWT' };
const CLAIMS = { sub: 'spiffe://example.org/workload', aud: ['reports'], exp: T + 300, iat: T };
const es256 = signer('ES256', ec256.privateKey);

function good(
  header: Record<string, unknown> = {},
  claims: Record<string, unknown> = {},
  sign: SignFn = es256,
): string {
  return craft({ ...HEADER, ...header }, { ...CLAIMS, ...claims }, sign);
}

function without(o: Record<string, unknown>, k: string): Record<string, unknown> {
  const { [k]: _, ...rest } = o;
  return rest;
}

async function expectRule(
  token: string,
  rule: JwtSvidRule,
  audiences: string[] = AUD,
  opts: { now?: Date; leewaySeconds?: number } = { now: NOW },
): Promise<void> {
  let caught: unknown;
  try {
    await validateJwtSvid(token, bundles, audiences, opts);
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected rule ${rule} to be enforced`).toMatchObject({
    code: 'ERR_JWT_SVID_INVALID',
    details: { rule },
  });
}

const validate = (token: string, audiences: string[] = AUD, opts = { now: NOW }) =>
  validateJwtSvid(token, bundles, audiences, opts);

// ---------------------------------------------------------------------------------------------

describe('validateJwtSvid: conformance (JWT-SVID standard), one broken rule per token', () => {
  it('accepts the well-formed baseline token', async () => {
    const svid = await validate(good());
    expect(svid.id.toString()).toBe('spiffe://example.org/workload');
    expect(svid.audience).toEqual(['reports']);
    expect(svid.expiresAt).toEqual(new Date((T + 300) * 1000));
    expect(svid.issuedAt).toEqual(NOW);
    expect(svid.header).toEqual({ alg: 'ES256', kid: 'k256', typ: 'JWT' });
    expect(svid.claims['sub']).toBe('spiffe://example.org/workload');
  });

  describe('§2.1 alg', () => {
    it('rejects alg none (empty signature)', async () => {
      await expectRule(good({ alg: 'none' }, {}, signer('none', '')), 'alg');
    });
    it('rejects HS256 signed with the public key as the HMAC secret', async () => {
      const pem = ec256.publicKey.export({ format: 'pem', type: 'spki' }) as string;
      await expectRule(good({ alg: 'HS256' }, {}, signer('HS256', pem)), 'alg');
      const jwkJson = JSON.stringify(bundle.findJwtAuthority('k256')!.jwk);
      await expectRule(good({ alg: 'HS256' }, {}, signer('HS256', jwkJson)), 'alg');
    });
    it('rejects EdDSA even with a valid Ed25519 signature', async () => {
      await expectRule(good({ alg: 'EdDSA' }, {}, signer('EdDSA', ed.privateKey)), 'alg');
    });
    it('rejects a missing alg and a lower-case alg', async () => {
      await expectRule(craft(without(HEADER, 'alg'), CLAIMS, es256), 'alg');
      await expectRule(good({ alg: 'es256' }), 'alg');
    });
    it.each([
      ['ES384', 'k384', ec384.privateKey],
      ['ES512', 'k521', ec521.privateKey],
      ['RS256', 'krsa', rsa.privateKey],
      ['RS384', 'krsa', rsa.privateKey],
      ['RS512', 'krsa', rsa.privateKey],
      ['PS256', 'krsa', rsa.privateKey],
      ['PS384', 'krsa', rsa.privateKey],
      ['PS512', 'krsa', rsa.privateKey],
    ])('accepts %s', async (alg, kid, key) => {
      const svid = await validate(good({ alg, kid }, {}, signer(alg, key)));
      expect(svid.header.alg).toBe(alg);
    });
  });

  describe('§2 header parameters and §2.3 typ', () => {
    it.each([['JOSE'], [undefined]])('accepts typ %s', async (typ) => {
      const h = typ === undefined ? without(HEADER, 'typ') : { ...HEADER, typ };
      const svid = await validate(craft(h, CLAIMS, es256));
      expect(svid.header.typ).toBe(typ);
    });
    it.each([['at+jwt'], ['jwt'], [1]])('rejects typ %s', async (typ) => {
      await expectRule(good({ typ }), 'typ');
    });
    it.each([['jku'], ['jwk'], ['x5u'], ['crit'], ['cty']])(
      'rejects header parameter %s',
      async (name) => {
        await expectRule(good({ [name]: name === 'crit' ? ['exp'] : 'x' }), 'header');
      },
    );
  });

  describe('kid and bundle selection', () => {
    it('rejects a missing or empty kid', async () => {
      await expectRule(craft(without(HEADER, 'kid'), CLAIMS, es256), 'kid');
      await expectRule(good({ kid: '' }), 'kid');
    });
    it('rejects an unknown kid', async () => {
      await expectRule(good({ kid: 'nope' }), 'authority');
    });
    it('rejects a kid of another trust domain, even with a valid signature from it', async () => {
      await expectRule(
        good({ kid: 'kother' }, {}, signer('ES256', otherEc.privateKey)),
        'authority',
      );
    });
    it('uses the bundle of the trust domain of sub when both hold the same kid', async () => {
      const otherSigned = signer('ES256', otherEc.privateKey);
      await expectRule(good({ kid: 'shared' }, {}, otherSigned), 'signature');
      const svid = await validate(
        good({ kid: 'shared' }, { sub: 'spiffe://other.org/w' }, otherSigned),
      );
      expect(svid.id.trustDomain.name).toBe('other.org');
    });
    it('rejects a sub in a trust domain with no bundle', async () => {
      await expectRule(good({}, { sub: 'spiffe://unknown.org/w' }), 'bundle');
    });
    it('rejects a key that cannot verify the alg', async () => {
      await expectRule(good({ alg: 'ES384' }, {}, signer('ES384', ec384.privateKey)), 'key');
      await expectRule(good({ alg: 'RS256' }, {}, signer('RS256', rsa.privateKey)), 'key');
      await expectRule(good({ alg: 'ES256', kid: 'krsa' }), 'key');
      // The JWK says alg ES384 while the header says ES256.
      await expectRule(good({ kid: 'kalg' }), 'key');
    });
  });

  describe('§3.1 sub', () => {
    it.each([
      ['missing', undefined],
      ['not a SPIFFE ID', 'workload'],
      ['another scheme', 'https://example.org/w'],
      ['a trailing slash', 'spiffe://example.org/w/'],
      ['not a string', 42],
    ])('rejects sub %s', async (_n, sub) => {
      const c = sub === undefined ? without(CLAIMS, 'sub') : { ...CLAIMS, sub };
      await expectRule(craft(HEADER, c, es256), 'sub');
    });
  });

  describe('§3.2 aud', () => {
    it('rejects a missing, empty or malformed aud', async () => {
      await expectRule(craft(HEADER, without(CLAIMS, 'aud'), es256), 'aud');
      await expectRule(good({}, { aud: [] }), 'aud');
      await expectRule(good({}, { aud: 42 }), 'aud');
      await expectRule(good({}, { aud: ['reports', 7] }), 'aud');
    });
    it('rejects a token whose audiences hold none of the expected ones', async () => {
      await expectRule(good({}, { aud: ['billing'] }), 'aud');
      await expectRule(good(), 'aud', ['billing', 'Reports']);
    });
    it('accepts when any token audience is any expected audience (go-spiffe rule)', async () => {
      expect((await validate(good({}, { aud: 'reports' }))).audience).toEqual(['reports']);
      expect((await validate(good({}, { aud: ['x', 'reports'] }))).audience).toEqual([
        'x',
        'reports',
      ]);
      await validate(good(), ['billing', 'reports']);
    });
    it('refuses to validate without expected audiences', async () => {
      for (const audiences of [[], ['']]) {
        await expect(
          validateJwtSvid(good(), bundles, audiences, { now: NOW }),
        ).rejects.toBeInstanceOf(TypeError);
      }
    });
  });

  describe('§3.3 exp, nbf, iat', () => {
    it('rejects a missing or malformed exp', async () => {
      await expectRule(craft(HEADER, without(CLAIMS, 'exp'), es256), 'exp');
      await expectRule(good({}, { exp: String(T + 300) }), 'exp');
    });
    it('rejects an expired token, honouring the leeway', async () => {
      await expectRule(good({}, { exp: T - 31 }), 'exp');
      await validate(good({}, { exp: T - 29 }));
      await expectRule(good({}, { exp: T - 1 }), 'exp', AUD, { now: NOW, leewaySeconds: 0 });
    });
    it('rejects a token not valid yet (nbf) or issued in the future (iat)', async () => {
      await expectRule(good({}, { nbf: T + 31 }), 'nbf');
      await validate(good({}, { nbf: T + 29 }));
      await expectRule(good({}, { iat: T + 31 }), 'iat');
      await expectRule(good({}, { nbf: 'soon' }), 'nbf');
      await expectRule(good({}, { exp: 1e300 }), 'exp');
    });
  });

  describe('signature (RFC 7515 §5.2)', () => {
    it('rejects a tampered payload', async () => {
      const [h, , s] = good().split('.');
      const forged = b64u({ ...CLAIMS, sub: 'spiffe://example.org/admin' });
      await expectRule(`${h}.${forged}.${s}`, 'signature');
    });
    it('rejects a tampered signature', async () => {
      const [h, p, s] = good().split('.');
      const sig = Buffer.from(s!, 'base64url');
      sig[10] = sig[10]! ^ 1;
      await expectRule(`${h}.${p}.${sig.toString('base64url')}`, 'signature');
    });
    it('rejects a DER-encoded ECDSA signature', async () => {
      const der: SignFn = (input) => cryptoSign('sha256', input, ec256.privateKey);
      await expectRule(good({}, {}, der), 'signature');
    });
  });

  describe('§5.1 compact serialization', () => {
    it.each([
      ['two parts', 'a.b'],
      ['five parts (JWE)', 'a.b.c.d.e'],
      ['a non-base64url header', `${'!!'}.${b64u(CLAIMS)}.AA`],
      ['a header that is a JSON array', `${b64u([1])}.${b64u(CLAIMS)}.AA`],
      ['a payload that is not JSON', `${b64u(HEADER)}.${b64u('hello')}.AA`],
      ['an empty string', ''],
    ])('rejects %s', async (_n, token) => {
      await expectRule(token, 'format');
    });
  });

  it('never throws anything but ERR_JWT_SVID_INVALID for mutated or random tokens', async () => {
    const base = good();
    const alphabet = 'ABCxyz019-_.=+/ "{}';
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ maxLength: 200 }),
          fc
            .tuple(
              fc.nat({ max: base.length - 1 }),
              fc.constantFrom(...alphabet.split('')),
              fc.nat({ max: 3 }),
            )
            .map(([i, c, del]) => base.slice(0, i) + c + base.slice(i + 1 + del)),
        ),
        async (token) => {
          try {
            await validate(token);
          } catch (err) {
            if (!isSpireEdgeError(err, 'ERR_JWT_SVID_INVALID')) throw err;
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('mintJwtSvid', () => {
  const cases: Array<[KeyType, { privateKey: KeyObject; publicKey: KeyObject }, string]> = [
    ['ec-p256', ec256, 'ES256'],
    ['ec-p384', ec384, 'ES384'],
    ['rsa-2048', rsa, 'RS256'],
  ];

  it.each(cases)(
    'mints %s tokens that validate here and with plain jose.jwtVerify',
    async (keyType, pair, alg) => {
      const td = parseTrustDomain('mint.example');
      const spiffe = SpiffeBundle.fromJwtBundle(new JwtBundle(td));
      spiffe.addJwtAuthority(`key-${keyType}`, pair.publicKey);
      for (const sync of [true, false]) {
        const token = await mintJwtSvid({
          signer: new TestSigner(keyType, pair.privateKey, pair.publicKey, { sync }),
          keyId: `key-${keyType}`,
          spiffeId: 'spiffe://mint.example/db',
          audience: ['reports'],
          issuedAt: NOW,
          expiresAt: new Date(NOW.getTime() + 300_500),
          issuer: 'https://oidc.mint.example',
          claims: { jti: 'abc' },
        });
        const svid = await validateJwtSvid(token, spiffe, ['reports'], { now: NOW });
        expect(svid.id.toString()).toBe('spiffe://mint.example/db');
        expect(svid.header).toEqual({ alg, kid: `key-${keyType}`, typ: 'JWT' });
        expect(svid.expiresAt).toEqual(new Date(NOW.getTime() + 300_000));
        expect(svid.claims).toEqual({
          sub: 'spiffe://mint.example/db',
          aud: 'reports',
          exp: T + 300,
          iat: T,
          iss: 'https://oidc.mint.example',
          jti: 'abc',
        });

        // Independent check: jose with the key imported from our marshaled JWKS.
        const jwks = createLocalJWKSet(JSON.parse(spiffe.toJwtBundle().marshal()));
        const { payload, protectedHeader } = await jwtVerify(token, jwks, {
          audience: 'reports',
          algorithms: [alg],
          currentDate: NOW,
          typ: 'JWT',
          subject: 'spiffe://mint.example/db',
        });
        expect(payload.exp).toBe(T + 300);
        expect(protectedHeader.kid).toBe(`key-${keyType}`);
      }
    },
  );

  it('writes several audiences as an array and one as a string, as SPIRE does', async () => {
    const s = new TestSigner('ec-p256', ec256.privateKey, ec256.publicKey);
    const base = { signer: s, keyId: 'k256', spiffeId: 'spiffe://example.org/w', issuedAt: NOW };
    const exp = new Date(NOW.getTime() + 60_000);
    const many = await mintJwtSvid({ ...base, audience: ['a', 'b'], expiresAt: exp });
    expect(parseJwtSvidInsecure(many).claims['aud']).toEqual(['a', 'b']);
    const one = await mintJwtSvid({ ...base, audience: ['a'], expiresAt: exp });
    expect(parseJwtSvidInsecure(one).claims['aud']).toBe('a');
  });

  it('refuses bad arguments with TypeError', async () => {
    const s = new TestSigner('ec-p256', ec256.privateKey, ec256.publicKey);
    const base = {
      signer: s,
      keyId: 'k',
      spiffeId: 'spiffe://example.org/w',
      audience: ['a'],
      issuedAt: NOW,
      expiresAt: new Date(NOW.getTime() + 60_000),
    };
    for (const bad of [
      { audience: [] },
      { audience: [''] },
      { keyId: '' },
      { expiresAt: NOW },
      { expiresAt: new Date(Number.NaN) },
      { claims: { sub: 'spiffe://example.org/admin' } },
      { claims: { aud: 'x' } },
    ]) {
      await expect(mintJwtSvid({ ...base, ...bad })).rejects.toBeInstanceOf(TypeError);
    }
    await expect(mintJwtSvid({ ...base, spiffeId: 'nope' })).rejects.toMatchObject({
      code: 'ERR_SPIFFE_ID_INVALID',
    });
  });

  it('fails with ERR_JWT_SVID_MINT_FAILED when an EC signer returns DER', async () => {
    const s = new TestSigner('ec-p256', ec256.privateKey, ec256.publicKey, { mangle: true });
    await expect(
      mintJwtSvid({
        signer: s,
        keyId: 'k',
        spiffeId: 'spiffe://example.org/w',
        audience: ['a'],
        expiresAt: new Date(Date.now() + 60_000),
      }),
    ).rejects.toMatchObject({ code: 'ERR_JWT_SVID_MINT_FAILED' });
  });
});

describe('parseJwtSvidInsecure', () => {
  it('returns the claims without checking the signature, audience or time', () => {
    const token = good({ kid: 'unknown' }, { exp: T - 10_000, aud: 'elsewhere' });
    const svid = parseJwtSvidInsecure(token);
    expect(svid.id.toString()).toBe('spiffe://example.org/workload');
    expect(svid.audience).toEqual(['elsewhere']);
    expect(svid.header.kid).toBe('unknown');
  });

  it.each<[string, string, JwtSvidRule]>([
    ['alg none', good({ alg: 'none' }, {}, signer('none', '')), 'alg'],
    ['no kid', craft(without(HEADER, 'kid'), CLAIMS, es256), 'kid'],
    ['no aud', craft(HEADER, without(CLAIMS, 'aud'), es256), 'aud'],
    ['no exp', craft(HEADER, without(CLAIMS, 'exp'), es256), 'exp'],
    ['a bad sub', good({}, { sub: 'x' }), 'sub'],
  ])('still rejects %s', (_n, token, rule) => {
    expect(() => parseJwtSvidInsecure(token)).toThrow(
      expect.objectContaining({ code: 'ERR_JWT_SVID_INVALID', details: { rule } }),
    );
  });
});
