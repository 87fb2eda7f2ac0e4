/**
 * The Workload API handlers over an in-memory identity source and a fake caller resolver
 * (selectors taken from a test header), mounted on connect's in-memory router with the
 * project's error mapping — every rule of SPIRE's handler.go without sockets or processes.
 */
import { create, toBinary } from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  createClient,
  createContextValues,
  createRouterTransport,
  type Interceptor,
} from '@connectrpc/connect';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CallerResolver } from '../../../src/agent/workload-api/caller.js';
import {
  createWorkloadApiHandlers,
  createWorkloadApiService,
} from '../../../src/agent/workload-api/handlers.js';
import {
  type MemoryIdentityEntry,
  MemoryIdentitySource,
} from '../../../src/agent/workload-api/memory-identity-source.js';
import { ManualClock } from '../../../src/common/clock.js';
import { SpireEdgeError } from '../../../src/common/errors.js';
import { toConnectError } from '../../../src/common/grpc.js';
import type { Signer } from '../../../src/common/signer.js';
import { WORKLOAD_API_HEADER, workload } from '../../../src/protocol/index.js';
import { JwtBundle } from '../../../src/spiffe/jwt-bundle.js';
import { mintJwtSvid } from '../../../src/spiffe/jwt-svid.js';
import { X509Bundle } from '../../../src/spiffe/x509-bundle.js';
import { memorySigner } from '../spiffe/x509-support.js';

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const HOUR = 3600_000;
const der = (...b: number[]) => Uint8Array.from([0x30, b.length, ...b]);

let clock: ManualClock;
let source: MemoryIdentitySource;
let ownSigner: Signer;
let partnerSigner: Signer;
let strangerSigner: Signer;
let mintCalls: Array<{ spiffeId: string; audience: readonly string[] }>;
let mintFails: Error | undefined;
let mintExpiresAt: Date | undefined;
let resolveCalls = 0;

const OWN_CA = der(1, 1, 1);
const PARTNER_CA = der(2, 2);

function ownBundles() {
  const jwt = new JwtBundle('example.org');
  jwt.addJwtAuthority('own-1', ownSigner.publicKey);
  return { x509: new X509Bundle('example.org', [OWN_CA]), jwt };
}

function entry(
  id: string,
  uid: number,
  over: Partial<MemoryIdentityEntry> = {},
): MemoryIdentityEntry {
  return {
    entryId: id,
    entryCreatedAt: 100,
    spiffeId: `spiffe://example.org/${id}`,
    certChain: [der(9, id.charCodeAt(0)), der(8)],
    privateKeyPkcs8: der(7, id.charCodeAt(0)),
    hint: '',
    expiresAt: new Date(T0 + HOUR),
    federatesWith: [],
    selectors: [{ type: 'unix', value: `uid:${uid}` }],
    ...over,
  };
}

/** Selectors from the `x-test-uid` header; `x-test-fail` makes attestation fail. */
const callers: CallerResolver = {
  async resolve(ctx) {
    resolveCalls++;
    if (ctx.requestHeader.get('x-test-fail') !== null) {
      throw new SpireEdgeError(
        'ERR_WORKLOAD_ATTESTATION_UNAVAILABLE',
        'workload attestation failed',
      );
    }
    const uid = Number(ctx.requestHeader.get('x-test-uid') ?? '0');
    return { pid: 1, uid, gid: uid, selectors: [{ type: 'unix', value: `uid:${uid}` }] };
  },
};

const mapErrors: Interceptor = (next) => async (req) => {
  try {
    const res = await next(req);
    if (!res.stream) return res;
    const source = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* source;
        } catch (err) {
          throw toConnectError(err);
        }
      })(),
    };
  } catch (err) {
    throw toConnectError(err);
  }
};

function clientFor(
  options: { allowUnauthenticatedVerifiers?: boolean; allowedForeignJwtClaims?: string[] } = {},
) {
  const handlers = createWorkloadApiHandlers({ source, callers, clock, ...options });
  const transport = createRouterTransport(
    (router) => router.service(workload.SpiffeWorkloadAPI, handlers),
    { router: { interceptors: [mapErrors] } },
  );
  return createClient(workload.SpiffeWorkloadAPI, transport);
}

/** Ends every call a test left open (afterEach), so leaks show as live subscriptions. */
let openCalls = new AbortController();

