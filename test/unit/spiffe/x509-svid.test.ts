import { generateKeyPairSync } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodePem } from '../../../src/common/pem.js';
import { parseX509Svid, parseX509SvidRaw, X509Svid } from '../../../src/spiffe/x509-svid.js';
import {
  caExtensions,
  craft,
  generateKey,
  HOUR,
  KU,
  keyObject,
  leafExtensions,
  makePki,
  NOW,
  type PxKey,
  px,
  pxKey,
  type TestKey,
  type TestPki,
  thrown,
} from './x509-support.js';

let pki: TestPki;
let key: TestKey;
let leafDer: Uint8Array;
let certsPem: string;
let keyPem: string;
let pxLeafKey: PxKey;
let pxIssuer: PxKey;

beforeAll(async () => {
  pki = await makePki();
  key = generateKey('ec-p256');
  leafDer = await pki.minter.mint({
    spiffeId: 'spiffe://example.org/ns/web',
    publicKey: key.publicKey,
    notBefore: NOW,
    notAfter: new Date(NOW.getTime() + HOUR),
  });
  certsPem = encodePem('CERTIFICATE', leafDer) + encodePem('CERTIFICATE', pki.intermediateDer);
  keyPem = key.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  pxLeafKey = await pxKey();
  pxIssuer = await pxKey();
});

function expectSvidInvalid(fn: () => unknown, rule: string): void {
  const err = thrown(fn);
  expect(err.code).toBe('ERR_X509_SVID_INVALID');
  expect(err.message).toContain(rule);
}

const pkcs8 = (): Uint8Array =>
  new Uint8Array(key.privateKey.export({ format: 'der', type: 'pkcs8' }));

