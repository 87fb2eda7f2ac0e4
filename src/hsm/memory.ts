/**
 * The `memory` KeyManager (SPIRE's `KeyManager "memory"`): keys live in this process only
 * and are lost on restart, so every start of a server that uses it mints a new CA.
 *
 * Also home of the software-key machinery the `disk` KeyManager and the disk
 * UpstreamAuthority share: {@link softwareSigner} and {@link keyTypeOfPrivateKey}. EC keys
 * sign through the native addon's batch signer when it has one (see
 * {@link createSoftwareSigner}); the key managers free its copy of a key as soon as the key
 * is deleted or replaced, or the manager closes.
 */
import {
  createHash,
  createPublicKey,
  sign as cryptoSign,
  generateKeyPair,
  type KeyObject,
} from 'node:crypto';
import { availableParallelism } from 'node:os';
import { describeError, SpireEdgeError } from '../common/errors.js';
import { hashForKeyType, type KeyType, type Signer } from '../common/signer.js';
import { loadNativeAddon, type NativeAddon, type NativeEcdsaSigningKey } from '../native/addon.js';
import { assertKeyId, assertKeyType, type KeyManager, type ManagedKey } from './key-manager.js';

/**
 * The key type of a private (or public) key, or undefined when it is none of the
 * supported types (EC P-256/P-384, RSA 2048/4096 with PKCS#1 v1.5; RSA-PSS keys are not).
 */
export function keyTypeOfPrivateKey(key: KeyObject): KeyType | undefined {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec') {
    if (d?.namedCurve === 'prime256v1' || d?.namedCurve === 'P-256') return 'ec-p256';
    if (d?.namedCurve === 'secp384r1' || d?.namedCurve === 'P-384') return 'ec-p384';
    return undefined;
  }
  if (key.asymmetricKeyType === 'rsa') {
    if (d?.modulusLength === 2048) return 'rsa-2048';
    if (d?.modulusLength === 4096) return 'rsa-4096';
  }
  return undefined;
}

function signOptions(keyType: KeyType, key: KeyObject) {
  return keyType.startsWith('ec-') ? { key, dsaEncoding: 'ieee-p1363' as const } : { key };
}

function signFailed(err: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_KEY_MANAGER_SIGN_FAILED',
    `signing failed: ${describeError(err)}`,
    {
      cause: err,
    },
  );
}

/**
 * A {@link Signer} over a private key held in this process: ECDSA signatures in IEEE P1363
 * form, RSA signatures RSASSA-PKCS1-v1_5, hashed with `hashForKeyType`. Used for keys that
 * are not managed by a KeyManager (the disk UpstreamAuthority's key).
 *
 * EC keys sign through the native addon's batch signer when it is built with it (see
 * {@link createSoftwareSigner}); its copy of the key is freed when the signer is collected.
 *
 * @throws TypeError when `privateKey` is not a private key of a supported type.
 */
export function softwareSigner(privateKey: KeyObject): Signer {
  return createSoftwareSigner(privateKey).signer;
}

/** A software {@link Signer} and the release of the native copy of its key. */
export interface SoftwareSignerHandle {
  readonly signer: Signer;
  /**
   * Frees the native addon's copy of the key (cleared by OpenSSL), if it made one. Signing
   * still works afterwards, through node:crypto. Idempotent.
   */
  dispose(): void;
}

/**
 * {@link softwareSigner} with an explicit release of the native copy of the key, for key
 * managers that know when a key is deleted or replaced.
 *
 * Signing path: P-256 and P-384 keys sign through the native addon (native/ecdsa-sign.cc)
 * when it has `ecdsaSignBatch`: the key is exported once as PKCS#8 DER into a buffer that is
 * zeroed as soon as the addon has imported it, and `sign` calls made in one turn of the
 * event loop (a BatchNewX509SVID's SVIDs) are signed together, a few per thread-pool task,
 * instead of one node:crypto job each. The signatures are the same kind (ECDSA, P1363,
 * fresh nonces). Should the addon be missing, refuse the key, or fail a batch, the calls
 * sign through node:crypto as before. RSA keys always sign through node:crypto.
 *
 * @throws TypeError when `privateKey` is not a private key of a supported type.
 */
