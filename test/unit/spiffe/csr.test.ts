import {
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign as nodeSign,
  verify as nodeVerify,
  webcrypto,
} from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCsr } from '../../../src/agent/attestation/csr.js';
import {
  bitString,
  children,
  oid,
  readWhole,
  seq,
  smallInteger,
  tlv,
  tlvBytes,
} from '../../../src/common/der.js';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import { encodePem } from '../../../src/common/pem.js';
import {
  type EcdsaVerifier,
  type ParsedCsr,
  parseCsr,
  parseCsrAsync,
} from '../../../src/spiffe/csr.js';
import { formatName, parseCertificate } from '../../../src/spiffe/x509-cert.js';
import { mintX509SvidFromCsr } from '../../../src/spiffe/x509-mint.js';
import {
  HOUR,
  keyObject,
  makePki,
  NOW,
  type PxKey,
  px,
  pxKey,
  pxRsaKey,
  type SigAlg,
  type TestPki,
  thrown,
  thrownAsync,
} from './x509-support.js';

async function makeCsr(
  key: PxKey,
  signingAlgorithm: SigAlg = {
    name: 'ECDSA',
    hash: 'SHA-256',
  } as SigAlg,
  extensions: px.Extension[] = [],
): Promise<Uint8Array> {
  const csr = await px.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=requester,O=Example',
    keys: key.keys,
    signingAlgorithm,
    extensions,
  });
  return new Uint8Array(csr.rawData);
}

let p256: PxKey;
let csrDer: Uint8Array;
let pki: TestPki;

beforeAll(async () => {
  p256 = await pxKey();
  csrDer = await makeCsr(p256, { name: 'ECDSA', hash: 'SHA-256' } as SigAlg, [
    new px.SubjectAlternativeNameExtension([
      { type: 'url', value: 'spiffe://evil.example/admin' },
      { type: 'dns', value: 'requested.example' },
    ]),
  ]);
  pki = await makePki();
});

function expectCsrInvalid(input: Uint8Array | string, rule: string): void {
  const err = thrown(() => parseCsr(input));
  expect(err.code).toBe('ERR_CSR_INVALID');
  expect(err.message).toContain(rule);
}

/** Splits a CSR into info fields, signature algorithm and signature for surgery. */
function split(der: Uint8Array): { info: Uint8Array[]; alg: Uint8Array; sig: Uint8Array } {
  const [info, alg, sig] = children(readWhole(der, 'csr'));
  return { info: children(info!).map(tlvBytes), alg: tlvBytes(alg!), sig: tlvBytes(sig!) };
}

