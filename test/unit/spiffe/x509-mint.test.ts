import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCsr } from '../../../src/agent/attestation/csr.js';
import { children, readWhole, tlvContents } from '../../../src/common/der.js';
import { seededRandom } from '../../../src/common/random.js';
import { parseTrustDomain } from '../../../src/spiffe/id.js';
import { spkiFromKeyObject } from '../../../src/spiffe/internal/spki.js';
import { X509Bundle } from '../../../src/spiffe/x509-bundle.js';
import { formatName, parseCertificate } from '../../../src/spiffe/x509-cert.js';
import {
  DEFAULT_X509_SVID_SUBJECT,
  mintX509CaCertificate,
  mintX509SvidFromCsr,
  X509SvidMinter,
} from '../../../src/spiffe/x509-mint.js';
import { parseX509SvidRaw } from '../../../src/spiffe/x509-svid.js';
import { verifyX509Svid } from '../../../src/spiffe/x509-verify.js';
import {
  generateKey,
  HOUR,
  makePki,
  memorySigner,
  NOW,
  px,
  type TestKey,
  type TestPki,
  thrown,
  thrownAsync,
} from './x509-support.js';

const sha1 = (b: Uint8Array): string => createHash('sha1').update(b).digest('hex');
/** The subjectPublicKey BIT STRING value of an SPKI (what key identifiers hash). */
const keyBits = (spki: Uint8Array): Uint8Array =>
  tlvContents(children(readWhole(spki, 'spki'))[1]!).subarray(1);
const hex = (b: Uint8Array | undefined): string => Buffer.from(b ?? []).toString('hex');
const later = (h: number): Date => new Date(NOW.getTime() + h * HOUR);

let pki: TestPki;
let leafKey: TestKey;

beforeAll(async () => {
  pki = await makePki();
  leafKey = generateKey('ec-p256');
});

