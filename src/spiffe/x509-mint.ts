/**
 * X.509 CA certificates and X509-SVIDs, minted the way SPIRE's credential builder shapes
 * them (pkg/server/credtemplate), from pre-encoded DER templates: the server's hot path.
 *
 * Everything constant for one CA (issuer name, authority key identifier, signature
 * algorithm, the fixed extensions) is encoded once when an {@link X509SvidMinter} is built;
 * each mint only encodes the serial, the validity, the SAN, the subject key identifier and
 * the public key, then signs. An SVID's tbsCertificate and certificate are each written in
 * one pass into one buffer (sizes first), not assembled from nested encodings.
 *
 * Errors: arguments that are not what the API takes throw `TypeError`; a public key given as
 * bytes that is not a usable key throws `ERR_PUBLIC_KEY_INVALID`; a certification request
 * that does not parse or verify throws `ERR_CSR_INVALID` (see csr.ts).
 */
import * as nodeCrypto from 'node:crypto';
import { KeyObject } from 'node:crypto';
import {
  bitString,
  DER_TRUE,
  derError,
  oid,
  readTlv,
  seq,
  smallInteger,
  TAG,
  time,
  tlv,
  unsignedInteger,
} from '../common/der.js';
import { SpireEdgeError } from '../common/errors.js';
import { cryptoRandom, type RandomSource } from '../common/random.js';
import type { Signer } from '../common/signer.js';
import { type EcdsaVerifier, type VerifiedCsrKey, verifyCsrKeyAsync } from './csr.js';
import { parseSpiffeId, type SpiffeId, type TrustDomain, toSpiffeId, toTrustDomain } from './id.js';
import {
  inspectSpki,
  keyIdFromSpki,
  publicKeyFromSpki,
  spkiFromKeyObject,
} from './internal/spki.js';
import {
  extension,
  signatureAlgorithmFor,
  VERSION_V3,
  x509SignatureBytes,
} from './internal/x509-encode.js';
import { encodeName, type SubjectFields } from './internal/x509-name.js';
import { OID } from './internal/x509-oids.js';
import { type ParsedCertificate, parseCertificate } from './x509-cert.js';

export type { SubjectFields } from './internal/x509-name.js';

// ---------------------------------------------------------------------------------------
// Constant DER pieces

// keyUsage BIT STRINGs: digitalSignature(0) | keyEncipherment(2) | keyAgreement(4) for
// leaves (SPIRE), digitalSignature(0) | keyCertSign(5) | cRLSign(6) for CAs.
const LEAF_KEY_USAGE = extension(OID.keyUsage, true, Uint8Array.of(0x03, 0x02, 0x03, 0xa8));
const CA_KEY_USAGE = extension(OID.keyUsage, true, Uint8Array.of(0x03, 0x02, 0x01, 0x86));
const LEAF_EXT_KEY_USAGE = extension(
  OID.extKeyUsage,
  false,
  seq(
    Uint8Array.of(0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01),
    Uint8Array.of(0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02),
  ),
);
const LEAF_BASIC_CONSTRAINTS = extension(OID.basicConstraints, true, seq());
/** Prefix of a non-critical subjectKeyIdentifier extension holding a 20-byte key ID. */
const SKI_PREFIX = Uint8Array.of(0x30, 0x1d, 0x06, 0x03, 0x55, 0x1d, 0x0e, 0x04, 0x16, 0x04, 0x14);

/** SPIRE's default X509-SVID subject (credtemplate.DefaultX509SVIDSubject). */
export const DEFAULT_X509_SVID_SUBJECT: SubjectFields = Object.freeze({
  country: ['US'],
  organization: ['SPIRE'],
});

/** SPIRE's default X.509 CA subject (credtemplate.DefaultX509CASubject). */
export const DEFAULT_X509_CA_SUBJECT: SubjectFields = Object.freeze({
  country: ['US'],
  organization: ['SPIFFE'],
});

const DEFAULT_SVID_SUBJECT_DER = encodeName(DEFAULT_X509_SVID_SUBJECT);
/** How many `C=US, O=SPIRE, CN=<dns>` subjects a minter keeps encoded. */
const CN_SUBJECT_CACHE_SIZE = 4096;

/**
 * Mints for the key of a CSR whose signature has been verified: OpenSSL imported the key
 * or the native verifier decoded its point, so the EC point arithmetic is not repeated, and
 * an SPKI the native path inspected is not parsed again. Set by the X509SvidMinter class
 * so that it can reach the minter's private members.
 */
let mintVerifiedCsrKey: (
  minter: X509SvidMinter,
  opts: MintX509SvidOptions,
  key: VerifiedCsrKey,
) => Promise<Uint8Array>;
const EMPTY_NAME = seq();

