// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these tests are about literal ${VAR} text
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expandEnv } from '../../../src/config/index.js';

const env = {
  TD: 'example.org',
  DIR: '/var/lib/spire',
  EMPTY: '',
  A_1: 'x',
  '1': 'one',
  'a:b': 'colon',
};

describe('expandEnv (SPIRE -expandEnv, Go os.Expand)', () => {
  it.each([
    ['trust_domain = "$TD"', 'trust_domain = "example.org"'],
    ['data_dir = "${DIR}/data"', 'data_dir = "/var/lib/spire/data"'],
    ['$DIR/x$A_1y', '/var/lib/spire/x'], // $A_1y is one name, unset
    ['${A_1}y', 'xy'],
    ['unset: [$NOPE] [${NOPE}]', 'unset: [] []'],
    ['empty: [$EMPTY]', 'empty: []'],
    ['dollar: $$ and ${$}', 'dollar: $ and $'],
    ['specials: $1 ${1} $? $*', 'specials: one one  '],
    ['kept: $ $. $-x $/', 'kept: $ $. x $/'],
    ['at end: $', 'at end: $'],
    ['bad: ${} and ${unclosed', 'bad:  and unclosed'],
    ['braces take anything: ${a:b}', 'braces take anything: colon'],
    ['no re-expansion: ${TD}', 'no re-expansion: example.org'],
    ['no dollar at all', 'no dollar at all'],
    ['unicode: $é ${é}', 'unicode: $é '],
  ])('%j → %j', (input, output) => {
    expect(expandEnv(input, env)).toBe(output);
  });

  it('does not re-expand values that contain $', () => {
    expect(expandEnv('$V', { V: '$TD' })).toBe('$TD');
  });

  it('ignores inherited object properties', () => {
    expect(expandEnv('[$toString][$constructor]', {})).toBe('[][]');
  });

  it('leaves text without $ unchanged', () => {
    fc.assert(
      fc.property(
        fc.string().filter((s) => !s.includes('$')),
        (s) => {
          expect(expandEnv(s, env)).toBe(s);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('throws TypeError for non-string text', () => {
    expect(() => expandEnv(undefined as unknown as string, {})).toThrow(TypeError);
  });
});
