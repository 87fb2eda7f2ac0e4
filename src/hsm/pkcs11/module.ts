/**
 * A loaded PKCS#11 library (a "module": `libsofthsm2.so`, `libykcs11.so`, `libcloudhsm_pkcs11.so`…)
 * over pkcs11js, shared by everything in the process that names the same path: the library
 * is loaded and `C_Initialize`d once per process (PKCS#11 v2.40 §5.4: a second C_Initialize
 * fails with CKR_CRYPTOKI_ALREADY_INITIALIZED), with `CKF_OS_LOCKING_OK` so that calls from
 * libuv worker threads (the pkcs11js `…Async` functions) are safe — without it SoftHSM
 * corrupts its heap under concurrent sessions.
 *
 * The module counts calls in flight so that {@link Pkcs11Module.reinitialize} (`C_Finalize` +
 * `C_Initialize`, the only way to make SoftHSM and some network HSM clients see a token that
 * came back) never runs under a running call; every session of every user is invalid after
 * it, which users notice through {@link Pkcs11Module.generation}.
 *
 * Errors: `ERR_HSM_MODULE_LOAD` (the library file is missing or is not a PKCS#11 library),
 * `ERR_HSM_CKR` (a Cryptoki call failed; see ckr.ts), `ERR_HSM_TOKEN_NOT_FOUND`,
 * `ERR_HSM_TOKEN_AMBIGUOUS`.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import pkcs11js from 'pkcs11js';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import { hsmCkrError, rvOfPkcs11Error } from './ckr.js';

/** The pkcs11js binding object (one per loaded module). */
export type Pkcs11Api = pkcs11js.PKCS11;

/** How a token is chosen; every field given must match. At least one is required. */
export interface TokenSelector {
  /** CKA token label (CK_TOKEN_INFO.label, trailing blanks ignored). */
  readonly label?: string;
  /** Token serial number (CK_TOKEN_INFO.serialNumber, trailing blanks ignored). */
  readonly serial?: string;
  /** The slot ID (CK_SLOT_ID). */
  readonly slotId?: number;
  /** Token manufacturer ID. */
  readonly manufacturer?: string;
  /** Token model. */
  readonly model?: string;
}

/** A token as a module lists it. */
export interface TokenListing {
  readonly slotId: number;
  readonly label: string;
  readonly serial: string;
  readonly manufacturer: string;
  readonly model: string;
}

/** Converts a pkcs11js handle (a little-endian CK_ULONG in a Buffer) to a number. */
export function handleToNumber(handle: Buffer): number {
  if (handle.length >= 8) return Number(handle.readBigUInt64LE(0));
  return handle.readUInt32LE(0);
}

/** Converts a pkcs11js error into the project's coded error, or returns other errors as is. */
export function mapPkcs11Error(err: unknown, operation: string, context?: string): unknown {
  const rv = rvOfPkcs11Error(err);
  if (rv !== undefined) {
    return hsmCkrError(operation, rv, {
      cause: err,
      ...(context === undefined ? {} : { context }),
    });
  }
  return err;
}

/** Describes a selector for messages (no secrets in it). */
export function describeSelector(sel: TokenSelector): string {
  const parts: string[] = [];
  if (sel.label !== undefined) parts.push(`label ${JSON.stringify(sel.label)}`);
  if (sel.serial !== undefined) parts.push(`serial ${JSON.stringify(sel.serial)}`);
  if (sel.slotId !== undefined) parts.push(`slot ${sel.slotId}`);
  if (sel.manufacturer !== undefined)
    parts.push(`manufacturer ${JSON.stringify(sel.manufacturer)}`);
  if (sel.model !== undefined) parts.push(`model ${JSON.stringify(sel.model)}`);
  return parts.length === 0 ? 'any token' : `token with ${parts.join(', ')}`;
}

/** Returned by the synchronous fast paths when they cannot run now (use the async path). */
export const NOT_NOW: unique symbol = Symbol('pkcs11 not now');

const trimPad = (s: string): string => s.replace(/[ \0]+$/, '');

/** One loaded and initialised PKCS#11 library. Get it with {@link acquirePkcs11Module}. */
export class Pkcs11Module {
  /** The absolute path the library was loaded from. */
  readonly path: string;
  readonly #p11: Pkcs11Api;
  #refs = 0;
  #initialized = false;
  /** False when something else in the process had initialised the library before us. */
  #ownsInit = true;
  #generation = 0;
  #inflight = 0;
  #drained: (() => void) | undefined;
  #gate: Promise<void> | undefined;

  constructor(path: string, p11: Pkcs11Api) {
    this.path = path;
    this.#p11 = p11;
  }

