/**
 * Key objects on a PKCS#11 token: generation templates, finding objects, reading public
 * keys, and the signing mechanisms, for the key types of src/common/signer.ts.
 *
 * Keys are generated with CKA_TOKEN (they outlive the session), CKA_PRIVATE, CKA_SENSITIVE,
 * not CKA_EXTRACTABLE, and only CKA_SIGN among the private-key usages; the public half is
 * a public token object with the same label and CKA_ID, so the public key can be read
 * again after a restart (an EC private key does not expose its point).
 *
 * Signing hashes in software and asks the token for the raw operation (SoftHSM 2.6 has no
 * CKM_ECDSA_SHA256): CKM_ECDSA over the digest (result r || s, already IEEE P1363) and
 * CKM_RSA_PKCS over the DER DigestInfo (RSASSA-PKCS1-v1_5, RFC 8017 §9.2).
 */
import { createPublicKey, type KeyObject, hash as oneShotHash, verify } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { bitString, oid, seq } from '../../common/der.js';
import { SpireEdgeError } from '../../common/errors.js';
import { hashForKeyType, type KeyType } from '../../common/signer.js';
import type { Pkcs11Api } from './module.js';

/** Named-curve OIDs as DER, the value of CKA_EC_PARAMS. */
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');
const P384_PARAMS = Buffer.from('06052b81040022', 'hex');
const EC_PUBLIC_KEY_OID = oid('1.2.840.10045.2.1');

/** DER DigestInfo prefixes (RFC 8017 §9.2 note 1). */
const DIGEST_INFO: Readonly<Record<'sha256' | 'sha384', Buffer>> = {
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
};

/** Signature length in bytes of a key type (P1363 for ECDSA). */
export function signatureLength(keyType: KeyType): number {
  switch (keyType) {
    case 'ec-p256':
      return 64;
    case 'ec-p384':
      return 96;
    case 'rsa-2048':
      return 256;
    case 'rsa-4096':
      return 512;
  }
}

/** The token mechanism a key type signs with. */
export function signMechanism(keyType: KeyType): pkcs11js.Mechanism {
  return { mechanism: keyType.startsWith('ec-') ? pkcs11js.CKM_ECDSA : pkcs11js.CKM_RSA_PKCS };
}

const ECDSA: pkcs11js.Mechanism = { mechanism: pkcs11js.CKM_ECDSA };
const RSA_PKCS: pkcs11js.Mechanism = { mechanism: pkcs11js.CKM_RSA_PKCS };

/** What the token signs for `data`: the digest (ECDSA) or the DigestInfo (RSA). */
export function signInput(keyType: KeyType, data: Uint8Array): Buffer {
  const hash = hashForKeyType(keyType);
  const digest = oneShotHash(hash, data, 'buffer');
  return keyType.startsWith('ec-') ? digest : Buffer.concat([DIGEST_INFO[hash], digest]);
}

/**
 * One signature on a session: C_SignInit then C_Sign, asynchronously (in a libuv worker) or
 * synchronously. The session must not be used by anything else meanwhile.
 */
export function signOnSession(
  p11: Pkcs11Api,
  session: Buffer,
  key: Buffer,
  keyType: KeyType,
  input: Buffer,
  sync = false,
): Buffer | Promise<Buffer> {
  p11.C_SignInit(session, keyType.startsWith('ec-') ? ECDSA : RSA_PKCS, key);
  const out = Buffer.allocUnsafe(signatureLength(keyType));
  return sync ? p11.C_Sign(session, input, out) : p11.C_SignAsync(session, input, out);
}

/** The attributes every generated key shares. */
function commonTemplates(
  label: string,
  id: Buffer,
): { pub: pkcs11js.Template; priv: pkcs11js.Template } {
  return {
    pub: [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_PRIVATE, value: false },
      { type: pkcs11js.CKA_LABEL, value: label },
      { type: pkcs11js.CKA_ID, value: id },
      { type: pkcs11js.CKA_VERIFY, value: true },
      { type: pkcs11js.CKA_ENCRYPT, value: false },
      { type: pkcs11js.CKA_WRAP, value: false },
    ],
    priv: [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      { type: pkcs11js.CKA_LABEL, value: label },
      { type: pkcs11js.CKA_ID, value: id },
      { type: pkcs11js.CKA_SIGN, value: true },
      { type: pkcs11js.CKA_DECRYPT, value: false },
      { type: pkcs11js.CKA_UNWRAP, value: false },
      { type: pkcs11js.CKA_DERIVE, value: false },
    ],
  };
}

