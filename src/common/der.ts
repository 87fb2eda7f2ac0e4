/**
 * Minimal, strict DER (ITU-T X.690) reader and writer. Shared by the X.509, CSR and TPM EK
 * certificate code. Every length is bounds-checked: untrusted bytes never throw anything but
 * a {@link SpireEdgeError} with code `ERR_DER_INVALID`.
 *
 * Only low-tag-number forms (tag number < 31) are accepted, which is all that X.509 and
 * PKCS#10 use.
 */
import { SpireEdgeError } from './errors.js';

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** One decoded tag-length-value. `start`/`end` delimit the contents within `buf`. */
export interface Tlv {
  /** The identifier octet (class, constructed bit and tag number). */
  readonly tag: number;
  /** Offset of the identifier octet. */
  readonly offset: number;
  /** Offset of the first content octet. */
  readonly start: number;
  /** Offset one past the last content octet. */
  readonly end: number;
  readonly buf: Uint8Array;
}

export function derError(message: string): SpireEdgeError {
  return new SpireEdgeError('ERR_DER_INVALID', message);
}

/** Reads the TLV at `offset`, which must end at or before `limit`. */
export function readTlv(buf: Uint8Array, offset = 0, limit = buf.length): Tlv {
  if (offset + 2 > limit) throw derError(`truncated DER header at offset ${offset}`);
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f)
    throw derError(`high-tag-number form at offset ${offset} is not supported`);
  let pos = offset + 1;
  const first = buf[pos++]!;
  let len: number;
  if (first < 0x80) {
    len = first;
  } else if (first === 0x80) {
    throw derError(`indefinite length at offset ${offset} is not DER`);
  } else {
    const n = first & 0x7f;
    if (n > 4) throw derError(`length of ${n} octets at offset ${offset} is too large`);
    if (pos + n > limit) throw derError(`truncated DER length at offset ${offset}`);
    if (buf[pos] === 0) throw derError(`non-minimal length encoding at offset ${offset}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[pos++]!;
    if (len < 0x80) throw derError(`non-minimal length encoding at offset ${offset}`);
  }
  const end = pos + len;
  if (end > limit)
    throw derError(`DER value at offset ${offset} runs past its container (${len} bytes)`);
  return { tag, offset, start: pos, end, buf };
}

/** Reads a TLV and checks its tag. `what` names the field in the error. */
export function expectTlv(
  buf: Uint8Array,
  offset: number,
  limit: number,
  tag: number,
  what: string,
): Tlv {
  const t = readTlv(buf, offset, limit);
  if (t.tag !== tag) {
    throw derError(`${what}: expected tag 0x${tag.toString(16)}, found 0x${t.tag.toString(16)}`);
  }
  return t;
}

/** The children of a constructed TLV. */
export function children(t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let pos = t.start;
  while (pos < t.end) {
    const c = readTlv(t.buf, pos, t.end);
    out.push(c);
    pos = c.end;
  }
  return out;
}

/** Reads a whole buffer that must hold exactly one TLV. */
export function readWhole(buf: Uint8Array, what: string): Tlv {
  const t = readTlv(buf, 0, buf.length);
  if (t.end !== buf.length)
    throw derError(`${what}: ${buf.length - t.end} trailing bytes after DER value`);
  return t;
}

/** The encoded bytes (header and contents) of a TLV, without copying. */
export function tlvBytes(t: Tlv): Uint8Array {
  return t.buf.subarray(t.offset, t.end);
}

/** The content bytes of a TLV, without copying. */
export function tlvContents(t: Tlv): Uint8Array {
  return t.buf.subarray(t.start, t.end);
}

/** Decodes an OBJECT IDENTIFIER's contents to dotted form. */
export function decodeOid(t: Tlv): string {
  if (t.tag !== TAG.OID) throw derError('expected an OBJECT IDENTIFIER');
  const c = tlvContents(t);
  if (c.length === 0) throw derError('empty OBJECT IDENTIFIER');
  const arcs: number[] = [];
  let v = 0;
  let started = false;
  for (let i = 0; i < c.length; i++) {
    const b = c[i]!;
    if (!started && b === 0x80) throw derError('non-minimal OBJECT IDENTIFIER arc');
    started = true;
    v = v * 128 + (b & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 128) throw derError('OBJECT IDENTIFIER arc too large');
    if ((b & 0x80) === 0) {
      arcs.push(v);
      v = 0;
      started = false;
    } else if (i === c.length - 1) {
      throw derError('truncated OBJECT IDENTIFIER');
    }
  }
  const first = arcs.shift()!;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs].join('.');
}

/** Decodes a BOOLEAN. */
export function decodeBoolean(t: Tlv): boolean {
  if (t.tag !== TAG.BOOLEAN || t.end - t.start !== 1) throw derError('malformed BOOLEAN');
  const b = t.buf[t.start]!;
  if (b !== 0 && b !== 0xff) throw derError('BOOLEAN is not DER (must be 0x00 or 0xff)');
  return b === 0xff;
}

/** Decodes a small non-negative INTEGER (up to 2^53). */
export function decodeSmallInt(t: Tlv): number {
  if (t.tag !== TAG.INTEGER || t.end === t.start) throw derError('malformed INTEGER');
  const c = tlvContents(t);
  if (c[0]! & 0x80) throw derError('negative INTEGER where a non-negative one is required');
  if (c.length > 7) throw derError('INTEGER too large');
  let v = 0;
  for (const b of c) v = v * 256 + b;
  return v;
}

/** The bytes of a BIT STRING with no unused bits. */
export function decodeBitStringBytes(t: Tlv): Uint8Array {
  if (t.tag !== TAG.BIT_STRING || t.end === t.start) throw derError('malformed BIT STRING');
  if (t.buf[t.start] !== 0)
    throw derError('BIT STRING with unused bits where whole bytes are required');
  return t.buf.subarray(t.start + 1, t.end);
}

/** The bits of a BIT STRING (for flags such as keyUsage), bit 0 first. */
export function decodeBitFlags(t: Tlv): boolean[] {
  if (t.tag !== TAG.BIT_STRING || t.end === t.start) throw derError('malformed BIT STRING');
  const unused = t.buf[t.start]!;
  if (unused > 7) throw derError('BIT STRING unused-bits count above 7');
  const bytes = t.buf.subarray(t.start + 1, t.end);
  if (bytes.length === 0 && unused !== 0) throw derError('empty BIT STRING with unused bits');
  const n = bytes.length * 8 - unused;
  const out: boolean[] = [];
  for (let i = 0; i < n; i++) out.push(((bytes[i >> 3]! >> (7 - (i & 7))) & 1) === 1);
  return out;
}

const TIME_RE_UTC = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/;
const TIME_RE_GEN = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/;

/** Decodes a UTCTime or GeneralizedTime (RFC 5280 profile: seconds, `Z`). */
export function decodeTime(t: Tlv): Date {
  const s = latin1(tlvContents(t));
  const m =
    t.tag === TAG.UTC_TIME
      ? TIME_RE_UTC.exec(s)
      : t.tag === TAG.GENERALIZED_TIME
        ? TIME_RE_GEN.exec(s)
        : null;
  if (m === null) throw derError(`malformed time value ${JSON.stringify(s.slice(0, 32))}`);
  let year = Number(m[1]);
  if (t.tag === TAG.UTC_TIME) year = year >= 50 ? 1900 + year : 2000 + year;
  const [, , mo, d, h, mi, se] = m.map(Number) as number[];
  const ms = Date.UTC(year, mo! - 1, d!, h!, mi!, se!);
  const back = new Date(ms);
  if (
    back.getUTCMonth() !== mo! - 1 ||
    back.getUTCDate() !== d! ||
    h! > 23 ||
    mi! > 59 ||
    se! > 59
  ) {
    throw derError(`time value ${s} is not a valid date`);
  }
  return back;
}

function latin1(b: Uint8Array): string {
  let s = '';
  for (const c of b) s += String.fromCharCode(c);
  return s;
}

// ---------------------------------------------------------------------------------------
// Writer

/** Encodes a DER length. */
export function encodeLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  if (n < 0x100) return Uint8Array.of(0x81, n);
  if (n < 0x10000) return Uint8Array.of(0x82, n >> 8, n & 0xff);
  if (n < 0x1000000) return Uint8Array.of(0x83, n >> 16, (n >> 8) & 0xff, n & 0xff);
  return Uint8Array.of(0x84, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}

/** Concatenates byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Encodes a TLV from a tag and its content parts. */
export function tlv(tag: number, ...contents: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of contents) n += p.length;
  const len = encodeLength(n);
  const out = new Uint8Array(1 + len.length + n);
  out[0] = tag;
  out.set(len, 1);
  let o = 1 + len.length;
  for (const p of contents) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export const seq = (...c: Uint8Array[]): Uint8Array => tlv(TAG.SEQUENCE, ...c);
export const set = (...c: Uint8Array[]): Uint8Array => tlv(TAG.SET, ...c);
export const octetString = (b: Uint8Array): Uint8Array => tlv(TAG.OCTET_STRING, b);
export const bitString = (b: Uint8Array): Uint8Array => tlv(TAG.BIT_STRING, Uint8Array.of(0), b);
export const DER_NULL: Uint8Array = Uint8Array.of(0x05, 0x00);
export const DER_TRUE: Uint8Array = Uint8Array.of(0x01, 0x01, 0xff);

/** Encodes an unsigned big-endian magnitude as a DER INTEGER (adds a 0x00 when the top bit is set). */
export function unsignedInteger(magnitude: Uint8Array): Uint8Array {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = magnitude.subarray(i);
  if (m.length === 0) return Uint8Array.of(0x02, 0x01, 0x00);
  return m[0]! & 0x80 ? tlv(TAG.INTEGER, Uint8Array.of(0), m) : tlv(TAG.INTEGER, m);
}

/** Encodes a small non-negative integer. */
export function smallInteger(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new TypeError('smallInteger takes a non-negative safe integer');
  const bytes: number[] = [];
  do {
    bytes.unshift(n % 256);
    n = Math.floor(n / 256);
  } while (n > 0);
  return unsignedInteger(Uint8Array.from(bytes));
}

/** Encodes a dotted OID. */
export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) {
    throw new TypeError(`invalid OID ${dotted}`);
  }
  const body: number[] = [];
  const push = (v: number): void => {
    const tmp = [v & 0x7f];
    v = Math.floor(v / 128);
    while (v > 0) {
      tmp.unshift((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    body.push(...tmp);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  return tlv(TAG.OID, Uint8Array.from(body));
}

/** Encodes a time: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
export function time(d: Date): Uint8Array {
  const y = d.getUTCFullYear();
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const rest = `${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())}${p2(d.getUTCHours())}${p2(d.getUTCMinutes())}${p2(d.getUTCSeconds())}Z`;
  if (y >= 1950 && y < 2050) return tlv(TAG.UTC_TIME, ascii(`${p2(y % 100)}${rest}`));
  return tlv(TAG.GENERALIZED_TIME, ascii(`${String(y).padStart(4, '0')}${rest}`));
}

/** ASCII/Latin-1 bytes of a string. */
export function ascii(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

/** Converts an IEEE P1363 (r || s) ECDSA signature to DER `ECDSA-Sig-Value`. */
export function p1363ToDer(sig: Uint8Array): Uint8Array {
  if (sig.length % 2 !== 0 || sig.length === 0) throw derError('P1363 signature has odd length');
  const h = sig.length / 2;
  return seq(unsignedInteger(sig.subarray(0, h)), unsignedInteger(sig.subarray(h)));
}

/** Converts a DER `ECDSA-Sig-Value` to IEEE P1363 with `size`-byte halves. */
export function derToP1363(der: Uint8Array, size: number): Uint8Array {
  const s = readWhole(der, 'ECDSA signature');
  if (s.tag !== TAG.SEQUENCE) throw derError('ECDSA signature is not a SEQUENCE');
  const parts = children(s);
  if (parts.length !== 2) throw derError('ECDSA signature must hold exactly r and s');
  const out = new Uint8Array(size * 2);
  parts.forEach((p, i) => {
    if (p.tag !== TAG.INTEGER) throw derError('ECDSA signature component is not an INTEGER');
    let c = tlvContents(p);
    while (c.length > 1 && c[0] === 0) c = c.subarray(1);
    if (c.length > size) throw derError('ECDSA signature component longer than the curve size');
    out.set(c, i * size + size - c.length);
  });
  return out;
}
