/**
 * The at-rest format of data sealed by {@link Tpm.seal}: the sealed object's marshalled
 * TPM2B_PUBLIC and TPM2B_PRIVATE plus the PCR selection its policy binds (needed again to
 * satisfy PolicyPCR at unseal time). Nothing in it is secret outside the TPM that sealed it.
 *
 * Layout (big-endian): "SESB" | version u8 = 1 | bank TPM_ALG_ID u16 (0x0010 TPM_ALG_NULL when
 * not bound to PCRs) | PCR bitmap u32 (bit i = PCR i, 0..23) | TPM2B_PUBLIC | TPM2B_PRIVATE.
 *
 * Errors: `ERR_TPM_SEALED_BLOB_INVALID` for anything that is not exactly this layout. The
 * TPM structures inside are checked by the TSS when unsealing (`ERR_TPM_BLOB_INVALID`).
 */
import { SpireEdgeError } from '../../common/errors.js';
import type { PcrBank, PcrSelection } from './tpm.js';

const MAGIC = [0x53, 0x45, 0x53, 0x42] as const; // "SESB"
const VERSION = 1;
const ALG_NULL = 0x0010;
const BANK_ALG: Readonly<Record<PcrBank, number>> = {
  sha1: 0x0004,
  sha256: 0x000b,
  sha384: 0x000c,
  sha512: 0x000d,
};

/** The parts of a sealed blob. */
export interface SealedBlob {
  readonly pcrs: PcrSelection | undefined;
  /** Marshalled TPM2B_PUBLIC of the sealed object. */
  readonly public: Uint8Array;
  /** Marshalled TPM2B_PRIVATE of the sealed object. */
  readonly private: Uint8Array;
}

function invalid(rule: string): SpireEdgeError {
  return new SpireEdgeError('ERR_TPM_SEALED_BLOB_INVALID', `sealed blob ${rule}`);
}

/** Encodes a sealed blob; `pub`/`priv` must be TPM2B structures (a 2-byte size, then that many bytes). */
export function encodeSealedBlob(blob: SealedBlob): Uint8Array {
  for (const [name, part] of [
    ['public', blob.public],
    ['private', blob.private],
  ] as const) {
    if (part.length < 2 || part.length !== 2 + ((part[0]! << 8) | part[1]!)) {
      throw new TypeError(`sealed blob ${name} must be a marshalled TPM2B`);
    }
  }
  let mask = 0;
  for (const i of blob.pcrs?.indices ?? []) mask |= 1 << i;
  const out = new Uint8Array(11 + blob.public.length + blob.private.length);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  out[4] = VERSION;
  view.setUint16(5, blob.pcrs === undefined ? ALG_NULL : BANK_ALG[blob.pcrs.bank]);
  view.setUint32(7, mask >>> 0);
  out.set(blob.public, 11);
  out.set(blob.private, 11 + blob.public.length);
  return out;
}

/** Decodes a sealed blob, strictly: any other layout is `ERR_TPM_SEALED_BLOB_INVALID`. */
export function decodeSealedBlob(bytes: Uint8Array): SealedBlob {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('sealed blob must be a Uint8Array');
  if (bytes.length < 11) throw invalid('is shorter than its 11-byte header');
  if (MAGIC.some((b, i) => bytes[i] !== b)) throw invalid('does not start with "SESB"');
  if (bytes[4] !== VERSION) throw invalid(`has unsupported version ${bytes[4]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const alg = view.getUint16(5);
  const mask = view.getUint32(7);
  let pcrs: PcrSelection | undefined;
  if (alg === ALG_NULL) {
    if (mask !== 0) throw invalid('selects pcrs without a bank');
  } else {
    const bank = (Object.keys(BANK_ALG) as PcrBank[]).find((b) => BANK_ALG[b] === alg);
    if (bank === undefined) throw invalid(`names unknown pcr bank algorithm 0x${alg.toString(16)}`);
    if (mask === 0 || mask >>> 24 !== 0) throw invalid('pcr bitmap must select pcrs 0..23');
    const indices: number[] = [];
    for (let i = 0; i < 24; i++) if ((mask >>> i) & 1) indices.push(i);
    pcrs = { bank, indices };
  }
  let off = 11;
  const take = (name: string): Uint8Array => {
    if (off + 2 > bytes.length) throw invalid(`is truncated before its ${name} size`);
    const size = view.getUint16(off);
    if (off + 2 + size > bytes.length) throw invalid(`${name} size ${size} exceeds the blob`);
    const part = bytes.slice(off, off + 2 + size);
    off += 2 + size;
    return part;
  };
  const pub = take('public');
  const priv = take('private');
  if (off !== bytes.length) throw invalid(`has ${bytes.length - off} trailing bytes`);
  return { pcrs, public: pub, private: priv };
}
