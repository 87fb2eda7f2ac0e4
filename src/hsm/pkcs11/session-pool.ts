/**
 * A logged-in connection to one PKCS#11 token: a fixed pool of read/write sessions (one
 * operation per session at a time, PKCS#11 v2.40 §5.6 — so concurrency needs several),
 * health tracking and recovery.
 *
 * Health and recovery: a call that fails with a return value meaning the connection is gone
 * (token removed, session or login lost, object handles invalid: see `isConnectionLoss` in
 * ckr.ts) marks the pool broken. A broken pool reconnects — first by finding the token
 * again, opening sessions and logging in; if that fails and this process owns the library's
 * initialisation, by `C_Finalize` + `C_Initialize` and then again — on the next call, on
 * {@link Pkcs11SessionPool.health}, and in the background with exponential backoff. It never
 * retries a login that failed for a credential reason (CKR_PIN_INCORRECT, CKR_PIN_LOCKED…):
 * repeating a wrong PIN locks real tokens; the pool stays unhealthy until it is reopened.
 *
 * Errors: `ERR_HSM_CKR` (a call failed; `details.ckr`), `ERR_HSM_UNAVAILABLE` (the token is
 * unreachable and reconnecting failed; `cause` is the last failure, `details.ckr` its CKR
 * name when it has one), `ERR_HSM_CLOSED`, plus those of module.ts when opening.
 */

import pkcs11js from 'pkcs11js';
import { type Clock, systemClock } from '../../common/clock.js';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import { hsmCkrError, isConnectionLoss, isPermanentLoginFailure } from './ckr.js';
import {
  acquirePkcs11Module,
  describeSelector,
  mapPkcs11Error,
  NOT_NOW,
  type Pkcs11Api,
  type Pkcs11Module,
  type TokenListing,
  type TokenSelector,
} from './module.js';

/** Default number of sessions (libuv runs 4 worker threads by default, see docs/hsm.md). */
export const DEFAULT_SESSION_POOL_SIZE = 4;

/** Options of {@link Pkcs11SessionPool.open}. */
export interface Pkcs11SessionPoolOptions {
  /** The PKCS#11 library. */
  readonly modulePath: string;
  /** Which token. */
  readonly token: TokenSelector;
  /** The user PIN. Never logged, never put in an error. */
  readonly pin: string;
  /** Number of sessions (concurrent operations). Default {@link DEFAULT_SESSION_POOL_SIZE}. */
  readonly size?: number;
  /** Who uses the pool, for messages (`key manager pkcs11`). */
  readonly owner?: string;
  /**
   * Runs with the first session of every (re)connection, before the pool counts as healthy
   * (the key manager finds its key objects again: object handles may change).
   */
  readonly onConnect?: (p11: Pkcs11Api, session: Buffer) => void | Promise<void>;
  /** Timers for background reconnection. Default the system clock. */
  readonly clock?: Clock;
  /** First background reconnection delay. Default 500 ms. */
  readonly retryMinMs?: number;
  /** Longest background reconnection delay. Default 30 s. */
  readonly retryMaxMs?: number;
}

/** The health of a pool (and of the key manager or authority over it). */
export interface Pkcs11Health {
  /** True when the token answered (or a reconnection succeeded) just now. */
  readonly ok: boolean;
  /** Why not, when not ok: the last failure's message (never secrets). */
  readonly reason?: string;
  /** The CKR name of the last failure, when it was a PKCS#11 return value. */
  readonly ckr?: string;
  /** The error code of the last failure. */
  readonly code?: string;
  /** When the current state began. */
  readonly since: Date;
}

/** Options of {@link Pkcs11SessionPool.withSession}. */
export interface WithSessionOptions {
  /**
   * Retry once, after a successful reconnection, when the call failed because the
   * connection was lost. Only for idempotent operations (signing, reading). Default false.
   */
  readonly retry?: boolean;
}

type State = 'connected' | 'broken' | 'closed';

// CK_STATE values (PKCS#11 v2.40 §5.6); pkcs11js does not export them.
const CKS_RO_USER_FUNCTIONS = 1;
const CKS_RW_USER_FUNCTIONS = 3;

function ckrOf(err: unknown): string | undefined {
  if (err instanceof SpireEdgeError && typeof err.details['ckr'] === 'string') {
    return err.details['ckr'];
  }
  return undefined;
}

/** A pool of logged-in sessions on one token. Open it with {@link Pkcs11SessionPool.open}. */
export class Pkcs11SessionPool {
  readonly #module: Pkcs11Module;
  readonly #opts: Pkcs11SessionPoolOptions;
  readonly #size: number;
  readonly #clock: Clock;
  readonly #owner: string;
  #state: State = 'broken';
  #since: number;
  #lastError: unknown;
  #permanent = false;
  #slot: Buffer | undefined;
  #token: TokenListing | undefined;
  #epoch = 0;
  #moduleGeneration: number;
  #idle: Buffer[] = [];
  #waiters: Array<(s: Buffer | undefined) => void> = [];
  #recovering: Promise<void> | undefined;
  #cancelRetry: (() => void) | undefined;
  #retryDelay: number;
  readonly #listeners = new Set<(h: Pkcs11Health) => void>();

