/**
 * The KeyManager: where the server keeps its CA and JWT signing keys (SPIRE's server
 * `KeyManager` plugin type, spire-plugin-sdk `spire.plugin.server.keymanager.v1`:
 * GenerateKey, GetPublicKey, GetPublicKeys, SignData). Implementations: `memory`
 * (src/hsm/memory.ts), `disk` (src/hsm/disk.ts) and `pkcs11`; all of them pass the one
 * contract suite in test/contract/key-manager.contract.ts.
 *
 * Key material never crosses this interface: callers get {@link ManagedKey} handles that
 * sign and expose only public keys.
 *
 * Errors (all `SpireEdgeError`):
 * - `ERR_KEY_MANAGER_CLOSED`: the key manager was closed.
 * - `ERR_KEY_MANAGER_KEY_NOT_FOUND`: signing with a handle whose key was deleted.
 * - `ERR_KEY_MANAGER_KEY_REPLACED`: signing with a handle whose key was replaced by a
 *   later `generateKey` with the same id (SPIRE's fingerprint check).
 * - `ERR_KEY_MANAGER_SIGN_FAILED`: the signing operation itself failed.
 * - `ERR_KEY_MANAGER_GENERATE_FAILED`: key generation failed.
 * - `ERR_KEY_MANAGER_STORE_CORRUPT`: a persisted store cannot be read back (never
 *   silently regenerated).
 * - `ERR_KEY_MANAGER_STORE_IO`: reading or writing a persisted store failed.
 * Bad arguments (a malformed key id, an unknown key type) throw `TypeError`.
 */
import { KEY_TYPES, type KeyType, type Signer } from '../common/signer.js';

/**
 * A key held by a {@link KeyManager}: a {@link Signer} plus its id and fingerprint.
 *
 * A handle stays bound to the key *instance* it was returned for: once that key is deleted
 * or replaced (a new `generateKey` with the same id), `sign` rejects with
 * `ERR_KEY_MANAGER_KEY_NOT_FOUND` / `ERR_KEY_MANAGER_KEY_REPLACED` instead of signing with
 * a key the caller did not expect (SPIRE compares fingerprints for the same reason).
 */
export interface ManagedKey extends Signer {
  /** The id the key was generated under, for example `x509-CA-A-1`. */
  readonly id: string;
  /**
   * Identifies this instance of the key: lower-case hex SHA-256 of `publicKeySpki`. A
   * replaced key has a different fingerprint under the same id.
   */
  readonly fingerprint: string;
}

/**
 * Generates, finds and deletes signing keys by id. Every method is asynchronous (an HSM
 * answers over PKCS#11 in a worker); implementations must allow concurrent calls.
 */
export interface KeyManager {
  /** The implementation's name as configured (`memory`, `disk`, `pkcs11`). */
  readonly name: string;
  /**
   * Generates a new key of `keyType` under `id`, replacing (and destroying) any key already
   * held under that id. Handles to the replaced key stop signing.
   *
   * @throws TypeError when `id` is not a valid key id ({@link assertKeyId}) or `keyType`
   *   is not one of {@link KEY_TYPES}.
   */
  generateKey(id: string, keyType: KeyType): Promise<ManagedKey>;
  /** The key held under `id`, or undefined when there is none. */
  getKey(id: string): Promise<ManagedKey | undefined>;
  /** Every key held, sorted by id. */
  listKeys(): Promise<ManagedKey[]>;
  /**
   * Deletes (destroys) the key under `id`. Resolves true when a key was deleted, false when
   * there was none. Handles to the deleted key stop signing.
   */
  deleteKey(id: string): Promise<boolean>;
  /**
   * Releases resources after in-flight writes finish. Later calls (and signing through
   * handles from this key manager) reject with `ERR_KEY_MANAGER_CLOSED`. Idempotent.
   */
  close(): Promise<void>;
}

/** The longest key id accepted (fits a PKCS#11 CKA_LABEL on every token we target). */
export const MAX_KEY_ID_LENGTH = 128;

const KEY_ID_RE = /^[A-Za-z0-9._-]+$/;

/**
 * Checks a key id: 1 to {@link MAX_KEY_ID_LENGTH} characters of `[A-Za-z0-9._-]`, which
 * covers SPIRE's ids (`x509-CA-A`, `JWT-Signer-B`, `agent-svid-…`) and is safe as a file
 * JSON key and a PKCS#11 label.
 *
 * @throws TypeError naming the rule that was broken.
 */
export function assertKeyId(id: unknown): asserts id is string {
  if (typeof id !== 'string') throw new TypeError('key id must be a string');
  if (id.length === 0) throw new TypeError('key id must not be empty');
  if (id.length > MAX_KEY_ID_LENGTH) {
    throw new TypeError(`key id must be at most ${MAX_KEY_ID_LENGTH} characters`);
  }
  if (!KEY_ID_RE.test(id)) {
    throw new TypeError(
      'key id characters are limited to letters, digits, dot, dash and underscore',
    );
  }
}

/**
 * Checks a key type against {@link KEY_TYPES}.
 *
 * @throws TypeError when it is not one of `ec-p256`, `ec-p384`, `rsa-2048`, `rsa-4096`.
 */
export function assertKeyType(keyType: unknown): asserts keyType is KeyType {
  if (typeof keyType !== 'string' || !(KEY_TYPES as readonly string[]).includes(keyType)) {
    throw new TypeError(`key type must be one of ${KEY_TYPES.join(', ')}`);
  }
}
