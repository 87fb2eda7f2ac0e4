/**
 * Exponential backoff with jitter, as the agent uses it while the server is unreachable: the
 * first retry after `initialMs`, each following one twice as late, never later than `maxMs`
 * (the sync loop: 5 s → 8 min, SPIRE's agent defaults), every delay scaled by a random factor
 * in [1 − jitter, 1 + jitter] (reflected below the cap) so that a fleet of agents that lost the
 * server together does not come back in lockstep.
 *
 * Pure arithmetic over an injected {@link RandomSource}; the caller owns the timers.
 */
import { cryptoRandom, jitter, type RandomSource } from '../../common/random.js';

/** Options of {@link Backoff}. */
export interface BackoffOptions {
  /** The delay after the first failure, ms (> 0). */
  readonly initialMs: number;
  /** The longest delay, ms (≥ `initialMs`). */
  readonly maxMs: number;
  /** Growth per failure; default 2. */
  readonly multiplier?: number;
  /** Jitter fraction in [0, 1); default 0.1 (±10 %). */
  readonly jitter?: number;
  readonly random?: RandomSource;
}

/** Counts consecutive failures and answers how long to wait before the next attempt. */
export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  readonly #multiplier: number;
  readonly #jitter: number;
  readonly #random: RandomSource;
  #failures = 0;

  /** @throws TypeError for delays that are not positive or a cap below the first delay. */
  constructor(options: BackoffOptions) {
    const { initialMs, maxMs } = options;
    if (!Number.isFinite(initialMs) || initialMs <= 0) {
      throw new TypeError('initialMs must be a positive number');
    }
    if (!Number.isFinite(maxMs) || maxMs < initialMs) {
      throw new TypeError('maxMs must be a number no smaller than initialMs');
    }
    const multiplier = options.multiplier ?? 2;
    if (!Number.isFinite(multiplier) || multiplier < 1) {
      throw new TypeError('multiplier must be a number ≥ 1');
    }
    const j = options.jitter ?? 0.1;
    if (!Number.isFinite(j) || j < 0 || j >= 1) throw new TypeError('jitter must be in [0, 1)');
    this.#initial = initialMs;
    this.#max = maxMs;
    this.#multiplier = multiplier;
    this.#jitter = j;
    this.#random = options.random ?? cryptoRandom;
  }

  /** Consecutive failures recorded since the last {@link reset}. */
  get failures(): number {
    return this.#failures;
  }

  /** The cap, ms. */
  get maxMs(): number {
    return this.#max;
  }

  /**
   * Records one more failure and returns the delay before the next attempt, ms: `initialMs ×
   * multiplier^(failures − 1)`, capped at `maxMs`, jittered; a jittered delay above the cap is
   * reflected below it, so the result is never above `maxMs`.
   */
  next(): number {
    // Exponent bounded so the arithmetic never overflows to Infinity.
    const exp = Math.min(this.#failures, 64);
    const base = Math.min(this.#max, this.#initial * this.#multiplier ** exp);
    this.#failures++;
    let delay = jitter(base, this.#jitter, this.#random);
    // Above the cap, reflect below it: agents at the cap stay spread out instead of all
    // landing on exactly `maxMs`.
    if (delay > this.#max) delay = Math.max(0, 2 * this.#max - delay);
    return Math.max(1, Math.round(delay));
  }

  /** Forgets the failures (after a success). */
  reset(): void {
    this.#failures = 0;
  }
}