  private constructor(module: Pkcs11Module, opts: Pkcs11SessionPoolOptions) {
    this.#module = module;
    this.#opts = opts;
    this.#size = opts.size ?? DEFAULT_SESSION_POOL_SIZE;
    this.#clock = opts.clock ?? systemClock;
    this.#owner = opts.owner ?? 'pkcs11';
    this.#since = this.#clock.nowMs();
    this.#moduleGeneration = module.generation;
    this.#retryDelay = opts.retryMinMs ?? 500;
  }

  /**
   * Loads the module (shared per process), finds the token, opens the sessions and logs in.
   *
   * @throws TypeError for malformed options (size not 1–64, empty PIN, no selector).
   * @throws SpireEdgeError `ERR_HSM_MODULE_LOAD`, `ERR_HSM_TOKEN_NOT_FOUND`,
   *   `ERR_HSM_TOKEN_AMBIGUOUS`, `ERR_HSM_CKR` (for example `details.ckr` CKR_PIN_INCORRECT
   *   with a message that names the PIN problem, never the PIN).
   */
  static async open(opts: Pkcs11SessionPoolOptions): Promise<Pkcs11SessionPool> {
    if (opts === null || typeof opts !== 'object') throw new TypeError('options are required');
    const size = opts.size ?? DEFAULT_SESSION_POOL_SIZE;
    if (!Number.isSafeInteger(size) || size < 1 || size > 64) {
      throw new TypeError('session_pool_size must be a whole number from 1 to 64');
    }
    if (typeof opts.pin !== 'string' || opts.pin === '') {
      throw new TypeError('the PIN must be a non-empty string');
    }
    const sel = opts.token;
    if (
      sel === null ||
      typeof sel !== 'object' ||
      (sel.label === undefined &&
        sel.serial === undefined &&
        sel.slotId === undefined &&
        sel.manufacturer === undefined &&
        sel.model === undefined)
    ) {
      throw new TypeError('a token selector (token_label, token_serial or slot_id) is required');
    }
    const module = acquirePkcs11Module(opts.modulePath);
    const pool = new Pkcs11SessionPool(module, opts);
    try {
      await pool.#connect();
    } catch (err) {
      await module.release();
      throw err;
    }
    pool.#state = 'connected';
    return pool;
  }

