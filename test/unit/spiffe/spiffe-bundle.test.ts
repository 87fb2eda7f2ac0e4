import { generateKeyPairSync, type KeyObject, webcrypto } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import { parseTrustDomain } from '../../../src/spiffe/id.js';
import { JwtBundle } from '../../../src/spiffe/jwt-bundle.js';
import {
  marshalSpiffeBundle,
  parseSpiffeBundle,
  SpiffeBundle,
} from '../../../src/spiffe/spiffe-bundle.js';
import { X509Bundle } from '../../../src/spiffe/x509-bundle.js';

/**
 * A real SPIFFE bundle document: go-spiffe v2 `bundle/spiffebundle/testdata/
 * spiffebundle_valid_1.json` (spiffe/go-spiffe, commit f50aa45ac27bed7d36a98ad55cec52b4446b81a2,
 * Apache-2.0): one x509-svid P-384 CA certificate and one jwt-svid P-256 key.
 */
const GO_SPIFFE_VALID_1 = `{
    "keys": [
        {
            "use": "x509-svid",
            "kty": "EC",
            "crv": "P-384",
            "x": "WjB-nSGSxIYiznb84xu5WGDZj80nL7W1c3zf48Why0ma7Y7mCBKzfQkrgDguI4j0",
            "y": "Z-0_tDH_r8gtOtLLrIpuMwWHoe4vbVBFte1vj6Xt6WeE8lXwcCvLs_mcmvPqVK9j",
            "x5c": [
                "MIIBzDCCAVOgAwIBAgIJAJM4DhRH0vmuMAoGCCqGSM49BAMEMB4xCzAJBgNVBAYTAlVTMQ8wDQYDVQQKDAZTUElGRkUwHhcNMTgwNTEzMTkzMzQ3WhcNMjMwNTEyMTkzMzQ3WjAeMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGU1BJRkZFMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEWjB+nSGSxIYiznb84xu5WGDZj80nL7W1c3zf48Why0ma7Y7mCBKzfQkrgDguI4j0Z+0/tDH/r8gtOtLLrIpuMwWHoe4vbVBFte1vj6Xt6WeE8lXwcCvLs/mcmvPqVK9jo10wWzAdBgNVHQ4EFgQUh6XzV6LwNazA+GTEVOdu07o5yOgwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwGQYDVR0RBBIwEIYOc3BpZmZlOi8vbG9jYWwwCgYIKoZIzj0EAwQDZwAwZAIwE4Me13qMC9i6Fkx0h26y09QZIbuRqA9puLg9AeeAAyo5tBzRl1YL0KNEp02VKSYJAjBdeJvqjJ9wW55OGj1JQwDFD7kWeEB6oMlwPbI/5hEY3azJi16I0uN1JSYTSWGSqWc="
            ]
        },
        {
            "use": "jwt-svid",
            "kty": "EC",
            "kid": "C6vs25welZOx6WksNYfbMfiw9l96pMnD",
            "crv": "P-256",
            "x": "ngLYQnlfF6GsojUwqtcEE3WgTNG2RUlsGhK73RNEl5k",
            "y": "tKbiDSUSsQ3F1P7wteeHNXIcU-cx6CgSbroeQrQHTLM"
        }
    ]
}`;

// reflect-metadata (needed by @peculiar/x509) is loaded by test/support/setup.ts.
const x509 = await import('@peculiar/x509');

const TD = parseTrustDomain('example.org');
type Jwk = Record<string, unknown>;
const jwkOf = (k: KeyObject): Jwk => k.export({ format: 'jwk' }) as Jwk;
const b64 = (der: Uint8Array): string => Buffer.from(der).toString('base64');
const doc = (keys: unknown[], extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ ...extra, keys });

const keyPool: KeyObject[] = [
  generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
  generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey,
  generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey,
  generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey,
];

/** Self-signed CA certificates generated once with @peculiar/x509 and sampled from. */
interface Ca {
  readonly name: string;
  readonly der: Uint8Array;
  readonly jwk: Jwk;
}
let cas: Ca[] = [];

async function makeCa(
  name: string,
  alg: webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams,
): Promise<Ca> {
  const signing =
    alg.name === 'ECDSA'
      ? {
          ...alg,
          hash: (alg as webcrypto.EcKeyGenParams).namedCurve === 'P-384' ? 'SHA-384' : 'SHA-256',
        }
      : alg;
  const keys = (await webcrypto.subtle.generateKey(alg, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `O=example.org, CN=${name}`,
    notBefore: new Date('2026-01-01T00:00:00Z'),
    notAfter: new Date('2027-01-01T00:00:00Z'),
    signingAlgorithm: signing,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://example.org' }]),
    ],
  });
  const jwk = (await webcrypto.subtle.exportKey('jwk', keys.publicKey)) as Jwk;
  delete jwk['key_ops'];
  delete jwk['ext'];
  delete jwk['alg'];
  return { name, der: new Uint8Array(cert.rawData), jwk };
}

