import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { oid, seq, set, TAG, tlv } from '../../../src/common/der.js';
import { encodePem } from '../../../src/common/pem.js';
import { parseCertificate } from '../../../src/spiffe/x509-cert.js';
import { EkCaPool, parseEkCertificate } from '../../../src/tpm/index.js';
import { listCorpus, readCorpus } from '../../support/corpus.js';
import { makeCa, makeEkCert, makeExtension } from './support/ek-ca.js';
import { cn, corpusPool } from './support/ek-corpus.js';

function errorOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('expected an error');
}

const NOW = new Date(Date.UTC(2026, 0, 1));
const ekKey = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;

describe('EK chains of the real corpus', () => {
  const { pool, anchors, intermediates } = corpusPool();

  it('splits ek-roots/ into 40 anchors and 191 intermediates', () => {
    expect(anchors).toHaveLength(40);
    expect(intermediates).toHaveLength(191);
    expect(anchors.map((a) => cn(a.cert))).toContain('IFX TPM EK Root CA');
  });

  // Which chain: every EK certificate of the corpus has its vendor's root in ek-roots/.
  it.each([
    [
      'keylime__st_ecdsa_sha256.der',
      [
        'STM TPM ECC Intermediate CA 01',
        'STM TPM ECC Root CA 01',
        'GlobalSign Trusted Platform Module ECC Root CA',
      ],
    ],
    [
      'keylime__st_sha256_with_rsa.der',
      [
        'STM TPM EK Intermediate CA 05',
        'STM TPM EK Root CA',
        'GlobalSign Trusted Platform Module Root CA',
      ],
    ],
    [
      'gotpmtools__google_gce_uca_tpm_ecc_enc_cert.pem',
      [
        'tpm_ek_v1_cloud_host-signer-0-2021-10-12T04:22:11-07:00 K:1, 3:nbvaGZFLcuc:0:18',
        'tpm_ek_v1_cloud_host_root-signer-0-2018-04-06T10:58:26-07:00 K:1, 1:Pw003HsFYO4:0:18',
      ],
    ],
    [
      'gotpmtools__google_gce_uca_tpm_rsa_enc_cert.pem',
      [
        'tpm_ek_v1_cloud_host-signer-0-2021-10-12T04:22:11-07:00 K:1, 3:nbvaGZFLcuc:0:18',
        'tpm_ek_v1_cloud_host_root-signer-0-2018-04-06T10:58:26-07:00 K:1, 1:Pw003HsFYO4:0:18',
      ],
    ],
    ['gotpmtools__google_gce_pca_tpm_ecc_enc_cert.pem', ['EK/AK CA Intermediate', 'EK/AK CA Root']],
    ['gotpmtools__google_gce_pca_tpm_rsa_enc_cert.pem', ['EK/AK CA Intermediate', 'EK/AK CA Root']],
  ])('%s chains to its vendor root', (file, expected) => {
    const b = readCorpus('ek-certs', file);
    const ek = parseEkCertificate(file.endsWith('.pem') ? b.toString('utf8') : new Uint8Array(b), {
      requireTpmAttributes: !file.includes('_pca_'),
    });
    const chain = pool.verify(ek, { now: NOW });
    expect(chain.slice(1).map(cn)).toEqual(expected);
    // SHA-1 is not needed for any of them.
    expect(pool.verify(ek, { now: NOW, allowSha1: false })).toHaveLength(chain.length);
    // Nor do they chain after their validity.
    expect(errorOf(() => pool.verify(ek, { now: new Date(Date.UTC(2060, 0, 1)) })).code).toBe(
      'ERR_TPM_EK_CERT_INVALID',
    );
  });

  it('covers all ten EK certificates (the four AK certificates of the same hierarchies chain too)', () => {
    let chained = 0;
    for (const file of listCorpus('ek-certs')) {
      const b = readCorpus('ek-certs', file);
      const ek = parseEkCertificate(
        file.endsWith('.pem') ? b.toString('utf8') : new Uint8Array(b),
        {
          requireTpmAttributes: false,
        },
      );
      pool.verify(ek, { now: NOW });
      chained++;
    }
    expect(chained).toBe(10);
  });

  // Which vendor CAs need SHA-1: each intermediate of ek-roots/ checked at a time inside its
  // validity. 174 chain with SHA-2 signatures; the 17 Infineon "IFX TPM EK Intermediate CA
  // NN" certificates (sha1WithRSAEncryption by "IFX TPM EK Root CA") chain only with allowSha1.
  it('chains every corpus intermediate to an anchor; only old Infineon ones need SHA-1', () => {
    const needSha1: string[] = [];
    let ok = 0;
    for (const i of intermediates) {
      const now = new Date(
        Math.min(
          Math.max(Date.UTC(2025, 5, 1), i.cert.notBefore.getTime() + 86_400_000),
          i.cert.notAfter.getTime() - 86_400_000,
        ),
      );
      try {
        pool.verifyCaCertificate(i.cert, { now });
        ok++;
      } catch (e) {
        expect((e as { message: string }).message).toMatch(/uses SHA-1 \(allowSha1 is off\)$/);
        expect(pool.verifyCaCertificate(i.cert, { now, allowSha1: true }).length).toBeGreaterThan(
          1,
        );
        needSha1.push(cn(i.cert));
      }
    }
    expect(ok).toBe(174);
    expect(needSha1).toHaveLength(17);
    expect(needSha1.every((n) => /^IFX TPM EK Intermediate CA \d\d$/.test(n))).toBe(true);
  });
});

