/**
 * The `tpm` node attestation wire format (version 1), shared by the server attestor
 * (tpm.ts) and the agent client (src/agent/attestation/tpm.ts). JSON objects in UTF-8;
 * byte strings are standard padded base64; every message carries `"version": 1` and a
 * decoder refuses any other version, unknown shapes and out-of-bounds sizes before it
 * decodes anything large. Pure (no I/O). See docs/tpm-attestation.md for the flow.
 *
 * - payload (agent → server, `AttestationData.payload`):
 *   `{"version":1,"ek_cert":"<b64 DER, NV padding allowed>"|null,"ek_public":"<b64
 *   TPM2B_PUBLIC>","ak_public":"<b64 TPM2B_PUBLIC>","pcrs":[{"bank":"sha256","indices":[0,…]}]}`
 *   — `pcrs` is what the agent is configured to quote (informational: the server decides).
 * - challenge (server → agent):
 *   `{"version":1,"id_object":"<b64 TPM2B_ID_OBJECT>","encrypted_secret":"<b64
 *   TPM2B_ENCRYPTED_SECRET>","nonce":"<b64 32 bytes>","pcrs":[{"bank":…,"indices":[…]}]}`
 *   — MakeCredential(EK, secret, AK name), a fresh server nonce, and the PCRs the server
 *   requires in the quote.
 * - response (agent → server):
 *   `{"version":1,"secret":"<b64>","quotes":[{"quoted":"<b64 TPMS_ATTEST>","signature":"<b64
 *   TPMT_SIGNATURE>","pcrs":{"<index>":"<b64 digest>",…}}],"event_log":"<b64>"}` — one quote per
 *   PCR bank, each over extraData = SHA-256(secret ‖ server nonce) ({@link tpmQuoteNonce});
 *   `event_log` (optional) is the platform's TCG firmware event log, read after the quotes.
 *
 * Errors: `ERR_TPM_WIRE_INVALID` naming the field and the broken rule (the server maps it
 * to `ERR_ATTESTATION_INVALID_ARGUMENT`).
 */
import { createHash } from 'node:crypto';
import { SpireEdgeError } from '../../common/errors.js';

/** The wire version this module reads and writes. */
export const TPM_WIRE_VERSION = 1;
/** Server nonce and credential secret length. */
export const TPM_NONCE_LENGTH = 32;
/** Largest accepted payload (an EK certificate with NV padding is ~1–2 KiB). */
export const TPM_MAX_PAYLOAD = 16 * 1024;
/** Largest accepted challenge. */
export const TPM_MAX_CHALLENGE = 4 * 1024;
/** Largest accepted event log (real firmware logs are 10–100 KiB; src/tpm allows 4 MiB). */
export const TPM_MAX_EVENT_LOG = 1024 * 1024;
/** Largest accepted response: quotes (4 banks × 24 SHA-512 PCRs fit in 32 KiB) and an event log. */
export const TPM_MAX_RESPONSE = 32 * 1024 + Math.ceil(TPM_MAX_EVENT_LOG / 3) * 4;
/** Banks a selection may name (TPM 2.0 algorithm names as used in PCR selectors). */
export const TPM_WIRE_BANKS = ['sha1', 'sha256', 'sha384', 'sha512'] as const;
/** A PCR bank name on the wire. */
export type TpmWireBank = (typeof TPM_WIRE_BANKS)[number];

/** PCRs of one bank: indices 0..23, ascending, each once. */
export interface TpmWirePcrSelection {
  readonly bank: TpmWireBank;
  readonly indices: readonly number[];
}

/** The attestation payload. */
export interface TpmPayload {
  /** The EK certificate as read from NV (DER, maybe padded), when the TPM has one. */
  readonly ekCert?: Uint8Array;
  /** Marshalled TPM2B_PUBLIC of the EK. */
  readonly ekPublic: Uint8Array;
  /** Marshalled TPM2B_PUBLIC of the AK. */
  readonly akPublic: Uint8Array;
  /** The PCRs the agent is configured to quote. */
  readonly pcrs: readonly TpmWirePcrSelection[];
}

/** The server's challenge. */
export interface TpmChallenge {
  /** Marshalled TPM2B_ID_OBJECT. */
  readonly idObject: Uint8Array;
  /** Marshalled TPM2B_ENCRYPTED_SECRET. */
  readonly encryptedSecret: Uint8Array;
  /** Fresh server nonce ({@link TPM_NONCE_LENGTH} bytes). */
  readonly nonce: Uint8Array;
  /** PCRs the quote must cover. */
  readonly pcrs: readonly TpmWirePcrSelection[];
}

