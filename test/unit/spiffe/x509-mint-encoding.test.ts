/**
 * The minter writes tbsCertificates and certificates in one pass (sizes first, then one
 * buffer). This checks it byte for byte against a reference built the straightforward way
 * from der.ts's nested encoders (how x509-mint.ts encoded them before), over random IDs,
 * DNS names (long enough for every length form), subjects, keys, serials and signatures.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  bitString,
  children,
  DER_TRUE,
  oid,
  p1363ToDer,
  readWhole,
  seq,
  time,
  tlv,
  tlvBytes,
  tlvContents,
  unsignedInteger,
} from '../../../src/common/der.js';
import type { RandomSource } from '../../../src/common/random.js';
import type { KeyType, Signer } from '../../../src/common/signer.js';
import {
  extension,
  signatureAlgorithmFor,
  VERSION_V3,
} from '../../../src/spiffe/internal/x509-encode.js';
import { encodeName, type SubjectFields } from '../../../src/spiffe/internal/x509-name.js';
import { OID } from '../../../src/spiffe/internal/x509-oids.js';
import { parseCertificate } from '../../../src/spiffe/x509-cert.js';
import { DEFAULT_X509_SVID_SUBJECT, X509SvidMinter } from '../../../src/spiffe/x509-mint.js';
import { generateKey, HOUR, makePki, NOW, type TestKey, type TestPki } from './x509-support.js';

const LEAF_EXTENSIONS = [
  extension(OID.keyUsage, true, Uint8Array.of(0x03, 0x02, 0x03, 0xa8)),
  extension(OID.extKeyUsage, false, seq(oid('1.3.6.1.5.5.7.3.1'), oid('1.3.6.1.5.5.7.3.2'))),
  extension(OID.basicConstraints, true, seq()),
];

interface RefInput {
  readonly serial: Uint8Array;
  readonly sigAlg: Uint8Array;
  readonly issuer: ReturnType<typeof parseCertificate>;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subject: Uint8Array;
  readonly spki: Uint8Array;
  readonly uri: string;
  readonly dnsNames: readonly string[];
}

/** The tbsCertificate as the nested encoders build it. */
function referenceTbs(r: RefInput): Uint8Array {
  const keyBits = tlvContents(children(readWhole(r.spki, 'spki'))[1]!).subarray(1);
  const ski = extension(
    OID.subjectKeyIdentifier,
    false,
    tlv(0x04, createHash('sha1').update(keyBits).digest()),
  );
  const aki = extension(
    OID.authorityKeyIdentifier,
    false,
    seq(tlv(0x80, r.issuer.extensions.subjectKeyId!)),
  );
  const names = [tlv(0x86, Buffer.from(r.uri, 'latin1'))];
  for (const d of r.dnsNames) names.push(tlv(0x82, Buffer.from(d, 'latin1')));
  const sanValue = tlv(0x04, seq(...names));
  const san =
    r.subject.length === 2
      ? seq(oid(OID.subjectAltName), DER_TRUE, sanValue)
      : seq(oid(OID.subjectAltName), sanValue);
  const notAfter =
    r.notAfter.getTime() < r.issuer.notAfter.getTime() ? r.notAfter : r.issuer.notAfter;
  return seq(
    VERSION_V3,
    unsignedInteger(r.serial),
    r.sigAlg,
    r.issuer.subjectDer,
    seq(time(r.notBefore), time(notAfter)),
    r.subject,
    r.spki,
    tlv(0xa3, seq(...LEAF_EXTENSIONS, ski, aki, san)),
  );
}

/** A signer with the CA's public key whose `sign` answers a chosen value. */
function fixedSigner(base: Signer, sig: () => Uint8Array): Signer {
  return {
    keyType: base.keyType,
    publicKey: base.publicKey,
    publicKeySpki: base.publicKeySpki,
    sign: async () => sig(),
  };
}

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
const dnsName = fc
  .array(label, { minLength: 1, maxLength: 5 })
  .map((ls) => ls.join('.'))
  .filter((d) => d.length <= 253);

let pkis: Record<'ec-p256' | 'ec-p384' | 'rsa-2048', TestPki>;
let leafKeys: TestKey[];

beforeAll(async () => {
  pkis = {
    'ec-p256': await makePki('example.org', 'ec-p256', 'ec-p256'),
    'ec-p384': await makePki('example.org', 'ec-p256', 'ec-p384'),
    'rsa-2048': await makePki('example.org', 'ec-p256', 'rsa-2048'),
  };
  leafKeys = [
    generateKey('ec-p256'),
    generateKey('ec-p384'),
    generateKey('ec-p521'),
    generateKey('rsa-2048'),
    generateKey('ed25519'),
  ];
});