describe('parseX509Svid', () => {
  it('parses PEM certificates and a PKCS#8 key, as text or bytes', () => {
    for (const [c, k] of [
      [certsPem, keyPem],
      [Buffer.from(certsPem), Buffer.from(keyPem)],
    ] as const) {
      const svid = parseX509Svid(c, k);
      expect(svid.id.toString()).toBe('spiffe://example.org/ns/web');
      expect(svid.certificates).toHaveLength(2);
      expect(Buffer.from(svid.certificates[0]!)).toEqual(Buffer.from(leafDer));
      expect(svid.privateKey.equals(key.privateKey)).toBe(true);
      expect(svid.expiresAt).toEqual(new Date(NOW.getTime() + HOUR));
      expect(svid.hint).toBeUndefined();
    }
  });

  it('parses DER certificates and a DER key', () => {
    const svid = parseX509Svid(Buffer.concat([leafDer, pki.intermediateDer]), pkcs8());
    expect(svid.certificates).toHaveLength(2);
  });

  it('reads certificates and key from one PEM file', () => {
    const both = certsPem + keyPem;
    expect(parseX509Svid(both, both, { hint: 'internal' }).hint).toBe('internal');
  });

  it('marshals back to the same PEM and DER', () => {
    const svid = parseX509Svid(certsPem, keyPem);
    const { certsPem: c, keyPem: k } = svid.marshal();
    expect(c).toBe(certsPem);
    expect(parseX509Svid(c, k).privateKey.equals(key.privateKey)).toBe(true);
    const raw = svid.marshalRaw();
    expect(Buffer.from(raw.certsDer)).toEqual(Buffer.concat([leafDer, pki.intermediateDer]));
    expect(parseX509SvidRaw(raw.certsDer, raw.keyDer).id.equals(svid.id)).toBe(true);
  });

  it('accepts RSA and P-384 leaf keys', async () => {
    for (const t of ['rsa-2048', 'ec-p384'] as const) {
      const k = generateKey(t);
      const der = await pki.minter.mint({
        spiffeId: 'spiffe://example.org/x',
        publicKey: k.spki,
        notBefore: NOW,
        notAfter: new Date(NOW.getTime() + HOUR),
      });
      const s = parseX509SvidRaw(
        der,
        new Uint8Array(k.privateKey.export({ format: 'der', type: 'pkcs8' })),
      );
      expect(s.privateKey.asymmetricKeyType).toBe(t === 'rsa-2048' ? 'rsa' : 'ec');
    }
  });

  it('rejects a key that is not the leaf key', () => {
    const other = generateKey('ec-p256').privateKey.export({
      format: 'pem',
      type: 'pkcs8',
    }) as string;
    expectSvidInvalid(
      () => parseX509Svid(certsPem, other),
      'leaf certificate does not match private key',
    );
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    expectSvidInvalid(
      () => parseX509SvidRaw(leafDer, new Uint8Array(rsa.export({ format: 'der', type: 'pkcs8' }))),
      'leaf certificate does not match private key',
    );
  });

  it('requires exactly one PKCS#8 key', () => {
    const sec1 = key.privateKey.export({ format: 'pem', type: 'sec1' }) as string;
    expectSvidInvalid(() => parseX509Svid(certsPem, sec1), 'private key must be PKCS#8');
    expectSvidInvalid(
      () => parseX509Svid(certsPem, keyPem + keyPem),
      'exactly one PEM private key',
    );
    expectSvidInvalid(() => parseX509Svid(certsPem, certsPem), 'exactly one PEM private key');
    expectSvidInvalid(
      () => parseX509SvidRaw(leafDer, Uint8Array.of(1, 2, 3)),
      'cannot parse PKCS#8 private key',
    );
    expectSvidInvalid(
      () => parseX509Svid(certsPem, '-----BEGIN PRIVATE KEY-----\n'),
      'cannot decode private key',
    );
  });

  it('reports ERR_X509_INVALID for certificates that do not parse', () => {
    for (const bad of [
      Uint8Array.of(0x30, 0x01, 0x00),
      encodePem('CERTIFICATE', Uint8Array.of(0x30, 0x01, 0x00)),
      encodePem('PUBLIC KEY', leafDer),
      '',
      '-----BEGIN CERTIFICATE-----\n',
    ]) {
      expect(thrown(() => parseX509Svid(bad, keyPem)).code).toBe('ERR_X509_INVALID');
    }
  });

  async function pxLeaf(extensions: px.Extension[]): Promise<string> {
    const der = await craft({
      subject: 'CN=leaf',
      issuer: 'CN=ca',
      publicKey: pxLeafKey.keys.publicKey,
      signingKey: pxIssuer.keys.privateKey,
      extensions,
    });
    return encodePem('CERTIFICATE', der);
  }
  const pxKeyPem = (): string =>
    keyObject(pxLeafKey.keys.privateKey).export({ format: 'pem', type: 'pkcs8' }) as string;

  it('checks the leaf against the X509-SVID rules', async () => {
    const cases: Array<[px.Extension[], string]> = [
      [
        leafExtensions(['spiffe://example.org/a', 'spiffe://example.org/b']),
        'exactly one URI SAN (found 2)',
      ],
      [leafExtensions('spiffe://example.org'), 'SPIFFE ID must have a non-root path'],
      [leafExtensions('spiffe://Example.org/x'), 'not a valid SPIFFE ID'],
      [
        [new px.BasicConstraintsExtension(true, undefined, true), ...leafExtensions().slice(1)],
        'leaf certificate cannot be a CA',
      ],
      [
        [
          leafExtensions()[0]!,
          new px.KeyUsagesExtension(KU.keyAgreement, true),
          ...leafExtensions().slice(2),
        ],
        'must have the digitalSignature key usage',
      ],
      [
        [
          leafExtensions()[0]!,
          new px.KeyUsagesExtension(KU.digitalSignature | KU.keyCertSign, true),
          ...leafExtensions().slice(2),
        ],
        'cannot have the keyCertSign key usage',
      ],
      [
        [
          leafExtensions()[0]!,
          new px.KeyUsagesExtension(KU.digitalSignature | KU.cRLSign, true),
          ...leafExtensions().slice(2),
        ],
        'cannot have the cRLSign key usage',
      ],
    ];
    for (const [ext, rule] of cases) {
      const pem = await pxLeaf(ext);
      expectSvidInvalid(
        () => parseX509Svid(pem, pxKeyPem()),
        `certificate validation failed: leaf`,
      );
      expectSvidInvalid(() => parseX509Svid(pem, pxKeyPem()), rule);
    }
    // The well-formed one parses.
    expect(parseX509Svid(await pxLeaf(leafExtensions()), pxKeyPem()).id.path).toBe('/workload');
  });

  it('requires further certificates to be CAs with keyCertSign', async () => {
    const leaf = await pxLeaf(leafExtensions());
    const notCa = await craft({
      subject: 'CN=ca',
      issuer: 'CN=root',
      publicKey: pxIssuer.keys.publicKey,
      signingKey: pxIssuer.keys.privateKey,
      extensions: [new px.KeyUsagesExtension(KU.keyCertSign, true)],
    });
    expectSvidInvalid(
      () => parseX509Svid(leaf + encodePem('CERTIFICATE', notCa), pxKeyPem()),
      'signing certificate must be a CA',
    );
    const noSign = await craft({
      subject: 'CN=ca',
      issuer: 'CN=root',
      publicKey: pxIssuer.keys.publicKey,
      signingKey: pxIssuer.keys.privateKey,
      extensions: [
        new px.BasicConstraintsExtension(true, undefined, true),
        new px.KeyUsagesExtension(KU.cRLSign, true),
      ],
    });
    expectSvidInvalid(
      () => parseX509Svid(leaf + encodePem('CERTIFICATE', noSign), pxKeyPem()),
      'signing certificate must have the keyCertSign key usage',
    );
    const ok = await craft({
      subject: 'CN=ca',
      issuer: 'CN=root',
      publicKey: pxIssuer.keys.publicKey,
      signingKey: pxIssuer.keys.privateKey,
      extensions: await caExtensions(pxIssuer.keys.publicKey),
    });
    expect(
      parseX509Svid(leaf + encodePem('CERTIFICATE', ok), pxKeyPem()).certificates,
    ).toHaveLength(2);
  });

  it('builds from parts with the constructor', () => {
    const parsed = parseX509Svid(certsPem, keyPem);
    const svid = new X509Svid({
      id: parsed.id,
      certificates: parsed.certificates,
      privateKey: parsed.privateKey,
      expiresAt: parsed.expiresAt,
      hint: 'h',
    });
    expect(svid.hint).toBe('h');
    expect(svid.marshal().certsPem).toBe(certsPem);
  });

  it('throws TypeError for arguments of the wrong type', () => {
    expect(() => parseX509Svid(42 as never, keyPem)).toThrow(TypeError);
    expect(() => parseX509SvidRaw('x' as never, pkcs8())).toThrow(TypeError);
    expect(() => parseX509SvidRaw(leafDer, 'x' as never)).toThrow(TypeError);
  });
});
