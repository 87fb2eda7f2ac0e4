/**
 * TPM2_MakeCredential done in software (TPM 2.0 Part 1 §24 "Credential Protection", Part 3
 * §12.6): encrypts a small secret so that only the TPM holding the EK can recover it, and
 * only by naming the object (the AK) it was made for, with TPM2_ActivateCredential. The
 * server uses it to bind an AK to an EK it trusts.
 *
 * 1. A seed of nameAlg-digest size is protected to the EK: RSA — RSAES-OAEP with the EK's
 *    nameAlg as hash and the label "IDENTITY\0" (Part 1 Annex B.10.3); ECC — an ephemeral
 *    ECDH key on the EK's curve, seed = KDFe(nameAlg, Z, "IDENTITY", ephemeral.x, EK.x)
 *    and the ephemeral point is the encrypted secret (Part 1 Annex C.6.4).
 * 2. symKey = KDFa(nameAlg, seed, "STORAGE", name, ∅, EK symmetric keyBits);
 *    encIdentity = CFB(symKey, IV = 0, TPM2B_DIGEST credential) (Part 1 §24.4).
 * 3. hmacKey = KDFa(nameAlg, seed, "INTEGRITY", ∅, ∅, digest bits);
 *    integrityHMAC = HMAC(hmacKey, encIdentity || name) (Part 1 §24.5).
 *
 * All randomness (the seed, the OAEP seed, the ephemeral ECDH key) comes from the injected
 * {@link RandomSource}.
 */
import {
  constants,
  createCipheriv,
  createECDH,
  createHash,
  createHmac,
  publicEncrypt,
} from 'node:crypto';
import { cryptoRandom, type RandomSource } from '../common/random.js';
import { TPM_ALG, TPMA_OBJECT } from './constants.js';
import { marshalTpm2bEncryptedSecret, marshalTpm2bIdObject } from './credential.js';
import { recode, tpmError } from './errors.js';
import { algText, type TpmHash, tpmHashByAlg } from './hash.js';
import { asBuffer, leftPad } from './internal/bytes.js';
import { curveById, type TpmCurve } from './internal/curves.js';
import { kdfa, kdfe } from './kdf.js';
import type { EccPublic, RsaPublic, TpmtPublic } from './public-area.js';
import { publicKeyFromTpmtPublic } from './public-key.js';
import { marshalWith } from './writer.js';

/** Inputs of {@link makeCredential}. */
export interface MakeCredentialInput {
  /** The EK public area (a restricted decryption key: RSA or ECC, AES-CFB symmetric). */
  readonly ekPublic: TpmtPublic;
  /** The name of the object the credential is for (the AK's, computed by the caller). */
  readonly objectName: Uint8Array;
  /** The secret, 1 to nameAlg-digest-size bytes (TPM2_ActivateCredential returns it). */
  readonly credential: Uint8Array;
  /** Randomness (default: the system CSPRNG). */
  readonly random?: RandomSource;
}

/** The marshalled outputs, exactly as TPM2_ActivateCredential takes them. */
export interface MadeCredential {
  /** Marshalled TPM2B_ID_OBJECT (`credentialBlob`). */
  readonly idObject: Uint8Array;
  /** Marshalled TPM2B_ENCRYPTED_SECRET (`secret`). */
  readonly encryptedSecret: Uint8Array;
}

const IDENTITY_LABEL = new TextEncoder().encode('IDENTITY\0');

function fail(message: string, cause?: unknown): never {
  throw tpmError('ERR_TPM_CREDENTIAL', message, cause);
}

function mgf1(hash: TpmHash, seed: Uint8Array, len: number): Uint8Array {
  const out = new Uint8Array(len);
  const counter = new Uint8Array(4);
  for (let i = 0, at = 0; at < len; i++, at += hash.size) {
    new DataView(counter.buffer).setUint32(0, i);
    const block = createHash(hash.node).update(seed).update(counter).digest();
    out.set(block.subarray(0, Math.min(hash.size, len - at)), at);
  }
  return out;
}

