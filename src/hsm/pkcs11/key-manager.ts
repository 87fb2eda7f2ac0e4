/**
 * The `pkcs11` KeyManager: the server's X.509 CA and JWT signing keys generated and kept on
 * a PKCS#11 token (an HSM), never in process memory. Implements {@link KeyManager} and passes
 * the same contract suite as `memory` and `disk`.
 *
 * Objects: key `<id>` is the key pair labelled `<key_label_prefix><id>` (CKA_LABEL) with
 * CKA_ID = the first 16 bytes of SHA-256("spire-edge pkcs11 key id\0" + label), so a
 * restarted server finds the same objects by label and id. The private key is a token
 * object, private, sensitive, not extractable, usable only to sign (objects.ts). A key id
 * whose objects are gone is reported missing (`getKey` → undefined) — never regenerated
 * behind the caller's back. Every `generateKey` creates new objects; the replaced or deleted
 * key's objects are destroyed only when the caller (the CA manager) replaces or deletes
 * that id, which it does after the key's CA has left the bundle.
 *
 * Replacing a key is crash-safe: the new pair is generated under `<label>#pending`, then the
 * old pair is destroyed and the new one relabelled. On open, a pending pair beside a live
 * one is an unfinished replacement and is destroyed; a pending pair alone (the old one was
 * destroyed already) is relabelled.
 *
 * Signing hashes in software and signs on the token (CKM_ECDSA / CKM_RSA_PKCS) on one of
 * `session_pool_size` sessions, the way `signing_mode` says (signing-mode.ts): batched on a
 * dedicated signing thread for fast tokens, pkcs11js's asynchronous calls for slow ones —
 * a slow HSM never blocks the event loop. There is no software fallback: when the token is
 * unreachable, signing fails.
 *
 * Health: {@link Pkcs11KeyManager.health} probes the token; failures at runtime (token
 * removed, sessions lost) mark the manager unhealthy and it reconnects by itself when the
 * token returns (session-pool.ts). Servers should report not-ready while `health().ok` is
 * false (docs/hsm.md).
 *
 * Errors: those of {@link KeyManager} — `ERR_KEY_MANAGER_SIGN_FAILED`,
 * `ERR_KEY_MANAGER_GENERATE_FAILED`, `ERR_KEY_MANAGER_STORE_IO` (a token read or delete
 * failed), `ERR_KEY_MANAGER_STORE_CORRUPT` (objects under our prefix that do not form a
 * usable key), `ERR_KEY_MANAGER_KEY_NOT_FOUND` / `_KEY_REPLACED` / `_CLOSED` — each with
 * `details.ckr` when a PKCS#11 return value caused it and the `ERR_HSM_CKR` /
 * `ERR_HSM_UNAVAILABLE` error as `cause`; opening fails with the codes of config.ts,
 * module.ts and session-pool.ts (for a wrong PIN: `ERR_HSM_CKR`, `details.ckr`
 * `CKR_PIN_INCORRECT`).
 */
import { createHash, type KeyObject } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import type { Clock } from '../../common/clock.js';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import type { KeyType } from '../../common/signer.js';
import { assertKeyId, assertKeyType, type KeyManager, type ManagedKey } from '../key-manager.js';
import { ckrName, hsmCkrError, isConnectionLoss } from './ckr.js';
import { type Pkcs11KeyManagerSettings, resolvePkcs11Token } from './config.js';
import { NOT_NOW, type Pkcs11Api } from './module.js';
import {
  destroyObjects,
  findObjects,
  keyPairTemplates,
  probeKeyPair,
  readKeyPair,
  signatureLength,
  signInput,
  signOnSession,
  type TokenKeyPair,
} from './objects.js';
import { type Pkcs11Health, Pkcs11SessionPool } from './session-pool.js';
import { type SignJob, SignWorker } from './sign-worker.js';
import {
  type Pkcs11SigningMode,
  type Pkcs11SigningPath,
  type SigningModeOptions,
  SigningModeSelector,
} from './signing-mode.js';

/** The default `key_label_prefix`. */
export const DEFAULT_KEY_LABEL_PREFIX = 'spire-edge-';

