/**
 * How the pkcs11 KeyManager runs C_Sign (`signing_mode`). Pure logic, no I/O.
 *
 * - `async`: pkcs11js's asynchronous C_Sign on libuv's worker threads, one operation per
 *   pooled session, as many in parallel as `session_pool_size` (and libuv's 4 threads)
 *   allow. Never blocks the event loop; costs a thread hand-off per signature (~40–60 µs of
 *   main-thread CPU with pkcs11js on the project's machines). For network and USB HSMs,
 *   whose milliseconds per signature are latency that parallel sessions hide.
 * - `worker`: one dedicated signing thread (sign-worker.ts) that receives signatures in
 *   batches (half of what waits each time, so it signs one half while the event loop builds
 *   the certificates of the other) and signs them synchronously on one session; when the
 *   event loop has nothing else to do it signs the oldest waiting input itself. Certificate
 *   building overlaps signing and a thread hand-off is shared by a batch. For fast local
 *   tokens (SoftHSM and other in-process software tokens).
 * - `sync`: C_Sign on the event loop. Cheapest per signature but blocks the loop for as long
 *   as the token takes; only for benchmarks and tokens known to answer in microseconds.
 * - `auto` (default): starts `async`, times a few probe signatures made one after the other
 *   (the key manager runs them in the background once it holds a key), and picks `worker`
 *   when the median is below {@link SigningModeOptions.fastMs}, `async` otherwise.
 */

/** The `signing_mode` values. */
export type Pkcs11SigningMode = 'auto' | 'async' | 'worker' | 'sync';

/** How signatures are made right now. */
export type Pkcs11SigningPath = 'async' | 'worker' | 'sync';

/** The `signing_mode` values, for validation. */
export const PKCS11_SIGNING_MODES: readonly Pkcs11SigningMode[] = [
  'auto',
  'async',
  'worker',
  'sync',
];

/** Thresholds of the `auto` mode. */
export interface SigningModeOptions {
  /** A token whose lone signatures take less than this (median, ms) is fast. Default 1. */
  readonly fastMs?: number;
  /** Lone asynchronous signatures measured before deciding. Default 8. */
  readonly samples?: number;
}

/** Decides how signatures are made. */
export class SigningModeSelector {
  readonly mode: Pkcs11SigningMode;
  readonly #fastMs: number;
  readonly #samples: number;
  #path: Pkcs11SigningPath;
  #decided: boolean;
  #measured: number[] = [];
  #reason: string;

  constructor(mode: Pkcs11SigningMode = 'auto', options: SigningModeOptions = {}) {
    if (!PKCS11_SIGNING_MODES.includes(mode)) {
      throw new TypeError(`signing_mode must be one of ${PKCS11_SIGNING_MODES.join(', ')}`);
    }
    this.mode = mode;
    this.#fastMs = options.fastMs ?? 1;
    this.#samples = options.samples ?? 8;
    this.#path = mode === 'auto' ? 'async' : mode;
    this.#decided = mode !== 'auto';
    this.#reason =
      mode === 'auto' ? 'measuring the token (asynchronous until then)' : `signing_mode ${mode}`;
  }

  /** How the next signature is made. */
  get path(): Pkcs11SigningPath {
    return this.#path;
  }

  /** True when nothing more will be measured (not `auto`, or `auto` has decided). */
  get decided(): boolean {
    return this.#decided;
  }

  /** Why the current path was chosen, for status output. */
  get reason(): string {
    return this.#reason;
  }

  /** Records the wall time (ms) of an asynchronous probe signature (made alone). */
  recordAsync(ms: number): void {
    if (this.#decided) return;
    this.#measured.push(ms);
    if (this.#measured.length < this.#samples) return;
    const sorted = [...this.#measured].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    this.#measured = [];
    this.#decided = true;
    this.#path = median < this.#fastMs ? 'worker' : 'async';
    this.#reason = `token answers in ${median.toFixed(3)} ms (median of ${this.#samples}): ${this.#path === 'worker' ? 'batched on a signing thread' : 'asynchronous, one session per signature'}`;
  }

  /** Leaves the signing thread for good (it could not be started or kept running). */
  abandonWorker(why: string): void {
    if (this.#path !== 'worker') return;
    this.#path = 'async';
    this.#decided = true;
    this.#reason = `signing thread unavailable (${why}): asynchronous`;
  }
}