const hdr = (uid: number, extra: Record<string, string> = {}) => ({
  headers: { [WORKLOAD_API_HEADER]: 'true', 'x-test-uid': String(uid), ...extra },
  signal: openCalls.signal,
});

async function errorOf(p: Promise<unknown> | (() => Promise<unknown>)): Promise<ConnectError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error('expected a failure');
}

/** Reads a stream message by message; `next()` waits for one. */
function reader<T>(it: AsyncIterable<T>) {
  const iter = it[Symbol.asyncIterator]();
  return {
    next: async () => {
      const r = await iter.next();
      if (r.done === true) throw new Error('stream ended');
      return r.value;
    },
    end: () => iter.next(),
  };
}

/** Lets pending microtasks and immediate callbacks run. */
const settle = () => new Promise((r) => setTimeout(r, 5));

beforeAll(() => {
  ownSigner = memorySigner('ec-p256');
  partnerSigner = memorySigner('ec-p256');
  strangerSigner = memorySigner('ec-p256');
});

/** `stableArrays`: the source repeats its identity arrays, so answers are reused (handlers.ts). */
function setup(stableArrays = false): void {
  openCalls = new AbortController();
  clock = new ManualClock(T0);
  mintCalls = [];
  mintFails = undefined;
  mintExpiresAt = undefined;
  resolveCalls = 0;
  source = new MemoryIdentitySource({
    bundle: ownBundles(),
    stableArrays,
    mintJwtSvid: async (identity, audience) => {
      mintCalls.push({ spiffeId: identity.spiffeId, audience });
      if (mintFails !== undefined) throw mintFails;
      const expiresAt = mintExpiresAt ?? new Date(clock.nowMs() + 5 * 60_000);
      const token = await mintJwtSvid({
        signer: ownSigner,
        keyId: 'own-1',
        spiffeId: identity.spiffeId,
        audience,
        expiresAt: new Date(Math.max(expiresAt.getTime(), clock.nowMs() + 1000)),
        issuedAt: clock.now(),
      });
      return { token, expiresAt };
    },
  });
  const partnerJwt = new JwtBundle('partner.example');
  partnerJwt.addJwtAuthority('partner-1', partnerSigner.publicKey);
  source.setFederatedBundle({
    x509: new X509Bundle('partner.example', [PARTNER_CA]),
    jwt: partnerJwt,
  });
}

afterEach(async () => {
  openCalls.abort();
  await settle();
  expect(source.listenerCount).toBe(0);
});

describe('every method', () => {
  it('requires workload.spiffe.io: true (InvalidArgument, SPIRE message)', async () => {
    setup();
    const c = clientFor();
    const bad = [
      {},
      { headers: { [WORKLOAD_API_HEADER]: 'false' } },
      { headers: { [WORKLOAD_API_HEADER]: 'TRUE' } },
    ];
    for (const opts of bad) {
      const calls = [
        () => reader(c.fetchX509SVID({}, opts)).next(),
        () => reader(c.fetchX509Bundles({}, opts)).next(),
        () => reader(c.fetchJWTBundles({}, opts)).next(),
        () => c.fetchJWTSVID({ audience: ['a'] }, opts),
        () => c.validateJWTSVID({ audience: 'a', svid: 'x' }, opts),
        () => reader(c.fetchWITSVID({}, opts)).next(),
      ];
      for (const call of calls) {
        const err = await errorOf(call);
        expect(err.code).toBe(Code.InvalidArgument);
        expect(err.rawMessage).toBe('security header missing from request');
      }
    }
    expect(resolveCalls).toBe(0);
  });

  it('answers Unavailable until the source is ready, without attesting', async () => {
    setup();
    source.setReady(false);
    source.upsert(entry('a', 1000));
    const c = clientFor();
    for (const call of [
      () => reader(c.fetchX509SVID({}, hdr(1000))).next(),
      () => reader(c.fetchJWTBundles({}, hdr(1000))).next(),
      () => c.fetchJWTSVID({ audience: ['a'] }, hdr(1000)),
      () => c.validateJWTSVID({ audience: 'a', svid: 'x.y.z' }, hdr(1000)),
    ]) {
      const err = await errorOf(call);
      expect([err.code, err.rawMessage]).toEqual([Code.Unavailable, 'workload api is not ready']);
    }
    expect(resolveCalls).toBe(0);
    source.setReady(true);
    expect((await reader(c.fetchX509SVID({}, hdr(1000))).next()).svids).toHaveLength(1);
  });

  it('passes attestation failures through as Unavailable', async () => {
    setup();
    source.upsert(entry('a', 1000));
    const err = await errorOf(
      reader(clientFor().fetchX509SVID({}, hdr(1000, { 'x-test-fail': '1' }))).next(),
    );
    expect([err.code, err.rawMessage]).toEqual([Code.Unavailable, 'workload attestation failed']);
  });

  it('WIT methods are Unimplemented, as in SPIRE', async () => {
    setup();
    const c = clientFor();
    const a = await errorOf(reader(c.fetchWITSVID({}, hdr(1))).next());
    const b = await errorOf(reader(c.fetchWITBundles({}, hdr(1))).next());
    expect([a.code, a.rawMessage]).toEqual([
      Code.Unimplemented,
      'fetching WIT-SVIDs is not implemented',
    ]);
    expect([b.code, b.rawMessage]).toEqual([
      Code.Unimplemented,
      'fetching WIT bundles is not implemented',
    ]);
  });
});