/** Suffix of a key pair generated to replace another, until the replacement commits. */
export const PENDING_SUFFIX = '#pending';

const CALIBRATION_DATA = Buffer.from('spire-edge pkcs11 signing-mode calibration');

/** Options of {@link openPkcs11KeyManager}: the plugin settings plus injectables. */
export interface Pkcs11KeyManagerConfig extends Pkcs11KeyManagerSettings {
  /** Environment for `pin_env`. Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Timers for background reconnection. */
  readonly clock?: Clock;
  /** First background reconnection delay (ms). Default 500. */
  readonly retryMinMs?: number;
  /** Longest background reconnection delay (ms). Default 30 000. */
  readonly retryMaxMs?: number;
  /** Thresholds of `signing_mode` `auto`. */
  readonly signingModeOptions?: SigningModeOptions;
}

/** The default `key_id_length`: bytes of CKA_ID. */
export const DEFAULT_KEY_ID_LENGTH = 16;

/**
 * CKA_ID of the key labelled `label`: the first `length` bytes of
 * SHA-256("spire-edge pkcs11 key id\0" + label) — deterministic, so a restarted server (or
 * an operator with `pkcs11-tool --id`) finds the same key.
 *
 * @throws TypeError when `length` is not 1 to 32.
 */
export function ckaIdForLabel(label: string, length = DEFAULT_KEY_ID_LENGTH): Buffer {
  if (!Number.isSafeInteger(length) || length < 1 || length > 32) {
    throw new TypeError('key_id_length must be a whole number from 1 to 32');
  }
  return createHash('sha256')
    .update(`spire-edge pkcs11 key id\0${label}`)
    .digest()
    .subarray(0, length);
}

/** The most signatures one batch to the signing thread carries. */
const MAX_BATCH = 256;

/** The event loop stops helping the signing thread after one signature this slow (ms). */
const HELP_LIMIT_MS = 5;

interface WorkerJob {
  readonly handle: Pkcs11ManagedKey;
  readonly input: Buffer;
  readonly resolve: (sig: Uint8Array) => void;
  readonly reject: (err: unknown) => void;
  settled: boolean;
}

interface Entry {
  readonly id: string;
  readonly handle: Pkcs11ManagedKey;
  /** Object handles: they change when the token is re-initialised, so they are updated. */
  priv: Buffer;
  pub: Buffer | undefined;
}

function fingerprintOf(spki: Uint8Array): string {
  return createHash('sha256').update(spki).digest('hex');
}

function ckrOf(err: unknown): string | undefined {
  return err instanceof SpireEdgeError && typeof err.details['ckr'] === 'string'
    ? err.details['ckr']
    : undefined;
}

function wrap(code: `ERR_${string}`, message: string, err: unknown): SpireEdgeError {
  if (err instanceof SpireEdgeError && err.code.startsWith('ERR_KEY_MANAGER_')) return err;
  const ckr = ckrOf(err);
  return new SpireEdgeError(code, `${message}: ${describeError(err)}`, {
    cause: err,
    details: ckr === undefined ? {} : { ckr },
  });
}

class Pkcs11ManagedKey implements ManagedKey {
  readonly id: string;
  readonly keyType: KeyType;
  readonly publicKey: KeyObject;
  readonly publicKeySpki: Uint8Array;
  readonly fingerprint: string;
  readonly #owner: Pkcs11KeyManager;

  constructor(owner: Pkcs11KeyManager, id: string, pair: TokenKeyPair) {
    this.#owner = owner;
    this.id = id;
    this.keyType = pair.keyType;
    this.publicKey = pair.publicKey;
    this.publicKeySpki = pair.spki;
    this.fingerprint = fingerprintOf(pair.spki);
  }

