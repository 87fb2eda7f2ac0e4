import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ascii,
  bitString,
  DER_NULL,
  oid,
  seq,
  tlv,
  unsignedInteger,
} from '../../../src/common/der.js';
import { encodePem } from '../../../src/common/pem.js';
import {
  ekCertMatchesPublic,
  parseEkCertificate,
  pubHash,
  spkiFromTpmtPublic,
} from '../../../src/tpm/index.js';
import { listCorpus, readCorpus } from '../../support/corpus.js';
import { cnName, makeCa, makeEkCert, makeExtension } from './support/ek-ca.js';
import { makeEk } from './support/soft-tpm.js';

function errorOf(fn: () => unknown): { code: string; message: string; cause?: { code?: string } } {
  try {
    fn();
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('expected an error');
}

const ca = makeCa('Test TPM EK CA');

describe('parseEkCertificate: the real EK certificates of the corpus', () => {
  const files = listCorpus('ek-certs');
  const load = (f: string): Uint8Array | string => {
    const b = readCorpus('ek-certs', f);
    return f.endsWith('.pem') ? b.toString('utf8') : new Uint8Array(b);
  };

  it('holds the ten expected files', () => {
    expect(files).toHaveLength(10);
  });

  it.each([
    ['keylime__st_ecdsa_sha256.der', 'id:53544D20', 'ST33HTPHAHB4', 'id:00490004', 0],
    ['keylime__st_sha256_with_rsa.der', 'id:53544D20', 'ST33HTPHAHB4', 'id:00490004', 431],
    ['gotpmtools__google_gce_uca_tpm_ecc_enc_cert.pem', 'id:474F4F47', 'vTPM', 'id:20160511', 0],
    ['gotpmtools__google_gce_uca_tpm_ecc_sign_cert.pem', 'id:474F4F47', 'vTPM', 'id:20160511', 0],
    ['gotpmtools__google_gce_uca_tpm_rsa_enc_cert.pem', 'id:474F4F47', 'vTPM', 'id:20160511', 0],
    ['gotpmtools__google_gce_uca_tpm_rsa_sign_cert.pem', 'id:474F4F47', 'vTPM', 'id:20160511', 0],
  ])('%s parses under the profile', (file, manufacturer, model, version, padding) => {
    const ek = parseEkCertificate(load(file));
    expect({ m: ek.manufacturer, mo: ek.model, v: ek.version, p: ek.paddingBytes }).toEqual({
      m: manufacturer,
      mo: model,
      v: version,
      p: padding,
    });
    expect(ek.pubHash).toMatch(/^[0-9a-f]{64}$/);
    expect(ek.pubHash).toBe(pubHash(ek.publicKey));
  });

  it('keeps the ST RSA certificate’s 431 bytes of 0xff NV padding out of the DER', () => {
    const raw = load('keylime__st_sha256_with_rsa.der') as Uint8Array;
    const ek = parseEkCertificate(raw);
    expect(ek.cert.der.length).toBe(raw.length - 431);
    expect(raw.subarray(ek.cert.der.length).every((b) => b === 0xff)).toBe(true);
  });

  it.each([
    'gotpmtools__google_gce_pca_tpm_ecc_enc_cert.pem',
    'gotpmtools__google_gce_pca_tpm_ecc_sign_cert.pem',
    'gotpmtools__google_gce_pca_tpm_rsa_enc_cert.pem',
    'gotpmtools__google_gce_pca_tpm_rsa_sign_cert.pem',
  ])(
    '%s (Google "EK/AK CA" hierarchy) has no TPM SAN: refused by the profile, parsed when not required',
    (file) => {
      expect(errorOf(() => parseEkCertificate(load(file)))).toMatchObject({
        code: 'ERR_TPM_EK_CERT_INVALID',
        message:
          'EK certificate has no subjectAltName with the TPM manufacturer, model and version',
      });
      const ek = parseEkCertificate(load(file), { requireTpmAttributes: false });
      expect(ek.manufacturer).toBeUndefined();
      expect(ek.publicKey.asymmetricKeyType).toMatch(/^(rsa|ec)$/);
    },
  );
});

describe('parseEkCertificate: profile rules and vendor quirks', () => {
  it('parses an RSA and an ECC EK certificate whose key is the EK public area', () => {
    for (const kind of ['rsa', 'ecc'] as const) {
      const ek = makeEk(kind);
      const spki = spkiFromTpmtPublic(ek.public);
      const der = makeEkCert(ca, ek.privateKey, { spki });
      const parsed = parseEkCertificate(der);
      expect(parsed).toMatchObject({
        manufacturer: 'id:53504500',
        model: 'swtpm',
        version: 'id:20191023',
      });
      expect(parsed.pubHash).toBe(pubHash(ek.public));
      expect(ekCertMatchesPublic(parsed, ek.public)).toBe(true);
      expect(ekCertMatchesPublic(parsed, makeEk(kind).public)).toBe(false);
      expect(ekCertMatchesPublic(parsed, makeEk(kind === 'rsa' ? 'ecc' : 'rsa').public)).toBe(
        false,
      );
      // PEM text works too.
      expect(parseEkCertificate(encodePem('CERTIFICATE', der)).pubHash).toBe(parsed.pubHash);
    }
  });

  it('accepts the TPM attributes in any order: sorted SET, unsorted SET, one RDN each', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    for (const layout of ['sorted', 'unsorted', 'rdns'] as const) {
      const ek = parseEkCertificate(
        makeEkCert(ca, publicKey, {
          layout,
          manufacturer: 'id:4E544300',
          model: 'NPCT75x',
          version: 'id:00070002',
        }),
      );
      expect([ek.manufacturer, ek.model, ek.version]).toEqual([
        'id:4E544300',
        'NPCT75x',
        'id:00070002',
      ]);
    }
  });

  it('strips uniform NV padding and refuses any other trailing bytes', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const der = makeEkCert(ca, publicKey);
    expect(parseEkCertificate(Uint8Array.of(...der, ...new Array(100).fill(0))).paddingBytes).toBe(
      100,
    );
    expect(parseEkCertificate(Uint8Array.of(...der, 0xff)).paddingBytes).toBe(1);
    expect(errorOf(() => parseEkCertificate(Uint8Array.of(...der, 0, 0, 1)))).toMatchObject({
      code: 'ERR_TPM_EK_CERT_INVALID',
      message: 'EK certificate is followed by 3 bytes that are not NV padding (0x00 or 0xff)',
    });
  });

  it('reads an RSA key whose SPKI says id-RSAES-OAEP (some vendors’ EK certificates)', () => {
    const ek = makeEk('rsa');
    const jwk = ek.privateKey.export({ format: 'jwk' });
    const rsaKey = seq(
      unsignedInteger(Buffer.from(jwk.n!, 'base64url')),
      unsignedInteger(Buffer.from(jwk.e!, 'base64url')),
    );
    const spki = seq(seq(oid('1.2.840.113549.1.1.7'), DER_NULL), bitString(rsaKey));
    const parsed = parseEkCertificate(makeEkCert(ca, ek.privateKey, { spki }));
    expect(parsed.publicKey.asymmetricKeyType).toBe('rsa');
    expect(ekCertMatchesPublic(parsed, ek.public)).toBe(true);
    expect(parsed.pubHash).toBe(pubHash(ek.public));
  });

  it('names what is missing or wrong', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const msg = (o: Parameters<typeof makeEkCert>[2]) =>
      errorOf(() => parseEkCertificate(makeEkCert(ca, publicKey, o))).message;
    expect(msg({ omit: ['version'] })).toBe(
      'EK certificate SAN directoryName has no TPM version (2.23.133.2.3)',
    );
    const dnsSan = makeExtension('2.5.29.17', true, seq(tlv(0x82, ascii('tpm.example'))));
    expect(msg({ omitSan: true, extraExtensions: [dnsSan] })).toBe(
      'EK certificate subjectAltName has no directoryName with the TPM manufacturer, model and version',
    );
    expect(msg({ sanCritical: false })).toBe(
      'EK certificate has an empty subject and a non-critical subjectAltName (RFC 5280 §4.2.1.6)',
    );
    expect(msg({ omitSan: true })).toBe(
      'EK certificate has an empty subject and no subjectAltName',
    );
    // A subject makes a non-critical SAN acceptable.
    expect(
      parseEkCertificate(makeEkCert(ca, publicKey, { sanCritical: false, subject: cnName('ek') }))
        .model,
    ).toBe('swtpm');
    const twice = makeExtension('2.5.29.17', false, new Uint8Array(0));
    expect(
      errorOf(() => parseEkCertificate(makeEkCert(ca, publicKey, { extraExtensions: [twice] }))),
    ).toMatchObject({
      code: 'ERR_TPM_EK_CERT_INVALID',
      cause: { code: 'ERR_X509_INVALID' },
    });
    expect(errorOf(() => parseEkCertificate(Uint8Array.of(0x30, 0x03, 1, 2, 3)))).toMatchObject({
      code: 'ERR_TPM_EK_CERT_INVALID',
      cause: { code: 'ERR_X509_INVALID' },
    });
    expect(errorOf(() => parseEkCertificate(Uint8Array.of(0x30)))).toMatchObject({
      code: 'ERR_TPM_EK_CERT_INVALID',
    });
    expect(errorOf(() => parseEkCertificate('not pem'))).toMatchObject({
      code: 'ERR_TPM_EK_CERT_INVALID',
    });
    expect(() => parseEkCertificate(42 as never)).toThrow(TypeError);
  });
});
