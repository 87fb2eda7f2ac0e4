import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../../../src/common/errors.js';
import { parseDeleteFile, parseEntriesFile } from '../../../../src/server/cli/entry/data-file.js';

function failure(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    return err as { code: string; message: string };
  }
  return expect.fail('expected a failure');
}

describe('entry batch files (SPIRE RegistrationEntries JSON)', () => {
  it('reads every field, matching keys case-insensitively and ignoring unknown ones', () => {
    const [e, second] = parseEntriesFile(
      JSON.stringify({
        entries: [
          {
            selectors: [
              { type: 'unix', value: 'uid:1111' },
              { TYPE: 'unix', Value: 'gid:2' },
            ],
            spiffe_id: 'spiffe://example.org/Blog',
            PARENT_ID: 'spiffe://example.org/spire/agent/join_token/TokenBlog',
            x509_svid_ttl: 200,
            jwt_svid_ttl: 30,
            federates_with: ['spiffe://domain.test', 'other.test'],
            entry_id: 'blog',
            admin: true,
            downstream: true,
            entryExpiry: 0,
            dns_names: ['blog.example.org'],
            store_svid: true,
            hint: 'h',
            revision_number: 4,
            created_at: 5,
            additional_attributes: { disable_x509_svid_prefetch: true },
            comment: 'ignored',
          },
          {
            selectors: [{ type: 'unix', value: 'uid:1' }],
            spiffe_id: 'spiffe://example.org/db',
            parent_id: 'spiffe://example.org/node',
            hint: null,
          },
        ],
      }).replace('"entryExpiry":0', '"entryExpiry":9223372036854775807'),
    );
    expect(e).toMatchObject({
      id: 'blog',
      spiffeId: { trustDomain: 'example.org', path: '/Blog' },
      parentId: { trustDomain: 'example.org', path: '/spire/agent/join_token/TokenBlog' },
      selectors: [
        { type: 'unix', value: 'uid:1111' },
        { type: 'unix', value: 'gid:2' },
      ],
      x509SvidTtl: 200,
      jwtSvidTtl: 30,
      federatesWith: ['domain.test', 'other.test'],
      admin: true,
      downstream: true,
      expiresAt: 9223372036854775807n,
      dnsNames: ['blog.example.org'],
      storeSvid: true,
      hint: 'h',
      revisionNumber: 4n,
      createdAt: 5n,
      additionalAttributes: { disableX509SvidPrefetch: true, jwtSvidIncludeJti: false },
    });
    expect(second).toMatchObject({ id: '', hint: '', x509SvidTtl: 0, admin: false });
    expect(second?.additionalAttributes).toBeUndefined();
    expect(parseEntriesFile('{}')).toEqual([]);
    expect(parseEntriesFile('null')).toEqual([]);
    expect(parseEntriesFile('{"entries": null}')).toEqual([]);
  });

  it("refuses wrong types with encoding/json's messages", () => {
    const cases: Array<[string, string]> = [
      [
        '{"entries":[{"x509_svid_ttl":"60"}]}',
        'json: cannot unmarshal string into Go struct field RegistrationEntry.entries.x509_svid_ttl of type int32',
      ],
      [
        '{"entries":[{"x509_svid_ttl":3000000000}]}',
        'json: cannot unmarshal number 3000000000 into Go struct field RegistrationEntry.entries.x509_svid_ttl of type int32',
      ],
      [
        '{"entries":[{"jwt_svid_ttl":1.0}]}',
        'json: cannot unmarshal number 1.0 into Go struct field RegistrationEntry.entries.jwt_svid_ttl of type int32',
      ],
      [
        '{"entries":[{"admin":"true"}]}',
        'json: cannot unmarshal string into Go struct field RegistrationEntry.entries.admin of type bool',
      ],
      [
        '{"entries":[{"selectors":[{"type":1}]}]}',
        'json: cannot unmarshal number into Go struct field Selector.entries.selectors.type of type string',
      ],
      [
        '{"entries":[{"selectors":{}}]}',
        'json: cannot unmarshal object into Go struct field RegistrationEntry.entries.selectors of type []*common.Selector',
      ],
      [
        '{"entries":[5]}',
        'json: cannot unmarshal number into Go struct field RegistrationEntries.entries of type common.RegistrationEntry',
      ],
      ['[]', 'json: cannot unmarshal array into Go value of type common.RegistrationEntries'],
    ];
    for (const [text, message] of cases) {
      const err = failure(() => parseEntriesFile(text));
      expect(err.code).toBe('ERR_CLI_DATA_INVALID');
      expect(err.message).toBe(message);
    }
    expect(failure(() => parseEntriesFile('{"entries":[')).code).toBe('ERR_CLI_JSON_INVALID');
  });

  it("validates IDs with SPIRE's RegistrationEntryToProto messages", () => {
    const base = { selectors: [{ type: 'a', value: 'b' }] };
    const cases: Array<[unknown, string]> = [
      [null, 'missing registration entry'],
      [{ ...base, parent_id: 'spiffe://td/p' }, 'invalid SPIFFE ID: cannot be empty'],
      [
        { ...base, spiffe_id: 'http://td/x', parent_id: 'spiffe://td/p' },
        'invalid SPIFFE ID: scheme is missing or invalid',
      ],
      [{ ...base, spiffe_id: 'spiffe://td/x' }, 'invalid parent ID: cannot be empty'],
      [
        {
          ...base,
          spiffe_id: 'spiffe://td/x',
          parent_id: 'spiffe://td/p',
          federates_with: ['Bad'],
        },
        'invalid federated trust domain: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
      ],
    ];
    for (const [entry, message] of cases) {
      const err = failure(() => parseEntriesFile(JSON.stringify({ entries: [entry] })));
      expect(err.code).toBe('ERR_CLI_DATA_INVALID');
      expect(err.message).toBe(message);
    }
  });

  it('reads batch delete files', () => {
    expect(parseDeleteFile('{"ids": ["a", "b"]}')).toEqual(['a', 'b']);
    expect(parseDeleteFile('{"IDS": ["a"], "x": 1}')).toEqual(['a']);
    expect(parseDeleteFile('{}')).toEqual([]);
    expect(failure(() => parseDeleteFile('{"ids": "a"}')).message).toBe(
      'json: cannot unmarshal string into Go struct field BatchDeleteEntryRequest.ids of type []string',
    );
  });

  it('never fails with anything but a coded error on arbitrary input', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.json(),
          fc.string({ maxLength: 40 }),
          fc.jsonValue().map((v) => JSON.stringify({ entries: [v] })),
          fc.jsonValue().map((v) => JSON.stringify({ entries: [{ selectors: v, spiffe_id: v }] })),
        ),
        (text) => {
          try {
            const list = parseEntriesFile(text);
            expect(Array.isArray(list)).toBe(true);
          } catch (err) {
            expect(
              isSpireEdgeError(err, 'ERR_CLI_DATA_INVALID') ||
                isSpireEdgeError(err, 'ERR_CLI_JSON_INVALID'),
            ).toBe(true);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
