/**
 * The go-tpm-tools `attest.Attestation` captures of the corpus (quotes/gotpmtools__gce-cos-85-
 * *.pb, see ../shared/corpus/PROVENANCE.md), decoded with a minimal protobuf wire reader.
 *
 * Field numbers (go-tpm-tools proto/attest.proto and proto/tpm.proto):
 * Attestation { bytes ak_pub = 1; repeated tpm.Quote quotes = 2; bytes event_log = 3;
 * bytes ak_cert = 6; … }, tpm.Quote { bytes quote = 1; bytes raw_sig = 2; PCRs pcrs = 3; },
 * tpm.PCRs { HashAlgo hash = 1; map<uint32, bytes> pcrs = 2; } (a map entry is a message
 * { key = 1; value = 2; }), HashAlgo values are TPM_ALG_IDs.
 */
import type { PcrBank } from '../../../../src/tpm/index.js';
import { tpmHashByAlg } from '../../../../src/tpm/index.js';
import { readCorpus } from '../../../support/corpus.js';

/** One protobuf field: varints as bigint, length-delimited as bytes. */
type Field = { no: number; varint: bigint } | { no: number; bytes: Uint8Array };

/** Splits a protobuf message into its fields (wire types 0, 1, 2 and 5). */
export function protoFields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let i = 0;
  const varint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      if (i >= buf.length) throw new Error('protobuf: truncated varint');
      const b = buf[i++]!;
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
      shift += 7n;
      if (shift > 63n) throw new Error('protobuf: varint too long');
    }
  };
  const take = (n: number): Uint8Array => {
    if (n > buf.length - i) throw new Error('protobuf: truncated field');
    const b = buf.subarray(i, i + n);
    i += n;
    return b;
  };
  while (i < buf.length) {
    const key = varint();
    const no = Number(key >> 3n);
    switch (Number(key & 7n)) {
      case 0:
        out.push({ no, varint: varint() });
        break;
      case 1:
        out.push({ no, bytes: take(8) });
        break;
      case 2:
        out.push({ no, bytes: take(Number(varint())) });
        break;
      case 5:
        out.push({ no, bytes: take(4) });
        break;
      default:
        throw new Error(`protobuf: unsupported wire type ${key & 7n}`);
    }
  }
  return out;
}

function bytesOf(fields: Field[], no: number): Uint8Array[] {
  return fields.flatMap((f) => (f.no === no && 'bytes' in f ? [f.bytes] : []));
}

function varintOf(fields: Field[], no: number): bigint {
  const f = fields.find((x) => x.no === no && 'varint' in x);
  return f !== undefined && 'varint' in f ? f.varint : 0n;
}

/** One tpm.Quote. */
export interface GoTpmToolsQuote {
  readonly quote: Uint8Array;
  readonly rawSig: Uint8Array;
  readonly bank: PcrBank;
  readonly pcrs: Map<number, Uint8Array>;
}

/** The parts of attest.Attestation the tests use. */
export interface GoTpmToolsAttestation {
  readonly akPub: Uint8Array;
  readonly quotes: readonly GoTpmToolsQuote[];
  readonly eventLog: Uint8Array;
  readonly akCert: Uint8Array;
}

/** Decodes an attest.Attestation. */
export function decodeAttestation(buf: Uint8Array): GoTpmToolsAttestation {
  const top = protoFields(buf);
  const quotes = bytesOf(top, 2).map((q): GoTpmToolsQuote => {
    const qf = protoFields(q);
    const pcrsMsg = bytesOf(qf, 3)[0];
    if (pcrsMsg === undefined) throw new Error('tpm.Quote without pcrs');
    const pf = protoFields(pcrsMsg);
    const alg = Number(varintOf(pf, 1));
    const h = tpmHashByAlg(alg);
    if (h === undefined) throw new Error(`tpm.PCRs.hash ${alg} is not a known hash`);
    const pcrs = new Map<number, Uint8Array>();
    for (const entry of bytesOf(pf, 2)) {
      const ef = protoFields(entry);
      pcrs.set(Number(varintOf(ef, 1)), new Uint8Array(bytesOf(ef, 2)[0] ?? new Uint8Array(0)));
    }
    return {
      quote: new Uint8Array(bytesOf(qf, 1)[0]!),
      rawSig: new Uint8Array(bytesOf(qf, 2)[0]!),
      bank: h.bank,
      pcrs,
    };
  });
  return {
    akPub: new Uint8Array(bytesOf(top, 1)[0]!),
    quotes,
    eventLog: new Uint8Array(bytesOf(top, 3)[0]!),
    akCert: new Uint8Array(bytesOf(top, 6)[0] ?? new Uint8Array(0)),
  };
}

/** The two captures and the nonce each was taken with (0x90 0x09, and none). */
export const GCE_COS_85_CAPTURES = [
  { file: 'gotpmtools__gce-cos-85-nonce9009.pb', nonce: Uint8Array.of(0x90, 0x09) },
  { file: 'gotpmtools__gce-cos-85-no-nonce.pb', nonce: new Uint8Array(0) },
] as const;

/** Loads and decodes a go-tpm-tools capture from quotes/. */
export function loadAttestation(file: string): GoTpmToolsAttestation {
  return decodeAttestation(new Uint8Array(readCorpus('quotes', file)));
}