  /** `token "label" (serial …, slot …)` for messages. */
  get tokenDescription(): string {
    const t = this.#token;
    return t === undefined
      ? describeSelector(this.#opts.token)
      : `token ${JSON.stringify(t.label)} (serial ${t.serial}, slot ${t.slotId})`;
  }

  /** The module path. */
  get modulePath(): string {
    return this.#module.path;
  }

  /** True while connected. */
  get healthy(): boolean {
    return this.#state === 'connected';
  }

  /** The number of sessions. */
  get size(): number {
    return this.#size;
  }

  /** The current health, without probing the token. */
  status(): Pkcs11Health {
    const since = new Date(this.#since);
    if (this.#state === 'connected') return { ok: true, since };
    if (this.#state === 'closed') return { ok: false, reason: `${this.#owner} is closed`, since };
    const err = this.#lastError;
    const ckr = ckrOf(err);
    return {
      ok: false,
      reason: err === undefined ? 'not connected' : describeError(err),
      ...(ckr === undefined ? {} : { ckr }),
      ...(err instanceof SpireEdgeError ? { code: err.code } : {}),
      since,
    };
  }

  /** Calls `listener` whenever the pool turns healthy or unhealthy. Returns an unsubscribe. */
  onHealthChange(listener: (h: Pkcs11Health) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #setState(state: State, err?: unknown): void {
    const wasOk = this.#state === 'connected';
    this.#state = state;
    if (err !== undefined) this.#lastError = err;
    if (wasOk !== (state === 'connected')) {
      this.#since = this.#clock.nowMs();
      const h = this.status();
      for (const l of this.#listeners) {
        try {
          l(h);
        } catch {
          // A listener's failure is not the pool's.
        }
      }
    }
  }

  /** Finds the token, opens sessions, logs in, runs onConnect. Leaves state unchanged. */
  async #connect(): Promise<void> {
    const generation = this.#module.generation;
    const sessions: Buffer[] = [];
    await this.#module.use(async (p11) => {
      const { slot, token } = this.#module.findSlot(this.#opts.token);
      const where = `token ${JSON.stringify(token.label)}`;
      const flags = pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION;
      try {
        try {
          sessions.push(p11.C_OpenSession(slot, flags));
        } catch (err) {
          throw mapPkcs11Error(err, 'C_OpenSession', where);
        }
        try {
          p11.C_Login(sessions[0]!, pkcs11js.CKU_USER, this.#opts.pin);
        } catch (err) {
          const mapped = mapPkcs11Error(err, 'C_Login', `login to ${where}`);
          // Another user of this process (same token) is logged in already: login state is
          // per application, so this session is logged in too.
          if (ckrOf(mapped) !== 'CKR_USER_ALREADY_LOGGED_IN') throw mapped;
        }
        for (let i = 1; i < this.#size; i++) {
          try {
            sessions.push(p11.C_OpenSession(slot, flags));
          } catch (err) {
            throw mapPkcs11Error(err, 'C_OpenSession', where);
          }
        }
        try {
          await this.#opts.onConnect?.(p11, sessions[0]!);
        } catch (err) {
          throw mapPkcs11Error(err, 'key lookup', where);
        }
      } catch (err) {
        for (const s of sessions) closeQuietly(p11, s);
        throw err;
      }
      this.#slot = slot;
      this.#token = token;
    });
    this.#epoch++;
    this.#moduleGeneration = generation;
    this.#idle = sessions;
  }

  #markBroken(err: unknown): void {
    if (this.#state !== 'connected') return;
    this.#epoch++;
    const idle = this.#idle;
    this.#idle = [];
    if (this.#module.generation === this.#moduleGeneration && this.#module.initialized) {
      void this.#module
        .use((p11) => {
          for (const s of idle) closeQuietly(p11, s);
        })
        .catch(() => undefined);
    }
    for (const w of this.#waiters.splice(0)) w(undefined);
    this.#setState('broken', err);
    this.#scheduleRetry(0);
  }

  #scheduleRetry(delay: number): void {
    if (this.#state !== 'broken' || this.#permanent || this.#cancelRetry !== undefined) return;
    this.#cancelRetry = this.#clock.setTimer(delay, () => {
      this.#cancelRetry = undefined;
      this.#recover().catch(() => undefined);
    });
  }

  /**
   * Reconnects (coalesced: concurrent callers share one attempt).
   *
   * @throws SpireEdgeError `ERR_HSM_UNAVAILABLE` when it fails.
   */
  #recover(): Promise<void> {
    if (this.#state === 'connected') return Promise.resolve();
    if (this.#state === 'closed') return Promise.reject(this.#closedError());
    if (this.#permanent) return Promise.reject(this.#unavailable(this.#lastError));
    this.#recovering ??= (async () => {
      try {
        // The generation seen before trying: re-initialise unless someone else did since.
        const generation = this.#module.generation;
        try {
          await this.#connect();
        } catch (err) {
          if (this.#isPermanent(err) || !this.#module.canReinitialize) throw err;
          await this.#module.reinitialize(generation);
          await this.#connect();
        }
        if (this.#state === 'closed') return;
        this.#retryDelay = this.#opts.retryMinMs ?? 500;
        this.#setState('connected');
      } catch (err) {
        this.#lastError = err;
        if (this.#isPermanent(err)) this.#permanent = true;
        const delay = this.#retryDelay;
        this.#retryDelay = Math.min(delay * 2, this.#opts.retryMaxMs ?? 30_000);
        this.#scheduleRetry(delay);
        throw this.#unavailable(err);
      } finally {
        this.#recovering = undefined;
      }
    })();
    return this.#recovering;
  }

  #isPermanent(err: unknown): boolean {
    const ckr = ckrOf(err);
    return ckr !== undefined && isPermanentLoginFailure(ckr);
  }

  #unavailable(cause: unknown): SpireEdgeError {
    const ckr = ckrOf(cause);
    return new SpireEdgeError(
      'ERR_HSM_UNAVAILABLE',
      `pkcs11 ${this.tokenDescription} is unavailable${this.#permanent ? ' (not retrying: fix the credentials and reopen)' : ''}: ${describeError(cause)}`,
      { cause, details: ckr === undefined ? {} : { ckr } },
    );
  }

  #closedError(): SpireEdgeError {
    return new SpireEdgeError('ERR_HSM_CLOSED', `${this.#owner} is closed`);
  }

  #acquire(): Promise<Buffer | undefined> {
    const s = this.#idle.pop();
    if (s !== undefined) return Promise.resolve(s);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #release(session: Buffer, epoch: number): void {
    if (epoch !== this.#epoch || this.#state !== 'connected') {
      if (this.#module.generation === this.#moduleGeneration && this.#module.initialized) {
        void this.#module.use((p11) => closeQuietly(p11, session)).catch(() => undefined);
      }
      return;
    }
    const w = this.#waiters.shift();
    if (w !== undefined) w(session);
    else this.#idle.push(session);
  }

