/**
 * A strict parser (and printer) for the subset of HashiCorp Configuration Language v1 that SPIRE
 * configuration files use (`github.com/hashicorp/hcl` v1, which SPIRE decodes with `hcl.Decode`):
 *
 * - comments `#`, `//` and `/* … *\/` (not nested);
 * - attributes `key = value` and blocks `key { … }`, `key "label" { … }`, `key "l1" l2 { … }`;
 *   keys are identifiers (`[letter_][letter digit _ - .]*`) or quoted strings; a block with labels
 *   is the same as nested blocks (`a "b" { … }` ≡ `a { b { … } }`); items may be separated by
 *   commas, as HCL v1 allows;
 * - values: double-quoted strings (escapes `\a \b \f \n \r \t \v \\ \"`, `\NNN` octal and `\xHH`
 *   up to 0x7f, `\uXXXX`, `\UXXXXXXXX`; a string ends on its line; `${ … }` is kept verbatim and
 *   may contain quotes, as in HCL v1), heredocs `<<EOF … EOF` and `<<-EOF` (indented: the
 *   terminator's indentation is removed from every line), integers (decimal, `0x` hex, leading-0
 *   octal, with `-`), floats (`1.5`, `.5`, `1e3`), `true`/`false`, lists `[a, b,]` and objects
 *   `{ k = v }` as values;
 * - repeated keys: blocks (object values) may repeat — HCL v1 merges them, SPIRE relies on it for
 *   `plugins { NodeAttestor "a" {…} NodeAttestor "b" {…} }`; an attribute repeated with a
 *   non-block value is an error (HCL v1 would silently keep one).
 *
 * Deliberate differences from HCL v1: unquoted values (identifiers) are errors, not silently
 * dropped; a number directly followed by letters (`ttl = 300s`) is an error that suggests quoting;
 * a heredoc terminator may be the last line without a newline; a UTF-8 byte-order mark is skipped.
 *
 * Bounds: {@link MAX_CONFIG_SIZE} characters, {@link MAX_CONFIG_DEPTH} levels of nesting.
 * Trusts nothing about its input; every failure is `ERR_CONFIG_INVALID` with `file:line:column`.
 */
import {
  type ConfigEntry,
  type ConfigObject,
  type ConfigValue,
  configError,
  isObjectLike,
  MAX_CONFIG_DEPTH,
  MAX_CONFIG_SIZE,
  type Position,
} from './tree.js';

/** Options for {@link parseHcl}. */
export interface ParseOptions {
  /** The name used in error messages (`server.conf`). Default `config`. */
  filename?: string;
}

type Punct = '{' | '}' | '[' | ']' | ',' | '=';

type Token =
  | { readonly t: 'ident'; readonly text: string; readonly pos: Position }
  | { readonly t: 'string'; readonly value: string; readonly pos: Position }
  | { readonly t: 'heredoc'; readonly value: string; readonly pos: Position }
  | {
      readonly t: 'number';
      readonly value: number;
      readonly text: string;
      readonly integer: boolean;
      readonly pos: Position;
    }
  | { readonly t: 'bool'; readonly value: boolean; readonly pos: Position }
  | { readonly t: Punct | 'eof'; readonly pos: Position };

const LETTER = /\p{L}/u;
const DIGIT = /\p{Nd}/u;

function isAsciiLetter(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f;
}

