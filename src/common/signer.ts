/**
 * The one signing abstraction shared by SVID minting (src/spiffe), the CA manager and the
 * KeyManagers (memory, disk, pkcs11). Key material never crosses this interface: only
 * public keys and signatures.
 */
import type { KeyObject } from 'node:crypto';

/** Key types, named as SPIRE's `ca_key_type` / `jwt_key_type` values. */
export type KeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-4096';

export const KEY_TYPES: readonly KeyType[] = ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-4096'];

/** The hash a key type signs with: SHA-384 for P-384, SHA-256 otherwise. */
export function hashForKeyType(t: KeyType): 'sha256' | 'sha384' {
  return t === 'ec-p384' ? 'sha384' : 'sha256';
}

/** The JOSE algorithm a key type signs JWTs with (ES256, ES384 or RS256, as SPIRE does). */
export function jwsAlgForKeyType(t: KeyType): 'ES256' | 'ES384' | 'RS256' {
  return t === 'ec-p256' ? 'ES256' : t === 'ec-p384' ? 'ES384' : 'RS256';
}

/**
 * A private key that can sign, wherever it lives (process memory, disk, an HSM).
 *
 * `sign` hashes `data` with {@link hashForKeyType} and signs it: ECDSA signatures are
 * IEEE P1363 (`r || s`, each left-padded to the curve size), RSA signatures are
 * RSASSA-PKCS1-v1_5. Callers convert to DER where X.509 needs it.
 */
export interface Signer {
  readonly keyType: KeyType;
  /** The public key. */
  readonly publicKey: KeyObject;
  /** The public key as SubjectPublicKeyInfo DER. */
  readonly publicKeySpki: Uint8Array;
  /** Signs `data` (hashing it first). */
  sign(data: Uint8Array): Promise<Uint8Array>;
  /** A synchronous fast path, present only when the key is in this process's memory. */
  signSync?(data: Uint8Array): Uint8Array;
}
