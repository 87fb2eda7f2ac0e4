/**
 * The JSON form of an HCL v1 configuration file, parsed into the same generic tree as HCL text,
 * following what HCL v1's JSON parser accepts and how SPIRE decodes it:
 *
 * - the document is one JSON object;
 * - a key may repeat in an object when every occurrence is an object or a list of objects (HCL v1
 *   merges them: SPIRE's own tests write `"plugins": { "TYPE1": [ … ], "TYPE1": [ … ] }`);
 *   repeating any other key is a duplicate-attribute error;
 * - a list of objects is a repeated block (`"NodeAttestor": [{ "a": {…} }, { "b": {…} }]`), and
 *   nested objects are block labels (`"KeyManager": { "disk": { "plugin_data": {…} } }`) — the
 *   schema accepts both shapes;
 * - a trailing comma before `}` or `]` is allowed (HCL v1's JSON scanner allows it);
 * - `null` as an object member means the key is not set; `null` inside a list is an error.
 *
 * Everything else is strict RFC 8259: no comments, no single quotes, no NaN. Bounds and errors as
 * in {@link "./hcl.js"}: `ERR_CONFIG_INVALID` with `file:line:column`.
 */
import { addEntry, type ParseOptions, prepareText } from './hcl.js';
import {
  type ConfigEntry,
  type ConfigObject,
  type ConfigValue,
  configError,
  MAX_CONFIG_DEPTH,
  type Position,
} from './tree.js';

const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

class JsonParser {
  readonly #src: string;
  readonly #file: string;
  #i = 0;
  #line = 1;
  #lineStart = 0;
  #colIndex = 0;
  #col = 1;

  constructor(src: string, file: string) {
    this.#src = src;
    this.#file = file;
  }

  #pos(at = this.#i): Position {
    // Columns count code points. Positions are asked for in increasing order, so counting on
    // from the last one keeps this linear even for minified single-line JSON.
    if (this.#colIndex < this.#lineStart || at < this.#colIndex) {
      this.#colIndex = this.#lineStart;
      this.#col = 1;
    }
    for (let k = this.#colIndex; k < at; k++) {
      const c = this.#src.charCodeAt(k);
      const low = c >= 0xdc00 && c <= 0xdfff;
      const prev = this.#src.charCodeAt(k - 1);
      if (!(low && k > this.#lineStart && prev >= 0xd800 && prev <= 0xdbff)) this.#col++;
    }
    this.#colIndex = at;
    return { line: this.#line, column: this.#col };
  }

  #fail(message: string, pos: Position = this.#pos()): Error {
    return configError(this.#file, pos, message);
  }

  #ws(): void {
    for (;;) {
      const c = this.#src.charCodeAt(this.#i);
      if (c === 0x0a) {
        this.#i++;
        this.#line++;
        this.#lineStart = this.#i;
      } else if (c === 0x20 || c === 0x09 || c === 0x0d) {
        this.#i++;
      } else {
        return;
      }
    }
  }

  #describeHere(): string {
    if (this.#i >= this.#src.length) return 'end of input';
    const cp = this.#src.codePointAt(this.#i) ?? 0;
    if (cp < 0x20) return `control character U+${cp.toString(16).padStart(4, '0')}`;
    return `'${String.fromCodePoint(cp)}'`;
  }

  document(): ConfigObject {
    this.#ws();
    if (this.#src.charCodeAt(this.#i) !== 0x7b) {
      throw this.#fail(
        `expected '{' at the start of a JSON configuration, found ${this.#describeHere()}`,
      );
    }
    const root = this.#object(1);
    this.#ws();
    if (this.#i < this.#src.length) {
      throw this.#fail(`unexpected ${this.#describeHere()} after the end of the JSON object`);
    }
    return root;
  }

  #value(depth: number): ConfigValue | null {
    if (depth > MAX_CONFIG_DEPTH) {
      throw this.#fail(`nesting is deeper than ${String(MAX_CONFIG_DEPTH)} levels`);
    }
    const pos = this.#pos();
    const c = this.#src.charCodeAt(this.#i);
    if (c === 0x7b) return this.#object(depth);
    if (c === 0x5b) return this.#list(depth);
    if (c === 0x22) return { kind: 'string', value: this.#string(), pos };
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      NUMBER.lastIndex = this.#i;
      const m = NUMBER.exec(this.#src);
      if (m === null) throw this.#fail('invalid number');
      const text = m[0];
      this.#i += text.length;
      const next = this.#src.charCodeAt(this.#i);
      if ((next >= 0x30 && next <= 0x39) || next === 0x2e || next === 0x65 || next === 0x45) {
        throw this.#fail(`invalid number ${JSON.stringify(text)}...`, pos);
      }
      return {
        kind: 'number',
        value: Number(text),
        text,
        integer: m[1] === undefined && m[2] === undefined,
        pos,
      };
    }
    for (const [word, value] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (this.#src.startsWith(word, this.#i)) {
        this.#i += word.length;
        return value === null ? null : { kind: 'bool', value, pos };
      }
    }
    throw this.#fail(`expected a JSON value, found ${this.#describeHere()}`);
  }

