/**
 * The generic configuration tree that both syntaxes of a SPIRE configuration file (HCL v1 and
 * its JSON form) parse into, and that {@link "./schema.js"} validates. It carries source
 * positions so every error can name a line.
 *
 * The tree follows HCL v1's data model: an object is an ordered list of entries whose keys may
 * repeat (HCL v1 merges repeated blocks, e.g. several `NodeAttestor "x" { … }` blocks), and a
 * block with labels `a "b" "c" { … }` is the same as nested objects `a { b { c { … } } }`.
 *
 * Errors: `ERR_CONFIG_INVALID` for every problem with configuration text.
 */
import { SpireEdgeError } from '../common/errors.js';

/** The largest configuration text accepted, in UTF-16 code units (and bytes, by the loaders). */
export const MAX_CONFIG_SIZE = 1 << 20;
/** The deepest nesting of objects, lists and block labels accepted. */
export const MAX_CONFIG_DEPTH = 64;

/** A 1-based line and column (columns count Unicode code points). */
export interface Position {
  readonly line: number;
  readonly column: number;
}

/** A string value (quoted string or heredoc in HCL, string in JSON). */
export interface ConfigString {
  readonly kind: 'string';
  readonly value: string;
  readonly pos: Position;
}

/** A number value. `text` is the literal as written (HCL v1 decodes numbers into strings by text). */
export interface ConfigNumber {
  readonly kind: 'number';
  readonly value: number;
  readonly text: string;
  /** True for integer literals (decimal, hex or octal), false for floats. */
  readonly integer: boolean;
  readonly pos: Position;
}

/** A boolean value. */
export interface ConfigBool {
  readonly kind: 'bool';
  readonly value: boolean;
  readonly pos: Position;
}

/** A list value `[a, b]`. */
export interface ConfigList {
  readonly kind: 'list';
  readonly items: readonly ConfigValue[];
  readonly pos: Position;
}

/** An object: a block body or an object value `{ k = v }`. Keys may repeat (see module docs). */
export interface ConfigObject {
  readonly kind: 'object';
  readonly entries: readonly ConfigEntry[];
  readonly pos: Position;
}

/** Any value of the tree. */
export type ConfigValue = ConfigString | ConfigNumber | ConfigBool | ConfigList | ConfigObject;

/** One `key = value` or `key { … }` of an object. */
export interface ConfigEntry {
  readonly key: string;
  readonly keyPos: Position;
  readonly value: ConfigValue;
}

/** The syntaxes a configuration file can be written in. */
export type ConfigFormat = 'hcl' | 'json';

/**
 * The coded error for configuration problems, with the file name and position in front of the
 * message (`server.conf:12:5: …`), the way compilers report them.
 */
export function configError(
  file: string,
  pos: Position | undefined,
  message: string,
  cause?: unknown,
): SpireEdgeError {
  const where =
    pos === undefined ? `${file}: ` : `${file}:${String(pos.line)}:${String(pos.column)}: `;
  return new SpireEdgeError('ERR_CONFIG_INVALID', where + message, {
    ...(cause === undefined ? {} : { cause }),
    details: { file, line: pos?.line, column: pos?.column },
  });
}

/**
 * True when a value can stand for a block body: an object, or (JSON form) a non-empty list whose
 * items are all objects, which HCL v1 reads as the block repeated.
 */
export function isObjectLike(value: ConfigValue): boolean {
  if (value.kind === 'object') return true;
  return value.kind === 'list' && value.items.length > 0 && value.items.every(isObjectValue);
}

function isObjectValue(value: ConfigValue): boolean {
  return value.kind === 'object';
}

/** The objects a value stands for: the object itself, or each object of a list of objects. */
export function objectsOf(value: ConfigValue): ConfigObject[] {
  if (value.kind === 'object') return [value];
  if (value.kind === 'list' && isObjectLike(value)) return value.items as ConfigObject[];
  return [];
}

/** A position-free plain form of a value, for comparisons: objects become `[key, value]` lists. */
export type PlainValue = string | number | boolean | PlainValue[] | PlainEntry[] | PlainObject;
/** One entry of a {@link PlainObject}. */
export type PlainEntry = readonly [string, PlainValue];
/** A plain object: its entries in order (keys may repeat). */
export interface PlainObject {
  readonly object: readonly PlainEntry[];
}

/** Drops positions (and number spelling) from a value, keeping order and repeated keys. */
export function toPlain(value: ConfigValue): PlainValue {
  switch (value.kind) {
    case 'string':
    case 'number':
    case 'bool':
      return value.value;
    case 'list':
      return value.items.map(toPlain);
    case 'object':
      return { object: value.entries.map((e) => [e.key, toPlain(e.value)] as const) };
  }
}

/** A short description of a value's type for messages (`a string`, `a list`, `a block`). */
export function describeKind(value: ConfigValue): string {
  switch (value.kind) {
    case 'string':
      return 'a string';
    case 'number':
      return value.integer ? 'a number' : 'a float';
    case 'bool':
      return 'a boolean';
    case 'list':
      return 'a list';
    case 'object':
      return 'a block';
  }
}

/**
 * Picks the syntax as HCL v1 does: text whose first non-blank character is `{` is JSON; a
 * `.json` file name also means JSON.
 */
export function detectConfigFormat(text: string, filename = ''): ConfigFormat {
  if (filename.toLowerCase().endsWith('.json')) return 'json';
  const first = /^[\s\uFEFF]*(.)/.exec(text);
  return first?.[1] === '{' ? 'json' : 'hcl';
}

/** The position of a top-level key (or of the document when absent), for messages. */
export function findEntryPos(root: ConfigObject, key: string): Position {
  return root.entries.find((e) => e.key === key)?.keyPos ?? root.pos;
}
