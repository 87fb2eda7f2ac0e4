/**
 * A command-line flag parser that behaves as Go's `flag` package (`flag.FlagSet` with
 * `ContinueOnError`), so that scripts written for SPIRE's `spire-server` and `spire-agent`
 * parse identically:
 *
 * - `-flag value`, `-flag=value`, `--flag value`, `--flag=value`; bool flags take no separate
 *   value (`-node`, `-node=false`; `-node false` leaves `false` as a positional argument).
 * - Parsing stops at the first non-flag argument, at a lone `-`, or after `--` (consumed);
 *   the rest are returned as positional arguments.
 * - `-h` / `-help` (when not defined) ask for help; an undefined flag, a bad value, a missing
 *   value and bad syntax (`---x`, `-=x`) are errors carrying Go's exact message text.
 * - A flag given twice keeps the last value, except repeatable flags ({@link FlagSet.strings}),
 *   which collect every value in order.
 * - {@link FlagSet.usage} prints Go's `Usage of <name>:` and `PrintDefaults` layout.
 *
 * Errors thrown by {@link FlagSet.parse} are {@link SpireEdgeError}s:
 * `ERR_CLI_HELP_REQUESTED` (message `flag: help requested`), `ERR_CLI_FLAG_UNKNOWN`,
 * `ERR_CLI_FLAG_SYNTAX`, `ERR_CLI_FLAG_MISSING_VALUE`, `ERR_CLI_FLAG_VALUE`. The message is
 * the line Go prints; {@link FlagSet.failureText} gives everything Go writes for a failure.
 */
import { SpireEdgeError } from '../errors.js';
import { goQuote } from './go-quote.js';
import {
  formatGoDuration,
  type GoParseResult,
  parseGoBool,
  parseGoDuration,
  parseGoInt,
} from './go-value.js';

/** Codes of {@link FlagSet.parse} errors. */
export type FlagErrorCode =
  | 'ERR_CLI_HELP_REQUESTED'
  | 'ERR_CLI_FLAG_UNKNOWN'
  | 'ERR_CLI_FLAG_SYNTAX'
  | 'ERR_CLI_FLAG_MISSING_VALUE'
  | 'ERR_CLI_FLAG_VALUE';

/**
 * How a flag's text becomes its value (Go's `flag.Value`). `set` is called once per
 * occurrence; it throws an `Error` whose message Go prints after `invalid value "…" for flag
 * -name: `.
 */
export interface FlagValue {
  set(raw: string): void;
  /** The current value as text (Go's `String()`); the default shown in usage. */
  text(): string;
  /** `text()` of a fresh zero value: a default equal to it is not shown in usage. */
  readonly zeroText: string;
  /** The placeholder in usage (`string`, `int`, `duration`, `value`), '' for bool flags. */
  readonly typeName: string;
  /** Bool flags take no separate argument (`-flag` means `-flag=true`). */
  readonly isBool?: boolean;
  /** Quote the default in usage (Go does it for string flags only). */
  readonly quoteDefault?: boolean;
}

/** A defined flag: its current value and whether it was given on the command line. */
export interface Flag<T> {
  readonly name: string;
  readonly usage: string;
  /** The value: the default until parsed, then the last (or, for lists, every) given value. */
  readonly value: T;
  /** True when the flag appeared on the command line. */
  readonly isSet: boolean;
}

interface Entry {
  readonly name: string;
  readonly usage: string;
  readonly value: FlagValue;
  readonly defText: string;
  isSet: boolean;
}

function flagError(code: FlagErrorCode, message: string): SpireEdgeError<FlagErrorCode> {
  return new SpireEdgeError(code, message);
}

