import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/common/clock.js';
import { isSpireEdgeError, SpireEdgeError } from '../../../src/common/errors.js';
import { decodePem, decodePemOfType, encodePem } from '../../../src/common/pem.js';
import { jitter, seededRandom } from '../../../src/common/random.js';

describe('PEM', () => {
  it('round-trips arbitrary bytes and tolerates CRLF and surrounding text', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 500 }), (der) => {
        const pem = encodePem('CERTIFICATE', der);
        const text = `subject=foo\r\n${pem.replace(/\n/g, '\r\n')}trailing text`;
        const [block] = decodePem(text);
        expect(block?.label).toBe('CERTIFICATE');
        expect(Buffer.from(block!.der)).toEqual(Buffer.from(der));
      }),
    );
  });
  it('rejects mismatched labels, bad base64 and unterminated blocks with ERR_PEM_INVALID', () => {
    const bad = [
      '-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----',
      '-----BEGIN CERTIFICATE-----\nA$AA\n-----END CERTIFICATE-----',
      '-----BEGIN CERTIFICATE-----\nAAAA\n',
    ];
    for (const t of bad) {
      expect(() => decodePem(t)).toThrow(expect.objectContaining({ code: 'ERR_PEM_INVALID' }));
    }
    expect(() =>
      decodePemOfType(encodePem('PRIVATE KEY', Uint8Array.of(1)), 'CERTIFICATE', 'bundle'),
    ).toThrow(/unexpected PEM block PRIVATE KEY/);
  });
});

describe('ManualClock', () => {
  it('fires timers in time order only when advanced', async () => {
    const clock = new ManualClock(0);
    const fired: string[] = [];
    clock.setTimer(200, () => fired.push('b'));
    clock.setTimer(100, () => fired.push('a'));
    const cancel = clock.setTimer(150, () => fired.push('cancelled'));
    cancel();
    clock.advance(99);
    expect(fired).toEqual([]);
    clock.advance(150);
    expect(fired).toEqual(['a', 'b']);
    expect(clock.nowMs()).toBe(249);
    const waiting = clock.waitForTimer();
    clock.setTimer(10, () => fired.push('c'));
    await waiting;
    expect(clock.pendingTimers).toBe(1);
    expect(() => clock.set(0)).toThrow(TypeError);
  });
  it('gives up, naming the instant, when a timer keeps re-arming itself with 0 ms', () => {
    const clock = new ManualClock(1000);
    let fires = 0;
    const rearm = (): void => {
      fires++;
      clock.setTimer(0, rearm);
    };
    clock.setTimer(5, rearm);
    expect(() => clock.advance(10)).toThrow(
      /10000 timers fired at 1970-01-01T00:00:01\.005Z without time moving/,
    );
    expect(fires).toBe(ManualClock.MAX_FIRES_AT_ONE_INSTANT);
    // many timers at one instant, each fired once, are fine; so is a chain that moves time
    const busy = new ManualClock(0);
    let n = 0;
    for (let i = 0; i < 5000; i++) busy.setTimer(7, () => n++);
    let hops = 0;
    const hop = (): void => {
      if (++hops < 20_000) busy.setTimer(1, hop);
    };
    busy.setTimer(0, hop);
    busy.advance(30_000);
    expect([n, hops, busy.nowMs()]).toEqual([5000, 20_000, 30_000]);
  });

  it('timers set by a firing timer fire in the same advance when due', () => {
    const clock = new ManualClock(0);
    const at: number[] = [];
    const tick = (): void => {
      at.push(clock.nowMs());
      if (at.length < 5) clock.setTimer(10, tick);
    };
    clock.setTimer(10, tick);
    clock.advance(100);
    expect(at).toEqual([10, 20, 30, 40, 50]);
  });
});

describe('random', () => {
  it('seeded random is deterministic and in range', () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    expect(a.bytes(16)).toEqual(b.bytes(16));
    for (let i = 0; i < 1000; i++) {
      const f = a.float();
      expect(f).toBeGreaterThanOrEqual(0);
      expect(f).toBeLessThan(1);
      const n = a.int(5, 10);
      expect(n).toBeGreaterThanOrEqual(5);
      expect(n).toBeLessThan(10);
    }
  });
  it('jitter stays within ±fraction and spreads', () => {
    const r = seededRandom(1);
    const v = Array.from({ length: 1000 }, () => jitter(100, 0.1, r));
    expect(Math.min(...v)).toBeGreaterThanOrEqual(90);
    expect(Math.max(...v)).toBeLessThanOrEqual(110);
    expect(Math.max(...v) - Math.min(...v)).toBeGreaterThan(15);
  });
});

describe('errors', () => {
  it('carry a stable code, details and cause', () => {
    const cause = new Error('low level');
    const e = new SpireEdgeError('ERR_X', 'could not do x', { cause, details: { rc: 0x902 } });
    expect(isSpireEdgeError(e, 'ERR_X')).toBe(true);
    expect(isSpireEdgeError(e, 'ERR_Y')).toBe(false);
    expect(e.cause).toBe(cause);
    expect(e.details).toEqual({ rc: 0x902 });
    expect(isSpireEdgeError(new Error('x'))).toBe(false);
  });
});

describe('every', () => {
  it('repeats without overlap, reports errors and stops', async () => {
    const { every } = await import('../../../src/common/clock.js');
    const clock = new ManualClock(0);
    const runs: number[] = [];
    const errors: unknown[] = [];
    let release: () => void = () => {};
    const stop = every(
      clock,
      100,
      () => {
        runs.push(clock.nowMs());
        if (runs.length === 2) return Promise.reject(new Error('boom'));
        if (runs.length === 3) return new Promise<void>((r) => (release = r));
        return Promise.resolve();
      },
      (e) => errors.push(e),
    );
    for (let i = 0; i < 3; i++) {
      clock.advance(100);
      await new Promise((r) => setImmediate(r));
    }
    expect(runs).toEqual([100, 200, 300]);
    expect(errors).toHaveLength(1);
    // The third run has not settled: no further run is scheduled however far time moves.
    clock.advance(1000);
    expect(runs).toHaveLength(3);
    release();
    await new Promise((r) => setImmediate(r));
    clock.advance(100);
    expect(runs).toEqual([100, 200, 300, 1400]);
    stop();
    clock.advance(1000);
    expect(runs).toHaveLength(4);
  });
});

describe('cryptoRandom', () => {
  it('float() is in [0, 1) and spreads; int() and bytes() work', async () => {
    const { cryptoRandom } = await import('../../../src/common/random.js');
    const v = Array.from({ length: 2000 }, () => cryptoRandom.float());
    expect(Math.min(...v)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...v)).toBeLessThan(1);
    expect(Math.max(...v) - Math.min(...v)).toBeGreaterThan(0.9);
    expect(cryptoRandom.bytes(16)).toHaveLength(16);
    const n = cryptoRandom.int(3, 5);
    expect(n === 3 || n === 4).toBe(true);
  });
});
