/**
 * The shared conversions and the admin authorizer: DNS name and SPIFFE ID rules, entry
 * round trips, property tests that untrusted request fields only ever yield a value or an
 * `ERR_API_INVALID_ARGUMENT` (never a crash), and the uid check on peer credentials.
 */
import { create } from '@bufbuild/protobuf';
import { createContextValues } from '@connectrpc/connect';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../../../src/common/errors.js';
import { kGrpcPeer } from '../../../../src/common/grpc/peer.js';
import { types } from '../../../../src/protocol/index.js';
import { allowedAdminUids, authorizeAdmin } from '../../../../src/server/api/admin/authorize.js';
import {
  bundleInputFromProto,
  dnsNameProblem,
  entryFromProto,
  fromDataStoreError,
  idFromProto,
  idRuleProblem,
  protoFromEntry,
} from '../../../../src/server/api/convert.js';
import { parseExpiresBefore } from '../../../../src/server/api/filters.js';
import { dsError } from '../../../../src/server/datastore/errors.js';
import type { RegistrationEntry } from '../../../../src/server/datastore/types.js';
import { parseSpiffeId, parseTrustDomain } from '../../../../src/spiffe/id.js';

const td = parseTrustDomain('example.org');

/** Runs `fn`; returns 'ok' or the error code; anything that is not coded fails the test. */
function outcome(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (!isSpireEdgeError(err)) throw err;
    return err.code;
  }
}

describe('dnsNameProblem', () => {
  it.each([
    ['example.org', undefined],
    ['a-b.c0.example.org', undefined],
    ['*.example.org', undefined],
    ['xn--bcher-kva.example', undefined],
    ['localhost', undefined],
    ['', 'empty or only whitespace'],
    ['a.org.', 'domain ends with dot'],
    ['*.*.org', 'too many wildcards'],
    ['a*.org', 'wildcard must be first label'],
    ['*', 'wildcard must be first label'],
    ['a..org', 'name contains an empty label'],
    ['-a.org', 'label "-a" is not a valid DNS label'],
    ['a_b.org', 'label "a_b" is not a valid DNS label'],
    ['ab--cd.org', 'label "ab--cd" has hyphens in the third and fourth positions'],
    [`${'a'.repeat(64)}.org`, `label "${'a'.repeat(64)}" is not a valid DNS label`],
    [`${'a.'.repeat(127)}ab`, 'name is longer than 253 characters'],
    ['é.org', 'name must be ascii'],
  ])('%s → %s', (name, problem) => {
    expect(dnsNameProblem(name)).toBe(problem);
  });
});

describe('SPIFFE ID rules', () => {
  it.each([
    ['spiffe://example.org/w', 'workload', undefined],
    ['spiffe://example.org/spire/agent/tpm/x', 'agent', undefined],
    ['spiffe://example.org/spire/agent/tpm/x', 'member', undefined],
    ['spiffe://example.org/spire', 'workload', 'path is in the reserved namespace'],
    ['spiffe://example.org/spire/server', 'workload', 'path is in the reserved namespace'],
    ['spiffe://example.org/spirex', 'workload', undefined],
    ['spiffe://example.org/w', 'agent', 'path is not in the agent namespace'],
    ['spiffe://example.org/spire/agent', 'agent', 'path is not in the agent namespace'],
    ['spiffe://example.org', 'member', 'path is empty'],
    ['spiffe://other.org/w', 'member', 'is not a member of trust domain "example.org"'],
  ] as const)('%s as %s', (id, rule, problem) => {
    const p = idRuleProblem(parseSpiffeId(id), td, rule);
    if (problem === undefined) expect(p).toBeUndefined();
    else expect(p).toContain(problem);
  });

  it('accepts the trust domain as a name or a spiffe:// ID, as SPIRE does', () => {
    const id = idFromProto(
      create(types.SPIFFEIDSchema, { trustDomain: 'spiffe://example.org', path: '/a' }),
      'spiffe_id',
    );
    expect(id.toString()).toBe('spiffe://example.org/a');
  });
});

