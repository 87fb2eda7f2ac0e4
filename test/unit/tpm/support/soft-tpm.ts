/**
 * A software stand-in for a TPM, for unit tests and benchmarks: builds AK and EK public
 * areas around node:crypto keys, signs quotes as a TPM would (TPMS_ATTEST + TPMT_SIGNATURE)
 * and undoes MakeCredential as TPM2_ActivateCredential does (Part 1 §24). Written from the
 * specification, independently of src/tpm's MakeCredential code paths where it matters (the
 * OAEP decryption is node:crypto's, the ECDH is node:crypto's).
 */
import {
  constants,
  createDecipheriv,
  createECDH,
  createHmac,
  generateKeyPairSync,
  type KeyObject,
  privateDecrypt,
  sign,
} from 'node:crypto';
import {
  type EccPublic,
  kdfa,
  kdfe,
  marshalTpmsAttest,
  marshalTpmtSignature,
  type PcrBank,
  type PcrSelection,
  parseTpm2bEncryptedSecret,
  parseTpm2bIdObject,
  type RsaPublic,
  TPM_ALG,
  TPM_ECC,
  TPM_GENERATED_VALUE,
  TPM_ST,
  TPMA_OBJECT,
  TpmReader,
  type TpmtPublic,
  type TpmtSignature,
  tpmHashByAlg,
  tpmHashByBank,
} from '../../../../src/tpm/index.js';
import { computePcrDigest } from '../../../../src/tpm/pcr-digest.js';

/** TPMA_OBJECT of tpm2_createak's AK: fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, restricted, sign. */
export const AK_ATTRIBUTES =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.userWithAuth |
  TPMA_OBJECT.restricted |
  TPMA_OBJECT.signEncrypt;

/** TPMA_OBJECT of the TCG default EK templates (0x000300b2). */
export const EK_ATTRIBUTES =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.adminWithPolicy |
  TPMA_OBJECT.restricted |
  TPMA_OBJECT.decrypt;

/** The EK templates' policy: PolicySecret(TPM_RH_ENDORSEMENT) (TCG EK Credential Profile). */
export const EK_POLICY = Buffer.from(
  '837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa',
  'hex',
);

const CURVE_BY_ID = {
  [TPM_ECC.NIST_P256]: { node: 'prime256v1', size: 32 },
  [TPM_ECC.NIST_P384]: { node: 'secp384r1', size: 48 },
  [TPM_ECC.NIST_P521]: { node: 'secp521r1', size: 66 },
} as Record<number, { node: string; size: number }>;

function b64u(s: string | undefined): Buffer {
  return Buffer.from(s ?? '', 'base64url');
}

function pad(b: Buffer, size: number): Buffer {
  return b.length >= size ? b : Buffer.concat([Buffer.alloc(size - b.length), b]);
}

/** A key pair with its TPM public area. */
export interface SoftKey<P extends TpmtPublic = TpmtPublic> {
  readonly public: P;
  readonly privateKey: KeyObject;
}

/** Wraps an RSA key in a public area. */
export function rsaPublicOf(
  key: KeyObject,
  fields: Partial<Omit<RsaPublic, 'type' | 'unique' | 'parameters'>> & {
    parameters?: Partial<RsaPublic['parameters']>;
  },
): RsaPublic {
  const jwk = key.export({ format: 'jwk' });
  const n = b64u(jwk.n);
  const e = b64u(jwk.e).readUIntBE(0, b64u(jwk.e).length);
  return {
    type: TPM_ALG.RSA,
    nameAlg: fields.nameAlg ?? TPM_ALG.SHA256,
    objectAttributes: fields.objectAttributes ?? AK_ATTRIBUTES,
    authPolicy: fields.authPolicy ?? new Uint8Array(0),
    parameters: {
      symmetric: { algorithm: TPM_ALG.NULL },
      scheme: { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 },
      keyBits: n.length * 8,
      exponent: e === 65537 ? 0 : e,
      ...fields.parameters,
    },
    unique: new Uint8Array(n),
  };
}

