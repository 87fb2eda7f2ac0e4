import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  isValidSpiffeId,
  MAX_SPIFFE_ID_LENGTH,
  parseSpiffeId,
  parseTrustDomain,
  spiffeIdFromPath,
  spiffeIdFromSegments,
} from '../../../src/spiffe/id.js';
import { matchAny, matchId, matchMemberOf, matchOneOf } from '../../../src/spiffe/match.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  return '';
}

describe('parseSpiffeId', () => {
  it('parses trust domain and path', () => {
    const id = parseSpiffeId('spiffe://example.org/ns/prod/sa/web');
    expect(id.trustDomain.name).toBe('example.org');
    expect(id.path).toBe('/ns/prod/sa/web');
    expect(id.segments()).toEqual(['ns', 'prod', 'sa', 'web']);
    expect(id.toString()).toBe('spiffe://example.org/ns/prod/sa/web');
  });

  it('accepts the trust domain ID (empty path) and every allowed character', () => {
    expect(parseSpiffeId('spiffe://a-b_c.d0').path).toBe('');
    expect(parseSpiffeId('spiffe://td/AZaz09.-_/x').path).toBe('/AZaz09.-_/x');
    expect(parseSpiffeId('spiffe://td/.../a..b/.x').segments()).toEqual(['...', 'a..b', '.x']);
  });

  // One case per rule of SPIFFE-ID.md §2, each breaking exactly that rule.
  const cases: Array<[string, string]> = [
    ['', 'cannot be empty'],
    ['http://example.org/a', 'scheme is missing or invalid'],
    ['SPIFFE://example.org/a', 'scheme is missing or invalid'],
    ['spiffe:/example.org/a', 'scheme is missing or invalid'],
    ['spiffe://', 'trust domain is missing'],
    ['spiffe:///path', 'trust domain is missing'],
    ['spiffe://Example.org/a', 'trust domain characters are limited'],
    ['spiffe://exa mple.org', 'trust domain characters are limited'],
    ['spiffe://example.org:8080/a', 'trust domain cannot contain a port'],
    ['spiffe://user@example.org/a', 'trust domain cannot contain user info'],
    ['spiffe://ex%41mple.org', 'trust domain cannot contain percent-encoded'],
    ['spiffe://example.org/', 'path cannot have a trailing slash'],
    ['spiffe://example.org/a/', 'path cannot have a trailing slash'],
    ['spiffe://example.org//a', 'path cannot contain empty segments'],
    ['spiffe://example.org/a//b', 'path cannot contain empty segments'],
    ['spiffe://example.org/./a', 'path cannot contain dot segments'],
    ['spiffe://example.org/a/..', 'path cannot contain dot segments'],
    ['spiffe://example.org/a?x=1', 'path cannot contain a query'],
    ['spiffe://example.org/a#frag', 'path cannot contain a fragment'],
    ['spiffe://example.org/a%20b', 'path cannot contain percent-encoded'],
    ['spiffe://example.org/a b', 'path segment characters are limited'],
    ['spiffe://example.org/caf\u00e9', 'path segment characters are limited'],
    ['spiffe://example.org?x', 'trust domain characters are limited'],
  ];
  for (const [input, rule] of cases) {
    it(`rejects ${JSON.stringify(input)}: ${rule}`, () => {
      expect(codeOf(() => parseSpiffeId(input))).toBe('ERR_SPIFFE_ID_INVALID');
      expect(messageOf(() => parseSpiffeId(input))).toContain(rule);
    });
  }

  it('supports IDs up to 2048 bytes and rejects longer ones', () => {
    const prefix = 'spiffe://example.org/';
    const ok = prefix + 'a'.repeat(MAX_SPIFFE_ID_LENGTH - prefix.length);
    expect(parseSpiffeId(ok).toString()).toHaveLength(2048);
    expect(messageOf(() => parseSpiffeId(`${ok}b`))).toContain('longer than 2048 bytes');
  });

  it('rejects non-string arguments with TypeError', () => {
    expect(() => parseSpiffeId(42 as unknown as string)).toThrow(TypeError);
  });
});

