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
  readWhole,
  TAG,
  type Tlv,
  tlvBytes,
} from '../common/der.js';
import { SpireEdgeError } from '../common/errors.js';
import { decodePem } from '../common/pem.js';
import { publicKeyFromSpki } from './internal/spki.js';
import {
  type EcdsaVerifier,
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
  const verifyEcdsa = options?.verifyEcdsa;
  if (verifyEcdsa !== undefined) {
    if (typeof verifyEcdsa !== 'function') throw new TypeError('verifyEcdsa must be a function');
    const request = ecdsaVerifyRequest(
      parsed.signatureAlgorithm,
      parsed.spkiDer,
      parsed.infoDer,
      parsed.signature,
    );
    if (request !== undefined) {
      let ok = false;
      try {
        ok = (await verifyEcdsa(request)) === true;
      } catch {
        // A failing injected verifier must not decide anything: node:crypto does below.
      }
      if (ok) return withLazyPublicKey(parsed);
    }
  }
  let publicKey: KeyObject;
  try {
    publicKey = publicKeyFromSpki(parsed.spkiDer);
  } catch (err) {
    throw keyInvalid(err);
  }
  const csr: ParsedCsr = { ...parsed, publicKey };
  let ok: boolean;
  try {
    ok = await verifySignatureAsync(
      csr.signatureAlgorithm,
      csr.infoDer,
      csr.signature,
      csr.publicKey,
    );
  } catch (err) {
    throw unsupportedAlgorithm(err);
  }
  if (!ok) throw csrInvalid(NO_POSSESSION);
  return csr;
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