describe('parseCsr', () => {
  it('parses a request built by another encoder and checks its signature', async () => {
    const csr = parseCsr(csrDer);
    expect(formatName(csr.subjectDer)).toBe('CN=requester, O=Example');
    expect(csr.signatureAlgorithm.oid).toBe('1.2.840.10045.4.3.2');
    expect(csr.publicKey.equals(keyObject(p256.keys.publicKey))).toBe(true);
    expect(Buffer.from(csr.spkiDer)).toEqual(
      Buffer.from(await webcrypto.subtle.exportKey('spki', p256.keys.publicKey)),
    );
    expect(csr.attributes.map((a) => a.oid)).toEqual(['1.2.840.113549.1.9.14']);
    expect(csr.extensions.subjectAltName?.uris).toEqual(['spiffe://evil.example/admin']);
    expect(csr.extensions.subjectAltName?.dnsNames).toEqual(['requested.example']);
  });

  it('accepts PEM (CERTIFICATE REQUEST and the legacy NEW CERTIFICATE REQUEST)', () => {
    expect(parseCsr(encodePem('CERTIFICATE REQUEST', csrDer)).infoDer.length).toBeGreaterThan(0);
    expect(parseCsr(encodePem('NEW CERTIFICATE REQUEST', csrDer)).der).toHaveLength(csrDer.length);
    expectCsrInvalid(encodePem('CERTIFICATE', csrDer), 'exactly one CERTIFICATE REQUEST');
    expectCsrInvalid(
      encodePem('CERTIFICATE REQUEST', csrDer).repeat(2),
      'exactly one CERTIFICATE REQUEST',
    );
    expectCsrInvalid(
      '-----BEGIN CERTIFICATE REQUEST-----\n@@\n-----END CERTIFICATE REQUEST-----',
      'invalid base64',
    );
  });

  it('parses P-384, RSA PKCS#1 and RSA-PSS requests', async () => {
    const p384 = await makeCsr(await pxKey('P-384'), {
      name: 'ECDSA',
      hash: 'SHA-384',
    } as SigAlg);
    expect(parseCsr(p384).signatureAlgorithm.oid).toBe('1.2.840.10045.4.3.3');
    const rsa = await makeCsr(await pxRsaKey('RSASSA-PKCS1-v1_5'), { name: 'RSASSA-PKCS1-v1_5' });
    expect(parseCsr(rsa).publicKey.asymmetricKeyType).toBe('rsa');
    const pss = await makeCsr(await pxRsaKey('RSA-PSS'), {
      name: 'RSA-PSS',
      saltLength: 32,
    } as SigAlg);
    expect(parseCsr(pss).signatureAlgorithm.oid).toBe('1.2.840.113549.1.1.10');
  });

  it('rejects a request whose signature does not verify (no proof of possession)', () => {
    const p = split(csrDer);
    const sig = Uint8Array.from(p.sig);
    sig[sig.length - 5]! ^= 1;
    expectCsrInvalid(
      seq(seq(...p.info), p.alg, sig),
      'signature does not verify with the request public key',
    );
    // Or whose signed part was changed.
    const info = Uint8Array.from(seq(...p.info));
    const i = Buffer.from(info).indexOf(Buffer.from('requester'));
    info[i] = 'R'.charCodeAt(0);
    expectCsrInvalid(seq(info, p.alg, p.sig), 'signature does not verify');
  });

  it('rejects SHA-1 signatures', async () => {
    const sha1 = await makeCsr(p256, { name: 'ECDSA', hash: 'SHA-1' } as SigAlg);
    expectCsrInvalid(sha1, 'signatureAlgorithm: SHA-1 signatures');
  });

  it('rejects structural defects, naming the field', () => {
    const p = split(csrDer);
    const rebuild = (info: Uint8Array[]): Uint8Array => seq(seq(...info), p.alg, p.sig);
    expectCsrInvalid(rebuild([smallInteger(1), ...p.info.slice(1)]), 'version: must be 0');
    expectCsrInvalid(
      rebuild(p.info.slice(0, 3)),
      'expected version, subject, subjectPKInfo, attributes',
    );
    expectCsrInvalid(
      rebuild([...p.info.slice(0, 3), seq()]),
      'attributes: expected [0] IMPLICIT SET',
    );
    const dupAttr = tlv(
      0xa0,
      ...children(readWhole(p.info[3]!, 'a')).map(tlvBytes),
      ...children(readWhole(p.info[3]!, 'a')).map(tlvBytes),
    );
    expectCsrInvalid(rebuild([...p.info.slice(0, 3), dupAttr]), 'appears more than once');
    const emptyValues = tlv(0xa0, seq(Uint8Array.of(6, 3, 0x2a, 3, 4), tlv(0x31)));
    expectCsrInvalid(rebuild([...p.info.slice(0, 3), emptyValues]), 'values must not be empty');
    expectCsrInvalid(Uint8Array.from([...csrDer, 0]), 'trailing bytes');
    expectCsrInvalid(
      seq(seq(...p.info), p.alg),
      'expected certificationRequestInfo, signatureAlgorithm, signature',
    );
    expectCsrInvalid(
      seq(seq(...p.info), p.alg, bitString(Uint8Array.of())),
      'signature does not verify',
    );
    expectCsrInvalid(
      seq(seq(...p.info), p.alg, tlv(0x03, Uint8Array.of(3, 0xff))),
      'signature: BIT STRING with unused bits',
    );
    expectCsrInvalid(new Uint8Array(0), 'truncated DER header');
  });

  it('rejects a public key OpenSSL cannot use', () => {
    const p = split(csrDer);
    const spki = Uint8Array.from(p.info[2]!);
    spki[spki.length - 1]! ^= 0xff; // off the curve
    expectCsrInvalid(
      seq(seq(p.info[0]!, p.info[1]!, spki, p.info[3]!), p.alg, p.sig),
      'subjectPKInfo:',
    );
  });

  it('throws TypeError for arguments of the wrong type', () => {
    expect(() => parseCsr(42 as never)).toThrow(TypeError);
  });
});

