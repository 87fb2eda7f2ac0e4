/**
 * TPMT_PUBLIC / TPM2B_PUBLIC (TPM 2.0 Part 2 §12.2): the public area of a TPM object, parsed
 * and marshalled. Marshalling is exact (parse then marshal gives the input bytes back), which
 * object names (object-name.ts) and MakeCredential depend on.
 *
 * Supported types: RSA and ECC keys (what EKs and AKs are), KEYEDHASH (sealed data, HMAC
 * keys) and SYMCIPHER. The parser checks structure only — sizes, the union selectors and
 * the algorithm identifiers allowed in each field — and trusts nothing else: whether a key
 * is a valid AK or EK is for ak-attributes.ts and make-credential.ts.
 */
import { TPM_ALG, TPM_LIMITS } from './constants.js';
import { algText, tpmHashByAlg } from './hash.js';
import { parseWhole, type TpmReader } from './reader.js';
import { marshalWith, type TpmWriter } from './writer.js';

/** TPMT_SYM_DEF_OBJECT (Part 2 §11.1.7): `keyBits` and `mode` are absent when NULL. */
export interface SymDefObject {
  /** AES, SM4, CAMELLIA or NULL. */
  readonly algorithm: number;
  readonly keyBits?: number;
  /** TPMI_ALG_SYM_MODE: CFB for storage keys such as EKs. */
  readonly mode?: number;
}

/**
 * An asymmetric scheme (TPMT_RSA_SCHEME / TPMT_ECC_SCHEME, Part 2 §11.2): `hashAlg` is
 * present for every scheme but NULL and RSAES; `count` only for ECDAA.
 */
export interface AsymScheme {
  readonly scheme: number;
  readonly hashAlg?: number;
  readonly count?: number;
}

/** TPMT_KDF_SCHEME (Part 2 §11.2.3.3): `hashAlg` absent when NULL. */
export interface KdfScheme {
  readonly scheme: number;
  readonly hashAlg?: number;
}

/** TPMT_KEYEDHASH_SCHEME (Part 2 §11.1.23): HMAC has `hashAlg`, XOR `hashAlg` and `kdf`. */
export interface KeyedHashScheme {
  readonly scheme: number;
  readonly hashAlg?: number;
  readonly kdf?: number;
}

/** TPMS_RSA_PARMS (Part 2 §12.2.3.5). */
export interface RsaParms {
  readonly symmetric: SymDefObject;
  readonly scheme: AsymScheme;
  readonly keyBits: number;
  /** The public exponent; 0 means the default 65537. */
  readonly exponent: number;
}

/** TPMS_ECC_PARMS (Part 2 §12.2.3.6). */
export interface EccParms {
  readonly symmetric: SymDefObject;
  readonly scheme: AsymScheme;
  /** TPM_ECC_CURVE. */
  readonly curveId: number;
  readonly kdf: KdfScheme;
}

/** TPMS_ECC_POINT (Part 2 §11.2.5.2): coordinates as marshalled (big-endian). */
export interface EccPoint {
  readonly x: Uint8Array;
  readonly y: Uint8Array;
}

interface PublicCommon {
  /** The hash of the object's name (TPMI_ALG_HASH+; NULL only for objects without a name). */
  readonly nameAlg: number;
  /** TPMA_OBJECT bits (constants.ts TPMA_OBJECT). */
  readonly objectAttributes: number;
  /** The policy digest (TPM2B_DIGEST contents; empty when none). */
  readonly authPolicy: Uint8Array;
}

/** An RSA public area; `unique` is the modulus. */
export interface RsaPublic extends PublicCommon {
  readonly type: typeof TPM_ALG.RSA;
  readonly parameters: RsaParms;
  readonly unique: Uint8Array;
}

/** An ECC public area; `unique` is the public point. */
export interface EccPublic extends PublicCommon {
  readonly type: typeof TPM_ALG.ECC;
  readonly parameters: EccParms;
  readonly unique: EccPoint;
}

/** A KEYEDHASH public area; `unique` is the digest binding the sensitive data. */
export interface KeyedHashPublic extends PublicCommon {
  readonly type: typeof TPM_ALG.KEYEDHASH;
  readonly parameters: { readonly scheme: KeyedHashScheme };
  readonly unique: Uint8Array;
}

