/**
 * TPMT_SIGNATURE (TPM 2.0 Part 2 §11.3.4): a signature with its scheme and hash, as TPM2_Quote
 * and TPM2_Certify return it (tpm2-tools `-s` in its default `tss` format).
 *
 * RSA schemes carry one big-endian value as long as the modulus; ECC schemes carry r and s as
 * TPM2B_ECC_PARAMETER, not necessarily padded to the curve size.
 */
import { TPM_ALG, TPM_LIMITS } from './constants.js';
import { algText, tpmHashByAlg } from './hash.js';
import { parseWhole, type TpmReader } from './reader.js';
import { marshalWith, type TpmWriter } from './writer.js';

/** TPMS_SIGNATURE_RSA under RSASSA or RSAPSS. */
export interface RsaSignature {
  readonly kind: 'rsa';
  readonly sigAlg: typeof TPM_ALG.RSASSA | typeof TPM_ALG.RSAPSS;
  readonly hash: number;
  readonly sig: Uint8Array;
}

/** TPMS_SIGNATURE_ECC under ECDSA, ECDAA, SM2 or ECSCHNORR. */
export interface EccSignature {
  readonly kind: 'ecc';
  readonly sigAlg:
    | typeof TPM_ALG.ECDSA
    | typeof TPM_ALG.ECDAA
    | typeof TPM_ALG.SM2
    | typeof TPM_ALG.ECSCHNORR;
  readonly hash: number;
  readonly r: Uint8Array;
  readonly s: Uint8Array;
}

/** TPMT_HA under HMAC. */
export interface HmacSignature {
  readonly kind: 'hmac';
  readonly sigAlg: typeof TPM_ALG.HMAC;
  readonly hash: number;
  readonly digest: Uint8Array;
}

/** The NULL signature (an unsigned attestation). */
export interface NullSignature {
  readonly kind: 'null';
  readonly sigAlg: typeof TPM_ALG.NULL;
}

/** TPMT_SIGNATURE, discriminated by `kind`. Byte fields are views into the parsed input. */
export type TpmtSignature = RsaSignature | EccSignature | HmacSignature | NullSignature;

function readHash(r: TpmReader): number {
  const hash = r.u16('hash');
  if (tpmHashByAlg(hash) === undefined) r.fail('hash', `${algText(hash)} is not a hash algorithm`);
  return hash;
}

/** Reads a TPMT_SIGNATURE at the reader's position. */
export function readTpmtSignature(r: TpmReader): TpmtSignature {
  const sigAlg = r.u16('sigAlg');
  switch (sigAlg) {
    case TPM_ALG.RSASSA:
    case TPM_ALG.RSAPSS:
      return r.scope(
        'signature',
        (): RsaSignature => ({
          kind: 'rsa',
          sigAlg: sigAlg as RsaSignature['sigAlg'],
          hash: readHash(r),
          sig: r.tpm2b('sig', TPM_LIMITS.rsaKey),
        }),
      );
    case TPM_ALG.ECDSA:
    case TPM_ALG.ECDAA:
    case TPM_ALG.SM2:
    case TPM_ALG.ECSCHNORR:
      return r.scope(
        'signature',
        (): EccSignature => ({
          kind: 'ecc',
          sigAlg: sigAlg as EccSignature['sigAlg'],
          hash: readHash(r),
          r: r.tpm2b('signatureR', TPM_LIMITS.eccKey),
          s: r.tpm2b('signatureS', TPM_LIMITS.eccKey),
        }),
      );
    case TPM_ALG.HMAC:
      return r.scope('signature', (): HmacSignature => {
        const hash = readHash(r);
        const digest = r.bytes('digest', tpmHashByAlg(hash)!.size);
        return { kind: 'hmac', sigAlg: TPM_ALG.HMAC, hash, digest };
      });
    case TPM_ALG.NULL:
      return { kind: 'null', sigAlg: TPM_ALG.NULL };
    default:
      return r.fail('sigAlg', `${algText(sigAlg)} is not a signature scheme`);
  }
}

/**
 * Parses a marshalled TPMT_SIGNATURE, refusing trailing bytes.
 *
 * @throws SpireEdgeError `ERR_TPM_PARSE` naming the field.
 */
export function parseTpmtSignature(bytes: Uint8Array): TpmtSignature {
  return parseWhole(bytes, 'TPMT_SIGNATURE', readTpmtSignature);
}

/** Writes a TPMT_SIGNATURE. */
export function writeTpmtSignature(w: TpmWriter, s: TpmtSignature): void {
  w.u16(s.sigAlg, 'sigAlg');
  switch (s.kind) {
    case 'rsa':
      w.u16(s.hash, 'hash').tpm2b(s.sig, TPM_LIMITS.rsaKey, 'sig');
      return;
    case 'ecc':
      w.u16(s.hash, 'hash')
        .tpm2b(s.r, TPM_LIMITS.eccKey, 'signatureR')
        .tpm2b(s.s, TPM_LIMITS.eccKey, 'signatureS');
      return;
    case 'hmac':
      w.u16(s.hash, 'hash').bytes(s.digest, 'digest');
      return;
    case 'null':
      return;
  }
}

/** Marshals a TPMT_SIGNATURE. */
export function marshalTpmtSignature(s: TpmtSignature): Uint8Array {
  return marshalWith((w) => writeTpmtSignature(w, s), 520);
}