export function createSoftwareSigner(privateKey: KeyObject): SoftwareSignerHandle {
  if (privateKey?.type !== 'private') throw new TypeError('softwareSigner needs a private key');
  const keyType = keyTypeOfPrivateKey(privateKey);
  if (keyType === undefined) {
    throw new TypeError('private key must be EC P-256/P-384 or RSA 2048/4096');
  }
  const publicKey = createPublicKey(privateKey);
  const hash = hashForKeyType(keyType);
  const opts = signOptions(keyType, privateKey);
  const nodeSign = (data: Uint8Array): Promise<Uint8Array> => signAsync(hash, data, opts);
  const native = nativeBatchSigner(privateKey, keyType, nodeSign);
  const signer: Signer = {
    keyType,
    publicKey,
    publicKeySpki: spkiOf(publicKey),
    sign: native === undefined ? nodeSign : native.sign,
    signSync: (data) => {
      try {
        return new Uint8Array(cryptoSign(hash, data, opts));
      } catch (err) {
        throw signFailed(err);
      }
    },
  };
  return { signer, dispose: () => native?.dispose() };
}

/**
 * Signatures per native thread-pool task: a burst is spread over the cores, at most 16 per
 * task (so several threads share it) and at least 4 (so many cores do not bring back a task
 * per signature).
 */
const NATIVE_SIGN_MAX_CHUNK = 16;
const NATIVE_SIGN_MIN_CHUNK = 4;

interface PendingSignature {
  readonly data: Uint8Array;
  readonly resolve: (sig: Uint8Array) => void;
  readonly reject: (err: unknown) => void;
}

let nativeAddon: NativeAddon | null | undefined;

function nativeSigningAddon(): NativeAddon | undefined {
  if (nativeAddon === undefined) {
    nativeAddon = null;
    try {
      const addon = loadNativeAddon();
      if (
        typeof addon.ecdsaSigningKey === 'function' &&
        typeof addon.ecdsaSigningKeyFree === 'function' &&
        typeof addon.ecdsaSignBatch === 'function'
      ) {
        nativeAddon = addon;
      }
    } catch {
      // ERR_NATIVE_UNAVAILABLE: node:crypto signs.
    }
  }
  return nativeAddon ?? undefined;
}

/**
 * The native batch signer for an EC key, or undefined (RSA, no addon, key refused). Every
 * call that cannot go native (after dispose, a failed batch) goes to `fallback`.
 */
function nativeBatchSigner(
  privateKey: KeyObject,
  keyType: KeyType,
  fallback: (data: Uint8Array) => Promise<Uint8Array>,
): { sign: (data: Uint8Array) => Promise<Uint8Array>; dispose: () => void } | undefined {
  if (keyType !== 'ec-p256' && keyType !== 'ec-p384') return undefined;
  const addon = nativeSigningAddon();
  if (addon === undefined) return undefined;
  let handle: NativeEcdsaSigningKey | undefined;
  let der: Buffer | undefined;
  try {
    der = privateKey.export({ format: 'der', type: 'pkcs8' });
    handle = addon.ecdsaSigningKey!(der, keyType === 'ec-p256' ? 'P-256' : 'P-384');
  } catch {
    return undefined;
  } finally {
    der?.fill(0);
  }
  const sigLength = keyType === 'ec-p256' ? 64 : 96;
  const cores = Math.max(1, availableParallelism());
  let pending: PendingSignature[] = [];
  const viaFallback = (p: PendingSignature): void => {
    fallback(p.data).then(p.resolve, p.reject);
  };
  const run = (chunk: PendingSignature[]): void => {
    let result: Promise<Uint8Array>;
    try {
      if (handle === undefined) throw new TypeError('disposed');
      result = addon.ecdsaSignBatch!(
        handle,
        chunk.map((p) => p.data),
      );
    } catch {
      for (const p of chunk) viaFallback(p);
      return;
    }
    result.then(
      (sigs) => {
        if (sigs.length !== chunk.length * sigLength) {
          for (const p of chunk) viaFallback(p);
          return;
        }
        for (let i = 0; i < chunk.length; i++) {
          chunk[i]!.resolve(sigs.subarray(i * sigLength, (i + 1) * sigLength));
        }
      },
      () => {
        for (const p of chunk) viaFallback(p);
      },
    );
  };
  const flush = (): void => {
    const all = pending;
    pending = [];
    const size = Math.max(
      NATIVE_SIGN_MIN_CHUNK,
      Math.min(NATIVE_SIGN_MAX_CHUNK, Math.ceil(all.length / cores)),
    );
    for (let i = 0; i < all.length; i += size) run(all.slice(i, i + size));
  };
  return {
    sign: (data) => {
      if (handle === undefined || !(data instanceof Uint8Array)) return fallback(data);
      return new Promise<Uint8Array>((resolve, reject) => {
        if (pending.length === 0) queueMicrotask(flush);
        pending.push({ data, resolve, reject });
      });
    },
    dispose: () => {
      if (handle === undefined) return;
      const h = handle;
      handle = undefined;
      addon.ecdsaSigningKeyFree!(h);
    },
  };
}