describe('entry conversions', () => {
  const record: RegistrationEntry = {
    id: 'e1',
    spiffeId: 'spiffe://example.org/w',
    parentId: 'spiffe://example.org/spire/agent/x',
    selectors: [{ type: 'unix', value: 'uid:1' }],
    x509SvidTtl: 10,
    jwtSvidTtl: 20,
    dnsNames: ['a.example.org'],
    federatesWith: ['td1.org'],
    admin: true,
    downstream: true,
    hint: 'h',
    storeSvid: true,
    entryExpiry: 99,
    revisionNumber: 3,
    createdAt: 5,
  };

  it('round-trips a stored entry through the protobuf form', () => {
    const { id, fields } = entryFromProto(td, protoFromEntry(record));
    expect(id).toBe('e1');
    const { id: _i, revisionNumber: _r, createdAt: _c, ...settable } = record;
    expect(fields).toEqual(settable);
  });

  it('only ever accepts or refuses with ERR_API_INVALID_ARGUMENT (property)', () => {
    const text = fc.string({ maxLength: 40 });
    fc.assert(
      fc.property(
        fc.record({
          id: text,
          td: fc.oneof(fc.constant('example.org'), text),
          path: fc.oneof(
            fc.constant('/w'),
            text.map((s) => `/${s}`),
            text,
          ),
          parentPath: text.map((s) => `/${s}`),
          selectors: fc.array(fc.record({ type: text, value: text }), { maxLength: 3 }),
          dnsNames: fc.array(text, { maxLength: 3 }),
          federatesWith: fc.array(text, { maxLength: 2 }),
          ttl: fc.integer({ min: -2, max: 2 ** 31 - 1 }),
          expiresAt: fc.bigInt({ min: -2n, max: 2n ** 63n - 1n }),
          hint: fc.string({ maxLength: 1100 }),
        }),
        (r) => {
          const e = create(types.EntrySchema, {
            id: r.id,
            spiffeId: { trustDomain: r.td, path: r.path },
            parentId: { trustDomain: r.td, path: r.parentPath },
            selectors: r.selectors,
            dnsNames: r.dnsNames,
            federatesWith: r.federatesWith,
            x509SvidTtl: r.ttl,
            expiresAt: r.expiresAt,
            hint: r.hint,
          });
          expect(['ok', 'ERR_API_INVALID_ARGUMENT']).toContain(
            outcome(() => entryFromProto(td, e)),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('bundles from requests: only accepted or refused, never a crash (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 30 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.string({ maxLength: 8 }),
        (name, cert, key, kid) => {
          const b = create(types.BundleSchema, {
            trustDomain: name,
            x509Authorities: [{ asn1: cert }],
            jwtAuthorities: [{ keyId: kid, publicKey: key }],
          });
          expect(['ok', 'ERR_API_INVALID_ARGUMENT']).toContain(
            outcome(() => bundleInputFromProto(b)),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('parses expiry filters or refuses them, never a crash (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        expect(['ok', 'ERR_API_INVALID_ARGUMENT']).toContain(outcome(() => parseExpiresBefore(s)));
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(
        fc.date({ min: new Date(0), max: new Date(Date.UTC(9999, 0)), noInvalidDate: true }),
        (d) => {
          const iso = `${d.toISOString().slice(0, 19)}Z`;
          expect(parseExpiresBefore(iso)).toBe(Math.floor(d.getTime() / 1000));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('datastore error translation', () => {
  it.each([
    ['ERR_DATASTORE_INVALID_ARGUMENT', 'ERR_API_INVALID_ARGUMENT', 'bad field'],
    ['ERR_DATASTORE_NOT_FOUND', 'ERR_API_NOT_FOUND', 'thing not found'],
    ['ERR_DATASTORE_ALREADY_EXISTS', 'ERR_API_ALREADY_EXISTS', 'bad field'],
    ['ERR_DATASTORE_CONFLICT', 'ERR_API_FAILED_PRECONDITION', 'bad field'],
    ['ERR_DATASTORE_INTERNAL', 'ERR_API_INTERNAL', 'failed to do it'],
  ] as const)('%s → %s', (from, to, message) => {
    const e = fromDataStoreError(dsError(from, 'bad field'), 'do it', 'thing not found');
    expect(e.code).toBe(to);
    expect(e.message).toBe(message);
  });

  it('never sends the text of an unknown error', () => {
    const e = fromDataStoreError(new Error('SQLITE_IOERR /var/lib/x'), 'list entries');
    expect(e).toMatchObject({ code: 'ERR_API_INTERNAL', message: 'failed to list entries' });
  });
});

describe('admin authorization', () => {
  const peer = (uid: number | undefined) => {
    const values = createContextValues();
    values.set(kGrpcPeer, {
      kind: 'unix',
      socket: undefined as never,
      fd: 3,
      cred: uid === undefined ? undefined : { pid: 77, uid, gid: uid },
      pidfd: undefined,
    });
    return values;
  };

  it('admits root and the server uid only', () => {
    const own = process.getuid!();
    expect(allowedAdminUids()).toEqual([...new Set([0, own])].sort((a, b) => a - b));
    expect(authorizeAdmin(peer(0), [0, 1000])).toEqual({ kind: 'unix', uid: 0, gid: 0, pid: 77 });
    expect(authorizeAdmin(peer(1000), [0, 1000]).uid).toBe(1000);
    let err: unknown;
    try {
      authorizeAdmin(peer(1001), [0, 1000]);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({
      code: 'ERR_ADMIN_PERMISSION_DENIED',
      message: 'caller uid 1001 is not authorized: the admin API admits only uid 0, 1000',
    });
  });

  it('refuses callers without credentials (TLS, unknown, or not read)', () => {
    const tls = createContextValues();
    tls.set(kGrpcPeer, {
      kind: 'tls',
      socket: undefined as never,
      remoteAddress: '127.0.0.1',
      remotePort: 1,
      authorized: true,
      authorizationError: undefined,
      certificate: undefined,
      certificateChain: [],
    });
    for (const values of [createContextValues(), peer(undefined), tls]) {
      expect(outcome(() => authorizeAdmin(values, [0]))).toBe('ERR_ADMIN_PERMISSION_DENIED');
    }
    expect(() => allowedAdminUids({ allowedUids: [-1] })).toThrow(TypeError);
  });
});