describe('mintX509CaCertificate', () => {
  it('mints a self-signed CA shaped as SPIRE does', async () => {
    const key = generateKey('ec-p256');
    const der = await mintX509CaCertificate({
      trustDomain: 'example.org',
      subject: { country: ['US'], organization: ['SPIFFE'] },
      publicKey: key.publicKey,
      notBefore: NOW,
      notAfter: later(24),
      signer: memorySigner('ec-p256', key),
      serial: Uint8Array.of(0x01, 0x02),
    });
    const c = parseCertificate(der);
    // SPIRE sets the subject serialNumber to the certificate serial in decimal.
    expect(formatName(c.subjectDer)).toBe('C=US, O=SPIFFE, serialNumber=258');
    expect(Buffer.from(c.issuerDer)).toEqual(Buffer.from(c.subjectDer));
    expect(hex(c.serial)).toBe('0102');
    expect(c.extensions.basicConstraints).toEqual({ ca: true, critical: true });
    expect(c.extensions.keyUsage).toMatchObject({
      digitalSignature: true,
      keyCertSign: true,
      cRLSign: true,
      keyEncipherment: false,
      critical: true,
    });
    expect(c.extensions.subjectAltName).toMatchObject({
      uris: ['spiffe://example.org'],
      critical: false,
    });
    expect(hex(c.extensions.subjectKeyId)).toBe(sha1(keyBits(key.spki)));
    expect(hex(c.extensions.authorityKeyId)).toBe(hex(c.extensions.subjectKeyId));
    expect(c.extensions.extKeyUsage).toBeUndefined();
    const node = new X509Certificate(der);
    expect(node.ca).toBe(true);
    expect(node.verify(key.publicKey)).toBe(true);
    expect(node.checkIssued(node)).toBe(true);
  });

  it('mints an intermediate: issuer name, AKI from the issuer SKI, pathLen, capped notAfter', async () => {
    const key = generateKey('ec-p384');
    const der = await mintX509CaCertificate({
      trustDomain: parseTrustDomain('example.org'),
      subject: { organization: ['SPIFFE'], organizationalUnit: ['DOWNSTREAM-1'], serialNumber: '' },
      publicKey: key.spki,
      notBefore: NOW,
      notAfter: later(10_000),
      signer: pki.rootSigner,
      issuerCertDer: pki.rootDer,
      pathLenConstraint: 0,
    });
    const c = parseCertificate(der);
    const root = parseCertificate(pki.rootDer);
    expect(formatName(c.subjectDer)).toBe('O=SPIFFE, OU=DOWNSTREAM-1');
    expect(Buffer.from(c.issuerDer)).toEqual(Buffer.from(root.subjectDer));
    expect(hex(c.extensions.authorityKeyId)).toBe(hex(root.extensions.subjectKeyId));
    expect(c.extensions.basicConstraints).toEqual({ ca: true, pathLen: 0, critical: true });
    expect(c.notAfter).toEqual(root.notAfter);
    expect(new X509Certificate(der).checkIssued(new X509Certificate(pki.rootDer))).toBe(true);
    expect(new X509Certificate(der).verify(pki.rootKey.publicKey)).toBe(true);
  });

  it('marks the URI SAN critical when the subject is empty (RFC 5280 §4.1.2.6)', async () => {
    const key = generateKey('ec-p256');
    const der = await mintX509CaCertificate({
      trustDomain: 'example.org',
      subject: { serialNumber: '' },
      publicKey: key.publicKey,
      notBefore: NOW,
      notAfter: later(1),
      signer: memorySigner('ec-p256', key),
    });
    const c = parseCertificate(der);
    expect(c.subjectDer).toEqual(Uint8Array.of(0x30, 0));
    expect(c.extensions.subjectAltName?.critical).toBe(true);
  });

  it('signs with the algorithm of the signer key type', async () => {
    const expected = {
      'ec-p256': '1.2.840.10045.4.3.2',
      'ec-p384': '1.2.840.10045.4.3.3',
      'rsa-2048': '1.2.840.113549.1.1.11',
    };
    for (const [keyType, algOid] of Object.entries(expected) as Array<['ec-p256', string]>) {
      const key = generateKey(keyType);
      const der = await mintX509CaCertificate({
        trustDomain: 'example.org',
        subject: {},
        publicKey: key.publicKey,
        notBefore: NOW,
        notAfter: later(1),
        signer: memorySigner(keyType, key, { sync: false }),
      });
      expect(parseCertificate(der).signatureAlgorithm.oid).toBe(algOid);
      expect(new X509Certificate(der).verify(key.publicKey)).toBe(true);
    }
  });

  it('refuses a signer that does not hold the issuer key, and other bad arguments', async () => {
    const key = generateKey('ec-p256');
    const base = {
      trustDomain: 'example.org',
      subject: {},
      publicKey: key.publicKey,
      notBefore: NOW,
      notAfter: later(1),
      signer: memorySigner('ec-p256', key),
    };
    await expect(
      mintX509CaCertificate({ ...base, signer: memorySigner('ec-p256') }),
    ).rejects.toThrow('self-signed CA must be signed with its own key');
    await expect(mintX509CaCertificate({ ...base, issuerCertDer: pki.rootDer })).rejects.toThrow(
      "signer's public key does not match the issuer certificate",
    );
    await expect(mintX509CaCertificate({ ...base, notAfter: NOW })).rejects.toThrow(TypeError);
    await expect(mintX509CaCertificate({ ...base, pathLenConstraint: -1 })).rejects.toThrow(
      TypeError,
    );
    await expect(mintX509CaCertificate({ ...base, subject: { country: ['USA'] } })).rejects.toThrow(
      TypeError,
    );
    await expect(mintX509CaCertificate({ ...base, serial: new Uint8Array(4) })).rejects.toThrow(
      TypeError,
    );
    await expect(
      mintX509CaCertificate({ ...base, serial: new Uint8Array(21).fill(1) }),
    ).rejects.toThrow(TypeError);
    const err = await thrownAsync(() => mintX509CaCertificate({ ...base, trustDomain: 'Bad TD' }));
    expect(err.code).toBe('ERR_TRUST_DOMAIN_INVALID');
  });
});

