// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these tests are about literal ${VAR} text
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import {
  type ConfigEntry,
  type ConfigObject,
  type ConfigValue,
  MAX_CONFIG_DEPTH,
  MAX_CONFIG_SIZE,
  parseHcl,
  printHcl,
  quoteHcl,
  toPlain,
} from '../../../src/config/index.js';

/** SPIRE's documented sample server.conf (doc/spire_server.md, "Sample configuration file"). */
const SPIRE_SAMPLE = `server {
    trust_domain = "example.org"

    bind_address = "0.0.0.0"
    bind_port = "8081"
    log_level = "INFO"
    data_dir = "/opt/spire/.data/"
    default_x509_svid_ttl = "6h"
    default_jwt_svid_ttl = "5m"
    ca_ttl = "72h"
    ca_subject {
        country = ["US"]
        organization = ["SPIRE"]
        common_name = ""
    }
}

telemetry {
    Prometheus {
        port = 1234
    }
}

plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "/opt/spire/.data/datastore.sqlite3"
        }
    }
    NodeAttestor "join_token" {
        plugin_data {}
    }
    KeyManager "disk" {
        plugin_data {
            keys_path = "/opt/spire/.data/keys.json"
        }
    }
}
`;

function parse(text: string): ConfigObject {
  return parseHcl(text, { filename: 'test.conf' });
}

function plain(text: string): unknown {
  return toPlain(parse(text));
}

function obj(...entries: Array<[string, unknown]>): unknown {
  return { object: entries };
}

function parseError(text: string): {
  code: string;
  message: string;
  line?: unknown;
  column?: unknown;
} {
  try {
    parse(text);
  } catch (err) {
    if (!isSpireEdgeError(err)) throw err;
    return {
      code: err.code,
      message: err.message,
      line: err.details['line'],
      column: err.details['column'],
    };
  }
  throw new Error(`expected a parse error for ${JSON.stringify(text)}`);
}

describe('parseHcl: SPIRE sample configuration', () => {
  it('parses the documented sample server.conf into the expected tree', () => {
    const root = parse(SPIRE_SAMPLE);
    expect(root.entries.map((e) => e.key)).toEqual(['server', 'telemetry', 'plugins']);
    const server = root.entries[0]!;
    expect(server.keyPos).toEqual({ line: 1, column: 1 });
    expect(toPlain(server.value)).toEqual(
      obj(
        ['trust_domain', 'example.org'],
        ['bind_address', '0.0.0.0'],
        ['bind_port', '8081'],
        ['log_level', 'INFO'],
        ['data_dir', '/opt/spire/.data/'],
        ['default_x509_svid_ttl', '6h'],
        ['default_jwt_svid_ttl', '5m'],
        ['ca_ttl', '72h'],
        ['ca_subject', obj(['country', ['US']], ['organization', ['SPIRE']], ['common_name', ''])],
      ),
    );
    const plugins = root.entries[2]!;
    expect(toPlain(plugins.value)).toEqual(
      obj(
        [
          'DataStore',
          obj([
            'sql',
            obj([
              'plugin_data',
              obj(
                ['database_type', 'sqlite3'],
                ['connection_string', '/opt/spire/.data/datastore.sqlite3'],
              ),
            ]),
          ]),
        ],
        ['NodeAttestor', obj(['join_token', obj(['plugin_data', obj()])])],
        [
          'KeyManager',
          obj(['disk', obj(['plugin_data', obj(['keys_path', '/opt/spire/.data/keys.json'])])]),
        ],
      ),
    );
  });

  it('records line and column of keys and values', () => {
    const root = parse(SPIRE_SAMPLE);
    const server = root.entries[0]!.value as ConfigObject;
    const td = server.entries[0]!;
    expect(td.keyPos).toEqual({ line: 2, column: 5 });
    expect(td.value.pos).toEqual({ line: 2, column: 20 });
    const plugins = root.entries[2]!.value as ConfigObject;
    const ds = plugins.entries[0]!;
    expect(ds.keyPos).toEqual({ line: 25, column: 5 });
    const sql = (ds.value as ConfigObject).entries[0]!;
    expect(sql.key).toBe('sql');
    expect(sql.keyPos).toEqual({ line: 25, column: 15 });
  });
});

