/**
 * Go duration strings (`time.ParseDuration`), the syntax SPIRE uses for every TTL and interval in
 * its configuration files: a possibly signed sequence of decimal numbers, each with an optional
 * fraction and a required unit — `ns`, `us` (or `µs`/`μs`), `ms`, `s`, `m`, `h` — such as
 * `"300ms"`, `"1.5h"`, `"1h30m"` or `"-2m"`. The lone string `"0"` is zero.
 *
 * A plain number without a unit (`"300"`) is an error, exactly as in SPIRE: its server and agent
 * configurations pass these strings to `time.ParseDuration` (an HCL number literal `ca_ttl = 300`
 * is decoded to the string `"300"` and fails the same way). Durations are limited to Go's range
 * (±2^63-1 ns, about 292 years). Values are returned as milliseconds (fractional below 1 ms).
 *
 * Errors: `ERR_DURATION_INVALID`, with Go's wording (`missing unit in duration "300"`).
 */
import { SpireEdgeError } from '../common/errors.js';

const UNITS: ReadonlyMap<string, bigint> = new Map([
  ['ns', 1n],
  ['us', 1_000n],
  ['µs', 1_000n], // U+00B5 micro sign
  ['μs', 1_000n], // U+03BC Greek small letter mu
  ['ms', 1_000_000n],
  ['s', 1_000_000_000n],
  ['m', 60_000_000_000n],
  ['h', 3_600_000_000_000n],
]);

const MAX_NANOS = (1n << 63n) - 1n;
const NANOS_PER_MS = 1_000_000n;

function durationError(message: string, input: string): SpireEdgeError {
  return new SpireEdgeError('ERR_DURATION_INVALID', message, {
    details: { input: input.length > 80 ? `${input.slice(0, 77)}...` : input },
  });
}

function quote(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 77)}...` : s);
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/**
 * Parses a Go duration string into nanoseconds, exactly (no floating point).
 *
 * @throws SpireEdgeError `ERR_DURATION_INVALID` for malformed input, unknown units or overflow.
 */
export function parseDurationNanos(input: string): bigint {
  if (typeof input !== 'string') throw new TypeError('duration must be a string');
  let s = input;
  let negative = false;
  if (s.startsWith('-') || s.startsWith('+')) {
    negative = s.startsWith('-');
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') throw durationError(`invalid duration ${quote(input)}`, input);
  let total = 0n;
  let i = 0;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (!(c === 0x2e || isDigit(c))) throw durationError(`invalid duration ${quote(input)}`, input);
    const intStart = i;
    while (i < s.length && isDigit(s.charCodeAt(i))) i++;
    const intDigits = s.slice(intStart, i);
    let fracDigits = '';
    if (i < s.length && s.charCodeAt(i) === 0x2e) {
      i++;
      const fracStart = i;
      while (i < s.length && isDigit(s.charCodeAt(i))) i++;
      fracDigits = s.slice(fracStart, i);
    }
    if (intDigits === '' && fracDigits === '') {
      throw durationError(`invalid duration ${quote(input)}`, input);
    }
    const unitStart = i;
    while (i < s.length && s.charCodeAt(i) !== 0x2e && !isDigit(s.charCodeAt(i))) i++;
    const unitText = s.slice(unitStart, i);
    if (unitText === '') throw durationError(`missing unit in duration ${quote(input)}`, input);
    const unit = UNITS.get(unitText);
    if (unit === undefined) {
      throw durationError(
        `unknown unit ${quote(unitText)} in duration ${quote(input)} (use ns, us, ms, s, m or h)`,
        input,
      );
    }
    // Cap the digits we convert: anything longer overflows anyway.
    if (intDigits.length > 20) throw durationError(`invalid duration ${quote(input)}`, input);
    let v = intDigits === '' ? 0n : BigInt(intDigits) * unit;
    if (fracDigits !== '') {
      const frac = fracDigits.slice(0, 30);
      v += (BigInt(frac) * unit) / 10n ** BigInt(frac.length);
    }
    total += v;
    if (total > MAX_NANOS + (negative ? 1n : 0n)) {
      throw durationError(`invalid duration ${quote(input)}: out of range`, input);
    }
  }
  return negative ? -total : total;
}

/**
 * Parses a Go duration string into milliseconds (fractional below 1 ms, e.g. `"500us"` → 0.5).
 *
 * @throws SpireEdgeError `ERR_DURATION_INVALID` for malformed input, unknown units or overflow.
 */
export function parseDuration(input: string): number {
  const ns = parseDurationNanos(input);
  const whole = ns / NANOS_PER_MS;
  return Number(whole) + Number(ns - whole * NANOS_PER_MS) / 1e6;
}

function formatFraction(v: bigint, scale: bigint, digits: number): string {
  const whole = v / scale;
  const rest = v % scale;
  if (rest === 0n) return whole.toString();
  const frac = rest.toString().padStart(digits, '0').replace(/0+$/, '');
  return `${whole.toString()}.${frac}`;
}

/** Formats nanoseconds as Go's `Duration.String` does (`"1h30m0s"`, `"1.5s"`, `"500ms"`, `"0s"`). */
export function formatDurationNanos(ns: bigint): string {
  if (ns === 0n) return '0s';
  const sign = ns < 0n ? '-' : '';
  const v = ns < 0n ? -ns : ns;
  if (v < 1_000n) return `${sign}${v.toString()}ns`;
  if (v < 1_000_000n) return `${sign}${formatFraction(v, 1_000n, 3)}µs`;
  if (v < 1_000_000_000n) return `${sign}${formatFraction(v, 1_000_000n, 6)}ms`;
  const h = v / 3_600_000_000_000n;
  const m = (v / 60_000_000_000n) % 60n;
  const s = formatFraction(v % 60_000_000_000n, 1_000_000_000n, 9);
  if (h > 0n) return `${sign}${h.toString()}h${m.toString()}m${s}s`;
  if (m > 0n) return `${sign}${m.toString()}m${s}s`;
  return `${sign}${s}s`;
}

/**
 * Formats milliseconds as a Go duration string (`3_600_000` → `"1h0m0s"`); the inverse of
 * {@link parseDuration} to the nanosecond.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) throw new TypeError('duration must be a finite number of milliseconds');
  return formatDurationNanos(BigInt(Math.round(ms * 1e6)));
}