describe('mintX509SvidFromCsr', () => {
  it('certifies the request key under the ID the caller decides, ignoring the request SANs', async () => {
    const der = await mintX509SvidFromCsr(pki.minter, csrDer, {
      spiffeId: 'spiffe://example.org/ns/db',
      notBefore: NOW,
      notAfter: new Date(NOW.getTime() + HOUR),
    });
    const cert = parseCertificate(der);
    expect(cert.extensions.subjectAltName?.uris).toEqual(['spiffe://example.org/ns/db']);
    expect(cert.extensions.subjectAltName?.dnsNames).toEqual([]);
    expect(formatName(cert.subjectDer)).toBe('C=US, O=SPIRE');
    expect(Buffer.from(cert.spkiDer)).toEqual(Buffer.from(parseCsr(csrDer).spkiDer));
  });

  it('passes DNS names and subject through', async () => {
    const der = await mintX509SvidFromCsr(pki.minter, csrDer, {
      spiffeId: 'spiffe://example.org/ns/db',
      notBefore: NOW,
      notAfter: new Date(NOW.getTime() + HOUR),
      dnsNames: ['db.example.org'],
      subject: { organization: ['Acme'] },
    });
    expect(formatName(parseCertificate(der).subjectDer)).toBe('O=Acme, CN=db.example.org');
  });

  it('rejects a forged request with ERR_CSR_INVALID', async () => {
    const p = split(csrDer);
    const sig = Uint8Array.from(p.sig);
    sig[sig.length - 1]! ^= 1;
    const err = await thrownAsync(() =>
      mintX509SvidFromCsr(pki.minter, seq(seq(...p.info), p.alg, sig), {
        spiffeId: 'spiffe://example.org/x',
        notBefore: NOW,
        notAfter: new Date(NOW.getTime() + HOUR),
      }),
    );
    expect(err.code).toBe('ERR_CSR_INVALID');
  });
});

