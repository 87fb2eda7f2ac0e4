import { create } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  goJsonIndent,
  goJsonMarshal,
  protoToGoJson,
  removeNulls,
} from '../../../src/common/cli/go-json.js';
import { goQuote } from '../../../src/common/cli/go-quote.js';
import { formatGoTime, formatRfc3339Utc } from '../../../src/common/cli/go-time.js';
import {
  formatGoDuration,
  parseGoBool,
  parseGoDuration,
  parseGoInt,
} from '../../../src/common/cli/go-value.js';
import { parseJsonText } from '../../../src/common/cli/json-text.js';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import { entryv1, types } from '../../../src/protocol/index.js';

describe('Go durations', () => {
  it('parses time.ParseDuration syntax', () => {
    const ok: Array<[string, bigint]> = [
      ['0', 0n],
      ['-0', 0n],
      ['1s', 1_000_000_000n],
      ['1.5s', 1_500_000_000n],
      ['.5s', 500_000_000n],
      ['5.s', 5_000_000_000n],
      ['300ms', 300_000_000n],
      ['2h45m', 9_900_000_000_000n],
      ['-1m30s', -90_000_000_000n],
      ['1µs', 1_000n],
      ['1μs', 1_000n],
      ['1us', 1_000n],
      ['7ns', 7n],
      ['9223372036854775807ns', 9223372036854775807n],
      ['-9223372036854775808ns', -9223372036854775808n],
    ];
    for (const [text, want] of ok) expect(parseGoDuration(text)).toEqual({ ok: true, value: want });
    for (const bad of [
      '',
      '1',
      '1d',
      's',
      '.s',
      '-',
      '+',
      '1.2.3s',
      '9223372036854775808ns',
      ' 1s',
    ]) {
      expect(parseGoDuration(bad)).toEqual({ ok: false, error: 'parse error' });
    }
  });

  it('formats as time.Duration.String()', () => {
    const cases: Array<[bigint, string]> = [
      [0n, '0s'],
      [1n, '1ns'],
      [1_100n, '1.1µs'],
      [2_200_000n, '2.2ms'],
      [1_500_000_000n, '1.5s'],
      [60_000_000_000n, '1m0s'],
      [3_600_000_000_000n, '1h0m0s'],
      [9_900_000_000_000n, '2h45m0s'],
      [-90_000_000_000n, '-1m30s'],
      [-9223372036854775808n, '-2562047h47m16.854775808s'],
    ];
    for (const [ns, text] of cases) expect(formatGoDuration(ns)).toBe(text);
  });

  it('round-trips: parse(format(d)) == d for any 64-bit duration', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), (d) => {
        expect(parseGoDuration(formatGoDuration(d))).toEqual({ ok: true, value: d });
      }),
      { numRuns: 300 },
    );
  });

  it('never throws on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), (s) => {
        const r = parseGoDuration(s);
        expect(typeof r.ok).toBe('boolean');
        const i = parseGoInt(s);
        expect(typeof i.ok).toBe('boolean');
      }),
      { numRuns: 300 },
    );
  });

  it('limits integers to the requested bit size', () => {
    expect(parseGoInt('2147483647', 32)).toEqual({ ok: true, value: 2147483647n });
    expect(parseGoInt('2147483648', 32)).toEqual({ ok: false, error: 'value out of range' });
    expect(parseGoInt('-2147483648', 32)).toEqual({ ok: true, value: -2147483648n });
    expect(parseGoBool('yes')).toEqual({ ok: false, error: 'parse error' });
  });
});