/** Wraps an EC key in a public area. */
export function eccPublicOf(
  key: KeyObject,
  fields: Partial<Omit<EccPublic, 'type' | 'unique' | 'parameters'>> & {
    parameters?: Partial<EccPublic['parameters']>;
  },
): EccPublic {
  const jwk = key.export({ format: 'jwk' });
  const curveId =
    jwk.crv === 'P-256'
      ? TPM_ECC.NIST_P256
      : jwk.crv === 'P-384'
        ? TPM_ECC.NIST_P384
        : TPM_ECC.NIST_P521;
  const size = CURVE_BY_ID[curveId]!.size;
  return {
    type: TPM_ALG.ECC,
    nameAlg: fields.nameAlg ?? TPM_ALG.SHA256,
    objectAttributes: fields.objectAttributes ?? AK_ATTRIBUTES,
    authPolicy: fields.authPolicy ?? new Uint8Array(0),
    parameters: {
      symmetric: { algorithm: TPM_ALG.NULL },
      scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 },
      curveId,
      kdf: { scheme: TPM_ALG.NULL },
      ...fields.parameters,
    },
    unique: {
      x: new Uint8Array(pad(b64u(jwk.x), size)),
      y: new Uint8Array(pad(b64u(jwk.y), size)),
    },
  };
}

/** An AK like tpm2_createak makes: ECC P-256/ECDSA-SHA256 by default, or RSA-2048/RSASSA. */
export function makeAk(
  kind: 'ecc' | 'rsa' | 'rsapss' = 'ecc',
  options: { hash?: PcrBank; curve?: 'P-256' | 'P-384' | 'P-521'; attributes?: number } = {},
): SoftKey {
  const hashAlg = tpmHashByBank(options.hash ?? 'sha256')!.alg;
  if (kind === 'ecc') {
    const { privateKey, publicKey } = generateKeyPairSync('ec', {
      namedCurve: options.curve ?? 'P-256',
    });
    return {
      privateKey,
      public: eccPublicOf(publicKey, {
        objectAttributes: options.attributes ?? AK_ATTRIBUTES,
        parameters: { scheme: { scheme: TPM_ALG.ECDSA, hashAlg } },
      }),
    };
  }
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privateKey,
    public: rsaPublicOf(publicKey, {
      objectAttributes: options.attributes ?? AK_ATTRIBUTES,
      parameters: { scheme: { scheme: kind === 'rsa' ? TPM_ALG.RSASSA : TPM_ALG.RSAPSS, hashAlg } },
    }),
  };
}

/** An EK from the TCG default templates (RSA-2048 or ECC P-256, AES-128-CFB, SHA-256). */
export function makeEk(kind: 'rsa' | 'ecc' = 'rsa', curve: 'P-256' | 'P-384' = 'P-256'): SoftKey {
  const common = {
    objectAttributes: EK_ATTRIBUTES,
    authPolicy: new Uint8Array(EK_POLICY),
  };
  const symmetric = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB };
  if (kind === 'rsa') {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    return {
      privateKey,
      public: rsaPublicOf(publicKey, {
        ...common,
        parameters: { symmetric, scheme: { scheme: TPM_ALG.NULL } },
      }),
    };
  }
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
  return {
    privateKey,
    public: eccPublicOf(publicKey, {
      ...common,
      parameters: { symmetric, scheme: { scheme: TPM_ALG.NULL }, kdf: { scheme: TPM_ALG.NULL } },
    }),
  };
}

/** Signs `message` with an AK as the TPM would, returning the TPMT_SIGNATURE. */
export function tpmSign(ak: SoftKey, message: Uint8Array): TpmtSignature {
  const pub = ak.public;
  if (pub.type === TPM_ALG.RSA) {
    const hashAlg = pub.parameters.scheme.hashAlg!;
    const h = tpmHashByAlg(hashAlg)!;
    const pss = pub.parameters.scheme.scheme === TPM_ALG.RSAPSS;
    const sig = sign(
      h.node,
      message,
      pss
        ? { key: ak.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: h.size }
        : ak.privateKey,
    );
    return {
      kind: 'rsa',
      sigAlg: pss ? TPM_ALG.RSAPSS : TPM_ALG.RSASSA,
      hash: hashAlg,
      sig: new Uint8Array(sig),
    };
  }
  if (pub.type !== TPM_ALG.ECC) throw new Error('not a signing key');
  const hashAlg = pub.parameters.scheme.hashAlg!;
  const size = CURVE_BY_ID[pub.parameters.curveId]!.size;
  const sig = sign(tpmHashByAlg(hashAlg)!.node, message, {
    key: ak.privateKey,
    dsaEncoding: 'ieee-p1363',
  });
  return {
    kind: 'ecc',
    sigAlg: TPM_ALG.ECDSA,
    hash: hashAlg,
    r: new Uint8Array(sig.subarray(0, size)),
    s: new Uint8Array(sig.subarray(size)),
  };
}

/** PCR values of one bank as the verifier takes them. */
export function pcrMap(
  bank: PcrBank,
  values: Record<number, Uint8Array>,
): Map<PcrBank, Map<number, Uint8Array>> {
  return new Map([[bank, new Map(Object.entries(values).map(([k, v]) => [Number(k), v]))]]);
}

