import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../../src/common/random.js';
import {
  type EccPublic,
  makeCredential,
  marshalTpm2bEncryptedSecret,
  marshalTpm2bIdObject,
  objectName,
  parseTpm2bEncryptedSecret,
  parseTpm2bIdObject,
  type RsaPublic,
  TPM_ALG,
  TPMA_OBJECT,
} from '../../../src/tpm/index.js';
import { makeAk, makeEk, rsaPublicOf, softActivateCredential } from './support/soft-tpm.js';

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return `${(e as { code?: string }).code}: ${(e as Error).message}`;
  }
  throw new Error('expected an error');
}

const fromHex = (s: string): Uint8Array =>
  new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

describe('TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET', () => {
  it('round-trip and name broken fields', () => {
    const id = {
      integrityHmac: new Uint8Array(32).fill(1),
      encIdentity: new Uint8Array(34).fill(2),
    };
    const b = marshalTpm2bIdObject(id);
    expect(b).toHaveLength(2 + 2 + 32 + 34);
    expect(parseTpm2bIdObject(b)).toEqual(id);
    const s = new Uint8Array(256).fill(3);
    expect(parseTpm2bEncryptedSecret(marshalTpm2bEncryptedSecret(s))).toEqual(s);
    expect(errorOf(() => parseTpm2bIdObject(fromHex('0085')))).toBe(
      'ERR_TPM_PARSE: TPM2B_ID_OBJECT.credential: size 133 exceeds the maximum 132',
    );
    expect(errorOf(() => parseTpm2bIdObject(fromHex('0004 0002 abcd')))).toBe(
      'ERR_TPM_PARSE: TPM2B_ID_OBJECT.credential.encIdentity: shorter than its encrypted size field',
    );
    expect(errorOf(() => parseTpm2bIdObject(fromHex('0004 0041 abcd')))).toBe(
      'ERR_TPM_PARSE: TPM2B_ID_OBJECT.credential.integrityHMAC: size 65 exceeds the maximum 64',
    );
    expect(errorOf(() => parseTpm2bEncryptedSecret(fromHex('0201')))).toBe(
      'ERR_TPM_PARSE: TPM2B_ENCRYPTED_SECRET.secret: size 513 exceeds the maximum 512',
    );
  });
});

describe('makeCredential', () => {
  const secret = new Uint8Array(32).map((_, i) => i);

  it.each([
    ['RSA-2048 EK', () => makeEk('rsa')],
    ['ECC P-256 EK', () => makeEk('ecc', 'P-256')],
    ['ECC P-384 EK', () => makeEk('ecc', 'P-384')],
  ])('%s: ActivateCredential with the EK and the right name recovers the secret', (_, ekGen) => {
    const ek = ekGen();
    const akName = objectName(makeAk('ecc').public);
    const made = makeCredential({ ekPublic: ek.public, objectName: akName, credential: secret });
    expect(softActivateCredential(ek, akName, made.idObject, made.encryptedSecret)).toEqual(secret);
    const otherName = objectName(makeAk('ecc').public);
    expect(() =>
      softActivateCredential(ek, otherName, made.idObject, made.encryptedSecret),
    ).toThrow(/integrity/);
    const otherEk = ekGen();
    expect(() =>
      softActivateCredential(otherEk, akName, made.idObject, made.encryptedSecret),
    ).toThrow();
    // Output sizes: RSA seeds are a modulus long; ECC seeds are a point.
    const secretSize = parseTpm2bEncryptedSecret(made.encryptedSecret).length;
    const ekPub = ek.public as RsaPublic | EccPublic;
    expect(secretSize).toBe(ekPub.type === TPM_ALG.RSA ? 256 : 4 + 2 * ekPub.unique.x.length);
    expect(parseTpm2bIdObject(made.idObject).encIdentity).toHaveLength(2 + secret.length);
  });

  it('takes all its randomness from the injected source', () => {
    for (const kind of ['rsa', 'ecc'] as const) {
      const ek = makeEk(kind);
      const name = objectName(makeAk('rsa').public);
      const a = makeCredential({
        ekPublic: ek.public,
        objectName: name,
        credential: secret,
        random: seededRandom(7),
      });
      const b = makeCredential({
        ekPublic: ek.public,
        objectName: name,
        credential: secret,
        random: seededRandom(7),
      });
      const c = makeCredential({
        ekPublic: ek.public,
        objectName: name,
        credential: secret,
        random: seededRandom(8),
      });
      expect(a).toEqual(b);
      expect(a.encryptedSecret).not.toEqual(c.encryptedSecret);
      expect(softActivateCredential(ek, name, a.idObject, a.encryptedSecret)).toEqual(secret);
    }
  });

  it('refuses EKs that are not restricted decryption keys with AES-CFB, and bad names or secrets', () => {
    const ek = makeEk('rsa').public as RsaPublic;
    const name = objectName(makeAk('ecc').public);
    const mk = (e: RsaPublic | EccPublic, n = name, c = secret) =>
      errorOf(() => makeCredential({ ekPublic: e, objectName: n, credential: c }));
    expect(mk({ ...ek, objectAttributes: ek.objectAttributes & ~TPMA_OBJECT.restricted })).toBe(
      'ERR_TPM_CREDENTIAL: EK is not a restricted decryption key (restricted and decrypt must be set)',
    );
    expect(mk({ ...ek, objectAttributes: ek.objectAttributes | TPMA_OBJECT.signEncrypt })).toBe(
      'ERR_TPM_CREDENTIAL: EK has the sign attribute set',
    );
    expect(
      mk({
        ...ek,
        parameters: {
          ...ek.parameters,
          symmetric: { algorithm: TPM_ALG.CAMELLIA, keyBits: 128, mode: TPM_ALG.CFB },
        },
      }),
    ).toBe(
      'ERR_TPM_CREDENTIAL: EK symmetric 0x0026 (camellia) mode 0x0043 (cfb) is not supported (AES-CFB is)',
    );
    expect(
      mk({ ...ek, parameters: { ...ek.parameters, symmetric: { algorithm: TPM_ALG.NULL } } }),
    ).toMatch(/^ERR_TPM_CREDENTIAL: EK symmetric 0x0010 \(null\) is not supported/);
    expect(mk(ek, name.subarray(0, 20))).toBe(
      'ERR_TPM_CREDENTIAL: objectName is not nameAlg || digest of a known hash',
    );
    expect(mk(ek, name, new Uint8Array(33))).toBe(
      'ERR_TPM_CREDENTIAL: credential of 33 bytes exceeds the EK nameAlg digest size 32',
    );
    const ecc = makeEk('ecc').public as EccPublic;
    expect(mk({ ...ecc, unique: { x: ecc.unique.x, y: new Uint8Array(32).fill(9) } })).toMatch(
      /^ERR_TPM_CREDENTIAL: EK public point is not on its curve/,
    );
    expect(() =>
      makeCredential({ ekPublic: ek, objectName: name, credential: new Uint8Array(0) }),
    ).toThrow(TypeError);
    const smallRsa = rsaPublicOf(generateKeyPairSync('rsa', { modulusLength: 512 }).publicKey, {
      objectAttributes: ek.objectAttributes,
      parameters: ek.parameters,
    });
    expect(
      mk(
        {
          ...smallRsa,
          parameters: { ...smallRsa.parameters, keyBits: 512 },
          nameAlg: TPM_ALG.SHA512,
        },
        name,
        secret,
      ),
    ).toBe('ERR_TPM_CREDENTIAL: the EK modulus is too small for OAEP with its nameAlg');
  });
});
