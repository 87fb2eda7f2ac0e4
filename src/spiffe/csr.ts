/**
 * PKCS#10 certification requests (RFC 2986), parsed strictly and checked for proof of
 * possession: the request must be signed by the key it carries.
 *
 * Errors: `ERR_CSR_INVALID`, naming what is wrong; the lower-level error is the `cause`.
 */
import type { KeyObject } from 'node:crypto';
import {
  children,
  decodeOid,
  decodeSmallInt,
  derError,
  oid,
  readWhole,
  seq,
  TAG,
  type Tlv,
  tlvBytes,
} from '../common/der.js';
import { SpireEdgeError } from '../common/errors.js';
import { decodePem } from '../common/pem.js';
import { publicKeyFromSpki } from './internal/spki.js';
import {
  type EcdsaVerifier,
  type EcdsaVerifyRequest,
  ecdsaVerifyRequest,
  verifySignatureAsync,
} from './internal/verify-async.js';
import {
  type CertificateExtensions,
  checkName,
  decodeExtensions,
} from './internal/x509-extensions.js';
import { OID } from './internal/x509-oids.js';
import {
  type AlgorithmIdentifier,
  decodeAlgorithmIdentifier,
  verifySignature,
} from './x509-cert.js';

export type { EcdsaVerifier, EcdsaVerifyRequest } from './internal/verify-async.js';

/** Options of {@link parseCsrAsync}. */
export interface ParseCsrOptions {
  /**
   * A faster verifier for ECDSA self-signatures on P-256, P-384 and P-521 keys (the server
   * injects its native addon's). When it answers true the key is not imported up front:
   * `publicKey` is imported on first read. Anything else (false, a rejection, other
   * algorithms and keys) takes the node:crypto path, so acceptance and `ERR_CSR_INVALID`
   * errors are the same as without it, provided the verifier never answers true for a
   * signature node:crypto would refuse (see {@link EcdsaVerifier}).
   */
  readonly verifyEcdsa?: EcdsaVerifier;
}

/** One attribute of the request (RFC 2986 §4.1). */
export interface CsrAttribute {
  readonly oid: string;
  /** Each value's DER. */
  readonly values: readonly Uint8Array[];
}

/** A parsed, signature-checked certification request. Byte fields are views into `der`. */
export interface ParsedCsr {
  readonly der: Uint8Array;
  /** The certificationRequestInfo, the bytes the signature covers. */
  readonly infoDer: Uint8Array;
  /** The requested subject Name DER (unauthenticated: the requester chose it). */
  readonly subjectDer: Uint8Array;
  /** The SubjectPublicKeyInfo DER. */
  readonly spkiDer: Uint8Array;
  /** The public key, imported. */
  readonly publicKey: KeyObject;
  readonly attributes: readonly CsrAttribute[];
  /** The requested extensions (from the PKCS#9 extensionRequest attribute), if any. */
  readonly extensions: CertificateExtensions;
  readonly signatureAlgorithm: AlgorithmIdentifier;
  readonly signature: Uint8Array;
}

const NO_EXTENSIONS: CertificateExtensions = Object.freeze({ unknownCritical: [], all: [] });

function csrInvalid(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_CSR_INVALID',
    `invalid certification request: ${message}`,
    cause === undefined ? {} : { cause },
  );
}

function decodeAttributes(t: Tlv): {
  attributes: CsrAttribute[];
  extensions: CertificateExtensions;
} {
  const attributes: CsrAttribute[] = [];
  let extensions = NO_EXTENSIONS;
  const seen = new Set<string>();
  for (const a of children(t)) {
    if (a.tag !== TAG.SEQUENCE) throw derError('attribute: expected a SEQUENCE');
    const parts = children(a);
    if (parts.length !== 2) throw derError('attribute: expected type and values');
    const oid = decodeOid(parts[0]!);
    if (seen.has(oid)) throw derError(`attribute ${oid} appears more than once`);
    seen.add(oid);
    if (parts[1]!.tag !== TAG.SET) throw derError(`attribute ${oid}: values must be a SET`);
    const values = children(parts[1]!);
    if (values.length === 0) throw derError(`attribute ${oid}: values must not be empty`);
    attributes.push({ oid, values: values.map(tlvBytes) });
    if (oid === OID.extensionRequest) {
      if (values.length !== 1) throw derError('extensionRequest: expected exactly one value');
      extensions = decodeExtensions(values[0]!);
    }
  }
  return { attributes, extensions };
}

