/**
 * Exact output layouts of the `spire-server` commands, checked against SPIRE v1.15's format
 * strings (cmd/spire-server/cli/entry/util.go printEntry, agent/list.go printAgents,
 * bundle/common.go) and its JSON form (protojson with proto names, emit unpopulated, nulls
 * removed, keys sorted).
 */
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { protoToGoJson } from '../../../../src/common/cli/go-json.js';
import { isSpireEdgeError } from '../../../../src/common/errors.js';
import { entryv1, types } from '../../../../src/protocol/index.js';
import { formatAgent } from '../../../../src/server/cli/agent/common.js';
import {
  formatBundle,
  parseBundleData,
  validateFormat,
} from '../../../../src/server/cli/bundle/common.js';
import { formatEntry, sortEntries } from '../../../../src/server/cli/entry/print.js';
import { makePki } from '../../spiffe/x509-support.js';

const FULL_ENTRY = create(types.EntrySchema, {
  id: 'entry-1',
  spiffeId: { trustDomain: 'example.org', path: '/web' },
  parentId: { trustDomain: 'example.org', path: '/spire/agent/x509pop/node1' },
  selectors: [
    { type: 'unix', value: 'uid:1000' },
    { type: 'k8s', value: 'ns:default' },
  ],
  x509SvidTtl: 3600,
  federatesWith: ['domain.test'],
  admin: true,
  downstream: true,
  expiresAt: 1_700_000_000n,
  dnsNames: ['web.example.org', 'web'],
  revisionNumber: 3n,
  storeSvid: true,
  jwtSvidTtl: 300,
  hint: 'external',
  createdAt: 1_690_000_000n,
  additionalAttributes: { disableX509SvidPrefetch: true, jwtSvidIncludeJti: true },
});

const FULL_ENTRY_TEXT = `Entry ID                : entry-1
SPIFFE ID               : spiffe://example.org/web
Parent ID               : spiffe://example.org/spire/agent/x509pop/node1
Revision                : 3
Downstream              : true
X509-SVID TTL           : 3600
JWT-SVID TTL            : 300
Expiration time         : 2023-11-14 22:13:20 +0000 UTC
Selector                : unix:uid:1000
Selector                : k8s:ns:default
FederatesWith           : domain.test
DNS name                : web.example.org
DNS name                : web
Admin                   : true
StoreSvid               : true
Hint                    : external
DisableX509SvidPrefetch : true
JwtSvidIncludeJti       : true

`;

const FULL_ENTRY_JSON =
  '{"additional_attributes":{"disable_x509_svid_prefetch":true,"jwt_svid_include_jti":true},' +
  '"admin":true,"created_at":"1690000000","dns_names":["web.example.org","web"],' +
  '"downstream":true,"expires_at":"1700000000","federates_with":["domain.test"],' +
  '"hint":"external","id":"entry-1","jwt_svid_ttl":300,' +
  '"parent_id":{"path":"/spire/agent/x509pop/node1","trust_domain":"example.org"},' +
  '"revision_number":"3","selectors":[{"type":"unix","value":"uid:1000"},' +
  '{"type":"k8s","value":"ns:default"}],"spiffe_id":{"path":"/web","trust_domain":"example.org"},' +
  '"store_svid":true,"x509_svid_ttl":3600}';