function signAsync(
  hash: string,
  data: Uint8Array,
  opts: ReturnType<typeof signOptions>,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    try {
      cryptoSign(hash, data, opts, (err, sig) => {
        if (err) reject(signFailed(err));
        else resolve(new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength));
      });
    } catch (err) {
      reject(signFailed(err));
    }
  });
}

function spkiOf(publicKey: KeyObject): Uint8Array {
  return new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
}

/** Generates a private key of `keyType` with node:crypto (asynchronously, off the event loop). */
export function generateSoftwareKey(keyType: KeyType): Promise<KeyObject> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, _pub: KeyObject, priv: KeyObject): void => {
      if (err) {
        reject(
          new SpireEdgeError(
            'ERR_KEY_MANAGER_GENERATE_FAILED',
            `cannot generate ${keyType} key: ${err.message}`,
            { cause: err },
          ),
        );
      } else {
        resolve(priv);
      }
    };
    switch (keyType) {
      case 'ec-p256':
        generateKeyPair('ec', { namedCurve: 'P-256' }, done);
        break;
      case 'ec-p384':
        generateKeyPair('ec', { namedCurve: 'P-384' }, done);
        break;
      case 'rsa-2048':
        generateKeyPair('rsa', { modulusLength: 2048, publicExponent: 0x10001 }, done);
        break;
      case 'rsa-4096':
        generateKeyPair('rsa', { modulusLength: 4096, publicExponent: 0x10001 }, done);
        break;
    }
  });
}

/** One key held by a {@link SoftwareKeyManager}. */
export interface SoftwareKeyEntry {
  readonly id: string;
  readonly keyType: KeyType;
  readonly privateKey: KeyObject;
}

/**
 * Persists the complete set of entries; called (serialised) after every change, before the
 * change becomes visible. A rejection aborts the change.
 */
export type PersistEntries = (entries: ReadonlyMap<string, SoftwareKeyEntry>) => Promise<void>;

interface LiveEntry extends SoftwareKeyEntry {
  readonly handle: SoftwareManagedKey;
}

class SoftwareManagedKey implements ManagedKey {
  readonly id: string;
  readonly keyType: KeyType;
  readonly publicKey: KeyObject;
  readonly publicKeySpki: Uint8Array;
  readonly fingerprint: string;
  readonly #owner: SoftwareKeyManager;
  readonly #signer: Signer;
  readonly #release: () => void;

  constructor(owner: SoftwareKeyManager, entry: SoftwareKeyEntry) {
    this.#owner = owner;
    const h = createSoftwareSigner(entry.privateKey);
    this.#signer = h.signer;
    this.#release = h.dispose;
    this.id = entry.id;
    this.keyType = entry.keyType;
    this.publicKey = this.#signer.publicKey;
    this.publicKeySpki = this.#signer.publicKeySpki;
    this.fingerprint = createHash('sha256').update(this.publicKeySpki).digest('hex');
  }