/** A SYMCIPHER public area; `unique` is the digest binding the key. */
export interface SymCipherPublic extends PublicCommon {
  readonly type: typeof TPM_ALG.SYMCIPHER;
  readonly parameters: { readonly symmetric: SymDefObject };
  readonly unique: Uint8Array;
}

/** TPMT_PUBLIC, discriminated by `type`. Byte fields are views into the parsed input. */
export type TpmtPublic = RsaPublic | EccPublic | KeyedHashPublic | SymCipherPublic;

const SYM_OBJECT = new Set<number>([TPM_ALG.AES, TPM_ALG.SM4, TPM_ALG.CAMELLIA]);
const SYM_MODES = new Set<number>([
  TPM_ALG.CTR,
  TPM_ALG.OFB,
  TPM_ALG.CBC,
  TPM_ALG.CFB,
  TPM_ALG.ECB,
  TPM_ALG.NULL,
]);
const RSA_HASH_SCHEMES = new Set<number>([TPM_ALG.RSASSA, TPM_ALG.RSAPSS, TPM_ALG.OAEP]);
const ECC_HASH_SCHEMES = new Set<number>([
  TPM_ALG.ECDSA,
  TPM_ALG.SM2,
  TPM_ALG.ECSCHNORR,
  TPM_ALG.ECDH,
  TPM_ALG.ECMQV,
]);
const KDFS = new Set<number>([
  TPM_ALG.MGF1,
  TPM_ALG.KDF1_SP800_56A,
  TPM_ALG.KDF2,
  TPM_ALG.KDF1_SP800_108,
]);

function readHash(r: TpmReader, field: string): number {
  const alg = r.u16(field);
  if (tpmHashByAlg(alg) === undefined) r.fail(field, `${algText(alg)} is not a hash algorithm`);
  return alg;
}

function readNameAlg(r: TpmReader): number {
  const alg = r.u16('nameAlg');
  if (alg !== TPM_ALG.NULL && tpmHashByAlg(alg) === undefined) {
    r.fail('nameAlg', `${algText(alg)} is not a hash algorithm`);
  }
  return alg;
}

function readSymDef(r: TpmReader): SymDefObject {
  return r.scope('symmetric', () => {
    const algorithm = r.u16('algorithm');
    if (algorithm === TPM_ALG.NULL) return { algorithm };
    if (!SYM_OBJECT.has(algorithm)) {
      r.fail('algorithm', `${algText(algorithm)} is not a symmetric object algorithm`);
    }
    const keyBits = r.u16('keyBits');
    const mode = r.u16('mode');
    if (!SYM_MODES.has(mode)) r.fail('mode', `${algText(mode)} is not a symmetric mode`);
    return { algorithm, keyBits, mode };
  });
}

function readRsaScheme(r: TpmReader): AsymScheme {
  return r.scope('scheme', () => {
    const scheme = r.u16('scheme');
    if (scheme === TPM_ALG.NULL || scheme === TPM_ALG.RSAES) return { scheme };
    if (!RSA_HASH_SCHEMES.has(scheme)) r.fail('scheme', `${algText(scheme)} is not an RSA scheme`);
    return { scheme, hashAlg: readHash(r, 'hashAlg') };
  });
}

function readEccScheme(r: TpmReader): AsymScheme {
  return r.scope('scheme', () => {
    const scheme = r.u16('scheme');
    if (scheme === TPM_ALG.NULL) return { scheme };
    if (scheme === TPM_ALG.ECDAA) {
      return { scheme, hashAlg: readHash(r, 'hashAlg'), count: r.u16('count') };
    }
    if (!ECC_HASH_SCHEMES.has(scheme)) r.fail('scheme', `${algText(scheme)} is not an ECC scheme`);
    return { scheme, hashAlg: readHash(r, 'hashAlg') };
  });
}

function readKdf(r: TpmReader): KdfScheme {
  return r.scope('kdf', () => {
    const scheme = r.u16('scheme');
    if (scheme === TPM_ALG.NULL) return { scheme };
    if (!KDFS.has(scheme)) r.fail('scheme', `${algText(scheme)} is not a key derivation scheme`);
    return { scheme, hashAlg: readHash(r, 'hashAlg') };
  });
}

