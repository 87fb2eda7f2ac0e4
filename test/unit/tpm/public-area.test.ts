import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  marshalTpm2bPublic,
  marshalTpmtPublic,
  objectName,
  parseTpm2bPublic,
  parseTpmsAttest,
  parseTpmtPublic,
  pubHash,
  publicKeyFromTpmtPublic,
  spkiFromTpmtPublic,
  TPM_ALG,
  TPM_ECC,
  type TpmtPublic,
} from '../../../src/tpm/index.js';
import { loadGcpCapture } from './support/gcp-capture.js';
import { eccPublicOf, makeAk, makeEk, rsaPublicOf } from './support/soft-tpm.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const fromHex = (s: string): Uint8Array =>
  new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return `${(e as { code?: string }).code}: ${(e as Error).message}`;
  }
  throw new Error('expected an error');
}

describe('TPMT_PUBLIC: the real Google Cloud vTPM AK (Windows PCP)', () => {
  const capture = loadGcpCapture();
  const ak = parseTpmtPublic(capture.akPublic);

  it('parses every field', () => {
    expect(ak.type).toBe(TPM_ALG.RSA);
    if (ak.type !== TPM_ALG.RSA) return;
    expect(ak.nameAlg).toBe(TPM_ALG.SHA256);
    expect(ak.objectAttributes).toBe(0x00050472);
    expect(ak.authPolicy).toHaveLength(32);
    expect(ak.parameters).toEqual({
      symmetric: { algorithm: TPM_ALG.NULL },
      scheme: { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA1 },
      keyBits: 2048,
      exponent: 0,
    });
    expect(ak.unique).toHaveLength(256);
  });

  it('marshals back to the same bytes, bare and as TPM2B_PUBLIC', () => {
    expect(hex(marshalTpmtPublic(ak))).toBe(hex(capture.akPublic));
    const twoB = marshalTpm2bPublic(ak);
    expect(twoB.length).toBe(capture.akPublic.length + 2);
    expect((twoB[0]! << 8) | twoB[1]!).toBe(capture.akPublic.length);
    expect(hex(marshalTpmtPublic(parseTpm2bPublic(twoB)))).toBe(hex(capture.akPublic));
  });

  it('has the name the TPM itself reported in its certify-creation attestation', () => {
    const attest = parseTpmsAttest(capture.createAttestation);
    if (attest.attested.kind !== 'creation') throw new Error('expected a creation attestation');
    expect(hex(objectName(ak))).toBe(hex(attest.attested.objectName));
    expect(hex(objectName(ak)).slice(0, 4)).toBe('000b');
  });

  it('gives an SPKI that OpenSSL imports and re-exports byte for byte, and pub_hash over it', () => {
    const spki = spkiFromTpmtPublic(ak);
    const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    expect(hex(key.export({ format: 'der', type: 'spki' }))).toBe(hex(spki));
    expect(pubHash(ak)).toBe(createHash('sha256').update(spki).digest('hex'));
    expect(pubHash(publicKeyFromTpmtPublic(ak))).toBe(pubHash(ak));
    const jwk = publicKeyFromTpmtPublic(ak).export({ format: 'jwk' });
    expect(jwk.e).toBe('AQAB');
    expect(
      Buffer.from(jwk.n!, 'base64url').equals(Buffer.from((ak as { unique: Uint8Array }).unique)),
    ).toBe(true);
  });
});