describe.each([false, true])('FetchX509SVID (identity arrays repeated: %s)', (stable) => {
  it('sends the full response at once: SVIDs by entry ID, DER chain leaf first, key, bundle, hint, federated bundles', async () => {
    setup(stable);
    source.upsert(
      entry('b', 1000, { hint: 'external', federatesWith: ['partner.example', 'unknown.example'] }),
    );
    source.upsert(entry('a', 1000, { hint: 'internal' }));
    source.upsert(entry('c', 2000));
    const first = await reader(clientFor().fetchX509SVID({}, hdr(1000))).next();
    expect(first.svids.map((s) => s.spiffeId)).toEqual([
      'spiffe://example.org/a',
      'spiffe://example.org/b',
    ]);
    const b = source.entries().find((e) => e.entryId === 'b')!;
    expect(first.svids[1]).toMatchObject({
      x509Svid: Uint8Array.from(Buffer.concat(b.certChain)),
      x509SvidKey: b.privateKeyPkcs8,
      bundle: OWN_CA,
      hint: 'external',
    });
    expect(first.svids[0]?.hint).toBe('internal');
    expect(first.crl).toEqual([]);
    expect(first.federatedBundles).toEqual({ 'spiffe://partner.example': PARTNER_CA });
  });

  it('denies a caller with no identity: PermissionDenied "no identity issued"', async () => {
    setup(stable);
    source.upsert(entry('a', 1000));
    const err = await errorOf(reader(clientFor().fetchX509SVID({}, hdr(3000))).next());
    expect([err.code, err.rawMessage]).toEqual([Code.PermissionDenied, 'no identity issued']);
  });

  it('pushes every change, omits a deleted entry, and ends with PermissionDenied when none remain', async () => {
    setup(stable);
    source.upsert(entry('a', 1000));
    const ac = new AbortController();
    const r = reader(clientFor().fetchX509SVID({}, { ...hdr(1000), signal: ac.signal }));
    expect((await r.next()).svids.map((s) => s.spiffeId)).toEqual(['spiffe://example.org/a']);
    source.upsert(entry('b', 1000));
    expect((await r.next()).svids.map((s) => s.spiffeId)).toEqual([
      'spiffe://example.org/a',
      'spiffe://example.org/b',
    ]);
    // rotation: same entry, new certificate
    source.upsert(entry('a', 1000, { certChain: [der(5, 5)] }));
    const rotated = await r.next();
    expect(rotated.svids[0]?.x509Svid).toEqual(der(5, 5));
    // a change that does not concern this workload sends nothing; the next real one does
    source.upsert(entry('z', 9999));
    source.remove('a');
    expect((await r.next()).svids.map((s) => s.spiffeId)).toEqual(['spiffe://example.org/b']);
    source.setBundle({ ...ownBundles(), x509: new X509Bundle('example.org', [OWN_CA, der(3)]) });
    expect((await r.next()).svids[0]?.bundle).toEqual(Uint8Array.from([...OWN_CA, ...der(3)]));
    source.remove('b');
    const err = await errorOf(r.next());
    expect([err.code, err.rawMessage]).toEqual([Code.PermissionDenied, 'no identity issued']);
  });

  it('never serves an expired SVID, and pushes the change when one expires', async () => {
    setup(stable);
    source.upsert(entry('old', 1000, { expiresAt: new Date(T0 - 1) }));
    source.upsert(entry('soon', 1000, { expiresAt: new Date(T0 + 60_000) }));
    source.upsert(entry('late', 1000, { expiresAt: new Date(T0 + HOUR) }));
    const r = reader(clientFor().fetchX509SVID({}, hdr(1000)));
    expect((await r.next()).svids.map((s) => s.spiffeId)).toEqual([
      'spiffe://example.org/late',
      'spiffe://example.org/soon',
    ]);
    // the in-memory transport resumes the stream only when the next message is asked for
    const second = r.next();
    await clock.waitForTimer();
    clock.advance(59_000);
    await settle();
    clock.advance(1_001);
    expect((await second).svids.map((s) => s.spiffeId)).toEqual(['spiffe://example.org/late']);
    const third = errorOf(r.next());
    await settle();
    clock.advance(HOUR);
    const err = await third;
    expect(err.code).toBe(Code.PermissionDenied);
    // exactly at expiry is expired too
    source.upsert(entry('edge', 1000, { expiresAt: new Date(clock.nowMs()) }));
    expect((await errorOf(reader(clientFor().fetchX509SVID({}, hdr(1000))).next())).code).toBe(
      Code.PermissionDenied,
    );
  });

  it('keeps one SVID per hint, the oldest entry (then the lowest entry ID)', async () => {
    setup(stable);
    source.upsert(entry('b', 1000, { hint: 'h', entryCreatedAt: 50 }));
    source.upsert(entry('a', 1000, { hint: 'h', entryCreatedAt: 60 }));
    source.upsert(entry('c', 1000, { hint: 'h2', entryCreatedAt: 7 }));
    source.upsert(entry('d', 1000, { hint: 'h2', entryCreatedAt: 7 }));
    source.upsert(entry('e', 1000));
    source.upsert(entry('f', 1000));
    const first = await reader(clientFor().fetchX509SVID({}, hdr(1000))).next();
    expect(first.svids.map((s) => s.spiffeId.slice(-1))).toEqual(['b', 'c', 'e', 'f']);
    // when the kept one expires, the other entry with that hint is served
    source.upsert(entry('b', 1000, { hint: 'h', entryCreatedAt: 50, expiresAt: new Date(T0) }));
    const next = await reader(clientFor().fetchX509SVID({}, hdr(1000))).next();
    expect(next.svids.map((s) => s.spiffeId.slice(-1))).toEqual(['a', 'c', 'e', 'f']);
  });

  it('shows a federated bundle that appears, changes or goes while the entries stay the same', async () => {
    setup(stable);
    source.upsert(entry('a', 1000, { federatesWith: ['partner.example', 'other.example'] }));
    const client = clientFor();
    const fetch = async () =>
      (await reader(client.fetchX509SVID({}, hdr(1000))).next()).federatedBundles;
    expect(await fetch()).toEqual({ 'spiffe://partner.example': PARTNER_CA });
    const other = () => ({
      x509: new X509Bundle('other.example', [der(6)]),
      jwt: new JwtBundle('other.example'),
    });
    source.setFederatedBundle(other());
    expect(await fetch()).toEqual({
      'spiffe://other.example': der(6),
      'spiffe://partner.example': PARTNER_CA,
    });
    source.setFederatedBundle({ ...other(), x509: new X509Bundle('other.example', [der(6, 6)]) });
    expect((await fetch())['spiffe://other.example']).toEqual(der(6, 6));
    source.removeFederatedBundle('partner.example');
    expect(await fetch()).toEqual({ 'spiffe://other.example': der(6, 6) });
  });

  it('unsubscribes when the client cancels', async () => {
    setup(stable);
    source.upsert(entry('a', 1000));
    const c = clientFor();
    const acs = Array.from({ length: 20 }, () => new AbortController());
    const readers = acs.map((ac) =>
      reader(c.fetchX509SVID({}, { ...hdr(1000), signal: ac.signal })),
    );
    await Promise.all(readers.map((r) => r.next()));
    expect(source.listenerCount).toBe(20);
    for (const ac of acs) ac.abort();
    await settle();
    expect(source.listenerCount).toBe(0);
  });
});

