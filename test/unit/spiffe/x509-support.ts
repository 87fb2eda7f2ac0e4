/**
 * Fixtures for the X.509 tests: in-memory signers, a CA hierarchy minted by the library, and
 * an independent certificate encoder (@peculiar/x509 over WebCrypto) to craft certificates
 * that break exactly one rule.
 */
import {
  generateKeyPairSync,
  KeyObject,
  type KeyObject as KeyObjectType,
  sign as nodeSign,
  webcrypto,
} from 'node:crypto';
import * as px from '@peculiar/x509';
import { expect } from 'vitest';
import type { KeyType, Signer } from '../../../src/common/signer.js';
import { mintX509CaCertificate, X509SvidMinter } from '../../../src/spiffe/x509-mint.js';

px.cryptoProvider.set(webcrypto as never);

export { px };

// WebCrypto types (the project compiles without the DOM lib).
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
/** A signing algorithm as @peculiar/x509 takes it. */
export type SigAlg = webcrypto.Algorithm | webcrypto.EcdsaParams | webcrypto.RsaPssParams;

export interface TestKey {
  readonly privateKey: KeyObjectType;
  readonly publicKey: KeyObjectType;
  readonly spki: Uint8Array;
}

export function generateKey(keyType: KeyType | 'ec-p521' | 'ed25519'): TestKey {
  const pair =
    keyType === 'ed25519'
      ? generateKeyPairSync('ed25519')
      : keyType.startsWith('ec-')
        ? generateKeyPairSync('ec', {
            namedCurve: { 'ec-p256': 'P-256', 'ec-p384': 'P-384', 'ec-p521': 'P-521' }[
              keyType as 'ec-p256'
            ],
          })
        : generateKeyPairSync('rsa', { modulusLength: keyType === 'rsa-4096' ? 4096 : 2048 });
  return {
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
    spki: new Uint8Array(pair.publicKey.export({ format: 'der', type: 'spki' })),
  };
}

/** A Signer over an in-memory key, as the memory KeyManager provides (P1363 for ECDSA). */
export function memorySigner(
  keyType: KeyType,
  key: TestKey = generateKey(keyType),
  { sync = true }: { sync?: boolean } = {},
): Signer {
  const ec = keyType.startsWith('ec-');
  const hash = keyType === 'ec-p384' ? 'sha384' : 'sha256';
  const signSync = (data: Uint8Array): Uint8Array =>
    new Uint8Array(
      nodeSign(
        hash,
        data,
        ec ? { key: key.privateKey, dsaEncoding: 'ieee-p1363' } : key.privateKey,
      ),
    );
  const signer: Signer = {
    keyType,
    publicKey: key.publicKey,
    publicKeySpki: key.spki,
    sign: async (data) => signSync(data),
  };
  return sync ? { ...signer, signSync } : signer;
}

export const HOUR = 3600_000;
export const NOW = new Date(Date.UTC(2026, 0, 1, 12, 0, 0));

export interface TestPki {
  readonly rootKey: TestKey;
  readonly rootDer: Uint8Array;
  readonly rootSigner: Signer;
  readonly intermediateDer: Uint8Array;
  readonly intermediateSigner: Signer;
  /** Mints leaves under the intermediate. */
  readonly minter: X509SvidMinter;
}

/** A root and an intermediate CA of `trustDomain`, minted by the library. */
export async function makePki(
  trustDomain = 'example.org',
  rootType: KeyType = 'ec-p256',
  intermediateType: KeyType = 'ec-p256',
): Promise<TestPki> {
  const rootKey = generateKey(rootType);
  const rootSigner = memorySigner(rootType, rootKey);
  const rootDer = await mintX509CaCertificate({
    trustDomain,
    subject: { country: ['US'], organization: ['SPIFFE'], commonName: 'root' },
    publicKey: rootKey.publicKey,
    notBefore: new Date(NOW.getTime() - 24 * HOUR),
    notAfter: new Date(NOW.getTime() + 240 * HOUR),
    signer: rootSigner,
  });
  const interKey = generateKey(intermediateType);
  const intermediateSigner = memorySigner(intermediateType, interKey);
  const intermediateDer = await mintX509CaCertificate({
    trustDomain,
    subject: { country: ['US'], organization: ['SPIFFE'], commonName: 'intermediate' },
    publicKey: interKey.spki,
    notBefore: new Date(NOW.getTime() - 12 * HOUR),
    notAfter: new Date(NOW.getTime() + 120 * HOUR),
    signer: rootSigner,
    issuerCertDer: rootDer,
  });
  const minter = new X509SvidMinter({ issuerCertDer: intermediateDer, signer: intermediateSigner });
  return { rootKey, rootDer, rootSigner, intermediateDer, intermediateSigner, minter };
}

