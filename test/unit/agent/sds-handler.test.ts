/**
 * The SDS handlers over an in-memory identity source and a fake caller resolver (selectors
 * from a test header), mounted on connect's in-memory router with the project's error
 * mapping: SPIRE's StreamSecrets protocol (versions, nonces, ACK / NACK / stale requests,
 * subscription changes, pushes on change and on expiry), FetchSecrets, DeltaSecrets, and
 * the failures — without sockets or processes.
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import {
  Code,
  ConnectError,
  createClient,
  createRouterTransport,
  type Interceptor,
} from '@connectrpc/connect';
import { afterEach, describe, expect, it } from 'vitest';
import type { SdsConfig } from '../../../src/agent/sds/config.js';
import { createSdsHandlers, registerSdsService } from '../../../src/agent/sds/handler.js';
import type { CallerResolver } from '../../../src/agent/workload-api/caller.js';
import {
  type MemoryIdentityEntry,
  MemoryIdentitySource,
} from '../../../src/agent/workload-api/memory-identity-source.js';
import { ManualClock } from '../../../src/common/clock.js';
import { SpireEdgeError } from '../../../src/common/errors.js';
import { toConnectError } from '../../../src/common/grpc.js';
import type { LogFields, Logger } from '../../../src/common/log.js';
import { decodePem } from '../../../src/common/pem.js';
import { seededRandom } from '../../../src/common/random.js';
import { sdsv3 } from '../../../src/protocol/index.js';
import { JwtBundle } from '../../../src/spiffe/jwt-bundle.js';
import { X509Bundle } from '../../../src/spiffe/x509-bundle.js';

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const HOUR = 3600_000;
const der = (...b: number[]) => Uint8Array.from([0x30, b.length, ...b]);
const OWN_CA = der(1, 1, 1);
const PARTNER_CA = der(2, 2);
const TYPE_URL = sdsv3.SECRET_TYPE_URL;

let clock: ManualClock;
let source: MemoryIdentitySource;
let resolveCalls = 0;
let logLines: Array<{ level: string; msg: string; fields: LogFields }>;

function entry(
  id: string,
  uid: number,
  over: Partial<MemoryIdentityEntry> = {},
): MemoryIdentityEntry {
  return {
    entryId: id,
    entryCreatedAt: 100,
    spiffeId: `spiffe://example.org/${id}`,
    certChain: [der(9, id.charCodeAt(0))],
    privateKeyPkcs8: der(7, id.charCodeAt(0)),
    hint: '',
    expiresAt: new Date(T0 + HOUR),
    federatesWith: [],
    selectors: [{ type: 'unix', value: `uid:${uid}` }],
    ...over,
  };
}

/** Selectors from the `x-test-uid` header; `x-test-fail` makes attestation fail. */
const callerResolver: CallerResolver = {
  async resolve(ctx) {
    resolveCalls++;
    if (ctx.requestHeader.get('x-test-fail') !== null) {
      throw new SpireEdgeError(
        'ERR_WORKLOAD_ATTESTATION_UNAVAILABLE',
        'workload attestation failed',
      );
    }
    const uid = Number(ctx.requestHeader.get('x-test-uid') ?? '0');
    return { pid: 4242, uid, gid: uid, selectors: [{ type: 'unix', value: `uid:${uid}` }] };
  },
};

function logger(): Logger {
  const l: Logger = {
    debug: (msg, fields = {}) => logLines.push({ level: 'debug', msg, fields }),
    info: (msg, fields = {}) => logLines.push({ level: 'info', msg, fields }),
    warn: (msg, fields = {}) => logLines.push({ level: 'warn', msg, fields }),
    error: (msg, fields = {}) => logLines.push({ level: 'error', msg, fields }),
    with: () => l,
  };
  return l;
}

const mapErrors: Interceptor = (next) => async (req) => {
  try {
    const res = await next(req);
    if (!res.stream) return res;
    const inner = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* inner;
        } catch (err) {
          throw toConnectError(err);
        }
      })(),
    };
  } catch (err) {
    throw toConnectError(err);
  }
};

function clientFor(config?: SdsConfig) {
  const transport = createRouterTransport(
    (router) =>
      registerSdsService(router, {
        source,
        callerResolver,
        clock,
        random: seededRandom(7),
        log: logger(),
        ...(config === undefined ? {} : { config }),
      }),
    { router: { interceptors: [mapErrors] } },
  );
  return createClient(sdsv3.SecretDiscoveryService, transport);
}

