import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type EccPublic,
  marshalTpmtPublic,
  marshalTpmtSignature,
  type PcrBank,
  parseTpmtSignature,
  pcrSelection,
  TPM_ST,
  TPMA_OBJECT,
  verifyQuote,
} from '../../../src/tpm/index.js';
import { makeAk, pcrMap, type SoftKey, softQuote } from './support/soft-tpm.js';

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return `${(e as { code?: string }).code}: ${(e as Error).message}`;
  }
  throw new Error('expected an error');
}

const digest = (n: number, size = 32): Uint8Array => new Uint8Array(size).fill(n);
const PCRS = pcrMap('sha256', {
  0: digest(0xa0),
  1: digest(0xa1),
  2: digest(0xa2),
  7: digest(0xa7),
});
const SEL = [pcrSelection('sha256', [0, 1, 2, 7])];

function clonePcrs(
  p: ReadonlyMap<PcrBank, ReadonlyMap<number, Uint8Array>>,
): Map<PcrBank, Map<number, Uint8Array>> {
  return new Map(
    [...p].map(([b, m]) => [b, new Map([...m].map(([i, v]) => [i, new Uint8Array(v)]))]),
  );
}

describe('verifyQuote: hand-built quotes', () => {
  const ecc = makeAk('ecc');
  const nonce = randomBytes(32);

  it.each([
    ['ECDSA P-256 / SHA-256', () => ecc],
    ['ECDSA P-384 / SHA-384', () => makeAk('ecc', { curve: 'P-384', hash: 'sha384' })],
    ['RSASSA-2048 / SHA-256', () => makeAk('rsa')],
    ['RSAPSS-2048 / SHA-256', () => makeAk('rsapss')],
  ] as const)('%s verifies and returns only signed data', (_, gen) => {
    const ak = gen();
    const q = softQuote(ak, {
      nonce,
      selection: SEL,
      pcrs: PCRS,
      resetCount: 9,
      restartCount: 2,
      safe: false,
    });
    const v = verifyQuote({ akPublic: ak.public, ...q, pcrs: PCRS, expectedNonce: nonce });
    expect([...v.pcrSelection]).toEqual([['sha256', [0, 1, 2, 7]]]);
    expect([...v.pcrs.get('sha256')!.keys()]).toEqual([0, 1, 2, 7]);
    expect(v.pcrs.get('sha256')!.get(7)).toEqual(digest(0xa7));
    expect(v.clockInfo).toEqual({ clock: 123456n, resetCount: 9, restartCount: 2, safe: false });
    expect(v.attest.type).toBe(TPM_ST.ATTEST_QUOTE);
    // The AK can also be given as TPMT_PUBLIC bytes, the signature parsed.
    expect(() =>
      verifyQuote({
        akPublic: marshalTpmtPublic(ak.public),
        quoted: q.quoted,
        signature: parseTpmtSignature(q.signature),
        pcrs: PCRS,
        expectedNonce: nonce,
      }),
    ).not.toThrow();
  });

  it('takes the PCR digest over banks in selection order and indices ascending', () => {
    const pcrs = new Map<PcrBank, Map<number, Uint8Array>>([
      ['sha384', new Map([[23, digest(3, 48)]])],
      [
        'sha256',
        new Map([
          [16, digest(1)],
          [3, digest(2)],
        ]),
      ],
    ]);
    const selection = [pcrSelection('sha384', [23]), pcrSelection('sha256', [16, 3])];
    const q = softQuote(ecc, { nonce, selection, pcrs });
    const v = verifyQuote({ akPublic: ecc.public, ...q, pcrs, expectedNonce: nonce });
    expect([...v.pcrSelection]).toEqual([
      ['sha384', [23]],
      ['sha256', [3, 16]],
    ]);
    // Swapping two values changes the digest.
    const swapped = new Map(pcrs);
    swapped.set(
      'sha256',
      new Map([
        [16, digest(2)],
        [3, digest(1)],
      ]),
    );
    expect(
      errorOf(() =>
        verifyQuote({ akPublic: ecc.public, ...q, pcrs: swapped, expectedNonce: nonce }),
      ),
    ).toBe(
      'ERR_TPM_QUOTE_INVALID: quote pcrDigest does not match the digest of the given PCR values',
    );
  });

  it('accepts an empty selection (no PCRs)', () => {
    const q = softQuote(ecc, { nonce, selection: [], pcrs: new Map() });
    const v = verifyQuote({ akPublic: ecc.public, ...q, pcrs: new Map(), expectedNonce: nonce });
    expect(v.pcrSelection.size).toBe(0);
  });

  it('refuses each broken rule with a precise error', () => {
    const q = softQuote(ecc, { nonce, selection: SEL, pcrs: PCRS });
    const verify = (over: Partial<Parameters<typeof verifyQuote>[0]>, ak: SoftKey = ecc) =>
      errorOf(() =>
        verifyQuote({ akPublic: ak.public, ...q, pcrs: PCRS, expectedNonce: nonce, ...over }),
      );

    expect(verify({ expectedNonce: randomBytes(32) })).toBe(
      'ERR_TPM_QUOTE_INVALID: quote extraData does not equal the expected nonce',
    );
    expect(verify({ expectedNonce: nonce.subarray(1) })).toBe(
      'ERR_TPM_QUOTE_INVALID: quote extraData does not equal the expected nonce',
    );
    const changed = clonePcrs(PCRS);
    changed.get('sha256')!.get(7)![0]! ^= 1;
    expect(verify({ pcrs: changed })).toBe(
      'ERR_TPM_QUOTE_INVALID: quote pcrDigest does not match the digest of the given PCR values',
    );
    const missing = clonePcrs(PCRS);
    missing.get('sha256')!.delete(2);
    expect(verify({ pcrs: missing })).toBe(
      'ERR_TPM_QUOTE_INVALID: PCR sha256:2 is in the quoted selection but no value was given',
    );
    const extra = clonePcrs(PCRS);
    extra.get('sha256')!.set(8, digest(8));
    expect(verify({ pcrs: extra })).toBe(
      'ERR_TPM_QUOTE_INVALID: PCR sha256:8 was given but is not in the quoted selection',
    );
    const otherBank = clonePcrs(PCRS);
    otherBank.set('sha1', new Map([[0, digest(0, 20)]]));
    expect(verify({ pcrs: otherBank })).toBe(
      'ERR_TPM_QUOTE_INVALID: PCR sha1:0 was given but is not in the quoted selection',
    );
    const short = clonePcrs(PCRS);
    short.get('sha256')!.set(1, digest(1, 20));
    expect(verify({ pcrs: short })).toBe(
      "ERR_TPM_QUOTE_INVALID: PCR sha256:1 value is 20 bytes, the bank's digest is 32",
    );
    const sig = new Uint8Array(q.signature);
    sig[sig.length - 1]! ^= 1;
    expect(verify({ signature: sig })).toBe(
      'ERR_TPM_QUOTE_INVALID: quote signature: the signature does not verify with the key',
    );
    expect(verify({}, makeAk('ecc'))).toBe(
      'ERR_TPM_QUOTE_INVALID: quote signature: the signature does not verify with the key',
    );
    const ak = ecc.public as EccPublic;
    expect(
      verify({
        akPublic: { ...ak, objectAttributes: ak.objectAttributes & ~TPMA_OBJECT.restricted },
      }),
    ).toBe('ERR_TPM_AK_INVALID: AK objectAttributes 0x00040072: restricted is not set');
    expect(verify({ quoted: q.quoted.subarray(0, 10) })).toBe(
      'ERR_TPM_QUOTE_INVALID: quote signature: the signature does not verify with the key',
    );
    expect(verify({ signature: q.signature.subarray(0, 10) })).toMatch(
      /^ERR_TPM_PARSE: TPMT_SIGNATURE\./,
    );
  });

  it('refuses a well-signed structure that is not a TPM-generated quote', () => {
    const nonQuote = softQuote(ecc, { nonce, selection: SEL, pcrs: PCRS, magic: 0xff544348 });
    expect(
      errorOf(() =>
        verifyQuote({ akPublic: ecc.public, ...nonQuote, pcrs: PCRS, expectedNonce: nonce }),
      ),
    ).toBe('ERR_TPM_QUOTE_INVALID: quote magic 0xff544348 is not TPM_GENERATED_VALUE 0xff544347');
    const wrongDigest = softQuote(ecc, {
      nonce,
      selection: SEL,
      pcrs: PCRS,
      pcrDigest: new Uint8Array(20),
    });
    expect(
      errorOf(() =>
        verifyQuote({ akPublic: ecc.public, ...wrongDigest, pcrs: PCRS, expectedNonce: nonce }),
      ),
    ).toBe(
      'ERR_TPM_QUOTE_INVALID: quote pcrDigest does not match the digest of the given PCR values',
    );
    const dup = [pcrSelection('sha256', [0]), pcrSelection('sha256', [1])];
    // A (signed) selection that names the same bank twice.
    const twice = softQuote(ecc, {
      nonce,
      selection: dup,
      pcrs: PCRS,
      pcrDigest: new Uint8Array(32),
    });
    expect(
      errorOf(() =>
        verifyQuote({ akPublic: ecc.public, ...twice, pcrs: PCRS, expectedNonce: nonce }),
      ),
    ).toBe('ERR_TPM_QUOTE_INVALID: PCR bank sha256 is selected more than once');
  });

  it('refuses SHA-1 signatures and the SHA-1 bank unless allowSha1', () => {
    const sha1Ak = makeAk('rsa', { hash: 'sha1' });
    const pcrs = pcrMap('sha1', { 0: digest(1, 20) });
    const q = softQuote(sha1Ak, { nonce, selection: [pcrSelection('sha1', [0])], pcrs });
    expect(
      errorOf(() => verifyQuote({ akPublic: sha1Ak.public, ...q, pcrs, expectedNonce: nonce })),
    ).toBe(
      'ERR_TPM_QUOTE_INVALID: quote signature: SHA-1 signatures are not accepted (allowSha1 is off)',
    );
    expect(
      verifyQuote({ akPublic: sha1Ak.public, ...q, pcrs, expectedNonce: nonce, allowSha1: true })
        .hash,
    ).toBe('sha1');
    const q2 = softQuote(ecc, { nonce, selection: [pcrSelection('sha1', [0])], pcrs });
    expect(
      errorOf(() => verifyQuote({ akPublic: ecc.public, ...q2, pcrs, expectedNonce: nonce })),
    ).toBe('ERR_TPM_QUOTE_INVALID: quote selects the SHA-1 PCR bank (allowSha1 is off)');
    expect(
      verifyQuote({ akPublic: ecc.public, ...q2, pcrs, expectedNonce: nonce, allowSha1: true })
        .hash,
    ).toBe('sha256');
  });

  it('throws TypeError for arguments that are not the documented types', () => {
    const q = softQuote(ecc, { nonce, selection: SEL, pcrs: PCRS });
    expect(() =>
      verifyQuote({ akPublic: ecc.public, ...q, pcrs: {} as never, expectedNonce: nonce }),
    ).toThrow(TypeError);
    expect(() =>
      verifyQuote({ akPublic: ecc.public, ...q, pcrs: PCRS, expectedNonce: 'n' as never }),
    ).toThrow(TypeError);
    expect(() => marshalTpmtSignature({ kind: 'rsa' } as never)).toThrow(TypeError);
  });
});