function readKeyedHashScheme(r: TpmReader): KeyedHashScheme {
  return r.scope('scheme', () => {
    const scheme = r.u16('scheme');
    if (scheme === TPM_ALG.NULL) return { scheme };
    if (scheme === TPM_ALG.HMAC) return { scheme, hashAlg: readHash(r, 'hashAlg') };
    if (scheme === TPM_ALG.XOR) {
      const hashAlg = readHash(r, 'hashAlg');
      const kdf = r.u16('kdf');
      if (!KDFS.has(kdf)) r.fail('kdf', `${algText(kdf)} is not a key derivation scheme`);
      return { scheme, hashAlg, kdf };
    }
    return r.fail('scheme', `${algText(scheme)} is not a keyed-hash scheme`);
  });
}

/** Reads a TPMT_PUBLIC at the reader's position (for use inside larger structures). */
export function readTpmtPublic(r: TpmReader): TpmtPublic {
  const type = r.u16('type');
  const nameAlg = readNameAlg(r);
  const objectAttributes = r.u32('objectAttributes');
  const authPolicy = r.tpm2b('authPolicy', TPM_LIMITS.digest);
  const common = { nameAlg, objectAttributes, authPolicy };
  switch (type) {
    case TPM_ALG.RSA: {
      const parameters = r.scope('parameters', () => {
        const symmetric = readSymDef(r);
        const scheme = readRsaScheme(r);
        const keyBits = r.u16('keyBits');
        const exponent = r.u32('exponent');
        return { symmetric, scheme, keyBits, exponent };
      });
      const unique = r.tpm2b('unique', TPM_LIMITS.rsaKey);
      return { type: TPM_ALG.RSA, ...common, parameters, unique };
    }
    case TPM_ALG.ECC: {
      const parameters = r.scope('parameters', () => {
        const symmetric = readSymDef(r);
        const scheme = readEccScheme(r);
        const curveId = r.u16('curveID');
        const kdf = readKdf(r);
        return { symmetric, scheme, curveId, kdf };
      });
      const unique = r.scope('unique', () => ({
        x: r.tpm2b('x', TPM_LIMITS.eccKey),
        y: r.tpm2b('y', TPM_LIMITS.eccKey),
      }));
      return { type: TPM_ALG.ECC, ...common, parameters, unique };
    }
    case TPM_ALG.KEYEDHASH: {
      const scheme = r.scope('parameters', () => readKeyedHashScheme(r));
      const unique = r.tpm2b('unique', TPM_LIMITS.digest);
      return { type: TPM_ALG.KEYEDHASH, ...common, parameters: { scheme }, unique };
    }
    case TPM_ALG.SYMCIPHER: {
      const symmetric = r.scope('parameters', () => readSymDef(r));
      const unique = r.tpm2b('unique', TPM_LIMITS.digest);
      return { type: TPM_ALG.SYMCIPHER, ...common, parameters: { symmetric }, unique };
    }
    default:
      return r.fail('type', `${algText(type)} is not a public object type`);
  }
}

/**
 * Parses a marshalled TPMT_PUBLIC (no size prefix — tpm2-tools' `-f tpmt`, go-attestation's
 * AK `Public`), refusing trailing bytes.
 *
 * Trusts nothing; checks structure only (see the module comment).
 *
 * @throws SpireEdgeError `ERR_TPM_PARSE` naming the field.
 */
export function parseTpmtPublic(bytes: Uint8Array): TpmtPublic {
  return parseWhole(bytes, 'TPMT_PUBLIC', readTpmtPublic);
}

/** Reads a TPM2B_PUBLIC at the reader's position. */
export function readTpm2bPublic(r: TpmReader, field = 'publicArea'): TpmtPublic {
  return r.sized(field, TPM_LIMITS.public, readTpmtPublic);
}

/**
 * Parses a marshalled TPM2B_PUBLIC (UINT16 size || TPMT_PUBLIC — what TPM2_CreatePrimary
 * returns and tpm2-tools writes with `-u` in its default `tss` format), refusing trailing
 * bytes and a size that does not match the inner structure.
 *
 * @throws SpireEdgeError `ERR_TPM_PARSE` naming the field.
 */
export function parseTpm2bPublic(bytes: Uint8Array): TpmtPublic {
  return parseWhole(bytes, 'TPM2B_PUBLIC', (r) => readTpm2bPublic(r));
}