/** One quote of the response. */
export interface TpmWireQuote {
  /** TPMS_ATTEST bytes. */
  readonly quoted: Uint8Array;
  /** Marshalled TPMT_SIGNATURE. */
  readonly signature: Uint8Array;
  /** The PCR values the agent read, by index (unverified until the quote verifies). */
  readonly pcrs: ReadonlyMap<number, Uint8Array>;
}

/** The agent's response. */
export interface TpmResponse {
  /** The secret recovered by TPM2_ActivateCredential. */
  readonly secret: Uint8Array;
  readonly quotes: readonly TpmWireQuote[];
  /** The TCG firmware event log, when the platform has one. */
  readonly eventLog?: Uint8Array;
}

const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

function invalid(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError('ERR_TPM_WIRE_INVALID', message, cause === undefined ? {} : { cause });
}

const b64 = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

function unb64(v: unknown, field: string, max: number, min = 1): Uint8Array {
  if (typeof v !== 'string' || v.length % 4 !== 0 || !B64_RE.test(v)) {
    throw invalid(`${field} must be a standard base64 string`);
  }
  if (v.length > Math.ceil(max / 3) * 4) throw invalid(`${field} is longer than ${max} bytes`);
  const out = new Uint8Array(Buffer.from(v, 'base64'));
  if (out.length < min || out.length > max) {
    throw invalid(`${field} must be ${min === max ? `${min}` : `${min} to ${max}`} bytes`);
  }
  return out;
}

function parseObject(bytes: Uint8Array, what: string, max: number): Record<string, unknown> {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
  if (bytes.length > max) throw invalid(`${what} is ${bytes.length} bytes, more than ${max}`);
  let v: unknown;
  try {
    v = JSON.parse(dec.decode(bytes));
  } catch (err) {
    throw invalid(`${what} is not JSON`, err);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw invalid(`${what} must be a JSON object`);
  }
  const o = v as Record<string, unknown>;
  if (o.version !== TPM_WIRE_VERSION) {
    throw invalid(`${what} version must be ${TPM_WIRE_VERSION}`);
  }
  return o;
}

function encodeSelections(list: readonly TpmWirePcrSelection[]): unknown[] {
  return list.map((s) => ({ bank: s.bank, indices: [...s.indices] }));
}

function decodeSelections(v: unknown, field: string): TpmWirePcrSelection[] {
  if (!Array.isArray(v)) throw invalid(`${field} must be an array`);
  if (v.length > TPM_WIRE_BANKS.length) throw invalid(`${field} names too many banks`);
  const seen = new Set<string>();
  return v.map((s, i) => {
    const f = `${field}[${i}]`;
    if (s === null || typeof s !== 'object' || Array.isArray(s))
      throw invalid(`${f} must be an object`);
    const { bank, indices } = s as Record<string, unknown>;
    if (typeof bank !== 'string' || !(TPM_WIRE_BANKS as readonly string[]).includes(bank)) {
      throw invalid(`${f}.bank must be one of ${TPM_WIRE_BANKS.join(', ')}`);
    }
    if (seen.has(bank)) throw invalid(`${f}.bank ${bank} is named twice`);
    seen.add(bank);
    return { bank: bank as TpmWireBank, indices: checkIndices(indices, `${f}.indices`) };
  });
}

function checkIndices(v: unknown, field: string): number[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > 24) {
    throw invalid(`${field} must be an array of 1 to 24 PCR indices`);
  }
  let last = -1;
  for (const x of v) {
    if (!Number.isInteger(x) || (x as number) < 0 || (x as number) > 23) {
      throw invalid(`${field} must hold integers 0 to 23`);
    }
    if ((x as number) <= last) throw invalid(`${field} must be ascending without repeats`);
    last = x as number;
  }
  return v as number[];
}

/** Encodes the attestation payload. */
export function encodeTpmPayload(p: TpmPayload): Uint8Array {
  return enc.encode(
    JSON.stringify({
      version: TPM_WIRE_VERSION,
      ek_cert: p.ekCert === undefined ? null : b64(p.ekCert),
      ek_public: b64(p.ekPublic),
      ak_public: b64(p.akPublic),
      pcrs: encodeSelections(p.pcrs),
    }),
  );
}

/**
 * Decodes the attestation payload: sizes and shapes only, nothing parsed or verified.
 * @throws SpireEdgeError `ERR_TPM_WIRE_INVALID`.
 */