function parseCsrDer(der: Uint8Array): Omit<ParsedCsr, 'publicKey'> {
  const top = readWhole(der, 'CertificationRequest');
  if (top.tag !== TAG.SEQUENCE) throw derError('CertificationRequest: expected a SEQUENCE');
  const parts = children(top);
  if (parts.length !== 3) {
    throw derError(
      'CertificationRequest: expected certificationRequestInfo, signatureAlgorithm, signature',
    );
  }
  const [info, sigAlgTlv, sigTlv] = parts as [Tlv, Tlv, Tlv];
  if (info.tag !== TAG.SEQUENCE) throw derError('certificationRequestInfo: expected a SEQUENCE');
  const f = children(info);
  if (f.length !== 4) {
    throw derError(
      'certificationRequestInfo: expected version, subject, subjectPKInfo, attributes',
    );
  }
  const [versionTlv, subject, spki, attrs] = f as [Tlv, Tlv, Tlv, Tlv];
  if (decodeSmallInt(versionTlv) !== 0) throw derError('version: must be 0 (v1)');
  checkName(subject, 'subject');
  if (spki.tag !== TAG.SEQUENCE) throw derError('subjectPKInfo: expected a SEQUENCE');
  const spkiParts = children(spki);
  if (spkiParts.length !== 2 || spkiParts[1]!.tag !== TAG.BIT_STRING) {
    throw derError('subjectPKInfo: expected algorithm and subjectPublicKey');
  }
  decodeAlgorithmIdentifier(spkiParts[0]!, 'subjectPKInfo.algorithm');
  // attributes [0] IMPLICIT SET OF Attribute: required, possibly empty.
  if (attrs.tag !== 0xa0) throw derError('attributes: expected [0] IMPLICIT SET');
  const { attributes, extensions } = decodeAttributes(attrs);
  const signatureAlgorithm = decodeAlgorithmIdentifier(sigAlgTlv, 'signatureAlgorithm');
  if (sigTlv.tag !== TAG.BIT_STRING || sigTlv.end === sigTlv.start) {
    throw derError('signature: expected a BIT STRING');
  }
  if (der[sigTlv.start] !== 0) throw derError('signature: BIT STRING with unused bits');
  return {
    der,
    infoDer: tlvBytes(info),
    subjectDer: tlvBytes(subject),
    spkiDer: tlvBytes(spki),
    attributes,
    extensions,
    signatureAlgorithm,
    signature: der.subarray(sigTlv.start + 1, sigTlv.end),
  };
}

/** The request's DER from the caller's input (DER bytes or PEM text). */
function csrDer(input: Uint8Array | string): Uint8Array {
  if (typeof input === 'string') {
    let blocks: ReturnType<typeof decodePem>;
    try {
      blocks = decodePem(input);
    } catch (err) {
      throw csrInvalid((err as Error).message, err);
    }
    const csrBlocks = blocks.filter(
      (b) => b.label === 'CERTIFICATE REQUEST' || b.label === 'NEW CERTIFICATE REQUEST',
    );
    if (csrBlocks.length !== 1 || blocks.length !== 1) {
      throw csrInvalid('PEM input must hold exactly one CERTIFICATE REQUEST block');
    }
    return csrBlocks[0]!.der;
  }
  if (input instanceof Uint8Array) return input;
  throw new TypeError('certification request must be DER bytes or PEM text');
}

/** Decodes the request: everything but the key import and the signature check. */
function decodeCsr(input: Uint8Array | string): Omit<ParsedCsr, 'publicKey'> {
  const der = csrDer(input);
  try {
    return parseCsrDer(der);
  } catch (err) {
    if (err instanceof SpireEdgeError) throw csrInvalid(err.message, err);
    throw err;
  }
}

function keyInvalid(err: unknown): SpireEdgeError {
  return csrInvalid(`subjectPKInfo: ${(err as Error).message}`, err);
}

function unsupportedAlgorithm(err: unknown): SpireEdgeError {
  return csrInvalid(`signatureAlgorithm: ${(err as Error).message}`, err);
}

const NO_POSSESSION = 'signature does not verify with the request public key';

/**
 * Parses a PKCS#10 certification request (DER bytes, or PEM text labelled `CERTIFICATE
 * REQUEST` or `NEW CERTIFICATE REQUEST`) and checks its self-signature with the key it
 * carries (proof of possession). SHA-1 signatures are refused.
 *
 * Trusts nothing in the request beyond that the requester holds the private key: the
 * subject, SANs and requested extensions are the requester's wishes, for the caller to
 * ignore or check.
 *
 * The signature check runs on the calling thread; a server checking many requests should
 * use {@link parseCsrAsync}.
 *
 * @throws SpireEdgeError `ERR_CSR_INVALID` naming what is wrong.
 */