  #object(depth: number): ConfigObject {
    const pos = this.#pos();
    this.#i++; // {
    const entries: ConfigEntry[] = [];
    const seen = new Map<string, ConfigEntry>();
    const fail = (p: Position, m: string): Error => this.#fail(m, p);
    for (;;) {
      this.#ws();
      if (this.#src.charCodeAt(this.#i) === 0x7d) {
        this.#i++;
        return { kind: 'object', entries, pos };
      }
      if (this.#src.charCodeAt(this.#i) !== 0x22) {
        throw this.#fail(`expected a quoted key or '}' in object, found ${this.#describeHere()}`);
      }
      const keyPos = this.#pos();
      const key = this.#string();
      this.#ws();
      if (this.#src.charCodeAt(this.#i) !== 0x3a) {
        throw this.#fail(
          `expected ':' after key ${JSON.stringify(key)}, found ${this.#describeHere()}`,
        );
      }
      this.#i++;
      this.#ws();
      const value = this.#value(depth + 1);
      if (value !== null) addEntry(entries, seen, { key, keyPos, value }, fail);
      this.#ws();
      const sep = this.#src.charCodeAt(this.#i);
      if (sep === 0x2c) {
        this.#i++;
        continue;
      }
      if (sep !== 0x7d) {
        throw this.#fail(`expected ',' or '}' in object, found ${this.#describeHere()}`);
      }
    }
  }

  #list(depth: number): ConfigValue {
    const pos = this.#pos();
    this.#i++; // [
    const items: ConfigValue[] = [];
    for (;;) {
      this.#ws();
      if (this.#src.charCodeAt(this.#i) === 0x5d) {
        this.#i++;
        return { kind: 'list', items, pos };
      }
      const itemPos = this.#pos();
      const value = this.#value(depth + 1);
      if (value === null) throw this.#fail('null is not allowed in a list', itemPos);
      items.push(value);
      this.#ws();
      const sep = this.#src.charCodeAt(this.#i);
      if (sep === 0x2c) {
        this.#i++;
        continue;
      }
      if (sep !== 0x5d) {
        throw this.#fail(`expected ',' or ']' in list, found ${this.#describeHere()}`);
      }
    }
  }

  #string(): string {
    const start = this.#pos();
    this.#i++; // "
    let out = '';
    let run = this.#i;
    for (;;) {
      if (this.#i >= this.#src.length) throw this.#fail('unterminated string', start);
      const c = this.#src.charCodeAt(this.#i);
      if (c === 0x22) {
        out += this.#src.slice(run, this.#i);
        this.#i++;
        return out;
      }
      if (c < 0x20) {
        throw this.#fail(
          c === 0x0a ? 'unterminated string' : 'control characters must be escaped in strings',
          c === 0x0a ? start : this.#pos(),
        );
      }
      if (c !== 0x5c) {
        this.#i++;
        continue;
      }
      out += this.#src.slice(run, this.#i);
      const escPos = this.#pos();
      const e = this.#src[this.#i + 1];
      this.#i += 2;
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          const hex = this.#src.slice(this.#i, this.#i + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
            throw this.#fail('invalid escape sequence: \\u needs 4 hex digits', escPos);
          }
          out += String.fromCharCode(Number.parseInt(hex, 16));
          this.#i += 4;
          break;
        }
        default:
          throw this.#fail(
            `invalid escape sequence '\\${e ?? ''}' in string (JSON allows \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)`,
            escPos,
          );
      }
      run = this.#i;
    }
  }
}

/**
 * Parses the JSON form of a configuration file into the generic tree (see the module docs).
 *
 * @throws SpireEdgeError `ERR_CONFIG_INVALID` with `file:line:column` and what was expected.
 */
export function parseHclJson(text: string, options: ParseOptions = {}): ConfigObject {
  const file = options.filename ?? 'config';
  const src = prepareText(text, file);
  return new JsonParser(src, file).document();
}
