/**
 * PKCS#11 URIs (RFC 7512), parsed and formatted. Pure: no I/O.
 *
 * `pkcs11:token=ca;object=spire-root;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/spire/pin`
 *
 * Rules applied (RFC 7512 §2.3): the scheme is case-insensitive; path attributes are
 * separated by `;`, query attributes by `&`; each standard attribute appears at most once;
 * values hold only unreserved characters, the component's reserved-but-available set
 * (path: `:[]@!$'()*+,=&`; query: the same without `&`, plus `/?|`) and percent-encodings
 * (`%XX`). `id` is percent-decoded to raw bytes; every other text value is percent-decoded
 * and must then be valid UTF-8. `slot-id` and `library-version` are digits. Vendor
 * attributes (`[A-Za-z0-9_-]+`) are kept as text.
 *
 * Trusts nothing: any input yields either a {@link Pkcs11Uri} or `ERR_HSM_URI_INVALID`
 * naming the attribute and the broken rule. Messages never echo attribute values (a URI may
 * carry `pin-value`).
 */
import { SpireEdgeError } from '../../common/errors.js';

/** The `type` attribute's values (RFC 7512 §2.3). */
export type Pkcs11ObjectType = 'public' | 'private' | 'cert' | 'secret-key' | 'data';

const OBJECT_TYPES: readonly Pkcs11ObjectType[] = [
  'public',
  'private',
  'cert',
  'secret-key',
  'data',
];

/** A parsed PKCS#11 URI. Absent attributes are undefined. */
export interface Pkcs11Uri {
  /** `token`: the token label. */
  readonly token?: string;
  /** `manufacturer`: the token manufacturer ID. */
  readonly manufacturer?: string;
  /** `serial`: the token serial number. */
  readonly serial?: string;
  /** `model`: the token model. */
  readonly model?: string;
  readonly libraryManufacturer?: string;
  readonly libraryDescription?: string;
  readonly libraryVersion?: { readonly major: number; readonly minor: number };
  /** `object`: the object label (CKA_LABEL). */
  readonly object?: string;
  readonly type?: Pkcs11ObjectType;
  /** `id`: the object ID (CKA_ID) as raw bytes. */
  readonly id?: Uint8Array;
  readonly slotDescription?: string;
  readonly slotManufacturer?: string;
  /** `slot-id`: the decimal slot ID. */
  readonly slotId?: number;
  /** `pin-source`: where to read the PIN (a file path or `file:` URI). */
  readonly pinSource?: string;
  /** `pin-value`: the PIN itself. Never log it. */
  readonly pinValue?: string;
  readonly moduleName?: string;
  /** `module-path`: the PKCS#11 library to load. */
  readonly modulePath?: string;
  /** Vendor path attributes, in order. */
  readonly vendorPath: ReadonlyArray<readonly [string, string]>;
  /** Vendor query attributes, in order. */
  readonly vendorQuery: ReadonlyArray<readonly [string, string]>;
}

type TextKey = Exclude<
  keyof Pkcs11Uri,
  'libraryVersion' | 'type' | 'id' | 'slotId' | 'vendorPath' | 'vendorQuery'
>;

// Maps, not object literals: attribute names come from untrusted input ("__proto__").
const PATH_TEXT: ReadonlyMap<string, TextKey> = new Map([
  ['token', 'token'],
  ['manufacturer', 'manufacturer'],
  ['serial', 'serial'],
  ['model', 'model'],
  ['library-manufacturer', 'libraryManufacturer'],
  ['library-description', 'libraryDescription'],
  ['object', 'object'],
  ['slot-description', 'slotDescription'],
  ['slot-manufacturer', 'slotManufacturer'],
]);

const QUERY_TEXT: ReadonlyMap<string, TextKey> = new Map([
  ['pin-source', 'pinSource'],
  ['pin-value', 'pinValue'],
  ['module-name', 'moduleName'],
  ['module-path', 'modulePath'],
]);

const PATH_OTHER = ['id', 'type', 'slot-id', 'library-version'];
const KNOWN = new Set([...PATH_TEXT.keys(), ...QUERY_TEXT.keys(), ...PATH_OTHER]);

const UNRESERVED = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~';
const RES_AVAIL = ":[]@!$'()*+,=";
const PATH_CHARS = new Set(`${UNRESERVED}${RES_AVAIL}&`);
const QUERY_CHARS = new Set(`${UNRESERVED}${RES_AVAIL}/?|`);
const VENDOR_NAME = /^[A-Za-z0-9_-]+$/;
const DIGITS = /^[0-9]+$/;
const VERSION = /^([0-9]+)(?:\.([0-9]+))?$/;

