import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FlagSet, isFlagError } from '../../../src/common/cli/flag-set.js';
import { outputFlag } from '../../../src/common/cli/output-flag.js';
import type { SpireEdgeError } from '../../../src/common/errors.js';

function sample() {
  const fs = new FlagSet('entry create');
  return {
    fs,
    spiffeID: fs.string('spiffeID', '', 'The SPIFFE ID that this record represents'),
    node: fs.bool('node', false, 'If set, this entry will be applied to matching nodes'),
    ttl: fs.int('x509SVIDTTL', 0, 'The lifetime, in seconds'),
    expiry: fs.int('entryExpiry', 0, 'An expiry'),
    selector: fs.strings('selector', 'A colon-delimited type:value selector'),
    wait: fs.duration('ttl', 0n, 'TTL of the SVID'),
    match: fs.string('matchSelectorsOn', 'superset', 'The match mode'),
    output: outputFlag(fs),
  };
}

function parseError(fs: FlagSet, args: string[]): SpireEdgeError {
  try {
    fs.parse(args);
  } catch (err) {
    if (isFlagError(err)) return err;
    throw err;
  }
  return expect.fail('expected a flag error');
}

describe('FlagSet: Go flag syntax', () => {
  it('accepts -flag value, -flag=value, --flag value and --flag=value', () => {
    for (const args of [
      ['-spiffeID', 'spiffe://td/a'],
      ['-spiffeID=spiffe://td/a'],
      ['--spiffeID', 'spiffe://td/a'],
      ['--spiffeID=spiffe://td/a'],
    ]) {
      const s = sample();
      expect(s.fs.parse(args)).toEqual([]);
      expect(s.spiffeID.value).toBe('spiffe://td/a');
      expect(s.spiffeID.isSet).toBe(true);
    }
  });

  it('keeps everything after the first = as the value, including more = signs', () => {
    const s = sample();
    s.fs.parse(['-spiffeID=a=b=c']);
    expect(s.spiffeID.value).toBe('a=b=c');
  });

  it('takes the next argument as the value even when it starts with a dash', () => {
    const s = sample();
    s.fs.parse(['-spiffeID', '-node']);
    expect(s.spiffeID.value).toBe('-node');
    expect(s.node.value).toBe(false);
  });

  it('treats bool flags as taking no separate argument', () => {
    const s = sample();
    expect(s.fs.parse(['-node', 'false', '-spiffeID', 'x'])).toEqual(['false', '-spiffeID', 'x']);
    expect(s.node.value).toBe(true);
    expect(s.spiffeID.value).toBe('');
  });

  it('parses every Go boolean spelling after =', () => {
    for (const [text, want] of [
      ['1', true],
      ['t', true],
      ['T', true],
      ['TRUE', true],
      ['true', true],
      ['True', true],
      ['0', false],
      ['f', false],
      ['F', false],
      ['FALSE', false],
      ['false', false],
      ['False', false],
    ] as const) {
      const s = sample();
      s.fs.parse([`-node=${text}`]);
      expect(s.node.value).toBe(want);
    }
    const err = parseError(sample().fs, ['-node=yes']);
    expect(err.code).toBe('ERR_CLI_FLAG_VALUE');
    expect(err.message).toBe('invalid boolean value "yes" for -node: parse error');
  });

  it('collects a repeatable flag in order and keeps the last value of a plain one', () => {
    const s = sample();
    s.fs.parse([
      '-selector',
      'unix:uid:1000',
      '-spiffeID',
      'first',
      '--selector=k8s:ns:default',
      '-spiffeID=second',
      '-selector',
      'unix:uid:1000',
    ]);
    expect(s.selector.value).toEqual(['unix:uid:1000', 'k8s:ns:default', 'unix:uid:1000']);
    expect(s.spiffeID.value).toBe('second');
  });

  it('stops at the first positional argument, at a lone dash and after --', () => {
    expect(sample().fs.parse(['-node', 'pos', '-spiffeID', 'x'])).toEqual([
      'pos',
      '-spiffeID',
      'x',
    ]);
    expect(sample().fs.parse(['-node', '-', '-spiffeID', 'x'])).toEqual(['-', '-spiffeID', 'x']);
    expect(sample().fs.parse(['-node', '--', '-spiffeID', 'x'])).toEqual(['-spiffeID', 'x']);
    expect(sample().fs.parse([])).toEqual([]);
  });

  it('parses Go integers: bases, separators, sign and 64-bit range', () => {
    const cases: Array<[string, bigint]> = [
      ['3600', 3600n],
      ['-5', -5n],
      ['+7', 7n],
      ['0x1F', 31n],
      ['0o17', 15n],
      ['017', 15n],
      ['0b101', 5n],
      ['1_000', 1000n],
      ['0', 0n],
      ['9223372036854775807', 9223372036854775807n],
      ['-9223372036854775808', -9223372036854775808n],
    ];
    for (const [text, want] of cases) {
      const s = sample();
      s.fs.parse(['-entryExpiry', text]);
      expect(s.expiry.value).toBe(want);
    }
    const bad: Array<[string, string]> = [
      ['abc', 'parse error'],
      ['', 'parse error'],
      ['1_', 'parse error'],
      ['_1', 'parse error'],
      ['1__0', 'parse error'],
      ['09', 'parse error'],
      ['1.5', 'parse error'],
      ['9223372036854775808', 'value out of range'],
    ];
    for (const [text, reason] of bad) {
      const err = parseError(sample().fs, ['-x509SVIDTTL', text]);
      expect(err.code).toBe('ERR_CLI_FLAG_VALUE');
      expect(err.message).toBe(`invalid value "${text}" for flag -x509SVIDTTL: ${reason}`);
    }
  });

  it('parses Go durations', () => {
    const s = sample();
    s.fs.parse(['-ttl', '1h30m']);
    expect(s.wait.value).toBe(5_400_000_000_000n);
    const err = parseError(sample().fs, ['-ttl', '10']);
    expect(err.message).toBe('invalid value "10" for flag -ttl: parse error');
  });

  it('reports an undefined flag by name', () => {
    const err = parseError(sample().fs, ['-node', '-bogus', 'x']);
    expect(err.code).toBe('ERR_CLI_FLAG_UNKNOWN');
    expect(err.message).toBe('flag provided but not defined: -bogus');
    const err2 = parseError(sample().fs, ['--bogus=1']);
    expect(err2.message).toBe('flag provided but not defined: -bogus');
  });

  it('reports -h and -help as a help request when they are not defined', () => {
    for (const a of ['-h', '-help', '--help', '-h=1']) {
      const err = parseError(sample().fs, [a]);
      expect(err.code).toBe('ERR_CLI_HELP_REQUESTED');
      expect(err.message).toBe('flag: help requested');
    }
  });

  it('reports a missing value and bad syntax as Go does', () => {
    const missing = parseError(sample().fs, ['-node', '-spiffeID']);
    expect(missing.code).toBe('ERR_CLI_FLAG_MISSING_VALUE');
    expect(missing.message).toBe('flag needs an argument: -spiffeID');
    for (const bad of ['---x', '-=x', '--=x']) {
      const err = parseError(sample().fs, [bad]);
      expect(err.code).toBe('ERR_CLI_FLAG_SYNTAX');
      expect(err.message).toBe(`bad flag syntax: ${bad}`);
    }
  });

  it('implements SPIRE -output: pretty/json, case-insensitive, not changed twice', () => {
    const s = sample();
    expect(s.output.value).toBe('pretty');
    s.fs.parse(['-output', 'JSON']);
    expect(s.output.value).toBe('json');
    const again = sample();
    again.fs.parse(['-output', 'prettyprint']);
    expect(again.output.value).toBe('pretty');
    const bad = parseError(sample().fs, ['-output', 'xml']);
    expect(bad.message).toBe(
      'invalid value "xml" for flag -output: bad formatter flag: unknown format option: "xml"',
    );
    const twice = parseError(sample().fs, ['-output', 'json', '-output', 'pretty']);
    expect(twice.message).toBe(
      'invalid value "pretty" for flag -output: the output format has already been set to "json"',
    );
  });

  it('prints Go usage: sorted flags, type placeholders, defaults only when not zero', () => {
    const s = sample();
    expect(s.fs.usage()).toBe(
      [
        'Usage of entry create:',
        '  -entryExpiry int',
        '    \tAn expiry',
        '  -matchSelectorsOn string',
        '    \tThe match mode (default "superset")',
        '  -node',
        '    \tIf set, this entry will be applied to matching nodes',
        '  -output value',
        '    \tDesired output format (pretty, json); default: pretty.',
        '  -selector value',
        '    \tA colon-delimited type:value selector',
        '  -spiffeID string',
        '    \tThe SPIFFE ID that this record represents',
        '  -ttl duration',
        '    \tTTL of the SVID',
        '  -x509SVIDTTL int',
        '    \tThe lifetime, in seconds',
        '',
      ].join('\n'),
    );
  });

  it('prints short bool flags on one line, back-quoted names, non-zero defaults', () => {
    const fs = new FlagSet('x');
    fs.bool('v', false, 'verbose');
    fs.int('ttl', 600, 'Token TTL in seconds');
    fs.duration('timeout', 5_000_000_000n, 'wait `delay` for\nthe answer');
    fs.bool('on', true, 'enabled');
    expect(fs.defaults()).toBe(
      [
        '  -on',
        '    \tenabled (default true)',
        '  -timeout delay',
        '    \twait delay for',
        '    \tthe answer (default 5s)',
        '  -ttl int',
        '    \tToken TTL in seconds (default 600)',
        '  -v\tverbose',
        '',
      ].join('\n'),
    );
  });

  it('gives the text Go writes on a failure: message then usage, usage alone for help', () => {
    const s = sample();
    const err = parseError(s.fs, ['-bogus']);
    expect(s.fs.failureText(err)).toBe(`flag provided but not defined: -bogus\n${s.fs.usage()}`);
    const help = parseError(s.fs, ['-h']);
    expect(s.fs.failureText(help)).toBe(s.fs.usage());
  });

  it('refuses to define a flag twice or with a bad name (programming errors)', () => {
    const fs = new FlagSet('x');
    fs.string('a', '', '');
    expect(() => fs.string('a', '', '')).toThrow(TypeError);
    expect(() => fs.string('-b', '', '')).toThrow(TypeError);
    expect(() => fs.string('c=d', '', '')).toThrow(TypeError);
  });
});