describe('parseHcl: syntax elements', () => {
  it('skips #, // and /* */ comments anywhere', () => {
    const text = `# hash
// slashes
a = 1 # trailing
/* block
   comment */ b /* inline */ = /* here */ "x" // end
`;
    expect(plain(text)).toEqual(obj(['a', 1], ['b', 'x']));
  });

  it('reads blocks, labelled blocks and multi-label blocks as nested objects', () => {
    expect(plain('a { x = 1 }')).toEqual(obj(['a', obj(['x', 1])]));
    expect(plain('a "b" { x = 1 }')).toEqual(obj(['a', obj(['b', obj(['x', 1])])]));
    expect(plain('a "b" c "d e" { }')).toEqual(
      obj(['a', obj(['b', obj(['c', obj(['d e', obj()])])])]),
    );
    expect(plain('"quoted key" = true')).toEqual(obj(['quoted key', true]));
    expect(plain('a = { x = 1, y = "z" }')).toEqual(obj(['a', obj(['x', 1], ['y', 'z'])]));
  });

  it('accepts identifiers with dashes, dots, digits and Unicode letters', () => {
    expect(plain('a-b.c_1 = 1\n_x = 2\nnäme = 3')).toEqual(
      obj(['a-b.c_1', 1], ['_x', 2], ['näme', 3]),
    );
  });

  it('allows commas between items, as HCL v1 does', () => {
    expect(plain('a = 1, b = 2,\nc { d = 3, }')).toEqual(
      obj(['a', 1], ['b', 2], ['c', obj(['d', 3])]),
    );
  });

  it('decodes string escapes', () => {
    const root = parse(String.raw`s = "a\nb\tc\"d\\e\u00e9\U0001F600\x41\101\r\a\b\f\v"`);
    const v = root.entries[0]!.value;
    expect(v).toMatchObject({ kind: 'string', value: 'a\nb\tc"d\\eé😀AA\r\x07\b\f\v' });
  });

  it('keeps ${ … } verbatim, including quotes inside it, as HCL v1 does', () => {
    expect(plain('s = "x${foo("bar")}y"')).toEqual(obj(['s', 'x${foo("bar")}y']));
    expect(plain('s = "$' + '{a\\n}"')).toEqual(obj(['s', '$' + '{a\\n}']));
  });

  it('reads heredocs, with and without indentation', () => {
    expect(plain('s = <<EOF\nline 1\n  line 2\nEOF\n')).toEqual(obj(['s', 'line 1\n  line 2\n']));
    expect(plain('s = <<-EOT\n    a\n      b\n    EOT\nt = 1')).toEqual(
      obj(['s', 'a\n  b\n'], ['t', 1]),
    );
    // A line less indented than the terminator: the text is kept as written.
    expect(plain('s = <<-EOT\n  a\n b\n  EOT\n')).toEqual(obj(['s', '  a\n b\n']));
    expect(plain('s = <<EOF\nEOF')).toEqual(obj(['s', '']));
    // Not a terminator: the anchor must be alone on its line.
    expect(plain('s = <<EOF\nEOF2\nx EOF\nEOF\n')).toEqual(obj(['s', 'EOF2\nx EOF\n']));
    expect(plain('l = [<<A\nx\nA\n, "y"]')).toEqual(obj(['l', ['x\n', 'y']]));
  });

  it('reads integers (decimal, hex, octal, negative) and floats', () => {
    const root = parse(
      'a = 42\nb = -7\nc = 0x1F\nd = 0755\ne = 1.5\nf = -0.25\ng = 1e3\nh = .5\ni = 0',
    );
    const values = root.entries.map((e) => e.value);
    expect(values.map((v) => (v.kind === 'number' ? [v.value, v.integer, v.text] : v))).toEqual([
      [42, true, '42'],
      [-7, true, '-7'],
      [31, true, '0x1F'],
      [493, true, '0755'],
      [1.5, false, '1.5'],
      [-0.25, false, '-0.25'],
      [1000, false, '1e3'],
      [0.5, false, '.5'],
      [0, true, '0'],
    ]);
  });

  it('reads booleans, lists with trailing commas, nested lists and objects in lists', () => {
    expect(
      plain('t = true\nf = false\nl = [1, "a", true,]\nn = [[1], []]\no = [{ a = 1 }, {}]'),
    ).toEqual(
      obj(
        ['t', true],
        ['f', false],
        ['l', [1, 'a', true]],
        ['n', [[1], []]],
        ['o', [obj(['a', 1]), obj()]],
      ),
    );
    expect(plain('l = [\n  "a", # one\n  "b",\n]')).toEqual(obj(['l', ['a', 'b']]));
  });

  it('keeps repeated blocks as repeated entries (HCL v1 merges them)', () => {
    const root = parse('plugins {\n  NodeAttestor "a" {}\n  NodeAttestor "b" {}\n}');
    const plugins = root.entries[0]!.value as ConfigObject;
    expect(plugins.entries.map((e) => e.key)).toEqual(['NodeAttestor', 'NodeAttestor']);
    expect(plugins.entries.map((e) => e.keyPos.line)).toEqual([2, 3]);
  });

  it('normalises CRLF line endings and skips a byte-order mark', () => {
    expect(plain('\uFEFFa = 1\r\nb = <<E\r\nx\r\nE\r\n')).toEqual(obj(['a', 1], ['b', 'x\n']));
  });

  it('counts columns in code points', () => {
    const root = parse('a = "😀😀" b = 1');
    expect(root.entries[1]!.keyPos).toEqual({ line: 1, column: 10 }); // not 12 (UTF-16 units)
  });

  it('parses empty input and comment-only input to an empty object', () => {
    expect(plain('')).toEqual(obj());
    expect(plain('# nothing\n/* here */')).toEqual(obj());
  });
});