/** Mechanism and templates for C_GenerateKeyPair of `keyType` under `label` / `id`. */
export function keyPairTemplates(
  keyType: KeyType,
  label: string,
  id: Buffer,
): { mechanism: pkcs11js.Mechanism; pub: pkcs11js.Template; priv: pkcs11js.Template } {
  const { pub, priv } = commonTemplates(label, id);
  if (keyType === 'ec-p256' || keyType === 'ec-p384') {
    pub.push({
      type: pkcs11js.CKA_EC_PARAMS,
      value: keyType === 'ec-p256' ? P256_PARAMS : P384_PARAMS,
    });
    return { mechanism: { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN }, pub, priv };
  }
  pub.push(
    { type: pkcs11js.CKA_MODULUS_BITS, value: keyType === 'rsa-2048' ? 2048 : 4096 },
    { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
  );
  return { mechanism: { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN }, pub, priv };
}

/** All objects matching `template` (C_FindObjectsInit / C_FindObjects / C_FindObjectsFinal). */
export function findObjects(
  p11: Pkcs11Api,
  session: Buffer,
  template: pkcs11js.Template,
): Buffer[] {
  p11.C_FindObjectsInit(session, template);
  try {
    const out: Buffer[] = [];
    for (;;) {
      const batch = p11.C_FindObjects(session, 64);
      out.push(...batch);
      if (batch.length < 64) return out;
    }
  } finally {
    p11.C_FindObjectsFinal(session);
  }
}

/** A key pair found on the token. */
export interface TokenKeyPair {
  readonly label: string;
  readonly ckaId: Buffer;
  readonly privateHandle: Buffer;
  /** The public key object, when the token holds one. */
  readonly publicHandle: Buffer | undefined;
  readonly keyType: KeyType;
  readonly publicKey: KeyObject;
  readonly spki: Uint8Array;
}

function corrupt(label: string, rule: string): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_KEY_MANAGER_STORE_CORRUPT',
    `pkcs11 key object ${JSON.stringify(label)}: ${rule}`,
    { details: { label } },
  );
}

/** The EC point from CKA_EC_POINT: DER OCTET STRING around 04||X||Y, or (some tokens) bare. */
function ecPoint(value: Buffer, size: number, label: string): Buffer {
  const bare = 1 + 2 * size;
  if (value.length === bare && value[0] === 0x04) return value;
  // OCTET STRING, short (< 128) or one-byte long form.
  if (value[0] === 0x04) {
    let off = 2;
    let len = value[1]!;
    if (len === 0x81) {
      len = value[2]!;
      off = 3;
    }
    if (len === bare && value.length === off + len && value[off] === 0x04) {
      return value.subarray(off);
    }
  }
  throw corrupt(label, 'CKA_EC_POINT is not an uncompressed point of the key curve');
}

function attr(
  p11: Pkcs11Api,
  session: Buffer,
  handle: Buffer,
  types: number[],
): Map<number, Buffer> {
  const res = p11.C_GetAttributeValue(
    session,
    handle,
    types.map((type) => ({ type })),
  );
  const m = new Map<number, Buffer>();
  for (const a of res) {
    if (Buffer.isBuffer(a.value)) m.set(a.type, a.value);
  }
  return m;
}

function ulong(b: Buffer | undefined): number | undefined {
  if (b === undefined) return undefined;
  if (b.length === 8) return Number(b.readBigUInt64LE(0));
  if (b.length === 4) return b.readUInt32LE(0);
  return undefined;
}

/**
 * Reads the key pair whose private key object is `privateHandle`: its label, CKA_ID, key
 * type and public key (from the public key object with the same label and class
 * CKO_PUBLIC_KEY for EC; from the private key's modulus and exponent for RSA).
 *
 * @throws SpireEdgeError `ERR_KEY_MANAGER_STORE_CORRUPT` when the objects do not make a
 *   usable key of a supported type; `ERR_HSM_CKR`-mappable pkcs11js errors pass through.
 */