  sign(data: Uint8Array): Promise<Uint8Array> {
    try {
      this.#owner.checkLive(this);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#signer.sign(data);
  }

  signSync(data: Uint8Array): Uint8Array {
    this.#owner.checkLive(this);
    return this.#signer.signSync!(data);
  }

  /** Frees the native copy of the key once it has left the key manager. */
  release(): void {
    this.#release();
  }
}

/**
 * A KeyManager over software keys in process memory, with an optional persistence hook
 * (the `disk` KeyManager supplies one). Exported for src/hsm only: use
 * {@link MemoryKeyManager} or the disk KeyManager.
 */
export class SoftwareKeyManager implements KeyManager {
  readonly name: string;
  #entries = new Map<string, LiveEntry>();
  #closed = false;
  #tail: Promise<unknown> = Promise.resolve();
  readonly #persist: PersistEntries | undefined;

  constructor(name: string, persist?: PersistEntries, initial: readonly SoftwareKeyEntry[] = []) {
    this.name = name;
    this.#persist = persist;
    for (const e of initial) this.#entries.set(e.id, this.#live(e));
  }

  #live(e: SoftwareKeyEntry): LiveEntry {
    const entry = { id: e.id, keyType: e.keyType, privateKey: e.privateKey } as LiveEntry;
    (entry as { handle: SoftwareManagedKey }).handle = new SoftwareManagedKey(this, e);
    return entry;
  }

  /** Throws unless `handle` is the key currently held under its id. */
  checkLive(handle: ManagedKey): void {
    this.#checkOpen();
    const cur = this.#entries.get(handle.id);
    if (cur === undefined) {
      throw new SpireEdgeError(
        'ERR_KEY_MANAGER_KEY_NOT_FOUND',
        `key ${handle.id} was deleted from the ${this.name} key manager`,
      );
    }
    if (cur.handle !== handle) {
      throw new SpireEdgeError(
        'ERR_KEY_MANAGER_KEY_REPLACED',
        `key ${handle.id} was replaced in the ${this.name} key manager (fingerprint ${handle.fingerprint.slice(0, 16)} is no longer current)`,
      );
    }
  }

  #checkOpen(): void {
    if (this.#closed) {
      throw new SpireEdgeError('ERR_KEY_MANAGER_CLOSED', `the ${this.name} key manager is closed`);
    }
  }

  /** Runs `fn` after every earlier mutation, so persisted states follow one order. */
  #serialise<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #commit(next: Map<string, LiveEntry>): Promise<void> {
    if (this.#persist !== undefined) await this.#persist(next);
    const prev = this.#entries;
    this.#entries = next;
    // Keys that left (deleted or replaced): their handles no longer sign, so the native
    // copies go now rather than at garbage collection.
    for (const [id, e] of prev) if (next.get(id) !== e) e.handle.release();
  }

  async generateKey(id: string, keyType: KeyType): Promise<ManagedKey> {
    assertKeyId(id);
    assertKeyType(keyType);
    this.#checkOpen();
    const privateKey = await generateSoftwareKey(keyType);
    return this.#serialise(async () => {
      this.#checkOpen();
      const entry = this.#live({ id, keyType, privateKey });
      const next = new Map(this.#entries);
      next.set(id, entry);
      await this.#commit(next);
      return entry.handle;
    });
  }

  async getKey(id: string): Promise<ManagedKey | undefined> {
    assertKeyId(id);
    this.#checkOpen();
    return this.#entries.get(id)?.handle;
  }

  async listKeys(): Promise<ManagedKey[]> {
    this.#checkOpen();
    return [...this.#entries.values()]
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((e) => e.handle);
  }

  async deleteKey(id: string): Promise<boolean> {
    assertKeyId(id);
    this.#checkOpen();
    return this.#serialise(async () => {
      this.#checkOpen();
      if (!this.#entries.has(id)) return false;
      const next = new Map(this.#entries);
      next.delete(id);
      await this.#commit(next);
      return true;
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // Let queued writes finish before refusing further work.
    await this.#serialise(async () => {
      this.#closed = true;
      for (const e of this.#entries.values()) e.handle.release();
    });
  }
}

/**
 * The `memory` KeyManager: keys in this process only, gone on restart (so a server using
 * it mints a new CA on every start, as SPIRE's does). Takes no configuration.
 */
export class MemoryKeyManager extends SoftwareKeyManager {
  constructor() {
    super('memory');
  }
}
