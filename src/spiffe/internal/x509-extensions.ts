/**
 * RFC 5280 §4.2 extension decoding, shared by the certificate and the PKCS#10
 * (extensionRequest) parsers. Throws `ERR_DER_INVALID` naming the extension; the public
 * parsers re-code it.
 */
import {
  children,
  decodeBitFlags,
  decodeBoolean,
  decodeOid,
  decodeSmallInt,
  derError,
  readWhole,
  TAG,
  type Tlv,
  tlvBytes,
  tlvContents,
} from '../../common/der.js';
import { OID } from './x509-oids.js';

/** basicConstraints (RFC 5280 §4.2.1.9). */
export interface BasicConstraints {
  readonly ca: boolean;
  /** pathLenConstraint, when present. */
  readonly pathLen?: number;
  readonly critical: boolean;
}

/** keyUsage (RFC 5280 §4.2.1.3); `contentCommitment` is the old nonRepudiation bit. */
export interface KeyUsage {
  readonly digitalSignature: boolean;
  readonly contentCommitment: boolean;
  readonly keyEncipherment: boolean;
  readonly dataEncipherment: boolean;
  readonly keyAgreement: boolean;
  readonly keyCertSign: boolean;
  readonly cRLSign: boolean;
  readonly encipherOnly: boolean;
  readonly decipherOnly: boolean;
  readonly critical: boolean;
}

/** extKeyUsage (RFC 5280 §4.2.1.12): the key purpose OIDs. */
export interface ExtKeyUsage {
  readonly oids: readonly string[];
  readonly critical: boolean;
}

/** A GeneralName of a kind not decoded into its own list: its context tag and whole DER. */
export interface OtherGeneralName {
  /** The identifier octet, e.g. 0xa0 for otherName, 0xa3 for x400Address. */
  readonly tag: number;
  readonly der: Uint8Array;
}

/** subjectAltName (RFC 5280 §4.2.1.6), decoded by name type. */
export interface SubjectAltName {
  /** uniformResourceIdentifier names, in order. */
  readonly uris: readonly string[];
  /** dNSName names, in order. */
  readonly dnsNames: readonly string[];
  /** rfc822Name names, in order. */
  readonly emails: readonly string[];
  /** iPAddress names (4 or 16 bytes), in order. */
  readonly ipAddresses: readonly Uint8Array[];
  /** directoryName names as Name DER (TPM EK certificates carry one). */
  readonly directoryNames: readonly Uint8Array[];
  /** registeredID names, dotted. */
  readonly registeredIds: readonly string[];
  /** otherName, x400Address and ediPartyName entries, undecoded. */
  readonly other: readonly OtherGeneralName[];
  readonly critical: boolean;
}

/** One extension as it appears in the certificate. */
export interface RawExtension {
  readonly oid: string;
  readonly critical: boolean;
  /** The contents of extnValue (the DER of the extension's own value). */
  readonly value: Uint8Array;
}

/** The extensions of a certificate or certification request. */
export interface CertificateExtensions {
  readonly basicConstraints?: BasicConstraints;
  readonly keyUsage?: KeyUsage;
  readonly extKeyUsage?: ExtKeyUsage;
  readonly subjectAltName?: SubjectAltName;
  /** The subjectKeyIdentifier value. */
  readonly subjectKeyId?: Uint8Array;
  /** The keyIdentifier of authorityKeyIdentifier, when present. */
  readonly authorityKeyId?: Uint8Array;
  /** OIDs of critical extensions this code does not process (verifiers must reject them). */
  readonly unknownCritical: readonly string[];
  /** Every extension, in order. */
  readonly all: readonly RawExtension[];
}