describe('parseHcl: errors say where and what was expected', () => {
  const cases: Array<[string, string, number, number, RegExp]> = [
    ['unterminated string', 'a = "abc', 1, 5, /unterminated string/],
    ['string across lines', 'a = "abc\nb = 1', 1, 5, /must end on the line it starts/],
    ['unterminated heredoc', 'a = <<EOF\nxx\n', 1, 5, /unterminated heredoc: no line "EOF"/],
    ['heredoc without anchor', 'a = <<\nx\n', 1, 5, /heredoc needs an anchor/],
    ['text after heredoc anchor', 'a = <<EOF x\nEOF\n', 1, 10, /must end the line/],
    [
      'unterminated block',
      'server {\n  a = 1\n',
      3,
      1,
      /expected '}' to close block "server" opened at 1:8/,
    ],
    ['unterminated list', 'a = [1, 2', 1, 10, /expected ']' to close the list opened at 1:5/],
    [
      'missing =',
      'server "x" 1',
      1,
      12,
      /expected '=' or '\{' after keys "server" "x", found number 1/,
    ],
    [
      'missing = after one key',
      'bind_port 8081',
      1,
      11,
      /expected '=' or '\{' after key "bind_port"/,
    ],
    ['key then end of input', 'server', 1, 7, /after key "server", found end of input/],
    ['= with labels', 'a "b" = 1', 1, 7, /only a single key can be assigned/],
    ['bad escape', 'a = "x\\qy"', 1, 7, /invalid escape sequence '\\q'/],
    ['short \\u escape', 'a = "\\u12"', 1, 6, /\\u needs 4 more digits/],
    ['surrogate escape', 'a = "\\uD800"', 1, 6, /not a Unicode scalar/],
    ['high byte escape', 'a = "\\xff"', 1, 6, /above \\x7f/],
    [
      'duplicate attribute',
      'a = 1\nb = 2\na = 3',
      3,
      1,
      /duplicate attribute "a" \(first set at line 1\)/,
    ],
    ['attribute and block', 'a = 1\na { }', 2, 1, /used both as a block and as an attribute/],
    ['unquoted value', 'a = hello', 1, 5, /found identifier "hello" \(strings must be quoted\)/],
    ['unquoted duration', 'ttl = 300s', 1, 7, /invalid number "300s": .*must be quoted/],
    ['stray closing brace', 'a = 1 }', 1, 7, /unexpected '}'/],
    ['missing value', 'a =', 1, 4, /expected a value for "a".*found end of input/],
    ['missing list comma', 'a = [1 2]', 1, 8, /expected ',' or ']' in list, found number 2/],
    ['unterminated comment', 'a = 1 /* x', 1, 7, /unterminated comment/],
    ['unterminated interpolation', 'a = "${x', 1, 6, /unterminated '\$\{' in string/],
    ['single slash', 'a = 1 / 2', 1, 7, /unexpected '\/'/],
    ['illegal character', 'a = 1\n@', 2, 1, /unexpected character '@'/],
    ['single quotes', "a = 'x'", 1, 5, /double quotes/],
    ['bad octal', 'a = 089', 1, 5, /invalid octal number/],
    ['bad hex', 'a = 0x', 1, 5, /invalid hexadecimal/],
    ['bad exponent', 'a = 1e', 1, 5, /no digits in the exponent/],
    ['lone minus', 'a = -x', 1, 5, /expected a number after '-'/],
    ['block needs a key', '{ a = 1 }', 1, 1, /expected a key/],
    ['NUL character', 'a = 1\n b\0', 2, 3, /NUL/],
  ];
  for (const [name, text, line, column, message] of cases) {
    it(`${name}: ${JSON.stringify(text)}`, () => {
      const e = parseError(text);
      expect(e.code).toBe('ERR_CONFIG_INVALID');
      expect(e.message).toMatch(message);
      expect(e.message.startsWith(`test.conf:${line}:${column}: `)).toBe(true);
      expect({ line: e.line, column: e.column }).toEqual({ line, column });
    });
  }

  it('rejects nesting deeper than the limit, and accepts the limit itself', () => {
    const deep = (n: number) => `${'a { '.repeat(n)}${'} '.repeat(n)}`;
    expect(() => parse(deep(MAX_CONFIG_DEPTH))).not.toThrow();
    const e = parseError(deep(MAX_CONFIG_DEPTH + 1));
    expect(e.code).toBe('ERR_CONFIG_INVALID');
    expect(e.message).toMatch(/nesting is deeper than 64 levels/);
    const lists = `a = ${'['.repeat(MAX_CONFIG_DEPTH + 1)}${']'.repeat(MAX_CONFIG_DEPTH + 1)}`;
    expect(parseError(lists).message).toMatch(/deeper than 64/);
    // Labels count as levels too.
    const labels = `a ${'"x" '.repeat(MAX_CONFIG_DEPTH + 1)}{}`;
    expect(parseError(labels).message).toMatch(/deeper than 64/);
  });

  it('rejects input over the size limit without parsing it', () => {
    const e = parseError(`# ${'x'.repeat(MAX_CONFIG_SIZE)}`);
    expect(e.code).toBe('ERR_CONFIG_INVALID');
    expect(e.message).toMatch(/larger than 1048576 characters/);
  });

  it('throws TypeError for a non-string argument', () => {
    expect(() => parseHcl(42 as unknown as string)).toThrow(TypeError);
  });
});