function parsedOrThrow<T>(r: GoParseResult<T>): T {
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

/** Go's `UnquoteUsage`: a back-quoted word in the usage names the placeholder. */
function unquoteUsage(e: Entry): { name: string; usage: string } {
  const u = e.usage;
  const i = u.indexOf('`');
  if (i >= 0) {
    const j = u.indexOf('`', i + 1);
    if (j >= 0) {
      const name = u.slice(i + 1, j);
      return { name, usage: u.slice(0, i) + name + u.slice(j + 1) };
    }
  }
  return { name: e.value.typeName, usage: u };
}

/** Go's `fmt.Sprint([]string{...})`: `[a b c]`. */
export function goSprintStrings(list: readonly string[]): string {
  return `[${list.join(' ')}]`;
}

/** A Go-compatible flag set; see the file comment. */
export class FlagSet {
  /** The name shown in `Usage of <name>:`. */
  readonly name: string;
  readonly #flags = new Map<string, Entry>();

  constructor(name: string) {
    this.name = name;
  }

  /**
   * Defines a flag with a custom {@link FlagValue}. Returns the live {@link Flag} view; `read`
   * maps the FlagValue to the typed value.
   */
  define<T>(name: string, usage: string, value: FlagValue, read: () => T): Flag<T> {
    if (name === '' || name.startsWith('-') || name.includes('=')) {
      throw new TypeError(`flag name ${JSON.stringify(name)} is not valid`);
    }
    if (this.#flags.has(name)) throw new TypeError(`${this.name} flag redefined: ${name}`);
    const entry: Entry = { name, usage, value, defText: value.text(), isSet: false };
    this.#flags.set(name, entry);
    return {
      name,
      usage,
      get value() {
        return read();
      },
      get isSet() {
        return entry.isSet;
      },
    };
  }

  /** A string flag (Go `StringVar`). */
  string(name: string, def: string, usage: string): Flag<string> {
    let v = def;
    return this.define(
      name,
      usage,
      {
        set: (raw) => {
          v = raw;
        },
        text: () => v,
        zeroText: '',
        typeName: 'string',
        quoteDefault: true,
      },
      () => v,
    );
  }

  /** A bool flag (Go `BoolVar`): `-name`, `-name=true`, `-name=false`. */
  bool(name: string, def: boolean, usage: string): Flag<boolean> {
    let v = def;
    return this.define(
      name,
      usage,
      {
        set: (raw) => {
          v = parsedOrThrow(parseGoBool(raw));
        },
        text: () => String(v),
        zeroText: 'false',
        typeName: '',
        isBool: true,
      },
      () => v,
    );
  }

  /** A 64-bit integer flag (Go `IntVar` / `Int64Var` on 64-bit platforms). */
  int(name: string, def: bigint | number, usage: string): Flag<bigint> {
    let v = BigInt(def);
    return this.define(
      name,
      usage,
      {
        set: (raw) => {
          v = parsedOrThrow(parseGoInt(raw, 64));
        },
        text: () => String(v),
        zeroText: '0',
        typeName: 'int',
      },
      () => v,
    );
  }

  /** A duration flag (Go `DurationVar`), in nanoseconds. */
  duration(name: string, defNanoseconds: bigint, usage: string): Flag<bigint> {
    let v = defNanoseconds;
    return this.define(
      name,
      usage,
      {
        set: (raw) => {
          v = parsedOrThrow(parseGoDuration(raw));
        },
        text: () => formatGoDuration(v),
        zeroText: '0s',
        typeName: 'duration',
      },
      () => v,
    );
  }

  /** A repeatable string flag (SPIRE's `StringsFlag`): every occurrence is appended. */
  strings(name: string, usage: string): Flag<readonly string[]> {
    const list: string[] = [];
    return this.define(
      name,
      usage,
      {
        set: (raw) => {
          list.push(raw);
        },
        text: () => goSprintStrings(list),
        zeroText: '[]',
        typeName: 'value',
      },
      () => list,
    );
  }

  /**
   * A flag that calls `fn` with each value (Go `Func`); `fn` throws an `Error` to refuse it.
   */
  func(name: string, usage: string, fn: (raw: string) => void): Flag<void> {
    return this.define(
      name,
      usage,
      { set: fn, text: () => '', zeroText: '', typeName: 'value' },
      () => undefined,
    );
  }

  /** A bool flag that calls `fn` (Go `BoolFunc`): `-name` calls `fn('true')`. */
  boolFunc(name: string, usage: string, fn: (raw: string) => void): Flag<void> {
    return this.define(
      name,
      usage,
      { set: fn, text: () => '', zeroText: '', typeName: '', isBool: true },
      () => undefined,
    );
  }

  /** The defined flag names, sorted as Go's `VisitAll`. */
  names(): string[] {
    return [...this.#flags.keys()].sort(compareBytes);
  }

  /**
   * Parses `args` (without the command name). Returns the positional arguments left after the
   * flags. Values given are applied as they are parsed, as Go does.
   *
   * @throws SpireEdgeError with a {@link FlagErrorCode}; see the file comment.
   */
  parse(args: readonly string[]): string[] {
    let rest = [...args];
    for (;;) {
      const s = rest[0];
      if (s === undefined || s.length < 2 || s[0] !== '-') return rest;
      let minuses = 1;
      if (s[1] === '-') {
        minuses = 2;
        if (s.length === 2) return rest.slice(1);
      }
      let name = s.slice(minuses);
      if (name.length === 0 || name[0] === '-' || name[0] === '=') {
        throw flagError('ERR_CLI_FLAG_SYNTAX', `bad flag syntax: ${s}`);
      }
      rest = rest.slice(1);
      let value: string | undefined;
      const eq = name.indexOf('=', 1);
      if (eq > 0) {
        value = name.slice(eq + 1);
        name = name.slice(0, eq);
      }
      const entry = this.#flags.get(name);
      if (entry === undefined) {
        if (name === 'help' || name === 'h') {
          throw flagError('ERR_CLI_HELP_REQUESTED', 'flag: help requested');
        }
        throw flagError('ERR_CLI_FLAG_UNKNOWN', `flag provided but not defined: -${name}`);
      }
      if (entry.value.isBool === true) {
        const raw = value ?? 'true';
        try {
          entry.value.set(raw);
        } catch (err) {
          const reason = (err as Error).message;
          throw flagError(
            'ERR_CLI_FLAG_VALUE',
            value === undefined
              ? `invalid boolean flag ${name}: ${reason}`
              : `invalid boolean value ${goQuote(raw)} for -${name}: ${reason}`,
          );
        }
      } else {
        if (value === undefined && rest.length > 0) {
          value = rest[0]!;
          rest = rest.slice(1);
        }
        if (value === undefined) {
          throw flagError('ERR_CLI_FLAG_MISSING_VALUE', `flag needs an argument: -${name}`);
        }
        try {
          entry.value.set(value);
        } catch (err) {
          throw flagError(
            'ERR_CLI_FLAG_VALUE',
            `invalid value ${goQuote(value)} for flag -${name}: ${(err as Error).message}`,
          );
        }
      }
      entry.isSet = true;
    }
  }

  /** Go's `PrintDefaults` text: one block per flag, sorted by name. */
  defaults(): string {
    let out = '';
    for (const name of this.names()) {
      const e = this.#flags.get(name)!;
      const { name: placeholder, usage } = unquoteUsage(e);
      let line = `  -${name}`;
      if (placeholder.length > 0) line += ` ${placeholder}`;
      line += line.length <= 4 ? '\t' : '\n    \t';
      line += usage.replaceAll('\n', '\n    \t');
      if (e.defText !== e.value.zeroText) {
        line +=
          e.value.quoteDefault === true
            ? ` (default ${goQuote(e.defText)})`
            : ` (default ${e.defText})`;
      }
      out += `${line}\n`;
    }
    return out;
  }

  /** Go's default usage: `Usage of <name>:` then {@link FlagSet.defaults}. */
  usage(): string {
    return `${this.name === '' ? 'Usage:' : `Usage of ${this.name}:`}\n${this.defaults()}`;
  }

  /**
   * Everything Go's flag package writes to its output when {@link FlagSet.parse} fails with
   * `err`: the usage alone for a help request, else the message line then the usage.
   */
  failureText(err: SpireEdgeError): string {
    if (err.code === 'ERR_CLI_HELP_REQUESTED') return this.usage();
    return `${err.message}\n${this.usage()}`;
  }
}

/** Byte-wise string order (Go's `sort.Strings` on UTF-8), for names and keys. */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** True when `err` is one of the errors {@link FlagSet.parse} throws. */
export function isFlagError(err: unknown): err is SpireEdgeError<FlagErrorCode> {
  return (
    err instanceof SpireEdgeError &&
    (err.code === 'ERR_CLI_HELP_REQUESTED' ||
      err.code === 'ERR_CLI_FLAG_UNKNOWN' ||
      err.code === 'ERR_CLI_FLAG_SYNTAX' ||
      err.code === 'ERR_CLI_FLAG_MISSING_VALUE' ||
      err.code === 'ERR_CLI_FLAG_VALUE')
  );
}
