/**
 * Go's textual value syntaxes, as Go's `flag` package accepts them, so that command lines
 * written for SPIRE's Go CLIs parse identically here: integers (`strconv.ParseInt(s, 0, 64)`:
 * `0x`/`0o`/`0b`/leading-`0` prefixes and `_` digit separators), booleans
 * (`strconv.ParseBool`) and durations (`time.ParseDuration`, e.g. `1h30m`, `1.5s`, `300ms`).
 *
 * Each parser returns a {@link GoParseResult}: the value, or `parse error` / `value out of range`
 * (the two texts Go's flag package prints after `invalid value "…" for flag -name: `).
 */

/** Why a Go value failed to parse; the text Go's flag package prints. */
export type GoParseFailure = 'parse error' | 'value out of range';

/** A parsed value or the reason it was refused. */
export type GoParseResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: GoParseFailure };

const SYNTAX = { ok: false, error: 'parse error' } as const;
const RANGE = { ok: false, error: 'value out of range' } as const;

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

function lower(c: string): string {
  return c.toLowerCase();
}

/** Go's `underscoreOK`: `_` only between digits, or between a base prefix and a digit. */
function underscoreOk(input: string): boolean {
  let s = input;
  let saw = '^';
  let i = 0;
  if (s.length >= 1 && (s[0] === '-' || s[0] === '+')) s = s.slice(1);
  let hex = false;
  if (s.length >= 2 && s[0] === '0' && 'box'.includes(lower(s[1]!))) {
    i = 2;
    saw = '0';
    hex = lower(s[1]!) === 'x';
  }
  for (; i < s.length; i++) {
    const c = s[i]!;
    if ((c >= '0' && c <= '9') || (hex && lower(c) >= 'a' && lower(c) <= 'f')) {
      saw = '0';
      continue;
    }
    if (c === '_') {
      if (saw !== '0') return false;
      saw = '_';
      continue;
    }
    if (saw === '_') return false;
    saw = '!';
  }
  return saw !== '_';
}

/**
 * `strconv.ParseInt(s, 0, bits)`: optional sign, then decimal, `0x` hex, `0o` or leading-`0`
 * octal, or `0b` binary, with `_` separators allowed between digits.
 */
export function parseGoInt(input: string, bits = 64): GoParseResult<bigint> {
  if (input.length === 0) return SYNTAX;
  let s = input;
  let negative = false;
  if (s[0] === '+' || s[0] === '-') {
    negative = s[0] === '-';
    s = s.slice(1);
  }
  if (s.length === 0) return SYNTAX;
  let base = 10n;
  if (s[0] === '0') {
    const p = s.length >= 3 ? lower(s[1]!) : '';
    if (p === 'b') base = 2n;
    else if (p === 'o') base = 8n;
    else if (p === 'x') base = 16n;
    else base = 8n;
    s = s.slice(base === 8n && p !== 'o' ? 1 : 2);
  }
  const limit = 1n << BigInt(bits - 1);
  const cutoff = negative ? limit : limit - 1n;
  let n = 0n;
  let underscores = false;
  for (const c of s) {
    let d: bigint;
    if (c === '_') {
      underscores = true;
      continue;
    }
    if (c >= '0' && c <= '9') d = BigInt(c.charCodeAt(0) - 48);
    else if (lower(c) >= 'a' && lower(c) <= 'z') d = BigInt(lower(c).charCodeAt(0) - 87);
    else return SYNTAX;
    if (d >= base) return SYNTAX;
    n = n * base + d;
    if (n > cutoff) return RANGE;
  }
  if (underscores && !underscoreOk(input)) return SYNTAX;
  return { ok: true, value: negative ? -n : n };
}

/** `strconv.ParseBool`: 1 t T TRUE true True, 0 f F FALSE false False. */
export function parseGoBool(input: string): GoParseResult<boolean> {
  switch (input) {
    case '1':
    case 't':
    case 'T':
    case 'TRUE':
    case 'true':
    case 'True':
      return { ok: true, value: true };
    case '0':
    case 'f':
    case 'F':
    case 'FALSE':
    case 'false':
    case 'False':
      return { ok: true, value: false };
    default:
      return SYNTAX;
  }
}

/** Nanoseconds per unit of `time.ParseDuration`. */
const DURATION_UNITS: ReadonlyMap<string, bigint> = new Map([
  ['ns', 1n],
  ['us', 1_000n],
  ['µs', 1_000n], // U+00B5 micro sign
  ['μs', 1_000n], // U+03BC Greek mu
  ['ms', 1_000_000n],
  ['s', 1_000_000_000n],
  ['m', 60_000_000_000n],
  ['h', 3_600_000_000_000n],
]);