describe('TPMT_PUBLIC: hand-built keys', () => {
  it.each([
    ['ECC P-256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey, 'ecc'],
    ['ECC P-384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey, 'ecc'],
    ['ECC P-521', () => generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey, 'ecc'],
    ['RSA-2048', () => generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey, 'rsa'],
    [
      'RSA-2048 e=3',
      () => generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 }).publicKey,
      'rsa',
    ],
  ] as const)('%s: round-trips and its SPKI equals the original key', (_, gen, kind) => {
    const key = gen();
    const pub: TpmtPublic = kind === 'ecc' ? eccPublicOf(key, {}) : rsaPublicOf(key, {});
    const bytes = marshalTpmtPublic(pub);
    const back = parseTpmtPublic(bytes);
    expect(back).toEqual(pub);
    expect(hex(marshalTpmtPublic(back))).toBe(hex(bytes));
    expect(hex(spkiFromTpmtPublic(back))).toBe(hex(key.export({ format: 'der', type: 'spki' })));
    expect(pubHash(back)).toBe(pubHash(key));
  });

  it('marshals an RSA EK exactly as the TCG template lays it out', () => {
    const ek = makeEk('rsa').public;
    const b = marshalTpmtPublic(ek);
    // type RSA, nameAlg SHA256, attributes 0x000300b2, 32-byte policy, AES-128-CFB, NULL scheme,
    // 2048 bits, exponent 0, 256-byte unique.
    expect(hex(b.subarray(0, 8))).toBe('0001000b000300b2');
    expect(hex(b.subarray(8, 10))).toBe('0020');
    expect(hex(b.subarray(42, 56))).toBe('00060080004300100800' + '00000000');
    expect(hex(b.subarray(56, 58))).toBe('0100');
    expect(b.length).toBe(58 + 256);
  });

  it('parses KEYEDHASH (sealed data) and SYMCIPHER public areas and round-trips them', () => {
    const sealed = fromHex(`0008 000b 00000012 0000 0010 0020 ${'ab'.repeat(32)}`);
    const s = parseTpmtPublic(sealed);
    expect(s).toMatchObject({
      type: TPM_ALG.KEYEDHASH,
      parameters: { scheme: { scheme: TPM_ALG.NULL } },
    });
    expect(hex(marshalTpmtPublic(s))).toBe(hex(sealed));
    const hmac = fromHex(`0008 000b 00040072 0000 0005 000b 0020 ${'01'.repeat(32)}`);
    expect(parseTpmtPublic(hmac)).toMatchObject({
      parameters: { scheme: { scheme: TPM_ALG.HMAC, hashAlg: TPM_ALG.SHA256 } },
    });
    const xor = fromHex(`0008 000b 00000000 0000 000a 000b 0022 0000`);
    expect(parseTpmtPublic(xor)).toMatchObject({
      parameters: {
        scheme: { scheme: TPM_ALG.XOR, hashAlg: TPM_ALG.SHA256, kdf: TPM_ALG.KDF1_SP800_108 },
      },
    });
    expect(hex(marshalTpmtPublic(parseTpmtPublic(xor)))).toBe(hex(xor));
    const sym = fromHex(`0025 000b 00030072 0000 0006 0100 0043 0020 ${'02'.repeat(32)}`);
    expect(parseTpmtPublic(sym)).toMatchObject({
      type: TPM_ALG.SYMCIPHER,
      parameters: { symmetric: { algorithm: TPM_ALG.AES, keyBits: 256, mode: TPM_ALG.CFB } },
    });
    expect(hex(marshalTpmtPublic(parseTpmtPublic(sym)))).toBe(hex(sym));
    expect(codeOf(() => spkiFromTpmtPublic(s))).toMatch(
      /^ERR_TPM_UNSUPPORTED: TPMT_PUBLIC.type: 0x0008/,
    );
  });

  it('parses ECDAA schemes (with count) and KDFs', () => {
    const ak = makeAk('ecc').public as Extract<TpmtPublic, { type: 0x0023 }>;
    const withDaa = {
      ...ak,
      parameters: {
        ...ak.parameters,
        scheme: { scheme: TPM_ALG.ECDAA, hashAlg: TPM_ALG.SHA256, count: 7 },
        kdf: { scheme: TPM_ALG.KDF1_SP800_56A, hashAlg: TPM_ALG.SHA256 },
      },
    };
    const b = marshalTpmtPublic(withDaa);
    expect(parseTpmtPublic(b)).toEqual(withDaa);
  });
});

