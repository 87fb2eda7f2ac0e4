/**
 * Time source injected into every stateful service, so that rotation and expiry can be
 * tested deterministically. Pure verifiers take `{ now }` instead.
 */
export interface Clock {
  /** The current time. */
  now(): Date;
  /** Milliseconds since the epoch, as {@link Date.now}. */
  nowMs(): number;
  /** Calls `fn` after `ms` milliseconds; the returned function cancels the timer. */
  setTimer(ms: number, fn: () => void): () => void;
}

/** The real wall clock. Timers are unref'd so they never keep a process alive on their own. */
export const systemClock: Clock = {
  now: () => new Date(),
  nowMs: () => Date.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref?.();
    return () => clearTimeout(t);
  },
};

interface PendingTimer {
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A manual clock for tests: time moves only when {@link ManualClock.advance} is called,
 * which fires every timer that falls due, in order.
 */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: PendingTimer[] = [];
  #waiters: Array<() => void> = [];

  constructor(start: Date | number = Date.UTC(2026, 0, 1)) {
    this.#now = typeof start === 'number' ? start : start.getTime();
  }

  now(): Date {
    return new Date(this.#now);
  }

  nowMs(): number {
    return this.#now;
  }

  setTimer(ms: number, fn: () => void): () => void {
    const timer: PendingTimer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn };
    this.#timers.push(timer);
    for (const w of this.#waiters.splice(0)) w();
    return () => {
      this.#timers = this.#timers.filter((t) => t !== timer);
    };
  }

  /** Number of timers not yet fired. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** Resolves once at least one timer is pending (SPIRE's `WaitForTimer`). */
  waitForTimer(): Promise<void> {
    if (this.#timers.length > 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /**
   * Moves time forward by `ms`, firing due timers in time order. Throws when timers keep
   * firing without time moving ({@link ManualClock.MAX_FIRES_AT_ONE_INSTANT} at one instant: a
   * timer that re-arms itself with 0 ms), which would otherwise loop forever.
   */
  advance(ms: number): void {
    const target = this.#now + ms;
    let firedAtNow = 0;
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.#timers[0];
      if (next === undefined || next.at > target) break;
      this.#timers.shift();
      firedAtNow = next.at === this.#now ? firedAtNow + 1 : 1;
      if (firedAtNow > ManualClock.MAX_FIRES_AT_ONE_INSTANT) {
        throw new Error(
          `ManualClock.advance: ${ManualClock.MAX_FIRES_AT_ONE_INSTANT} timers fired at ${new Date(next.at).toISOString()} without time moving (a timer that re-arms itself with 0 ms?)`,
        );
      }
      this.#now = next.at;
      next.fn();
    }
    this.#now = target;
  }

  /** Timers {@link ManualClock.advance} fires at one instant before it gives up. */
  static readonly MAX_FIRES_AT_ONE_INSTANT = 10_000;

  /** Sets the time (only forwards), firing due timers. */
  set(to: Date | number): void {
    const t = typeof to === 'number' ? to : to.getTime();
    if (t < this.#now) throw new TypeError('ManualClock only moves forwards');
    this.advance(t - this.#now);
  }
}

/**
 * Runs `task` every `ms` on `clock`, never overlapping: the next run is scheduled when the
 * previous one has settled. Errors go to `onError`. Returns a function that stops it.
 */
export function every(
  clock: Clock,
  ms: number,
  task: () => Promise<unknown>,
  onError: (err: unknown) => void = () => {},
): () => void {
  let stopped = false;
  let cancel: () => void = () => {};
  const tick = (): void => {
    task()
      .catch(onError)
      .finally(() => {
        if (!stopped) cancel = clock.setTimer(ms, tick);
      });
  };
  cancel = clock.setTimer(ms, tick);
  return () => {
    stopped = true;
    cancel();
  };
}