let openCalls = new AbortController();
const opts = (uid: number, extra: Record<string, string> = {}) => ({
  headers: { 'x-test-uid': String(uid), ...extra },
  signal: openCalls.signal,
});

type RequestInit = MessageInitShape<typeof sdsv3.DiscoveryRequestSchema>;

/** A client-side StreamSecrets call: push requests, read responses as they arrive. */
function openStream(c: ReturnType<typeof clientFor>, uid: number, extra = {}) {
  const queue: RequestInit[] = [];
  let ended = false;
  let wakeWriter: (() => void) | undefined;
  const requests = (async function* () {
    for (;;) {
      const r = queue.shift();
      if (r !== undefined) {
        yield create(sdsv3.DiscoveryRequestSchema, r);
        continue;
      }
      if (ended) return;
      await new Promise<void>((resolve) => {
        wakeWriter = resolve;
      });
    }
  })();
  const responses: sdsv3.DiscoveryResponse[] = [];
  const state: { error?: ConnectError; done: boolean } = { done: false };
  let wakeReader: (() => void) | undefined;
  void (async () => {
    try {
      for await (const r of c.streamSecrets(requests, opts(uid, extra))) {
        responses.push(r);
        wakeReader?.();
      }
    } catch (err) {
      state.error = ConnectError.from(err);
    }
    state.done = true;
    wakeReader?.();
  })();
  return {
    responses,
    state,
    send(r: RequestInit) {
      queue.push(r);
      wakeWriter?.();
    },
    halfClose() {
      ended = true;
      wakeWriter?.();
    },
    /** The n-th response (0-based), waiting for it. */
    async nth(n: number): Promise<sdsv3.DiscoveryResponse> {
      while (responses.length <= n) {
        if (state.done) throw state.error ?? new Error('stream ended');
        await new Promise<void>((resolve) => {
          wakeReader = resolve;
        });
      }
      return responses[n]!;
    },
    async ended(): Promise<ConnectError | undefined> {
      while (!state.done) {
        await new Promise<void>((resolve) => {
          wakeReader = resolve;
        });
      }
      return state.error;
    },
  };
}

/** Lets pending microtasks and immediate callbacks run. */
const settle = () => new Promise((r) => setTimeout(r, 20));

async function errorOf(p: Promise<unknown> | (() => Promise<unknown>)): Promise<ConnectError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error('expected a failure');
}

function secrets(r: sdsv3.DiscoveryResponse): sdsv3.Secret[] {
  return r.resources.map((a) => {
    expect(a.typeUrl).toBe(TYPE_URL);
    return anyUnpack(a, sdsv3.SecretSchema)!;
  });
}

