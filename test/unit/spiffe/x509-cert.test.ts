import {
  constants,
  generateKeyPairSync,
  type KeyObject,
  sign as nodeSign,
  X509Certificate,
} from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  bitString,
  children,
  DER_NULL,
  oid,
  readTlv,
  readWhole,
  seq,
  smallInteger,
  TAG,
  tlv,
  tlvBytes,
} from '../../../src/common/der.js';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import { encodePem } from '../../../src/common/pem.js';
import { extension } from '../../../src/spiffe/internal/x509-encode.js';
import {
  certificatePublicKey,
  formatName,
  isSelfIssued,
  nameAttributes,
  type ParsedCertificate,
  parseCertificate,
  parseCertificates,
  signatureScheme,
  verifyCertificateSignature,
} from '../../../src/spiffe/x509-cert.js';
import { listCorpus, readCorpus } from '../../support/corpus.js';
import {
  craft,
  generateKey,
  HOUR,
  KU,
  leafExtensions,
  makePki,
  NOW,
  type PxKey,
  px,
  pxKey,
  type TestPki,
  thrown,
} from './x509-support.js';

let pki: TestPki;
let leafDer: Uint8Array;
let rich: Uint8Array;
let richKey: PxKey;

beforeAll(async () => {
  pki = await makePki();
  leafDer = await pki.minter.mint({
    spiffeId: 'spiffe://example.org/ns/web',
    publicKey: generateKey('ec-p256').publicKey,
    notBefore: NOW,
    notAfter: new Date(NOW.getTime() + HOUR),
    dnsNames: ['web.example.org'],
  });
  richKey = await pxKey();
  rich = await craft({
    subject: 'CN=rich,OU=a,O=b,C=DE',
    issuer: 'CN=issuer',
    publicKey: richKey.keys.publicKey,
    signingKey: richKey.keys.privateKey,
    serialNumber: '00ff01',
    extensions: [
      new px.BasicConstraintsExtension(true, 3, true),
      new px.KeyUsagesExtension(
        KU.digitalSignature |
          KU.nonRepudiation |
          KU.keyEncipherment |
          KU.dataEncipherment |
          KU.keyAgreement |
          KU.keyCertSign |
          KU.cRLSign |
          KU.encipherOnly |
          KU.decipherOnly,
        true,
      ),
      new px.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.4'], true),
      new px.SubjectAlternativeNameExtension(
        [
          { type: 'url', value: 'spiffe://example.org/x' },
          { type: 'dns', value: 'x.example.org' },
          { type: 'email', value: 'a@example.org' },
          { type: 'ip', value: '10.1.2.3' },
          { type: 'ip', value: '2001:db8::1' },
          { type: 'upn', value: 'user@example.org' },
          { type: 'id', value: '1.2.3.4' },
        ],
        true,
      ),
      await px.SubjectKeyIdentifierExtension.create(richKey.keys.publicKey),
      await px.AuthorityKeyIdentifierExtension.create(richKey.keys.publicKey),
      new px.Extension('1.2.3.4.5', true, Uint8Array.of(5, 0)),
      new px.Extension('1.2.3.4.6', false, Uint8Array.of(5, 0)),
    ],
  });
});

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
};