describe('FetchX509Bundles and FetchJWTBundles', () => {
  it('stream own + federated bundles keyed spiffe://td and resend only on change', async () => {
    setup();
    source.upsert(entry('a', 1000, { federatesWith: ['partner.example'] }));
    const c = clientFor();
    const ac = new AbortController();
    const x = reader(c.fetchX509Bundles({}, { ...hdr(1000), signal: ac.signal }));
    const j = reader(c.fetchJWTBundles({}, { ...hdr(1000), signal: ac.signal }));
    const x1 = await x.next();
    expect(x1.bundles).toEqual({
      'spiffe://example.org': OWN_CA,
      'spiffe://partner.example': PARTNER_CA,
    });
    const j1 = await j.next();
    expect(Object.keys(j1.bundles).sort()).toEqual([
      'spiffe://example.org',
      'spiffe://partner.example',
    ]);
    const jwks = JSON.parse(Buffer.from(j1.bundles['spiffe://example.org']!).toString('utf8')) as {
      keys: Array<Record<string, unknown>>;
    };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'EC', kid: 'own-1', crv: 'P-256' });
    expect(jwks.keys[0]).not.toHaveProperty('d');
    // an SVID rotation does not change bundles: nothing is sent; a bundle change is
    source.upsert(entry('a', 1000, { federatesWith: ['partner.example'], certChain: [der(4)] }));
    const jwt = new JwtBundle('example.org');
    jwt.addJwtAuthority('own-1', ownSigner.publicKey);
    jwt.addJwtAuthority('own-2', strangerSigner.publicKey);
    source.setBundle({ x509: new X509Bundle('example.org', [OWN_CA]), jwt });
    const j2 = await j.next();
    const keys = (
      JSON.parse(Buffer.from(j2.bundles['spiffe://example.org']!).toString()) as {
        keys: Array<{ kid: string }>;
      }
    ).keys;
    expect(keys.map((k) => k.kid)).toEqual(['own-1', 'own-2']);
    source.setBundle({ x509: new X509Bundle('example.org', [der(6)]), jwt });
    expect((await x.next()).bundles['spiffe://example.org']).toEqual(der(6));
    ac.abort();
    await settle();
  });

  it('deny callers without identity unless allow_unauthenticated_verifiers (own bundle only)', async () => {
    setup();
    source.upsert(entry('a', 1000, { federatesWith: ['partner.example'] }));
    const denied = await errorOf(reader(clientFor().fetchX509Bundles({}, hdr(5))).next());
    expect([denied.code, denied.rawMessage]).toEqual([Code.PermissionDenied, 'no identity issued']);
    const deniedJwt = await errorOf(reader(clientFor().fetchJWTBundles({}, hdr(5))).next());
    expect(deniedJwt.code).toBe(Code.PermissionDenied);
    const open = clientFor({ allowUnauthenticatedVerifiers: true });
    const ac = new AbortController();
    expect(
      Object.keys(
        (await reader(open.fetchX509Bundles({}, { ...hdr(5), signal: ac.signal })).next()).bundles,
      ),
    ).toEqual(['spiffe://example.org']);
    ac.abort();
    await settle();
  });
});

