/**
 * The events one `StreamSecrets` call reacts to, in one queue: requests from the client
 * (ACKs, NACKs, subscription changes), changes of the identity source, a deadline (the next
 * SVID expiry), and the end of the call (client half-close, cancellation, server shutdown).
 *
 * Requests are read one at a time: the next is not pulled from the client until the handler
 * took the previous one, so a client that floods requests meets HTTP/2 flow control
 * instead of a growing queue. Source changes coalesce into one pending flag. The source
 * subscription and the timer are released the moment the call ends, even if the transport
 * never resumes the handler's generator again.
 */
import type { Clock } from '../../common/clock.js';
import type { IdentitySource } from '../workload-api/identity-source.js';

/** Longest single timer armed; it simply re-arms (setTimeout overflows past 2^31 ms). */
const MAX_WAKE_MS = 24 * 3600 * 1000;

/** One event of a stream. */
export type StreamEvent<R> =
  | { readonly kind: 'request'; readonly request: R }
  | { readonly kind: 'change' }
  | { readonly kind: 'end' };

/** See the module comment. */
export class StreamEvents<R> {
  #changed = false;
  #closed = false;
  #ended = false;
  #error: { readonly error: unknown } | undefined;
  #request: { readonly request: R; readonly taken: () => void } | undefined;
  #wake: (() => void) | undefined;
  #cancelTimer: () => void = () => {};
  readonly #unsubscribe: () => void;
  readonly #signal: AbortSignal;
  readonly #clock: Clock;

  constructor(
    requests: AsyncIterable<R>,
    source: IdentitySource,
    signal: AbortSignal,
    clock: Clock,
  ) {
    this.#signal = signal;
    this.#clock = clock;
    this.#unsubscribe = source.subscribe(() => {
      this.#changed = true;
      this.#poke();
    });
    signal.addEventListener('abort', this.close, { once: true });
    if (signal.aborted) this.close();
    else void this.#pump(requests);
  }

  async #pump(requests: AsyncIterable<R>): Promise<void> {
    try {
      for await (const request of requests) {
        if (this.#closed) return;
        await new Promise<void>((taken) => {
          this.#request = { request, taken };
          this.#poke();
        });
        if (this.#closed) return;
      }
      this.#ended = true;
    } catch (error) {
      if (!this.#closed) this.#error = { error };
    }
    this.#poke();
  }

  #poke(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /**
   * The next event: a pending request first, then a read error (thrown), the client's
   * half-close or the call's end (`end`), then a change (source notification, or
   * `wakeAtMs` reached on the clock).
   */
  async next(wakeAtMs?: number): Promise<StreamEvent<R>> {
    for (;;) {
      const pending = this.#request;
      if (pending !== undefined && !this.#closed) {
        this.#request = undefined;
        pending.taken();
        return { kind: 'request', request: pending.request };
      }
      if (this.#error !== undefined) throw this.#error.error;
      if (this.#closed || this.#ended) return { kind: 'end' };
      if (this.#changed) {
        this.#changed = false;
        return { kind: 'change' };
      }
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        if (wakeAtMs !== undefined) {
          const delay = Math.min(MAX_WAKE_MS, Math.max(0, wakeAtMs - this.#clock.nowMs()));
          this.#cancelTimer = this.#clock.setTimer(delay, () => {
            if (this.#clock.nowMs() >= wakeAtMs) this.#changed = true;
            this.#poke();
          });
        }
      });
      this.#cancelTimer();
      this.#cancelTimer = () => {};
    }
  }

  /** Unsubscribes, cancels the timer, lets the reader stop; `next` answers `end`. Idempotent. */
  readonly close = (): void => {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    this.#cancelTimer();
    this.#signal.removeEventListener('abort', this.close);
    const pending = this.#request;
    this.#request = undefined;
    pending?.taken();
    this.#poke();
  };
}
