/**
 * X.501 Name encoding for minted certificates and decoding for display (RFC 5280 §4.1.2.4).
 */
import {
  children,
  decodeOid,
  oid,
  readWhole,
  seq,
  set,
  TAG,
  tlv,
  tlvContents,
} from '../../common/der.js';
import { NAME_ATTRIBUTE_LABELS, OID } from './x509-oids.js';

/** The subject fields minted certificates may carry (the ones SPIRE sets). */
export interface SubjectFields {
  readonly country?: readonly string[];
  readonly organization?: readonly string[];
  readonly organizationalUnit?: readonly string[];
  readonly commonName?: string;
  readonly serialNumber?: string;
}

/** One attribute of a Name, in order of appearance. */
export interface NameAttribute {
  readonly oid: string;
  /** The attribute value decoded as text (replacement characters for undecodable bytes). */
  readonly value: string;
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;
const utf8 = new TextEncoder();

function directoryString(value: string): Uint8Array {
  return PRINTABLE.test(value)
    ? tlv(TAG.PRINTABLE_STRING, utf8.encode(value))
    : tlv(TAG.UTF8_STRING, utf8.encode(value));
}

function rdn(type: string, value: Uint8Array): Uint8Array {
  return set(seq(oid(type), value));
}

/**
 * Encodes a subject Name in Go's (and so SPIRE's) attribute order: C, O, OU, CN,
 * serialNumber, one attribute per RDN. Country and serialNumber are PrintableString; other
 * values are PrintableString when they fit, UTF8String otherwise.
 */
export function encodeName(fields: SubjectFields): Uint8Array {
  const rdns: Uint8Array[] = [];
  for (const c of fields.country ?? []) {
    if (c.length !== 2 || !PRINTABLE.test(c)) {
      throw new TypeError(`subject country ${JSON.stringify(c)} must be a two-letter code`);
    }
    rdns.push(rdn(OID.countryName, tlv(TAG.PRINTABLE_STRING, utf8.encode(c))));
  }
  for (const o of fields.organization ?? [])
    rdns.push(rdn(OID.organizationName, directoryString(o)));
  for (const ou of fields.organizationalUnit ?? []) {
    rdns.push(rdn(OID.organizationalUnitName, directoryString(ou)));
  }
  if (fields.commonName !== undefined && fields.commonName !== '') {
    rdns.push(rdn(OID.commonName, directoryString(fields.commonName)));
  }
  if (fields.serialNumber !== undefined && fields.serialNumber !== '') {
    if (!PRINTABLE.test(fields.serialNumber)) {
      throw new TypeError('subject serialNumber must hold PrintableString characters only');
    }
    rdns.push(rdn(OID.serialNumber, tlv(TAG.PRINTABLE_STRING, utf8.encode(fields.serialNumber))));
  }
  return seq(...rdns);
}

function decodeString(tag: number, bytes: Uint8Array): string {
  switch (tag) {
    case 0x1e: {
      // BMPString: UTF-16BE.
      let s = '';
      for (let i = 0; i + 1 < bytes.length; i += 2) {
        s += String.fromCharCode((bytes[i]! << 8) | bytes[i + 1]!);
      }
      return s;
    }
    case 0x14: // TeletexString, read as Latin-1 as most software does.
      return Buffer.from(bytes).toString('latin1');
    default:
      return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  }
}

/**
 * The attributes of a Name (DER), flattened in order. Throws `ERR_DER_INVALID` on malformed
 * input; the values are for display and matching, not for security decisions beyond that.
 */
export function nameAttributes(nameDer: Uint8Array): NameAttribute[] {
  const t = readWhole(nameDer, 'Name');
  const out: NameAttribute[] = [];
  for (const r of children(t)) {
    for (const atv of children(r)) {
      const [type, value] = children(atv);
      if (type === undefined || value === undefined) continue;
      out.push({ oid: decodeOid(type), value: decodeString(value.tag, tlvContents(value)) });
    }
  }
  return out;
}

/** A one-line rendering of a Name, e.g. `C=US, O=SPIRE`, for messages and logs. */
export function formatName(nameDer: Uint8Array): string {
  try {
    return nameAttributes(nameDer)
      .map((a) => `${NAME_ATTRIBUTE_LABELS[a.oid] ?? a.oid}=${a.value}`)
      .join(', ');
  } catch {
    return '(malformed name)';
  }
}