describe('goQuote (%q)', () => {
  it('escapes as strconv.Quote', () => {
    expect(goQuote('similar entry already exists')).toBe('"similar entry already exists"');
    expect(goQuote('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(goQuote('\x07\b\f\n\r\t\v')).toBe('"\\a\\b\\f\\n\\r\\t\\v"');
    expect(goQuote('\x00\x1b\x7f')).toBe('"\\x00\\x1b\\x7f"');
    expect(goQuote('héllo 世界 😀')).toBe('"héllo 世界 😀"');
    expect(goQuote('\u00a0\u200b')).toBe('"\\u00a0\\u200b"');
    expect(goQuote('\u{e0001}')).toBe('"\\U000e0001"');
  });
});

describe('Go JSON', () => {
  it('sorts map keys, escapes HTML characters, stays compact', () => {
    expect(goJsonMarshal({ b: 1, a: ['<x>', '&'], c: { z: null, y: true } })).toBe(
      '{"a":["\\u003cx\\u003e","\\u0026"],"b":1,"c":{"y":true,"z":null}}',
    );
    expect(goJsonMarshal({ b: 1, a: 2 }, false)).toBe('{"b":1,"a":2}');
    expect(goJsonMarshal('\u2028\n\x01')).toBe('"\\u2028\\n\\u0001"');
  });

  it('removes nulls from objects and arrays, recursively', () => {
    expect(removeNulls({ a: null, b: [null, 1, { c: null, d: 2 }] })).toEqual({
      b: [1, { d: 2 }],
    });
  });

  it('indents as json.Indent with go-jose key order kept', () => {
    expect(goJsonIndent({ keys: [{ use: 'x', kid: '<k>' }], n: 1 }, '    ')).toBe(
      '{\n    "keys": [\n        {\n            "use": "x",\n            "kid": "\\u003ck\\u003e"\n        }\n    ],\n    "n": 1\n}',
    );
  });

  it('prints protobuf messages as protojson with proto names and unpopulated fields', () => {
    const resp = create(entryv1.CountEntriesResponseSchema, { count: 3 });
    expect(protoToGoJson(entryv1.CountEntriesResponseSchema, resp)).toBe('{"count":3}');
    const entry = create(types.EntrySchema, {
      id: 'e1',
      spiffeId: { trustDomain: 'example.org', path: '/w' },
      expiresAt: 17n,
    });
    expect(protoToGoJson(types.EntrySchema, entry)).toBe(
      '{"admin":false,"created_at":"0","dns_names":[],"downstream":false,"expires_at":"17",' +
        '"federates_with":[],"hint":"","id":"e1","jwt_svid_ttl":0,"revision_number":"0",' +
        '"selectors":[],"spiffe_id":{"path":"/w","trust_domain":"example.org"},' +
        '"store_svid":false,"x509_svid_ttl":0}',
    );
  });
});

describe('Go time formatting', () => {
  it('prints time.Time.String() in UTC and RFC 3339', () => {
    expect(formatGoTime(0)).toBe('1970-01-01 00:00:00 +0000 UTC');
    expect(formatGoTime(1_700_000_000n)).toBe('2023-11-14 22:13:20 +0000 UTC');
    expect(formatGoTime(-1)).toBe('1969-12-31 23:59:59 +0000 UTC');
    expect(formatGoTime(253402300800)).toBe('10000-01-01 00:00:00 +0000 UTC');
    expect(formatGoTime(3600, { offsetSeconds: -7 * 3600, abbreviation: 'MST' })).toBe(
      '1969-12-31 18:00:00 -0700 MST',
    );
    expect(formatRfc3339Utc(1_700_000_000)).toBe('2023-11-14T22:13:20Z');
  });

  it('agrees with Date for any second in Date range', () => {
    fc.assert(
      fc.property(fc.integer({ min: -62135596800, max: 253402300799 }), (s) => {
        const iso = new Date(s * 1000).toISOString();
        expect(formatRfc3339Utc(s)).toBe(`${iso.slice(0, 19)}Z`);
      }),
      { numRuns: 300 },
    );
  });
});

describe('JSON text (Go syntax errors, exact numbers)', () => {
  it('keeps number literals and member order', () => {
    const doc = parseJsonText(
      ' {"a": 9223372036854775807, "a": 1.0, "b": [true, null, "x\\u0041"]} ',
    );
    expect(doc).toEqual({
      kind: 'object',
      members: [
        ['a', { kind: 'number', text: '9223372036854775807' }],
        ['a', { kind: 'number', text: '1.0' }],
        [
          'b',
          {
            kind: 'array',
            items: [
              { kind: 'bool', value: true },
              { kind: 'null' },
              { kind: 'string', value: 'xA' },
            ],
          },
        ],
      ],
    });
  });

  it("reports syntax errors with encoding/json's texts", () => {
    const cases: Array<[string, string]> = [
      ['', 'unexpected end of JSON input'],
      ['{"a":', 'unexpected end of JSON input'],
      ['x', "invalid character 'x' looking for beginning of value"],
      ['{"a" 1}', "invalid character '1' after object key"],
      ['{"a":1 "b"}', "invalid character '\"' after object key:value pair"],
      ['[1 2]', "invalid character '2' after array element"],
      ['{1:2}', "invalid character '1' looking for beginning of object key string"],
      ['01', "invalid character '1' after top-level value"],
      ['tru', 'unexpected end of JSON input'],
      ['trx', "invalid character 'x' in literal true (expecting 'u')"],
      ['"a\nb"', "invalid character '\\n' in string literal"],
      ['1.x', "invalid character 'x' after decimal point in numeric literal"],
    ];
    for (const [text, message] of cases) {
      let caught: unknown;
      try {
        parseJsonText(text);
      } catch (err) {
        caught = err;
      }
      expect(isSpireEdgeError(caught, 'ERR_CLI_JSON_INVALID')).toBe(true);
      expect((caught as Error).message).toBe(message);
    }
  });

  it('accepts exactly what JSON.parse accepts', () => {
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.string({ maxLength: 12 })), (text) => {
        let native = true;
        try {
          JSON.parse(text);
        } catch {
          native = false;
        }
        let ours = true;
        try {
          parseJsonText(text);
        } catch (err) {
          expect(isSpireEdgeError(err, 'ERR_CLI_JSON_INVALID')).toBe(true);
          ours = false;
        }
        expect(ours).toBe(native);
      }),
      { numRuns: 300 },
    );
  });
});