export function decodeTpmPayload(bytes: Uint8Array): TpmPayload {
  const o = parseObject(bytes, 'tpm payload', TPM_MAX_PAYLOAD);
  const ekCert =
    o.ek_cert === null || o.ek_cert === undefined
      ? undefined
      : unb64(o.ek_cert, 'ek_cert', TPM_MAX_PAYLOAD);
  return {
    ...(ekCert === undefined ? {} : { ekCert }),
    ekPublic: unb64(o.ek_public, 'ek_public', 2 + 1024),
    akPublic: unb64(o.ak_public, 'ak_public', 2 + 1024),
    pcrs: decodeSelections(o.pcrs ?? [], 'pcrs'),
  };
}

/** Encodes a challenge. */
export function encodeTpmChallenge(c: TpmChallenge): Uint8Array {
  return enc.encode(
    JSON.stringify({
      version: TPM_WIRE_VERSION,
      id_object: b64(c.idObject),
      encrypted_secret: b64(c.encryptedSecret),
      nonce: b64(c.nonce),
      pcrs: encodeSelections(c.pcrs),
    }),
  );
}

/**
 * Decodes a challenge (agent side).
 * @throws SpireEdgeError `ERR_TPM_WIRE_INVALID`.
 */
export function decodeTpmChallenge(bytes: Uint8Array): TpmChallenge {
  const o = parseObject(bytes, 'tpm challenge', TPM_MAX_CHALLENGE);
  const pcrs = decodeSelections(o.pcrs, 'pcrs');
  if (pcrs.length === 0) throw invalid('pcrs must name at least one bank');
  return {
    idObject: unb64(o.id_object, 'id_object', 2 + 134),
    encryptedSecret: unb64(o.encrypted_secret, 'encrypted_secret', 2 + 514),
    nonce: unb64(o.nonce, 'nonce', TPM_NONCE_LENGTH, TPM_NONCE_LENGTH),
    pcrs,
  };
}

/** Encodes a response. */
export function encodeTpmResponse(r: TpmResponse): Uint8Array {
  return enc.encode(
    JSON.stringify({
      version: TPM_WIRE_VERSION,
      secret: b64(r.secret),
      quotes: r.quotes.map((q) => ({
        quoted: b64(q.quoted),
        signature: b64(q.signature),
        pcrs: Object.fromEntries([...q.pcrs].map(([i, v]) => [String(i), b64(v)])),
      })),
      ...(r.eventLog === undefined ? {} : { event_log: b64(r.eventLog) }),
    }),
  );
}

/**
 * Decodes a response (server side): shapes and sizes only.
 * @throws SpireEdgeError `ERR_TPM_WIRE_INVALID`.
 */
export function decodeTpmResponse(bytes: Uint8Array): TpmResponse {
  const o = parseObject(bytes, 'tpm challenge response', TPM_MAX_RESPONSE);
  const secret = unb64(o.secret, 'secret', 64);
  if (!Array.isArray(o.quotes) || o.quotes.length === 0 || o.quotes.length > 4) {
    throw invalid('quotes must be an array of 1 to 4 quotes');
  }
  const quotes = o.quotes.map((q, i): TpmWireQuote => {
    const f = `quotes[${i}]`;
    if (q === null || typeof q !== 'object' || Array.isArray(q))
      throw invalid(`${f} must be an object`);
    const r = q as Record<string, unknown>;
    if (r.pcrs === null || typeof r.pcrs !== 'object' || Array.isArray(r.pcrs)) {
      throw invalid(`${f}.pcrs must be an object of index to digest`);
    }
    const entries = Object.entries(r.pcrs as Record<string, unknown>);
    if (entries.length > 24) throw invalid(`${f}.pcrs holds more than 24 values`);
    const pcrs = new Map<number, Uint8Array>();
    for (const [k, v] of entries) {
      if (!/^(?:[0-9]|1[0-9]|2[0-3])$/.test(k))
        throw invalid(`${f}.pcrs key ${JSON.stringify(k)} is not a PCR index 0 to 23`);
      pcrs.set(Number(k), unb64(v, `${f}.pcrs["${k}"]`, 64));
    }
    return {
      quoted: unb64(r.quoted, `${f}.quoted`, 1024),
      signature: unb64(r.signature, `${f}.signature`, 2 + 2 + 2 + 512 + 2),
      pcrs,
    };
  });
  const eventLog =
    o.event_log === undefined || o.event_log === null
      ? undefined
      : unb64(o.event_log, 'event_log', TPM_MAX_EVENT_LOG);
  return eventLog === undefined ? { secret, quotes } : { secret, quotes, eventLog };
}

/**
 * The quote's extraData: SHA-256(secret ‖ server nonce), binding the quote to the credential
 * activation (only the TPM holding the EK and the AK knows the secret) and to this stream's
 * nonce.
 */
export function tpmQuoteNonce(secret: Uint8Array, serverNonce: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(secret).update(serverNonce).digest());
}