function writeSymDef(w: TpmWriter, s: SymDefObject): void {
  w.u16(s.algorithm, 'symmetric.algorithm');
  if (s.algorithm === TPM_ALG.NULL) return;
  if (s.keyBits === undefined || s.mode === undefined) {
    throw new TypeError('symmetric.keyBits and symmetric.mode are required unless NULL');
  }
  w.u16(s.keyBits, 'symmetric.keyBits').u16(s.mode, 'symmetric.mode');
}

function writeAsymScheme(w: TpmWriter, s: AsymScheme): void {
  w.u16(s.scheme, 'scheme.scheme');
  if (s.scheme === TPM_ALG.NULL || s.scheme === TPM_ALG.RSAES) return;
  if (s.hashAlg === undefined) throw new TypeError(`scheme ${algText(s.scheme)} needs hashAlg`);
  w.u16(s.hashAlg, 'scheme.hashAlg');
  if (s.scheme === TPM_ALG.ECDAA) w.u16(s.count ?? 0, 'scheme.count');
}

/** Writes a TPMT_PUBLIC (for use inside larger structures). */
export function writeTpmtPublic(w: TpmWriter, p: TpmtPublic): void {
  w.u16(p.type, 'type')
    .u16(p.nameAlg, 'nameAlg')
    .u32(p.objectAttributes >>> 0, 'objectAttributes')
    .tpm2b(p.authPolicy, TPM_LIMITS.digest, 'authPolicy');
  switch (p.type) {
    case TPM_ALG.RSA:
      writeSymDef(w, p.parameters.symmetric);
      writeAsymScheme(w, p.parameters.scheme);
      w.u16(p.parameters.keyBits, 'keyBits').u32(p.parameters.exponent, 'exponent');
      w.tpm2b(p.unique, TPM_LIMITS.rsaKey, 'unique');
      return;
    case TPM_ALG.ECC: {
      writeSymDef(w, p.parameters.symmetric);
      writeAsymScheme(w, p.parameters.scheme);
      w.u16(p.parameters.curveId, 'curveID');
      const kdf = p.parameters.kdf;
      w.u16(kdf.scheme, 'kdf.scheme');
      if (kdf.scheme !== TPM_ALG.NULL) {
        if (kdf.hashAlg === undefined) throw new TypeError('kdf.hashAlg is required unless NULL');
        w.u16(kdf.hashAlg, 'kdf.hashAlg');
      }
      w.tpm2b(p.unique.x, TPM_LIMITS.eccKey, 'unique.x');
      w.tpm2b(p.unique.y, TPM_LIMITS.eccKey, 'unique.y');
      return;
    }
    case TPM_ALG.KEYEDHASH: {
      const s = p.parameters.scheme;
      w.u16(s.scheme, 'scheme.scheme');
      if (s.scheme !== TPM_ALG.NULL) {
        if (s.hashAlg === undefined) throw new TypeError('scheme.hashAlg is required unless NULL');
        w.u16(s.hashAlg, 'scheme.hashAlg');
        if (s.scheme === TPM_ALG.XOR) {
          if (s.kdf === undefined) throw new TypeError('scheme.kdf is required for XOR');
          w.u16(s.kdf, 'scheme.kdf');
        }
      }
      w.tpm2b(p.unique, TPM_LIMITS.digest, 'unique');
      return;
    }
    case TPM_ALG.SYMCIPHER:
      writeSymDef(w, p.parameters.symmetric);
      w.tpm2b(p.unique, TPM_LIMITS.digest, 'unique');
      return;
    default:
      throw new TypeError(`unsupported public area type ${(p as { type: number }).type}`);
  }
}

/** Marshals a TPMT_PUBLIC (no size prefix): the bytes an object's name hashes. */
export function marshalTpmtPublic(p: TpmtPublic): Uint8Array {
  return marshalWith((w) => writeTpmtPublic(w, p), 640);
}

/** Marshals a TPM2B_PUBLIC (UINT16 size || TPMT_PUBLIC). */
export function marshalTpm2bPublic(p: TpmtPublic): Uint8Array {
  return marshalWith((w) => w.sized((x) => writeTpmtPublic(x, p), TPM_LIMITS.public), 640);
}