describe('parseCertificate', () => {
  it('decodes a minted X509-SVID field by field', () => {
    const c = parseCertificate(leafDer);
    const node = new X509Certificate(leafDer);
    expect(c.version).toBe(3);
    expect(Buffer.from(c.serial).toString('hex').replace(/^0+/, '').toUpperCase()).toBe(
      node.serialNumber.replace(/^0+/, ''),
    );
    expect(c.signatureAlgorithm).toEqual({ oid: '1.2.840.10045.4.3.2' });
    expect(c.notBefore).toEqual(NOW);
    expect(c.notAfter).toEqual(new Date(NOW.getTime() + HOUR));
    expect(formatName(c.subjectDer)).toBe('C=US, O=SPIRE, CN=web.example.org');
    expect(formatName(c.issuerDer)).toBe(
      formatName(parseCertificate(pki.intermediateDer).subjectDer),
    );
    expect(Buffer.from(c.spkiDer)).toEqual(
      node.publicKey.export({ format: 'der', type: 'spki' }) as Buffer,
    );
    expect(c.publicKeyAlgorithm.oid).toBe('1.2.840.10045.2.1');
    const e = c.extensions;
    expect(e.basicConstraints).toEqual({ ca: false, critical: true });
    expect(e.keyUsage).toMatchObject({
      digitalSignature: true,
      keyEncipherment: true,
      keyAgreement: true,
      keyCertSign: false,
      cRLSign: false,
      critical: true,
    });
    expect(e.extKeyUsage).toEqual({
      oids: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'],
      critical: false,
    });
    expect(e.subjectAltName?.uris).toEqual(['spiffe://example.org/ns/web']);
    expect(e.subjectAltName?.dnsNames).toEqual(['web.example.org']);
    expect(e.subjectKeyId).toHaveLength(20);
    expect(Buffer.from(e.authorityKeyId!)).toEqual(
      Buffer.from(parseCertificate(pki.intermediateDer).extensions.subjectKeyId!),
    );
    expect(e.unknownCritical).toEqual([]);
    expect(e.all.map((x) => x.oid)).toEqual([
      '2.5.29.15',
      '2.5.29.37',
      '2.5.29.19',
      '2.5.29.14',
      '2.5.29.35',
      '2.5.29.17',
    ]);
    // The signed part and the signature are what node checks.
    expect(node.verify(new X509Certificate(pki.intermediateDer).publicKey)).toBe(true);
    expect(isSelfIssued(c)).toBe(false);
    expect(isSelfIssued(parseCertificate(pki.rootDer))).toBe(true);
  });

  it('decodes every extension field of a certificate built by another encoder', () => {
    const c = parseCertificate(rich);
    const p = new px.X509Certificate(rich);
    expect(Buffer.from(c.serial).toString('hex')).toBe('00ff01');
    expect(c.extensions.basicConstraints).toEqual({ ca: true, pathLen: 3, critical: true });
    expect(c.extensions.keyUsage).toEqual({
      digitalSignature: true,
      contentCommitment: true,
      keyEncipherment: true,
      dataEncipherment: true,
      keyAgreement: true,
      keyCertSign: true,
      cRLSign: true,
      encipherOnly: true,
      decipherOnly: true,
      critical: true,
    });
    expect(c.extensions.extKeyUsage).toEqual({
      oids: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.4'],
      critical: true,
    });
    const san = c.extensions.subjectAltName!;
    expect(san.critical).toBe(true);
    expect(san.uris).toEqual(['spiffe://example.org/x']);
    expect(san.dnsNames).toEqual(['x.example.org']);
    expect(san.emails).toEqual(['a@example.org']);
    expect(san.ipAddresses.map((b) => Buffer.from(b).toString('hex'))).toEqual([
      '0a010203',
      '20010db8000000000000000000000001',
    ]);
    expect(san.other.map((o) => o.tag)).toEqual([0xa0]);
    expect(san.registeredIds).toEqual(['1.2.3.4']);
    const ski = p.getExtension(px.SubjectKeyIdentifierExtension)!;
    expect(Buffer.from(c.extensions.subjectKeyId!).toString('hex')).toBe(ski.keyId);
    const aki = p.getExtension(px.AuthorityKeyIdentifierExtension)!;
    expect(Buffer.from(c.extensions.authorityKeyId!).toString('hex')).toBe(aki.keyId);
    expect(c.extensions.unknownCritical).toEqual(['1.2.3.4.5']);
    expect(c.extensions.all).toHaveLength(8);
    expect(nameAttributes(c.subjectDer).map((a) => [a.oid, a.value])).toEqual([
      ['2.5.4.3', 'rich'],
      ['2.5.4.11', 'a'],
      ['2.5.4.10', 'b'],
      ['2.5.4.6', 'DE'],
    ]);
  });

  it('throws TypeError for a non-byte argument', () => {
    expect(() => parseCertificate('x' as never)).toThrow(TypeError);
  });
});

// ---------------------------------------------------------------------------------------
// Strict DER: each case breaks one rule of RFC 5280 §4.1 / X.690 DER.

interface Parts {
  tbs: Uint8Array[];
  sigAlg: Uint8Array;
  sig: Uint8Array;
}

function split(der: Uint8Array): Parts {
  const [tbs, sigAlg, sig] = children(readWhole(der, 'cert'));
  return {
    tbs: children(tbs!).map(tlvBytes),
    sigAlg: tlvBytes(sigAlg!),
    sig: tlvBytes(sig!),
  };
}

function join(p: Parts): Uint8Array {
  return seq(seq(...p.tbs), p.sigAlg, p.sig);
}