const DIGIT = /[0-9]/;

/**
 * `time.ParseDuration`: a signed sequence of decimal numbers, each with optional fraction and a
 * unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), e.g. `300ms`, `-1.5h`, `2h45m`; `0` alone is zero.
 * Returns nanoseconds (a signed 64-bit value, as Go's `time.Duration`).
 */
export function parseGoDuration(input: string): GoParseResult<bigint> {
  let s = input;
  let negative = false;
  if (s.length > 0 && (s[0] === '-' || s[0] === '+')) {
    negative = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return { ok: true, value: 0n };
  if (s === '') return SYNTAX;
  const max = 1n << 63n;
  let total = 0n;
  while (s !== '') {
    if (!(s[0] === '.' || DIGIT.test(s[0]!))) return SYNTAX;
    let i = 0;
    let whole = 0n;
    while (i < s.length && DIGIT.test(s[i]!)) {
      whole = whole * 10n + BigInt(s.charCodeAt(i) - 48);
      if (whole > max) return SYNTAX;
      i++;
    }
    const pre = i > 0;
    let fraction = 0n;
    let scale = 1n;
    let post = false;
    if (s[i] === '.') {
      i++;
      const start = i;
      let overflow = false;
      while (i < s.length && DIGIT.test(s[i]!)) {
        // Go stops accumulating once more digits cannot change the result.
        if (!overflow) {
          const next = fraction * 10n + BigInt(s.charCodeAt(i) - 48);
          if (next > max) overflow = true;
          else {
            fraction = next;
            scale *= 10n;
          }
        }
        i++;
      }
      post = i > start;
    }
    if (!pre && !post) return SYNTAX;
    const unitStart = i;
    while (i < s.length && s[i] !== '.' && !DIGIT.test(s[i]!)) i++;
    if (i === unitStart) return SYNTAX;
    const unit = DURATION_UNITS.get(s.slice(unitStart, i));
    if (unit === undefined) return SYNTAX;
    s = s.slice(i);
    if (whole > max / unit) return SYNTAX;
    let v = whole * unit;
    if (fraction > 0n) {
      // Go computes this term in float64: do the same so that results agree to the nanosecond.
      v += BigInt(Math.trunc(Number(fraction) * (Number(unit) / Number(scale))));
      if (v > max) return SYNTAX;
    }
    total += v;
    if (total > max) return SYNTAX;
  }
  if (negative) return { ok: true, value: -total };
  if (total > max - 1n) return SYNTAX;
  return { ok: true, value: total };
}

function formatFraction(v: bigint, digits: number): { text: string; rest: bigint } {
  // Go's fmtFrac: the `digits` low decimal digits of v as a fraction, without trailing zeros.
  let text = '';
  let printed = false;
  let rest = v;
  for (let i = 0; i < digits; i++) {
    const digit = rest % 10n;
    printed = printed || digit !== 0n;
    if (printed) text = String(digit) + text;
    rest /= 10n;
  }
  return { text: printed ? `.${text}` : '', rest };
}

/**
 * `time.Duration.String()`: `0s`, `1.5s`, `300ms`, `2h45m0s`, `-1m30s`; sub-second values use
 * the largest unit below a second (`ns`, `µs`, `ms`).
 */
export function formatGoDuration(nanoseconds: bigint): string {
  if (nanoseconds < INT64_MIN || nanoseconds > INT64_MAX) {
    throw new TypeError('formatGoDuration: value does not fit a 64-bit duration');
  }
  if (nanoseconds === 0n) return '0s';
  const negative = nanoseconds < 0n;
  let u = negative ? -nanoseconds : nanoseconds;
  let out: string;
  if (u < 1_000_000_000n) {
    let digits: number;
    let unit: string;
    if (u < 1_000n) {
      return `${negative ? '-' : ''}${String(u)}ns`;
    } else if (u < 1_000_000n) {
      digits = 3;
      unit = 'µs';
    } else {
      digits = 6;
      unit = 'ms';
    }
    const f = formatFraction(u, digits);
    out = `${String(f.rest)}${f.text}${unit}`;
  } else {
    const f = formatFraction(u, 9);
    u = f.rest;
    out = `${String(u % 60n)}${f.text}s`;
    u /= 60n;
    if (u > 0n) {
      out = `${String(u % 60n)}m${out}`;
      u /= 60n;
      if (u > 0n) out = `${String(u)}h${out}`;
    }
  }
  return negative ? `-${out}` : out;
}