function invalid(message: string): SpireEdgeError {
  return new SpireEdgeError('ERR_HSM_URI_INVALID', `pkcs11 uri: ${message}`);
}

const HEX = /^[0-9A-Fa-f]{2}$/;

/** Percent-decodes `value` of attribute `name`, checking every character is allowed. */
function decodeBytes(value: string, name: string, allowed: ReadonlySet<string>): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '%') {
      const hex = value.slice(i + 1, i + 3);
      if (!HEX.test(hex)) {
        throw invalid(`attribute ${name}: "%" must be followed by two hexadecimal digits`);
      }
      out.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (allowed.has(c)) {
      out.push(c.charCodeAt(0));
    } else {
      throw invalid(
        `attribute ${name}: character ${JSON.stringify(c)} must be percent-encoded (RFC 7512 §2.3)`,
      );
    }
  }
  return Uint8Array.from(out);
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function decodeText(value: string, name: string, allowed: ReadonlySet<string>): string {
  const bytes = decodeBytes(value, name, allowed);
  try {
    return UTF8.decode(bytes);
  } catch {
    throw invalid(`attribute ${name}: the decoded value is not valid UTF-8`);
  }
}

function splitAttr(part: string, component: 'path' | 'query'): [string, string] {
  const eq = part.indexOf('=');
  if (eq <= 0) {
    throw invalid(
      `${component} attribute ${JSON.stringify(part.slice(0, Math.max(eq, 0)) || part.slice(0, 32))} must have the form name=value`,
    );
  }
  return [part.slice(0, eq), part.slice(eq + 1)];
}

function checkVendorName(name: string, component: 'path' | 'query'): void {
  if (!VENDOR_NAME.test(name)) {
    throw invalid(
      `${component} attribute name ${JSON.stringify(name.slice(0, 40))} is not a known attribute or a vendor attribute name ([A-Za-z0-9_-])`,
    );
  }
}

/**
 * Parses an RFC 7512 PKCS#11 URI.
 *
 * @throws SpireEdgeError `ERR_HSM_URI_INVALID` naming the attribute and the rule broken.
 * @throws TypeError when `text` is not a string.
 */
export function parsePkcs11Uri(text: string): Pkcs11Uri {
  if (typeof text !== 'string') throw new TypeError('pkcs11 uri must be a string');
  if (text.slice(0, 7).toLowerCase() !== 'pkcs11:') {
    throw invalid('must start with "pkcs11:"');
  }
  const rest = text.slice(7);
  const q = rest.indexOf('?');
  const path = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? undefined : rest.slice(q + 1);
  if (path.includes('#') || (query?.includes('#') ?? false)) {
    throw invalid('a fragment ("#") is not allowed');
  }

  const out: Record<string, unknown> = Object.create(null);
  const seen = new Set<string>();
  const vendorPath: Array<[string, string]> = [];
  const vendorQuery: Array<[string, string]> = [];

  if (path !== '') {
    for (const part of path.split(';')) {
      const [name, raw] = splitAttr(part, 'path');
      const key = PATH_TEXT.get(name);
      if (key !== undefined || PATH_OTHER.includes(name)) {
        if (seen.has(name)) throw invalid(`path attribute ${name} must not appear twice`);
        seen.add(name);
      }
      if (key !== undefined) {
        out[key] = decodeText(raw, name, PATH_CHARS);
      } else if (name === 'id') {
        out['id'] = decodeBytes(raw, name, PATH_CHARS);
      } else if (name === 'type') {
        const t = decodeText(raw, name, PATH_CHARS);
        if (!(OBJECT_TYPES as readonly string[]).includes(t)) {
          throw invalid(`attribute type must be one of ${OBJECT_TYPES.join(', ')}`);
        }
        out['type'] = t;
      } else if (name === 'slot-id') {
        if (!DIGITS.test(raw)) throw invalid('attribute slot-id must be decimal digits');
        const n = Number(raw);
        if (!Number.isSafeInteger(n)) throw invalid('attribute slot-id is too large');
        out['slotId'] = n;
      } else if (name === 'library-version') {
        const m = VERSION.exec(raw);
        if (m === null) {
          throw invalid('attribute library-version must be digits, optionally "." and digits');
        }
        const major = Number(m[1]);
        const minor = m[2] === undefined ? 0 : Number(m[2]);
        if (
          !Number.isSafeInteger(major) ||
          !Number.isSafeInteger(minor) ||
          major > 255 ||
          minor > 255
        ) {
          throw invalid('attribute library-version numbers must be at most 255');
        }
        out['libraryVersion'] = { major, minor };
      } else if (QUERY_TEXT.has(name)) {
        throw invalid(`attribute ${name} belongs in the query component (after "?")`);
      } else {
        checkVendorName(name, 'path');
        vendorPath.push([name, decodeText(raw, name, PATH_CHARS)]);
      }
    }
  }

  if (query !== undefined && query !== '') {
    for (const part of query.split('&')) {
      const [name, raw] = splitAttr(part, 'query');
      const key = QUERY_TEXT.get(name);
      if (key !== undefined) {
        if (seen.has(name)) throw invalid(`query attribute ${name} must not appear twice`);
        seen.add(name);
        out[key] = decodeText(raw, name, QUERY_CHARS);
      } else if (KNOWN.has(name)) {
        throw invalid(`attribute ${name} belongs in the path component (before "?")`);
      } else {
        checkVendorName(name, 'query');
        vendorQuery.push([name, decodeText(raw, name, QUERY_CHARS)]);
      }
    }
  }
  if (seen.has('pin-source') && seen.has('pin-value')) {
    throw invalid('pin-source and pin-value must not both be present');
  }
  return { ...out, vendorPath, vendorQuery } as Pkcs11Uri;
}

