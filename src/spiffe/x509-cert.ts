/**
 * A strict, minimal RFC 5280 §4.1 certificate parser and certificate signature checks.
 *
 * The parser decodes structure only: it trusts nothing and checks nothing about validity
 * periods, issuers or signatures. Verifiers (x509-verify.ts for X509-SVIDs, the TPM code
 * for EK certificates) make those decisions.
 *
 * Errors: `ERR_X509_INVALID` (bytes that are not a well-formed certificate; the DER error
 * is the `cause`), `ERR_X509_UNSUPPORTED` (a signature algorithm this code cannot check).
 */
import { constants, type KeyObject, verify } from 'node:crypto';
import {
  children,
  decodeBitStringBytes,
  decodeOid,
  decodeSmallInt,
  decodeTime,
  derError,
  readTlv,
  readWhole,
  TAG,
  type Tlv,
  tlvBytes,
  tlvContents,
} from '../common/der.js';
import { SpireEdgeError } from '../common/errors.js';
import { decodePem } from '../common/pem.js';
import { publicKeyFromSpki } from './internal/spki.js';
import {
  type CertificateExtensions,
  checkName,
  decodeExtensions,
} from './internal/x509-extensions.js';
import { OID } from './internal/x509-oids.js';

export type {
  BasicConstraints,
  CertificateExtensions,
  ExtKeyUsage,
  KeyUsage,
  OtherGeneralName,
  RawExtension,
  SubjectAltName,
} from './internal/x509-extensions.js';
export { formatName, type NameAttribute, nameAttributes } from './internal/x509-name.js';

/** An AlgorithmIdentifier (RFC 5280 §4.1.1.2). */
export interface AlgorithmIdentifier {
  /** The algorithm OID, dotted. */
  readonly oid: string;
  /** The parameters' DER (a whole TLV), when present. */
  readonly params?: Uint8Array;
}

/** A decoded X.509 certificate. Byte fields are views into `der` (no copies). */
export interface ParsedCertificate {
  /** The whole certificate. */
  readonly der: Uint8Array;
  /** The tbsCertificate, the bytes the signature covers. */
  readonly tbsDer: Uint8Array;
  /** The X.509 version: 1, 2 or 3. */
  readonly version: 1 | 2 | 3;
  /** The serialNumber INTEGER's content octets (two's complement, as encoded). */
  readonly serial: Uint8Array;
  /** signatureAlgorithm (equal, byte for byte, to tbsCertificate.signature). */
  readonly signatureAlgorithm: AlgorithmIdentifier;
  /** The issuer Name DER. */
  readonly issuerDer: Uint8Array;
  /** The subject Name DER. */
  readonly subjectDer: Uint8Array;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The SubjectPublicKeyInfo DER. */
  readonly spkiDer: Uint8Array;
  /** The subjectPublicKeyInfo algorithm. */
  readonly publicKeyAlgorithm: AlgorithmIdentifier;
  /** The v3 extensions; empty lists when the certificate has none. */
  readonly extensions: CertificateExtensions;
  /** The signatureValue bits. */
  readonly signature: Uint8Array;
}

const NO_EXTENSIONS: CertificateExtensions = Object.freeze({ unknownCritical: [], all: [] });

function x509Invalid(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError('ERR_X509_INVALID', message, cause === undefined ? {} : { cause });
}

/** Decodes an AlgorithmIdentifier; internal errors are `ERR_DER_INVALID`. */
export function decodeAlgorithmIdentifier(t: Tlv, what: string): AlgorithmIdentifier {
  if (t.tag !== TAG.SEQUENCE) throw derError(`${what}: expected a SEQUENCE`);
  const parts = children(t);
  if (parts.length < 1 || parts.length > 2) throw derError(`${what}: expected 1 or 2 fields`);
  const oid = decodeOid(parts[0]!);
  return parts.length === 2 ? { oid, params: tlvBytes(parts[1]!) } : { oid };
}