describe('TPMT_PUBLIC: malformed input', () => {
  const good = marshalTpmtPublic(makeAk('ecc').public);
  const with_ = (at: number, bytes: number[]): Uint8Array => {
    const b = new Uint8Array(good);
    b.set(bytes, at);
    return b;
  };

  it('names the broken field', () => {
    expect(codeOf(() => parseTpmtPublic(with_(0, [0x00, 0x99])))).toBe(
      'ERR_TPM_PARSE: TPMT_PUBLIC.type: 0x0099 is not a public object type',
    );
    expect(codeOf(() => parseTpmtPublic(with_(2, [0x00, 0x06])))).toBe(
      'ERR_TPM_PARSE: TPMT_PUBLIC.nameAlg: 0x0006 (aes) is not a hash algorithm',
    );
    expect(codeOf(() => parseTpmtPublic(with_(10, [0x00, 0x0b])))).toBe(
      'ERR_TPM_PARSE: TPMT_PUBLIC.parameters.symmetric.algorithm: 0x000b (sha256) is not a symmetric object algorithm',
    );
    expect(codeOf(() => parseTpmtPublic(with_(12, [0x00, 0x14])))).toBe(
      'ERR_TPM_PARSE: TPMT_PUBLIC.parameters.scheme.scheme: 0x0014 (rsassa) is not an ECC scheme',
    );
    expect(codeOf(() => parseTpmtPublic(with_(14, [0x00, 0x10])))).toBe(
      'ERR_TPM_PARSE: TPMT_PUBLIC.parameters.scheme.hashAlg: 0x0010 (null) is not a hash algorithm',
    );
    expect(codeOf(() => parseTpmtPublic(with_(8, [0x00, 0x41])))).toBe(
      'ERR_TPM_PARSE: TPMT_PUBLIC.authPolicy: size 65 exceeds the maximum 64',
    );
    expect(codeOf(() => parseTpmtPublic(good.subarray(0, good.length - 1)))).toBe(
      'ERR_TPM_PARSE: TPMT_PUBLIC.unique.y: size 32 exceeds the remaining 31 bytes',
    );
    expect(codeOf(() => parseTpmtPublic(Uint8Array.of(...good, 0)))).toBe(
      'ERR_TPM_PARSE: TPMT_PUBLIC: 1 unexpected trailing byte after the structure',
    );
    expect(codeOf(() => parseTpmtPublic(new Uint8Array(0)))).toBe(
      'ERR_TPM_PARSE: TPMT_PUBLIC.type: needs 2 bytes but only 0 remain',
    );
  });

  it('checks the TPM2B_PUBLIC size against the inner structure', () => {
    const twoB = marshalTpm2bPublic(makeAk('ecc').public);
    const longer = Uint8Array.of(0, twoB[1]! + 1, ...twoB.subarray(2), 0);
    expect(codeOf(() => parseTpm2bPublic(longer))).toBe(
      'ERR_TPM_PARSE: TPM2B_PUBLIC.publicArea: 1 unexpected trailing byte after the structure',
    );
    expect(codeOf(() => parseTpm2bPublic(Uint8Array.of(0x02, 0x5f)))).toBe(
      'ERR_TPM_PARSE: TPM2B_PUBLIC.publicArea: size 607 exceeds the maximum 606',
    );
    expect(codeOf(() => parseTpm2bPublic(Uint8Array.of(0, 0)))).toBe(
      'ERR_TPM_PARSE: TPM2B_PUBLIC.publicArea: size 0: the structure is missing',
    );
  });

  it('refuses public keys that are not keys', () => {
    const ecc = makeAk('ecc').public as Extract<TpmtPublic, { type: 0x0023 }>;
    const bn = { ...ecc, parameters: { ...ecc.parameters, curveId: TPM_ECC.BN_P256 } };
    expect(codeOf(() => publicKeyFromTpmtPublic(bn))).toMatch(
      /^ERR_TPM_UNSUPPORTED: .*curveID: curve 0x0010/,
    );
    const offCurve = { ...ecc, unique: { x: ecc.unique.x, y: new Uint8Array(32).fill(1) } };
    expect(codeOf(() => publicKeyFromTpmtPublic(offCurve))).toMatch(
      /^ERR_TPM_PARSE: TPMT_PUBLIC.unique: not a valid public key/,
    );
    const rsa = makeAk('rsa').public as Extract<TpmtPublic, { type: 0x0001 }>;
    const short = { ...rsa, unique: rsa.unique.subarray(1) };
    expect(codeOf(() => spkiFromTpmtPublic(short))).toBe(
      'ERR_TPM_PARSE: TPMT_PUBLIC.unique: RSA modulus of 255 bytes does not match keyBits 2048',
    );
    const even = { ...rsa, parameters: { ...rsa.parameters, exponent: 4 } };
    expect(codeOf(() => spkiFromTpmtPublic(even))).toMatch(
      /^ERR_TPM_PARSE: .*exponent: 4 is not a valid RSA exponent/,
    );
    expect(codeOf(() => objectName({ ...rsa, nameAlg: TPM_ALG.NULL }))).toMatch(
      /^ERR_TPM_UNSUPPORTED: nameAlg 0x0010/,
    );
  });
});
