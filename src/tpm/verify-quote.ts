/**
 * TPM2_Quote verification (TPM 2.0 Part 3 §18.4, Part 2 §10.12): proves that the TPM holding
 * the AK reported these PCR values after seeing this nonce.
 */
import { createHash } from 'node:crypto';
import { checkAkAttributes } from './ak-attributes.js';
import { type ClockInfo, parseTpmsAttest, type QuoteInfo, type TpmsAttest } from './attest.js';
import { TPM_GENERATED_VALUE, TPM_ST } from './constants.js';
import { recode, tpmError } from './errors.js';
import { type PcrBank, tpmHashByAlg } from './hash.js';
import { constantTimeEqual } from './internal/bytes.js';
import { signatureProblem } from './internal/signature-check.js';
import { type PcrValues, selectedPcrValues } from './pcr-digest.js';
import { pcrSelectionIndices } from './pcr-selection.js';
import { parseTpmtPublic, type TpmtPublic } from './public-area.js';
import { parseTpmtSignature, type TpmtSignature } from './signature.js';

/** Inputs of {@link verifyQuote}. */
export interface VerifyQuoteInput {
  /**
   * The AK public area (parsed, or TPMT_PUBLIC bytes). It must already be bound to the EK
   * (credential activation with its name): this function only checks its attributes.
   */
  readonly akPublic: TpmtPublic | Uint8Array;
  /** The TPMS_ATTEST bytes the TPM signed. */
  readonly quoted: Uint8Array;
  /** The TPMT_SIGNATURE (bytes, or parsed). */
  readonly signature: Uint8Array | TpmtSignature;
  /**
   * The PCR values the agent reported, by bank then index. Every PCR of the signed selection
   * must have a value; a value for a PCR outside it is refused (nothing unsigned is carried
   * along).
   */
  readonly pcrs: PcrValues;
  /** The nonce the verifier issued for this quote; extraData must equal it. */
  readonly expectedNonce: Uint8Array;
  /**
   * Accept SHA-1: RSASSA/ECDSA-SHA1 signatures and a SHA-1 PCR digest (older AKs such as
   * Windows PCP keys). Off by default.
   */
  readonly allowSha1?: boolean;
}

/** What a verified quote proves. */
export interface VerifiedQuote {
  /** The signed TPMS_ATTEST. */
  readonly attest: TpmsAttest;
  /** Bank → indices, from the signed selection only, in its order. */
  readonly pcrSelection: ReadonlyMap<PcrBank, readonly number[]>;
  /** The verified PCR values (only those of the signed selection). */
  readonly pcrs: ReadonlyMap<PcrBank, ReadonlyMap<number, Uint8Array>>;
  /** The signed PCR digest. */
  readonly pcrDigest: Uint8Array;
  /** The signing hash (also the PCR digest's hash). */
  readonly hash: PcrBank;
  /** Signed clock state: compare resetCount/restartCount with the last quote per device. */
  readonly clockInfo: ClockInfo;
  readonly firmwareVersion: bigint;
  /** Qualified name of the AK, as the TPM reports it. */
  readonly qualifiedSigner: Uint8Array;
}

function invalid(message: string): never {
  throw tpmError('ERR_TPM_QUOTE_INVALID', message);
}

/**
 * Verifies a quote: the AK's attributes (checkAkAttributes), the signature over the quoted
 * bytes with the AK (RSASSA, RSAPSS or ECDSA; hash from the signature and equal to the
 * key's scheme; SHA-1 only with `allowSha1`), then — on the signed bytes — magic
 * TPM_GENERATED_VALUE, type TPM_ST_ATTEST_QUOTE, extraData equal to `expectedNonce`
 * (constant-time), and the PCR digest recomputed from `pcrs` over the signed selection.
 *
 * Trusts only `expectedNonce` and the AK public area it is given. The caller must still: have
 * bound the AK to an EK it trusts (credential activation), issue single-use nonces, compare
 * clockInfo (resetCount, restartCount, safe) with the device's previous quote, and evaluate
 * the PCR values against policy.
 *
 * @throws SpireEdgeError `ERR_TPM_PARSE` (malformed AK, quote or signature bytes),
 *   `ERR_TPM_AK_INVALID`, `ERR_TPM_QUOTE_INVALID` naming the failed check.
 */