export function parseCsr(input: Uint8Array | string): ParsedCsr {
  const parsed = decodeCsr(input);
  let publicKey: KeyObject;
  try {
    publicKey = publicKeyFromSpki(parsed.spkiDer);
  } catch (err) {
    throw keyInvalid(err);
  }
  const csr: ParsedCsr = { ...parsed, publicKey };
  let ok: boolean;
  try {
    ok = verifySignature(csr.signatureAlgorithm, csr.infoDer, csr.signature, csr.publicKey);
  } catch (err) {
    throw unsupportedAlgorithm(err);
  }
  if (!ok) throw csrInvalid(NO_POSSESSION);
  return csr;
}

/**
 * {@link parseCsr} with the proof-of-possession check on libuv's thread pool
 * (`crypto.verify` with a callback), or through `options.verifyEcdsa` when given: the same
 * checks and errors, but the event loop is free while the signature is verified, so a
 * server verifying a batch of requests uses more than one core. Decoding and (on the
 * node:crypto path) the key import still run on the calling thread.
 *
 * With `verifyEcdsa`, an accepted ECDSA request's `publicKey` is imported lazily, on first
 * read (the point was already checked to be on the curve; should the import still fail,
 * the read throws `ERR_CSR_INVALID`).
 *
 * @throws SpireEdgeError `ERR_CSR_INVALID` (as a rejection) naming what is wrong;
 *   `TypeError` for input that is neither bytes nor text.
 */
export async function parseCsrAsync(
  input: Uint8Array | string,
  options: ParseCsrOptions = {},
): Promise<ParsedCsr> {
  const parsed = decodeCsr(input);
  if ((await verifyInjected(parsed, options)) !== undefined) return withLazyPublicKey(parsed);
  return { ...parsed, publicKey: await verifyWithNode(parsed) };
}

/**
 * The key of a request whose self-signature verified, as `mintX509SvidFromCsr` needs it.
 * Not part of the public API.
 */
export interface VerifiedCsrKey {
  /** The SubjectPublicKeyInfo DER (a view into the request). */
  readonly spkiDer: Uint8Array;
  /**
   * When the injected verifier accepted the signature: the subjectPublicKey bits (the
   * uncompressed point) and the algorithm, from the SPKI inspection that request made.
   * Absent on the node:crypto path (the key was imported by OpenSSL instead).
   */
  readonly inspected?: { readonly keyBits: Uint8Array; readonly kind: 'ec' };
}

/**
 * {@link parseCsrAsync} for minting: the same checks, errors and verification paths, but it
 * answers only the verified key (no attribute list, no lazily imported KeyObject).
 *
 * @throws SpireEdgeError `ERR_CSR_INVALID` (as a rejection) naming what is wrong.
 */
export async function verifyCsrKeyAsync(
  input: Uint8Array | string,
  options: ParseCsrOptions = {},
): Promise<VerifiedCsrKey> {
  const verifyEcdsa = options?.verifyEcdsa;
  if (typeof verifyEcdsa === 'function' && input instanceof Uint8Array) {
    // The requests agents send, recognized without building the parse tree; any other
    // shape takes the full parser below.
    const fast = recognizeEcdsaCsr(input);
    if (fast !== undefined) {
      let ok = false;
      try {
        ok = (await verifyEcdsa(fast.request)) === true;
      } catch {
        // A failing injected verifier must not decide anything: node:crypto does.
      }
      if (ok)
        return { spkiDer: fast.spkiDer, inspected: { keyBits: fast.request.point, kind: 'ec' } };
      // Refused: node:crypto decides, with the full parser's view and errors.
      const parsed = decodeCsr(input);
      await verifyWithNode(parsed);
      return { spkiDer: parsed.spkiDer };
    }
  }
  const parsed = decodeCsr(input);
  const point = await verifyInjected(parsed, options);
  if (point !== undefined)
    return { spkiDer: parsed.spkiDer, inspected: { keyBits: point, kind: 'ec' } };
  await verifyWithNode(parsed);
  return { spkiDer: parsed.spkiDer };
}

// ---------------------------------------------------------------------------------------
// The hot path: requests as agents make them, recognized without allocating a parse tree

/** What {@link recognizeEcdsaCsr} finds: the SPKI and the check for the injected verifier. */
interface RecognizedCsr {
  readonly spkiDer: Uint8Array;
  readonly request: EcdsaVerifyRequest;
}

