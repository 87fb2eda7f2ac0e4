/**
 * A small certificate factory for EK tests and benchmarks: root and intermediate CAs and EK
 * certificates in the TCG EK Credential Profile's shape (empty subject, critical SAN
 * directoryName with TPM manufacturer/model/version), with knobs for the quirks real
 * vendors ship (unsorted SET, one RDN per attribute, NV padding, RSAES-OAEP key OID, SHA-1).
 */
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import {
  bitString,
  DER_NULL,
  DER_TRUE,
  octetString,
  oid,
  seq,
  set,
  smallInteger,
  TAG,
  time,
  tlv,
} from '../../../../src/common/der.js';

const utf8 = (s: string): Uint8Array => tlv(TAG.UTF8_STRING, new TextEncoder().encode(s));

/** A Name with one CN. */
export function cnName(cn: string): Uint8Array {
  return seq(set(seq(oid('2.5.4.3'), utf8(cn))));
}

/** A CA (or any signer) with its certificate. */
export interface TestCa {
  readonly der: Uint8Array;
  readonly name: Uint8Array;
  readonly key: KeyObject;
  readonly publicKey: KeyObject;
}

type SigHash = 'sha256' | 'sha1';

function sigAlg(key: KeyObject, hash: SigHash): Uint8Array {
  if (key.asymmetricKeyType === 'ec') {
    return seq(oid(hash === 'sha1' ? '1.2.840.10045.4.1' : '1.2.840.10045.4.3.2'));
  }
  return seq(oid(hash === 'sha1' ? '1.2.840.113549.1.1.5' : '1.2.840.113549.1.1.11'), DER_NULL);
}

function ext(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical ? seq(oid(id), DER_TRUE, octetString(value)) : seq(oid(id), octetString(value));
}

let serialCounter = 1000;

/** Options of {@link makeCertificate}. */
export interface CertOptions {
  readonly issuer: { readonly name: Uint8Array; readonly key: KeyObject };
  readonly subject: Uint8Array;
  readonly spki: Uint8Array;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly extensions: readonly Uint8Array[];
  readonly hash?: SigHash;
}

/** Signs a v3 certificate. */
export function makeCertificate(o: CertOptions): Uint8Array {
  const alg = sigAlg(o.issuer.key, o.hash ?? 'sha256');
  const tbs = seq(
    tlv(0xa0, smallInteger(2)),
    smallInteger(serialCounter++),
    alg,
    o.issuer.name,
    seq(
      time(o.notBefore ?? new Date(Date.UTC(2020, 0, 1))),
      time(o.notAfter ?? new Date(Date.UTC(2045, 0, 1))),
    ),
    o.subject,
    o.spki,
    tlv(0xa3, seq(...o.extensions)),
  );
  const signature = sign(o.hash ?? 'sha256', tbs, o.issuer.key);
  return seq(tbs, alg, bitString(signature));
}