describe('printHcl', () => {
  it('prints a tree that parses back to the same tree', () => {
    const root = parse(SPIRE_SAMPLE);
    expect(toPlain(parse(printHcl(root)))).toEqual(toPlain(root));
  });

  it('quotes keys and strings that need it', () => {
    expect(quoteHcl('a"b\\c\nd\te\u0001')).toBe('"a\\"b\\\\c\\nd\\te\\u0001"');
    expect(quoteHcl('x${y}z')).toBe('"x${y}z"');
    expect(() => quoteHcl('x${y')).toThrow(TypeError);
  });
});

// ---------------------------------------------------------------------------------------------
// Property tests

const P0: { line: number; column: number } = { line: 1, column: 1 };
const keyArb = fc.oneof(
  fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_.-]{0,10}$/),
  fc.string({ maxLength: 8 }).filter((s) => !s.includes('${')),
);
const stringArb = fc.string({ maxLength: 20 }).filter((s) => !s.includes('$'));
const scalarArb: fc.Arbitrary<ConfigValue> = fc.oneof(
  stringArb.map((value) => ({ kind: 'string' as const, value, pos: P0 })),
  fc.integer({ min: -1e9, max: 1e9 }).map((value) => ({
    kind: 'number' as const,
    value,
    text: String(value),
    integer: true,
    pos: P0,
  })),
  fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }).map((value) => ({
    kind: 'number' as const,
    value: Object.is(value, -0) ? 0 : value,
    text: String(value),
    integer: false,
    pos: P0,
  })),
  fc.boolean().map((value) => ({ kind: 'bool' as const, value, pos: P0 })),
);