/** The leaf's extensions [3] element rebuilt from `exts`. */
function withExtensions(base: Uint8Array, exts: Uint8Array[]): Uint8Array {
  const p = split(base);
  p.tbs[p.tbs.length - 1] = tlv(0xa3, seq(...exts));
  return join(p);
}

function expectInvalid(der: Uint8Array, rule: string): void {
  const err = thrown(() => parseCertificate(der));
  expect(err.code).toBe('ERR_X509_INVALID');
  expect(err.message).toContain(rule);
  expect((err.cause as { code?: string }).code).toBe('ERR_DER_INVALID');
}

describe('parseCertificate strictness', () => {
  const san = (uri: string): Uint8Array =>
    extension('2.5.29.17', false, seq(tlv(0x86, Buffer.from(uri, 'latin1'))));
  const ku = extension('2.5.29.15', true, Uint8Array.of(0x03, 0x02, 0x07, 0x80));

  it('accepts the rebuilt leaf unchanged (the harness is faithful)', () => {
    expect(Buffer.from(join(split(leafDer)))).toEqual(Buffer.from(leafDer));
    expect(
      parseCertificate(withExtensions(leafDer, [ku, san('spiffe://a/b')])).extensions.keyUsage
        ?.digitalSignature,
    ).toBe(true);
  });

  it('rejects trailing bytes', () => {
    expectInvalid(Uint8Array.from([...leafDer, 0]), 'trailing bytes');
  });

  it('rejects a duplicate extension', async () => {
    const dup = await craft({
      subject: 'CN=dup',
      issuer: 'CN=dup',
      publicKey: richKey.keys.publicKey,
      signingKey: richKey.keys.privateKey,
      extensions: [...leafExtensions(), ...leafExtensions().slice(3)],
    });
    expectInvalid(dup, 'extension 2.5.29.17 appears more than once');
  });

  it('rejects a signatureAlgorithm that differs from tbsCertificate.signature', () => {
    const p = split(leafDer);
    p.sigAlg = seq(oid('1.2.840.10045.4.3.3'));
    expectInvalid(join(p), 'signatureAlgorithm does not match tbsCertificate.signature');
  });

  it('rejects an explicitly encoded critical FALSE and cA FALSE', () => {
    const falseCrit = seq(oid('2.5.29.17'), Uint8Array.of(1, 1, 0), Uint8Array.of(4, 2, 0x30, 0));
    expectInvalid(withExtensions(leafDer, [falseCrit]), 'critical FALSE must be omitted');
    const bc = extension('2.5.29.19', true, seq(Uint8Array.of(1, 1, 0)));
    expectInvalid(withExtensions(leafDer, [bc]), 'cA FALSE must be omitted');
  });

  it('rejects non-DER BOOLEAN values', () => {
    const bc = extension('2.5.29.19', true, seq(Uint8Array.of(1, 1, 1)));
    expectInvalid(withExtensions(leafDer, [bc]), 'BOOLEAN is not DER');
  });

  it('rejects an explicit v1 version and extensions outside v3', () => {
    const p = split(leafDer);
    p.tbs[0] = tlv(0xa0, smallInteger(0));
    expectInvalid(join(p), 'v1 must be omitted');
    p.tbs[0] = tlv(0xa0, smallInteger(1));
    expectInvalid(join(p), 'extensions require version 3');
    p.tbs.shift();
    expectInvalid(join(p), 'extensions require version 3');
    p.tbs.unshift(tlv(0xa0, smallInteger(7)));
    expectInvalid(join(p), 'unknown version 7');
  });

  it('accepts v1 and v2 certificates without extensions, and unique identifiers in v2', () => {
    const p = split(leafDer);
    const noExt = p.tbs.slice(1, -1);
    expect(parseCertificate(join({ ...p, tbs: noExt })).version).toBe(1);
    const v2 = [tlv(0xa0, smallInteger(1)), ...noExt, Uint8Array.of(0x81, 2, 0, 1)];
    expect(parseCertificate(join({ ...p, tbs: v2 })).version).toBe(2);
    const v1Unique = [...noExt, Uint8Array.of(0x82, 2, 0, 1)];
    expectInvalid(join({ ...p, tbs: v1Unique }), 'subjectUniqueID requires version 2 or 3');
  });

  it('rejects an empty extensions list and unexpected trailing tbs fields', () => {
    expectInvalid(withExtensions(leafDer, []), 'must hold at least one extension');
    const p = split(leafDer);
    p.tbs.push(DER_NULL);
    expectInvalid(join(p), 'unexpected trailing field');
  });

  it('rejects a non-minimal, empty or oversized serial', () => {
    const p = split(leafDer);
    p.tbs[1] = Uint8Array.of(2, 2, 0, 1);
    expectInvalid(join(p), 'non-minimal INTEGER');
    p.tbs[1] = Uint8Array.of(2, 0);
    expectInvalid(join(p), 'serialNumber: empty INTEGER');
    p.tbs[1] = tlv(TAG.INTEGER, new Uint8Array(33).fill(1));
    expectInvalid(join(p), 'serialNumber: longer than 32 octets');
  });

  it('accepts negative and 20-octet serials (seen in the wild)', () => {
    const p = split(leafDer);
    p.tbs[1] = Uint8Array.of(2, 1, 0xfe);
    expect(Buffer.from(parseCertificate(join(p)).serial)).toEqual(Buffer.of(0xfe));
    p.tbs[1] = tlv(TAG.INTEGER, new Uint8Array(20).fill(0x7f));
    expect(parseCertificate(join(p)).serial).toHaveLength(20);
  });

  it('rejects an empty or malformed SAN', () => {
    expectInvalid(
      withExtensions(leafDer, [extension('2.5.29.17', false, seq())]),
      'must hold at least one name',
    );
    const nonAscii = extension('2.5.29.17', false, seq(tlv(0x86, Uint8Array.of(0x73, 0xe9))));
    expectInvalid(withExtensions(leafDer, [nonAscii]), 'IA5String holds a non-ASCII byte');
    const badIp = extension('2.5.29.17', false, seq(tlv(0x87, Uint8Array.of(1, 2, 3))));
    expectInvalid(withExtensions(leafDer, [badIp]), 'iPAddress: must be 4 or 16 bytes');
    const badTag = extension('2.5.29.17', false, seq(tlv(0x89, Uint8Array.of(1))));
    expectInvalid(withExtensions(leafDer, [badTag]), 'unknown GeneralName tag 0x89');
  });

  it('rejects extension values with trailing bytes or the wrong type', () => {
    const trailing = extension('2.5.29.15', true, Uint8Array.of(0x03, 0x02, 0x07, 0x80, 0x00));
    expectInvalid(withExtensions(leafDer, [trailing]), 'trailing bytes');
    const wrongType = extension('2.5.29.14', false, seq());
    expectInvalid(
      withExtensions(leafDer, [wrongType]),
      'subjectKeyIdentifier: expected an OCTET STRING',
    );
    const notOctets = seq(oid('2.5.29.14'), seq());
    expectInvalid(withExtensions(leafDer, [notOctets]), 'extnValue must be an OCTET STRING');
  });

  it('rejects malformed validity times', () => {
    const p = split(leafDer);
    p.tbs[4] = seq(
      tlv(TAG.UTC_TIME, Buffer.from('260231120000Z')),
      tlv(TAG.UTC_TIME, Buffer.from('270101120000Z')),
    );
    expectInvalid(join(p), 'is not a valid date');
    p.tbs[4] = seq(
      tlv(TAG.UTC_TIME, Buffer.from('2601011200Z')),
      tlv(TAG.UTC_TIME, Buffer.from('270101120000Z')),
    );
    expectInvalid(join(p), 'malformed time value');
  });

  it('rejects a signature BIT STRING with unused bits', () => {
    const p = split(leafDer);
    const sig = readTlv(p.sig);
    const bytes = Uint8Array.from(p.sig.subarray(sig.start));
    bytes[0] = 1;
    p.sig = tlv(TAG.BIT_STRING, bytes);
    expectInvalid(join(p), 'unused bits');
  });

  it('rejects non-DER lengths', () => {
    const p = join(split(leafDer));
    // Re-encode the outer length in long form with a leading zero octet.
    const t = readTlv(p);
    const body = p.subarray(t.start);
    const bad = Uint8Array.from([0x30, 0x83, 0, body.length >> 8, body.length & 0xff, ...body]);
    expectInvalid(bad, 'non-minimal length encoding');
  });
});