  sign(data: Uint8Array): Promise<Uint8Array> {
    let input: Buffer;
    try {
      this.#owner.liveEntry(this);
      input = signInput(this.keyType, data);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#owner.signInput(this, input);
  }
}

/** The pkcs11 KeyManager. Open it with {@link openPkcs11KeyManager}. */
export class Pkcs11KeyManager implements KeyManager {
  readonly name = 'pkcs11';
  /** The CKA_LABEL prefix of this manager's keys. */
  readonly keyLabelPrefix: string;
  readonly #keyType: KeyType | undefined;
  readonly #keyIdLength: number;
  #pool!: Pkcs11SessionPool;
  #entries = new Map<string, Entry>();
  /** Per key id: the tail of its serialised mutations. */
  readonly #tails = new Map<string, Promise<unknown>>();
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #mode: SigningModeSelector;
  #calibrating = false;
  /** Signatures waiting for the signing thread (`signing_mode worker`). */
  #queue: WorkerJob[] = [];
  /** True while a batch is with the signing thread. */
  #busy = false;
  #flushScheduled = false;
  #worker: SignWorker | undefined;
  #helpScheduled = false;
  #helping = true;
  #closed = false;

  /** @internal Use {@link openPkcs11KeyManager}. */
  constructor(
    keyLabelPrefix: string,
    keyType: KeyType | undefined,
    mode: SigningModeSelector,
    keyIdLength = DEFAULT_KEY_ID_LENGTH,
  ) {
    this.keyLabelPrefix = keyLabelPrefix;
    this.#keyType = keyType;
    this.#mode = mode;
    this.#keyIdLength = keyIdLength;
  }

  /** @internal */
  attach(pool: Pkcs11SessionPool): void {
    this.#pool = pool;
  }

  /** The token, for messages and status output. */
  get tokenDescription(): string {
    return this.#pool.tokenDescription;
  }

  #label(id: string): string {
    return `${this.keyLabelPrefix}${id}`;
  }