  /** Increments on every re-initialisation: sessions from an older generation are dead. */
  get generation(): number {
    return this.#generation;
  }

  /** True while the library is initialised. */
  get initialized(): boolean {
    return this.#initialized;
  }

  /** True when this process initialised the library (and so may re-initialise it). */
  get canReinitialize(): boolean {
    return this.#ownsInit;
  }

  /** @internal */
  addRef(): void {
    this.#refs++;
  }

  /** @internal C_Initialize; accepts a library another user of the process initialised. */
  initialize(): void {
    try {
      this.#p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
      this.#initialized = true;
    } catch (err) {
      const mapped = mapPkcs11Error(err, 'C_Initialize', `module ${this.path}`);
      if (
        mapped instanceof SpireEdgeError &&
        mapped.details['ckr'] === 'CKR_CRYPTOKI_ALREADY_INITIALIZED'
      ) {
        this.#initialized = true;
        this.#ownsInit = false;
        return;
      }
      throw mapped;
    }
  }

  /**
   * Runs `fn` with the library, counting it as in flight so a re-initialisation waits for it.
   * Waits while a re-initialisation is under way.
   *
   * @throws SpireEdgeError `ERR_HSM_CKR` (CKR_CRYPTOKI_NOT_INITIALIZED) when the last
   *   re-initialisation failed; errors of `fn` pass through unchanged.
   */
  async use<T>(fn: (p11: Pkcs11Api) => T | Promise<T>): Promise<T> {
    while (this.#gate !== undefined) await this.#gate;
    if (!this.#initialized) {
      throw hsmCkrError('C_Initialize', 0x190, { context: `module ${this.path}` });
    }
    this.#inflight++;
    try {
      return await fn(this.#p11);
    } finally {
      this.#inflight--;
      if (this.#inflight === 0 && this.#drained !== undefined) this.#drained();
    }
  }

  /**
   * Runs `fn` synchronously when the library is usable right now (initialised, no
   * re-initialisation under way), counting it as in flight; returns {@link NOT_NOW}
   * otherwise. For fast paths that must not wait.
   */
  useSync<T>(fn: (p11: Pkcs11Api) => T): T | typeof NOT_NOW {
    if (this.#gate !== undefined || !this.#initialized) return NOT_NOW;
    this.#inflight++;
    try {
      return fn(this.#p11);
    } finally {
      this.#inflight--;
      if (this.#inflight === 0 && this.#drained !== undefined) this.#drained();
    }
  }

  /**
   * Lists the tokens present (slots with CKF_TOKEN_PRESENT) whose information can be read.
   * Call inside {@link use}.
   */
  listTokens(): { tokens: TokenListing[]; slots: Map<number, Buffer>; errors: unknown[] } {
    const p11 = this.#p11;
    let slotHandles: Buffer[];
    try {
      slotHandles = p11.C_GetSlotList(true);
    } catch (err) {
      throw mapPkcs11Error(err, 'C_GetSlotList', `module ${this.path}`);
    }
    const tokens: TokenListing[] = [];
    const slots = new Map<number, Buffer>();
    const errors: unknown[] = [];
    for (const h of slotHandles) {
      const slotId = handleToNumber(h);
      try {
        const info = p11.C_GetTokenInfo(h);
        if ((info.flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0) continue;
        tokens.push({
          slotId,
          label: trimPad(info.label),
          serial: trimPad(info.serialNumber),
          manufacturer: trimPad(info.manufacturerID),
          model: trimPad(info.model),
        });
        slots.set(slotId, h);
      } catch (err) {
        errors.push(mapPkcs11Error(err, 'C_GetTokenInfo', `slot ${slotId}`));
      }
    }
    return { tokens, slots, errors };
  }

  /**
   * The slot holding the one token that matches `selector`. Call inside {@link use}.
   *
   * @throws SpireEdgeError `ERR_HSM_TOKEN_NOT_FOUND` naming the selector and the tokens
   *   that are present; `ERR_HSM_TOKEN_AMBIGUOUS` when several match.
   */
  findSlot(selector: TokenSelector): { slot: Buffer; token: TokenListing } {
    const { tokens, slots, errors } = this.listTokens();
    const matches = tokens.filter(
      (t) =>
        (selector.label === undefined || t.label === selector.label) &&
        (selector.serial === undefined || t.serial === selector.serial) &&
        (selector.slotId === undefined || t.slotId === selector.slotId) &&
        (selector.manufacturer === undefined || t.manufacturer === selector.manufacturer) &&
        (selector.model === undefined || t.model === selector.model),
    );
    if (matches.length === 1) {
      const token = matches[0]!;
      return { slot: slots.get(token.slotId)!, token };
    }
    if (matches.length > 1) {
      throw new SpireEdgeError(
        'ERR_HSM_TOKEN_AMBIGUOUS',
        `pkcs11 module ${this.path}: ${matches.length} tokens match the ${describeSelector(selector)}; add token_serial or slot_id`,
        { details: { slots: matches.map((m) => m.slotId) } },
      );
    }
    const present =
      tokens.length === 0
        ? 'no initialised token is present'
        : `present: ${tokens.map((t) => `${JSON.stringify(t.label)} (serial ${t.serial}, slot ${t.slotId})`).join(', ')}`;
    const unreadable = errors.length === 0 ? '' : `; ${errors.length} slot(s) could not be read`;
    throw new SpireEdgeError(
      'ERR_HSM_TOKEN_NOT_FOUND',
      `pkcs11 module ${this.path}: no ${describeSelector(selector)} (${present}${unreadable})`,
      errors.length === 0 ? {} : { cause: errors[0] },
    );
  }

  /**
   * Finalises and re-initialises the library, after waiting for every call in flight. Does
   * nothing when the generation already moved past `seenGeneration` (another user did it).
   * The generation increases even when C_Initialize fails (the old sessions are gone); a
   * later call retries C_Initialize.
   *
   * @throws SpireEdgeError `ERR_HSM_CKR` when C_Initialize fails.
   */
  async reinitialize(seenGeneration: number): Promise<void> {
    while (this.#gate !== undefined) {
      await this.#gate;
      if (this.#generation !== seenGeneration) return;
    }
    if (this.#generation !== seenGeneration) return;
    let open!: () => void;
    this.#gate = new Promise<void>((r) => {
      open = r;
    });
    try {
      if (this.#inflight > 0) {
        await new Promise<void>((r) => {
          this.#drained = r;
        });
        this.#drained = undefined;
      }
      if (this.#initialized) {
        this.#initialized = false;
        this.#generation++;
        try {
          this.#p11.C_Finalize();
        } catch {
          // The library may already consider itself finalised; C_Initialize tells.
        }
      }
      this.initialize();
    } finally {
      this.#gate = undefined;
      open();
    }
  }

  /** @internal Drops one reference; the last one finalises and unloads the library. */
  async release(): Promise<void> {
    this.#refs--;
    if (this.#refs > 0) return;
    REGISTRY.delete(this.path);
    while (this.#gate !== undefined) await this.#gate;
    if (this.#inflight > 0) {
      await new Promise<void>((r) => {
        this.#drained = r;
      });
      this.#drained = undefined;
    }
    if (this.#initialized && this.#ownsInit) {
      this.#initialized = false;
      try {
        this.#p11.C_Finalize();
      } catch {
        // Nothing useful to do at shutdown.
      }
    }
    try {
      this.#p11.close();
    } catch {
      // Unloading is best effort.
    }
  }
}

const REGISTRY = new Map<string, Pkcs11Module>();

/**
 * Loads and initialises the PKCS#11 library at `modulePath`, or returns the instance this
 * process already has for it (reference-counted: call `release()` once per acquire).
 *
 * @throws TypeError when `modulePath` is not a non-empty string.
 * @throws SpireEdgeError `ERR_HSM_MODULE_LOAD` when the file does not exist or cannot be
 *   loaded as a PKCS#11 library; `ERR_HSM_CKR` when C_Initialize fails (SoftHSM answers
 *   CKR_GENERAL_ERROR when its token directory is missing).
 */
export function acquirePkcs11Module(modulePath: string): Pkcs11Module {
  if (typeof modulePath !== 'string' || modulePath === '') {
    throw new TypeError('module_path must be a non-empty string');
  }
  const path = resolve(modulePath);
  const existing = REGISTRY.get(path);
  if (existing !== undefined) {
    existing.addRef();
    return existing;
  }
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new Error('not a regular file');
  } catch (err) {
    throw new SpireEdgeError(
      'ERR_HSM_MODULE_LOAD',
      `pkcs11 module_path ${path} cannot be used: ${describeError(err)}`,
      { cause: err, details: { path } },
    );
  }
  const p11 = new pkcs11js.PKCS11();
  try {
    p11.load(path);
  } catch (err) {
    throw new SpireEdgeError(
      'ERR_HSM_MODULE_LOAD',
      `pkcs11 module_path ${path} is not a loadable PKCS#11 library: ${describeError(err)}`,
      { cause: err, details: { path } },
    );
  }
  const mod = new Pkcs11Module(path, p11);
  try {
    mod.initialize();
  } catch (err) {
    try {
      p11.close();
    } catch {
      // Best effort.
    }
    throw err;
  }
  mod.addRef();
  REGISTRY.set(path, mod);
  return mod;
}