describe('parseCertificates', () => {
  it('reads PEM and concatenated DER, in order', () => {
    const pem = [leafDer, pki.intermediateDer].map((d) => encodePem('CERTIFICATE', d)).join('');
    const fromPem = parseCertificates(pem);
    const fromDer = parseCertificates(Buffer.concat([leafDer, pki.intermediateDer]));
    expect(fromPem.map((c) => Buffer.from(c.der))).toEqual(fromDer.map((c) => Buffer.from(c.der)));
    expect(fromPem).toHaveLength(2);
  });

  it('rejects other PEM labels, empty input and garbage', () => {
    expect(codeOf(() => parseCertificates(encodePem('PRIVATE KEY', leafDer)))).toBe(
      'ERR_X509_INVALID',
    );
    expect(codeOf(() => parseCertificates(''))).toBe('ERR_X509_INVALID');
    expect(codeOf(() => parseCertificates(new Uint8Array(0)))).toBe('ERR_X509_INVALID');
    expect(
      codeOf(() => parseCertificates('-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----')),
    ).toBe('ERR_X509_INVALID');
    expect(codeOf(() => parseCertificates(Uint8Array.of(0x30, 0x05, 1)))).toBe('ERR_X509_INVALID');
  });
});

// ---------------------------------------------------------------------------------------
// Signature algorithms

