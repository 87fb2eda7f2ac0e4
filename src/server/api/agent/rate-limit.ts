/**
 * Per-key token buckets for the agent API (SPIRE's `pkg/server/api/middleware/ratelimit.go`
 * with `golang.org/x/time/rate`): a key may spend `perSecond` tokens per second with a burst
 * of `burst`; a call that needs more waits for the tokens, as SPIRE's `WaitN` does, but at
 * most `maxWaitMs` (SPIRE waits until the call's deadline), then fails with
 * `ResourceExhausted`. Asking for more than the burst fails at once, as in SPIRE.
 *
 * SPIRE's limits (`pkg/server/api/limits`): AttestAgent 1/s per caller IP; X.509 and JWT
 * signing (BatchNewX509SVID counts one token per CSR, RenewAgent, NewJWTSVID) 500/s; PostStatus
 * 10/s. SPIRE keys all of them by IP; we key signing by agent SPIFFE ID instead (devices
 * behind one NAT address would otherwise share one budget), see docs/node-attestation.md.
 *
 * Errors: `ERR_AGENT_API_RESOURCE_EXHAUSTED`.
 */
import type { Clock } from '../../../common/clock.js';
import { SpireEdgeError } from '../../../common/errors.js';

/** SPIRE's `AttestLimitPerIP`. */
export const ATTEST_LIMIT_PER_SECOND = 1;
/** SPIRE's `SignLimitPerIP`. */
export const SIGN_LIMIT_PER_SECOND = 500;
/** SPIRE's `PostStatusLimitPerIP`. */
export const POST_STATUS_LIMIT_PER_SECOND = 10;

/** Options of {@link KeyedRateLimiter}. */
export interface KeyedRateLimiterOptions {
  readonly perSecond: number;
  /** Bucket size; `perSecond` by default (as SPIRE: `rate.NewLimiter(limit, limit)`). */
  readonly burst?: number;
  readonly clock: Clock;
  /** Longest wait for tokens before failing; default 10 s. */
  readonly maxWaitMs?: number;
  /** What the limit is for, in error messages (`attestation`, `signing`). */
  readonly what: string;
}

interface Bucket {
  tokens: number;
  atMs: number;
}

function exhausted(message: string): SpireEdgeError {
  return new SpireEdgeError('ERR_AGENT_API_RESOURCE_EXHAUSTED', message);
}

/** Token buckets keyed by caller. Idle keys are forgotten so memory stays bounded. */
export class KeyedRateLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #clock: Clock;
  readonly #maxWaitMs: number;
  readonly #what: string;
  readonly #buckets = new Map<string, Bucket>();
  #sweepAt = 4096;

  constructor(options: KeyedRateLimiterOptions) {
    const { perSecond } = options;
    if (!(perSecond > 0) || !Number.isFinite(perSecond)) {
      throw new TypeError('perSecond must be a positive number');
    }
    this.#rate = perSecond / 1000;
    this.#burst = options.burst ?? Math.max(1, Math.floor(perSecond));
    if (!Number.isSafeInteger(this.#burst) || this.#burst < 1) {
      throw new TypeError('burst must be an integer >= 1');
    }
    this.#clock = options.clock;
    this.#maxWaitMs = options.maxWaitMs ?? 10_000;
    this.#what = options.what;
  }

  /** Keys currently tracked. */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Takes `count` tokens for `key`, waiting for them when needed.
   *
   * @throws SpireEdgeError `ERR_AGENT_API_RESOURCE_EXHAUSTED` when `count` exceeds the burst
   *   or the wait would exceed `maxWaitMs`; rejects with the signal's reason on abort.
   */
  async take(key: string, count: number, signal?: AbortSignal): Promise<void> {
    if (count > this.#burst) {
      throw exhausted(
        `rejecting request due to ${this.#what} rate limiting: rate (${count}) exceeds burst size (${this.#burst})`,
      );
    }
    const now = this.#clock.nowMs();
    let b = this.#buckets.get(key);
    if (b === undefined) {
      b = { tokens: this.#burst, atMs: now };
      this.#buckets.set(key, b);
      if (this.#buckets.size > this.#sweepAt) this.#sweep(now);
    } else {
      b.tokens = Math.min(this.#burst, b.tokens + (now - b.atMs) * this.#rate);
      b.atMs = now;
    }
    b.tokens -= count;
    if (b.tokens >= 0) return;
    const waitMs = Math.ceil(-b.tokens / this.#rate);
    if (waitMs > this.#maxWaitMs) {
      b.tokens += count;
      throw exhausted(
        `rejecting request due to ${this.#what} rate limiting: would wait ${waitMs} ms for tokens`,
      );
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        cancel();
        reject(signal?.reason);
      };
      const cancel = this.#clock.setTimer(waitMs, () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Drops buckets that have refilled (they behave exactly like new ones). */
  #sweep(now: number): void {
    for (const [k, b] of this.#buckets) {
      if (b.tokens + (now - b.atMs) * this.#rate >= this.#burst) this.#buckets.delete(k);
    }
    this.#sweepAt = Math.max(4096, this.#buckets.size * 2);
  }
}
