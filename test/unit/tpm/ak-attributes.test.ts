import { describe, expect, it } from 'vitest';
import {
  checkAkAttributes,
  type EccPublic,
  parseTpmtPublic,
  type RsaPublic,
  TPM_ALG,
  TPM_ECC,
  TPMA_OBJECT,
} from '../../../src/tpm/index.js';
import { loadGcpCapture } from './support/gcp-capture.js';
import { makeAk, makeEk } from './support/soft-tpm.js';

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return `${(e as { code?: string }).code}: ${(e as Error).message}`;
  }
  throw new Error('expected an error');
}

describe('checkAkAttributes', () => {
  it('accepts the real Windows PCP AK and tpm2_createak-style AKs', () => {
    expect(() => checkAkAttributes(parseTpmtPublic(loadGcpCapture().akPublic))).not.toThrow();
    for (const kind of ['ecc', 'rsa', 'rsapss'] as const) {
      expect(() => checkAkAttributes(makeAk(kind).public)).not.toThrow();
    }
  });

  it('lists every missing or forbidden attribute', () => {
    const ak = makeAk('ecc').public as EccPublic;
    const without = (bit: number) => ({ ...ak, objectAttributes: ak.objectAttributes & ~bit });
    expect(errorOf(() => checkAkAttributes(without(TPMA_OBJECT.restricted)))).toBe(
      'ERR_TPM_AK_INVALID: AK objectAttributes 0x00040072: restricted is not set',
    );
    expect(errorOf(() => checkAkAttributes(without(TPMA_OBJECT.signEncrypt)))).toMatch(
      /: sign is not set$/,
    );
    expect(errorOf(() => checkAkAttributes(without(TPMA_OBJECT.fixedTPM)))).toMatch(
      /: fixedTPM is not set$/,
    );
    expect(errorOf(() => checkAkAttributes(without(TPMA_OBJECT.fixedParent)))).toMatch(
      /: fixedParent is not set$/,
    );
    expect(errorOf(() => checkAkAttributes(without(TPMA_OBJECT.sensitiveDataOrigin)))).toMatch(
      /: sensitiveDataOrigin is not set$/,
    );
    expect(
      errorOf(() =>
        checkAkAttributes({
          ...ak,
          objectAttributes:
            (ak.objectAttributes & ~(TPMA_OBJECT.restricted | TPMA_OBJECT.signEncrypt)) |
            TPMA_OBJECT.decrypt |
            1,
        }),
      ),
    ).toBe(
      'ERR_TPM_AK_INVALID: AK objectAttributes 0x00020073: restricted is not set, sign is not set, decrypt is set, reserved bits 0x1 are set',
    );
    // An EK (restricted decrypt storage key) is not an AK.
    expect(errorOf(() => checkAkAttributes(makeEk('rsa').public))).toMatch(
      /sign is not set, decrypt is set$/,
    );
  });

  it('checks the type, scheme, key size, curve, nameAlg and symmetric', () => {
    const ecc = makeAk('ecc').public as EccPublic;
    const rsa = makeAk('rsa').public as RsaPublic;
    expect(
      errorOf(() =>
        checkAkAttributes({
          ...ecc,
          parameters: { ...ecc.parameters, scheme: { scheme: TPM_ALG.NULL } },
        }),
      ),
    ).toBe('ERR_TPM_AK_INVALID: AK scheme 0x0010 (null) is not ECDSA');
    expect(
      errorOf(() =>
        checkAkAttributes({ ...ecc, parameters: { ...ecc.parameters, curveId: TPM_ECC.BN_P256 } }),
      ),
    ).toBe('ERR_TPM_AK_INVALID: AK curve 0x0010 is not NIST P-256, P-384 or P-521');
    expect(
      errorOf(() =>
        checkAkAttributes({
          ...rsa,
          parameters: { ...rsa.parameters, scheme: { scheme: TPM_ALG.RSAES } },
        }),
      ),
    ).toBe('ERR_TPM_AK_INVALID: AK scheme 0x0015 (rsaes) is not RSASSA or RSAPSS');
    expect(
      errorOf(() =>
        checkAkAttributes({ ...rsa, parameters: { ...rsa.parameters, keyBits: 1024 } }),
      ),
    ).toBe('ERR_TPM_AK_INVALID: AK RSA key of 1024 bits is below 2048');
    expect(errorOf(() => checkAkAttributes({ ...rsa, nameAlg: TPM_ALG.NULL }))).toBe(
      'ERR_TPM_AK_INVALID: AK nameAlg 0x0010 (null) is not a hash',
    );
    expect(
      errorOf(() =>
        checkAkAttributes({
          ...rsa,
          parameters: {
            ...rsa.parameters,
            symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB },
          },
        }),
      ),
    ).toMatch(/^ERR_TPM_AK_INVALID: AK has a symmetric algorithm/);
    expect(
      errorOf(() =>
        checkAkAttributes({
          type: TPM_ALG.KEYEDHASH,
          nameAlg: TPM_ALG.SHA256,
          objectAttributes: ecc.objectAttributes,
          authPolicy: new Uint8Array(0),
          parameters: { scheme: { scheme: TPM_ALG.HMAC, hashAlg: TPM_ALG.SHA256 } },
          unique: new Uint8Array(32),
        }),
      ),
    ).toBe('ERR_TPM_AK_INVALID: AK type 0x0008 (keyedhash) is not RSA or ECC');
  });
});