export function verifyQuote(input: VerifyQuoteInput): VerifiedQuote {
  if (typeof input !== 'object' || input === null) throw new TypeError('input must be an object');
  const { quoted, expectedNonce, pcrs } = input;
  if (!(quoted instanceof Uint8Array)) throw new TypeError('quoted must be a Uint8Array');
  if (!(expectedNonce instanceof Uint8Array))
    throw new TypeError('expectedNonce must be a Uint8Array');
  if (!(pcrs instanceof Map))
    throw new TypeError('pcrs must be a Map of bank to Map of index to digest');
  for (const [bank, values] of pcrs) {
    if (!(values instanceof Map)) throw new TypeError(`pcrs.get('${bank}') must be a Map`);
  }
  const allowSha1 = input.allowSha1 === true;

  const ak =
    input.akPublic instanceof Uint8Array ? parseTpmtPublic(input.akPublic) : input.akPublic;
  checkAkAttributes(ak);
  const signature =
    input.signature instanceof Uint8Array ? parseTpmtSignature(input.signature) : input.signature;

  let problem: string | undefined;
  try {
    problem = signatureProblem(ak, quoted, signature, { allowSha1 });
  } catch (err) {
    throw recode(err, 'ERR_TPM_AK_INVALID', 'AK public key', []);
  }
  if (problem !== undefined) invalid(`quote signature: ${problem}`);

  const attest = parseTpmsAttest(quoted);
  if (attest.magic !== TPM_GENERATED_VALUE) {
    invalid(`quote magic 0x${attest.magic.toString(16)} is not TPM_GENERATED_VALUE 0xff544347`);
  }
  if (attest.type !== TPM_ST.ATTEST_QUOTE) {
    invalid(`quote type 0x${attest.type.toString(16)} is not TPM_ST_ATTEST_QUOTE 0x8018`);
  }
  if (!constantTimeEqual(attest.extraData, expectedNonce)) {
    invalid('quote extraData does not equal the expected nonce');
  }
  const info = attest.attested as QuoteInfo;
  // The signature's hash was checked above (known, SHA-1 only when allowed).
  const hash = tpmHashByAlg((signature as { hash: number }).hash)!;

  const pcrSelection = new Map<PcrBank, number[]>();
  for (const sel of info.pcrSelect) {
    const h = tpmHashByAlg(sel.hashAlg)!;
    if (h.bank === 'sha1' && !allowSha1)
      invalid('quote selects the SHA-1 PCR bank (allowSha1 is off)');
    pcrSelection.set(h.bank, pcrSelectionIndices(sel));
  }
  const verified = new Map<PcrBank, Map<number, Uint8Array>>();
  const selected = selectedPcrValues(info.pcrSelect, pcrs);
  for (const { bank, index, value } of selected) {
    let m = verified.get(bank);
    if (m === undefined) {
      m = new Map();
      verified.set(bank, m);
    }
    m.set(index, new Uint8Array(value));
  }
  for (const [bank, values] of pcrs) {
    for (const index of values.keys()) {
      if (verified.get(bank)?.has(index) !== true) {
        invalid(`PCR ${bank}:${index} was given but is not in the quoted selection`);
      }
    }
  }
  const h = createHash(hash.node);
  for (const { value } of selected) h.update(value);
  const digest = new Uint8Array(h.digest());
  if (info.pcrDigest.length !== digest.length || !constantTimeEqual(info.pcrDigest, digest)) {
    invalid('quote pcrDigest does not match the digest of the given PCR values');
  }
  return {
    attest,
    pcrSelection,
    pcrs: verified,
    pcrDigest: info.pcrDigest,
    hash: hash.bank,
    clockInfo: attest.clockInfo,
    firmwareVersion: attest.firmwareVersion,
    qualifiedSigner: attest.qualifiedSigner,
  };
}
