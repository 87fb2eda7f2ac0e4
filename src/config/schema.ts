/**
 * A small declarative schema for configuration trees: blocks of typed attributes (string, int,
 * bool, duration, string list), nested blocks, defaults, and checks that report *every* problem
 * with its file, line and path — unknown keys with a "did you mean" suggestion, keys SPIRE knows
 * but this implementation does not support, wrong types and bad values:
 *
 * ```text
 * server.conf:12: unknown key "bind_prot" in server (did you mean "bind_port"?)
 * ```
 *
 * Values are coerced the way HCL v1 decodes them into Go fields, so SPIRE's own configuration files
 * read the same: a string field takes a number or bool as its literal text (`bind_port = "8081"`
 * works for an int, `bind_port = 80` for a string), an int field takes a numeric string (Go
 * `ParseInt` base 0: `"0x1f"`, `"0o17"`, `"1_000"`), a bool field takes `"true"`/`"false"`/`"1"`/`"0"`.
 * An empty string means "not set" for string and duration fields, as in SPIRE (whose defaults are
 * merged over zero values).
 *
 * Build schemas with {@link block}, {@link string}, {@link integer}, {@link boolean},
 * {@link duration}, {@link stringList}, {@link optionalBlock}; decode with {@link decodeDocument}.
 * Output types are inferred ({@link BlockValue}). Errors: `ERR_CONFIG_INVALID`.
 */
import { SpireEdgeError } from '../common/errors.js';
import { parseDuration } from './duration.js';
import {
  type ConfigEntry,
  type ConfigObject,
  type ConfigValue,
  describeKind,
  objectsOf,
  type Position,
} from './tree.js';

/** One problem found while decoding, with where it is. */
export interface ConfigProblem {
  /** The file (or `flags` for command-line flags). */
  readonly file: string;
  /** 1-based line, when the problem has a place in the file. */
  readonly line: number | undefined;
  readonly column: number | undefined;
  /** Dotted path of the offending key (`server.ca_ttl`). */
  readonly path: string;
  /** Lower-case description naming the key and the broken rule. */
  readonly message: string;
}

/** Collects problems while decoding; {@link DecodeContext.throwIfProblems} turns them into one error. */
export class DecodeContext {
  /** The file name used in messages. */
  readonly file: string;
  readonly #problems: ConfigProblem[] = [];
  #count = 0;

  constructor(file: string) {
    this.file = file;
  }

  /** The problems reported so far (the first {@link MAX_REPORTED_PROBLEMS}). */
  get problems(): readonly ConfigProblem[] {
    return this.#problems;
  }

  /** How many problems were reported, including those beyond the kept ones. */
  get problemCount(): number {
    return this.#count;
  }

