/**
 * Test PKI for x509pop: root and intermediate CAs and leaf certificates made with
 * @peculiar/x509 (an independent encoder), with KeyObjects for the agent side.
 */
import { KeyObject, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const RSA = {
  name: 'RSASSA-PKCS1-v1_5',
  hash: 'SHA-256',
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength: 2048,
} as const;

let serialCounter = 0x1000;
const nextSerial = () => (serialCounter++).toString(16).padStart(4, '0');

export interface TestCa {
  readonly cert: x509.X509Certificate;
  readonly der: Uint8Array;
  readonly keys: webcrypto.CryptoKeyPair;
}

export interface TestLeaf {
  readonly der: Uint8Array;
  readonly privateKey: KeyObject;
  readonly serialHex: string;
}

interface Validity {
  notBefore?: Date;
  notAfter?: Date;
}

function validity(v: Validity): { notBefore: Date; notAfter: Date } {
  return {
    notBefore: v.notBefore ?? new Date(Date.now() - 3600_000),
    notAfter: v.notAfter ?? new Date(Date.now() + 24 * 3600_000),
  };
}

async function ecKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
}

/** A CA: self-signed when `issuer` is absent, else signed by it. */
export async function makeCa(
  name: string,
  opts: Validity & { issuer?: TestCa; pathLen?: number; isCa?: boolean } = {},
): Promise<TestCa> {
  const keys = await ecKeys();
  const extensions = [
    new x509.BasicConstraintsExtension(opts.isCa ?? true, opts.pathLen, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
  ];
  const cert =
    opts.issuer === undefined
      ? await x509.X509CertificateGenerator.createSelfSigned({
          serialNumber: nextSerial(),
          name: `CN=${name}`,
          ...validity(opts),
          keys,
          signingAlgorithm: EC,
          extensions,
        })
      : await x509.X509CertificateGenerator.create({
          serialNumber: nextSerial(),
          subject: `CN=${name}`,
          issuer: opts.issuer.cert.subject,
          ...validity(opts),
          publicKey: keys.publicKey,
          signingKey: opts.issuer.keys.privateKey,
          signingAlgorithm: EC,
          extensions,
        });
  return { cert, der: new Uint8Array(cert.rawData), keys };
}

/** A leaf for x509pop: CN, optional URI SANs, digitalSignature unless told otherwise. */
export async function makeLeaf(
  issuer: TestCa,
  opts: Validity & {
    cn?: string;
    uris?: string[];
    keyUsage?: number | null;
    rsa?: boolean;
    serialHex?: string;
  } = {},
): Promise<TestLeaf> {
  const keys = (
    opts.rsa === true
      ? await webcrypto.subtle.generateKey(RSA, true, ['sign', 'verify'])
      : await ecKeys()
  ) as webcrypto.CryptoKeyPair;
  const extensions: x509.Extension[] = [new x509.BasicConstraintsExtension(false, undefined, true)];
  if (opts.keyUsage !== null) {
    extensions.push(
      new x509.KeyUsagesExtension(opts.keyUsage ?? x509.KeyUsageFlags.digitalSignature, true),
    );
  }
  if (opts.uris !== undefined && opts.uris.length > 0) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension(
        opts.uris.map((value) => ({ type: 'url' as const, value })),
        false,
      ),
    );
  }
  const serialHex = opts.serialHex ?? nextSerial();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialHex,
    subject: opts.cn === undefined ? '' : `CN=${opts.cn}`,
    issuer: issuer.cert.subject,
    ...validity(opts),
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: EC,
    extensions,
  });
  return {
    der: new Uint8Array(cert.rawData),
    privateKey: KeyObject.from(keys.privateKey),
    serialHex,
  };
}
