/**
 * A strict JSON (RFC 8259) parser for data files that SPIRE's CLIs read with Go's
 * `encoding/json`: numbers keep their literal text (so 64-bit integers stay exact and `1.0`
 * is still not an integer, as in Go), object members keep their order and duplicates (Go
 * applies them in order), and syntax errors read as Go's (`unexpected end of JSON input`,
 * `invalid character 'x' looking for beginning of value`).
 *
 * Errors: `ERR_CLI_JSON_INVALID`. The input is untrusted; nesting is limited to
 * {@link MAX_JSON_DEPTH} levels (Go's limit is 10000).
 */
import { SpireEdgeError } from '../errors.js';
import { goQuote } from './go-quote.js';

/** A parsed JSON value. */
export type JsonNode =
  | { readonly kind: 'null' }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'number'; readonly text: string }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'array'; readonly items: readonly JsonNode[] }
  | { readonly kind: 'object'; readonly members: ReadonlyArray<readonly [string, JsonNode]> };

/** Deepest nesting accepted. */
export const MAX_JSON_DEPTH = 1000;

/** Go's `quoteChar`: the offending character in single quotes, escaped as `%q` would. */
function quoteChar(c: string): string {
  if (c === "'") return "'\\''";
  if (c === '"') return "'\"'";
  return `'${goQuote(c).slice(1, -1)}'`;
}

class Parser {
  readonly #s: string;
  #i = 0;

  constructor(s: string) {
    this.#s = s;
  }

  fail(context: string): never {
    if (this.#i >= this.#s.length) {
      throw new SpireEdgeError('ERR_CLI_JSON_INVALID', 'unexpected end of JSON input');
    }
    const c = String.fromCodePoint(this.#s.codePointAt(this.#i)!);
    throw new SpireEdgeError(
      'ERR_CLI_JSON_INVALID',
      `invalid character ${quoteChar(c)} ${context}`,
    );
  }

  ws(): void {
    while (this.#i < this.#s.length && ' \t\n\r'.includes(this.#s[this.#i]!)) this.#i++;
  }

  document(): JsonNode {
    this.ws();
    const v = this.value(0);
    this.ws();
    if (this.#i < this.#s.length) this.fail('after top-level value');
    return v;
  }

  value(depth: number): JsonNode {
    if (depth > MAX_JSON_DEPTH) {
      throw new SpireEdgeError('ERR_CLI_JSON_INVALID', 'exceeded max depth');
    }
    const c = this.#s[this.#i];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"') return { kind: 'string', value: this.string() };
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
    if (c === 't') return this.literal('true', { kind: 'bool', value: true });
    if (c === 'f') return this.literal('false', { kind: 'bool', value: false });
    if (c === 'n') return this.literal('null', { kind: 'null' });
    return this.fail('looking for beginning of value');
  }

  literal(word: string, node: JsonNode): JsonNode {
    for (let k = 0; k < word.length; k++) {
      if (this.#s[this.#i] !== word[k]) this.fail(`in literal ${word} (expecting '${word[k]}')`);
      this.#i++;
    }
    return node;
  }

  number(): JsonNode {
    const start = this.#i;
    const s = this.#s;
    const digit = () => this.#i < s.length && s[this.#i]! >= '0' && s[this.#i]! <= '9';
    if (s[this.#i] === '-') {
      this.#i++;
      if (!digit()) this.fail('in numeric literal');
    }
    if (s[this.#i] === '0') this.#i++;
    else while (digit()) this.#i++;
    if (s[this.#i] === '.') {
      this.#i++;
      if (!digit()) this.fail('after decimal point in numeric literal');
      while (digit()) this.#i++;
    }
    if (s[this.#i] === 'e' || s[this.#i] === 'E') {
      this.#i++;
      if (s[this.#i] === '+' || s[this.#i] === '-') this.#i++;
      if (!digit()) this.fail('in exponent of numeric literal');
      while (digit()) this.#i++;
    }
    return { kind: 'number', text: s.slice(start, this.#i) };
  }

  string(): string {
    const s = this.#s;
    this.#i++; // opening quote
    let out = '';
    for (;;) {
      if (this.#i >= s.length) this.fail('in string literal');
      const c = s[this.#i]!;
      if (c === '"') {
        this.#i++;
        return out;
      }
      if (c.charCodeAt(0) < 0x20) this.fail('in string literal');
      if (c !== '\\') {
        out += c;
        this.#i++;
        continue;
      }
      this.#i++;
      const e = s[this.#i];
      const simple: Record<string, string> = {
        '"': '"',
        '\\': '\\',
        '/': '/',
        b: '\b',
        f: '\f',
        n: '\n',
        r: '\r',
        t: '\t',
      };
      if (e !== undefined && simple[e] !== undefined) {
        out += simple[e];
        this.#i++;
        continue;
      }
      if (e !== 'u') this.fail('in string escape code');
      this.#i++;
      let code = 0;
      for (let k = 0; k < 4; k++) {
        const h = s[this.#i];
        if (h === undefined || !/[0-9a-fA-F]/.test(h))
          this.fail('in \\u hexadecimal character escape');
        code = code * 16 + Number.parseInt(h, 16);
        this.#i++;
      }
      out += String.fromCharCode(code);
    }
  }

  array(depth: number): JsonNode {
    this.#i++;
    const items: JsonNode[] = [];
    this.ws();
    if (this.#s[this.#i] === ']') {
      this.#i++;
      return { kind: 'array', items };
    }
    for (;;) {
      this.ws();
      items.push(this.value(depth + 1));
      this.ws();
      const c = this.#s[this.#i];
      if (c === ',') {
        this.#i++;
        continue;
      }
      if (c === ']') {
        this.#i++;
        return { kind: 'array', items };
      }
      this.fail('after array element');
    }
  }

  object(depth: number): JsonNode {
    this.#i++;
    const members: Array<readonly [string, JsonNode]> = [];
    this.ws();
    if (this.#s[this.#i] === '}') {
      this.#i++;
      return { kind: 'object', members };
    }
    for (;;) {
      this.ws();
      if (this.#s[this.#i] !== '"') this.fail('looking for beginning of object key string');
      const key = this.string();
      this.ws();
      if (this.#s[this.#i] !== ':') this.fail('after object key');
      this.#i++;
      this.ws();
      members.push([key, this.value(depth + 1)]);
      this.ws();
      const c = this.#s[this.#i];
      if (c === ',') {
        this.#i++;
        continue;
      }
      if (c === '}') {
        this.#i++;
        return { kind: 'object', members };
      }
      this.fail('after object key:value pair');
    }
  }
}

/**
 * Parses one JSON document (surrounding whitespace allowed).
 *
 * @throws SpireEdgeError `ERR_CLI_JSON_INVALID` with Go's syntax error text.
 */
export function parseJsonText(text: string): JsonNode {
  return new Parser(text).document();
}

/** The `encoding/json` name of a value's JSON type in type errors (`number 1.5`, `string`). */
export function goJsonTypeName(node: JsonNode): string {
  switch (node.kind) {
    case 'bool':
      return 'bool';
    case 'number':
      return 'number';
    case 'string':
      return 'string';
    case 'array':
      return 'array';
    case 'object':
      return 'object';
    default:
      return 'null';
  }
}