const { tree: valueArb } = fc.letrec<{ tree: ConfigValue; obj: ConfigObject; list: ConfigValue }>(
  (tie) => ({
    tree: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      scalarArb,
      tie('list'),
      tie('obj'),
    ),
    list: fc
      .array(tie('tree'), { maxLength: 4 })
      .map((items) => ({ kind: 'list' as const, items, pos: P0 })),
    obj: fc
      .array(fc.tuple(keyArb, tie('tree')), { maxLength: 4 })
      .map((pairs) => ({ kind: 'object' as const, entries: dedupe(pairs), pos: P0 })),
  }),
);

/** Keeps the repeated-key rule: a key may repeat only when all its values are objects. */
function dedupe(pairs: ReadonlyArray<readonly [string, ConfigValue]>): ConfigEntry[] {
  const out: ConfigEntry[] = [];
  const kinds = new Map<string, boolean>();
  for (const [key, value] of pairs) {
    const isObj =
      value.kind === 'object' ||
      (value.kind === 'list' &&
        value.items.length > 0 &&
        value.items.every((i) => i.kind === 'object'));
    const prev = kinds.get(key);
    if (prev !== undefined && !(prev && isObj)) continue;
    kinds.set(key, isObj);
    out.push({ key, keyPos: P0, value });
  }
  return out;
}

const rootArb = fc
  .array(fc.tuple(keyArb, valueArb), { maxLength: 6 })
  .map((pairs): ConfigObject => ({ kind: 'object', entries: dedupe(pairs), pos: P0 }));

function expectOnlyConfigErrors(text: string): void {
  try {
    parseHcl(text, { filename: 'fuzz.conf' });
  } catch (err) {
    if (!isSpireEdgeError(err, 'ERR_CONFIG_INVALID')) throw err;
    expect(err.message).toMatch(/^fuzz\.conf:(\d+:\d+: )?/);
  }
}

describe('parseHcl properties', () => {
  it('printHcl output parses back to the same tree', () => {
    fc.assert(
      fc.property(rootArb, (root) => {
        expect(toPlain(parseHcl(printHcl(root)))).toEqual(toPlain(root));
      }),
      { numRuns: 300 },
    );
  });

  it('random text never throws anything but ERR_CONFIG_INVALID', () => {
    const alphabet = fc.constantFrom(
      ...'ab_1-.0x"\\{}[]=,#/*<-EOF\n \t$u'.split(''),
      '<<EOF\n',
      '\nEOF',
      '${',
      '"a"',
      'é',
      '😀',
    );
    fc.assert(
      fc.property(
        fc.array(alphabet, { maxLength: 60 }).map((a) => a.join('')),
        (text) => {
          expectOnlyConfigErrors(text);
        },
      ),
      { numRuns: 500 },
    );
    fc.assert(fc.property(fc.string({ maxLength: 80 }), expectOnlyConfigErrors), { numRuns: 300 });
  });

  it('mutated valid configurations never throw anything but ERR_CONFIG_INVALID', () => {
    const mutation = fc.record({
      at: fc.nat(),
      cut: fc.nat({ max: 5 }),
      insert: fc.string({ maxLength: 4 }),
    });
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (mutations) => {
        let text = SPIRE_SAMPLE;
        for (const m of mutations) {
          const at = m.at % (text.length + 1);
          text = text.slice(0, at) + m.insert + text.slice(at + m.cut);
        }
        expectOnlyConfigErrors(text);
      }),
      { numRuns: 400 },
    );
  });
});