describe('FetchJWTSVID', () => {
  it('checks arguments as SPIRE: audience required, spiffe_id must parse', async () => {
    setup();
    source.upsert(entry('a', 1000));
    const c = clientFor();
    const a = await errorOf(c.fetchJWTSVID({ audience: [] }, hdr(1000)));
    expect([a.code, a.rawMessage]).toEqual([Code.InvalidArgument, 'audience must be specified']);
    const b = await errorOf(c.fetchJWTSVID({ audience: ['x'], spiffeId: 'not-an-id' }, hdr(1000)));
    expect(b.code).toBe(Code.InvalidArgument);
    expect(b.rawMessage).toMatch(/^invalid requested SPIFFE ID: /);
    expect(resolveCalls).toBe(0);
  });

  it('answers one token per identity, or only the requested one, with hints', async () => {
    setup();
    source.upsert(entry('a', 1000, { hint: 'one' }));
    source.upsert(entry('b', 1000));
    source.upsert(entry('c', 2000));
    const c = clientFor();
    const all = await c.fetchJWTSVID({ audience: ['spiffe://example.org/db', 'aud2'] }, hdr(1000));
    expect(all.svids.map((s) => [s.spiffeId, s.hint])).toEqual([
      ['spiffe://example.org/a', 'one'],
      ['spiffe://example.org/b', ''],
    ]);
    expect(mintCalls.map((m) => m.audience)).toEqual([
      ['spiffe://example.org/db', 'aud2'],
      ['spiffe://example.org/db', 'aud2'],
    ]);
    const one = await c.fetchJWTSVID(
      { audience: ['x'], spiffeId: 'spiffe://example.org/b' },
      hdr(1000),
    );
    expect(one.svids.map((s) => s.spiffeId)).toEqual(['spiffe://example.org/b']);
    // another workload's identity is not the caller's
    const denied = await errorOf(
      c.fetchJWTSVID({ audience: ['x'], spiffeId: 'spiffe://example.org/c' }, hdr(1000)),
    );
    expect([denied.code, denied.rawMessage]).toEqual([Code.PermissionDenied, 'no identity issued']);
  });

  it('maps source failures and expired tokens to Unavailable', async () => {
    setup();
    source.upsert(entry('a', 1000));
    const c = clientFor();
    mintFails = new Error('server unreachable');
    const a = await errorOf(c.fetchJWTSVID({ audience: ['x'] }, hdr(1000)));
    expect([a.code, a.rawMessage]).toEqual([
      Code.Unavailable,
      'could not fetch JWT-SVID: server unreachable',
    ]);
    mintFails = undefined;
    mintExpiresAt = new Date(T0);
    const b = await errorOf(c.fetchJWTSVID({ audience: ['x'] }, hdr(1000)));
    expect(b.code).toBe(Code.Unavailable);
    expect(b.rawMessage).toMatch(/has expired/);
  });
});