/** `[name, kind, hex of the first DER in it]` per resource. */
function summary(r: sdsv3.DiscoveryResponse): Array<[string, string, string]> {
  return secrets(r).map((s) => {
    const pem = (ds: sdsv3.DataSource | undefined) =>
      ds?.specifier.case === 'inlineBytes'
        ? Buffer.from(decodePem(Buffer.from(ds.specifier.value).toString())[0]?.der ?? []).toString(
            'hex',
          )
        : '';
    if (s.type.case === 'tlsCertificate')
      return [s.name, 'tls', pem(s.type.value.certificateChain)];
    if (s.type.case === 'validationContext') {
      const v = s.type.value;
      if (v.customValidatorConfig !== undefined) {
        const cfg = anyUnpack(
          v.customValidatorConfig.typedConfig!,
          sdsv3.SPIFFECertValidatorConfigSchema,
        )!;
        return [
          s.name,
          `spiffe:${cfg.trustDomains.map((t) => t.name).join(',')}`,
          pem(cfg.trustDomains[0]?.trustBundle),
        ];
      }
      return [s.name, 'trusted_ca', pem(v.trustedCa)];
    }
    return [s.name, 'other', ''];
  });
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function setup(): void {
  openCalls = new AbortController();
  clock = new ManualClock(T0);
  resolveCalls = 0;
  logLines = [];
  source = new MemoryIdentitySource({
    bundle: { x509: new X509Bundle('example.org', [OWN_CA]), jwt: new JwtBundle('example.org') },
  });
  source.setFederatedBundle({
    x509: new X509Bundle('partner.example', [PARTNER_CA]),
    jwt: new JwtBundle('partner.example'),
  });
}

afterEach(async () => {
  openCalls.abort();
  await settle();
  expect(source.listenerCount).toBe(0);
});

describe('StreamSecrets', () => {
  it('answers the first request at once, version 1 with a nonce, echoing the type URL', async () => {
    setup();
    source.upsert(entry('web', 1000));
    const s = openStream(clientFor(), 1000);
    s.send({ typeUrl: TYPE_URL, resourceNames: ['spiffe://example.org/web', 'ROOTCA'] });
    const r = await s.nth(0);
    expect(r.versionInfo).toBe('1');
    expect(r.nonce).toMatch(/^[0-9a-f]{16}$/);
    expect(r.typeUrl).toBe(TYPE_URL);
    expect(summary(r)).toEqual([
      ['ROOTCA', 'spiffe:example.org', hex(OWN_CA)],
      ['spiffe://example.org/web', 'tls', hex(der(9, 119))],
    ]);
    expect(resolveCalls).toBe(1);
  });

  it('an ACK gets no answer; a change of the content gets a new version and nonce; other changes nothing', async () => {
    setup();
    source.upsert(entry('web', 1000));
    const s = openStream(clientFor(), 1000);
    s.send({ typeUrl: TYPE_URL, resourceNames: ['default'] });
    const r1 = await s.nth(0);
    s.send({
      typeUrl: TYPE_URL,
      resourceNames: ['default'],
      versionInfo: r1.versionInfo,
      responseNonce: r1.nonce,
    });
    await settle();
    expect(s.responses).toHaveLength(1);
    // unrelated: another workload's entry, a bundle the caller does not federate with
    source.upsert(entry('db', 2000));
    source.setFederatedBundle({
      x509: new X509Bundle('partner.example', [der(5)]),
      jwt: new JwtBundle('partner.example'),
    });
    await settle();
    expect(s.responses).toHaveLength(1);
    // the SVID rotates
    source.upsert(entry('web', 1000, { certChain: [der(9, 9, 9)] }));
    const r2 = await s.nth(1);
    expect(r2.versionInfo).toBe('2');
    expect(r2.nonce).not.toBe(r1.nonce);
    expect(summary(r2)).toEqual([['default', 'tls', hex(der(9, 9, 9))]]);
    // an identical state is not resent
    source.upsert(entry('web', 1000, { certChain: [der(9, 9, 9)] }));
    await settle();
    expect(s.responses).toHaveLength(2);
    expect(logLines.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('a NACK is logged and nothing is resent until the content changes', async () => {
    setup();
    source.upsert(entry('web', 1000));
    const s = openStream(clientFor(), 1000);
    s.send({ typeUrl: TYPE_URL, resourceNames: ['default'] });
    const r1 = await s.nth(0);
    s.send({
      typeUrl: TYPE_URL,
      resourceNames: ['default'],
      versionInfo: '1',
      responseNonce: r1.nonce,
    });
    source.upsert(entry('web', 1000, { certChain: [der(9, 2)] }));
    const r2 = await s.nth(1);
    // the client could not apply version 2: it answers with version 1 and an error
    s.send({
      typeUrl: TYPE_URL,
      resourceNames: ['default'],
      versionInfo: '1',
      responseNonce: r2.nonce,
      errorDetail: { code: 13, message: 'Failed to load certificate chain' },
    });
    await settle();
    expect(s.responses).toHaveLength(2);
    const errors = logLines.filter((l) => l.level === 'error').map((l) => [l.msg, l.fields]);
    expect(errors).toEqual([
      [
        'envoy reported errors applying secrets',
        { resource_names: ['default'], error: 'Failed to load certificate chain' },
      ],
      ['client rejected expected version and rolled back', { version_info: '1', expect: '2' }],
    ]);
    source.upsert(entry('web', 1000, { certChain: [der(9, 3)] }));
    const r3 = await s.nth(2);
    expect(r3.versionInfo).toBe('3');
    expect(summary(r3)[0]?.[2]).toBe(hex(der(9, 3)));
  });

  it('a request with a stale nonce is ignored, even when it changes the names', async () => {
    setup();
    source.upsert(entry('web', 1000));
    const s = openStream(clientFor(), 1000);
    s.send({ typeUrl: TYPE_URL, resourceNames: ['default'] });
    const r1 = await s.nth(0);
    s.send({
      typeUrl: TYPE_URL,
      resourceNames: ['ROOTCA'],
      versionInfo: '1',
      responseNonce: 'stale',
    });
    await settle();
    expect(s.responses).toHaveLength(1);
    expect(logLines.some((l) => l.msg === 'received unexpected nonce; ignoring request')).toBe(
      true,
    );
    // the same with the right nonce is a subscription change: answered with the new names
    s.send({
      typeUrl: TYPE_URL,
      resourceNames: ['ROOTCA'],
      versionInfo: '1',
      responseNonce: r1.nonce,
    });
    const r2 = await s.nth(1);
    expect(r2.versionInfo).toBe('2');
    expect(summary(r2).map(([n]) => n)).toEqual(['ROOTCA']);
    // a reordered list is the same subscription
    s.send({
      typeUrl: TYPE_URL,
      resourceNames: ['ROOTCA'],
      versionInfo: '2',
      responseNonce: r2.nonce,
    });
    await settle();
    expect(s.responses).toHaveLength(2);
  });

  it('a subscription change answers even when the content is the same, keeping the version', async () => {
    setup();
    source.upsert(entry('web', 1000));
    const s = openStream(clientFor(), 1000);
    s.send({ typeUrl: TYPE_URL, resourceNames: ['ROOTCA', 'default'] });
    const r1 = await s.nth(0);
    s.send({
      typeUrl: TYPE_URL,
      resourceNames: ['default', 'ROOTCA', ''],
      versionInfo: '1',
      responseNonce: r1.nonce,
    });
    const r2 = await s.nth(1);
    expect(r2.versionInfo).toBe('1');
    expect(r2.nonce).not.toBe(r1.nonce);
    expect(summary(r2)).toEqual(summary(r1));
  });

  it('no names: every bundle and identity; pushes when a federated bundle or an entry changes', async () => {
    setup();
    source.upsert(entry('web', 1000, { federatesWith: ['partner.example'] }));
    const s = openStream(clientFor(), 1000);
    s.send({ typeUrl: TYPE_URL });
    expect(summary(await s.nth(0))).toEqual([
      ['spiffe://example.org', 'spiffe:example.org', hex(OWN_CA)],
      ['spiffe://partner.example', 'spiffe:partner.example', hex(PARTNER_CA)],
      ['spiffe://example.org/web', 'tls', hex(der(9, 119))],
    ]);
    source.setFederatedBundle({
      x509: new X509Bundle('partner.example', [der(6, 6)]),
      jwt: new JwtBundle('partner.example'),
    });
    expect(summary(await s.nth(1))[1]).toEqual([
      'spiffe://partner.example',
      'spiffe:partner.example',
      hex(der(6, 6)),
    ]);
    source.upsert(entry('api', 1000));
    expect(summary(await s.nth(2)).map(([n]) => n)).toEqual([
      'spiffe://example.org',
      'spiffe://partner.example',
      'spiffe://example.org/api',
      'spiffe://example.org/web',
    ]);
    expect((await s.nth(2)).versionInfo).toBe('3');
  });

  it('an SVID reaching its expiry is withdrawn at that instant; a named one ends the stream', async () => {
    setup();
    source.upsert(entry('web', 1000));
    source.upsert(entry('old', 1000, { expiresAt: new Date(T0 + 60_000) }));
    const all = openStream(clientFor(), 1000);
    all.send({ typeUrl: TYPE_URL });
    expect(summary(await all.nth(0)).map(([n]) => n)).toContain('spiffe://example.org/old');
    const named = openStream(clientFor(), 1000);
    named.send({ typeUrl: TYPE_URL, resourceNames: ['spiffe://example.org/old'] });
    await named.nth(0);
    await settle();
    clock.advance(59_999);
    await settle();
    expect(all.responses).toHaveLength(1);
    clock.advance(1);
    const r2 = await all.nth(1);
    expect(summary(r2).map(([n]) => n)).toEqual([
      'spiffe://example.org',
      'spiffe://example.org/web',
    ]);
    const err = await named.ended();
    expect([err?.code, err?.rawMessage]).toEqual([
      Code.InvalidArgument,
      'workload is not authorized for the requested identities ["spiffe://example.org/old"]',
    ]);
  });

  it("names the caller does not hold end the stream with SPIRE's InvalidArgument", async () => {
    setup();
    source.upsert(entry('web', 1000));
    source.upsert(entry('db', 2000));
    const s = openStream(clientFor(), 1000);
    s.send({ typeUrl: TYPE_URL, resourceNames: ['spiffe://example.org/db', 'default'] });
    const err = await s.ended();
    expect([err?.code, err?.rawMessage]).toEqual([
      Code.InvalidArgument,
      'workload is not authorized for the requested identities ["spiffe://example.org/db"]',
    ]);
    expect(s.responses).toHaveLength(0);
    expect(logLines.some((l) => l.msg === 'error building stream secrets response')).toBe(true);
  });

  it('the node picks the encoding: old Envoy or metadata override get trusted_ca; later requests keep the node', async () => {
    setup();
    source.upsert(entry('web', 1000));
    const c = clientFor();
    const old = openStream(c, 1000);
    old.send({
      typeUrl: TYPE_URL,
      resourceNames: ['ROOTCA'],
      node: {
        userAgentName: 'envoy',
        userAgentVersionType: {
          case: 'userAgentBuildVersion',
          value: { version: { majorNumber: 1, minorNumber: 17 } },
        },
      },
    });
    expect(summary(await old.nth(0))).toEqual([['ROOTCA', 'trusted_ca', hex(OWN_CA)]]);
    // ALL needs the validator: Internal, SPIRE's message
    const oldAll = openStream(c, 1000);
    oldAll.send({
      typeUrl: TYPE_URL,
      resourceNames: ['ALL'],
      node: {
        userAgentVersionType: {
          case: 'userAgentBuildVersion',
          value: { version: { majorNumber: 1, minorNumber: 16 } },
        },
      },
    });
    const err = await oldAll.ended();
    expect([err?.code, err?.rawMessage]).toEqual([
      Code.Internal,
      'unable to use "SPIFFE validator" on Envoy below 1.17',
    ]);

    const meta = openStream(c, 1000);
    meta.send({
      typeUrl: TYPE_URL,
      resourceNames: ['ROOTCA'],
      node: { id: 'envoy-1', metadata: { disable_spiffe_cert_validation: 'true' } },
    });
    const m1 = await meta.nth(0);
    expect(summary(m1)).toEqual([['ROOTCA', 'trusted_ca', hex(OWN_CA)]]);
    // the next request omits the node (Envoy's set_node_on_first_message_only): still trusted_ca
    meta.send({
      typeUrl: TYPE_URL,
      resourceNames: ['ROOTCA', 'spiffe://example.org'],
      versionInfo: m1.versionInfo,
      responseNonce: m1.nonce,
    });
    expect(summary(await meta.nth(1)).map(([, k]) => k)).toEqual(['trusted_ca', 'trusted_ca']);
  });

  it('disableSpiffeCertValidation and custom names from the config', async () => {
    setup();
    source.upsert(entry('web', 1000));
    const s = openStream(
      clientFor({
        disableSpiffeCertValidation: true,
        defaultBundleName: 'ca',
        defaultSvidName: 'me',
      }),
      1000,
    );
    s.send({ typeUrl: TYPE_URL, resourceNames: ['ca', 'me'] });
    expect(summary(await s.nth(0))).toEqual([
      ['ca', 'trusted_ca', hex(OWN_CA)],
      ['me', 'tls', hex(der(9, 119))],
    ]);
  });

  it('a request without type_url gets the Secret type URL back', async () => {
    setup();
    source.upsert(entry('web', 1000));
    const s = openStream(clientFor(), 1000);
    s.send({ resourceNames: ['default'] });
    expect((await s.nth(0)).typeUrl).toBe(TYPE_URL);
  });

  it('changes before the first request are answered by it, not before', async () => {
    setup();
    const s = openStream(clientFor(), 1000);
    await settle();
    source.upsert(entry('web', 1000));
    await settle();
    expect(s.responses).toHaveLength(0);
    s.send({ typeUrl: TYPE_URL, resourceNames: ['default'] });
    const r = await s.nth(0);
    expect([r.versionInfo, summary(r)[0]?.[0]]).toEqual(['1', 'default']);
  });

  it("the client's half-close ends the stream with OK and releases the subscription", async () => {
    setup();
    source.upsert(entry('web', 1000));
    const s = openStream(clientFor(), 1000);
    s.send({ typeUrl: TYPE_URL, resourceNames: ['default'] });
    await s.nth(0);
    expect(source.listenerCount).toBe(1);
    s.halfClose();
    expect(await s.ended()).toBeUndefined();
    expect(source.listenerCount).toBe(0);
  });

  it('cancelling the call releases the subscription at once', async () => {
    setup();
    source.upsert(entry('web', 1000));
    const c = clientFor();
    const s = openStream(c, 1000);
    s.send({ typeUrl: TYPE_URL, resourceNames: ['default'] });
    await s.nth(0);
    const before = source.listenerCount;
    openCalls.abort();
    await settle();
    expect(before).toBe(1);
    expect(source.listenerCount).toBe(0);
  });

  it('needs no workload.spiffe.io header; Unavailable until ready and when attestation fails', async () => {
    setup();
    source.upsert(entry('web', 1000));
    source.setReady(false);
    const c = clientFor();
    const s1 = openStream(c, 1000);
    s1.send({ resourceNames: ['default'] });
    const e1 = await s1.ended();
    expect([e1?.code, e1?.rawMessage]).toEqual([Code.Unavailable, 'workload api is not ready']);
    const e2 = await errorOf(c.fetchSecrets({ resourceNames: ['default'] }, opts(1000)));
    expect([e2.code, e2.rawMessage]).toEqual([Code.Unavailable, 'workload api is not ready']);
    expect(resolveCalls).toBe(0);
    source.setReady(true);
    const s2 = openStream(c, 1000, { 'x-test-fail': '1' });
    s2.send({ resourceNames: ['default'] });
    const e3 = await s2.ended();
    expect([e3?.code, e3?.rawMessage]).toEqual([Code.Unavailable, 'workload attestation failed']);
  });
});

describe('FetchSecrets and DeltaSecrets', () => {
  it('FetchSecrets answers the same resources with empty version and nonce', async () => {
    setup();
    source.upsert(entry('web', 1000, { federatesWith: ['partner.example'] }));
    const c = clientFor();
    const r = await c.fetchSecrets(
      { typeUrl: TYPE_URL, resourceNames: ['ALL', 'default'] },
      opts(1000),
    );
    expect([r.versionInfo, r.nonce, r.typeUrl]).toEqual(['', '', TYPE_URL]);
    expect(summary(r)).toEqual([
      ['ALL', 'spiffe:example.org,partner.example', hex(OWN_CA)],
      ['default', 'tls', hex(der(9, 119))],
    ]);
    const err = await errorOf(
      c.fetchSecrets({ resourceNames: ['spiffe://example.org/web'] }, opts(5)),
    );
    expect([err.code, err.rawMessage]).toEqual([
      Code.InvalidArgument,
      'workload is not authorized for the requested identities ["spiffe://example.org/web"]',
    ]);
    // without names and without identities: the own bundle only, as SPIRE
    const bare = await c.fetchSecrets({}, opts(5));
    expect(summary(bare).map(([n]) => n)).toEqual(['spiffe://example.org']);
  });

  it('DeltaSecrets is Unimplemented, as in SPIRE', async () => {
    setup();
    const c = clientFor();
    const err = await errorOf(async () => {
      for await (const _ of c.deltaSecrets(
        (async function* () {
          yield create(sdsv3.DeltaDiscoveryRequestSchema, { typeUrl: TYPE_URL });
        })(),
        opts(1000),
      )) {
        // nothing is expected
      }
    });
    expect([err.code, err.rawMessage]).toEqual([Code.Unimplemented, 'Method is not implemented']);
  });

  it('createSdsHandlers checks its arguments', () => {
    setup();
    expect(() => createSdsHandlers({ source: undefined as never, callerResolver })).toThrow(
      TypeError,
    );
    expect(() => createSdsHandlers({ source, callerResolver: {} as never })).toThrow(
      /callerResolver is required/,
    );
    expect(() =>
      createSdsHandlers({ source, callerResolver, config: { defaultSvidName: '' } }),
    ).toThrow(/defaultSvidName must be a non-empty string/);
  });
});
