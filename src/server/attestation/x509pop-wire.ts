/**
 * The x509pop wire format, byte-compatible with SPIRE's `pkg/common/plugin/x509pop` (Go's
 * encoding/json, where `[]byte` is standard padded base64 and nil pointers are `null`), so
 * a SPIRE agent can attest to this server and our agent to a SPIRE server. Shared by the
 * server attestor and the agent client; pure (no I/O).
 *
 * - payload: `{"certificates":["<b64 DER leaf>","<b64 DER intermediate>",…]}`
 * - challenge: `{"rsa_signature":null,"ecdsa_signature":{"nonce":"<b64 32 bytes>"}}`
 *   (or the RSA form with `ecdsa_signature` null)
 * - response: `{"rsa_signature":null,"ecdsa_signature":{"nonce":"<b64 32>","r":"<b64>","s":"<b64>"}}`
 *   or `{"rsa_signature":{"nonce":"<b64 32>","signature":"<b64>"},"ecdsa_signature":null}`
 *
 * The signed message: ECDSA over SHA-256(challenge nonce ‖ response nonce), `r` and `s`
 * as minimal big-endian integers; RSA-PSS with SHA-256 (salt length: any on verify, the
 * maximum when signing, as Go's `rsa.SignPSS` with nil options) over the same digest. With
 * Node's `crypto.sign('sha256', challengeNonce ‖ responseNonce, …)` the digest is the same.
 *
 * Errors: `ERR_X509POP_WIRE_INVALID` (malformed JSON, fields or base64).
 */
import { SpireEdgeError } from '../../common/errors.js';

/** Nonce length on both sides (SPIRE's `nonceLen`). */
export const X509POP_NONCE_LENGTH = 32;

/** A challenge: which signature the agent must make, over which nonce. */
export interface X509PopChallenge {
  readonly kind: 'ecdsa' | 'rsa';
  readonly nonce: Uint8Array;
}

/** A challenge response. */
export type X509PopResponse =
  | {
      readonly kind: 'ecdsa';
      readonly nonce: Uint8Array;
      /** Minimal big-endian r. */
      readonly r: Uint8Array;
      /** Minimal big-endian s. */
      readonly s: Uint8Array;
    }
  | { readonly kind: 'rsa'; readonly nonce: Uint8Array; readonly signature: Uint8Array };

const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

function invalid(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_X509POP_WIRE_INVALID',
    message,
    cause === undefined ? {} : { cause },
  );
}

const b64 = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

function unb64(v: unknown, field: string): Uint8Array {
  if (typeof v !== 'string' || v.length % 4 !== 0 || !B64_RE.test(v)) {
    throw invalid(`${field} must be a standard base64 string`);
  }
  return new Uint8Array(Buffer.from(v, 'base64'));
}

function parseObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(dec.decode(bytes));
  } catch (err) {
    throw invalid(`${what} is not JSON`, err);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw invalid(`${what} must be a JSON object`);
  }
  return v as Record<string, unknown>;
}

function optionalObject(v: unknown, field: string): Record<string, unknown> | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v))
    throw invalid(`${field} must be an object or null`);
  return v as Record<string, unknown>;
}

/** Encodes the attestation payload: the certificate chain, leaf first (DER). */
export function encodeX509PopPayload(certificates: readonly Uint8Array[]): Uint8Array {
  return enc.encode(JSON.stringify({ certificates: certificates.map(b64) }));
}

/**
 * Decodes the attestation payload. At most `maxCertificates` are accepted before any is
 * decoded (resource bound). Returns the DER certificates, unparsed and unverified.
 */
export function decodeX509PopPayload(bytes: Uint8Array, maxCertificates = 64): Uint8Array[] {
  const o = parseObject(bytes, 'x509pop payload');
  const list = o.certificates;
  if (list === undefined || list === null) throw invalid('x509pop payload has no certificates');
  if (!Array.isArray(list)) throw invalid('x509pop payload certificates must be an array');
  if (list.length === 0) throw invalid('x509pop payload has no certificates');
  if (list.length > maxCertificates) throw invalid('x509pop payload has too many certificates');
  return list.map((c, i) => unb64(c, `certificates[${i}]`));
}

/** Encodes a challenge as SPIRE does. */
export function encodeX509PopChallenge(c: X509PopChallenge): Uint8Array {
  const body = { nonce: b64(c.nonce) };
  return enc.encode(
    JSON.stringify(
      c.kind === 'rsa'
        ? { rsa_signature: body, ecdsa_signature: null }
        : { rsa_signature: null, ecdsa_signature: body },
    ),
  );
}

/** Decodes a challenge (agent side). Exactly one of the two kinds must be present. */
export function decodeX509PopChallenge(bytes: Uint8Array): X509PopChallenge {
  const o = parseObject(bytes, 'x509pop challenge');
  const rsa = optionalObject(o.rsa_signature, 'rsa_signature');
  const ecdsa = optionalObject(o.ecdsa_signature, 'ecdsa_signature');
  if ((rsa === undefined) === (ecdsa === undefined)) {
    throw invalid('x509pop challenge must hold exactly one of rsa_signature and ecdsa_signature');
  }
  const body = (rsa ?? ecdsa)!;
  const nonce = unb64(body.nonce, 'challenge nonce');
  if (nonce.length !== X509POP_NONCE_LENGTH) throw invalid('challenge nonce must be 32 bytes');
  return { kind: rsa !== undefined ? 'rsa' : 'ecdsa', nonce };
}

/** Encodes a challenge response as SPIRE does. */
export function encodeX509PopResponse(r: X509PopResponse): Uint8Array {
  return enc.encode(
    JSON.stringify(
      r.kind === 'rsa'
        ? {
            rsa_signature: { nonce: b64(r.nonce), signature: b64(r.signature) },
            ecdsa_signature: null,
          }
        : {
            rsa_signature: null,
            ecdsa_signature: { nonce: b64(r.nonce), r: b64(r.r), s: b64(r.s) },
          },
    ),
  );
}

/** Decodes a challenge response (server side). Lengths are the verifier's to check. */
export function decodeX509PopResponse(bytes: Uint8Array): X509PopResponse {
  const o = parseObject(bytes, 'x509pop challenge response');
  const rsa = optionalObject(o.rsa_signature, 'rsa_signature');
  const ecdsa = optionalObject(o.ecdsa_signature, 'ecdsa_signature');
  if ((rsa === undefined) === (ecdsa === undefined)) {
    throw invalid(
      'x509pop challenge response must hold exactly one of rsa_signature and ecdsa_signature',
    );
  }
  if (rsa !== undefined) {
    return {
      kind: 'rsa',
      nonce: unb64(rsa.nonce, 'response nonce'),
      signature: unb64(rsa.signature, 'signature'),
    };
  }
  return {
    kind: 'ecdsa',
    nonce: unb64(ecdsa!.nonce, 'response nonce'),
    r: unb64(ecdsa!.r, 'r'),
    s: unb64(ecdsa!.s, 's'),
  };
}

/** The bytes both sides sign/verify with SHA-256: challenge nonce ‖ response nonce. */
export function x509PopSignedMessage(
  challengeNonce: Uint8Array,
  responseNonce: Uint8Array,
): Buffer {
  return Buffer.concat([challengeNonce, responseNonce]);
}