/** Options of {@link softQuote}. */
export interface SoftQuoteOptions {
  readonly nonce: Uint8Array;
  readonly selection: readonly PcrSelection[];
  readonly pcrs: ReadonlyMap<PcrBank, ReadonlyMap<number, Uint8Array>>;
  readonly magic?: number;
  readonly type?: number;
  readonly clock?: bigint;
  readonly resetCount?: number;
  readonly restartCount?: number;
  readonly safe?: boolean;
  readonly firmwareVersion?: bigint;
  /** Overrides the PCR digest the quote claims. */
  readonly pcrDigest?: Uint8Array;
}

/** TPM2_Quote in software: the TPMS_ATTEST bytes and the TPMT_SIGNATURE bytes. */
export function softQuote(
  ak: SoftKey,
  o: SoftQuoteOptions,
): { quoted: Uint8Array; signature: Uint8Array } {
  const pub = ak.public as RsaPublic | EccPublic;
  const h = tpmHashByAlg(pub.parameters.scheme.hashAlg!)!;
  const quoted = marshalTpmsAttest({
    magic: o.magic ?? TPM_GENERATED_VALUE,
    type: o.type ?? TPM_ST.ATTEST_QUOTE,
    qualifiedSigner: Uint8Array.of(0x00, 0x0b, ...new Uint8Array(32).fill(7)),
    extraData: o.nonce,
    clockInfo: {
      clock: o.clock ?? 123456n,
      resetCount: o.resetCount ?? 3,
      restartCount: o.restartCount ?? 0,
      safe: o.safe ?? true,
    },
    firmwareVersion: o.firmwareVersion ?? 0x2000_0001_0000_0000n,
    attested: {
      kind: 'quote',
      pcrSelect: o.selection,
      pcrDigest: o.pcrDigest ?? computePcrDigest(o.selection, o.pcrs, h),
    },
  });
  return { quoted, signature: marshalTpmtSignature(tpmSign(ak, quoted)) };
}

/**
 * TPM2_ActivateCredential in software: recovers the credential from the marshalled
 * TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET with the EK private key, checking the HMAC
 * against `objectName`. Throws when the integrity check fails.
 */
export function softActivateCredential(
  ek: SoftKey,
  objectName: Uint8Array,
  idObject: Uint8Array,
  encryptedSecret: Uint8Array,
): Uint8Array {
  const pub = ek.public as RsaPublic | EccPublic;
  const h = tpmHashByAlg(pub.nameAlg)!;
  const secret = parseTpm2bEncryptedSecret(encryptedSecret);
  let seed: Uint8Array;
  if (pub.type === TPM_ALG.RSA) {
    seed = privateDecrypt(
      {
        key: ek.privateKey,
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: h.node,
        oaepLabel: Buffer.from('IDENTITY\0'),
      },
      secret,
    );
  } else {
    const r = new TpmReader(secret, 'TPMS_ECC_POINT');
    const x = r.tpm2b('x', 80);
    const y = r.tpm2b('y', 80);
    r.end();
    const curve = CURVE_BY_ID[pub.parameters.curveId]!;
    const ecdh = createECDH(curve.node);
    ecdh.setPrivateKey(b64u(ek.privateKey.export({ format: 'jwk' }).d));
    const z = ecdh.computeSecret(
      Buffer.concat([
        Buffer.of(4),
        pad(Buffer.from(x), curve.size),
        pad(Buffer.from(y), curve.size),
      ]),
    );
    seed = kdfe(h, z, 'IDENTITY', x, pub.unique.x, h.size * 8);
  }
  const id = parseTpm2bIdObject(idObject);
  const hmacKey = kdfa(h, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), h.size * 8);
  const expected = createHmac(h.node, hmacKey).update(id.encIdentity).update(objectName).digest();
  if (!expected.equals(id.integrityHmac))
    throw new Error('integrity check failed (TPM_RC_INTEGRITY)');
  const bits = pub.parameters.symmetric.keyBits!;
  const symKey = kdfa(h, seed, 'STORAGE', objectName, new Uint8Array(0), bits);
  const d = createDecipheriv(`aes-${bits}-cfb`, symKey, Buffer.alloc(16));
  const plain = Buffer.concat([d.update(id.encIdentity), d.final()]);
  const size = plain.readUInt16BE(0);
  if (size + 2 !== plain.length) throw new Error('credential size mismatch (TPM_RC_SIZE)');
  return new Uint8Array(plain.subarray(2));
}