describe('entry layout', () => {
  it('prints every field of an entry as SPIRE does', () => {
    expect(formatEntry(FULL_ENTRY)).toBe(FULL_ENTRY_TEXT);
  });

  it('prints the minimal entry with defaults and without optional lines', () => {
    const e = create(types.EntrySchema, {
      spiffeId: { trustDomain: 'example.org', path: '/w' },
      parentId: { trustDomain: 'example.org', path: '/spire/server' },
      selectors: [{ type: 'unix', value: 'uid:0' }],
      additionalAttributes: { disableX509SvidPrefetch: false, jwtSvidIncludeJti: false },
    });
    expect(formatEntry(e)).toBe(
      'Entry ID                : (none)\n' +
        'SPIFFE ID               : spiffe://example.org/w\n' +
        'Parent ID               : spiffe://example.org/spire/server\n' +
        'Revision                : 0\n' +
        'X509-SVID TTL           : default\n' +
        'JWT-SVID TTL            : default\n' +
        'Selector                : unix:uid:0\n\n',
    );
  });

  it('writes the -output json form with proto field names, sorted keys and int64 strings', () => {
    expect(protoToGoJson(types.EntrySchema, FULL_ENTRY)).toBe(FULL_ENTRY_JSON);
    const resp = create(entryv1.BatchCreateEntryResponseSchema, {
      results: [
        { status: { code: 0, message: 'OK' }, entry: FULL_ENTRY },
        { status: { code: 6, message: 'similar entry already exists' } },
      ],
    });
    expect(protoToGoJson(entryv1.BatchCreateEntryResponseSchema, resp)).toBe(
      `{"results":[{"entry":${FULL_ENTRY_JSON},"status":{"code":0,"message":"OK"}},` +
        '{"status":{"code":6,"message":"similar entry already exists"}}]}',
    );
    expect(
      protoToGoJson(
        entryv1.ListEntriesResponseSchema,
        create(entryv1.ListEntriesResponseSchema, {}),
      ),
    ).toBe('{"entries":[],"next_page_token":""}');
  });

  it('sorts entries and their selectors as SPIRE SortTypesEntries', () => {
    const mk = (path: string, parent: string, ttl: number, sel: string[]) =>
      create(types.EntrySchema, {
        spiffeId: { trustDomain: 'example.org', path },
        parentId: { trustDomain: 'example.org', path: parent },
        x509SvidTtl: ttl,
        selectors: sel.map((s) => ({ type: s.split(':')[0]!, value: s.split(':')[1]! })),
      });
    const list = [
      mk('/b', '/p', 0, ['u:1']),
      mk('/a', '/q', 0, ['u:1']),
      mk('/a', '/p', 60, ['u:1']),
      mk('/a', '/p', 0, ['u:2', 'u:1']),
      mk('/a', '/p', 0, ['t:9']),
    ];
    sortEntries(list);
    expect(
      list.map(
        (e) =>
          `${e.spiffeId?.path} ${e.parentId?.path} ${e.x509SvidTtl} ${e.selectors.map((s) => `${s.type}:${s.value}`).join(',')}`,
      ),
    ).toEqual(['/a /p 0 t:9', '/a /p 0 u:1,u:2', '/a /p 60 u:1', '/a /q 0 u:1', '/b /p 0 u:1']);
  });
});

describe('agent layout', () => {
  it('prints an agent as SPIRE printAgents, banned agents without serial', () => {
    const prev = process.env['TZ'];
    const agent = create(types.AgentSchema, {
      id: { trustDomain: 'example.org', path: '/spire/agent/join_token/abc' },
      attestationType: 'join_token',
      x509svidSerialNumber: '1234',
      x509svidExpiresAt: 1_700_000_000n,
      canReattest: false,
      agentVersion: '0.1.0',
    });
    try {
      process.env['TZ'] = 'UTC';
      expect(formatAgent(agent)).toBe(
        'SPIFFE ID         : spiffe://example.org/spire/agent/join_token/abc\n' +
          'Attestation type  : join_token\n' +
          'Expiration time   : 2023-11-14 22:13:20 +0000 UTC\n' +
          'Serial number     : 1234\n' +
          'Can re-attest     : false\n' +
          'Agent version     : 0.1.0\n\n',
      );
      agent.banned = true;
      agent.agentVersion = '';
      expect(formatAgent(agent)).toContain(
        'Banned            : true\nCan re-attest     : false\n\n',
      );
      expect(formatAgent(agent)).not.toContain('Serial number');
    } finally {
      if (prev === undefined) delete process.env['TZ'];
      else process.env['TZ'] = prev;
    }
  });
});