function newKey(kind: 'rsa' | 'ec'): { privateKey: KeyObject; publicKey: KeyObject } {
  return kind === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

function spkiOf(k: KeyObject): Uint8Array {
  return new Uint8Array(k.export({ format: 'der', type: 'spki' }));
}

const CA_KEY_USAGE = tlv(TAG.BIT_STRING, Uint8Array.of(0x01, 0x06)); // keyCertSign, cRLSign

/** A CA: self-signed when `issuer` is absent. */
export function makeCa(
  cn: string,
  options: {
    issuer?: TestCa;
    kind?: 'rsa' | 'ec';
    hash?: SigHash;
    ca?: boolean;
    pathLen?: number;
    notBefore?: Date;
    notAfter?: Date;
  } = {},
): TestCa {
  const { privateKey, publicKey } = newKey(options.kind ?? 'rsa');
  const name = cnName(cn);
  const bc =
    options.ca === false
      ? seq()
      : options.pathLen === undefined
        ? seq(DER_TRUE)
        : seq(DER_TRUE, smallInteger(options.pathLen));
  const der = makeCertificate({
    issuer: options.issuer ?? { name, key: privateKey },
    subject: name,
    spki: spkiOf(publicKey),
    extensions: [ext('2.5.29.19', true, bc), ext('2.5.29.15', true, CA_KEY_USAGE)],
    ...(options.hash === undefined ? {} : { hash: options.hash }),
    ...(options.notBefore === undefined ? {} : { notBefore: options.notBefore }),
    ...(options.notAfter === undefined ? {} : { notAfter: options.notAfter }),
  });
  return { der, name, key: privateKey, publicKey };
}

/** The TPM attributes and how the SAN directoryName lays them out. */
export interface TpmSanOptions {
  readonly manufacturer?: string;
  readonly model?: string;
  readonly version?: string;
  /** 'sorted': one RDN, DER-sorted SET; 'unsorted': one RDN, reverse order; 'rdns': one RDN each. */
  readonly layout?: 'sorted' | 'unsorted' | 'rdns';
  /** Leave attributes out. */
  readonly omit?: ReadonlyArray<'manufacturer' | 'model' | 'version'>;
}

function compare(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** The SAN value with the TPM directoryName. */
export function tpmSan(o: TpmSanOptions = {}): Uint8Array {
  const values: Array<[string, string | undefined, 'manufacturer' | 'model' | 'version']> = [
    ['2.23.133.2.1', o.manufacturer ?? 'id:53504500', 'manufacturer'],
    ['2.23.133.2.2', o.model ?? 'swtpm', 'model'],
    ['2.23.133.2.3', o.version ?? 'id:20191023', 'version'],
  ];
  const atvs = values
    .filter(([, , k]) => !(o.omit ?? []).includes(k))
    .map(([id, v]) => seq(oid(id), utf8(v!)));
  let name: Uint8Array;
  switch (o.layout ?? 'sorted') {
    case 'sorted':
      name = seq(set(...[...atvs].sort(compare)));
      break;
    case 'unsorted':
      name = seq(set(...[...atvs].sort(compare).reverse()));
      break;
    case 'rdns':
      name = seq(...[...atvs].reverse().map((a) => set(a)));
      break;
  }
  return seq(tlv(0xa4, name));
}

/** Options of {@link makeEkCert}. */
export interface EkCertOptions extends TpmSanOptions {
  readonly subject?: Uint8Array;
  readonly sanCritical?: boolean;
  readonly omitSan?: boolean;
  readonly spki?: Uint8Array;
  readonly hash?: SigHash;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly extraExtensions?: readonly Uint8Array[];
  readonly ca?: boolean;
}

/** An EK certificate for `ekKey` issued by `issuer`. */
export function makeEkCert(issuer: TestCa, ekKey: KeyObject, o: EkCertOptions = {}): Uint8Array {
  const keyUsage =
    ekKey.asymmetricKeyType === 'ec'
      ? tlv(TAG.BIT_STRING, Uint8Array.of(0x03, 0x08)) // keyAgreement
      : tlv(TAG.BIT_STRING, Uint8Array.of(0x05, 0x20)); // keyEncipherment
  const extensions = [
    ext('2.5.29.19', true, o.ca === true ? seq(DER_TRUE) : seq()),
    ext('2.5.29.15', true, keyUsage),
    ext('2.5.29.37', false, seq(oid('2.23.133.8.1'))),
    ...(o.omitSan === true ? [] : [ext('2.5.29.17', o.sanCritical ?? true, tpmSan(o))]),
    ...(o.extraExtensions ?? []),
  ];
  return makeCertificate({
    issuer,
    subject: o.subject ?? seq(),
    spki: o.spki ?? spkiOf(ekKey),
    extensions,
    ...(o.hash === undefined ? {} : { hash: o.hash }),
    ...(o.notBefore === undefined ? {} : { notBefore: o.notBefore }),
    ...(o.notAfter === undefined ? {} : { notAfter: o.notAfter }),
  });
}

/** An extension (for `extraExtensions`). */
export { ext as makeExtension };