describe('ValidateJWTSVID', () => {
  async function token(signer: Signer, kid: string, sub: string, aud: string[], claims = {}) {
    return mintJwtSvid({
      signer,
      keyId: kid,
      spiffeId: sub,
      audience: aud,
      expiresAt: new Date(T0 + 300_000),
      issuedAt: new Date(T0),
      claims,
    });
  }

  it('requires audience and svid', async () => {
    setup();
    const c = clientFor();
    const a = await errorOf(c.validateJWTSVID({ audience: '', svid: 'x' }, hdr(1)));
    const b = await errorOf(c.validateJWTSVID({ audience: 'a', svid: '' }, hdr(1)));
    expect([a.code, a.rawMessage]).toEqual([Code.InvalidArgument, 'audience must be specified']);
    expect([b.code, b.rawMessage]).toEqual([Code.InvalidArgument, 'svid must be specified']);
  });

  it('validates an own-domain token and returns its SPIFFE ID and claims (aud as a list)', async () => {
    setup();
    const t = await token(
      ownSigner,
      'own-1',
      'spiffe://example.org/web',
      ['spiffe://example.org/db'],
      {
        team: 'blue',
        nested: { n: 1, ok: true, none: null },
      },
    );
    // a caller without any identity may validate against the own bundle (SPIRE)
    const res = await clientFor().validateJWTSVID(
      { audience: 'spiffe://example.org/db', svid: t },
      hdr(42),
    );
    expect(res.spiffeId).toBe('spiffe://example.org/web');
    expect(res.claims).toEqual({
      sub: 'spiffe://example.org/web',
      aud: ['spiffe://example.org/db'],
      exp: Math.floor((T0 + 300_000) / 1000),
      iat: T0 / 1000,
      team: 'blue',
      nested: { n: 1, ok: true, none: null },
    });
  });

  it('refuses bad tokens with InvalidArgument naming the rule', async () => {
    setup();
    const c = clientFor();
    const wrongAud = await token(ownSigner, 'own-1', 'spiffe://example.org/web', ['other']);
    const a = await errorOf(c.validateJWTSVID({ audience: 'mine', svid: wrongAud }, hdr(1)));
    expect(a.code).toBe(Code.InvalidArgument);
    expect(a.rawMessage).toMatch(/aud/);
    const forged = await token(strangerSigner, 'own-1', 'spiffe://example.org/web', ['mine']);
    expect(
      (await errorOf(c.validateJWTSVID({ audience: 'mine', svid: forged }, hdr(1)))).rawMessage,
    ).toMatch(/signature/);
    const garbage = await errorOf(c.validateJWTSVID({ audience: 'mine', svid: 'a.b' }, hdr(1)));
    expect(garbage.code).toBe(Code.InvalidArgument);
    clock.advance(HOUR);
    const late = await token(ownSigner, 'own-1', 'spiffe://example.org/web', ['mine']);
    expect(
      (await errorOf(c.validateJWTSVID({ audience: 'mine', svid: late }, hdr(1)))).rawMessage,
    ).toMatch(/expired/);
  });

  it('accepts federated tokens only for callers federating with that domain, keeping only allowed claims', async () => {
    setup();
    source.upsert(entry('a', 1000, { federatesWith: ['partner.example'] }));
    const t = await token(partnerSigner, 'partner-1', 'spiffe://partner.example/api', ['mine'], {
      email: 'x@partner.example',
      role: 'admin',
    });
    const c = clientFor({ allowedForeignJwtClaims: ['role'] });
    const ok = await c.validateJWTSVID({ audience: 'mine', svid: t }, hdr(1000));
    expect(ok.spiffeId).toBe('spiffe://partner.example/api');
    expect(Object.keys(ok.claims ?? {}).sort()).toEqual(['aud', 'exp', 'role', 'sub']);
    const stranger = await errorOf(c.validateJWTSVID({ audience: 'mine', svid: t }, hdr(2000)));
    expect(stranger.code).toBe(Code.InvalidArgument);
    expect(stranger.rawMessage).toMatch(/no JWT bundle found for trust domain partner.example/);
  });
});