describe('bundle layout', () => {
  it('prints PEM, and the SPIFFE document with go-jose key order and 4-space indent', async () => {
    const pki = await makePki();
    const der = Uint8Array.from(pki.rootDer);
    const cert = new X509Certificate(Buffer.from(der));
    const jwt = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const bundle = create(types.BundleSchema, {
      trustDomain: 'example.org',
      x509Authorities: [{ asn1: der }],
      jwtAuthorities: [
        {
          keyId: 'kid-1',
          publicKey: new Uint8Array(jwt.export({ format: 'der', type: 'spki' })),
          expiresAt: 99n,
        },
      ],
      refreshHint: 300n,
      sequenceNumber: 7n,
    });
    const b64 = Buffer.from(der).toString('base64');
    const pem = `-----BEGIN CERTIFICATE-----\n${b64.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
    expect(formatBundle(bundle, 'pem', false)).toBe(pem);
    expect(formatBundle(bundle, '', true)).toBe(
      `****************************************\n* example.org\n****************************************\n${pem}`,
    );
    const x = cert.publicKey.export({ format: 'jwk' });
    const j = jwt.export({ format: 'jwk' });
    expect(formatBundle(bundle, 'SPIFFE', false)).toBe(
      `${[
        '{',
        '    "keys": [',
        '        {',
        '            "use": "x509-svid",',
        `            "kty": "${x.kty}",`,
        `            "crv": "${x.crv}",`,
        `            "x": "${x.x}",`,
        `            "y": "${x.y}",`,
        '            "x5c": [',
        `                "${b64}"`,
        '            ]',
        '        },',
        '        {',
        '            "use": "jwt-svid",',
        '            "kty": "EC",',
        '            "kid": "kid-1",',
        '            "crv": "P-256",',
        `            "x": "${j.x}",`,
        `            "y": "${j.y}"`,
        '        }',
        '    ],',
        '    "spiffe_sequence": 7,',
        '    "spiffe_refresh_hint": 300',
        '}',
      ].join('\n')}\n`,
    );
    expect(() => validateFormat('der')).toThrow('invalid format: "der"');
  });

  it('parses bundle set data: PEM keeps -id as given, SPIFFE documents are validated', async () => {
    const pki = await makePki();
    const der = Uint8Array.from(pki.rootDer);
    const pemText = `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64')}\n-----END CERTIFICATE-----\n`;
    const fromPem = parseBundleData(Buffer.from(pemText), 'pem', 'spiffe://domain.test');
    expect(fromPem.trustDomain).toBe('spiffe://domain.test');
    expect(
      fromPem.x509Authorities.map((a) => Buffer.from(a.asn1).equals(Buffer.from(der))),
    ).toEqual([true]);
    const doc = formatBundle(
      create(types.BundleSchema, {
        trustDomain: 'domain.test',
        x509Authorities: [{ asn1: der }],
        sequenceNumber: 2n,
      }),
      'spiffe',
      false,
    );
    const fromDoc = parseBundleData(Buffer.from(doc), 'spiffe', 'spiffe://domain.test');
    expect(fromDoc.trustDomain).toBe('domain.test');
    expect(fromDoc.sequenceNumber).toBe(2n);
    expect(fromDoc.x509Authorities).toHaveLength(1);
    let caught: unknown;
    try {
      parseBundleData(Buffer.from('not pem'), 'pem', 'domain.test');
    } catch (err) {
      caught = err;
    }
    expect(isSpireEdgeError(caught, 'ERR_CLI_COMMAND_FAILED')).toBe(true);
    expect((caught as Error).message).toMatch(/^unable to parse bundle data: /);
    expect(() => parseBundleData(Buffer.from('{"keys":'), 'spiffe', 'domain.test')).toThrow(
      /^unable to parse to spiffe bundle: /,
    );
  });
});