beforeAll(async () => {
  cas = [
    await makeCa('ec-a', { name: 'ECDSA', namedCurve: 'P-256' }),
    await makeCa('ec-b', { name: 'ECDSA', namedCurve: 'P-256' }),
    await makeCa('ec-384', { name: 'ECDSA', namedCurve: 'P-384' }),
    await makeCa('rsa', {
      name: 'RSASSA-PKCS1-v1_5',
      hash: 'SHA-256',
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
    }),
  ];
});

const x509Entry = (ca: Ca, extra: Jwk = {}): Jwk => ({
  use: 'x509-svid',
  ...ca.jwk,
  x5c: [b64(ca.der)],
  ...extra,
});
const jwtEntry = (kid: string, key: KeyObject, extra: Jwk = {}): Jwk => ({
  use: 'jwt-svid',
  kid,
  ...jwkOf(key),
  ...extra,
});

function expectInvalid(json: string | Uint8Array, fragment: string): void {
  let caught: unknown;
  try {
    parseSpiffeBundle(TD, json);
  } catch (err) {
    caught = err;
  }
  expect(caught).toMatchObject({ code: 'ERR_BUNDLE_INVALID' });
  expect((caught as Error).message).toContain(fragment);
}

describe('parseSpiffeBundle', () => {
  it('parses a real go-spiffe bundle document', () => {
    const b = parseSpiffeBundle('example.org', GO_SPIFFE_VALID_1);
    expect(b.x509Authorities).toHaveLength(1);
    expect([...b.jwtAuthorities.keys()]).toEqual(['C6vs25welZOx6WksNYfbMfiw9l96pMnD']);
    expect(b.sequenceNumber).toBeUndefined();
    expect(b.refreshHint).toBeUndefined();
    expect(parseSpiffeBundle(TD, marshalSpiffeBundle(b)).equals(b)).toBe(true);
  });

  it('reads spiffe_sequence and spiffe_refresh_hint', () => {
    const b = parseSpiffeBundle(
      TD,
      doc([x509Entry(cas[0]!)], { spiffe_sequence: 42, spiffe_refresh_hint: 300 }),
    );
    expect(b.sequenceNumber).toBe(42);
    expect(b.refreshHint).toBe(300);
    const none = parseSpiffeBundle(
      TD,
      doc([], { spiffe_sequence: null, spiffe_refresh_hint: null, other: 'ignored' }),
    );
    expect(none.sequenceNumber).toBeUndefined();
    expect(none.refreshHint).toBeUndefined();
    expect(parseSpiffeBundle(TD, doc([], { spiffe_sequence: 2 ** 53 - 1 })).sequenceNumber).toBe(
      2 ** 53 - 1,
    );
  });

  it('ignores entries with an unknown or missing use, or an unknown kty (§4.1.3, §4.2)', () => {
    const ca = cas[0]!;
    const b = parseSpiffeBundle(
      TD,
      doc([
        x509Entry(ca),
        jwtEntry('good', keyPool[0]!),
        jwtEntry('enc', keyPool[0]!, { use: 'enc' }),
        jwtEntry('upper', keyPool[0]!, { use: 'JWT-SVID' }),
        { kty: 'EC', kid: 'nouse', ...jwkOf(keyPool[0]!) },
        { use: 'jwt-svid', kty: 'FUTURE', kid: 'future', blob: 'x' },
        jwtEntry('ed', generateKeyPairSync('ed25519').publicKey),
        { use: 'x509-svid', kty: 'FUTURE', x5c: [b64(ca.der), b64(ca.der)] },
        { use: 'future-svid', kty: 'EC', x5c: [] },
      ]),
    );
    expect(b.x509Authorities).toEqual([ca.der]);
    expect([...b.jwtAuthorities.keys()]).toEqual(['good']);
  });

  it('drops the kid-less jwt entry of go-spiffe missing_use-style documents', () => {
    const d = JSON.parse(GO_SPIFFE_VALID_1) as { keys: Jwk[] };
    delete d.keys[1]!['use'];
    const b = parseSpiffeBundle(TD, JSON.stringify(d));
    expect(b.jwtAuthorities.size).toBe(0);
    expect(b.x509Authorities).toHaveLength(1);
  });

  it('deduplicates identical entries', () => {
    const b = parseSpiffeBundle(
      TD,
      doc([
        x509Entry(cas[0]!),
        x509Entry(cas[0]!),
        jwtEntry('a', keyPool[0]!),
        jwtEntry('a', keyPool[0]!),
      ]),
    );
    expect(b.x509Authorities).toHaveLength(1);
    expect(b.jwtAuthorities.size).toBe(1);
  });

  it.each<[string, () => string, string]>([
    [
      'x5c with no certificate',
      () => doc([x509Entry(cas[0]!, { x5c: [] })]),
      'x5c must hold exactly one certificate, has 0',
    ],
    [
      'x5c with two certificates',
      () => doc([x509Entry(cas[0]!, { x5c: [b64(cas[0]!.der), b64(cas[1]!.der)] })]),
      'x5c must hold exactly one certificate, has 2',
    ],
    ['x5c missing', () => doc([{ use: 'x509-svid', ...cas[0]!.jwk }]), 'x5c is missing'],
    [
      'x5c not base64',
      () => doc([x509Entry(cas[0]!, { x5c: ['not base64!'] })]),
      'not standard base64',
    ],
    [
      'x5c not a certificate',
      () => doc([x509Entry(cas[0]!, { x5c: [b64(Uint8Array.of(0x30, 3, 2, 1, 0))] })]),
      'not a valid certificate',
    ],
    [
      'key parameters of another key of the same type',
      () => doc([x509Entry(cas[0]!, { ...cas[1]!.jwk })]),
      "do not match the x5c certificate's key",
    ],
    [
      'RSA parameters beside an EC certificate',
      () =>
        doc([
          { ...x509Entry(cas[0]!), crv: undefined, x: undefined, y: undefined, ...cas[3]!.jwk },
        ]),
      "do not match the x5c certificate's key",
    ],
    [
      'x509-svid entry without key parameters',
      () => doc([{ use: 'x509-svid', kty: 'EC', x5c: [b64(cas[0]!.der)] }]),
      'cannot import EC public key',
    ],
    ['a jwt-svid key without kid', () => doc([jwtEntry('', keyPool[0]!)]), 'kid is missing'],
    [
      'a kid used by two different keys',
      () => doc([jwtEntry('a', keyPool[0]!), jwtEntry('a', keyPool[1]!)]),
      'kid a is used by two different keys',
    ],
    [
      'a jwt-svid private key',
      () => doc([jwtEntry('a', generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey)]),
      'private key member d',
    ],
    [
      'a jwt-svid symmetric key',
      () => doc([{ use: 'jwt-svid', kty: 'oct', kid: 'h', k: 'c2VjcmV0' }]),
      'private key member k',
    ],
    ['a known-use entry without kty', () => doc([{ use: 'jwt-svid', kid: 'a' }]), 'kty is missing'],
    ['a negative sequence', () => doc([], { spiffe_sequence: -1 }), 'spiffe_sequence must be'],
    ['a fractional sequence', () => doc([], { spiffe_sequence: 1.5 }), 'spiffe_sequence must be'],
    ['a string sequence', () => doc([], { spiffe_sequence: '1' }), 'spiffe_sequence must be'],
    ['a sequence over 2^53-1', () => doc([], { spiffe_sequence: 2 ** 53 }), 'exceeds 2^53-1'],
    ['a string refresh hint', () => doc([], { spiffe_refresh_hint: '5m' }), 'spiffe_refresh_hint'],
    ['no keys member', () => '{"spiffe_sequence":1}', 'keys member is missing'],
    ['a top-level array', () => '[]', 'must be a JSON object'],
    ['truncated JSON', () => GO_SPIFFE_VALID_1.slice(0, 100), 'not valid JSON'],
  ])('rejects %s with ERR_BUNDLE_INVALID', (_n, make, fragment) => {
    expectInvalid(make(), fragment);
  });
});