function encode(bytes: Uint8Array, allowed: ReadonlySet<string>): string {
  let s = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    // "%" is never in the allowed sets, so it is always encoded.
    s += b < 0x80 && allowed.has(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return s;
}

const UTF8_ENCODER = new TextEncoder();

function encodeText(value: string, allowed: ReadonlySet<string>): string {
  return encode(UTF8_ENCODER.encode(value), allowed);
}

/**
 * Formats a {@link Pkcs11Uri} (the inverse of {@link parsePkcs11Uri}): path attributes in
 * RFC 7512's order, then vendor path attributes; query attributes, then vendor ones.
 * `id` is always fully percent-encoded, as tools print it.
 *
 * @throws TypeError when a value cannot be represented (a vendor name outside
 *   `[A-Za-z0-9_-]`, a slot ID or version that is not a whole number).
 */
export function formatPkcs11Uri(uri: Pkcs11Uri): string {
  const path: string[] = [];
  const text = (
    name: string,
    value: string | undefined,
    allowed: ReadonlySet<string>,
    to: string[],
  ) => {
    if (value !== undefined) to.push(`${name}=${encodeText(value, allowed)}`);
  };
  text('token', uri.token, PATH_CHARS, path);
  text('manufacturer', uri.manufacturer, PATH_CHARS, path);
  text('serial', uri.serial, PATH_CHARS, path);
  text('model', uri.model, PATH_CHARS, path);
  text('library-manufacturer', uri.libraryManufacturer, PATH_CHARS, path);
  if (uri.libraryVersion !== undefined) {
    const { major, minor } = uri.libraryVersion;
    if (!Number.isSafeInteger(major) || !Number.isSafeInteger(minor) || major < 0 || minor < 0) {
      throw new TypeError('libraryVersion must hold whole numbers');
    }
    path.push(`library-version=${major}.${minor}`);
  }
  text('library-description', uri.libraryDescription, PATH_CHARS, path);
  text('object', uri.object, PATH_CHARS, path);
  if (uri.type !== undefined) path.push(`type=${uri.type}`);
  if (uri.id !== undefined) path.push(`id=${encode(uri.id, new Set())}`);
  text('slot-description', uri.slotDescription, PATH_CHARS, path);
  text('slot-manufacturer', uri.slotManufacturer, PATH_CHARS, path);
  if (uri.slotId !== undefined) {
    if (!Number.isSafeInteger(uri.slotId) || uri.slotId < 0) {
      throw new TypeError('slotId must be a non-negative whole number');
    }
    path.push(`slot-id=${uri.slotId}`);
  }
  for (const [name, value] of uri.vendorPath) {
    if (!VENDOR_NAME.test(name) || KNOWN.has(name)) {
      throw new TypeError(`vendor attribute name ${JSON.stringify(name)} is not allowed`);
    }
    text(name, value, PATH_CHARS, path);
  }
  const query: string[] = [];
  text('pin-source', uri.pinSource, QUERY_CHARS, query);
  text('pin-value', uri.pinValue, QUERY_CHARS, query);
  text('module-name', uri.moduleName, QUERY_CHARS, query);
  text('module-path', uri.modulePath, QUERY_CHARS, query);
  for (const [name, value] of uri.vendorQuery) {
    if (!VENDOR_NAME.test(name) || KNOWN.has(name)) {
      throw new TypeError(`vendor attribute name ${JSON.stringify(name)} is not allowed`);
    }
    text(name, value, QUERY_CHARS, query);
  }
  return `pkcs11:${path.join(';')}${query.length === 0 ? '' : `?${query.join('&')}`}`;
}
