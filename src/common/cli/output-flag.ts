/**
 * SPIRE's `-output` flag (its `cliprinter` package): `pretty` (the default; also
 * `prettyprint`) or `json`, case-insensitive. Giving it twice with different values is an
 * error, as in SPIRE.
 */
import type { Flag, FlagSet, FlagValue } from './flag-set.js';
import { goQuote } from './go-quote.js';

/** The output formats of SPIRE's CLIs. */
export type OutputFormat = 'pretty' | 'json';

/** The usage text SPIRE gives the flag. */
export const OUTPUT_FLAG_USAGE = 'Desired output format (pretty, json); default: pretty.';

/** Another name for the same `-output` value (SPIRE's deprecated `-format` of `api fetch jwt`). */
export interface OutputFlagAlias {
  readonly name: string;
  readonly usage: string;
}

/** Options of {@link outputFlag}. */
export interface OutputFlagOptions {
  /** Further flags that set the same value (one shared value, as SPIRE's `fs.Var` twice). */
  readonly aliases?: readonly OutputFlagAlias[];
}

/** Defines `-output` (and any aliases) on `fs`; the flag's value is the chosen format. */
export function outputFlag(fs: FlagSet, options: OutputFlagOptions = {}): Flag<OutputFormat> {
  let format: OutputFormat = 'pretty';
  let isSet = false;
  const value: FlagValue = {
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
  };
  const flag = fs.define('output', OUTPUT_FLAG_USAGE, value, () => format);
  for (const alias of options.aliases ?? []) {
    fs.define(alias.name, alias.usage, value, () => format);
  }
  return flag;
}