describe('EkCaPool: chain rules', () => {
  const root = makeCa('Test Root CA');
  const inter = makeCa('Test EK Intermediate', { issuer: root });
  const pool = EkCaPool.from({ roots: [root.der], intermediates: [inter.der] });

  it('returns [ek, intermediate, root]', () => {
    const ek = parseEkCertificate(makeEkCert(inter, ekKey()));
    expect(pool.verify(ek, { now: NOW }).map((c) => c.der)).toEqual([
      ek.cert.der,
      inter.der,
      root.der,
    ]);
  });

  it('loads roots and intermediates from PEM bundles and DER with a trailing newline', () => {
    const p = EkCaPool.from({
      roots: [`# comment\n${encodePem('CERTIFICATE', root.der)}`],
      intermediates: [
        Uint8Array.of(...inter.der, 0x0a),
        new TextEncoder().encode(encodePem('CERTIFICATE', inter.der)),
      ],
    });
    expect(p.verify(parseEkCertificate(makeEkCert(inter, ekKey())), { now: NOW })).toHaveLength(3);
    expect(() => EkCaPool.from({ roots: [] })).toThrow(TypeError);
    expect(errorOf(() => EkCaPool.from({ roots: [Uint8Array.of(1, 2)] })).code).toBe(
      'ERR_X509_INVALID',
    );
  });

  it('keeps a DER certificate whose own last byte is a whitespace byte whole', () => {
    let ws: ReturnType<typeof makeCa> | undefined;
    for (let i = 0; i < 2000 && ws === undefined; i++) {
      const c = makeCa('Whitespace Root', { kind: 'ec' });
      if ([0x0a, 0x0d, 0x20, 0x09].includes(c.der[c.der.length - 1]!)) ws = c;
    }
    if (ws === undefined) throw new Error('no certificate ending in whitespace was generated');
    const p = EkCaPool.from({
      roots: [ws.der],
      intermediates: [Uint8Array.of(...ws.der, 0x0a, 0x0a)],
    });
    expect(p.roots[0]!.der).toEqual(ws.der);
    expect(p.intermediates[0]!.der).toEqual(ws.der);
  });

  it('names the reason a chain fails', () => {
    const msg = (der: Uint8Array, p = pool, now = NOW, allowSha1 = false) =>
      errorOf(() => p.verify(parseEkCertificate(der), { now, allowSha1 })).message;

    const stranger = makeCa('Stranger CA');
    expect(msg(makeEkCert(stranger, ekKey()))).toBe(
      'EK certificate chain: no issuer of (empty subject) (issuer "CN=Stranger CA") among the configured EK roots and intermediates',
    );
    const impostor = makeCa('Test EK Intermediate', { issuer: root }); // same name, other key
    expect(msg(makeEkCert(impostor, ekKey()))).toBe(
      'EK certificate chain: signature of (empty subject) does not verify with the key of "CN=Test EK Intermediate"',
    );
    expect(msg(makeEkCert(inter, ekKey(), { notAfter: new Date(Date.UTC(2025, 0, 1)) }))).toBe(
      'EK certificate is not valid at 2026-01-01T00:00:00.000Z (valid 2020-01-01T00:00:00.000Z to 2025-01-01T00:00:00.000Z)',
    );
    const oldInter = makeCa('Old Intermediate', {
      issuer: root,
      notAfter: new Date(Date.UTC(2025, 0, 1)),
    });
    const p2 = EkCaPool.from({ roots: [root.der], intermediates: [oldInter.der] });
    expect(msg(makeEkCert(oldInter, ekKey()), p2)).toBe(
      'EK certificate chain: CA certificate "CN=Old Intermediate" is not valid at 2026-01-01T00:00:00.000Z (valid 2020-01-01T00:00:00.000Z to 2025-01-01T00:00:00.000Z)',
    );
    const notCa = makeCa('Not A CA', { issuer: root, ca: false });
    const p3 = EkCaPool.from({ roots: [root.der], intermediates: [notCa.der] });
    expect(msg(makeEkCert(notCa, ekKey()), p3)).toBe(
      'EK certificate chain: CA certificate "CN=Not A CA" is not a CA (basicConstraints cA is not set)',
    );
    const tight = makeCa('Tight', { issuer: root, pathLen: 0 });
    const below = makeCa('Below Tight', { issuer: tight });
    const p4 = EkCaPool.from({ roots: [root.der], intermediates: [tight.der, below.der] });
    expect(msg(makeEkCert(below, ekKey()), p4)).toBe(
      'EK certificate chain: CA certificate "CN=Tight" pathLenConstraint 0 is exceeded',
    );
    expect(p4.verify(parseEkCertificate(makeEkCert(tight, ekKey())), { now: NOW })).toHaveLength(3);
    expect(msg(makeEkCert(inter, ekKey(), { ca: true }))).toBe(
      'EK certificate is a CA certificate',
    );
    const unknownCritical = makeExtension('1.2.3.4', true, Uint8Array.of(5, 0));
    expect(msg(makeEkCert(inter, ekKey(), { extraExtensions: [unknownCritical] }))).toBe(
      'EK certificate has unprocessed critical extension 1.2.3.4',
    );
  });

  it('accepts a critical certificatePolicies (STMicroelectronics) but not other unknown critical extensions', () => {
    const policies = makeExtension('2.5.29.32', true, seq(seq(oid('2.23.133.2.1'))));
    const ek = parseEkCertificate(makeEkCert(inter, ekKey(), { extraExtensions: [policies] }));
    expect(pool.verify(ek, { now: NOW })).toHaveLength(3);
  });

  it('refuses SHA-1 signatures unless allowSha1', () => {
    const sha1Inter = makeCa('SHA1 Intermediate', { issuer: root, hash: 'sha1' });
    const p = EkCaPool.from({ roots: [root.der], intermediates: [sha1Inter.der] });
    const ek = parseEkCertificate(makeEkCert(sha1Inter, ekKey()));
    expect(errorOf(() => p.verify(ek, { now: NOW })).message).toBe(
      'EK certificate chain: signature of "CN=SHA1 Intermediate" by "CN=Test Root CA" uses SHA-1 (allowSha1 is off)',
    );
    expect(p.verify(ek, { now: NOW, allowSha1: true })).toHaveLength(3);
    // The memo keeps the two answers apart.
    expect(errorOf(() => p.verify(ek, { now: NOW })).code).toBe('ERR_TPM_EK_CERT_INVALID');
    const sha1Ek = parseEkCertificate(makeEkCert(inter, ekKey(), { hash: 'sha1' }));
    expect(errorOf(() => pool.verify(sha1Ek, { now: NOW })).message).toMatch(
      /uses SHA-1 \(allowSha1 is off\)$/,
    );
    expect(pool.verify(sha1Ek, { now: NOW, allowSha1: true })).toHaveLength(3);
  });

  it('matches issuer names after case and space folding (vendors re-encode names)', () => {
    // The CA's subject is UTF8String "Test Root CA"; this issuer is PrintableString "TEST  root ca".
    const folded = seq(
      set(
        seq(oid('2.5.4.3'), tlv(TAG.PRINTABLE_STRING, new TextEncoder().encode('TEST  root ca'))),
      ),
    );
    const ek = parseEkCertificate(makeEkCert({ ...root, name: folded }, ekKey()));
    expect(pool.verify(ek, { now: NOW })).toHaveLength(2);
  });

  it('stops at an anchor that is not self-signed, and accepts a pinned EK certificate', () => {
    const p = EkCaPool.from({ roots: [inter.der] });
    expect(p.verify(parseEkCertificate(makeEkCert(inter, ekKey())), { now: NOW })).toHaveLength(2);
    const pinned = makeEkCert(inter, ekKey());
    expect(
      EkCaPool.from({ roots: [pinned] }).verify(parseCertificate(pinned), { now: NOW }),
    ).toHaveLength(1);
    expect(() => p.verify(parseCertificate(pinned), { now: new Date('x') })).toThrow(TypeError);
  });
});