/** The extensions this code decodes and whose constraints verifiers can process. */
const UNDERSTOOD: ReadonlySet<string> = new Set([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.subjectKeyIdentifier,
  OID.authorityKeyIdentifier,
]);

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Decodes `Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension`. */
export function decodeExtensions(seqTlv: Tlv): CertificateExtensions {
  if (seqTlv.tag !== TAG.SEQUENCE) throw derError('extensions: expected a SEQUENCE');
  const items = children(seqTlv);
  if (items.length === 0) throw derError('extensions: must hold at least one extension');
  const out: Mutable<CertificateExtensions> = { unknownCritical: [], all: [] };
  const seen = new Set<string>();
  const all: RawExtension[] = [];
  const unknownCritical: string[] = [];
  for (const item of items) {
    if (item.tag !== TAG.SEQUENCE) throw derError('extension: expected a SEQUENCE');
    const parts = children(item);
    if (parts.length < 2 || parts.length > 3) throw derError('extension: expected 2 or 3 fields');
    const oid = decodeOid(parts[0]!);
    let critical = false;
    let valueTlv = parts[1]!;
    if (parts.length === 3) {
      critical = decodeBoolean(parts[1]!);
      if (!critical) throw derError(`extension ${oid}: critical FALSE must be omitted in DER`);
      valueTlv = parts[2]!;
    }
    if (valueTlv.tag !== TAG.OCTET_STRING)
      throw derError(`extension ${oid}: extnValue must be an OCTET STRING`);
    if (seen.has(oid)) throw derError(`extension ${oid} appears more than once`);
    seen.add(oid);
    const value = tlvContents(valueTlv);
    all.push({ oid, critical, value });
    switch (oid) {
      case OID.basicConstraints:
        out.basicConstraints = decodeBasicConstraints(value, critical);
        break;
      case OID.keyUsage:
        out.keyUsage = decodeKeyUsage(value, critical);
        break;
      case OID.extKeyUsage:
        out.extKeyUsage = decodeExtKeyUsage(value, critical);
        break;
      case OID.subjectAltName:
        out.subjectAltName = decodeGeneralNames(value, critical, 'subjectAltName');
        break;
      case OID.subjectKeyIdentifier:
        out.subjectKeyId = decodeSubjectKeyId(value);
        break;
      case OID.authorityKeyIdentifier: {
        const keyId = decodeAuthorityKeyId(value);
        if (keyId !== undefined) out.authorityKeyId = keyId;
        break;
      }
      default:
        if (critical && !UNDERSTOOD.has(oid)) unknownCritical.push(oid);
    }
  }
  out.all = all;
  out.unknownCritical = unknownCritical;
  return out;
}

function decodeBasicConstraints(value: Uint8Array, critical: boolean): BasicConstraints {
  const t = readWhole(value, 'basicConstraints');
  if (t.tag !== TAG.SEQUENCE) throw derError('basicConstraints: expected a SEQUENCE');
  const parts = children(t);
  let i = 0;
  let ca = false;
  if (parts[i]?.tag === TAG.BOOLEAN) {
    ca = decodeBoolean(parts[i]!);
    if (!ca) throw derError('basicConstraints: cA FALSE must be omitted in DER');
    i++;
  }
  let pathLen: number | undefined;
  if (parts[i]?.tag === TAG.INTEGER) {
    pathLen = decodeSmallInt(parts[i]!);
    i++;
  }
  if (i !== parts.length) throw derError('basicConstraints: unexpected field');
  return pathLen === undefined ? { ca, critical } : { ca, pathLen, critical };
}

function decodeKeyUsage(value: Uint8Array, critical: boolean): KeyUsage {
  const t = readWhole(value, 'keyUsage');
  if (t.tag !== TAG.BIT_STRING) throw derError('keyUsage: expected a BIT STRING');
  const bits = decodeBitFlags(t);
  const bit = (n: number): boolean => bits[n] === true;
  return {
    digitalSignature: bit(0),
    contentCommitment: bit(1),
    keyEncipherment: bit(2),
    dataEncipherment: bit(3),
    keyAgreement: bit(4),
    keyCertSign: bit(5),
    cRLSign: bit(6),
    encipherOnly: bit(7),
    decipherOnly: bit(8),
    critical,
  };
}

function decodeExtKeyUsage(value: Uint8Array, critical: boolean): ExtKeyUsage {
  const t = readWhole(value, 'extKeyUsage');
  if (t.tag !== TAG.SEQUENCE) throw derError('extKeyUsage: expected a SEQUENCE');
  const oids = children(t).map(decodeOid);
  if (oids.length === 0) throw derError('extKeyUsage: must hold at least one purpose');
  return { oids, critical };
}

function decodeSubjectKeyId(value: Uint8Array): Uint8Array {
  const t = readWhole(value, 'subjectKeyIdentifier');
  if (t.tag !== TAG.OCTET_STRING) throw derError('subjectKeyIdentifier: expected an OCTET STRING');
  return tlvContents(t);
}