describe('wire bytes', () => {
  it('match the published field numbers (X509SVID 1..5, federated map 3)', async () => {
    setup();
    source.upsert(entry('a', 1000, { hint: 'h', federatesWith: ['partner.example'] }));
    const first = await reader(clientFor().fetchX509SVID({}, hdr(1000))).next();
    const bytes = toBinary(workload.X509SVIDResponseSchema, first);
    const expected = toBinary(
      workload.X509SVIDResponseSchema,
      create(workload.X509SVIDResponseSchema, {
        svids: [
          {
            spiffeId: 'spiffe://example.org/a',
            x509Svid: Buffer.concat([der(9, 97), der(8)]),
            x509SvidKey: der(7, 97),
            bundle: OWN_CA,
            hint: 'h',
          },
        ],
        federatedBundles: { 'spiffe://partner.example': PARTNER_CA },
      }),
    );
    expect(Buffer.from(bytes).toString('hex')).toBe(Buffer.from(expected).toString('hex'));
    // svids (field 1, length-delimited) come first
    expect(bytes[0]).toBe(0x0a);
  });
});

describe('answer reuse', () => {
  const ctx = (uid: number) => ({
    requestHeader: {
      get: (n: string) =>
        n === WORKLOAD_API_HEADER ? 'true' : n === 'x-test-uid' ? String(uid) : null,
    },
    signal: openCalls.signal,
    values: createContextValues(),
  });

  it('builds and encodes an X509-SVID answer once while the source repeats its array, and rebuilds when it must', async () => {
    setup(true);
    source.upsert(entry('a', 1000, { expiresAt: new Date(T0 + 60_000) }));
    source.upsert(entry('b', 1000));
    const service = createWorkloadApiService({ source, callers, clock });
    const build = async (uid = 1000) => {
      const opened = await service.openX509SvidStream(ctx(uid));
      try {
        return opened.build(clock.nowMs())!;
      } finally {
        opened.release();
      }
    };
    const first = await build();
    expect(await build()).toBe(first);
    expect(first.wakeAtMs).toBe(T0 + 60_000);
    // the own bundle changed: a new answer with it
    source.setBundle({ ...ownBundles(), x509: new X509Bundle('example.org', [der(3)]) });
    const rebuilt = await build();
    expect(rebuilt).not.toBe(first);
    expect(Uint8Array.from(rebuilt.message.svids[0]!.bundle)).toEqual(der(3));
    expect(await build()).toBe(rebuilt);
    // an SVID reached its expiry: not served from the earlier answer
    clock.advance(60_000);
    const later = await build();
    expect(later.message.svids.map((x) => x.spiffeId)).toEqual(['spiffe://example.org/b']);
    // another caller, another answer
    source.upsert(entry('c', 2000));
    expect((await build(2000)).message.svids.map((x) => x.spiffeId)).toEqual([
      'spiffe://example.org/c',
    ]);
  });
});