// ---------------------------------------------------------------------------------------
// Argument helpers

function publicKeyError(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_PUBLIC_KEY_INVALID',
    message,
    cause === undefined ? {} : { cause },
  );
}

/**
 * SPKI DER of a public key argument, checked to be a key SVIDs may certify. `checkPoint`
 * false skips the EC point arithmetic for a key OpenSSL has already imported (a verified
 * CSR's).
 */
function spkiOf(publicKey: KeyObject | Uint8Array, checkPoint = true): Uint8Array {
  if (publicKey instanceof Uint8Array) {
    let kind: string;
    try {
      const s = inspectSpki(publicKey, { checkPoint });
      kind = s.kind === 'other' ? s.algorithm : s.kind;
    } catch (err) {
      throw publicKeyError(
        `public key is not a valid SubjectPublicKeyInfo: ${(err as Error).message}`,
        err,
      );
    }
    checkKeyKind(kind);
    return publicKey;
  }
  if (!(publicKey instanceof KeyObject) || publicKey.type === 'secret') {
    throw new TypeError('publicKey must be a public KeyObject or SubjectPublicKeyInfo DER bytes');
  }
  const kt = publicKey.asymmetricKeyType;
  if (kt === 'rsa' && (publicKey.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
    throw new TypeError('publicKey: RSA keys must be at least 2048 bits');
  }
  if (kt === 'ec') {
    const curve = publicKey.asymmetricKeyDetails?.namedCurve;
    if (curve !== 'prime256v1' && curve !== 'secp384r1' && curve !== 'secp521r1') {
      throw new TypeError(`publicKey: EC curve ${String(curve)} is not supported`);
    }
  } else if (kt !== 'rsa' && kt !== 'ed25519') {
    throw new TypeError(`publicKey: key type ${String(kt)} is not supported`);
  }
  return spkiFromKeyObject(publicKey);
}

/** Refuses SPKI algorithms SVIDs may not certify (`kind` as {@link inspectSpki} names it). */
function checkKeyKind(kind: string): void {
  if (kind !== 'ec' && kind !== 'rsa' && kind !== 'ed25519') {
    throw publicKeyError(
      `public key algorithm ${kind} is not supported (P-256, P-384, P-521, RSA, Ed25519)`,
    );
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** True when two SPKIs hold the same key (byte-equal, or equal once imported). */
function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  if (bytesEqual(a, b)) return true;
  try {
    return publicKeyFromSpki(a).equals(publicKeyFromSpki(b));
  } catch {
    return false;
  }
}

function checkSigner(signer: Signer): void {
  if (
    signer === null ||
    typeof signer !== 'object' ||
    typeof signer.sign !== 'function' ||
    !(signer.publicKeySpki instanceof Uint8Array)
  ) {
    throw new TypeError('signer must implement Signer');
  }
  signatureAlgorithmFor(signer.keyType);
}

function checkDates(notBefore: Date, notAfter: Date): void {
  if (!(notBefore instanceof Date) || Number.isNaN(notBefore.getTime())) {
    throw new TypeError('notBefore must be a valid Date');
  }
  if (!(notAfter instanceof Date) || Number.isNaN(notAfter.getTime())) {
    throw new TypeError('notAfter must be a valid Date');
  }
  if (notAfter.getTime() <= notBefore.getTime())
    throw new TypeError('notAfter must be after notBefore');
}

/** Encodes a serial: given bytes (checked) or 16 random bytes, positive and non-zero. */
function serialInteger(serial: Uint8Array | undefined, random: () => Uint8Array): Uint8Array {
  let magnitude: Uint8Array;
  if (serial !== undefined) {
    if (!(serial instanceof Uint8Array)) throw new TypeError('serial must be a Uint8Array');
    magnitude = serial;
  } else {
    magnitude = random();
  }
  if (magnitude.every((b) => b === 0)) {
    if (serial !== undefined) throw new TypeError('serial must be positive (RFC 5280 §4.1.2.2)');
    magnitude = Uint8Array.from(magnitude);
    magnitude[magnitude.length - 1] = 1;
  }
  const der = unsignedInteger(magnitude);
  // Content (after the 2-byte header) at most 20 octets, RFC 5280 §4.1.2.2.
  if (der.length - 2 > 20) throw new TypeError('serial must fit in 20 octets (RFC 5280 §4.1.2.2)');
  return der;
}

const IA5_NAME = /^[\x21-\x7e]+$/;

const SAN_OID = oid(OID.subjectAltName);

function sanExtension(uri: string, dnsNames: readonly string[], critical: boolean): Uint8Array {
  const names: Uint8Array[] = [tlv(0x86, Buffer.from(uri, 'latin1'))];
  for (const d of dnsNames) names.push(tlv(0x82, Buffer.from(d, 'latin1')));
  const value = tlv(0x04, seq(...names));
  return critical ? seq(SAN_OID, DER_TRUE, value) : seq(SAN_OID, value);
}

// ---------------------------------------------------------------------------------------
// One-pass DER writing for the X509-SVID hot path: the sizes are added up first, then every
// field is written once into one buffer (the general encoders above allocate a buffer per
// nested value). The bytes are the same as those encoders', which a property test checks.

/** Size of a DER header (tag + definite length) for `n` content octets. */
function headerSize(n: number): number {
  return n < 0x80 ? 2 : n < 0x100 ? 3 : n < 0x10000 ? 4 : n < 0x1000000 ? 5 : 6;
}

/** Writes a DER header at `o`; returns the offset after it. */
function putHeader(out: Uint8Array, o: number, tag: number, n: number): number {
  out[o++] = tag;
  if (n < 0x80) {
    out[o++] = n;
  } else if (n < 0x100) {
    out[o++] = 0x81;
    out[o++] = n;
  } else if (n < 0x10000) {
    out[o++] = 0x82;
    out[o++] = n >> 8;
    out[o++] = n & 0xff;
  } else if (n < 0x1000000) {
    out[o++] = 0x83;
    out[o++] = n >> 16;
    out[o++] = (n >> 8) & 0xff;
    out[o++] = n & 0xff;
  } else {
    out[o++] = 0x84;
    out[o++] = n >>> 24;
    out[o++] = (n >> 16) & 0xff;
    out[o++] = (n >> 8) & 0xff;
    out[o++] = n & 0xff;
  }
  return o;
}

/** Writes an ASCII string (already checked to be ASCII) at `o`. */
function putAscii(out: Uint8Array, o: number, text: string): number {
  for (let i = 0; i < text.length; i++) out[o++] = text.charCodeAt(i);
  return o;
}

function putBytes(out: Uint8Array, o: number, b: Uint8Array): number {
  out.set(b, o);
  return o + b.length;
}

/** `02 len [00] magnitude`: where the minimal magnitude starts and whether it needs a 00. */
function integerShape(b: Uint8Array, from: number, to: number): [start: number, pad: number] {
  let i = from;
  while (i < to - 1 && b[i] === 0) i++;
  return [i, b[i]! & 0x80 ? 1 : 0];
}

/** One-shot SHA-1 (crypto.hash where Node has it: no Hash object per call). */
const sha1: (data: Uint8Array) => Uint8Array =
  typeof nodeCrypto.hash === 'function'
    ? (data) => nodeCrypto.hash('sha1', data, 'buffer')
    : (data) => nodeCrypto.createHash('sha1').update(data).digest();

/**
 * The subjectPublicKey BIT STRING contents (after the unused-bits octet) of an SPKI already
 * checked by `inspectSpki`: the bytes the RFC 5280 §4.2.1.2 method (1) key identifier hashes.
 */
function subjectPublicKeyBits(spki: Uint8Array): Uint8Array {
  const top = readTlv(spki);
  const alg = readTlv(spki, top.start, top.end);
  const bits = readTlv(spki, alg.end, top.end);
  if (bits.tag !== TAG.BIT_STRING || bits.end === bits.start) {
    throw derError('subjectPublicKeyInfo.subjectPublicKey: expected a BIT STRING');
  }
  return spki.subarray(bits.start + 1, bits.end);
}

/** Allocates from Node's small-buffer pool: a slice of a shared slab, no allocation per call. */
function pooled(n: number): Uint8Array {
  const b = Buffer.allocUnsafe(n);
  return new Uint8Array(b.buffer, b.byteOffset, n);
}

/** Encodes validity times, remembering the last ones: SVIDs minted in one second share them. */
class TimeEncoder {
  #lastSecond = Number.NaN;
  #last: Uint8Array = new Uint8Array(0);

  encode(d: Date): Uint8Array {
    const sec = Math.floor(d.getTime() / 1000);
    if (sec !== this.#lastSecond) {
      this.#last = time(d);
      this.#lastSecond = sec;
    }
    return this.#last;
  }
}

/** Draws serial magnitudes from the random source in batches (one call per 64 serials). */
class SerialPool {
  readonly #random: RandomSource;
  #pool: Uint8Array = new Uint8Array(0);
  #pos = 0;

  constructor(random: RandomSource) {
    this.#random = random;
  }

  next(): Uint8Array {
    if (this.#pos + 16 > this.#pool.length) {
      this.#pool = this.#random.bytes(16 * 64);
      this.#pos = 0;
    }
    const out = this.#pool.subarray(this.#pos, this.#pos + 16);
    this.#pos += 16;
    return out;
  }
}

function checkDnsNames(dnsNames: readonly string[] | undefined): readonly string[] {
  if (dnsNames === undefined) return [];
  if (!Array.isArray(dnsNames)) throw new TypeError('dnsNames must be an array of strings');
  for (const d of dnsNames) {
    if (typeof d !== 'string' || !IA5_NAME.test(d) || d.length > 253) {
      throw new TypeError(`dnsNames: ${JSON.stringify(d)} is not a DNS name`);
    }
  }
  return dnsNames;
}

function skiExtension(keyId: Uint8Array): Uint8Array {
  const out = new Uint8Array(SKI_PREFIX.length + 20);
  out.set(SKI_PREFIX);
  out.set(keyId, SKI_PREFIX.length);
  return out;
}

function akiExtension(keyId: Uint8Array): Uint8Array {
  return extension(OID.authorityKeyIdentifier, false, seq(tlv(0x80, keyId)));
}

function minDate(a: Date, b: Date): Date {
  return a.getTime() <= b.getTime() ? a : b;
}

function parseIssuer(der: Uint8Array): ParsedCertificate {
  if (!(der instanceof Uint8Array)) throw new TypeError('issuerCertDer must be a Uint8Array');
  const cert = parseCertificate(der);
  if (cert.extensions.basicConstraints?.ca !== true) {
    throw new TypeError('issuerCertDer must be a CA certificate (basicConstraints cA TRUE)');
  }
  return cert;
}

// ---------------------------------------------------------------------------------------
// CA certificates

/** Options of {@link mintX509CaCertificate}. */
export interface MintX509CaOptions {
  /** The trust domain: CA certificates carry the URI SAN `spiffe://<td>` (as SPIRE's do). */
  trustDomain: TrustDomain | string;
  /**
   * The subject. When `serialNumber` is undefined it is set to the certificate serial in
   * decimal, as SPIRE does; pass `''` to leave it out.
   */
  subject: {
    country?: string[];
    organization?: string[];
    organizationalUnit?: string[];
    commonName?: string;
    serialNumber?: string;
  };
  /** The CA's own public key (KeyObject or SubjectPublicKeyInfo DER). */
  publicKey: KeyObject | Uint8Array;
  notBefore: Date;
  /** Capped at the issuer certificate's notAfter when there is an issuer. */
  notAfter: Date;
  /** The issuer's key; the CA's own key when self-signed. */
  signer: Signer;
  /** The issuer's certificate; absent means self-signed (issuer = subject). */
  issuerCertDer?: Uint8Array;
  /** Default: 16 random bytes (128 bits), positive. */
  serial?: Uint8Array;
  /** basicConstraints pathLenConstraint, when the CA may only sign this deep. */
  pathLenConstraint?: number;
  /** Randomness for the serial; the system CSPRNG by default. */
  random?: RandomSource;
}

/**
 * Mints an X.509 CA certificate (an X509-SVID signing certificate, SPIFFE X509-SVID §3.2,
 * §4.1, §4.3): basicConstraints critical cA TRUE (with `pathLenConstraint` when given),
 * keyUsage critical keyCertSign | cRLSign | digitalSignature, subjectKeyIdentifier (SHA-1 of
 * the key, RFC 5280 §4.2.1.2 method 1), authorityKeyIdentifier (the issuer's key
 * identifier; its own when self-signed) and the trust domain's SPIFFE ID as URI SAN
 * (critical when the subject is empty). Signed with ecdsa-with-SHA256/384 or
 * sha256WithRSAEncryption according to `signer.keyType`.
 *
 * Trusts the signer to hold the issuer's key and checks that it does (the signer's public
 * key must be the issuer certificate's, or `publicKey` when self-signed).
 *
 * @returns the certificate DER.
 */
export async function mintX509CaCertificate(opts: MintX509CaOptions): Promise<Uint8Array> {
  if (opts === null || typeof opts !== 'object') throw new TypeError('options are required');
  const td = toTrustDomain(opts.trustDomain);
  checkSigner(opts.signer);
  checkDates(opts.notBefore, opts.notAfter);
  const spki = spkiOf(opts.publicKey);
  const random = opts.random ?? cryptoRandom;
  const serialDer = serialInteger(opts.serial, () => random.bytes(16));
  const keyId = keyIdFromSpki(spki);

  const subjectFields = opts.subject ?? {};
  const subjectDer = encodeName({
    ...subjectFields,
    serialNumber: subjectFields.serialNumber ?? decimalSerial(serialDer),
  });

  let issuerDer: Uint8Array;
  let authorityKeyId: Uint8Array | undefined;
  let notAfter = opts.notAfter;
  if (opts.issuerCertDer === undefined) {
    if (!sameKey(opts.signer.publicKeySpki, spki)) {
      throw new TypeError('a self-signed CA must be signed with its own key (signer.publicKey)');
    }
    issuerDer = subjectDer;
    authorityKeyId = keyId;
  } else {
    const issuer = parseIssuer(opts.issuerCertDer);
    if (!sameKey(opts.signer.publicKeySpki, issuer.spkiDer)) {
      throw new TypeError("signer's public key does not match the issuer certificate");
    }
    issuerDer = issuer.subjectDer;
    authorityKeyId = issuer.extensions.subjectKeyId;
    notAfter = minDate(notAfter, issuer.notAfter);
    if (notAfter.getTime() <= opts.notBefore.getTime()) {
      throw new TypeError('the issuer certificate expires before notBefore');
    }
  }

  const pathLen = opts.pathLenConstraint;
  if (pathLen !== undefined && (!Number.isSafeInteger(pathLen) || pathLen < 0)) {
    throw new TypeError('pathLenConstraint must be a non-negative integer');
  }
  const basicConstraints = extension(
    OID.basicConstraints,
    true,
    pathLen === undefined ? seq(DER_TRUE) : seq(DER_TRUE, smallInteger(pathLen)),
  );
  const extensions: Uint8Array[] = [CA_KEY_USAGE, basicConstraints, skiExtension(keyId)];
  if (authorityKeyId !== undefined) extensions.push(akiExtension(authorityKeyId));
  extensions.push(sanExtension(td.idString(), [], bytesEqual(subjectDer, EMPTY_NAME)));

  const sigAlg = signatureAlgorithmFor(opts.signer.keyType);
  const tbs = seq(
    VERSION_V3,
    serialDer,
    sigAlg,
    issuerDer,
    seq(time(opts.notBefore), time(notAfter)),
    subjectDer,
    spki,
    tlv(0xa3, seq(...extensions)),
  );
  const sig = await opts.signer.sign(tbs);
  return seq(tbs, sigAlg, bitString(x509SignatureBytes(opts.signer.keyType, sig)));
}

function decimalSerial(serialDer: Uint8Array): string {
  return BigInt(`0x${Buffer.from(serialDer.subarray(2)).toString('hex')}`).toString(10);
}

// ---------------------------------------------------------------------------------------
// X509-SVIDs

/** Options of {@link X509SvidMinter}. */
export interface X509SvidMinterOptions {
  /** The CA certificate that signs (its subject becomes the issuer, its SKI the AKI). */
  issuerCertDer: Uint8Array;
  /** The CA's key. */
  signer: Signer;
  /** Randomness for serials; the system CSPRNG by default. */
  random?: RandomSource;
}

/** Options of {@link X509SvidMinter.mint}. */
export interface MintX509SvidOptions {
  /** The SVID's SPIFFE ID: non-root path, in the CA's trust domain when the CA has one. */
  spiffeId: SpiffeId | string;
  /** The SVID's public key (KeyObject or SubjectPublicKeyInfo DER). */
  publicKey: KeyObject | Uint8Array;
  notBefore: Date;
  /** Capped at the CA certificate's notAfter (as SPIRE caps SVIDs to their CA). */
  notAfter: Date;
  /** DNS SANs; the first also becomes the subject CN, as SPIRE does. */
  dnsNames?: readonly string[];
  /** The subject; SPIRE's default `C=US, O=SPIRE` when absent. */
  subject?: SubjectFields;
  /** Default: 16 random bytes (128 bits), positive. */
  serial?: Uint8Array;
}

/**
 * Mints X509-SVIDs (leaf certificates) for one CA, shaped as SPIRE's workload SVIDs
 * (SPIFFE X509-SVID §3.1, §4; SPIRE credtemplate): subject `C=US, O=SPIRE` unless given,
 * CN = first DNS name; keyUsage critical digitalSignature | keyEncipherment | keyAgreement;
 * extKeyUsage serverAuth, clientAuth; basicConstraints critical cA FALSE; subjectKeyIdentifier;
 * authorityKeyIdentifier = the CA's key identifier; SAN with the SPIFFE ID URI first, then
 * the DNS names; a 128-bit random serial. Everything constant is pre-encoded at
 * construction, so a mint costs little more than the signature.
 *
 * Trusts its arguments: the caller (the server's SVID service) has authorised the ID and
 * the key. Checks that the signer holds the CA certificate's key.
 */
export class X509SvidMinter {
  /** The CA certificate's trust domain (from its SPIFFE ID URI SAN), when it has one. */
  readonly trustDomain: TrustDomain | undefined;
  /** The CA certificate's notAfter: minted SVIDs never outlive it. */
  readonly issuerNotAfter: Date;
  readonly #signer: Signer;
  readonly #serials: SerialPool;
  readonly #notBeforeTimes = new TimeEncoder();
  readonly #notAfterTimes = new TimeEncoder();
  readonly #sigAlg: Uint8Array;
  /** serial goes between VERSION_V3 and this: signature AlgorithmIdentifier + issuer Name. */
  readonly #sigAlgAndIssuer: Uint8Array;
  /** keyUsage + extKeyUsage + basicConstraints. */
  readonly #fixedExtensions: Uint8Array;
  /** authorityKeyIdentifier, or empty when the CA has no key identifier. */
  readonly #aki: Uint8Array;
  /** Default subjects with CN = a first DNS name, encoded once per name (bounded). */
  readonly #cnSubjects = new Map<string, Uint8Array>();

  static {
    mintVerifiedCsrKey = async (minter, opts, key) => {
      const tbs = minter.#tbs(opts, key);
      return minter.#assemble(tbs, await minter.#signer.sign(tbs));
    };
  }

  constructor(opts: X509SvidMinterOptions) {
    if (opts === null || typeof opts !== 'object') throw new TypeError('options are required');
    checkSigner(opts.signer);
    const issuer = parseIssuer(opts.issuerCertDer);
    if (!sameKey(opts.signer.publicKeySpki, issuer.spkiDer)) {
      throw new TypeError("signer's public key does not match the issuer certificate");
    }
    this.#signer = opts.signer;
    this.#serials = new SerialPool(opts.random ?? cryptoRandom);
    this.#sigAlg = signatureAlgorithmFor(opts.signer.keyType);
    this.#sigAlgAndIssuer = Buffer.concat([this.#sigAlg, issuer.subjectDer]);
    this.#fixedExtensions = Buffer.concat([
      LEAF_KEY_USAGE,
      LEAF_EXT_KEY_USAGE,
      LEAF_BASIC_CONSTRAINTS,
    ]);
    const ski = issuer.extensions.subjectKeyId;
    this.#aki = ski === undefined ? new Uint8Array(0) : akiExtension(ski);
    this.issuerNotAfter = issuer.notAfter;
    this.trustDomain = issuerTrustDomain(issuer);
  }

  /** Mints an X509-SVID, signing with `signer.sign`. Returns the certificate DER. */
  async mint(opts: MintX509SvidOptions): Promise<Uint8Array> {
    const tbs = this.#tbs(opts);
    return this.#assemble(tbs, await this.#signer.sign(tbs));
  }

  /**
   * Mints synchronously with `signer.signSync` (in-memory keys only).
   *
   * @throws TypeError when the signer has no synchronous path.
   */
  mintSync(opts: MintX509SvidOptions): Uint8Array {
    const signSync = this.#signer.signSync;
    if (signSync === undefined) throw new TypeError('the signer has no synchronous signSync');
    const tbs = this.#tbs(opts);
    return this.#assemble(tbs, signSync.call(this.#signer, tbs));
  }

  /** True when this signer can mint synchronously. */
  get canMintSync(): boolean {
    return this.#signer.signSync !== undefined;
  }

  /** The default subject with CN = `cn`, cached: servers mint for the same names all day. */
  #cnSubject(cn: string): Uint8Array {
    let der = this.#cnSubjects.get(cn);
    if (der === undefined) {
      der = encodeName({ ...DEFAULT_X509_SVID_SUBJECT, commonName: cn });
      if (this.#cnSubjects.size >= CN_SUBJECT_CACHE_SIZE) this.#cnSubjects.clear();
      this.#cnSubjects.set(cn, der);
    }
    return der;
  }

  /**
   * The tbsCertificate. `verified` is the key of a verified CSR: its point is not checked
   * again, and an SPKI the CSR check inspected is not parsed again.
   */
  #tbs(opts: MintX509SvidOptions, verified?: VerifiedCsrKey): Uint8Array {
    if (opts === null || typeof opts !== 'object') throw new TypeError('options are required');
    const id = toSpiffeId(opts.spiffeId);
    if (id.path === '') throw new TypeError('spiffeId must have a non-root path (X509-SVID §3.1)');
    if (this.trustDomain !== undefined && !id.memberOf(this.trustDomain)) {
      throw new TypeError(
        `spiffeId must be a member of the CA's trust domain ${this.trustDomain.name}`,
      );
    }
    checkDates(opts.notBefore, opts.notAfter);
    const notAfter = minDate(opts.notAfter, this.issuerNotAfter);
    if (notAfter.getTime() <= opts.notBefore.getTime()) {
      throw new TypeError('the CA certificate expires before notBefore');
    }
    const dnsNames = checkDnsNames(opts.dnsNames);
    let spki: Uint8Array;
    let keyBits: Uint8Array;
    const inspected = verified?.inspected;
    if (inspected !== undefined && opts.publicKey === verified?.spkiDer) {
      checkKeyKind(inspected.kind);
      spki = opts.publicKey;
      keyBits = inspected.keyBits;
    } else {
      spki = spkiOf(opts.publicKey, verified === undefined);
      keyBits = subjectPublicKeyBits(spki);
    }

    let subjectDer: Uint8Array;
    if (opts.subject === undefined) {
      subjectDer = dnsNames.length === 0 ? DEFAULT_SVID_SUBJECT_DER : this.#cnSubject(dnsNames[0]!);
    } else {
      const base = opts.subject ?? DEFAULT_X509_SVID_SUBJECT;
      subjectDer = encodeName(dnsNames.length > 0 ? { ...base, commonName: dnsNames[0]! } : base);
    }
    const uri = id.toString();
    const serial = serialInteger(opts.serial, () => this.#serials.next());
    const notBeforeDer = this.#notBeforeTimes.encode(opts.notBefore);
    const notAfterDer = this.#notAfterTimes.encode(notAfter);

    // Sizes, innermost first (SAN, extensions, then the whole).
    let names = headerSize(uri.length) + uri.length;
    for (const d of dnsNames) names += headerSize(d.length) + d.length;
    const nameSeq = headerSize(names) + names;
    const sanValue = headerSize(nameSeq) + nameSeq;
    const sanCritical = subjectDer.length === 2; // an empty subject (RFC 5280 §4.1.2.6)
    const sanBody = SAN_OID.length + (sanCritical ? DER_TRUE.length : 0) + sanValue;
    const extBody =
      this.#fixedExtensions.length +
      SKI_PREFIX.length +
      20 +
      this.#aki.length +
      headerSize(sanBody) +
      sanBody;
    const extSeq = headerSize(extBody) + extBody;
    const validity = notBeforeDer.length + notAfterDer.length;
    const body =
      VERSION_V3.length +
      serial.length +
      this.#sigAlgAndIssuer.length +
      headerSize(validity) +
      validity +
      subjectDer.length +
      spki.length +
      headerSize(extSeq) +
      extSeq;
    const total = headerSize(body) + body;

    const out = pooled(total);
    let o = putHeader(out, 0, TAG.SEQUENCE, body);
    o = putBytes(out, o, VERSION_V3);
    o = putBytes(out, o, serial);
    o = putBytes(out, o, this.#sigAlgAndIssuer);
    o = putHeader(out, o, TAG.SEQUENCE, validity);
    o = putBytes(out, o, notBeforeDer);
    o = putBytes(out, o, notAfterDer);
    o = putBytes(out, o, subjectDer);
    o = putBytes(out, o, spki);
    o = putHeader(out, o, 0xa3, extSeq);
    o = putHeader(out, o, TAG.SEQUENCE, extBody);
    o = putBytes(out, o, this.#fixedExtensions);
    o = putBytes(out, o, SKI_PREFIX);
    o = putBytes(out, o, sha1(keyBits));
    o = putBytes(out, o, this.#aki);
    o = putHeader(out, o, TAG.SEQUENCE, sanBody);
    o = putBytes(out, o, SAN_OID);
    if (sanCritical) o = putBytes(out, o, DER_TRUE);
    o = putHeader(out, o, TAG.OCTET_STRING, nameSeq);
    o = putHeader(out, o, TAG.SEQUENCE, names);
    o = putHeader(out, o, 0x86, uri.length);
    o = putAscii(out, o, uri);
    for (const d of dnsNames) {
      o = putHeader(out, o, 0x82, d.length);
      o = putAscii(out, o, d);
    }
    if (o !== total) throw new Error(`internal error: tbsCertificate is ${o} bytes, not ${total}`);
    return out;
  }

  /** `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }`. */
  #assemble(tbs: Uint8Array, sig: Uint8Array): Uint8Array {
    const kt = this.#signer.keyType;
    const ec = kt === 'ec-p256' || kt === 'ec-p384';
    let sigValue: number;
    let r: [number, number] = [0, 0];
    let s: [number, number] = [0, 0];
    let half = 0;
    if (ec) {
      if (sig.length % 2 !== 0 || sig.length === 0) {
        throw derError('P1363 signature has odd length');
      }
      half = sig.length / 2;
      r = integerShape(sig, 0, half);
      s = integerShape(sig, half, sig.length);
      const rLen = half - r[0] + r[1];
      const sLen = sig.length - s[0] + s[1];
      const ints = headerSize(rLen) + rLen + headerSize(sLen) + sLen;
      sigValue = headerSize(ints) + ints;
    } else {
      sigValue = sig.length;
    }
    const bits = 1 + sigValue;
    const body = tbs.length + this.#sigAlg.length + headerSize(bits) + bits;
    const total = headerSize(body) + body;
    const out = new Uint8Array(total);
    let o = putHeader(out, 0, TAG.SEQUENCE, body);
    o = putBytes(out, o, tbs);
    o = putBytes(out, o, this.#sigAlg);
    o = putHeader(out, o, TAG.BIT_STRING, bits);
    out[o++] = 0;
    if (ec) {
      const rLen = half - r[0] + r[1];
      const sLen = sig.length - s[0] + s[1];
      o = putHeader(out, o, TAG.SEQUENCE, headerSize(rLen) + rLen + headerSize(sLen) + sLen);
      o = putHeader(out, o, TAG.INTEGER, rLen);
      if (r[1] === 1) out[o++] = 0;
      o = putBytes(out, o, sig.subarray(r[0], half));
      o = putHeader(out, o, TAG.INTEGER, sLen);
      if (s[1] === 1) out[o++] = 0;
      o = putBytes(out, o, sig.subarray(s[0]));
    } else {
      o = putBytes(out, o, sig);
    }
    if (o !== total) throw new Error(`internal error: certificate is ${o} bytes, not ${total}`);
    return out;
  }
}

function issuerTrustDomain(issuer: ParsedCertificate): TrustDomain | undefined {
  for (const uri of issuer.extensions.subjectAltName?.uris ?? []) {
    if (!uri.startsWith('spiffe://')) continue;
    try {
      return parseSpiffeId(uri).trustDomain;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Options of {@link mintX509SvidFromCsr}: the caller decides the ID, never the CSR. */
export interface MintX509SvidFromCsrOptions {
  spiffeId: SpiffeId | string;
  notBefore: Date;
  notAfter: Date;
  dnsNames?: readonly string[];
  subject?: SubjectFields;
  /**
   * A faster verifier for the request's ECDSA self-signature (the server injects its native
   * addon's); see {@link parseCsrAsync}: the same acceptance and errors.
   */
  verifyEcdsa?: EcdsaVerifier;
}

/**
 * Mints an X509-SVID for the public key of a PKCS#10 certification request. The request is
 * parsed strictly and its self-signature checked (proof of possession); everything else in
 * it — subject, SANs, a SPIFFE ID, requested extensions — is ignored: the caller decides
 * the ID and names.
 *
 * Built for a server signing batches: the proof-of-possession check runs on libuv's thread
 * pool (`verifyEcdsa` when given, node:crypto otherwise: the checks and errors of
 * {@link parseCsrAsync}) and the signature through the signer's asynchronous `sign` (the
 * thread pool too for in-memory keys), so many requests in flight keep the event loop free
 * and use every core; only decoding (without a parse tree for the request shapes agents
 * send), the key import on the node:crypto path and the DER writing run on the calling
 * thread.
 *
 * @throws SpireEdgeError `ERR_CSR_INVALID` naming what is wrong with the request.
 */
export async function mintX509SvidFromCsr(
  minter: X509SvidMinter,
  csrDer: Uint8Array,
  opts: MintX509SvidFromCsrOptions,
): Promise<Uint8Array> {
  if (!(minter instanceof X509SvidMinter)) throw new TypeError('minter must be an X509SvidMinter');
  const key = await verifyCsrKeyAsync(
    csrDer,
    opts.verifyEcdsa === undefined ? {} : { verifyEcdsa: opts.verifyEcdsa },
  );
  const mintOpts: MintX509SvidOptions = {
    spiffeId: opts.spiffeId,
    publicKey: key.spkiDer,
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
  };
  if (opts.dnsNames !== undefined) mintOpts.dnsNames = opts.dnsNames;
  if (opts.subject !== undefined) mintOpts.subject = opts.subject;
  try {
    return await mintVerifiedCsrKey(minter, mintOpts, key);
  } catch (err) {
    if (err instanceof SpireEdgeError && err.code === 'ERR_PUBLIC_KEY_INVALID') {
      throw new SpireEdgeError('ERR_CSR_INVALID', `certification request ${err.message}`, {
        cause: err,
      });
    }
    throw err;
  }
}