describe('X509SvidMinter', () => {
  const mintOpts = {
    spiffeId: 'spiffe://example.org/ns/web',
    notBefore: NOW,
    notAfter: later(1),
  };

  it('mints an X509-SVID shaped as SPIRE does', async () => {
    const der = await pki.minter.mint({ ...mintOpts, publicKey: leafKey.publicKey });
    const c = parseCertificate(der);
    const issuer = parseCertificate(pki.intermediateDer);
    expect(formatName(c.subjectDer)).toBe('C=US, O=SPIRE');
    expect(Buffer.from(c.issuerDer)).toEqual(Buffer.from(issuer.subjectDer));
    expect(c.extensions.keyUsage).toEqual({
      digitalSignature: true,
      contentCommitment: false,
      keyEncipherment: true,
      dataEncipherment: false,
      keyAgreement: true,
      keyCertSign: false,
      cRLSign: false,
      encipherOnly: false,
      decipherOnly: false,
      critical: true,
    });
    expect(c.extensions.extKeyUsage).toEqual({
      oids: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'],
      critical: false,
    });
    expect(c.extensions.basicConstraints).toEqual({ ca: false, critical: true });
    expect(c.extensions.subjectAltName).toMatchObject({
      uris: ['spiffe://example.org/ns/web'],
      dnsNames: [],
      critical: false,
    });
    expect(hex(c.extensions.subjectKeyId)).toBe(sha1(keyBits(leafKey.spki)));
    expect(hex(c.extensions.authorityKeyId)).toBe(hex(issuer.extensions.subjectKeyId));
    expect(c.notBefore).toEqual(NOW);
    expect(c.notAfter).toEqual(later(1));
    expect(c.serial.length === 16 || (c.serial.length === 17 && c.serial[0] === 0)).toBe(true);
    // node (OpenSSL) and @peculiar/x509 read the same certificate.
    const node = new X509Certificate(der);
    expect(node.ca).toBe(false);
    expect(node.subjectAltName).toBe('URI:spiffe://example.org/ns/web');
    expect(node.checkIssued(new X509Certificate(pki.intermediateDer))).toBe(true);
    expect(node.verify(new X509Certificate(pki.intermediateDer).publicKey)).toBe(true);
    const p = new px.X509Certificate(der);
    expect(p.getExtension(px.KeyUsagesExtension)?.usages).toBe(
      px.KeyUsageFlags.digitalSignature |
        px.KeyUsageFlags.keyEncipherment |
        px.KeyUsageFlags.keyAgreement,
    );
    expect(p.getExtension(px.SubjectKeyIdentifierExtension)?.keyId).toBe(
      (await px.SubjectKeyIdentifierExtension.create(await p.publicKey.export())).keyId,
    );
  });

  it('sets DNS SANs and the first as CN (SPIRE), over the default or a given subject', async () => {
    const a = parseCertificate(
      await pki.minter.mint({
        ...mintOpts,
        publicKey: leafKey.publicKey,
        dnsNames: ['a.example', '*.b.example'],
      }),
    );
    expect(formatName(a.subjectDer)).toBe('C=US, O=SPIRE, CN=a.example');
    expect(a.extensions.subjectAltName?.dnsNames).toEqual(['a.example', '*.b.example']);
    expect(a.extensions.subjectAltName?.uris).toEqual(['spiffe://example.org/ns/web']);
    const b = parseCertificate(
      await pki.minter.mint({
        ...mintOpts,
        publicKey: leafKey.publicKey,
        subject: { country: ['DE'], organization: ['Acme Édition'], commonName: 'ignored' },
        dnsNames: ['c.example'],
      }),
    );
    expect(formatName(b.subjectDer)).toBe('C=DE, O=Acme Édition, CN=c.example');
    const c = parseCertificate(
      await pki.minter.mint({ ...mintOpts, publicKey: leafKey.publicKey, subject: {} }),
    );
    expect(c.subjectDer).toEqual(Uint8Array.of(0x30, 0));
    expect(c.extensions.subjectAltName?.critical).toBe(true);
    expect(DEFAULT_X509_SVID_SUBJECT).toEqual({ country: ['US'], organization: ['SPIRE'] });
  });

  it('encodes a public key given as a KeyObject exactly as its SPKI DER', async () => {
    for (const t of ['ec-p256', 'ec-p384', 'ec-p521', 'rsa-2048', 'ed25519'] as const) {
      const k = generateKey(t);
      expect(hex(spkiFromKeyObject(k.publicKey)), t).toBe(hex(k.spki));
      expect(hex(spkiFromKeyObject(k.privateKey)), t).toBe(hex(k.spki));
      const serial = Uint8Array.of(0x42);
      const fromKey = parseCertificate(
        await pki.minter.mint({ ...mintOpts, publicKey: k.publicKey, serial }),
      );
      const fromDer = parseCertificate(
        await pki.minter.mint({ ...mintOpts, publicKey: k.spki, serial }),
      );
      expect(hex(fromKey.tbsDer), t).toBe(hex(fromDer.tbsDer));
    }
  });

  it('draws 128-bit serials from the injected random source', async () => {
    const m1 = new X509SvidMinter({
      issuerCertDer: pki.intermediateDer,
      signer: pki.intermediateSigner,
      random: seededRandom(7),
    });
    const m2 = new X509SvidMinter({
      issuerCertDer: pki.intermediateDer,
      signer: pki.intermediateSigner,
      random: seededRandom(7),
    });
    const s1 = parseCertificate(m1.mintSync({ ...mintOpts, publicKey: leafKey.publicKey })).serial;
    const s2 = parseCertificate(m2.mintSync({ ...mintOpts, publicKey: leafKey.publicKey })).serial;
    expect(hex(s1)).toBe(hex(s2));
    const serials = new Set<string>();
    for (let i = 0; i < 50; i++) {
      serials.add(
        hex(
          parseCertificate(pki.minter.mintSync({ ...mintOpts, publicKey: leafKey.publicKey }))
            .serial,
        ),
      );
    }
    expect(serials.size).toBe(50);
    // An all-zero draw still gives a positive serial.
    const zero = { bytes: (n: number) => new Uint8Array(n), float: () => 0, int: (a: number) => a };
    const mz = new X509SvidMinter({
      issuerCertDer: pki.intermediateDer,
      signer: pki.intermediateSigner,
      random: zero,
    });
    expect(
      hex(parseCertificate(mz.mintSync({ ...mintOpts, publicKey: leafKey.publicKey })).serial),
    ).toBe('01');
  });

  it('caps notAfter at the CA notAfter and refuses a start after it', async () => {
    const caEnd = parseCertificate(pki.intermediateDer).notAfter;
    expect(pki.minter.issuerNotAfter).toEqual(caEnd);
    const c = parseCertificate(
      await pki.minter.mint({
        ...mintOpts,
        publicKey: leafKey.publicKey,
        notAfter: later(100_000),
      }),
    );
    expect(c.notAfter).toEqual(caEnd);
    await expect(
      pki.minter.mint({
        ...mintOpts,
        publicKey: leafKey.publicKey,
        notBefore: new Date(caEnd.getTime() + 1000),
        notAfter: new Date(caEnd.getTime() + 2000),
      }),
    ).rejects.toThrow('the CA certificate expires before notBefore');
  });

  it('learns the trust domain from the CA and refuses IDs outside it or without a path', async () => {
    expect(pki.minter.trustDomain?.name).toBe('example.org');
    await expect(
      pki.minter.mint({
        ...mintOpts,
        spiffeId: 'spiffe://other.org/x',
        publicKey: leafKey.publicKey,
      }),
    ).rejects.toThrow("spiffeId must be a member of the CA's trust domain example.org");
    await expect(
      pki.minter.mint({
        ...mintOpts,
        spiffeId: 'spiffe://example.org',
        publicKey: leafKey.publicKey,
      }),
    ).rejects.toThrow('non-root path');
    const err = await thrownAsync(() =>
      pki.minter.mint({
        ...mintOpts,
        spiffeId: 'spiffe://example.org/a/../b',
        publicKey: leafKey.publicKey,
      }),
    );
    expect(err.code).toBe('ERR_SPIFFE_ID_INVALID');
  });

  it('refuses bad keys: coded for key bytes, TypeError for KeyObjects', async () => {
    const off = Uint8Array.from(leafKey.spki);
    off[off.length - 1]! ^= 1;
    const codes = await Promise.all(
      [
        off,
        Uint8Array.of(1, 2, 3),
        new Uint8Array(
          generateKeyPairSync('ed448').publicKey.export({ format: 'der', type: 'spki' }),
        ),
      ].map(
        async (k) => (await thrownAsync(() => pki.minter.mint({ ...mintOpts, publicKey: k }))).code,
      ),
    );
    expect(codes).toEqual([
      'ERR_PUBLIC_KEY_INVALID',
      'ERR_PUBLIC_KEY_INVALID',
      'ERR_PUBLIC_KEY_INVALID',
    ]);
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
    await expect(pki.minter.mint({ ...mintOpts, publicKey: small })).rejects.toThrow(
      'at least 2048 bits',
    );
    const p224 = generateKeyPairSync('ec', { namedCurve: 'P-224' }).publicKey;
    await expect(pki.minter.mint({ ...mintOpts, publicKey: p224 })).rejects.toThrow(TypeError);
    await expect(pki.minter.mint({ ...mintOpts, publicKey: 'pem' as never })).rejects.toThrow(
      TypeError,
    );
  });

  it('refuses bad arguments with TypeError', async () => {
    const k = leafKey.publicKey;
    await expect(pki.minter.mint({ ...mintOpts, publicKey: k, notAfter: NOW })).rejects.toThrow(
      TypeError,
    );
    await expect(
      pki.minter.mint({ ...mintOpts, publicKey: k, notBefore: new Date('x') }),
    ).rejects.toThrow(TypeError);
    await expect(pki.minter.mint({ ...mintOpts, publicKey: k, dnsNames: ['a b'] })).rejects.toThrow(
      TypeError,
    );
    await expect(pki.minter.mint({ ...mintOpts, publicKey: k, dnsNames: [''] })).rejects.toThrow(
      TypeError,
    );
    await expect(
      pki.minter.mint({ ...mintOpts, publicKey: k, dnsNames: 'a' as never }),
    ).rejects.toThrow(TypeError);
    expect(
      () => new X509SvidMinter({ issuerCertDer: pki.intermediateDer, signer: pki.rootSigner }),
    ).toThrow("signer's public key does not match the issuer certificate");
    const leaf = await pki.minter.mint({ ...mintOpts, publicKey: leafKey.publicKey });
    expect(
      () => new X509SvidMinter({ issuerCertDer: leaf, signer: pki.intermediateSigner }),
    ).toThrow('issuerCertDer must be a CA certificate');
    expect(
      thrown(
        () =>
          new X509SvidMinter({ issuerCertDer: Uint8Array.of(1), signer: pki.intermediateSigner }),
      ).code,
    ).toBe('ERR_X509_INVALID');
    expect(
      () => new X509SvidMinter({ issuerCertDer: pki.intermediateDer, signer: {} as never }),
    ).toThrow(TypeError);
  });

  it('mints synchronously when the signer can, and only then', async () => {
    expect(pki.minter.canMintSync).toBe(true);
    const der = pki.minter.mintSync({ ...mintOpts, publicKey: leafKey.spki });
    expect(
      verifyX509Svid([der, pki.intermediateDer], new X509Bundle('example.org', [pki.rootDer]), {
        now: NOW,
      }).id.path,
    ).toBe('/ns/web');
    const asyncOnly = new X509SvidMinter({
      issuerCertDer: pki.intermediateDer,
      signer: { ...pki.intermediateSigner, signSync: undefined } as never,
    });
    expect(asyncOnly.canMintSync).toBe(false);
    expect(() => asyncOnly.mintSync({ ...mintOpts, publicKey: leafKey.spki })).toThrow(TypeError);
    const viaAsync = await asyncOnly.mint({ ...mintOpts, publicKey: leafKey.spki });
    expect(parseCertificate(viaAsync).extensions.subjectAltName?.uris).toEqual([
      'spiffe://example.org/ns/web',
    ]);
  });

  it('keeps the CN subjects right across the per-name cache and its overflow', async () => {
    const spki = leafKey.spki;
    // One real signature reused: this test is about the subjects, not the signatures.
    const fixed = pki.intermediateSigner.signSync!(Uint8Array.of(1));
    const minter = new X509SvidMinter({
      issuerCertDer: pki.intermediateDer,
      signer: { ...pki.intermediateSigner, signSync: () => fixed },
    });
    const subjectOf = (dnsNames: string[], subject?: { organization: string[] }) =>
      formatName(
        parseCertificate(
          minter.mintSync({
            ...mintOpts,
            publicKey: spki,
            dnsNames,
            ...(subject === undefined ? {} : { subject }),
          }),
        ).subjectDer,
      );
    expect(subjectOf(['a.example'])).toBe('C=US, O=SPIRE, CN=a.example');
    expect(subjectOf(['b.example', 'a.example'])).toBe('C=US, O=SPIRE, CN=b.example');
    expect(subjectOf(['a.example'])).toBe('C=US, O=SPIRE, CN=a.example');
    // A given subject is never served from the cache of default subjects.
    expect(subjectOf(['a.example'], { organization: ['Acme'] })).toBe('O=Acme, CN=a.example');
    // More names than the cache holds: it starts over and stays right.
    for (let i = 0; i < 4200; i++) {
      minter.mintSync({ ...mintOpts, publicKey: spki, dnsNames: [`n${i}.example`] });
    }
    expect(subjectOf(['n0.example'])).toBe('C=US, O=SPIRE, CN=n0.example');
    expect(subjectOf(['n4199.example'])).toBe('C=US, O=SPIRE, CN=n4199.example');
    expect(subjectOf(['a.example'])).toBe('C=US, O=SPIRE, CN=a.example');
  });

  it("mints from a CSR with the signer's asynchronous sign, never signSync", async () => {
    const csr = createCsr(leafKey.privateKey);
    let asyncSigns = 0;
    const signer = {
      ...pki.intermediateSigner,
      sign: (d: Uint8Array) => {
        asyncSigns++;
        return pki.intermediateSigner.sign(d);
      },
      signSync: () => {
        throw new Error('signSync must not be used on the CSR path');
      },
    };
    const minter = new X509SvidMinter({ issuerCertDer: pki.intermediateDer, signer });
    const ders = await Promise.all(
      ['a', 'b', 'c'].map((n) =>
        mintX509SvidFromCsr(minter, csr, {
          spiffeId: `spiffe://example.org/${n}`,
          notBefore: NOW,
          notAfter: later(1),
          dnsNames: [`${n}.example`],
        }),
      ),
    );
    expect(asyncSigns).toBe(3);
    const bundle = new X509Bundle('example.org', [pki.rootDer]);
    ders.forEach((der, i) => {
      const n = ['a', 'b', 'c'][i]!;
      expect(verifyX509Svid([der, pki.intermediateDer], bundle, { now: NOW }).id.path).toBe(
        `/${n}`,
      );
      const c = parseCertificate(der);
      expect(hex(c.spkiDer)).toBe(hex(leafKey.spki));
      expect(hex(c.extensions.subjectKeyId)).toBe(sha1(keyBits(leafKey.spki)));
      expect(formatName(c.subjectDer)).toBe(`C=US, O=SPIRE, CN=${n}.example`);
    });
    // A signer failure is not a CSR problem: it propagates unchanged.
    const failing = new X509SvidMinter({
      issuerCertDer: pki.intermediateDer,
      signer: { ...signer, sign: () => Promise.reject(new TypeError('key gone')) },
    });
    const err = await thrownAsync(() =>
      mintX509SvidFromCsr(failing, csr, {
        spiffeId: 'spiffe://example.org/a',
        notBefore: NOW,
        notAfter: later(1),
      }),
    );
    expect(err).toBeInstanceOf(TypeError);
    expect(err.message).toBe('key gone');
  });

  it('signs with P-384 and RSA CA keys', async () => {
    for (const [t, algOid] of [
      ['ec-p384', '1.2.840.10045.4.3.3'],
      ['rsa-2048', '1.2.840.113549.1.1.11'],
    ] as const) {
      const p = await makePki('example.org', 'ec-p256', t);
      const der = await p.minter.mint({ ...mintOpts, publicKey: leafKey.publicKey });
      expect(parseCertificate(der).signatureAlgorithm.oid).toBe(algOid);
      expect(
        new X509Certificate(der).verify(new X509Certificate(p.intermediateDer).publicKey),
      ).toBe(true);
    }
  });
});