describe('parseCsr on hostile bytes (property)', () => {
  const onlyCoded = (fn: () => unknown): void => {
    try {
      fn();
    } catch (err) {
      if (!isSpireEdgeError(err, 'ERR_CSR_INVALID')) throw err;
    }
  };

  it('throws only ERR_CSR_INVALID for random bytes and text', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (b) => onlyCoded(() => parseCsr(b))),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) =>
        onlyCoded(() =>
          parseCsr(`-----BEGIN CERTIFICATE REQUEST-----\n${s}\n-----END CERTIFICATE REQUEST-----`),
        ),
      ),
      { numRuns: 100 },
    );
  });

  it('throws only ERR_CSR_INVALID for mutated requests, through the minter too', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.option(fc.nat(), { nil: undefined }),
        async (edits, cut) => {
          const b = Uint8Array.from(csrDer);
          for (const [pos, v] of edits) b[pos % b.length] = v;
          const input = cut === undefined ? b : b.subarray(0, cut % (b.length + 1));
          onlyCoded(() => parseCsr(input));
          try {
            await mintX509SvidFromCsr(pki.minter, input, {
              spiffeId: 'spiffe://example.org/x',
              notBefore: NOW,
              notAfter: new Date(NOW.getTime() + HOUR),
            });
          } catch (err) {
            if (!isSpireEdgeError(err, 'ERR_CSR_INVALID')) throw err;
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

/** The fields of two parse results that must agree. */
function sameParse(a: ParsedCsr, b: ParsedCsr): void {
  expect(Buffer.from(b.der)).toEqual(Buffer.from(a.der));
  expect(Buffer.from(b.infoDer)).toEqual(Buffer.from(a.infoDer));
  expect(Buffer.from(b.spkiDer)).toEqual(Buffer.from(a.spkiDer));
  expect(b.signatureAlgorithm).toEqual(a.signatureAlgorithm);
  expect(b.attributes).toEqual(a.attributes);
  expect(b.extensions).toEqual(a.extensions);
  expect(b.publicKey.equals(a.publicKey)).toBe(true);
}

/** A CSR for `key` signed with `hash` and `alg`, built by hand (any curve Node can sign with). */
function handCsr(key: KeyObject, alg: Uint8Array, hash: string | null): Uint8Array {
  const spki = new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }));
  const info = seq(smallInteger(0), seq(), spki, Uint8Array.of(0xa0, 0));
  return seq(info, alg, bitString(new Uint8Array(nodeSign(hash, info, key))));
}

/** `der` with the SPKI's EC point coordinates replaced (x from `x`, y unchanged unless given). */
function withPoint(der: Uint8Array, x: Uint8Array, y?: Uint8Array): Uint8Array {
  const p = split(der);
  const spki = Uint8Array.from(p.info[2]!);
  const size = x.length;
  const start = spki.length - 2 * size;
  spki.set(x, start);
  if (y !== undefined) spki.set(y, start + size);
  return seq(seq(p.info[0]!, p.info[1]!, spki, p.info[3]!), p.alg, p.sig);
}

async function expectBothInvalid(input: Uint8Array | string, rule: string): Promise<void> {
  expectCsrInvalid(input, rule);
  const err = await thrownAsync(() => parseCsrAsync(input));
  expect(err.code).toBe('ERR_CSR_INVALID');
  expect(err.message).toContain(rule);
}

