import { describe, expect, it } from 'vitest';
import {
  marshalTpmtSignature,
  parseTpmtPublic,
  parseTpmtSignature,
  TPM_ALG,
  type TpmtSignature,
  verifyTpmSignature,
} from '../../../src/tpm/index.js';
import { loadGcpCapture } from './support/gcp-capture.js';
import { makeAk, tpmSign } from './support/soft-tpm.js';

const fromHex = (s: string): Uint8Array =>
  new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return `${(e as { code?: string }).code}: ${(e as Error).message}`;
  }
  throw new Error('expected an error');
}

describe('TPMT_SIGNATURE', () => {
  it('parses the real RSASSA-SHA1 quote signature and round-trips it', () => {
    const c = loadGcpCapture();
    const s = parseTpmtSignature(c.signature);
    expect(s).toMatchObject({ kind: 'rsa', sigAlg: TPM_ALG.RSASSA, hash: TPM_ALG.SHA1 });
    if (s.kind !== 'rsa') return;
    expect(s.sig).toHaveLength(256);
    expect(Buffer.from(marshalTpmtSignature(s)).equals(Buffer.from(c.signature))).toBe(true);
    // And the certify-creation signature verifies with the AK (SHA-1 only when allowed).
    const ak = parseTpmtPublic(c.akPublic);
    const cs = parseTpmtSignature(c.createSignature);
    expect(verifyTpmSignature(ak, c.createAttestation, cs, { allowSha1: true })).toBe(true);
    expect(verifyTpmSignature(ak, c.createAttestation, cs)).toBe(false);
    expect(verifyTpmSignature(ak, c.quote, cs, { allowSha1: true })).toBe(false);
  });

  it.each([
    [
      'ECDSA',
      {
        kind: 'ecc',
        sigAlg: TPM_ALG.ECDSA,
        hash: TPM_ALG.SHA256,
        r: new Uint8Array(31).fill(1),
        s: new Uint8Array(32).fill(2),
      },
    ],
    [
      'SM2',
      {
        kind: 'ecc',
        sigAlg: TPM_ALG.SM2,
        hash: TPM_ALG.SM3_256,
        r: new Uint8Array(32),
        s: new Uint8Array(32),
      },
    ],
    [
      'RSAPSS',
      {
        kind: 'rsa',
        sigAlg: TPM_ALG.RSAPSS,
        hash: TPM_ALG.SHA384,
        sig: new Uint8Array(384).fill(5),
      },
    ],
    [
      'HMAC',
      {
        kind: 'hmac',
        sigAlg: TPM_ALG.HMAC,
        hash: TPM_ALG.SHA256,
        digest: new Uint8Array(32).fill(6),
      },
    ],
    ['NULL', { kind: 'null', sigAlg: TPM_ALG.NULL }],
  ] as const)('round-trips %s', (_, sig) => {
    expect(parseTpmtSignature(marshalTpmtSignature(sig as TpmtSignature))).toEqual(sig);
  });

  it('names the broken field', () => {
    expect(errorOf(() => parseTpmtSignature(fromHex('0099')))).toBe(
      'ERR_TPM_PARSE: TPMT_SIGNATURE.sigAlg: 0x0099 is not a signature scheme',
    );
    expect(errorOf(() => parseTpmtSignature(fromHex('0018 0006 0000 0000')))).toBe(
      'ERR_TPM_PARSE: TPMT_SIGNATURE.signature.hash: 0x0006 (aes) is not a hash algorithm',
    );
    expect(errorOf(() => parseTpmtSignature(fromHex('0018 000b 0051')))).toBe(
      'ERR_TPM_PARSE: TPMT_SIGNATURE.signature.signatureR: size 81 exceeds the maximum 80',
    );
    expect(errorOf(() => parseTpmtSignature(fromHex('0014 000b 0201')))).toBe(
      'ERR_TPM_PARSE: TPMT_SIGNATURE.signature.sig: size 513 exceeds the maximum 512',
    );
    expect(errorOf(() => parseTpmtSignature(fromHex('0005 000b 0102')))).toBe(
      'ERR_TPM_PARSE: TPMT_SIGNATURE.signature.digest: needs 32 bytes but only 2 remain',
    );
    expect(errorOf(() => parseTpmtSignature(fromHex('0010 00')))).toBe(
      'ERR_TPM_PARSE: TPMT_SIGNATURE: 1 unexpected trailing byte after the structure',
    );
  });

  it('verifies ECDSA with r and s shorter than the curve size, and refuses them longer', () => {
    const ak = makeAk('ecc');
    const msg = new TextEncoder().encode('message');
    for (let i = 0; i < 64; i++) {
      const s = tpmSign(ak, msg);
      if (s.kind !== 'ecc') throw new Error('ecc');
      expect(verifyTpmSignature(ak.public, msg, s)).toBe(true);
      const stripped = { ...s, r: s.r[0] === 0 ? s.r.subarray(1) : s.r };
      expect(verifyTpmSignature(ak.public, msg, stripped)).toBe(true);
      expect(verifyTpmSignature(ak.public, msg, { ...s, r: Uint8Array.of(1, ...s.r) })).toBe(false);
    }
  });

  it('refuses a signature whose scheme or hash differs from the key scheme', () => {
    const ak = makeAk('rsa');
    const msg = Uint8Array.of(1, 2, 3);
    const s = tpmSign(ak, msg);
    expect(verifyTpmSignature(ak.public, msg, s)).toBe(true);
    expect(
      verifyTpmSignature(ak.public, msg, { ...s, hash: TPM_ALG.SHA384 } as TpmtSignature),
    ).toBe(false);
    expect(
      verifyTpmSignature(ak.public, msg, { ...s, sigAlg: TPM_ALG.RSAPSS } as TpmtSignature),
    ).toBe(false);
    expect(verifyTpmSignature(ak.public, msg, { kind: 'null', sigAlg: TPM_ALG.NULL })).toBe(false);
    const pss = makeAk('rsapss');
    expect(verifyTpmSignature(pss.public, msg, tpmSign(pss, msg))).toBe(true);
  });
});