function decodeSerial(t: Tlv): Uint8Array {
  if (t.tag !== TAG.INTEGER) throw derError('serialNumber: expected an INTEGER');
  const c = tlvContents(t);
  if (c.length === 0) throw derError('serialNumber: empty INTEGER');
  if (c.length > 1 && ((c[0] === 0 && c[1]! < 0x80) || (c[0] === 0xff && c[1]! >= 0x80))) {
    throw derError('serialNumber: non-minimal INTEGER encoding');
  }
  // RFC 5280 §4.1.2.2 allows 20 octets; accept a little more from non-conforming CAs.
  if (c.length > 32) throw derError('serialNumber: longer than 32 octets');
  return c;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function parseDer(der: Uint8Array): ParsedCertificate {
  const cert = readWhole(der, 'certificate');
  if (cert.tag !== TAG.SEQUENCE) throw derError('certificate: expected a SEQUENCE');
  const top = children(cert);
  if (top.length !== 3)
    throw derError('certificate: expected tbsCertificate, signatureAlgorithm, signatureValue');
  const [tbs, sigAlgTlv, sigTlv] = top as [Tlv, Tlv, Tlv];
  if (tbs.tag !== TAG.SEQUENCE) throw derError('tbsCertificate: expected a SEQUENCE');
  const f = children(tbs);
  let i = 0;
  let version: 1 | 2 | 3 = 1;
  if (f[i]?.tag === 0xa0) {
    const inner = children(f[i]!);
    if (inner.length !== 1) throw derError('tbsCertificate.version: expected one INTEGER');
    const v = decodeSmallInt(inner[0]!);
    if (v === 0) throw derError('tbsCertificate.version: v1 must be omitted in DER');
    if (v !== 1 && v !== 2) throw derError(`tbsCertificate.version: unknown version ${v}`);
    version = v === 1 ? 2 : 3;
    i++;
  }
  const need = (what: string): Tlv => {
    const t = f[i++];
    if (t === undefined) throw derError(`tbsCertificate: missing ${what}`);
    return t;
  };
  const serial = decodeSerial(need('serialNumber'));
  const tbsSigAlgTlv = need('signature');
  decodeAlgorithmIdentifier(tbsSigAlgTlv, 'tbsCertificate.signature');
  const issuer = need('issuer');
  checkName(issuer, 'issuer');
  const validity = need('validity');
  if (validity.tag !== TAG.SEQUENCE) throw derError('validity: expected a SEQUENCE');
  const times = children(validity);
  if (times.length !== 2) throw derError('validity: expected notBefore and notAfter');
  const notBefore = decodeTime(times[0]!);
  const notAfter = decodeTime(times[1]!);
  const subject = need('subject');
  checkName(subject, 'subject');
  const spki = need('subjectPublicKeyInfo');
  if (spki.tag !== TAG.SEQUENCE) throw derError('subjectPublicKeyInfo: expected a SEQUENCE');
  const spkiParts = children(spki);
  if (spkiParts.length !== 2) throw derError('subjectPublicKeyInfo: expected 2 fields');
  const publicKeyAlgorithm = decodeAlgorithmIdentifier(
    spkiParts[0]!,
    'subjectPublicKeyInfo.algorithm',
  );
  if (spkiParts[1]!.tag !== TAG.BIT_STRING || spkiParts[1]!.end === spkiParts[1]!.start) {
    throw derError('subjectPublicKeyInfo.subjectPublicKey: expected a BIT STRING');
  }
  if (f[i]?.tag === 0x81) {
    if (version === 1) throw derError('issuerUniqueID requires version 2 or 3');
    i++;
  }
  if (f[i]?.tag === 0x82) {
    if (version === 1) throw derError('subjectUniqueID requires version 2 or 3');
    i++;
  }
  let extensions = NO_EXTENSIONS;
  if (f[i]?.tag === 0xa3) {
    if (version !== 3) throw derError('extensions require version 3');
    const inner = children(f[i]!);
    if (inner.length !== 1) throw derError('extensions: expected one SEQUENCE');
    extensions = decodeExtensions(inner[0]!);
    i++;
  }
  if (i !== f.length) throw derError('tbsCertificate: unexpected trailing field');
  const signatureAlgorithm = decodeAlgorithmIdentifier(sigAlgTlv, 'signatureAlgorithm');
  if (!bytesEqual(tlvBytes(sigAlgTlv), tlvBytes(tbsSigAlgTlv))) {
    throw derError('signatureAlgorithm does not match tbsCertificate.signature');
  }
  if (sigTlv.tag !== TAG.BIT_STRING) throw derError('signatureValue: expected a BIT STRING');
  const signature = decodeBitStringBytes(sigTlv);
  return {
    der,
    tbsDer: tlvBytes(tbs),
    version,
    serial,
    signatureAlgorithm,
    issuerDer: tlvBytes(issuer),
    subjectDer: tlvBytes(subject),
    notBefore,
    notAfter,
    spkiDer: tlvBytes(spki),
    publicKeyAlgorithm,
    extensions,
    signature,
  };
}

/**
 * Parses one DER certificate (RFC 5280 §4.1), strictly: DER only (definite minimal lengths,
 * no encoded DEFAULT values), `signatureAlgorithm` identical to `tbsCertificate.signature`,
 * fields allowed only by their version, no duplicate extensions, no trailing bytes.
 *
 * Trusts nothing and verifies nothing: the result says what the certificate claims.
 * Callers must still check the signature, validity period and constraints.
 *
 * @throws SpireEdgeError `ERR_X509_INVALID` with the DER error as `cause`.
 */
export function parseCertificate(der: Uint8Array): ParsedCertificate {
  if (!(der instanceof Uint8Array)) throw new TypeError('certificate must be a Uint8Array');
  try {
    return parseDer(der);
  } catch (err) {
    if (err instanceof SpireEdgeError) {
      throw x509Invalid(`cannot parse certificate: ${err.message}`, err);
    }
    throw err;
  }
}

/**
 * Parses certificates given as PEM text (every block must be a CERTIFICATE) or as
 * concatenated DER (the Workload API form). At least one certificate is required.
 *
 * @throws SpireEdgeError `ERR_X509_INVALID`
 */
export function parseCertificates(data: string | Uint8Array): ParsedCertificate[] {
  return splitCertificates(data).map(parseCertificate);
}

/** Splits PEM text or concatenated DER into the certificates' DER, without parsing them. */
export function splitCertificates(data: string | Uint8Array): Uint8Array[] {
  let ders: Uint8Array[];
  try {
    if (typeof data === 'string') {
      ders = decodePem(data).map((b) => {
        if (b.label !== 'CERTIFICATE') {
          throw x509Invalid(`unexpected PEM block ${b.label}, expected CERTIFICATE`);
        }
        return b.der;
      });
    } else if (data instanceof Uint8Array) {
      ders = [];
      let pos = 0;
      while (pos < data.length) {
        const t = readTlv(data, pos);
        ders.push(data.subarray(pos, t.end));
        pos = t.end;
      }
    } else {
      throw new TypeError('certificates must be PEM text or DER bytes');
    }
  } catch (err) {
    if (err instanceof SpireEdgeError && err.code !== 'ERR_X509_INVALID') {
      throw x509Invalid(`cannot split certificates: ${err.message}`, err);
    }
    throw err;
  }
  if (ders.length === 0) throw x509Invalid('no certificates found');
  return ders;
}

const keyCache = new WeakMap<ParsedCertificate, KeyObject>();

/**
 * The certificate's public key as a KeyObject, cached per parsed certificate (importing a
 * key costs more than verifying a signature with it).
 *
 * @throws SpireEdgeError `ERR_X509_INVALID` when the key cannot be imported.
 */
export function certificatePublicKey(cert: ParsedCertificate): KeyObject {
  let k = keyCache.get(cert);
  if (k === undefined) {
    try {
      k = publicKeyFromSpki(cert.spkiDer);
    } catch (err) {
      throw x509Invalid(`certificate public key: ${(err as Error).message}`, err);
    }
    keyCache.set(cert, k);
  }
  return k;
}

type Hash = 'sha256' | 'sha384' | 'sha512';

const HASH_BY_OID: Readonly<Record<string, Hash>> = {
  [OID.sha256]: 'sha256',
  [OID.sha384]: 'sha384',
  [OID.sha512]: 'sha512',
};

/** How to check a signature: the hash (null for Ed25519), padding and the key type needed. */
export interface SignatureScheme {
  readonly hash: Hash | 'sha1' | null;
  readonly keyTypes: readonly string[];
  readonly pssSaltLength?: number;
}

const ECDSA: Readonly<Record<string, Hash | 'sha1'>> = {
  [OID.ecdsaWithSha1]: 'sha1',
  [OID.ecdsaWithSha256]: 'sha256',
  [OID.ecdsaWithSha384]: 'sha384',
  [OID.ecdsaWithSha512]: 'sha512',
};
const RSA_PKCS1: Readonly<Record<string, Hash | 'sha1'>> = {
  [OID.sha1WithRsa]: 'sha1',
  [OID.sha256WithRsa]: 'sha256',
  [OID.sha384WithRsa]: 'sha384',
  [OID.sha512WithRsa]: 'sha512',
};
const NULL_PARAMS = Uint8Array.of(0x05, 0x00);

function unsupported(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError('ERR_X509_UNSUPPORTED', message, cause === undefined ? {} : { cause });
}

/** Options of the signature checks. */
export interface SignatureOptions {
  /**
   * Accept SHA-1 based signatures (sha1WithRSAEncryption, ecdsa-with-SHA1). Off by default;
   * only for legacy chains such as older TPM manufacturers' EK CAs, never for SVIDs.
   */
  readonly allowSha1?: boolean;
}

/**
 * Maps a signature AlgorithmIdentifier to how to verify it: ecdsa-with-SHA256/384/512
 * (RFC 5758 §3.2, no parameters; an explicit NULL, which some TPM vendors' CAs encode, is
 * tolerated), sha256/384/512WithRSAEncryption (RFC 4055 §5, NULL or absent parameters),
 * RSASSA-PSS (RFC 4055 §3.1: SHA-2 hash, MGF1 with the same hash, trailerField 1) and
 * Ed25519 (RFC 8410 §3). SHA-1 algorithms only with `allowSha1`.
 *
 * @throws SpireEdgeError `ERR_X509_UNSUPPORTED` for other algorithms.
 */
export function signatureScheme(
  alg: AlgorithmIdentifier,
  options: SignatureOptions = {},
): SignatureScheme {
  const ec = ECDSA[alg.oid];
  if (ec !== undefined) {
    if (alg.params !== undefined && !bytesEqual(alg.params, NULL_PARAMS)) {
      throw unsupported(`ECDSA algorithm ${alg.oid} must have no parameters`);
    }
    if (ec === 'sha1' && options.allowSha1 !== true) {
      throw unsupported('SHA-1 signatures (ecdsa-with-SHA1) are not accepted');
    }
    return { hash: ec, keyTypes: ['ec'] };
  }
  const rsa = RSA_PKCS1[alg.oid];
  if (rsa !== undefined) {
    if (rsa === 'sha1' && options.allowSha1 !== true) {
      throw unsupported('SHA-1 signatures (sha1WithRSAEncryption) are not accepted');
    }
    if (alg.params !== undefined && !bytesEqual(alg.params, NULL_PARAMS)) {
      throw unsupported(`RSA algorithm ${alg.oid} parameters must be NULL`);
    }
    return { hash: rsa, keyTypes: ['rsa'] };
  }
  if (alg.oid === OID.rsassaPss) return pssScheme(alg.params);
  if (alg.oid === OID.ed25519) {
    if (alg.params !== undefined) throw unsupported('Ed25519 must have no parameters');
    return { hash: null, keyTypes: ['ed25519'] };
  }
  throw unsupported(`unsupported signature algorithm ${alg.oid}`);
}

function pssScheme(params: Uint8Array | undefined): SignatureScheme {
  if (params === undefined) throw unsupported('RSASSA-PSS requires parameters');
  try {
    const t = readWhole(params, 'RSASSA-PSS-params');
    if (t.tag !== TAG.SEQUENCE) throw derError('RSASSA-PSS-params: expected a SEQUENCE');
    // Defaults (SHA-1, MGF1-SHA-1, salt 20) are SHA-1 based and therefore unsupported.
    let hash: Hash | undefined;
    let mgfHash: Hash | undefined;
    let salt = 20;
    let last = -1;
    for (const p of children(t)) {
      const n = p.tag - 0xa0;
      if (n < 0 || n > 3 || n <= last) throw derError('RSASSA-PSS-params: unexpected field');
      last = n;
      const inner = children(p);
      if (inner.length !== 1) throw derError('RSASSA-PSS-params: expected one value per field');
      const v = inner[0]!;
      if (n === 0) {
        const h = decodeAlgorithmIdentifier(v, 'RSASSA-PSS hashAlgorithm');
        hash = HASH_BY_OID[h.oid];
        if (hash === undefined) throw unsupported(`RSASSA-PSS hash ${h.oid} is not supported`);
      } else if (n === 1) {
        const m = decodeAlgorithmIdentifier(v, 'RSASSA-PSS maskGenAlgorithm');
        if (m.oid !== OID.mgf1 || m.params === undefined) {
          throw unsupported('RSASSA-PSS mask generation must be MGF1');
        }
        const mh = decodeAlgorithmIdentifier(readWhole(m.params, 'MGF1 hash'), 'MGF1 hash');
        mgfHash = HASH_BY_OID[mh.oid];
      } else if (n === 2) {
        salt = decodeSmallInt(v);
      } else if (decodeSmallInt(v) !== 1) {
        throw unsupported('RSASSA-PSS trailerField must be 1');
      }
    }
    if (hash === undefined) throw unsupported('RSASSA-PSS with SHA-1 is not supported');
    if (mgfHash !== hash) throw unsupported('RSASSA-PSS MGF1 hash must equal the signature hash');
    return { hash, keyTypes: ['rsa', 'rsa-pss'], pssSaltLength: salt };
  } catch (err) {
    if (err instanceof SpireEdgeError && err.code === 'ERR_DER_INVALID') {
      throw unsupported(`malformed RSASSA-PSS parameters: ${err.message}`, err);
    }
    throw err;
  }
}

/**
 * Checks a signature made by `publicKey` over `data` with the algorithm `alg` (as found in a
 * certificate or certification request). Returns false for a wrong signature or a key of
 * the wrong type.
 *
 * @throws SpireEdgeError `ERR_X509_UNSUPPORTED` when the algorithm cannot be checked.
 */
export function verifySignature(
  alg: AlgorithmIdentifier,
  data: Uint8Array,
  signature: Uint8Array,
  publicKey: KeyObject,
  options: SignatureOptions = {},
): boolean {
  const scheme = signatureScheme(alg, options);
  const kt = publicKey.asymmetricKeyType;
  if (kt === undefined || !scheme.keyTypes.includes(kt)) return false;
  try {
    if (scheme.pssSaltLength !== undefined) {
      return verify(
        scheme.hash,
        data,
        {
          key: publicKey,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: scheme.pssSaltLength,
        },
        signature,
      );
    }
    return verify(scheme.hash, data, publicKey, signature);
  } catch {
    return false;
  }
}

/**
 * True when `cert`'s signature verifies with `issuerPublicKey` (RFC 5280 §6.1.3 (a)(1)).
 * Says nothing about names, validity or constraints.
 *
 * @throws SpireEdgeError `ERR_X509_UNSUPPORTED` for an algorithm this code cannot check.
 */
export function verifyCertificateSignature(
  cert: ParsedCertificate,
  issuerPublicKey: KeyObject,
  options: SignatureOptions = {},
): boolean {
  return verifySignature(
    cert.signatureAlgorithm,
    cert.tbsDer,
    cert.signature,
    issuerPublicKey,
    options,
  );
}

/** True when the certificate's issuer and subject names are byte-identical (self-issued). */
export function isSelfIssued(cert: ParsedCertificate): boolean {
  return bytesEqual(cert.issuerDer, cert.subjectDer);
}
