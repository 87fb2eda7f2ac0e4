/**
 * SPIRE's `-output` flag (its `cliprinter` package): `pretty` (the default; also
 * `prettyprint`) or `json`, case-insensitive. Giving it twice with different values is an
 * error, as in SPIRE.
 */
import type { Flag, FlagSet } from './flag-set.js';
import { goQuote } from './go-quote.js';

/** The output formats of SPIRE's CLIs. */
export type OutputFormat = 'pretty' | 'json';

/** The usage text SPIRE gives the flag. */
export const OUTPUT_FLAG_USAGE = 'Desired output format (pretty, json); default: pretty.';

/** Defines `-output` on `fs`; the flag's value is the chosen format. */
export function outputFlag(fs: FlagSet): Flag<OutputFormat> {
  let format: OutputFormat = 'pretty';
  let isSet = false;
  return fs.define(
    'output',
    OUTPUT_FLAG_USAGE,
    {
      set(raw) {
        if (isSet && format !== raw) {
          throw new Error(`the output format has already been set to ${goQuote(format)}`);
        }
        const lower = raw.toLowerCase();
        if (lower === 'json') format = 'json';
        else if (lower === 'pretty' || lower === 'prettyprint') format = 'pretty';
        else throw new Error(`bad formatter flag: unknown format option: ${goQuote(raw)}`);
        isSet = true;
      },
      text: () => format,
      zeroText: 'pretty',
      typeName: 'value',
    },
    () => format,
  );
}