/** A certificate over the leaf's tbs with `sigAlg`, signed by `signFn`. */
function resign(sigAlg: Uint8Array, signFn: (tbs: Uint8Array) => Uint8Array): ParsedCertificate {
  const p = split(leafDer);
  p.tbs[2] = sigAlg;
  const tbs = seq(...p.tbs);
  return parseCertificate(seq(tbs, sigAlg, bitString(signFn(tbs))));
}

const hashAlg = (o: string): Uint8Array => seq(oid(o), DER_NULL);
const pssParams = (hashOid: string, salt: number, mgfHashOid = hashOid): Uint8Array =>
  seq(
    oid('1.2.840.113549.1.1.10'),
    seq(
      tlv(0xa0, hashAlg(hashOid)),
      tlv(0xa1, seq(oid('1.2.840.113549.1.1.8'), hashAlg(mgfHashOid))),
      tlv(0xa2, smallInteger(salt)),
    ),
  );

describe('verifyCertificateSignature', () => {
  const ec = (curve: string) => generateKeyPairSync('ec', { namedCurve: curve });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });

  const cases: Array<
    [string, Uint8Array, { privateKey: KeyObject; publicKey: KeyObject }, string, number?]
  > = [
    ['ecdsa-with-SHA256 P-256', seq(oid('1.2.840.10045.4.3.2')), ec('P-256'), 'sha256'],
    ['ecdsa-with-SHA384 P-384', seq(oid('1.2.840.10045.4.3.3')), ec('P-384'), 'sha384'],
    ['ecdsa-with-SHA512 P-521', seq(oid('1.2.840.10045.4.3.4')), ec('P-521'), 'sha512'],
    ['sha256WithRSAEncryption', seq(oid('1.2.840.113549.1.1.11'), DER_NULL), rsa, 'sha256'],
    ['sha384WithRSAEncryption (absent params)', seq(oid('1.2.840.113549.1.1.12')), rsa, 'sha384'],
    ['sha512WithRSAEncryption', seq(oid('1.2.840.113549.1.1.13'), DER_NULL), rsa, 'sha512'],
    ['RSASSA-PSS SHA-256 salt 32', pssParams('2.16.840.1.101.3.4.2.1', 32), rsa, 'sha256', 32],
    ['RSASSA-PSS SHA-512 salt 64', pssParams('2.16.840.1.101.3.4.2.3', 64), rsa, 'sha512', 64],
  ];

  it.each(cases)('checks %s', (_name, alg, keys, hash, salt) => {
    const signFn = (tbs: Uint8Array): Uint8Array =>
      nodeSign(
        hash,
        tbs,
        salt === undefined
          ? keys.privateKey
          : { key: keys.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: salt },
      );
    const cert = resign(alg, signFn);
    expect(verifyCertificateSignature(cert, keys.publicKey)).toBe(true);
    // Another key of the same type, and a key of another type, do not verify it.
    expect(verifyCertificateSignature(cert, generateKey('ec-p256').publicKey)).toBe(false);
    expect(
      verifyCertificateSignature(
        cert,
        generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey,
      ),
    ).toBe(false);
    // A changed signed byte breaks it.
    const tampered = { ...cert, tbsDer: Uint8Array.from(cert.tbsDer) };
    tampered.tbsDer[20]! ^= 1;
    expect(verifyCertificateSignature(tampered, keys.publicKey)).toBe(false);
  });

  it('checks Ed25519', () => {
    const k = generateKeyPairSync('ed25519');
    const cert = resign(seq(oid('1.3.101.112')), (tbs) => nodeSign(null, tbs, k.privateKey));
    expect(verifyCertificateSignature(cert, k.publicKey)).toBe(true);
    expect(verifyCertificateSignature(cert, generateKeyPairSync('ed25519').publicKey)).toBe(false);
  });

  it('refuses SHA-1 unless allowed, and unknown or malformed algorithms', () => {
    const sha1 = resign(seq(oid('1.2.840.113549.1.1.5'), DER_NULL), (tbs) =>
      nodeSign('sha1', tbs, rsa.privateKey),
    );
    expect(codeOf(() => verifyCertificateSignature(sha1, rsa.publicKey))).toBe(
      'ERR_X509_UNSUPPORTED',
    );
    expect(verifyCertificateSignature(sha1, rsa.publicKey, { allowSha1: true })).toBe(true);
    const unsupported = (alg: Uint8Array): string | undefined =>
      codeOf(() => signatureScheme(parseCertificate(withAlg(alg)).signatureAlgorithm));
    const withAlg = (alg: Uint8Array): Uint8Array => {
      const p = split(leafDer);
      p.tbs[2] = alg;
      p.sigAlg = alg;
      return join(p);
    };
    expect(unsupported(seq(oid('1.2.3.4')))).toBe('ERR_X509_UNSUPPORTED');
    expect(unsupported(seq(oid('1.2.840.10045.4.3.2'), oid('1.2.3')))).toBe('ERR_X509_UNSUPPORTED');
    expect(unsupported(seq(oid('1.2.840.113549.1.1.11'), oid('1.2.3')))).toBe(
      'ERR_X509_UNSUPPORTED',
    );
    expect(unsupported(seq(oid('1.2.840.113549.1.1.10')))).toBe('ERR_X509_UNSUPPORTED');
    expect(unsupported(seq(oid('1.2.840.113549.1.1.10'), seq()))).toBe('ERR_X509_UNSUPPORTED');
    expect(unsupported(pssParams('2.16.840.1.101.3.4.2.1', 32, '2.16.840.1.101.3.4.2.2'))).toBe(
      'ERR_X509_UNSUPPORTED',
    );
    expect(unsupported(seq(oid('1.2.840.113549.1.1.10'), DER_NULL))).toBe('ERR_X509_UNSUPPORTED');
    // ECDSA with an explicit NULL (seen in a TPM vendor root) is tolerated.
    expect(signatureScheme({ oid: '1.2.840.10045.4.3.3', params: DER_NULL }).hash).toBe('sha384');
  });

  it('verifies the library chain and caches public keys per certificate', () => {
    const inter = parseCertificate(pki.intermediateDer);
    const root = parseCertificate(pki.rootDer);
    const k = certificatePublicKey(root);
    expect(certificatePublicKey(root)).toBe(k);
    expect(k.equals(pki.rootKey.publicKey)).toBe(true);
    expect(verifyCertificateSignature(inter, k)).toBe(true);
    expect(verifyCertificateSignature(root, k)).toBe(true);
    expect(verifyCertificateSignature(parseCertificate(leafDer), certificatePublicKey(inter))).toBe(
      true,
    );
  });
});