describe('FlagSet: properties', () => {
  const value = fc.string({ maxLength: 12 });
  const form = fc.constantFrom('-n v', '-n=v', '--n v', '--n=v');

  it('parses each value the same whichever of the four forms is used', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(value, form), { maxLength: 8 }), (items) => {
        const fs = new FlagSet('p');
        const sel = fs.strings('selector', '');
        const args: string[] = [];
        for (const [v, f] of items) {
          if (f === '-n v') args.push('-selector', v);
          else if (f === '--n v') args.push('--selector', v);
          else if (f === '-n=v') args.push(`-selector=${v}`);
          else args.push(`--selector=${v}`);
        }
        expect(fs.parse(args)).toEqual([]);
        expect(sel.value).toEqual(items.map(([v]) => v));
      }),
      { numRuns: 300 },
    );
  });

  it('never throws anything but a flag error, and leaves a suffix of the arguments', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('-node', '-ttl', '--', '-')),
          {
            maxLength: 10,
          },
        ),
        (args) => {
          const s = sample();
          try {
            const rest = s.fs.parse(args);
            expect(args.slice(args.length - rest.length)).toEqual(rest);
          } catch (err) {
            expect(isFlagError(err)).toBe(true);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('round-trips any 64-bit integer written in decimal, hex or with separators', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), (n) => {
        const neg = n < 0n ? '-' : '';
        const abs = n < 0n ? -n : n;
        for (const text of [
          String(n),
          `${neg}0x${abs.toString(16)}`,
          `${neg}${abs.toString().replace(/\B(?=(\d{3})+(?!\d))/g, '_')}`,
        ]) {
          const fs = new FlagSet('p');
          const f = fs.int('n', 0, '');
          fs.parse(['-n', text]);
          expect(f.value).toBe(n);
        }
      }),
      { numRuns: 300 },
    );
  });
});