describe('SpiffeBundle', () => {
  it('marshals the standard document shape', () => {
    const b = new SpiffeBundle(TD, {
      x509Authorities: [cas[0]!.der, cas[3]!.der],
      sequenceNumber: 7,
      refreshHint: 300,
    });
    b.addJwtAuthority('kid-1', keyPool[1]!);
    const d = JSON.parse(marshalSpiffeBundle(b)) as Jwk & { keys: Jwk[] };
    expect(d['spiffe_sequence']).toBe(7);
    expect(d['spiffe_refresh_hint']).toBe(300);
    expect(d.keys).toEqual([
      { use: 'x509-svid', ...cas[0]!.jwk, x5c: [b64(cas[0]!.der)] },
      { use: 'x509-svid', ...cas[3]!.jwk, x5c: [b64(cas[3]!.der)] },
      { use: 'jwt-svid', kid: 'kid-1', ...jwkOf(keyPool[1]!) },
    ]);
    expect(d.keys[0]!['kid']).toBeUndefined();
    expect(JSON.parse(new SpiffeBundle(TD).marshal())).toEqual({ keys: [] });
  });

  it('converts to and from X.509 and JWT bundles and is a source of both', () => {
    const x = new X509Bundle(TD, [cas[0]!.der, cas[1]!.der]);
    const j = new JwtBundle(TD);
    j.addJwtAuthority('a', keyPool[0]!);
    const sx = SpiffeBundle.fromX509Bundle(x);
    const sj = SpiffeBundle.fromJwtBundle(j);
    expect(sx.toX509Bundle().equals(x)).toBe(true);
    expect(sj.toJwtBundle().equals(j)).toBe(true);
    expect(sx.jwtAuthorities.size).toBe(0);
    expect(sj.x509Authorities).toHaveLength(0);
    expect(sx.getX509Authorities(TD)).toHaveLength(2);
    expect(sj.getJwtAuthorities(TD)!.get('a')!.jwk['kid']).toBe('a');
    const other = parseTrustDomain('other.org');
    expect(sx.getX509Authorities(other)).toBeUndefined();
    expect(sj.getJwtAuthorities(other)).toBeUndefined();
  });

  it('compares every part in equals', () => {
    const make = () =>
      new SpiffeBundle(TD, {
        x509Authorities: [cas[0]!.der],
        jwtAuthorities: [{ keyId: 'a', jwk: jwkOf(keyPool[0]!) }],
        sequenceNumber: 1,
        refreshHint: 60,
      });
    const a = make();
    expect(a.equals(make())).toBe(true);
    const changes: Array<(b: SpiffeBundle) => void> = [
      (b) => {
        b.sequenceNumber = 2;
      },
      (b) => {
        b.refreshHint = undefined;
      },
      (b) => b.addX509Authority(cas[1]!.der),
      (b) => b.removeX509Authority(cas[0]!.der),
      (b) => b.addJwtAuthority('a', keyPool[1]!),
      (b) => b.removeJwtAuthority('a'),
    ];
    for (const change of changes) {
      const b = make();
      change(b);
      expect(a.equals(b)).toBe(false);
    }
    expect(a.equals(new SpiffeBundle('other.org', { x509Authorities: [cas[0]!.der] }))).toBe(false);
  });

  it('checks authorities and counters given programmatically', () => {
    const b = new SpiffeBundle(TD);
    expect(() => b.addX509Authority(Uint8Array.of(1, 2, 3))).toThrow(
      expect.objectContaining({ code: 'ERR_BUNDLE_INVALID' }),
    );
    b.addX509Authority(cas[2]!.der);
    b.addX509Authority(cas[2]!.der);
    expect(b.x509Authorities).toHaveLength(1);
    expect(b.hasX509Authority(cas[2]!.der)).toBe(true);
    expect(() => {
      b.sequenceNumber = -1;
    }).toThrow(TypeError);
    expect(() => {
      b.refreshHint = 0.5;
    }).toThrow(TypeError);
  });

  it('round-trips random bundles through marshal and parse (property)', () => {
    fc.assert(
      fc.property(
        fc.subarray([0, 1, 2, 3]),
        fc.uniqueArray(
          fc.tuple(fc.string({ minLength: 1, maxLength: 10 }), fc.nat(keyPool.length - 1)),
          { maxLength: 6, selector: ([kid]) => kid },
        ),
        fc.option(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), { nil: undefined }),
        fc.option(fc.integer({ min: 0, max: 10_000_000 }), { nil: undefined }),
        (caIdx, jwts, seq, hint) => {
          const b = new SpiffeBundle(TD, {
            x509Authorities: caIdx.map((i) => cas[i]!.der),
            sequenceNumber: seq,
            refreshHint: hint,
          });
          for (const [kid, i] of jwts) b.addJwtAuthority(kid, keyPool[i]!);
          const text = marshalSpiffeBundle(b);
          const back = parseSpiffeBundle(TD, text);
          expect(back.equals(b)).toBe(true);
          expect(marshalSpiffeBundle(back)).toBe(text);
          expect(back.toJwtBundle().equals(b.toJwtBundle())).toBe(true);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('never throws anything but ERR_BUNDLE_INVALID on mutated or random JSON (property)', () => {
    const b = new SpiffeBundle(TD, {
      x509Authorities: cas.map((c) => c.der),
      sequenceNumber: 3,
      refreshHint: 300,
    });
    for (const [i, k] of keyPool.entries()) b.addJwtAuthority(`k${i}`, k);
    const base = JSON.parse(b.marshal()) as unknown;
    fc.assert(
      fc.property(
        fc.oneof(
          mutatedJson(base),
          mutatedJson(JSON.parse(GO_SPIFFE_VALID_1)),
          fc.json(),
          fc.string(),
          fc.uint8Array({ maxLength: 64 }),
        ),
        (text) => {
          try {
            parseSpiffeBundle(TD, text);
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