describe('one-pass X509-SVID encoding (property)', () => {
  it('is byte for byte what the nested encoders produce', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          caType: fc.constantFrom<KeyType>('ec-p256', 'ec-p384', 'rsa-2048'),
          key: fc.nat({ max: 4 }),
          path: fc.array(
            fc.stringMatching(/^[A-Za-z0-9._-]{1,40}$/).filter((s) => s !== '.' && s !== '..'),
            { minLength: 1, maxLength: 12 },
          ),
          dnsNames: fc.array(dnsName, { maxLength: 6 }),
          subject: fc.option(
            fc.record({
              organization: fc.array(fc.stringMatching(/^[A-Za-z ]{1,20}$/), { maxLength: 2 }),
            }),
            { nil: undefined },
          ),
          serial: fc.option(fc.uint8Array({ minLength: 1, maxLength: 21 }), { nil: undefined }),
          random: fc.uint8Array({ minLength: 16, maxLength: 16 }),
          validity: fc.tuple(fc.integer({ min: -50, max: 50 }), fc.integer({ min: 1, max: 500 })),
          sig: fc.uint8Array({ minLength: 48, maxLength: 48 }),
          zeros: fc.tuple(fc.nat({ max: 40 }), fc.nat({ max: 40 })),
        }),
        async (c) => {
          const pki = pkis[c.caType as 'ec-p256'];
          const issuer = parseCertificate(pki.intermediateDer);
          // Signatures as the signer answers them: P1363 with leading zeros and high bits
          // in either half (ECDSA), or opaque bytes (RSA).
          const half = c.caType === 'ec-p384' ? 48 : 32;
          const p1363 = new Uint8Array(2 * half);
          p1363.set(c.sig.subarray(0, half), 0);
          p1363.set(c.sig.subarray(0, half), half);
          p1363.fill(0, 0, Math.min(half, c.zeros[0]));
          p1363.fill(0, half, half + Math.min(half, c.zeros[1]));
          const sigBytes = c.caType === 'rsa-2048' ? Uint8Array.from(c.sig) : p1363;
          const random: RandomSource = {
            bytes: (n) => {
              const out = new Uint8Array(n);
              for (let i = 0; i < n; i += 16) out.set(c.random.subarray(0, n - i), i);
              return out;
            },
            float: () => 0,
            int: (min) => min,
          };
          const minter = new X509SvidMinter({
            issuerCertDer: pki.intermediateDer,
            signer: fixedSigner(pki.intermediateSigner, () => sigBytes),
            random,
          });
          const uri = `spiffe://example.org/${c.path.join('/')}`;
          const notBefore = new Date(NOW.getTime() + c.validity[0] * HOUR);
          const notAfter = new Date(notBefore.getTime() + c.validity[1] * HOUR);
          const key = leafKeys[c.key]!;
          const given = c.serial;
          if (given !== undefined) {
            const content = unsignedInteger(given).length - 2;
            if (given.every((b) => b === 0) || content > 20) {
              await expect(
                minter.mint({
                  spiffeId: uri,
                  publicKey: key.spki,
                  notBefore,
                  notAfter,
                  serial: given,
                }),
              ).rejects.toThrow(TypeError);
              return;
            }
          }
          const der = await minter.mint({
            spiffeId: uri,
            publicKey: key.spki,
            notBefore,
            notAfter,
            dnsNames: c.dnsNames,
            ...(c.subject === undefined ? {} : { subject: c.subject as SubjectFields }),
            ...(c.serial === undefined ? {} : { serial: c.serial }),
          });
          const serial = Uint8Array.from(given ?? c.random);
          if (given === undefined && serial.every((b) => b === 0)) serial[15] = 1;
          const base = (c.subject as SubjectFields | undefined) ?? DEFAULT_X509_SVID_SUBJECT;
          const subject = encodeName(
            c.dnsNames.length > 0 ? { ...base, commonName: c.dnsNames[0]! } : base,
          );
          const sigAlg = signatureAlgorithmFor(c.caType);
          const tbs = referenceTbs({
            serial,
            sigAlg,
            issuer,
            notBefore,
            notAfter,
            subject,
            spki: key.spki,
            uri,
            dnsNames: c.dnsNames,
          });
          const sigValue = c.caType === 'rsa-2048' ? sigBytes : p1363ToDer(p1363);
          const expected = seq(tbs, sigAlg, bitString(sigValue));
          expect(Buffer.from(der).toString('hex')).toBe(Buffer.from(expected).toString('hex'));
          // and it parses, with the fields it was given
          const parsed = parseCertificate(der);
          expect(parsed.extensions.subjectAltName?.uris).toEqual([uri]);
          expect(parsed.extensions.subjectAltName?.dnsNames).toEqual(c.dnsNames);
          expect(Buffer.from(tlvBytes(children(readWhole(der, 'cert'))[0]!))).toEqual(
            Buffer.from(tbs),
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});