function decodeAuthorityKeyId(value: Uint8Array): Uint8Array | undefined {
  const t = readWhole(value, 'authorityKeyIdentifier');
  if (t.tag !== TAG.SEQUENCE) throw derError('authorityKeyIdentifier: expected a SEQUENCE');
  let keyId: Uint8Array | undefined;
  let last = -1;
  for (const p of children(t)) {
    // keyIdentifier [0] IMPLICIT, authorityCertIssuer [1] IMPLICIT GeneralNames,
    // authorityCertSerialNumber [2] IMPLICIT INTEGER, in that order.
    const n = p.tag === 0x80 ? 0 : p.tag === 0xa1 ? 1 : p.tag === 0x82 ? 2 : -1;
    if (n <= last) throw derError('authorityKeyIdentifier: unexpected or out-of-order field');
    last = n;
    if (n === 0) keyId = tlvContents(p);
  }
  return keyId;
}

function ia5(t: Tlv, what: string): string {
  const c = tlvContents(t);
  let s = '';
  for (const b of c) {
    if (b >= 0x80) throw derError(`${what}: IA5String holds a non-ASCII byte`);
    s += String.fromCharCode(b);
  }
  return s;
}

/** Decodes `GeneralNames ::= SEQUENCE SIZE (1..MAX) OF GeneralName`. */
export function decodeGeneralNames(
  value: Uint8Array,
  critical: boolean,
  what: string,
): SubjectAltName {
  const t = readWhole(value, what);
  if (t.tag !== TAG.SEQUENCE) throw derError(`${what}: expected a SEQUENCE`);
  const names = children(t);
  if (names.length === 0) throw derError(`${what}: must hold at least one name`);
  const uris: string[] = [];
  const dnsNames: string[] = [];
  const emails: string[] = [];
  const ipAddresses: Uint8Array[] = [];
  const directoryNames: Uint8Array[] = [];
  const registeredIds: string[] = [];
  const other: OtherGeneralName[] = [];
  for (const n of names) {
    switch (n.tag) {
      case 0x81:
        emails.push(ia5(n, `${what} rfc822Name`));
        break;
      case 0x82:
        dnsNames.push(ia5(n, `${what} dNSName`));
        break;
      case 0x86:
        uris.push(ia5(n, `${what} uniformResourceIdentifier`));
        break;
      case 0x87: {
        const ip = tlvContents(n);
        if (ip.length !== 4 && ip.length !== 16) {
          throw derError(`${what} iPAddress: must be 4 or 16 bytes`);
        }
        ipAddresses.push(ip);
        break;
      }
      case 0xa4: {
        // directoryName [4] is EXPLICIT (Name is a CHOICE): exactly one Name inside.
        const inner = children(n);
        if (inner.length !== 1 || inner[0]!.tag !== TAG.SEQUENCE) {
          throw derError(`${what} directoryName: expected one Name`);
        }
        checkName(inner[0]!, `${what} directoryName`);
        directoryNames.push(tlvBytes(inner[0]!));
        break;
      }
      case 0x88:
        registeredIds.push(decodeOid({ ...n, tag: TAG.OID }));
        break;
      case 0xa0:
      case 0xa3:
      case 0xa5:
        other.push({ tag: n.tag, der: tlvBytes(n) });
        break;
      default:
        throw derError(`${what}: unknown GeneralName tag 0x${n.tag.toString(16)}`);
    }
  }
  return { uris, dnsNames, emails, ipAddresses, directoryNames, registeredIds, other, critical };
}

/**
 * Checks the structure of `Name ::= SEQUENCE OF RelativeDistinguishedName`, each RDN a
 * non-empty SET OF `AttributeTypeAndValue ::= SEQUENCE { type OID, value ANY }`.
 */
export function checkName(t: Tlv, what: string): void {
  if (t.tag !== TAG.SEQUENCE) throw derError(`${what}: expected a SEQUENCE`);
  for (const rdn of children(t)) {
    if (rdn.tag !== TAG.SET) throw derError(`${what}: RelativeDistinguishedName must be a SET`);
    const atvs = children(rdn);
    if (atvs.length === 0) throw derError(`${what}: empty RelativeDistinguishedName`);
    for (const atv of atvs) {
      if (atv.tag !== TAG.SEQUENCE)
        throw derError(`${what}: AttributeTypeAndValue must be a SEQUENCE`);
      const parts = children(atv);
      if (parts.length !== 2) throw derError(`${what}: AttributeTypeAndValue must have 2 fields`);
      decodeOid(parts[0]!);
    }
  }
}