const RECOGNIZED_CURVES = [
  { name: 'P-256', size: 32, algId: seq(oid(OID.ecPublicKey), oid(OID.p256)) },
  { name: 'P-384', size: 48, algId: seq(oid(OID.ecPublicKey), oid(OID.p384)) },
  { name: 'P-521', size: 66, algId: seq(oid(OID.ecPublicKey), oid(OID.p521)) },
] as const;
const RECOGNIZED_HASHES = [
  { name: 'sha256', algId: seq(oid(OID.ecdsaWithSha256)) },
  { name: 'sha384', algId: seq(oid(OID.ecdsaWithSha384)) },
  { name: 'sha512', algId: seq(oid(OID.ecdsaWithSha512)) },
] as const;

/** Where the last value {@link readHeader} read lies (one scratch record: no allocation). */
const H = { start: 0, end: 0 };

/**
 * Reads the DER header at `off`, with the rules of der.ts's `readTlv` (low tag numbers,
 * definite minimal lengths, inside `limit`): its tag, the contents' bounds in {@link H}; -1
 * where `readTlv` would throw.
 */
function readHeader(b: Uint8Array, off: number, limit: number): number {
  if (off + 2 > limit) return -1;
  const tag = b[off]!;
  if ((tag & 0x1f) === 0x1f) return -1;
  let pos = off + 1;
  const first = b[pos++]!;
  let len: number;
  if (first < 0x80) {
    len = first;
  } else {
    const n = first & 0x7f;
    if (n === 0 || n > 4 || pos + n > limit || b[pos] === 0) return -1;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[pos++]!;
    if (len < 0x80) return -1;
  }
  if (pos + len > limit) return -1;
  H.start = pos;
  H.end = pos + len;
  return tag;
}

/** True when `b[start..end)` is an OBJECT IDENTIFIER body der.ts's `decodeOid` accepts. */
function validOidBody(b: Uint8Array, start: number, end: number): boolean {
  if (end === start) return false;
  let v = 0;
  let started = false;
  for (let i = start; i < end; i++) {
    const x = b[i]!;
    if (!started && x === 0x80) return false;
    started = true;
    v = v * 128 + (x & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 128) return false;
    if ((x & 0x80) === 0) {
      v = 0;
      started = false;
    } else if (i === end - 1) {
      return false;
    }
  }
  return true;
}

/** True when the Name contents `b[start..end)` pass `checkName` (x509-extensions.ts). */
function validNameBody(b: Uint8Array, start: number, end: number): boolean {
  let pos = start;
  while (pos < end) {
    if (readHeader(b, pos, end) !== TAG.SET || H.start === H.end) return false;
    const setEnd = H.end;
    let p = H.start;
    while (p < setEnd) {
      // AttributeTypeAndValue: a SEQUENCE of exactly an OID and one more value.
      if (readHeader(b, p, setEnd) !== TAG.SEQUENCE) return false;
      const atvEnd = H.end;
      if (readHeader(b, H.start, atvEnd) !== TAG.OID) return false;
      const oidStart = H.start;
      const oidEnd = H.end;
      if (readHeader(b, oidEnd, atvEnd) < 0 || H.end !== atvEnd) return false;
      if (!validOidBody(b, oidStart, oidEnd)) return false;
      p = atvEnd;
    }
    pos = setEnd;
  }
  return true;
}

function bytesAt(b: Uint8Array, off: number, limit: number, want: Uint8Array): boolean {
  if (off + want.length > limit) return false;
  for (let i = 0; i < want.length; i++) if (b[off + i] !== want[i]) return false;
  return true;
}

/**
 * Recognizes a request of the shape agents send — version 0, any well-formed subject, an
 * uncompressed P-256/P-384/P-521 point under the named-curve algorithm identifier, no
 * attributes, signed with ecdsa-with-SHA256/384/512 without parameters — and returns the
 * check for the injected verifier, without building a parse tree. Undefined for anything
 * else (which the full parser then decodes, or refuses with its errors). It accepts only
 * requests the full parser accepts, with the same fields (a property test compares them).
 */