// ---------------------------------------------------------------------------------------
// Real certificates: TPM EK certificates and manufacturer CAs.

/** Reads a corpus file as DER certificates (NV dumps may carry padding after the DER). */
function corpusCerts(dir: string, f: string): Uint8Array[] {
  const b = readCorpus(dir, f);
  if (b.toString('latin1').includes('-----BEGIN')) {
    return [
      ...b
        .toString('latin1')
        .matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g),
    ].map((m) => new Uint8Array(Buffer.from(m[0].replace(/-----[A-Z ]+-----|\s/g, ''), 'base64')));
  }
  const t = readTlv(b);
  return [new Uint8Array(b.subarray(0, t.end))];
}

describe('real EK certificates and TPM manufacturer CAs (corpus)', () => {
  const entries = ['ek-certs', 'ek-roots'].flatMap((dir) =>
    listCorpus(dir).map((f) => ({ dir, f, ders: corpusCerts(dir, f) })),
  );

  it('parses every corpus certificate', () => {
    expect(entries.length).toBeGreaterThanOrEqual(100);
    let n = 0;
    for (const e of entries) {
      for (const der of e.ders) {
        const c = parseCertificate(der);
        expect(c.version, e.f).toBe(3);
        n++;
      }
    }
    expect(n).toBeGreaterThanOrEqual(100);
  });

  it('reads raw EK files (PEM, DER, NV dumps with padding) with only coded errors', () => {
    const outcomes = listCorpus('ek-certs').map((f) => {
      const b = readCorpus('ek-certs', f);
      const input = f.endsWith('.pem') ? b.toString('latin1') : new Uint8Array(b);
      try {
        return parseCertificates(input).length;
      } catch (err) {
        if (!isSpireEdgeError(err, 'ERR_X509_INVALID')) throw err;
        return err.code;
      }
    });
    // keylime__st_sha256_with_rsa.der is an NV read: the DER certificate then 0xff padding.
    expect(outcomes.filter((o) => o === 'ERR_X509_INVALID')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 1).length).toBe(outcomes.length - 1);
  });

  it('parses the EK certificates as EK certificates (critical directoryName SAN, no subject)', () => {
    const ek = parseCertificate(corpusCerts('ek-certs', 'keylime__st_ecdsa_sha256.der')[0]!);
    expect(ek.extensions.subjectAltName?.critical).toBe(true);
    expect(ek.extensions.subjectAltName?.directoryNames.length).toBe(1);
    const attrs = nameAttributes(ek.extensions.subjectAltName!.directoryNames[0]!).map(
      (a) => a.oid,
    );
    expect(attrs).toEqual(expect.arrayContaining(['2.23.133.2.1', '2.23.133.2.2', '2.23.133.2.3']));
    expect(ek.extensions.unknownCritical).toEqual([]);
  });

  it('verifies, for every corpus certificate, a signature by a corpus issuer of that name', () => {
    const certs = entries.flatMap((e) => e.ders.map((d) => ({ f: e.f, c: parseCertificate(d) })));
    let links = 0;
    for (const child of certs) {
      // Two AMD roots share one name (and carry no AKI): only one of them signed each.
      // Self-signed roots are their own candidates.
      const parents = certs.filter((p) => Buffer.compare(child.c.issuerDer, p.c.subjectDer) === 0);
      if (parents.length === 0) continue;
      const verified = parents.filter((p) =>
        verifyCertificateSignature(child.c, certificatePublicKey(p.c), { allowSha1: true }),
      );
      expect(verified.length, child.f).toBeGreaterThan(0);
      links += verified.length;
    }
    expect(links).toBeGreaterThanOrEqual(50);
  });
});