  #checkOpen(): void {
    if (this.#closed) {
      throw new SpireEdgeError('ERR_KEY_MANAGER_CLOSED', 'the pkcs11 key manager is closed');
    }
  }

  /** @internal The entry `handle` belongs to, or the error saying why it may not sign. */
  liveEntry(handle: Pkcs11ManagedKey): Entry {
    this.#checkOpen();
    const cur = this.#entries.get(handle.id);
    if (cur === undefined) {
      throw new SpireEdgeError(
        'ERR_KEY_MANAGER_KEY_NOT_FOUND',
        `key ${handle.id} was deleted from the pkcs11 key manager`,
      );
    }
    if (cur.handle !== handle) {
      throw new SpireEdgeError(
        'ERR_KEY_MANAGER_KEY_REPLACED',
        `key ${handle.id} was replaced in the pkcs11 key manager (fingerprint ${handle.fingerprint.slice(0, 16)} is no longer current)`,
      );
    }
    return cur;
  }

  /** How signatures are made now (`signing_mode` and, for `auto`, what it measured). */
  get signingMode(): {
    readonly mode: Pkcs11SigningMode;
    readonly path: Pkcs11SigningPath;
    readonly decided: boolean;
    readonly reason: string;
  } {
    const m = this.#mode;
    return { mode: m.mode, path: m.path, decided: m.decided, reason: m.reason };
  }

  /** @internal Signs the prepared token input with the key of `handle`. */
  signInput(handle: Pkcs11ManagedKey, input: Buffer): Promise<Uint8Array> {
    const path = this.#mode.path;
    if (path === 'worker') return this.#signOnWorker(handle, input);
    if (path === 'sync') {
      let sig: Buffer | typeof NOT_NOW;
      try {
        sig = this.#pool.trySync('C_Sign', (p11, session) => {
          const entry = this.liveEntry(handle);
          return signOnSession(p11, session, entry.priv, handle.keyType, input, true) as Buffer;
        });
      } catch (err) {
        const ckr = ckrOf(err);
        // A lost connection goes the asynchronous way, which reconnects and retries once.
        if (ckr === undefined || !isConnectionLoss(ckr)) {
          return Promise.reject(
            wrap('ERR_KEY_MANAGER_SIGN_FAILED', `key ${handle.id} could not sign`, err),
          );
        }
        sig = NOT_NOW;
      }
      if (sig !== NOT_NOW) return Promise.resolve(sig);
    }
    return this.#signAsync(handle, input);
  }

  #signOnWorker(handle: Pkcs11ManagedKey, input: Buffer): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ handle, input, resolve, reject, settled: false });
      if (!this.#busy) {
        if (!this.#flushScheduled) {
          // Let every signature requested in this tick join the batch.
          this.#flushScheduled = true;
          queueMicrotask(() => {
            this.#flushScheduled = false;
            this.#flush();
          });
        }
      } else {
        this.#scheduleHelp();
      }
    });
  }

  /**
   * While the signing thread is busy and signatures wait, the event loop helps when it has
   * nothing else to do (a `setImmediate` runs after pending I/O): it signs the oldest waiting
   * input itself on a free session, one per turn. So the two threads sign in parallel, and a
   * signing thread the OS does not schedule promptly never leaves the queue standing.
   * Stops for good if one such signature takes longer than {@link HELP_LIMIT_MS}.
   */
  #scheduleHelp(): void {
    if (this.#helpScheduled || !this.#helping || this.#closed) return;
    this.#helpScheduled = true;
    setImmediate(() => {
      this.#helpScheduled = false;
      this.#help();
    });
  }

  #help(): void {
    if (!this.#busy) {
      this.#flush();
      return;
    }
    const j = this.#queue[0];
    if (j === undefined || this.#mode.path !== 'worker') return;
    const t0 = performance.now();
    let sig: Buffer | typeof NOT_NOW;
    try {
      sig = this.#pool.trySync('C_Sign', (p11, session) => {
        const entry = this.liveEntry(j.handle);
        return signOnSession(p11, session, entry.priv, j.handle.keyType, j.input, true) as Buffer;
      });
    } catch (err) {
      const ckr = ckrOf(err);
      // A lost connection is the signing thread's to handle (it reconnects and retries).
      if (ckr !== undefined && isConnectionLoss(ckr)) return;
      this.#queue.shift();
      j.settled = true;
      j.reject(wrap('ERR_KEY_MANAGER_SIGN_FAILED', `key ${j.handle.id} could not sign`, err));
      this.#scheduleHelp();
      return;
    }
    if (sig === NOT_NOW) return;
    if (performance.now() - t0 > HELP_LIMIT_MS) this.#helping = false;
    this.#queue.shift();
    j.settled = true;
    j.resolve(sig);
    this.#scheduleHelp();
  }

  /**
   * Hands the signing thread its next batch: half of what waits (at least one, at most
   * {@link MAX_BATCH}), so that while it signs one half the event loop builds the
   * certificates of the batch before — the two threads work in a pipeline instead of taking
   * turns.
   */
  #flush(): void {
    if (this.#busy || this.#queue.length === 0) return;
    const n = Math.min(MAX_BATCH, Math.max(1, Math.ceil(this.#queue.length / 2)));
    const batch = this.#queue.splice(0, n);
    this.#busy = true;
    let released = false;
    const next = (): void => {
      if (released) return;
      released = true;
      this.#busy = false;
      this.#flush();
      if (this.#queue.length > 0) this.#scheduleHelp();
    };
    void this.#track(this.#runBatch(batch, next).finally(next));
  }

  /** Signs `batch` on the thread; calls `next` as soon as the thread is free again. */
  async #runBatch(batch: WorkerJob[], next: () => void): Promise<void> {
    const settle = (j: WorkerJob, sig: Buffer | undefined, err?: unknown): void => {
      if (j.settled) return;
      j.settled = true;
      if (sig !== undefined) j.resolve(sig);
      else j.reject(wrap('ERR_KEY_MANAGER_SIGN_FAILED', `key ${j.handle.id} could not sign`, err));
    };
    let workerFailed = false;
    try {
      const results = await this.#pool.withSession(
        'C_Sign',
        async (_p11, session) => {
          let worker = this.#worker;
          if (worker === undefined || worker.dead) {
            try {
              worker = await SignWorker.start(this.#pool.modulePath);
            } catch (err) {
              workerFailed = true;
              throw err;
            }
            this.#worker = worker;
          }
          const live: WorkerJob[] = [];
          const jobs: SignJob[] = [];
          for (const j of batch) {
            if (j.settled) continue;
            try {
              const entry = this.liveEntry(j.handle);
              jobs.push({
                key: entry.priv,
                mechanism: j.handle.keyType.startsWith('ec-') ? 0 : 1,
                input: j.input,
                length: signatureLength(j.handle.keyType),
              });
              live.push(j);
            } catch (err) {
              settle(j, undefined, err);
            }
          }
          if (jobs.length === 0) return [];
          const out = await worker.run(session, jobs);
          // A lost connection fails the batch: the pool reconnects and runs it once more.
          for (const r of out) {
            if ('rv' in r && r.rv >= 0 && isConnectionLoss(ckrName(r.rv))) {
              throw hsmCkrError('C_Sign', r.rv, { context: this.#pool.tokenDescription });
            }
          }
          return live.map((j, i) => [j, out[i]!] as const);
        },
        { retry: true },
      );
      next(); // the thread gets its next batch before these signatures are delivered
      for (const [j, r] of results) {
        if ('sig' in r) settle(j, r.sig);
        else settle(j, undefined, r.rv >= 0 ? hsmCkrError('C_Sign', r.rv) : new Error(r.message));
      }
    } catch (err) {
      if (workerFailed) {
        // No signing thread here: sign these (and everything later) the asynchronous way.
        this.#mode.abandonWorker(describeError(err));
        for (const j of batch) {
          if (j.settled) continue;
          j.settled = true;
          this.#signAsync(j.handle, j.input).then(j.resolve, j.reject);
        }
        for (const j of this.#queue.splice(0)) {
          this.#signAsync(j.handle, j.input).then(j.resolve, j.reject);
        }
        return;
      }
      for (const j of batch) settle(j, undefined, err);
    }
  }

  async #signAsync(handle: Pkcs11ManagedKey, input: Buffer): Promise<Uint8Array> {
    try {
      const sig = await this.#pool.withSession(
        'C_Sign',
        (p11, session) => {
          // Checked again here: the key may have been replaced while we waited for a session,
          // and the object handle may have changed with a reconnection.
          const entry = this.liveEntry(handle);
          return signOnSession(p11, session, entry.priv, handle.keyType, input);
        },
        { retry: true },
      );
      return sig;
    } catch (err) {
      throw wrap('ERR_KEY_MANAGER_SIGN_FAILED', `key ${handle.id} could not sign`, err);
    }
  }

  /**
   * `signing_mode auto`: times a few asynchronous probe signatures with `handle`, one after
   * the other, in the background, and lets the selector decide. Runs once.
   */
  #calibrate(handle: Pkcs11ManagedKey): void {
    if (this.#mode.decided || this.#calibrating || this.#closed) return;
    this.#calibrating = true;
    const input = signInput(handle.keyType, CALIBRATION_DATA);
    const run = async (): Promise<void> => {
      while (!this.#mode.decided && !this.#closed) {
        const t0 = performance.now();
        await this.#signAsync(handle, input);
        this.#mode.recordAsync(performance.now() - t0);
      }
    };
    void this.#track(run().catch(() => undefined)).finally(() => {
      this.#calibrating = false;
    });
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    const done = () => this.#inflight.delete(p);
    p.then(done, done);
    return p;
  }

  /** Runs `fn` after every earlier mutation of key `id`. */
  #serialise<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(id) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#tails.set(id, tail);
    void tail.then(() => {
      if (this.#tails.get(id) === tail) this.#tails.delete(id);
    });
    return this.#track(run);
  }

  /** Makes `pair` the key held under `id`, keeping the existing handle when it is the same key. */
  #adopt(id: string, pair: TokenKeyPair): Entry {
    const cur = this.#entries.get(id);
    if (cur !== undefined && cur.handle.fingerprint === fingerprintOf(pair.spki)) {
      cur.priv = pair.privateHandle;
      cur.pub = pair.publicHandle;
      return cur;
    }
    const entry: Entry = {
      id,
      handle: new Pkcs11ManagedKey(this, id, pair),
      priv: pair.privateHandle,
      pub: pair.publicHandle,
    };
    this.#entries.set(id, entry);
    return entry;
  }

  /**
   * Reads every key pair under our prefix, finishing interrupted replacements (except for
   * ids with a mutation in progress), and returns them by id. Probes key pairs not yet known.
   */
  #scan(p11: Pkcs11Api, session: Buffer, reconcile: boolean): Map<string, TokenKeyPair> {
    const privs = findObjects(p11, session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    ]);
    const live = new Map<string, Buffer[]>();
    const pending = new Map<string, Buffer[]>();
    for (const h of privs) {
      const [a] = p11.C_GetAttributeValue(session, h, [{ type: pkcs11js.CKA_LABEL }]);
      const label = Buffer.isBuffer(a?.value) ? a.value.toString('utf8') : '';
      if (!label.startsWith(this.keyLabelPrefix)) continue;
      let name = label.slice(this.keyLabelPrefix.length);
      let into = live;
      if (name.endsWith(PENDING_SUFFIX)) {
        name = name.slice(0, -PENDING_SUFFIX.length);
        into = pending;
      }
      try {
        assertKeyId(name);
      } catch {
        continue; // not one of ours
      }
      into.set(name, [...(into.get(name) ?? []), h]);
    }
    if (reconcile) {
      for (const [id, handles] of pending) {
        if (this.#tails.has(id)) continue; // a replacement of this id is running now
        const label = this.#label(id);
        const pendingLabel = `${label}${PENDING_SUFFIX}`;
        const objs = findObjects(p11, session, [{ type: pkcs11js.CKA_LABEL, value: pendingLabel }]);
        if (live.has(id) || handles.length > 1) {
          destroyObjects(p11, session, objs);
        } else {
          for (const o of objs) {
            p11.C_SetAttributeValue(session, o, [{ type: pkcs11js.CKA_LABEL, value: label }]);
          }
          live.set(id, handles);
        }
      }
    }
    const out = new Map<string, TokenKeyPair>();
    for (const [id, handles] of live) {
      if (handles.length > 1) {
        throw new SpireEdgeError(
          'ERR_KEY_MANAGER_STORE_CORRUPT',
          `pkcs11 ${handles.length} private key objects are labelled ${JSON.stringify(this.#label(id))}; destroy the stale ones`,
          { details: { label: this.#label(id) } },
        );
      }
      const pair = readKeyPair(p11, session, handles[0]!);
      const known = this.#entries.get(id);
      if (known === undefined || known.handle.fingerprint !== fingerprintOf(pair.spki)) {
        probeKeyPair(p11, session, pair);
      }
      out.set(id, pair);
    }
    return out;
  }

  /** Applies a full scan: adopts what is there, drops what is gone (ids not being mutated). */
  #applyScan(pairs: Map<string, TokenKeyPair>): void {
    for (const [id, pair] of pairs) {
      if (!this.#tails.has(id)) this.#adopt(id, pair);
    }
    for (const id of [...this.#entries.keys()]) {
      if (!pairs.has(id) && !this.#tails.has(id)) this.#entries.delete(id);
    }
  }

  /** @internal Starts `signing_mode auto` calibration with any key already held. */
  startCalibration(): void {
    const first = this.#entries.values().next();
    if (first.done !== true) this.#calibrate(first.value.handle);
  }

  /** @internal The session pool's onConnect: finds the keys again (handles may change). */
  onConnect(p11: Pkcs11Api, session: Buffer): void {
    this.#applyScan(this.#scan(p11, session, true));
  }

  async generateKey(id: string, keyType: KeyType): Promise<ManagedKey> {
    assertKeyId(id);
    assertKeyType(keyType);
    this.#checkOpen();
    if (this.#keyType !== undefined && keyType !== this.#keyType) {
      throw new SpireEdgeError(
        'ERR_KEY_MANAGER_GENERATE_FAILED',
        `the pkcs11 key manager is configured with key_type ${this.#keyType}; cannot generate ${keyType}`,
      );
    }
    const label = this.#label(id);
    const ckaId = ckaIdForLabel(label, this.#keyIdLength);
    return this.#serialise(id, async () => {
      this.#checkOpen();
      try {
        const existing = await this.#pool.withSession('C_FindObjects', (p11, s) =>
          findObjects(p11, s, [{ type: pkcs11js.CKA_LABEL, value: label }]),
        );
        const genLabel = existing.length > 0 ? `${label}${PENDING_SUFFIX}` : label;
        const pair = await this.#pool.withSession('C_GenerateKeyPair', async (p11, s) => {
          const t = keyPairTemplates(keyType, genLabel, ckaId);
          const kp = await p11.C_GenerateKeyPairAsync(s, t.mechanism, t.pub, t.priv);
          try {
            const got = readKeyPair(p11, s, kp.privateKey, [kp.publicKey]);
            if (got.keyType !== keyType) {
              throw new SpireEdgeError(
                'ERR_KEY_MANAGER_GENERATE_FAILED',
                `the token generated a ${got.keyType} key when ${keyType} was asked for`,
              );
            }
            return got;
          } catch (err) {
            destroyObjects(p11, s, [kp.privateKey, kp.publicKey]);
            throw err;
          }
        });
        if (existing.length > 0) {
          await this.#pool.withSession('C_DestroyObject', (p11, s) => {
            destroyObjects(p11, s, existing);
            for (const h of [pair.privateHandle, pair.publicHandle]) {
              if (h !== undefined) {
                p11.C_SetAttributeValue(s, h, [{ type: pkcs11js.CKA_LABEL, value: label }]);
              }
            }
          });
        }
        this.#entries.delete(id);
        const handle = this.#adopt(id, { ...pair, label }).handle;
        this.#calibrate(handle);
        return handle;
      } catch (err) {
        throw wrap(
          'ERR_KEY_MANAGER_GENERATE_FAILED',
          `cannot generate ${keyType} key ${id} on the token`,
          err,
        );
      }
    });
  }

  async getKey(id: string): Promise<ManagedKey | undefined> {
    assertKeyId(id);
    this.#checkOpen();
    await this.#tails.get(id);
    const label = this.#label(id);
    return this.#track(
      (async () => {
        let pair: TokenKeyPair | undefined;
        try {
          pair = await this.#pool.withSession(
            'C_FindObjects',
            (p11, s) => {
              const privs = findObjects(p11, s, [
                { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
                { type: pkcs11js.CKA_LABEL, value: label },
              ]);
              if (privs.length === 0) return undefined;
              if (privs.length > 1) {
                throw new SpireEdgeError(
                  'ERR_KEY_MANAGER_STORE_CORRUPT',
                  `pkcs11 ${privs.length} private key objects are labelled ${JSON.stringify(label)}; destroy the stale ones`,
                  { details: { label } },
                );
              }
              const found = readKeyPair(p11, s, privs[0]!);
              const known = this.#entries.get(id);
              if (known === undefined || known.handle.fingerprint !== fingerprintOf(found.spki)) {
                probeKeyPair(p11, s, found);
              }
              return found;
            },
            { retry: true },
          );
        } catch (err) {
          throw wrap('ERR_KEY_MANAGER_STORE_IO', `cannot read key ${id} from the token`, err);
        }
        if (this.#tails.has(id)) return this.#entries.get(id)?.handle; // changed meanwhile
        if (pair === undefined) {
          this.#entries.delete(id);
          return undefined;
        }
        return this.#adopt(id, pair).handle;
      })(),
    );
  }

  async listKeys(): Promise<ManagedKey[]> {
    this.#checkOpen();
    return this.#track(
      (async () => {
        let pairs: Map<string, TokenKeyPair>;
        try {
          pairs = await this.#pool.withSession(
            'C_FindObjects',
            (p11, s) => this.#scan(p11, s, false),
            {
              retry: true,
            },
          );
        } catch (err) {
          throw wrap('ERR_KEY_MANAGER_STORE_IO', 'cannot list keys on the token', err);
        }
        this.#applyScan(pairs);
        return [...this.#entries.values()]
          .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
          .map((e) => e.handle);
      })(),
    );
  }

  async deleteKey(id: string): Promise<boolean> {
    assertKeyId(id);
    this.#checkOpen();
    const label = this.#label(id);
    return this.#serialise(id, async () => {
      this.#checkOpen();
      try {
        const had = await this.#pool.withSession('C_DestroyObject', (p11, s) => {
          const privs = findObjects(p11, s, [
            { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
            { type: pkcs11js.CKA_LABEL, value: label },
          ]);
          const all = [
            ...findObjects(p11, s, [{ type: pkcs11js.CKA_LABEL, value: label }]),
            ...findObjects(p11, s, [
              { type: pkcs11js.CKA_LABEL, value: `${label}${PENDING_SUFFIX}` },
            ]),
          ];
          destroyObjects(p11, s, all);
          return privs.length > 0;
        });
        this.#entries.delete(id);
        return had;
      } catch (err) {
        throw wrap('ERR_KEY_MANAGER_STORE_IO', `cannot delete key ${id} from the token`, err);
      }
    });
  }

  /**
   * Probes the token (see {@link Pkcs11SessionPool.health}); a broken connection tries to
   * reconnect first. Never throws. Servers report not-ready while `ok` is false.
   */
  async health(): Promise<Pkcs11Health> {
    if (this.#closed)
      return { ok: false, reason: 'the pkcs11 key manager is closed', since: new Date() };
    return this.#pool.health();
  }

  /** The last known health, without touching the token. */
  status(): Pkcs11Health {
    return this.#pool.status();
  }

  /** Calls `listener` when the manager turns healthy or unhealthy. Returns an unsubscribe. */
  onHealthChange(listener: (h: Pkcs11Health) => void): () => void {
    return this.#pool.onHealthChange(listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#inflight]);
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
    await this.#worker?.close();
    await this.#pool.close();
  }
}

