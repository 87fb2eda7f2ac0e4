import { constants, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { oid, seq } from '../../../src/common/der.js';
import { verifySignatureAsync } from '../../../src/spiffe/internal/verify-async.js';
import { type AlgorithmIdentifier, verifySignature } from '../../../src/spiffe/x509-cert.js';
import { thrownAsync } from './x509-support.js';

const NULL = Uint8Array.of(0x05, 0x00);
const data = new TextEncoder().encode('certificationRequestInfo stand-in');

/** RSASSA-PSS-params for SHA-256, MGF1-SHA-256, the given salt length (RFC 4055 §3.1). */
function pssParams(salt: number): Uint8Array {
  const sha256 = seq(oid('2.16.840.1.101.3.4.2.1'), NULL);
  return seq(
    Uint8Array.of(0xa0, sha256.length, ...sha256),
    (() => {
      const mgf = seq(oid('1.2.840.113549.1.1.8'), sha256);
      return Uint8Array.of(0xa1, mgf.length, ...mgf);
    })(),
    Uint8Array.of(0xa2, 0x03, 0x02, 0x01, salt),
  );
}

interface Case {
  readonly name: string;
  readonly alg: AlgorithmIdentifier;
  readonly key: { privateKey: KeyObject; publicKey: KeyObject };
  readonly sig: Uint8Array;
}

function cases(): Case[] {
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ed = generateKeyPairSync('ed25519');
  const u8 = (b: Buffer) => new Uint8Array(b);
  return [
    {
      name: 'ecdsa-with-SHA256',
      alg: { oid: '1.2.840.10045.4.3.2' },
      key: p256,
      sig: u8(sign('sha256', data, p256.privateKey)),
    },
    {
      name: 'ecdsa-with-SHA384',
      alg: { oid: '1.2.840.10045.4.3.3' },
      key: p384,
      sig: u8(sign('sha384', data, p384.privateKey)),
    },
    {
      name: 'sha256WithRSAEncryption',
      alg: { oid: '1.2.840.113549.1.1.11', params: NULL },
      key: rsa,
      sig: u8(sign('sha256', data, rsa.privateKey)),
    },
    {
      name: 'RSASSA-PSS',
      alg: { oid: '1.2.840.113549.1.1.10', params: pssParams(32) },
      key: rsa,
      sig: u8(
        sign('sha256', data, {
          key: rsa.privateKey,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: 32,
        }),
      ),
    },
    {
      name: 'Ed25519',
      alg: { oid: '1.3.101.112' },
      key: ed,
      sig: u8(sign(null, data, ed.privateKey)),
    },
  ];
}

describe('verifySignatureAsync', () => {
  it('agrees with verifySignature: good signatures, tampered data and signatures', async () => {
    for (const c of cases()) {
      expect(await verifySignatureAsync(c.alg, data, c.sig, c.key.publicKey), c.name).toBe(true);
      expect(verifySignature(c.alg, data, c.sig, c.key.publicKey), c.name).toBe(true);
      const other = Uint8Array.from(data);
      other[0]! ^= 1;
      expect(await verifySignatureAsync(c.alg, other, c.sig, c.key.publicKey), c.name).toBe(false);
      const bad = Uint8Array.from(c.sig);
      bad[bad.length - 1]! ^= 1;
      expect(await verifySignatureAsync(c.alg, data, bad, c.key.publicKey), c.name).toBe(false);
      expect(verifySignature(c.alg, data, bad, c.key.publicKey), c.name).toBe(false);
      // Garbage and empty signatures are wrong signatures, not errors.
      for (const junk of [new Uint8Array(0), Uint8Array.of(0x30, 0x02, 0x02)]) {
        expect(await verifySignatureAsync(c.alg, data, junk, c.key.publicKey), c.name).toBe(
          verifySignature(c.alg, data, junk, c.key.publicKey),
        );
      }
    }
  });

  it('answers false for a key of the wrong type or a signature made by another key', async () => {
    const [ec, , rsa] = cases();
    expect(await verifySignatureAsync(ec!.alg, data, ec!.sig, rsa!.key.publicKey)).toBe(false);
    expect(await verifySignatureAsync(rsa!.alg, data, rsa!.sig, ec!.key.publicKey)).toBe(false);
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    expect(await verifySignatureAsync(ec!.alg, data, ec!.sig, other)).toBe(false);
  });

  it('rejects with ERR_X509_UNSUPPORTED what it cannot check; SHA-1 only when allowed', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const sha1Sig = new Uint8Array(sign('sha1', data, privateKey));
    const sha1: AlgorithmIdentifier = { oid: '1.2.840.10045.4.1' };
    const err = await thrownAsync(() => verifySignatureAsync(sha1, data, sha1Sig, publicKey));
    expect(err.code).toBe('ERR_X509_UNSUPPORTED');
    expect(err.message).toContain('SHA-1');
    expect(await verifySignatureAsync(sha1, data, sha1Sig, publicKey, { allowSha1: true })).toBe(
      true,
    );
    const unknown = await thrownAsync(() =>
      verifySignatureAsync({ oid: '1.2.3.4' }, data, sha1Sig, publicKey),
    );
    expect(unknown.code).toBe('ERR_X509_UNSUPPORTED');
  });
});
