import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import { MAX_CONFIG_DEPTH, parseHclJson, toPlain } from '../../../src/config/index.js';

function plain(text: string): unknown {
  return toPlain(parseHclJson(text, { filename: 'server.json' }));
}

function obj(...entries: Array<[string, unknown]>): unknown {
  return { object: entries };
}

function jsonError(text: string): { code: string; message: string } {
  try {
    parseHclJson(text, { filename: 'server.json' });
  } catch (err) {
    if (!isSpireEdgeError(err)) throw err;
    return { code: err.code, message: err.message };
  }
  throw new Error(`expected an error for ${JSON.stringify(text)}`);
}

describe('parseHclJson', () => {
  it('reads objects, lists, strings, numbers and booleans with positions', () => {
    const root = parseHclJson(
      '{\n  "server": {\n    "bind_port": 8081,\n    "x": [1.5, true, "s\\u00e9"]\n  }\n}',
    );
    expect(toPlain(root)).toEqual(
      obj(['server', obj(['bind_port', 8081], ['x', [1.5, true, 'sé']])]),
    );
    const server = root.entries[0]!;
    expect(server.keyPos).toEqual({ line: 2, column: 3 });
    const port = server.value.kind === 'object' ? server.value.entries[0]! : undefined;
    expect(port?.value).toMatchObject({
      kind: 'number',
      integer: true,
      text: '8081',
      pos: { line: 3, column: 18 },
    });
  });

  it('keeps repeated keys whose values are objects or lists of objects (SPIRE plugin form)', () => {
    const text = `{
      "plugins": {
        "TYPE1": [{ "NAME3": { "plugin_data": "DATA3", "enabled": false } }],
        "TYPE1": [{ "NAME1": [{ "plugin_cmd": "CMD1" }] }, { "NAME5": [{ "plugin_data": { "foo": "bar", } }] }],
      }
    }`;
    expect(plain(text)).toEqual(
      obj([
        'plugins',
        obj(
          ['TYPE1', [obj(['NAME3', obj(['plugin_data', 'DATA3'], ['enabled', false])])]],
          [
            'TYPE1',
            [
              obj(['NAME1', [obj(['plugin_cmd', 'CMD1'])]]),
              obj(['NAME5', [obj(['plugin_data', obj(['foo', 'bar'])])]]),
            ],
          ],
        ),
      ]),
    );
  });

  it('drops members whose value is null (unset)', () => {
    expect(plain('{"a": null, "b": 1}')).toEqual(obj(['b', 1]));
  });

  it('decodes JSON escapes including surrogate pairs', () => {
    expect(plain('{"s": "\\"\\\\\\/\\b\\f\\n\\r\\t\\ud83d\\ude00"}')).toEqual(
      obj(['s', '"\\/\b\f\n\r\t😀']),
    );
  });

  const errors: Array<[string, string, RegExp]> = [
    ['not an object', '[1]', /^server\.json:1:1: expected '\{' at the start/],
    ['trailing garbage', '{} x', /^server\.json:1:4: unexpected 'x' after the end/],
    [
      'duplicate scalar key',
      '{"a": 1,\n "a": 2}',
      /^server\.json:2:2: duplicate attribute "a" \(first set at line 1\)/,
    ],
    ['unterminated string', '{"a": "x', /^server\.json:1:7: unterminated string/],
    ['raw newline in string', '{"a": "x\n"}', /^server\.json:1:7: unterminated string/],
    ['bad escape', '{"a": "\\x41"}', /^server\.json:1:8: invalid escape sequence '\\x'/],
    ['missing colon', '{"a" 1}', /^server\.json:1:6: expected ':' after key "a"/],
    ['missing comma', '{"a": 1 "b": 2}', /^server\.json:1:9: expected ',' or '\}' in object/],
    ['unquoted key', '{a: 1}', /^server\.json:1:2: expected a quoted key/],
    ['leading zero', '{"a": 01}', /^server\.json:1:7: invalid number/],
    ['bare word', '{"a": yes}', /^server\.json:1:7: expected a JSON value/],
    ['null in list', '{"a": [1, null]}', /^server\.json:1:11: null is not allowed in a list/],
    [
      'unclosed list',
      '{"a": [1',
      /^server\.json:1:9: expected ',' or '\]' in list, found end of input/,
    ],
    ['comment', '{ // c\n}', /^server\.json:1:3: expected a quoted key/],
  ];
  for (const [name, text, message] of errors) {
    it(`rejects ${name}`, () => {
      const e = jsonError(text);
      expect(e.code).toBe('ERR_CONFIG_INVALID');
      expect(e.message).toMatch(message);
    });
  }

  it('rejects nesting deeper than the limit', () => {
    const n = MAX_CONFIG_DEPTH + 1;
    const deep = `{"a": ${'['.repeat(n)}${']'.repeat(n)}}`;
    expect(jsonError(deep).message).toMatch(/nesting is deeper than 64 levels/);
  });

  it('counts columns linearly on a long single line', () => {
    const members = Array.from({ length: 20_000 }, (_, i) => `"k${i}": {"v": ${i}}`).join(',');
    const started = performance.now();
    const root = parseHclJson(`{${members}}`);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(root.entries).toHaveLength(20_000);
    expect(root.entries[19_999]!.keyPos.line).toBe(1);
  });

  it('agrees with JSON.parse on valid JSON objects of scalars and never throws other errors', () => {
    const scalar = fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), fc.boolean());
    fc.assert(
      fc.property(
        fc.dictionary(
          // Integer-like keys are reordered by JS objects, so keep them out of the comparison.
          fc.string({ maxLength: 6 }).filter((k) => !/^(0|[1-9][0-9]*)$/.test(k)),
          scalar,
          { maxKeys: 6 },
        ),
        (record) => {
          const text = JSON.stringify(record);
          const expected = Object.entries(JSON.parse(text) as Record<string, unknown>);
          expect(plain(text)).toEqual({ object: expected });
        },
      ),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (tail) => {
        try {
          parseHclJson(`{${tail}`);
        } catch (err) {
          if (!isSpireEdgeError(err, 'ERR_CONFIG_INVALID')) throw err;
        }
      }),
      { numRuns: 300 },
    );
  });
});
