/**
 * SPIRE's `-timeout` flag of the `spire-agent api …` commands: a `cli.DurationFlag` (a Go
 * `flag.Value`, so usage shows `-timeout value` and `(default 5s)`), parsed with
 * `time.ParseDuration` and refused with its error texts (`time: invalid duration "x"`,
 * `time: missing unit in duration "5"`, `time: unknown unit "d" in duration "1d"`).
 */
import type { Flag, FlagSet } from '../../../common/cli/flag-set.js';
import { goQuote } from '../../../common/cli/go-quote.js';
import { formatGoDuration, parseGoDuration } from '../../../common/cli/go-value.js';

/** SPIRE's `commandTimeout`: 5 s (its docs say 1 s; the code, which wins, says 5 s). */
export const DEFAULT_COMMAND_TIMEOUT_NS = 5_000_000_000n;

const UNITS = new Set(['ns', 'us', 'µs', 'μs', 'ms', 's', 'm', 'h']);

/** The message `time.ParseDuration` gives for `raw`, which failed to parse. */
export function goDurationError(raw: string): string {
  const quoted = goQuote(raw);
  const body = raw.replace(/^[-+]/, '');
  // Go walks number-unit pairs and reports the first problem it meets.
  const pair = /^([0-9]*(?:\.[0-9]*)?)([^0-9.]*)/;
  let rest = body;
  if (rest === '') return `time: invalid duration ${quoted}`;
  while (rest !== '') {
    const m = pair.exec(rest)!;
    const num = m[1]!;
    const unit = m[2]!;
    if (num === '' || num === '.') return `time: invalid duration ${quoted}`;
    if (unit === '') return `time: missing unit in duration ${quoted}`;
    if (!UNITS.has(unit)) return `time: unknown unit ${goQuote(unit)} in duration ${quoted}`;
    rest = rest.slice(m[0].length);
  }
  return `time: invalid duration ${quoted}`;
}

/** Defines `-timeout` on `fs`; the value is in nanoseconds (≤ 0: no deadline). */
export function timeoutFlag(fs: FlagSet, usage = 'Time to wait for a response'): Flag<bigint> {
  let v = DEFAULT_COMMAND_TIMEOUT_NS;
  return fs.define(
    'timeout',
    usage,
    {
      set(raw) {
        const r = parseGoDuration(raw);
        if (!r.ok) throw new Error(goDurationError(raw));
        v = r.value;
      },
      text: () => formatGoDuration(v),
      zeroText: '0s',
      typeName: 'value',
    },
    () => v,
  );
}