describe('parseTrustDomain', () => {
  it('accepts a bare name or a trust domain ID', () => {
    expect(parseTrustDomain('example.org').name).toBe('example.org');
    expect(parseTrustDomain('spiffe://example.org').name).toBe('example.org');
    expect(parseTrustDomain('example.org').idString()).toBe('spiffe://example.org');
  });
  it.each([
    ['', 'trust domain is missing'],
    ['Example.org', 'trust domain characters are limited'],
    ['spiffe://example.org/path', 'trust domain cannot have a path'],
    ['example.org:443', 'trust domain cannot contain a port'],
    ['a'.repeat(256), 'longer than 255'],
  ])('rejects %j (%s)', (input, rule) => {
    expect(codeOf(() => parseTrustDomain(input))).toBe('ERR_TRUST_DOMAIN_INVALID');
    expect(messageOf(() => parseTrustDomain(input))).toContain(rule);
  });
});

describe('building IDs', () => {
  it('from a path or segments, validated', () => {
    expect(spiffeIdFromPath('example.org', '/a/b').toString()).toBe('spiffe://example.org/a/b');
    expect(spiffeIdFromSegments('example.org', 'spire', 'agent', 'x').path).toBe('/spire/agent/x');
    expect(codeOf(() => spiffeIdFromSegments('example.org', 'a/b'))).toBe('ERR_SPIFFE_ID_INVALID');
    expect(codeOf(() => spiffeIdFromPath('example.org', 'a'))).toBe('ERR_SPIFFE_ID_INVALID');
    expect(codeOf(() => spiffeIdFromPath('bad td', '/a'))).toBe('ERR_TRUST_DOMAIN_INVALID');
  });
});

const tdChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789.-_'.split(''));
const pathChar = fc.constantFrom(
  ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_'.split(''),
);
const trustDomainArb = fc.string({ unit: tdChar, minLength: 1, maxLength: 40 });
const segmentArb = fc
  .string({ unit: pathChar, minLength: 1, maxLength: 20 })
  .filter((s) => s !== '.' && s !== '..');

describe('properties', () => {
  it('format(parse(x)) == x for every valid ID, and segments rebuild the same ID', () => {
    fc.assert(
      fc.property(trustDomainArb, fc.array(segmentArb, { maxLength: 8 }), (td, segs) => {
        const text = `spiffe://${td}${segs.map((s) => `/${s}`).join('')}`;
        const id = parseSpiffeId(text);
        expect(id.toString()).toBe(text);
        expect(id.segments()).toEqual(segs);
        expect(spiffeIdFromSegments(td, ...segs).equals(id)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('arbitrary strings either parse to themselves or fail with the coded error', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string().map((s) => `spiffe://${s}`),
        ),
        (s) => {
          try {
            expect(parseSpiffeId(s).toString()).toBe(s);
          } catch (err) {
            expect((err as { code?: string }).code).toBe('ERR_SPIFFE_ID_INVALID');
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('isValidSpiffeId agrees with parseSpiffeId', () => {
    fc.assert(
      fc.property(
        fc.string().map((s) => `spiffe://${s}`),
        (s) => {
          expect(isValidSpiffeId(s)).toBe(codeOf(() => parseSpiffeId(s)) === undefined);
        },
      ),
    );
  });
});

describe('matchers', () => {
  const web = parseSpiffeId('spiffe://example.org/web');
  const db = parseSpiffeId('spiffe://example.org/db');
  const other = parseSpiffeId('spiffe://other.org/web');
  it('matchId accepts only the expected ID', () => {
    expect(() => matchId('spiffe://example.org/web')(web)).not.toThrow();
    expect(codeOf(() => matchId(web)(db))).toBe('ERR_SPIFFE_ID_UNEXPECTED');
  });
  it('matchOneOf accepts members of the set only', () => {
    const m = matchOneOf(web, 'spiffe://example.org/db');
    m(web);
    m(db);
    expect(codeOf(() => m(other))).toBe('ERR_SPIFFE_ID_UNEXPECTED');
  });
  it('matchMemberOf checks the trust domain', () => {
    matchMemberOf('example.org')(db);
    expect(messageOf(() => matchMemberOf('example.org')(other))).toContain(
      'not a member of trust domain example.org',
    );
  });
  it('matchAny accepts anything', () => {
    matchAny()(other);
    expect(other.memberOf('other.org')).toBe(true);
  });
});
