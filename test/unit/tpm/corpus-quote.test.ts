/**
 * The real capture from a Google Cloud Shielded VM (Windows; AK RSA-2048 with RSASSA-SHA1,
 * all 24 SHA-1 PCRs, empty nonce): it verifies, and flipping any byte of the quote, of the
 * signature or of any quoted PCR value makes verification fail with a coded error.
 */
import { describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import { parseTpmtPublic, verifyQuote } from '../../../src/tpm/index.js';
import { capturePcrs, loadGcpCapture } from './support/gcp-capture.js';

const c = loadGcpCapture();
const akPublic = parseTpmtPublic(c.akPublic);
const base = {
  akPublic,
  quoted: c.quote,
  signature: c.signature,
  expectedNonce: c.nonce,
  allowSha1: true,
};

/** The coded error of one verification, or 'accepted'. */
function outcome(input: Parameters<typeof verifyQuote>[0]): string {
  try {
    verifyQuote(input);
    return 'accepted';
  } catch (e) {
    if (!isSpireEdgeError(e)) throw e;
    return e.code;
  }
}

const REJECTED = ['ERR_TPM_QUOTE_INVALID', 'ERR_TPM_PARSE'];

describe('the Google Cloud vTPM capture', () => {
  it('verifies with allowSha1 and reports the signed SHA-1 selection of all 24 PCRs', () => {
    const v = verifyQuote({ ...base, pcrs: capturePcrs(c) });
    expect(v.hash).toBe('sha1');
    expect([...v.pcrSelection]).toEqual([['sha1', [...Array(24).keys()]]]);
    expect(Buffer.from(v.pcrs.get('sha1')!.get(0)!).toString('hex')).toBe(
      '51c323de0c0c694f4601cdd02beb58ff13629f74',
    );
    expect(v.clockInfo.safe).toBe(true);
  });

  it('is refused without allowSha1', () => {
    expect(() => verifyQuote({ ...base, allowSha1: false, pcrs: capturePcrs(c) })).toThrow(
      expect.objectContaining({
        code: 'ERR_TPM_QUOTE_INVALID',
        message: expect.stringMatching(/SHA-1/),
      }),
    );
  });

  it('is refused with a non-empty nonce', () => {
    expect(outcome({ ...base, expectedNonce: Uint8Array.of(0), pcrs: capturePcrs(c) })).toBe(
      'ERR_TPM_QUOTE_INVALID',
    );
  });

  it('fails when any byte of the quote is flipped (every byte, two flips each)', () => {
    let n = 0;
    for (let i = 0; i < c.quote.length; i++) {
      for (const mask of [0x01, 0xff]) {
        const q = new Uint8Array(c.quote);
        q[i]! ^= mask;
        expect(REJECTED).toContain(outcome({ ...base, quoted: q, pcrs: capturePcrs(c) }));
        n++;
      }
    }
    expect(n).toBe(c.quote.length * 2);
  });

  it('fails when any byte of the signature is flipped (every byte, two flips each)', () => {
    for (let i = 0; i < c.signature.length; i++) {
      for (const mask of [0x01, 0x80]) {
        const s = new Uint8Array(c.signature);
        s[i]! ^= mask;
        expect(REJECTED).toContain(outcome({ ...base, signature: s, pcrs: capturePcrs(c) }));
      }
    }
  });

  it('fails when any byte of any quoted PCR value is flipped (24 × 20 bytes)', () => {
    const pcrs = capturePcrs(c);
    const bank = pcrs.get('sha1')!;
    let n = 0;
    for (const [index, value] of bank) {
      for (let i = 0; i < value.length; i++) {
        value[i]! ^= 0x01;
        expect(outcome({ ...base, pcrs })).toBe('ERR_TPM_QUOTE_INVALID');
        value[i]! ^= 0x01;
        n++;
      }
      expect(index).toBeGreaterThanOrEqual(0);
    }
    expect(n).toBe(24 * 20);
    expect(outcome({ ...base, pcrs })).toBe('accepted');
  });
});