// ---------------------------------------------------------------------------------------
// The independent encoder

export interface PxKey {
  readonly keys: CryptoKeyPair;
  readonly alg: webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams;
}

export async function pxKey(curve: 'P-256' | 'P-384' = 'P-256'): Promise<PxKey> {
  const alg: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: curve };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  return { keys, alg };
}

export async function pxRsaKey(name: 'RSASSA-PKCS1-v1_5' | 'RSA-PSS'): Promise<PxKey> {
  const alg: webcrypto.RsaHashedKeyGenParams = {
    name,
    modulusLength: 2048,
    publicExponent: new Uint8Array([1, 0, 1]),
    hash: 'SHA-256',
  };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  return { keys, alg };
}

/** The KeyObject of a WebCrypto key. */
export function keyObject(k: CryptoKey): KeyObjectType {
  return KeyObject.from(k);
}

export const KU = px.KeyUsageFlags;

export interface CraftOptions {
  subject: string;
  issuer: string;
  publicKey: CryptoKey;
  signingKey: CryptoKey;
  signingAlgorithm?: SigAlg;
  notBefore?: Date;
  notAfter?: Date;
  extensions: px.Extension[];
  serialNumber?: string;
}

/** Builds a certificate with @peculiar/x509 (an encoder independent of ours). */
export async function craft(o: CraftOptions): Promise<Uint8Array> {
  const cert = await px.X509CertificateGenerator.create({
    serialNumber: o.serialNumber ?? '0102030405',
    subject: o.subject,
    issuer: o.issuer,
    notBefore: o.notBefore ?? new Date(NOW.getTime() - HOUR),
    notAfter: o.notAfter ?? new Date(NOW.getTime() + HOUR),
    publicKey: o.publicKey,
    signingKey: o.signingKey,
    signingAlgorithm: o.signingAlgorithm ?? { name: 'ECDSA', hash: 'SHA-256' },
    extensions: o.extensions,
  });
  return new Uint8Array(cert.rawData);
}

export const uriSan = (...uris: string[]): px.SubjectAlternativeNameExtension =>
  new px.SubjectAlternativeNameExtension(
    uris.map((value) => ({ type: 'url' as const, value })),
    false,
  );

/** Standard CA extensions (critical basicConstraints cA, critical keyCertSign | cRLSign). */
export async function caExtensions(
  key: CryptoKey,
  { uri, pathLen }: { uri?: string; pathLen?: number } = {},
): Promise<px.Extension[]> {
  const ext: px.Extension[] = [
    new px.BasicConstraintsExtension(true, pathLen, true),
    new px.KeyUsagesExtension(KU.keyCertSign | KU.cRLSign, true),
    await px.SubjectKeyIdentifierExtension.create(key),
  ];
  if (uri !== undefined) ext.push(uriSan(uri));
  return ext;
}

/** Standard leaf extensions, SPIRE-shaped. */
export function leafExtensions(
  uri: string | string[] = 'spiffe://example.org/workload',
): px.Extension[] {
  return [
    new px.BasicConstraintsExtension(false, undefined, true),
    new px.KeyUsagesExtension(KU.digitalSignature | KU.keyEncipherment | KU.keyAgreement, true),
    new px.ExtendedKeyUsageExtension([
      px.ExtendedKeyUsage.serverAuth,
      px.ExtendedKeyUsage.clientAuth,
    ]),
    uriSan(...(Array.isArray(uri) ? uri : [uri])),
  ];
}

/** Runs `fn` and returns the thrown error (failing the test when nothing is thrown). */
export function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: string };
  }
  expect.fail('expected an error');
}

export async function thrownAsync(fn: () => Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await fn();
  } catch (err) {
    return err as Error & { code?: string };
  }
  expect.fail('expected an error');
}