describe('mint → parse round trip (property)', () => {
  const segment = fc
    .stringMatching(/^[A-Za-z0-9._-]{1,12}$/)
    .filter((s) => s !== '.' && s !== '..');
  const keyTypes = ['ec-p256', 'ec-p384', 'rsa-2048', 'ed25519'] as const;
  const keys = new Map(keyTypes.map((t) => [t, generateKey(t)]));

  it('any SPIFFE ID and key minted by the library parses and verifies back', async () => {
    const bundle = new X509Bundle('example.org', [pki.rootDer]);
    await fc.assert(
      fc.asyncProperty(
        fc.array(segment, { minLength: 1, maxLength: 5 }),
        fc.constantFrom(...keyTypes),
        fc.array(fc.stringMatching(/^[a-z0-9-]{1,10}(\.[a-z0-9-]{1,10}){0,2}$/), { maxLength: 3 }),
        fc.boolean(),
        async (segs, keyType, dnsNames, useDer) => {
          const key = keys.get(keyType)!;
          const id = `spiffe://example.org/${segs.join('/')}`;
          const der = await pki.minter.mint({
            spiffeId: id,
            publicKey: useDer ? key.spki : key.publicKey,
            notBefore: NOW,
            notAfter: later(1),
            dnsNames,
          });
          const svid = parseX509SvidRaw(
            Buffer.concat([der, pki.intermediateDer]),
            new Uint8Array(key.privateKey.export({ format: 'der', type: 'pkcs8' })),
          );
          expect(svid.id.toString()).toBe(id);
          expect(svid.expiresAt).toEqual(later(1));
          const c = parseCertificate(der);
          expect(c.extensions.subjectAltName?.dnsNames).toEqual(dnsNames);
          expect(
            verifyX509Svid([der, pki.intermediateDer], bundle, { now: NOW }).id.toString(),
          ).toBe(id);
        },
      ),
      { numRuns: 60 },
    );
  });
});