  /**
   * Records a problem at `pos` (or with no position). `message` may be a function, called only
   * when the problem is kept (suggestions cost an edit-distance search).
   */
  report(pos: Position | undefined, path: string, message: string | (() => string)): void {
    this.#count++;
    if (this.#problems.length >= MAX_REPORTED_PROBLEMS) return;
    this.#problems.push({
      file: this.file,
      line: pos?.line,
      column: pos?.column,
      path,
      message: typeof message === 'string' ? message : message(),
    });
  }

  /**
   * Throws one `ERR_CONFIG_INVALID` error listing every problem (one per line, ordered by line),
   * with `details.problems` holding them as data.
   */
  throwIfProblems(): void {
    if (this.#count === 0) return;
    throw problemsError(this.#problems, this.#count - this.#problems.length);
  }
}

/** Formats one problem as `file:line: message`. */
export function formatProblem(p: ConfigProblem): string {
  return p.line === undefined
    ? `${p.file}: ${p.message}`
    : `${p.file}:${String(p.line)}: ${p.message}`;
}

/** How many problems one decode keeps (a hostile file must not build a gigantic message). */
export const MAX_REPORTED_PROBLEMS = 50;

/**
 * The coded error for a set of problems (sorted by line; the message lists them all, then says
 * how many more were not kept).
 */
export function problemsError(problems: readonly ConfigProblem[], omitted = 0): SpireEdgeError {
  const sorted = [...problems].sort(
    (a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0),
  );
  const lines = sorted.map(formatProblem);
  if (omitted > 0) lines.push(`… and ${String(omitted)} more`);
  const message =
    lines.length === 1
      ? lines[0]!
      : `${String(sorted.length + omitted)} configuration problems:\n  ${lines.join('\n  ')}`;
  return new SpireEdgeError('ERR_CONFIG_INVALID', message, {
    details: { problems: sorted, omitted },
  });
}

/** The kinds of field, for documentation generators and tests. */
export type FieldKind =
  | 'string'
  | 'int'
  | 'bool'
  | 'duration'
  | 'string-list'
  | 'block'
  | 'plugins'
  | 'custom';

/**
 * A field of a block. `Present` is `true` when decoding always yields a value (the field has a
 * default or is required), which makes the key non-optional in {@link BlockValue}.
 */
export interface Field<T, Present extends boolean = boolean> {
  readonly kind: FieldKind;
  readonly present: Present;
  /** One line for generated docs. */
  readonly description: string | undefined;
  /**
   * Decodes the entries given for this key (none when absent; several when a block repeats).
   * Reports problems to `ctx` and returns `undefined` on failure or when absent without default.
   * `parent` is the position of the enclosing block, for "missing key" messages.
   */
  read(
    entries: readonly ConfigEntry[],
    ctx: DecodeContext,
    path: string,
    parent: Position | undefined,
  ): T | undefined;
}

/** Any field. */
// biome-ignore lint/suspicious/noExplicitAny: variance escape hatch for heterogeneous field maps
export type AnyField = Field<any, boolean>;
/** The fields of a block, by key. */
export type Fields = Readonly<Record<string, AnyField>>;
/** The decoded type of a field. */
export type FieldValue<F> = F extends Field<infer T, boolean> ? T : never;

type PresentKeys<F extends Fields> = {
  [K in keyof F]: F[K] extends Field<unknown, true> ? K : never;
}[keyof F];
type OptionalKeys<F extends Fields> = Exclude<keyof F, PresentKeys<F>>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The decoded value of a block: keys with defaults or required are present, others optional. */
export type BlockValue<F extends Fields> = Simplify<
  { [K in PresentKeys<F>]: FieldValue<F[K]> } & { [K in OptionalKeys<F>]?: FieldValue<F[K]> }
>;

/** Joins a path and a key. */
export function joinPath(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

// ---------------------------------------------------------------------------------------------
// Scalars

interface ScalarOptions<T> {
  /** The value when the key is absent (or, for strings and durations, empty). */
  default?: T;
  /** Report a problem when the key is absent. */
  required?: boolean;
  description?: string;
  /** Extra rule: returns a problem description (`must be …`) or undefined when valid. */
  check?: (value: T) => string | undefined;
}

type PresentFor<O> = O extends { default: unknown }
  ? true
  : O extends { required: true }
    ? true
    : false;

function single(
  entries: readonly ConfigEntry[],
  ctx: DecodeContext,
  path: string,
): ConfigEntry | undefined {
  const [first, second] = entries;
  if (second !== undefined && first !== undefined) {
    ctx.report(
      second.keyPos,
      path,
      `duplicate key ${path} (first set at line ${String(first.keyPos.line)})`,
    );
  }
  return first;
}

function scalarField<T, O extends ScalarOptions<T>>(
  kind: FieldKind,
  options: O | undefined,
  coerce: (
    value: ConfigValue,
    path: string,
  ) => { ok: true; value: T } | { ok: false; error: string },
  isEmpty: (value: T) => boolean,
): Field<T, PresentFor<O>> {
  const opts: ScalarOptions<T> = options ?? {};
  const present = (opts.default !== undefined || opts.required === true) as PresentFor<O>;
  const absent = (
    ctx: DecodeContext,
    path: string,
    parent: Position | undefined,
    emptyAt?: Position,
  ) => {
    if (opts.default !== undefined) return opts.default;
    if (opts.required === true) {
      if (emptyAt !== undefined) ctx.report(emptyAt, path, `${path} must not be empty`);
      else ctx.report(parent, path, `missing required key ${path}`);
    }
    return undefined;
  };
  return {
    kind,
    present,
    description: opts.description,
    read(entries, ctx, path, parent) {
      const entry = single(entries, ctx, path);
      if (entry === undefined) return absent(ctx, path, parent);
      const r = coerce(entry.value, path);
      if (!r.ok) {
        ctx.report(entry.value.pos, path, r.error);
        return undefined;
      }
      if (isEmpty(r.value)) return absent(ctx, path, parent, entry.value.pos);
      const problem = opts.check?.(r.value);
      if (problem !== undefined) {
        ctx.report(entry.value.pos, path, `${path} ${problem}`);
        return undefined;
      }
      return r.value;
    },
  };
}

function scalarText(value: ConfigValue): string | undefined {
  switch (value.kind) {
    case 'string':
      return value.value;
    case 'number':
      return value.text;
    case 'bool':
      return value.value ? 'true' : 'false';
    default:
      return undefined;
  }
}

function previewValue(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 57)}...` : s);
}

/** Options of {@link string}. */
export interface StringOptions extends ScalarOptions<string> {
  /** The allowed values. */
  oneOf?: readonly string[];
  /** Compare with {@link StringOptions.oneOf} ignoring case; the value becomes the listed spelling. */
  ignoreCase?: boolean;
}

/**
 * A string attribute. Numbers and booleans are taken as their literal text (HCL v1 behaviour);
 * an empty string counts as absent (the default applies).
 */
export function string<const O extends StringOptions>(options?: O): Field<string, PresentFor<O>> {
  const oneOf = options?.oneOf;
  const ignoreCase = options?.ignoreCase === true;
  return scalarField<string, O>(
    'string',
    options,
    (value, path) => {
      const text = scalarText(value);
      if (text === undefined) {
        return { ok: false, error: `${path} must be a string, not ${describeKind(value)}` };
      }
      if (oneOf === undefined || text === '') return { ok: true, value: text };
      const match = oneOf.find((o) =>
        ignoreCase ? o.toLowerCase() === text.toLowerCase() : o === text,
      );
      if (match === undefined) {
        return {
          ok: false,
          error: `${path} must be one of ${oneOf.join(', ')}, not ${previewValue(text)}`,
        };
      }
      return { ok: true, value: match };
    },
    (v) => v === '',
  );
}

/** Go's `strconv.ParseInt(s, 0, 64)` syntax: sign, `0x`/`0o`/`0b`/leading-0 prefixes, `_` separators. */
export function parseGoInt(text: string): number | undefined {
  const m = /^([+-]?)(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)$/.exec(
    text,
  );
  if (m === null) return undefined;
  const sign = m[1] === '-' ? -1 : 1;
  let body = m[2]!;
  // Underscores only between digits (and after a base prefix), as Go requires.
  const prefixed = /^0[xXoObB]/.test(body);
  const digits = prefixed ? body.slice(2) : body;
  if (digits.startsWith('_') && !prefixed) return undefined;
  if (
    digits.endsWith('_') ||
    digits.includes('__') ||
    (prefixed && digits.replaceAll('_', '') === '')
  ) {
    return undefined;
  }
  body = body.replaceAll('_', '');
  let value: number;
  if (/^0[xX]/.test(body)) value = Number.parseInt(body.slice(2), 16);
  else if (/^0[oO]/.test(body)) value = Number.parseInt(body.slice(2), 8);
  else if (/^0[bB]/.test(body)) value = Number.parseInt(body.slice(2), 2);
  else if (body.length > 1 && body.startsWith('0')) value = Number.parseInt(body.slice(1), 8);
  else value = Number.parseInt(body, 10);
  if (!Number.isSafeInteger(value)) return undefined;
  return sign * value;
}

/** Options of {@link integer}. */
export interface IntegerOptions extends ScalarOptions<number> {
  min?: number;
  max?: number;
}

/** An integer attribute; numeric strings are accepted (HCL v1 behaviour), floats are not. */
export function integer<const O extends IntegerOptions>(options?: O): Field<number, PresentFor<O>> {
  const min = options?.min;
  const max = options?.max;
  return scalarField<number, O>(
    'int',
    options,
    (value, path) => {
      let n: number | undefined;
      if (value.kind === 'number') {
        n = value.integer && Number.isSafeInteger(value.value) ? value.value : undefined;
        if (n === undefined) {
          return { ok: false, error: `${path} must be an integer, not ${value.text}` };
        }
      } else if (value.kind === 'string') {
        n = parseGoInt(value.value);
        if (n === undefined) {
          return {
            ok: false,
            error: `${path} must be an integer, not ${previewValue(value.value)}`,
          };
        }
      } else {
        return { ok: false, error: `${path} must be an integer, not ${describeKind(value)}` };
      }
      if ((min !== undefined && n < min) || (max !== undefined && n > max)) {
        const range =
          min !== undefined && max !== undefined
            ? `between ${String(min)} and ${String(max)}`
            : min !== undefined
              ? `at least ${String(min)}`
              : `at most ${String(max)}`;
        return { ok: false, error: `${path} must be ${range}, not ${String(n)}` };
      }
      return { ok: true, value: n };
    },
    () => false,
  );
}

/** A boolean attribute; `"true"`/`"false"`/`"1"`/`"0"` strings and 0/1 are accepted (HCL v1). */
export function boolean<const O extends ScalarOptions<boolean>>(
  options?: O,
): Field<boolean, PresentFor<O>> {
  return scalarField<boolean, O>(
    'bool',
    options,
    (value, path) => {
      if (value.kind === 'bool') return { ok: true, value: value.value };
      const text = scalarText(value)?.toLowerCase();
      if (text === 'true' || text === '1') return { ok: true, value: true };
      if (text === 'false' || text === '0') return { ok: true, value: false };
      const shown = value.kind === 'string' ? previewValue(value.value) : describeKind(value);
      return { ok: false, error: `${path} must be true or false, not ${shown}` };
    },
    () => false,
  );
}

/** Options of {@link duration}; bounds are in milliseconds. */
export interface DurationOptions extends ScalarOptions<number> {
  /** Smallest value allowed, in ms (default: any). */
  min?: number;
  /** Require a value > 0 (TTLs). Default false. */
  positive?: boolean;
}

/**
 * A Go duration attribute (`"1h30m"`, see {@link parseDuration}), decoded to milliseconds. The
 * default is given as a number of milliseconds. An empty string counts as absent.
 */
export function duration<const O extends DurationOptions>(
  options?: O,
): Field<number, PresentFor<O>> {
  const positive = options?.positive === true;
  const min = options?.min;
  return scalarField<number, O>(
    'duration',
    options,
    (value, path) => {
      const text = scalarText(value);
      if (text === undefined || value.kind === 'bool') {
        return {
          ok: false,
          error: `${path} must be a duration string such as "1h30m", not ${describeKind(value)}`,
        };
      }
      if (text === '') return { ok: true, value: Number.NaN };
      let ms: number;
      try {
        ms = parseDuration(text);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        const hint = /^[0-9]+$/.test(text) ? ` (write e.g. "${text}s")` : '';
        return { ok: false, error: `${path}: ${reason}${hint}` };
      }
      if (positive && ms <= 0) {
        return {
          ok: false,
          error: `${path} must be a positive duration, not ${previewValue(text)}`,
        };
      }
      if (min !== undefined && ms < min) {
        return {
          ok: false,
          error: `${path} must be at least ${String(min)}ms, not ${previewValue(text)}`,
        };
      }
      return { ok: true, value: ms };
    },
    (v) => Number.isNaN(v),
  );
}

/** Options of {@link stringList}. */
export interface StringListOptions extends ScalarOptions<readonly string[]> {
  /** Rule for each item: returns a problem description or undefined. */
  checkItem?: (item: string) => string | undefined;
}

/** A list of strings (`["a", "b"]`); numbers and booleans in it are taken as text. */
export function stringList<const O extends StringListOptions>(
  options?: O,
): Field<readonly string[], PresentFor<O>> {
  const checkItem = options?.checkItem;
  return scalarField<readonly string[], O>(
    'string-list',
    options,
    (value, path) => {
      if (value.kind !== 'list') {
        return {
          ok: false,
          error: `${path} must be a list of strings, not ${describeKind(value)}`,
        };
      }
      const out: string[] = [];
      for (const [i, item] of value.items.entries()) {
        const text = scalarText(item);
        if (text === undefined) {
          return {
            ok: false,
            error: `${path}[${String(i)}] must be a string, not ${describeKind(item)}`,
          };
        }
        const problem = checkItem?.(text);
        if (problem !== undefined) {
          return { ok: false, error: `${path}[${String(i)}] ${problem}` };
        }
        out.push(text);
      }
      return { ok: true, value: out };
    },
    () => false,
  );
}

// ---------------------------------------------------------------------------------------------
// Blocks

/** Helpers given to a block's cross-field {@link BlockOptions.check}. */
export interface BlockCheckHelpers {
  /** Reports a problem at `key`'s position (or the block's when absent/undefined). */
  report(message: string, key?: string): void;
  /** The block's path (`server`). */
  readonly path: string;
  /** True when `key` was written in the file (as opposed to defaulted). */
  has(key: string): boolean;
}

/** Options of {@link block} and {@link optionalBlock}. */
export interface BlockOptions<F extends Fields> {
  /** Report a problem when the block is absent. */
  required?: boolean;
  description?: string;
  /**
   * Keys SPIRE knows that this implementation does not support, with the reason shown to the
   * operator (`"federation is not supported yet"`). They are errors, never silently ignored.
   */
  unsupported?: Readonly<Record<string, string>>;
  /** Cross-field rules, run when every field decoded without problems. */
  check?: (value: BlockValue<F>, helpers: BlockCheckHelpers) => void;
}

/** Restricted Damerau–Levenshtein (optimal string alignment) distance, case-insensitive. */
function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  const d: number[][] = [];
  for (let i = 0; i <= s.length; i++) {
    d.push([i]);
  }
  for (let j = 1; j <= t.length; j++) d[0]![j] = j;
  for (let i = 1; i <= s.length; i++) {
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) {
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = v;
    }
  }
  return d[s.length]![t.length]!;
}

/**
 * The known name closest to `name` when it is close enough to be a likely typo (case-insensitive
 * match, or a few edits for longer names), else undefined.
 */
export function suggest(name: string, known: Iterable<string>): string | undefined {
  if (name.length > 100) return undefined;
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  const limit = Math.max(1, Math.min(3, Math.floor(name.length / 3)));
  for (const k of known) {
    const dist = editDistance(name, k);
    if (dist < bestDistance) {
      best = k;
      bestDistance = dist;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

function unknownKeyMessage(key: string, path: string, known: Iterable<string>): string {
  const where = path === '' ? 'at the top level' : `in ${path}`;
  const hint = suggest(key, known);
  return `unknown key ${JSON.stringify(key)} ${where}${hint === undefined ? '' : ` (did you mean ${JSON.stringify(hint)}?)`}`;
}

/** Groups entries by key, keeping first-seen order. */
function groupEntries(entries: readonly ConfigEntry[]): Map<string, ConfigEntry[]> {
  const groups = new Map<string, ConfigEntry[]>();
  for (const e of entries) {
    const g = groups.get(e.key);
    if (g === undefined) groups.set(e.key, [e]);
    else g.push(e);
  }
  return groups;
}

/**
 * Decodes one block body against `fields`. Reports unknown and unsupported keys, decodes every
 * field, then runs `check` when the block itself had no problems.
 */
export function decodeBody<F extends Fields>(
  body: ConfigObject | undefined,
  fields: F,
  options: BlockOptions<F>,
  ctx: DecodeContext,
  path: string,
  pos: Position | undefined,
): BlockValue<F> | undefined {
  const groups = groupEntries(body?.entries ?? []);
  const before = ctx.problemCount;
  for (const [key, group] of groups) {
    if (Object.hasOwn(fields, key)) continue;
    const keyPath = joinPath(path, key);
    const unsupported = options.unsupported ?? {};
    const reason = Object.hasOwn(unsupported, key) ? unsupported[key] : undefined;
    if (reason !== undefined) {
      ctx.report(group[0]!.keyPos, keyPath, `${keyPath} is not supported: ${reason}`);
    } else {
      ctx.report(group[0]!.keyPos, keyPath, () =>
        unknownKeyMessage(key, path, Object.keys(fields)),
      );
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(fields)) {
    const value = field.read(groups.get(key) ?? [], ctx, joinPath(path, key), pos);
    if (value !== undefined) out[key] = value;
  }
  if (ctx.problemCount !== before) return undefined;
  const value = out as BlockValue<F>;
  if (options.check !== undefined) {
    options.check(value, {
      path,
      has: (key) => groups.has(key),
      report: (message, key) => {
        const at = key === undefined ? undefined : groups.get(key)?.[0];
        ctx.report(
          at === undefined ? pos : at.value.pos,
          key === undefined ? path : joinPath(path, key),
          message,
        );
      },
    });
    if (ctx.problemCount !== before) return undefined;
  }
  return value;
}

/**
 * The single body of a block given by `entries` (a block may be written once; a repeat or a list
 * of several objects is reported), or undefined when absent. `false` means a problem was reported.
 */
export function singleBody(
  entries: readonly ConfigEntry[],
  ctx: DecodeContext,
  path: string,
): { body: ConfigObject; pos: Position } | undefined | false {
  const bodies: Array<{ body: ConfigObject; keyPos: Position }> = [];
  for (const e of entries) {
    const objs = objectsOf(e.value);
    if (objs.length === 0) {
      const what =
        e.value.kind === 'list' && e.value.items.length === 0
          ? 'an empty list'
          : describeKind(e.value);
      ctx.report(e.value.pos, path, `${path} must be a block ({ … }), not ${what}`);
      return false;
    }
    for (const body of objs) bodies.push({ body, keyPos: e.keyPos });
  }
  const [first, second] = bodies;
  if (first === undefined) return undefined;
  if (second !== undefined) {
    ctx.report(
      second.body.pos,
      path,
      `block ${path} is defined more than once (first at line ${String(first.keyPos.line)})`,
    );
    return false;
  }
  return { body: first.body, pos: first.keyPos };
}

function blockField<F extends Fields>(
  fields: F,
  options: BlockOptions<F>,
  optional: boolean,
): AnyField {
  return {
    kind: 'block',
    present: !optional,
    description: options.description,
    read(entries, ctx, path, parent) {
      const found = singleBody(entries, ctx, path);
      if (found === false) return undefined;
      if (found === undefined) {
        if (options.required === true) {
          ctx.report(parent, path, `missing required block ${path}`);
          return undefined;
        }
        if (optional) return undefined;
        return decodeBody(undefined, fields, options, ctx, path, parent);
      }
      return decodeBody(found.body, fields, options, ctx, path, found.pos);
    },
  };
}

/**
 * A nested block `key { … }` (also accepted: `key = { … }`, and in JSON an object or a one-item
 * list of objects). When absent, its fields take their defaults (like SPIRE's non-pointer
 * sections), unless `required` is set.
 */
export function block<F extends Fields>(
  fields: F,
  options: BlockOptions<F> = {},
): Field<BlockValue<F>, true> {
  return blockField(fields, options, false) as Field<BlockValue<F>, true>;
}

/** A nested block whose absence is meaningful: decodes to `undefined` when not written. */
export function optionalBlock<F extends Fields>(
  fields: F,
  options: Omit<BlockOptions<F>, 'required'> = {},
): Field<BlockValue<F>, false> {
  return blockField(fields, options, true) as Field<BlockValue<F>, false>;
}

/** A schema for a whole document: the top-level fields and options. */
export interface DocumentSchema<F extends Fields> {
  readonly fields: F;
  readonly options?: BlockOptions<F>;
}

/**
 * Decodes a whole document (the root object) against a schema, collecting every problem.
 *
 * @throws SpireEdgeError `ERR_CONFIG_INVALID` listing every problem (`details.problems`).
 */
export function decodeDocument<F extends Fields>(
  root: ConfigObject,
  schema: DocumentSchema<F>,
  file: string,
): BlockValue<F> {
  const ctx = new DecodeContext(file);
  const value = decodeBody(root, schema.fields, schema.options ?? {}, ctx, '', root.pos);
  ctx.throwIfProblems();
  return value!;
}