  /**
   * Runs `fn` on a free session of this pool (waiting for one when all are busy), mapping
   * pkcs11js errors to `ERR_HSM_CKR`. A connection-loss failure marks the pool broken.
   *
   * `fn` must finish every operation it starts on the session before it resolves.
   */
  async withSession<T>(
    operation: string,
    fn: (p11: Pkcs11Api, session: Buffer) => T | Promise<T>,
    options: WithSessionOptions = {},
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      if (this.#state === 'closed') throw this.#closedError();
      if (this.#state === 'connected' && this.#module.generation !== this.#moduleGeneration) {
        this.#markBroken(
          new SpireEdgeError(
            'ERR_HSM_UNAVAILABLE',
            `pkcs11 module ${this.#module.path} was re-initialised`,
          ),
        );
      }
      if (this.#state === 'broken') await this.#recover();
      const epoch = this.#epoch;
      const session = await this.#acquire();
      if (session === undefined) continue; // the pool broke or closed while we waited
      try {
        return await this.#module.use((p11) => fn(p11, session));
      } catch (err) {
        const mapped = mapPkcs11Error(err, operation, this.tokenDescription);
        const ckr = ckrOf(mapped);
        if (ckr !== undefined && isConnectionLoss(ckr)) {
          if (epoch === this.#epoch) this.#markBroken(mapped);
          if (options.retry === true && attempt === 0 && (this.#state as State) !== 'closed') {
            try {
              await this.#recover();
              continue;
            } catch {
              throw mapped;
            }
          }
        }
        throw mapped;
      } finally {
        this.#release(session, epoch);
      }
    }
  }

  /**
   * Runs `fn` synchronously on an idle session when one is free and the pool is connected;
   * returns {@link NOT_NOW} when it cannot (use {@link withSession}). A connection-loss
   * failure marks the pool broken and is thrown as `ERR_HSM_CKR`; the caller may then retry
   * through {@link withSession}, which reconnects.
   */
  trySync<T>(operation: string, fn: (p11: Pkcs11Api, session: Buffer) => T): T | typeof NOT_NOW {
    if (this.#state !== 'connected' || this.#module.generation !== this.#moduleGeneration) {
      return NOT_NOW;
    }
    const session = this.#idle.pop();
    if (session === undefined) return NOT_NOW;
    const epoch = this.#epoch;
    try {
      const r = this.#module.useSync((p11) => fn(p11, session));
      return r;
    } catch (err) {
      const mapped = mapPkcs11Error(err, operation, this.tokenDescription);
      const ckr = ckrOf(mapped);
      if (ckr !== undefined && isConnectionLoss(ckr) && epoch === this.#epoch) {
        this.#markBroken(mapped);
      }
      throw mapped;
    } finally {
      this.#release(session, epoch);
    }
  }

  /**
   * Checks the token now: the session still logged in (C_GetSessionInfo) and the token
   * still readable (C_GetTokenInfo). A broken pool tries to reconnect first. Never throws.
   */
  async health(): Promise<Pkcs11Health> {
    if (this.#state === 'closed') return this.status();
    try {
      await this.withSession(
        'health check',
        (p11, session) => {
          const info = p11.C_GetSessionInfo(session);
          if (info.state !== CKS_RW_USER_FUNCTIONS && info.state !== CKS_RO_USER_FUNCTIONS) {
            throw hsmCkrError('C_GetSessionInfo', 0x101, { context: 'session is not logged in' });
          }
          p11.C_GetTokenInfo(this.#slot!);
        },
        { retry: true },
      );
    } catch (err) {
      if (this.#state === 'connected') {
        // A failure that is not a connection loss still says the token is not usable now.
        return { ...this.status(), ok: false, reason: describeError(err) };
      }
    }
    return this.status();
  }

  /** Closes the sessions and releases the module. In-flight calls finish first. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    const wasConnected = this.#state === 'connected';
    this.#cancelRetry?.();
    this.#cancelRetry = undefined;
    const pending = this.#recovering;
    this.#setState('closed');
    this.#epoch++;
    for (const w of this.#waiters.splice(0)) w(undefined);
    const idle = this.#idle;
    this.#idle = [];
    await pending?.catch(() => undefined);
    if (
      wasConnected &&
      this.#module.generation === this.#moduleGeneration &&
      this.#module.initialized
    ) {
      await this.#module
        .use((p11) => {
          for (const s of idle) closeQuietly(p11, s);
        })
        .catch(() => undefined);
    }
    await this.#module.release();
  }
}

function closeQuietly(p11: Pkcs11Api, session: Buffer): void {
  try {
    p11.C_CloseSession(session);
  } catch {
    // The session may already be gone with its token.
  }
}