/**
 * Opens the pkcs11 KeyManager: resolves the settings and the PIN, loads the module (once per
 * process), logs in to the token, and finds the keys already under `key_label_prefix`
 * (finishing replacements a crash interrupted, and checking each key pair with a probe
 * signature).
 *
 * @throws TypeError for malformed settings given in code (an empty `key_label_prefix`, one
 *   containing `#`, longer than 64 characters).
 * @throws SpireEdgeError `ERR_HSM_CONFIG_INVALID`, `ERR_HSM_URI_INVALID`,
 *   `ERR_HSM_PIN_SOURCE`, `ERR_HSM_MODULE_LOAD`, `ERR_HSM_TOKEN_NOT_FOUND`,
 *   `ERR_HSM_TOKEN_AMBIGUOUS`, `ERR_HSM_CKR` (wrong PIN: `details.ckr` CKR_PIN_INCORRECT),
 *   `ERR_KEY_MANAGER_STORE_CORRUPT`.
 */
export async function openPkcs11KeyManager(
  config: Pkcs11KeyManagerConfig,
): Promise<Pkcs11KeyManager> {
  if (config === null || typeof config !== 'object') throw new TypeError('config is required');
  const prefix = config.keyLabelPrefix ?? DEFAULT_KEY_LABEL_PREFIX;
  if (typeof prefix !== 'string' || prefix === '' || prefix.length > 64 || prefix.includes('#')) {
    throw new TypeError('key_label_prefix must be 1 to 64 characters without "#"');
  }
  if (config.keyType !== undefined) assertKeyType(config.keyType);
  const resolved = await resolvePkcs11Token(config, config.env);
  const mode = new SigningModeSelector(config.signingMode ?? 'auto', config.signingModeOptions);
  const keyIdLength = config.keyIdLength ?? DEFAULT_KEY_ID_LENGTH;
  ckaIdForLabel('', keyIdLength); // checks the length
  const km = new Pkcs11KeyManager(prefix, config.keyType, mode, keyIdLength);
  const pool = await Pkcs11SessionPool.open({
    modulePath: resolved.modulePath,
    token: resolved.token,
    pin: resolved.pin,
    ...(resolved.sessionPoolSize === undefined ? {} : { size: resolved.sessionPoolSize }),
    owner: 'the pkcs11 key manager',
    onConnect: (p11, session) => km.onConnect(p11, session),
    ...(config.clock === undefined ? {} : { clock: config.clock }),
    ...(config.retryMinMs === undefined ? {} : { retryMinMs: config.retryMinMs }),
    ...(config.retryMaxMs === undefined ? {} : { retryMaxMs: config.retryMaxMs }),
  });
  km.attach(pool);
  km.startCalibration();
  return km;
}