export function recognizeEcdsaCsr(der: Uint8Array): RecognizedCsr | undefined {
  const n = der.length;
  if (readHeader(der, 0, n) !== TAG.SEQUENCE || H.end !== n) return undefined;
  const infoOff = H.start;
  if (readHeader(der, infoOff, n) !== TAG.SEQUENCE) return undefined;
  const infoEnd = H.end;
  let p = H.start;
  // version INTEGER 0
  if (p + 3 > infoEnd || der[p] !== TAG.INTEGER || der[p + 1] !== 1 || der[p + 2] !== 0) {
    return undefined;
  }
  p += 3;
  // subject
  if (readHeader(der, p, infoEnd) !== TAG.SEQUENCE) return undefined;
  const subjectEnd = H.end;
  if (!validNameBody(der, H.start, subjectEnd)) return undefined;
  p = subjectEnd;
  // subjectPKInfo: the curve's algorithm identifier, then BIT STRING 00 04 X Y
  const spkiOff = p;
  if (readHeader(der, p, infoEnd) !== TAG.SEQUENCE) return undefined;
  const spkiEnd = H.end;
  const algOff = H.start;
  let curve: (typeof RECOGNIZED_CURVES)[number] | undefined;
  for (const c of RECOGNIZED_CURVES) if (bytesAt(der, algOff, spkiEnd, c.algId)) curve = c;
  if (curve === undefined) return undefined;
  p = algOff + curve.algId.length;
  if (readHeader(der, p, spkiEnd) !== TAG.BIT_STRING || H.end !== spkiEnd) {
    return undefined;
  }
  if (H.end - H.start !== 2 + 2 * curve.size || der[H.start] !== 0 || der[H.start + 1] !== 4) {
    return undefined;
  }
  const pointStart = H.start + 1;
  // attributes: [0] IMPLICIT SET, empty, ending the info
  if (spkiEnd + 2 !== infoEnd || der[spkiEnd] !== 0xa0 || der[spkiEnd + 1] !== 0) {
    return undefined;
  }
  // signatureAlgorithm, then the signature BIT STRING with no unused bits
  let hash: (typeof RECOGNIZED_HASHES)[number] | undefined;
  for (const h of RECOGNIZED_HASHES) if (bytesAt(der, infoEnd, n, h.algId)) hash = h;
  if (hash === undefined) return undefined;
  p = infoEnd + hash.algId.length;
  if (readHeader(der, p, n) !== TAG.BIT_STRING || H.end !== n) return undefined;
  if (H.end === H.start || der[H.start] !== 0) return undefined;
  return {
    spkiDer: der.subarray(spkiOff, spkiEnd),
    request: {
      curve: curve.name,
      hash: hash.name,
      point: der.subarray(pointStart, spkiEnd),
      data: der.subarray(infoOff, infoEnd),
      signature: der.subarray(H.start + 1, n),
    },
  };
}

/**
 * Asks the injected verifier, when there is one and the request is ECDSA on a NIST curve:
 * the request's point when it answered true, undefined otherwise (node:crypto decides).
 */
async function verifyInjected(
  parsed: Omit<ParsedCsr, 'publicKey'>,
  options: ParseCsrOptions | undefined,
): Promise<Uint8Array | undefined> {
  const verifyEcdsa = options?.verifyEcdsa;
  if (verifyEcdsa === undefined) return undefined;
  if (typeof verifyEcdsa !== 'function') throw new TypeError('verifyEcdsa must be a function');
  const request = ecdsaVerifyRequest(
    parsed.signatureAlgorithm,
    parsed.spkiDer,
    parsed.infoDer,
    parsed.signature,
  );
  if (request === undefined) return undefined;
  try {
    if ((await verifyEcdsa(request)) === true) return request.point;
  } catch {
    // A failing injected verifier must not decide anything: node:crypto does.
  }
  return undefined;
}

/** Imports the key and verifies the self-signature with node:crypto on the thread pool. */
async function verifyWithNode(parsed: Omit<ParsedCsr, 'publicKey'>): Promise<KeyObject> {
  let publicKey: KeyObject;
  try {
    publicKey = publicKeyFromSpki(parsed.spkiDer);
  } catch (err) {
    throw keyInvalid(err);
  }
  let ok: boolean;
  try {
    ok = await verifySignatureAsync(
      parsed.signatureAlgorithm,
      parsed.infoDer,
      parsed.signature,
      publicKey,
    );
  } catch (err) {
    throw unsupportedAlgorithm(err);
  }
  if (!ok) throw csrInvalid(NO_POSSESSION);
  return publicKey;
}

/** The parsed request with `publicKey` imported on first read (and then kept). */
function withLazyPublicKey(parsed: Omit<ParsedCsr, 'publicKey'>): ParsedCsr {
  let key: KeyObject | undefined;
  const csr = { ...parsed } as ParsedCsr;
  Object.defineProperty(csr, 'publicKey', {
    enumerable: true,
    configurable: false,
    get(): KeyObject {
      if (key === undefined) {
        try {
          key = publicKeyFromSpki(parsed.spkiDer);
        } catch (err) {
          throw keyInvalid(err);
        }
      }
      return key;
    },
  });
  return csr;
}