// ---------------------------------------------------------------------------------------
// Untrusted bytes never escape as anything but a coded error.

function onlyCoded(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!isSpireEdgeError(err, 'ERR_X509_INVALID')) throw err;
  }
}

describe('parseCertificate on hostile bytes (property)', () => {
  const seeds = (): Uint8Array[] => [
    leafDer,
    rich,
    pki.rootDer,
    corpusCerts('ek-certs', 'keylime__st_ecdsa_sha256.der')[0]!,
  ];

  it('throws only ERR_X509_INVALID for random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => onlyCoded(() => parseCertificate(b))),
      { numRuns: 300 },
    );
  });

  it('throws only ERR_X509_INVALID for mutated certificates', () => {
    const base = seeds();
    fc.assert(
      fc.property(
        fc.nat(base.length - 1),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.option(fc.nat(), { nil: undefined }),
        (which, edits, cut) => {
          const b = Uint8Array.from(base[which]!);
          for (const [pos, v] of edits) b[pos % b.length] = v;
          const input = cut === undefined ? b : b.subarray(0, cut % (b.length + 1));
          onlyCoded(() => {
            const c = parseCertificate(input);
            // Whatever parses must also be safe to look at.
            formatName(c.subjectDer);
            try {
              verifyCertificateSignature(c, certificatePublicKey(c));
            } catch (err) {
              if (!isSpireEdgeError(err)) throw err;
            }
          });
        },
      ),
      { numRuns: 400 },
    );
  });

  it('keeps parsing what a DER-faithful mutation leaves valid', () => {
    // Sanity for the property above: unmutated seeds parse.
    for (const s of seeds()) expect(parseCertificate(s).der).toBe(s);
  });
});