/** RSAES-OAEP encryption (RFC 8017 §7.1.1) with the OAEP seed from `random`. */
function oaepEncrypt(ek: RsaPublic, hash: TpmHash, message: Uint8Array, random: RandomSource) {
  const k = ek.unique.length;
  const hLen = hash.size;
  if (message.length > k - 2 * hLen - 2)
    fail('the EK modulus is too small for OAEP with its nameAlg');
  const db = new Uint8Array(k - hLen - 1);
  db.set(createHash(hash.node).update(IDENTITY_LABEL).digest(), 0);
  db[db.length - message.length - 1] = 0x01;
  db.set(message, db.length - message.length);
  const seed = random.bytes(hLen);
  const dbMask = mgf1(hash, seed, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= dbMask[i]!;
  const seedMask = mgf1(hash, db, hLen);
  const em = new Uint8Array(k);
  for (let i = 0; i < hLen; i++) em[1 + i] = seed[i]! ^ seedMask[i]!;
  em.set(db, 1 + hLen);
  const key = publicKeyFromTpmtPublic(ek);
  return new Uint8Array(publicEncrypt({ key, padding: constants.RSA_NO_PADDING }, asBuffer(em)));
}

function randomScalar(curve: TpmCurve, random: RandomSource): Uint8Array {
  // size + 8 bytes reduced mod (n - 1), plus 1: bias below 2^-64 (FIPS 186-4 B.4.1).
  const extra = random.bytes(curve.size + 8);
  const v = (BigInt(`0x${asBuffer(extra).toString('hex')}`) % (curve.n - 1n)) + 1n;
  return Uint8Array.from(Buffer.from(v.toString(16).padStart(curve.size * 2, '0'), 'hex'));
}

function eccSeed(ek: EccPublic, hash: TpmHash, random: RandomSource) {
  const curve = curveById(ek.parameters.curveId);
  if (curve === undefined) {
    fail(`EK curve 0x${ek.parameters.curveId.toString(16).padStart(4, '0')} is not supported`);
  }
  const x = leftPad(ek.unique.x, curve.size);
  const y = leftPad(ek.unique.y, curve.size);
  if (x === undefined || y === undefined) fail(`EK point coordinates are longer than ${curve.jwk}`);
  const ekPoint = new Uint8Array(1 + 2 * curve.size);
  ekPoint[0] = 4;
  ekPoint.set(x, 1);
  ekPoint.set(y, 1 + curve.size);
  const ecdh = createECDH(curve.node);
  ecdh.setPrivateKey(asBuffer(randomScalar(curve, random)));
  let z: Buffer;
  try {
    z = ecdh.computeSecret(asBuffer(ekPoint));
  } catch (err) {
    fail('EK public point is not on its curve', err);
  }
  const eph = ecdh.getPublicKey();
  const ephX = eph.subarray(1, 1 + curve.size);
  const ephY = eph.subarray(1 + curve.size);
  const seed = kdfe(hash, z, 'IDENTITY', ephX, ek.unique.x, hash.size * 8);
  const secret = marshalWith((w) => w.tpm2b(ephX, curve.size, 'x').tpm2b(ephY, curve.size, 'y'));
  return { seed, secret };
}

function cipherName(ek: RsaPublic | EccPublic): string {
  const s = ek.parameters.symmetric;
  if (s.algorithm !== TPM_ALG.AES || s.mode !== TPM_ALG.CFB) {
    fail(
      `EK symmetric ${algText(s.algorithm)}${s.mode === undefined ? '' : ` mode ${algText(s.mode)}`} is not supported (AES-CFB is)`,
    );
  }
  if (s.keyBits !== 128 && s.keyBits !== 192 && s.keyBits !== 256) {
    fail(`EK symmetric key size ${s.keyBits} is not an AES key size`);
  }
  return `aes-${s.keyBits}-cfb`;
}

/**
 * Makes a credential for `objectName` protected to `ekPublic` (see the module comment).
 *
 * Trusts `ekPublic` to be the EK the caller has verified (EK certificate or enrollment) and
 * `objectName` to be the name the caller computed from the AK public area it will verify
 * quotes with. The caller must keep `credential` secret and compare the value the device
 * returns in constant time.
 *
 * @throws SpireEdgeError `ERR_TPM_CREDENTIAL` when the EK is not a restricted decryption
 *   key with an AES-CFB symmetric, its curve or hash is unsupported, the name is malformed or
 *   the credential is longer than the EK nameAlg's digest.
 */
export function makeCredential(input: MakeCredentialInput): MadeCredential {
  const { ekPublic: ek, objectName, credential } = input;
  const random = input.random ?? cryptoRandom;
  if (!(objectName instanceof Uint8Array)) throw new TypeError('objectName must be a Uint8Array');
  if (!(credential instanceof Uint8Array) || credential.length === 0) {
    throw new TypeError('credential must be a non-empty Uint8Array');
  }
  if (ek.type !== TPM_ALG.RSA && ek.type !== TPM_ALG.ECC) {
    fail(`EK type ${algText(ek.type)} is not RSA or ECC`);
  }
  const attrs = ek.objectAttributes;
  if ((attrs & TPMA_OBJECT.decrypt) === 0 || (attrs & TPMA_OBJECT.restricted) === 0) {
    fail('EK is not a restricted decryption key (restricted and decrypt must be set)');
  }
  if (attrs & TPMA_OBJECT.signEncrypt) fail('EK has the sign attribute set');
  const hash = tpmHashByAlg(ek.nameAlg);
  if (hash === undefined) fail(`EK nameAlg ${algText(ek.nameAlg)} is not a hash`);
  const nameHash =
    objectName.length >= 2 ? tpmHashByAlg((objectName[0]! << 8) | objectName[1]!) : undefined;
  if (nameHash === undefined || objectName.length !== 2 + nameHash.size) {
    fail('objectName is not nameAlg || digest of a known hash');
  }
  if (credential.length > hash.size) {
    fail(
      `credential of ${credential.length} bytes exceeds the EK nameAlg digest size ${hash.size}`,
    );
  }
  const cipher = cipherName(ek);
  const keyBits = ek.parameters.symmetric.keyBits!;

  let seed: Uint8Array;
  let secret: Uint8Array;
  try {
    if (ek.type === TPM_ALG.RSA) {
      seed = random.bytes(hash.size);
      secret = oaepEncrypt(ek, hash, seed, random);
    } else {
      ({ seed, secret } = eccSeed(ek, hash, random));
    }
  } catch (err) {
    throw recode(err, 'ERR_TPM_CREDENTIAL', 'cannot protect the seed to the EK', [
      'ERR_TPM_CREDENTIAL',
    ]);
  }

  const symKey = kdfa(hash, seed, 'STORAGE', objectName, new Uint8Array(0), keyBits);
  const plain = new Uint8Array(2 + credential.length);
  new DataView(plain.buffer).setUint16(0, credential.length);
  plain.set(credential, 2);
  const c = createCipheriv(cipher, symKey, Buffer.alloc(16));
  const encIdentity = new Uint8Array(Buffer.concat([c.update(plain), c.final()]));
  const hmacKey = kdfa(
    hash,
    seed,
    'INTEGRITY',
    new Uint8Array(0),
    new Uint8Array(0),
    hash.size * 8,
  );
  const integrityHmac = new Uint8Array(
    createHmac(hash.node, hmacKey).update(encIdentity).update(objectName).digest(),
  );
  return {
    idObject: marshalTpm2bIdObject({ integrityHmac, encIdentity }),
    encryptedSecret: marshalTpm2bEncryptedSecret(secret),
  };
}
