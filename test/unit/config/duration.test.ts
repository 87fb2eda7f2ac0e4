import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import {
  formatDuration,
  formatDurationNanos,
  parseDuration,
  parseDurationNanos,
} from '../../../src/config/index.js';

function durationError(input: string): string {
  try {
    parseDurationNanos(input);
  } catch (err) {
    if (isSpireEdgeError(err, 'ERR_DURATION_INVALID')) return err.message;
    throw err;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
}

describe('parseDuration (Go time.ParseDuration)', () => {
  it.each([
    ['0', 0],
    ['+0', 0],
    ['-0', 0],
    ['1h30m', 5_400_000],
    ['300s', 300_000],
    ['24h', 86_400_000],
    ['1m', 60_000],
    ['500ms', 500],
    ['1.5h', 5_400_000],
    ['.5s', 500],
    ['1.s', 1_000],
    ['-2m', -120_000],
    ['1h1m1s1ms', 3_661_001],
    ['500us', 0.5],
    ['500µs', 0.5],
    ['500μs', 0.5],
    ['1500ns', 0.0015],
    ['0s', 0],
    ['72h', 259_200_000],
  ])('%s → %d ms', (input, ms) => {
    expect(parseDuration(input)).toBeCloseTo(ms, 9);
  });

  it('is exact in nanoseconds', () => {
    expect(parseDurationNanos('1.000000001s')).toBe(1_000_000_001n);
    expect(parseDurationNanos('2562047h47m16.854775807s')).toBe((1n << 63n) - 1n);
    expect(parseDurationNanos('-2562047h47m16.854775808s')).toBe(-(1n << 63n));
  });

  it.each([
    ['', /invalid duration ""/],
    ['300', /missing unit in duration "300"/],
    ['1', /missing unit/],
    ['1x', /unknown unit "x" in duration "1x"/],
    ['1 h', /unknown unit " h"/],
    ['h', /invalid duration "h"/],
    ['.s', /invalid duration ".s"/],
    ['1h-1m', /unknown unit "h-"/],
    ['--1s', /invalid duration/],
    ['2562047h47m16.854775808s', /out of range/],
    ['99999999999999999999999h', /invalid duration/],
  ])('rejects %j', (input, message) => {
    expect(durationError(input)).toMatch(message);
  });

  it('throws TypeError for a non-string', () => {
    expect(() => parseDuration(5 as unknown as string)).toThrow(TypeError);
  });
});

describe('formatDuration (Go Duration.String)', () => {
  it.each([
    [0n, '0s'],
    [1n, '1ns'],
    [1_500n, '1.5µs'],
    [1_500_000n, '1.5ms'],
    [1_000_000_000n, '1s'],
    [90_000_000_000n, '1m30s'],
    [5_400_000_000_000n, '1h30m0s'],
    [-60_000_000_000n, '-1m0s'],
    [3_600_000_000_001n, '1h0m0.000000001s'],
  ])('%s ns → %s', (ns, text) => {
    expect(formatDurationNanos(ns)).toBe(text);
  });

  it('formats milliseconds', () => {
    expect(formatDuration(86_400_000)).toBe('24h0m0s');
    expect(formatDuration(300_000)).toBe('5m0s');
    expect(() => formatDuration(Number.NaN)).toThrow(TypeError);
  });

  it('round-trips: parse(format(ns)) === ns', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 62n), max: 1n << 62n }), (ns) => {
        expect(parseDurationNanos(formatDurationNanos(ns))).toBe(ns);
      }),
      { numRuns: 300 },
    );
  });

  it('random input never throws anything but ERR_DURATION_INVALID', () => {
    const chars = fc.constantFrom(...'0123456789.+-hmsunµμx '.split(''));
    fc.assert(
      fc.property(
        fc.array(chars, { maxLength: 16 }).map((a) => a.join('')),
        (s) => {
          try {
            parseDurationNanos(s);
          } catch (err) {
            if (!isSpireEdgeError(err, 'ERR_DURATION_INVALID')) throw err;
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});