export function readKeyPair(
  p11: Pkcs11Api,
  session: Buffer,
  privateHandle: Buffer,
  publicHandles?: readonly Buffer[],
): TokenKeyPair {
  const a = attr(p11, session, privateHandle, [
    pkcs11js.CKA_LABEL,
    pkcs11js.CKA_ID,
    pkcs11js.CKA_KEY_TYPE,
  ]);
  const label = (a.get(pkcs11js.CKA_LABEL) ?? Buffer.alloc(0)).toString('utf8');
  const ckaId = a.get(pkcs11js.CKA_ID) ?? Buffer.alloc(0);
  const kt = ulong(a.get(pkcs11js.CKA_KEY_TYPE));
  const pubs =
    publicHandles ??
    findObjects(p11, session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
      { type: pkcs11js.CKA_LABEL, value: label },
    ]);
  if (kt === pkcs11js.CKK_EC) {
    if (pubs.length !== 1) {
      throw corrupt(
        label,
        `needs exactly one public key object with the same label to read the EC public key (found ${pubs.length})`,
      );
    }
    const p = attr(p11, session, pubs[0]!, [pkcs11js.CKA_EC_PARAMS, pkcs11js.CKA_EC_POINT]);
    const params = p.get(pkcs11js.CKA_EC_PARAMS);
    let keyType: KeyType;
    let size: number;
    if (params?.equals(P256_PARAMS)) {
      keyType = 'ec-p256';
      size = 32;
    } else if (params?.equals(P384_PARAMS)) {
      keyType = 'ec-p384';
      size = 48;
    } else {
      throw corrupt(label, 'EC key on a curve other than P-256 or P-384');
    }
    const point = ecPoint(p.get(pkcs11js.CKA_EC_POINT) ?? Buffer.alloc(0), size, label);
    const spki = seq(seq(EC_PUBLIC_KEY_OID, params), bitString(point));
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    } catch {
      throw corrupt(label, 'the EC public key is not a valid point');
    }
    return { label, ckaId, privateHandle, publicHandle: pubs[0], keyType, publicKey, spki };
  }
  if (kt === pkcs11js.CKK_RSA) {
    const r = attr(p11, session, privateHandle, [
      pkcs11js.CKA_MODULUS,
      pkcs11js.CKA_PUBLIC_EXPONENT,
    ]);
    let n = r.get(pkcs11js.CKA_MODULUS);
    const e = r.get(pkcs11js.CKA_PUBLIC_EXPONENT);
    if (n === undefined || e === undefined) throw corrupt(label, 'RSA key without modulus');
    while (n.length > 0 && n[0] === 0) n = n.subarray(1);
    const bits = n.length * 8 - Math.clz32(n[0] ?? 0) + 24;
    const keyType: KeyType | undefined =
      bits === 2048 ? 'rsa-2048' : bits === 4096 ? 'rsa-4096' : undefined;
    if (keyType === undefined)
      throw corrupt(label, `RSA key of ${bits} bits (2048 or 4096 supported)`);
    const publicKey = createPublicKey({
      key: { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') },
      format: 'jwk',
    });
    const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
    return { label, ckaId, privateHandle, publicHandle: pubs[0], keyType, publicKey, spki };
  }
  throw corrupt(label, 'not an EC or RSA key');
}

const PROBE = Buffer.from('spire-edge pkcs11 key probe');

/**
 * Signs a probe with the private key and verifies it with the public key read from the
 * token: catches a public key object that does not belong to the private key.
 *
 * @throws SpireEdgeError `ERR_KEY_MANAGER_STORE_CORRUPT` when the signature does not verify.
 */
export function probeKeyPair(p11: Pkcs11Api, session: Buffer, pair: TokenKeyPair): void {
  const sig = signOnSession(
    p11,
    session,
    pair.privateHandle,
    pair.keyType,
    signInput(pair.keyType, PROBE),
    true,
  ) as Buffer;
  const ok = pair.keyType.startsWith('ec-')
    ? verify(
        hashForKeyType(pair.keyType),
        PROBE,
        { key: pair.publicKey, dsaEncoding: 'ieee-p1363' },
        sig,
      )
    : verify(hashForKeyType(pair.keyType), PROBE, pair.publicKey, sig);
  if (!ok) throw corrupt(pair.label, 'the public key object does not match the private key');
}

/** Destroys objects, ignoring those already gone. */
export function destroyObjects(p11: Pkcs11Api, session: Buffer, handles: readonly Buffer[]): void {
  for (const h of handles) {
    try {
      p11.C_DestroyObject(session, h);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code !== 0x82) throw err; // CKR_OBJECT_HANDLE_INVALID: already gone
    }
  }
}