describe('parseCsrAsync (proof of possession checked on the thread pool)', () => {
  it('returns what parseCsr returns, for every key type requests use', async () => {
    const inputs: Uint8Array[] = [
      csrDer,
      await makeCsr(await pxKey('P-384'), { name: 'ECDSA', hash: 'SHA-384' } as SigAlg),
      await makeCsr(await pxRsaKey('RSASSA-PKCS1-v1_5'), { name: 'RSASSA-PKCS1-v1_5' }),
      await makeCsr(await pxRsaKey('RSA-PSS'), { name: 'RSA-PSS', saltLength: 32 } as SigAlg),
      createCsr(generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey),
      createCsr(generateKeyPairSync('ed25519').privateKey),
    ];
    for (const der of inputs) sameParse(parseCsr(der), await parseCsrAsync(der));
    sameParse(parseCsr(csrDer), await parseCsrAsync(encodePem('CERTIFICATE REQUEST', csrDer)));
  });

  it('checks many requests at once, each against its own key', async () => {
    const keys = Array.from({ length: 40 }, () =>
      generateKeyPairSync('ec', { namedCurve: 'P-256' }),
    );
    const csrs = keys.map((k) => createCsr(k.privateKey));
    const good = await Promise.all(csrs.map((c) => parseCsrAsync(c)));
    for (const [i, c] of good.entries()) expect(c.publicKey.equals(keys[i]!.publicKey)).toBe(true);
    // Swap the signatures of neighbours: every request must now fail on its own.
    const swapped = csrs.map((c, i) => {
      const mine = split(c);
      const other = split(csrs[(i + 1) % csrs.length]!);
      return seq(seq(...mine.info), mine.alg, other.sig);
    });
    const results = await Promise.allSettled(swapped.map((c) => parseCsrAsync(c)));
    for (const r of results) {
      expect(r.status).toBe('rejected');
      const err = (r as PromiseRejectedResult).reason as Error & { code?: string };
      expect(err.code).toBe('ERR_CSR_INVALID');
      expect(err.message).toContain('signature does not verify with the request public key');
    }
  });

  it('rejects what parseCsr rejects, with the same code and message', async () => {
    const p = split(csrDer);
    const sig = Uint8Array.from(p.sig);
    sig[sig.length - 5]! ^= 1;
    await expectBothInvalid(seq(seq(...p.info), p.alg, sig), 'signature does not verify');
    await expectBothInvalid(
      await makeCsr(p256, { name: 'ECDSA', hash: 'SHA-1' } as SigAlg),
      'signatureAlgorithm: SHA-1 signatures',
    );
    await expectBothInvalid(
      seq(seq(smallInteger(1), ...p.info.slice(1)), p.alg, p.sig),
      'version: must be 0',
    );
    await expectBothInvalid(
      seq(seq(...p.info), p.alg, bitString(Uint8Array.of())),
      'signature does not verify',
    );
    await expectBothInvalid(
      seq(seq(...p.info), seq(oid('1.2.3.4')), p.sig),
      'signatureAlgorithm: unsupported signature algorithm 1.2.3.4',
    );
    await expectBothInvalid(encodePem('CERTIFICATE', csrDer), 'exactly one CERTIFICATE REQUEST');
    // An RSA signature algorithm over an EC key: a key of the wrong type does not verify.
    const rsaAlg = seq(oid('1.2.840.113549.1.1.11'), Uint8Array.of(5, 0));
    await expectBothInvalid(seq(seq(...p.info), rsaAlg, p.sig), 'signature does not verify');
    await expect(parseCsrAsync(42 as never)).rejects.toBeInstanceOf(TypeError);
  });

  it('rejects EC points off the curve or out of range (OpenSSL checks them on import)', async () => {
    const p256Csr = createCsr(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const p384Csr = createCsr(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey);
    const p521Csr = createCsr(generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey);
    // x = 2^256 - 1 is above the P-256 field prime; x = y = 1 is in range but off the curve.
    const one = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i === n - 1 ? 1 : 0));
    await expectBothInvalid(withPoint(p256Csr, new Uint8Array(32).fill(0xff)), 'subjectPKInfo:');
    await expectBothInvalid(withPoint(p256Csr, one(32), one(32)), 'subjectPKInfo:');
    await expectBothInvalid(withPoint(p384Csr, new Uint8Array(48).fill(0xff)), 'subjectPKInfo:');
    await expectBothInvalid(withPoint(p384Csr, one(48), one(48)), 'subjectPKInfo:');
    await expectBothInvalid(withPoint(p521Csr, one(66), one(66)), 'subjectPKInfo:');
  });

  it('accepts keys on curves it does not mint for, as parseCsr does (the minter refuses them)', async () => {
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey;
    const der = handCsr(k1, seq(oid('1.2.840.10045.4.3.2')), 'sha256');
    sameParse(parseCsr(der), await parseCsrAsync(der));
    const err = await thrownAsync(() =>
      mintX509SvidFromCsr(pki.minter, der, {
        spiffeId: 'spiffe://example.org/x',
        notBefore: NOW,
        notAfter: new Date(NOW.getTime() + HOUR),
      }),
    );
    expect(err.code).toBe('ERR_CSR_INVALID');
    expect(err.message).toContain('is not supported');
  });

  it('agrees with parseCsr on mutated requests (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 3,
        }),
        async (edits) => {
          const b = Uint8Array.from(csrDer);
          for (const [pos, v] of edits) b[pos % b.length] = v;
          let sync: ParsedCsr | Error;
          try {
            sync = parseCsr(b);
          } catch (err) {
            sync = err as Error;
          }
          let async: ParsedCsr | Error;
          try {
            async = await parseCsrAsync(b);
          } catch (err) {
            async = err as Error;
          }
          if (sync instanceof Error) {
            expect(async).toBeInstanceOf(Error);
            expect((async as Error & { code?: string }).code).toBe(
              (sync as Error & { code?: string }).code,
            );
            expect((async as Error).message).toBe(sync.message);
          } else {
            expect(async).not.toBeInstanceOf(Error);
            sameParse(sync, async as ParsedCsr);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('parseCsrAsync with an injected ECDSA verifier', () => {
  type Req = Parameters<EcdsaVerifier>[0];
  /** A verifier built on node:crypto from the point alone, recording its requests. */
  function jsVerifier(answer?: boolean | 'throw'): { verify: EcdsaVerifier; calls: Req[] } {
    const calls: Req[] = [];
    const verify: EcdsaVerifier = async (r) => {
      calls.push(r);
      if (answer === 'throw') throw new Error('verifier broke');
      if (answer !== undefined) return answer;
      const size = (r.point.length - 1) / 2;
      const key = createPublicKey({
        key: {
          kty: 'EC',
          crv: r.curve,
          x: Buffer.from(r.point.subarray(1, 1 + size)).toString('base64url'),
          y: Buffer.from(r.point.subarray(1 + size)).toString('base64url'),
        },
        format: 'jwk',
      });
      return nodeVerify(r.hash, r.data, key, r.signature);
    };
    return { verify, calls };
  }

  it('hands ECDSA requests on P-256, P-384 and P-521 to the verifier, with the key imported lazily', async () => {
    const cases = [
      ['P-256', 'sha256'],
      ['P-384', 'sha384'],
      ['P-521', 'sha512'],
    ] as const;
    for (const [curve, hash] of cases) {
      const k = generateKeyPairSync('ec', { namedCurve: curve });
      const algOid = {
        sha256: '1.2.840.10045.4.3.2',
        sha384: '1.2.840.10045.4.3.3',
        sha512: '1.2.840.10045.4.3.4',
      }[hash];
      const der = handCsr(k.privateKey, seq(oid(algOid)), hash);
      const v = jsVerifier();
      const got = await parseCsrAsync(der, { verifyEcdsa: v.verify });
      expect(v.calls).toHaveLength(1);
      expect(v.calls[0]!.curve).toBe(curve);
      expect(v.calls[0]!.hash).toBe(hash);
      expect(v.calls[0]!.point[0]).toBe(4);
      expect(Buffer.from(v.calls[0]!.data).equals(Buffer.from(got.infoDer))).toBe(true);
      sameParse(parseCsr(der), got);
      expect(got.publicKey.equals(k.publicKey)).toBe(true);
      expect(got.publicKey).toBe(got.publicKey); // imported once, then kept
    }
  });

  it('lets node:crypto decide whenever the verifier says false or fails: same results, same errors', async () => {
    const p = split(csrDer);
    const forged = Uint8Array.from(p.sig);
    forged[forged.length - 5]! ^= 1;
    const forgedCsr = seq(seq(...p.info), p.alg, forged);
    const p256Csr = createCsr(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const offCurve = withPoint(
      p256Csr,
      Uint8Array.from({ length: 32 }, (_, i) => (i === 31 ? 1 : 0)),
      Uint8Array.from({ length: 32 }, (_, i) => (i === 31 ? 1 : 0)),
    );
    for (const answer of [false, 'throw', undefined] as const) {
      const v = jsVerifier(answer);
      // A good request the verifier refuses is still accepted (node:crypto verifies it).
      if (answer !== undefined) {
        sameParse(parseCsr(csrDer), await parseCsrAsync(csrDer, { verifyEcdsa: v.verify }));
      }
      for (const bad of [forgedCsr, offCurve]) {
        const want = thrown(() => parseCsr(bad));
        const err = await thrownAsync(() => parseCsrAsync(bad, { verifyEcdsa: v.verify }));
        expect(err.code).toBe('ERR_CSR_INVALID');
        expect(err.message).toBe(want.message);
      }
    }
  });

  it('does not call the verifier for RSA, Ed25519, SHA-1 or unsupported algorithms, nor for undecodable requests', async () => {
    const v = jsVerifier(true);
    const rsa = await makeCsr(await pxRsaKey('RSASSA-PKCS1-v1_5'), { name: 'RSASSA-PKCS1-v1_5' });
    sameParse(parseCsr(rsa), await parseCsrAsync(rsa, { verifyEcdsa: v.verify }));
    const ed = createCsr(generateKeyPairSync('ed25519').privateKey);
    sameParse(parseCsr(ed), await parseCsrAsync(ed, { verifyEcdsa: v.verify }));
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey;
    const k1Csr = handCsr(k1, seq(oid('1.2.840.10045.4.3.2')), 'sha256');
    sameParse(parseCsr(k1Csr), await parseCsrAsync(k1Csr, { verifyEcdsa: v.verify }));
    const p = split(csrDer);
    for (const [bad, rule] of [
      [await makeCsr(p256, { name: 'ECDSA', hash: 'SHA-1' } as SigAlg), 'SHA-1 signatures'],
      [seq(seq(...p.info), seq(oid('1.2.3.4')), p.sig), 'unsupported signature algorithm'],
      [seq(seq(smallInteger(1), ...p.info.slice(1)), p.alg, p.sig), 'version: must be 0'],
      // An RSA algorithm over the EC key: a key of the wrong type, as without the verifier.
      [
        seq(seq(...p.info), seq(oid('1.2.840.113549.1.1.11'), Uint8Array.of(5, 0)), p.sig),
        'signature does not verify',
      ],
    ] as const) {
      const err = await thrownAsync(() => parseCsrAsync(bad, { verifyEcdsa: v.verify }));
      expect(err.code).toBe('ERR_CSR_INVALID');
      expect(err.message).toContain(rule);
    }
    expect(v.calls).toHaveLength(0);
    await expect(
      parseCsrAsync(csrDer, { verifyEcdsa: 'yes' as unknown as EcdsaVerifier }),
    ).rejects.toBeInstanceOf(TypeError);
  });

  it('is passed through by mintX509SvidFromCsr', async () => {
    const v = jsVerifier();
    const leaf = await mintX509SvidFromCsr(pki.minter, csrDer, {
      spiffeId: 'spiffe://example.org/x',
      notBefore: NOW,
      notAfter: new Date(NOW.getTime() + HOUR),
      verifyEcdsa: v.verify,
    });
    expect(v.calls).toHaveLength(1);
    expect(Buffer.from(parseCertificate(leaf).spkiDer)).toEqual(
      Buffer.from(parseCsr(csrDer).spkiDer),
    );
  });

  it('agrees with parseCsr on mutated requests (property)', async () => {
    const v = jsVerifier();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 3,
        }),
        async (edits) => {
          const b = Uint8Array.from(csrDer);
          for (const [pos, val] of edits) b[pos % b.length] = val;
          let sync: ParsedCsr | Error;
          try {
            sync = parseCsr(b);
          } catch (err) {
            sync = err as Error;
          }
          let injected: ParsedCsr | Error;
          try {
            injected = await parseCsrAsync(b, { verifyEcdsa: v.verify });
          } catch (err) {
            injected = err as Error;
          }
          if (sync instanceof Error) {
            expect(injected).toBeInstanceOf(Error);
            expect((injected as Error & { code?: string }).code).toBe(
              (sync as Error & { code?: string }).code,
            );
            expect((injected as Error).message).toBe(sync.message);
          } else {
            expect(injected).not.toBeInstanceOf(Error);
            sameParse(sync, injected as ParsedCsr);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