function isDecimal(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isHex(c: number): boolean {
  return isDecimal(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

/** HCL's `[[:space:]]`: the characters that may indent a heredoc terminator. */
function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0b || c === 0x0c || c === 0x0d;
}

function preview(s: string): string {
  const oneLine = JSON.stringify(s.length > 40 ? `${s.slice(0, 37)}...` : s);
  return oneLine;
}

function describeToken(tok: Token): string {
  switch (tok.t) {
    case 'ident':
      return `identifier ${preview(tok.text)}`;
    case 'string':
      return `string ${preview(tok.value)}`;
    case 'heredoc':
      return 'heredoc string';
    case 'number':
      return `number ${tok.text}`;
    case 'bool':
      return String(tok.value);
    case 'eof':
      return 'end of input';
    default:
      return `'${tok.t}'`;
  }
}

function describeChar(cp: number): string {
  if (cp < 0x20 || cp === 0x7f) return `control character U+${cp.toString(16).padStart(4, '0')}`;
  return `character '${String.fromCodePoint(cp)}'`;
}

class Lexer {
  readonly #src: string;
  readonly #file: string;
  #i = 0;
  #line = 1;
  #col = 1;

  constructor(src: string, file: string) {
    this.#src = src;
    this.#file = file;
  }

  error(pos: Position, message: string): Error {
    return configError(this.#file, pos, message);
  }

  #pos(): Position {
    return { line: this.#line, column: this.#col };
  }

  #peekCode(offset = 0): number {
    const i = this.#i + offset;
    return i < this.#src.length ? this.#src.charCodeAt(i) : -1;
  }

  /** Advances one UTF-16 unit, keeping line and column (code points) in step. */
  #bump(): void {
    const c = this.#src.charCodeAt(this.#i);
    this.#i++;
    if (c === 0x0a) {
      this.#line++;
      this.#col = 1;
    } else if (
      c >= 0xdc00 &&
      c <= 0xdfff &&
      this.#i >= 2 &&
      isHighSurrogate(this.#src.charCodeAt(this.#i - 2))
    ) {
      // second half of a surrogate pair: same code point, same column
    } else {
      this.#col++;
    }
  }

  #codePointAt(i: number): number {
    return this.#src.codePointAt(i) ?? -1;
  }

  #bumpCodePoint(): void {
    const cp = this.#codePointAt(this.#i);
    this.#bump();
    if (cp > 0xffff) this.#bump();
  }

  #isIdentStart(i: number): boolean {
    const c = this.#src.charCodeAt(i);
    if (c < 0x80) return isAsciiLetter(c);
    const cp = this.#codePointAt(i);
    return LETTER.test(String.fromCodePoint(cp));
  }

  #isIdentPart(i: number): boolean {
    if (i >= this.#src.length) return false;
    const c = this.#src.charCodeAt(i);
    if (c < 0x80) return isAsciiLetter(c) || isDecimal(c) || c === 0x2d || c === 0x2e;
    const s = String.fromCodePoint(this.#codePointAt(i));
    return LETTER.test(s) || DIGIT.test(s);
  }

  #skipTrivia(): void {
    for (;;) {
      const c = this.#peekCode();
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) {
        this.#bump();
        continue;
      }
      if (c === 0x23 || (c === 0x2f && this.#peekCode(1) === 0x2f)) {
        while (this.#i < this.#src.length && this.#src.charCodeAt(this.#i) !== 0x0a) this.#bump();
        continue;
      }
      if (c === 0x2f && this.#peekCode(1) === 0x2a) {
        const start = this.#pos();
        this.#bump();
        this.#bump();
        for (;;) {
          if (this.#i >= this.#src.length) {
            throw this.error(start, "unterminated comment: '/*' has no closing '*/'");
          }
          if (this.#src.charCodeAt(this.#i) === 0x2a && this.#peekCode(1) === 0x2f) {
            this.#bump();
            this.#bump();
            break;
          }
          this.#bump();
        }
        continue;
      }
      if (c === 0x2f) {
        throw this.error(this.#pos(), "unexpected '/': comments start with '//', '#' or '/*'");
      }
      return;
    }
  }

  next(): Token {
    this.#skipTrivia();
    const pos = this.#pos();
    if (this.#i >= this.#src.length) return { t: 'eof', pos };
    const c = this.#src.charCodeAt(this.#i);
    switch (c) {
      case 0x7b:
      case 0x7d:
      case 0x5b:
      case 0x5d:
      case 0x2c:
      case 0x3d:
        this.#bump();
        return { t: String.fromCharCode(c) as Punct, pos };
      case 0x22:
        return this.#string(pos);
      case 0x3c:
        return this.#heredoc(pos);
      case 0x2d:
        if (
          isDecimal(this.#peekCode(1)) ||
          (this.#peekCode(1) === 0x2e && isDecimal(this.#peekCode(2)))
        ) {
          this.#bump();
          return this.#number(pos, '-');
        }
        throw this.error(pos, "unexpected '-': expected a number after '-'");
      case 0x2e:
        if (isDecimal(this.#peekCode(1))) return this.#number(pos, '');
        throw this.error(pos, "unexpected '.'");
    }
    if (isDecimal(c)) return this.#number(pos, '');
    if (this.#isIdentStart(this.#i)) {
      const start = this.#i;
      this.#bumpCodePoint();
      while (this.#isIdentPart(this.#i)) this.#bumpCodePoint();
      const text = this.#src.slice(start, this.#i);
      if (text === 'true' || text === 'false') return { t: 'bool', value: text === 'true', pos };
      return { t: 'ident', text, pos };
    }
    if (c === 0x27) {
      throw this.error(pos, 'unexpected "\'": strings are written in double quotes');
    }
    throw this.error(pos, `unexpected ${describeChar(this.#codePointAt(this.#i))}`);
  }

  #number(pos: Position, sign: '' | '-'): Token {
    const start = this.#i;
    let integer = true;
    let radix = 10;
    const c0 = this.#src.charCodeAt(this.#i);
    if (c0 === 0x30 && (this.#peekCode(1) === 0x78 || this.#peekCode(1) === 0x58)) {
      this.#bump();
      this.#bump();
      const digits = this.#i;
      while (isHex(this.#peekCode())) this.#bump();
      if (this.#i === digits)
        throw this.error(pos, 'invalid hexadecimal number: no digits after 0x');
      radix = 16;
    } else {
      while (isDecimal(this.#peekCode())) this.#bump();
      if (this.#peekCode() === 0x2e) {
        integer = false;
        this.#bump();
        while (isDecimal(this.#peekCode())) this.#bump();
      }
      const e = this.#peekCode();
      if (e === 0x65 || e === 0x45) {
        integer = false;
        this.#bump();
        if (this.#peekCode() === 0x2b || this.#peekCode() === 0x2d) this.#bump();
        const digits = this.#i;
        while (isDecimal(this.#peekCode())) this.#bump();
        if (this.#i === digits) throw this.error(pos, 'invalid number: no digits in the exponent');
      }
      const body = this.#src.slice(start, this.#i);
      if (integer && body.length > 1 && body.charCodeAt(0) === 0x30) {
        if (/[89]/.test(body)) throw this.error(pos, `invalid octal number ${sign}${body}`);
        radix = 8;
      }
    }
    if (this.#isIdentPart(this.#i)) {
      let end = this.#i;
      while (end < this.#src.length && this.#isIdentPart(end)) end++;
      const word = sign + this.#src.slice(start, end);
      throw this.error(
        pos,
        `invalid number ${preview(word)}: strings, durations and sizes must be quoted ("${word}")`,
      );
    }
    const body = this.#src.slice(start, this.#i);
    const text = sign + body;
    let value: number;
    if (radix === 16) value = Number.parseInt(body.slice(2), 16);
    else if (radix === 8) value = Number.parseInt(body, 8);
    else value = Number(body);
    if (sign === '-') value = -value;
    return { t: 'number', value, text, integer, pos };
  }

  #string(pos: Position): Token {
    this.#bump(); // opening quote
    let out = '';
    let runStart = this.#i;
    for (;;) {
      if (this.#i >= this.#src.length) {
        throw this.error(pos, "unterminated string: missing closing '\"'");
      }
      const c = this.#src.charCodeAt(this.#i);
      if (c === 0x22) {
        out += this.#src.slice(runStart, this.#i);
        this.#bump();
        return { t: 'string', value: out, pos };
      }
      if (c === 0x0a) {
        throw this.error(
          pos,
          'unterminated string: a quoted string must end on the line it starts',
        );
      }
      if (c === 0x24 && this.#peekCode(1) === 0x7b) {
        // HCL v1 keeps `${ … }` verbatim (no escapes inside) and lets it contain quotes.
        const open = this.#pos();
        this.#bump();
        this.#bump();
        let depth = 1;
        while (depth > 0) {
          if (this.#i >= this.#src.length) {
            // biome-ignore lint/suspicious/noTemplateCurlyInString: the message quotes a literal "${"
            throw this.error(open, "unterminated '${' in string: missing '}'");
          }
          const d = this.#src.charCodeAt(this.#i);
          if (d === 0x7b) depth++;
          else if (d === 0x7d) depth--;
          this.#bump();
        }
        continue;
      }
      if (c === 0x5c) {
        out += this.#src.slice(runStart, this.#i);
        out += this.#escape();
        runStart = this.#i;
        continue;
      }
      this.#bump();
    }
  }

  #escape(): string {
    const pos = this.#pos();
    this.#bump(); // backslash
    const c = this.#peekCode();
    if (c === -1 || c === 0x0a) throw this.error(pos, 'unterminated escape sequence in string');
    const ch = String.fromCharCode(c);
    this.#bump();
    switch (ch) {
      case 'a':
        return '\x07';
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'v':
        return '\v';
      case '\\':
        return '\\';
      case '"':
        return '"';
      case 'x':
        return this.#byteEscape(pos, this.#digits(pos, 16, 2, '\\x'));
      case 'u':
        return this.#unicodeEscape(pos, this.#digits(pos, 16, 4, '\\u'));
      case 'U':
        return this.#unicodeEscape(pos, this.#digits(pos, 16, 8, '\\U'));
      default:
        if (c >= 0x30 && c <= 0x37) {
          return this.#byteEscape(pos, (c - 0x30) * 64 + this.#digits(pos, 8, 2, '\\NNN'));
        }
        throw this.error(
          pos,
          `invalid escape sequence '\\${ch}' in string (valid: \\n \\t \\r \\" \\\\ \\uXXXX …)`,
        );
    }
  }

  #digits(pos: Position, base: 8 | 16, n: number, what: string): number {
    let v = 0;
    for (let k = 0; k < n; k++) {
      const c = this.#peekCode();
      const ok = base === 16 ? isHex(c) : c >= 0x30 && c <= 0x37;
      if (!ok) {
        throw this.error(pos, `invalid escape sequence: ${what} needs ${String(n)} more digits`);
      }
      v = v * base + Number.parseInt(String.fromCharCode(c), 16);
      this.#bump();
    }
    return v;
  }

  #byteEscape(pos: Position, v: number): string {
    // HCL v1 (Go) would insert a raw byte; above 0x7f that is not valid UTF-8 text.
    if (v > 0x7f) {
      throw this.error(
        pos,
        'invalid escape sequence: byte escapes above \\x7f are not text; use \\u',
      );
    }
    return String.fromCharCode(v);
  }

  #unicodeEscape(pos: Position, v: number): string {
    if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
      throw this.error(pos, `invalid escape sequence: U+${v.toString(16)} is not a Unicode scalar`);
    }
    return String.fromCodePoint(v);
  }

  #heredoc(pos: Position): Token {
    this.#bump();
    if (this.#peekCode() !== 0x3c) throw this.error(pos, "unexpected '<' (a heredoc starts '<<')");
    this.#bump();
    let indent = false;
    if (this.#peekCode() === 0x2d) {
      indent = true;
      this.#bump();
    }
    const anchorStart = this.#i;
    while (this.#i < this.#src.length) {
      const c = this.#src.charCodeAt(this.#i);
      if (c < 0x80 ? !(isAsciiLetter(c) || isDecimal(c)) : !this.#isIdentPart(this.#i)) break;
      this.#bumpCodePoint();
    }
    const anchor = this.#src.slice(anchorStart, this.#i);
    if (anchor.length === 0) throw this.error(pos, 'heredoc needs an anchor name after <<');
    if (this.#peekCode() === -1) {
      throw this.error(pos, `unterminated heredoc: no line "${anchor}" before the end of input`);
    }
    if (this.#peekCode() !== 0x0a) {
      throw this.error(
        this.#pos(),
        `invalid characters after heredoc anchor "${anchor}": the anchor must end the line`,
      );
    }
    this.#bump();
    const lines: string[] = [];
    for (;;) {
      if (this.#i >= this.#src.length) {
        throw this.error(pos, `unterminated heredoc: no line "${anchor}" before the end of input`);
      }
      let end = this.#src.indexOf('\n', this.#i);
      if (end === -1) end = this.#src.length;
      const line = this.#src.slice(this.#i, end);
      let k = 0;
      while (k < line.length && isSpace(line.charCodeAt(k))) k++;
      let t = line.length;
      while (t > k && line.charCodeAt(t - 1) === 0x0d) t--;
      const isTerminator = line.slice(k, t) === anchor;
      while (this.#i < end) this.#bump();
      if (this.#i < this.#src.length) this.#bump(); // the newline
      if (isTerminator) {
        return { t: 'heredoc', value: heredocValue(lines, indent ? line.slice(0, k) : ''), pos };
      }
      lines.push(line);
    }
  }
}

function heredocValue(lines: readonly string[], indent: string): string {
  if (lines.length === 0) return '';
  if (indent !== '' && lines.every((l) => l.startsWith(indent))) {
    return lines.map((l) => `${l.slice(indent.length)}\n`).join('');
  }
  return lines.map((l) => `${l}\n`).join('');
}

class Parser {
  readonly #lex: Lexer;
  #ahead: Token | undefined;

  constructor(lex: Lexer) {
    this.#lex = lex;
  }

  #peek(): Token {
    this.#ahead ??= this.#lex.next();
    return this.#ahead;
  }

  #next(): Token {
    const tok = this.#peek();
    this.#ahead = undefined;
    return tok;
  }

  #checkDepth(depth: number, pos: Position): void {
    if (depth > MAX_CONFIG_DEPTH) {
      throw this.#lex.error(pos, `nesting is deeper than ${String(MAX_CONFIG_DEPTH)} levels`);
    }
  }

  document(): ConfigObject {
    const entries = this.#body(0, undefined);
    return { kind: 'object', entries, pos: { line: 1, column: 1 } };
  }

  /** Items until `}` (when `open` is the opening brace's position) or end of input (top level). */
  #body(depth: number, open: { pos: Position; name: string } | undefined): ConfigEntry[] {
    const entries: ConfigEntry[] = [];
    const seen = new Map<string, ConfigEntry>();
    for (;;) {
      const tok = this.#peek();
      if (tok.t === 'eof') {
        if (open !== undefined) {
          throw this.#lex.error(
            tok.pos,
            `expected '}' to close ${open.name} opened at ${String(open.pos.line)}:${String(open.pos.column)}, found end of input`,
          );
        }
        return entries;
      }
      if (tok.t === '}') {
        if (open === undefined) throw this.#lex.error(tok.pos, "unexpected '}': no block is open");
        return entries;
      }
      const entry = this.#item(depth);
      addEntry(entries, seen, entry, (pos, msg) => this.#lex.error(pos, msg));
      if (this.#peek().t === ',') this.#next();
    }
  }

  #item(depth: number): ConfigEntry {
    const keys: Array<{ key: string; pos: Position }> = [];
    for (;;) {
      const tok = this.#next();
      if (tok.t === 'ident') {
        keys.push({ key: tok.text, pos: tok.pos });
        continue;
      }
      if (tok.t === 'string') {
        keys.push({ key: tok.value, pos: tok.pos });
        continue;
      }
      const first = keys[0];
      if (first === undefined) {
        throw this.#lex.error(
          tok.pos,
          `expected a key (an identifier or a quoted string), found ${describeToken(tok)}`,
        );
      }
      const named = keys.map((k) => JSON.stringify(k.key)).join(' ');
      if (tok.t === '=') {
        if (keys.length > 1) {
          throw this.#lex.error(
            tok.pos,
            `expected '{' after ${named}: only a single key can be assigned with '='`,
          );
        }
        return { key: first.key, keyPos: first.pos, value: this.#value(depth + 1, first.key) };
      }
      if (tok.t === '{') {
        const bodyDepth = depth + keys.length;
        this.#checkDepth(bodyDepth, tok.pos);
        const entries = this.#body(bodyDepth, { pos: tok.pos, name: `block ${named}` });
        this.#next(); // '}'
        let value: ConfigValue = { kind: 'object', entries, pos: tok.pos };
        for (let k = keys.length - 1; k >= 1; k--) {
          const label = keys[k]!;
          value = {
            kind: 'object',
            entries: [{ key: label.key, keyPos: label.pos, value }],
            pos: label.pos,
          };
        }
        return { key: first.key, keyPos: first.pos, value };
      }
      const after = keys.length === 1 ? `key ${named}` : `keys ${named}`;
      throw this.#lex.error(
        tok.pos,
        `expected '=' or '{' after ${after}, found ${describeToken(tok)}`,
      );
    }
  }

  #value(depth: number, key: string): ConfigValue {
    const tok = this.#next();
    switch (tok.t) {
      case 'string':
      case 'heredoc':
        return { kind: 'string', value: tok.value, pos: tok.pos };
      case 'number':
        return {
          kind: 'number',
          value: tok.value,
          text: tok.text,
          integer: tok.integer,
          pos: tok.pos,
        };
      case 'bool':
        return { kind: 'bool', value: tok.value, pos: tok.pos };
      case '{': {
        this.#checkDepth(depth, tok.pos);
        const entries = this.#body(depth, { pos: tok.pos, name: 'object' });
        this.#next();
        return { kind: 'object', entries, pos: tok.pos };
      }
      case '[':
        this.#checkDepth(depth, tok.pos);
        return this.#list(tok.pos, depth);
      case 'ident':
        throw this.#lex.error(
          tok.pos,
          `expected a value for ${JSON.stringify(key)}, found identifier ${preview(tok.text)} (strings must be quoted)`,
        );
      default:
        throw this.#lex.error(
          tok.pos,
          `expected a value for ${JSON.stringify(key)} (string, number, bool, list or object), found ${describeToken(tok)}`,
        );
    }
  }

  #list(pos: Position, depth: number): ConfigValue {
    const items: ConfigValue[] = [];
    const unclosed = (at: Position) =>
      this.#lex.error(
        at,
        `expected ']' to close the list opened at ${String(pos.line)}:${String(pos.column)}, found end of input`,
      );
    for (;;) {
      const tok = this.#peek();
      if (tok.t === ']') {
        this.#next();
        return { kind: 'list', items, pos };
      }
      if (tok.t === 'eof') throw unclosed(tok.pos);
      items.push(this.#value(depth + 1, 'list item'));
      const sep = this.#next();
      if (sep.t === ']') return { kind: 'list', items, pos };
      if (sep.t === 'eof') throw unclosed(sep.pos);
      if (sep.t !== ',') {
        throw this.#lex.error(sep.pos, `expected ',' or ']' in list, found ${describeToken(sep)}`);
      }
    }
  }
}

/**
 * Adds an entry to an object body, enforcing the repeated-key rule shared by both syntaxes:
 * a key may repeat only when every occurrence is a block (object-like value).
 *
 * @internal shared with the JSON-form parser.
 */
export function addEntry(
  entries: ConfigEntry[],
  seen: Map<string, ConfigEntry>,
  entry: ConfigEntry,
  fail: (pos: Position, message: string) => Error,
): void {
  const prev = seen.get(entry.key);
  if (prev === undefined) {
    seen.set(entry.key, entry);
  } else if (!isObjectLike(prev.value) || !isObjectLike(entry.value)) {
    const what =
      isObjectLike(prev.value) || isObjectLike(entry.value)
        ? `key ${JSON.stringify(entry.key)} is used both as a block and as an attribute`
        : `duplicate attribute ${JSON.stringify(entry.key)}`;
    throw fail(entry.keyPos, `${what} (first set at line ${String(prev.keyPos.line)})`);
  }
  entries.push(entry);
}

/** Rejects over-long input and NUL characters, normalises CRLF and drops a byte-order mark. */
export function prepareText(text: string, file: string): string {
  if (typeof text !== 'string') throw new TypeError('configuration text must be a string');
  if (text.length > MAX_CONFIG_SIZE) {
    throw configError(
      file,
      undefined,
      `configuration is larger than ${String(MAX_CONFIG_SIZE)} characters`,
    );
  }
  let src = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  src = src.replace(/\r\n/g, '\n');
  const nul = src.indexOf('\0');
  if (nul !== -1) {
    const before = src.slice(0, nul);
    const line = before.split('\n').length;
    const column = [...before.slice(before.lastIndexOf('\n') + 1)].length + 1;
    throw configError(file, { line, column }, 'unexpected NUL character');
  }
  return src;
}

/**
 * Parses HCL v1 configuration text into the generic tree (see the module docs for the syntax).
 * The result says nothing about which keys are allowed: validate it with a schema.
 *
 * @throws SpireEdgeError `ERR_CONFIG_INVALID` with `file:line:column` and what was expected.
 */
export function parseHcl(text: string, options: ParseOptions = {}): ConfigObject {
  const file = options.filename ?? 'config';
  const src = prepareText(text, file);
  return new Parser(new Lexer(src, file)).document();
}

// ---------------------------------------------------------------------------------------------
// Printer

const BARE_KEY = /^[\p{L}_][\p{L}\p{Nd}_.-]*$/u;

function printKey(key: string): string {
  return BARE_KEY.test(key) && key !== 'true' && key !== 'false' ? key : quoteHcl(key);
}

/**
 * Quotes a string as an HCL v1 double-quoted string.
 *
 * @throws TypeError when the string contains an unbalanced `${`, which HCL v1 cannot express.
 */
export function quoteHcl(s: string): string {
  let out = '"';
  let i = 0;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c === 0x24 && s.charCodeAt(i + 1) === 0x7b) {
      // `${ … }` is read verbatim: copy it verbatim, braces must balance.
      let depth = 1;
      let j = i + 2;
      while (j < s.length && depth > 0) {
        const d = s.charCodeAt(j);
        if (d === 0x7b) depth++;
        else if (d === 0x7d) depth--;
        j++;
      }
      if (depth !== 0)
        throw new TypeError('string with an unbalanced "${" cannot be printed as HCL');
      out += s.slice(i, j);
      i = j;
      continue;
    }
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x0d) out += '\\r';
    else if (c < 0x20 || c === 0x7f) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += s[i];
    i++;
  }
  return `${out}"`;
}

function printNumber(value: number, integer: boolean): string {
  if (!Number.isFinite(value)) throw new TypeError('non-finite numbers cannot be printed as HCL');
  const s = Object.is(value, -0) ? '0' : String(value);
  if (!integer && !/[.e]/.test(s)) return `${s}.0`;
  return s;
}

function printValue(value: ConfigValue, indent: string): string {
  switch (value.kind) {
    case 'string':
      return quoteHcl(value.value);
    case 'number':
      return printNumber(value.value, value.integer);
    case 'bool':
      return value.value ? 'true' : 'false';
    case 'list': {
      if (value.items.length === 0) return '[]';
      const inner = `${indent}  `;
      return `[\n${value.items.map((v) => `${inner}${printValue(v, inner)},\n`).join('')}${indent}]`;
    }
    case 'object':
      return printObject(value, indent);
  }
}

function printObject(obj: ConfigObject, indent: string): string {
  if (obj.entries.length === 0) return '{}';
  return `{\n${printEntries(obj.entries, `${indent}  `)}${indent}}`;
}

function printEntries(entries: readonly ConfigEntry[], indent: string): string {
  let out = '';
  for (const e of entries) {
    const sep = e.value.kind === 'object' ? ' ' : ' = ';
    out += `${indent}${printKey(e.key)}${sep}${printValue(e.value, indent)}\n`;
  }
  return out;
}

/**
 * Prints a tree as HCL v1 text that {@link parseHcl} reads back to the same tree (positions and
 * number spelling aside). Object values are printed as blocks.
 *
 * @throws TypeError for values HCL v1 cannot express (non-finite numbers, unbalanced `${`).
 */
export function printHcl(root: ConfigObject): string {
  return printEntries(root.entries, '');
}
