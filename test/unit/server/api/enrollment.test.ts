/**
 * Device enrollment services, called directly over a real SQLite datastore (temp dir) with a
 * manual clock: the admin ProvisioningToken service (create/list/revoke, only hashes stored,
 * tokens never logged) and EnrollDevice (EK evidence checks before the token is spent, single
 * use, expiry, the shared alias rules, alias mismatch, no tpm attestor, failure rate limit, one
 * winner when two devices race for one alias). Real processes: test/e2e/tpm-enroll-network.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import {
  createContextValues,
  createHandlerContext,
  type HandlerContext,
} from '@connectrpc/connect';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../src/common/clock.js';
import { type GrpcPeer, kGrpcPeer } from '../../../../src/common/grpc.js';
import { enrollmentv1 } from '../../../../src/protocol/index.js';
import {
  createEnrollmentService,
  createProvisioningTokenService,
  type EnrollmentService,
  type EnrollmentServiceOptions,
  PROVISIONING_TOKEN_PATTERN,
  type ProvisioningTokenService,
  TOKEN_REFUSED_MESSAGE,
} from '../../../../src/server/api/enrollment/index.js';
import type { ServerContext } from '../../../../src/server/context.js';
import { EkCaPool, marshalTpm2bPublic, spkiFromTpmtPublic } from '../../../../src/tpm/index.js';
import { makeCa, makeEkCert, type TestCa } from '../../tpm/support/ek-ca.js';
import { makeEk } from '../../tpm/support/soft-tpm.js';
import {
  type AdminFixture,
  handlerContext,
  parsedLogs,
  rejection,
  startAdminFixture,
} from './admin-support.js';

const ALIAS = 'spiffe://example.org/gw/1';
const SERVER_ID = 'spiffe://example.org/spire/server';
const Outcome = enrollmentv1.EnrollOutcome;

/** A soft EK with its TPM2B_PUBLIC, pub_hash and a certificate from `ca`. */
function device(ca: TestCa) {
  const ek = makeEk('ecc', 'P-256');
  const spki = spkiFromTpmtPublic(ek.public);
  const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  return {
    ekPublic: marshalTpm2bPublic(ek.public),
    hash: createHash('sha256').update(spki).digest('hex'),
    cert: makeEkCert(ca, key),
  };
}

const ca = makeCa('Test EK Root', { kind: 'ec' });
const otherCa = makeCa('Unknown EK Root', { kind: 'ec' });
const devA = device(ca);
const devB = device(ca);

function peerContext(address = '192.0.2.7'): HandlerContext {
  const m = enrollmentv1.Enrollment.methods[0]!;
  const values = createContextValues();
  values.set(kGrpcPeer, { kind: 'tls', remoteAddress: address } as unknown as GrpcPeer);
  return createHandlerContext({
    service: enrollmentv1.Enrollment,
    method: m,
    protocolName: 'grpc',
    requestMethod: 'POST',
    url: 'https://localhost/spire_edge.enrollment.v1.Enrollment/EnrollDevice',
    contextValues: values,
  });
}

let fx: AdminFixture;
let clock: ManualClock;
let context: ServerContext;
let tokens: ProvisioningTokenService;

beforeEach(async () => {
  fx = await startAdminFixture();
  clock = new ManualClock();
  context = { ...fx.context, clock };
  tokens = createProvisioningTokenService(context);
});

afterEach(async () => {
  await fx.close();
});

async function newToken(spiffeId = ALIAS, extra: { ttl?: number; replace?: boolean } = {}) {
  const r = create(
    enrollmentv1.CreateProvisioningTokenResponseSchema,
    await tokens.createProvisioningToken(
      create(enrollmentv1.CreateProvisioningTokenRequestSchema, { spiffeId, ...extra }),
      handlerContext(enrollmentv1.ProvisioningToken, 'createProvisioningToken'),
    ),
  );
  return r.value;
}

function service(
  o: Omit<Partial<EnrollmentServiceOptions>, 'tpm'> & {
    tpm?: EnrollmentServiceOptions['tpm'] | null;
  } = {},
): EnrollmentService {
  const { tpm, ...rest } = o;
  const settings =
    tpm === undefined ? { ekCaPool: EkCaPool.from({ roots: [ca.der] }), requireEkCert: true } : tpm;
  return createEnrollmentService({
    context,
    ...(settings === null ? {} : { tpm: settings }),
    disableRateLimit: true,
    ...rest,
  });
}

function enroll(
  svc: EnrollmentService,
  req: { token: string; ekPublic?: Uint8Array; ekCert?: Uint8Array; spiffeId?: string },
  ctx = peerContext(),
) {
  return svc.enrollDevice(
    create(enrollmentv1.EnrollDeviceRequestSchema, {
      ekPublic: devA.ekPublic,
      ekCert: devA.cert,
      ...req,
    }),
    ctx,
  ) as Promise<enrollmentv1.EnrollDeviceResponse>;
}

async function aliasEntries() {
  return (await fx.ds.listEntries({ bySpiffeId: ALIAS })).items;
}

describe('ProvisioningToken admin service', () => {
  it('creates a 256-bit base64url token bound to the alias, storing only its hash', async () => {
    const r = create(
      enrollmentv1.CreateProvisioningTokenResponseSchema,
      await tokens.createProvisioningToken(
        create(enrollmentv1.CreateProvisioningTokenRequestSchema, {
          spiffeId: ALIAS,
          replace: true,
        }),
        handlerContext(enrollmentv1.ProvisioningToken, 'createProvisioningToken'),
      ),
    );
    expect(r.value).toMatch(PROVISIONING_TOKEN_PATTERN);
    expect(Buffer.from(r.value, 'base64url')).toHaveLength(32);
    expect(r).toMatchObject({ spiffeId: ALIAS, replace: true });
    expect(r.expiresAt).toBe(BigInt(clock.nowMs() / 1000 + 600));
    const stored = await fx.ds.listProvisioningTokens();
    expect(stored).toEqual([
      expect.objectContaining({
        tokenHash: createHash('sha256').update(r.value).digest('hex'),
        spiffeId: ALIAS,
        replace: true,
      }),
    ]);
    expect(fx.logs.join('\n')).not.toContain(r.value);
    const created = parsedLogs(fx.logs).find((l) => l.msg === 'provisioning token created');
    expect(created).toMatchObject({ spiffe_id: ALIAS, caller_uid: 0, replace: true });
  });

  for (const [spiffeId, ttl, message] of [
    ['', 0, 'invalid spiffe_id: a node alias SPIFFE ID is required'],
    ['gw/1', 0, /^invalid spiffe_id: /],
    ['spiffe://other.org/gw/1', 0, /is not a member of trust domain "example.org"/],
    ['spiffe://example.org/spire/agent/x', 0, /path is in the reserved namespace/],
    ['spiffe://example.org', 0, /path is empty/],
    [ALIAS, -5, 'invalid ttl: must be a positive number of seconds'],
  ] as const) {
    it(`refuses spiffe_id ${JSON.stringify(spiffeId)} ttl ${ttl} with InvalidArgument`, async () => {
      const err = await rejection(() =>
        tokens.createProvisioningToken(
          create(enrollmentv1.CreateProvisioningTokenRequestSchema, { spiffeId, ttl }),
          handlerContext(enrollmentv1.ProvisioningToken, 'createProvisioningToken'),
        ),
      );
      expect(err.code).toBe('ERR_API_INVALID_ARGUMENT');
      expect(err.message).toMatch(message);
      expect(await fx.ds.listProvisioningTokens()).toEqual([]);
    });
  }

  it('lists unexpired tokens without their values, filters by alias, and revokes by alias', async () => {
    const t1 = await newToken(ALIAS, { ttl: 60 });
    await newToken('spiffe://example.org/gw/2', { ttl: 3600, replace: true });
    await newToken(ALIAS, { ttl: 10 });
    clock.advance(10_000); // the 10 s token has expired
    const list = create(
      enrollmentv1.ListProvisioningTokensResponseSchema,
      await tokens.listProvisioningTokens(
        create(enrollmentv1.ListProvisioningTokensRequestSchema, {}),
        handlerContext(enrollmentv1.ProvisioningToken, 'listProvisioningTokens'),
      ),
    );
    expect(list.tokens.map((t) => [t.spiffeId, t.replace])).toEqual([
      [ALIAS, false],
      ['spiffe://example.org/gw/2', true],
    ]);
    expect(list.tokens[0]!.fingerprint).toBe(
      createHash('sha256').update(t1).digest('hex').slice(0, 16),
    );
    expect(JSON.stringify(list, (_k, v) => (typeof v === 'bigint' ? String(v) : v))).not.toContain(
      t1,
    );
    const only = create(
      enrollmentv1.ListProvisioningTokensResponseSchema,
      await tokens.listProvisioningTokens(
        create(enrollmentv1.ListProvisioningTokensRequestSchema, { bySpiffeId: ALIAS }),
        handlerContext(enrollmentv1.ProvisioningToken, 'listProvisioningTokens'),
      ),
    );
    expect(only.tokens).toHaveLength(1);
    const revoked = create(
      enrollmentv1.RevokeProvisioningTokensResponseSchema,
      await tokens.revokeProvisioningTokens(
        create(enrollmentv1.RevokeProvisioningTokensRequestSchema, { spiffeId: ALIAS }),
        handlerContext(enrollmentv1.ProvisioningToken, 'revokeProvisioningTokens'),
      ),
    );
    expect(revoked.revoked).toBe(2); // the live one and the expired one
    const err = await rejection(() => enroll(service(), { token: t1 }));
    expect(err).toMatchObject({
      code: 'ERR_ENROLL_PERMISSION_DENIED',
      message: TOKEN_REFUSED_MESSAGE,
    });
  });
});

describe('EnrollDevice', () => {
  it('creates the node alias entry, logs it without the token, and refuses the token a second time', async () => {
    const token = await newToken();
    const svc = service();
    const r = await enroll(svc, { token, spiffeId: ALIAS });
    expect(r).toMatchObject({
      spiffeId: ALIAS,
      pubHash: devA.hash,
      outcome: Outcome.CREATED,
      previousPubHashes: [],
      otherAliases: [],
    });
    const [entry, ...more] = await aliasEntries();
    expect(more).toEqual([]);
    expect(entry).toMatchObject({
      id: r.entryId,
      parentId: SERVER_ID,
      selectors: [{ type: 'tpm', value: `pub_hash:${devA.hash}` }],
    });
    const line = parsedLogs(fx.logs).find((l) => l.msg === 'device enrolled');
    expect(line).toMatchObject({
      spiffe_id: ALIAS,
      pub_hash: devA.hash,
      outcome: 'created',
      entry_id: r.entryId,
      peer_address: '192.0.2.7',
      ek_certificate: true,
    });
    const again = await rejection(() => enroll(svc, { token }));
    expect(again).toMatchObject({
      code: 'ERR_ENROLL_PERMISSION_DENIED',
      message: TOKEN_REFUSED_MESSAGE,
    });
    expect(fx.logs.join('\n')).not.toContain(token);
  });

  it('gives unknown, expired and malformed tokens the same refusal', async () => {
    const svc = service();
    const expired = await newToken(ALIAS, { ttl: 5 });
    clock.advance(5_000);
    for (const token of [expired, 'A'.repeat(43), 'not a token', 'x'.repeat(300)]) {
      const err = await rejection(() => enroll(svc, { token }));
      expect(err).toMatchObject({
        code: 'ERR_ENROLL_PERMISSION_DENIED',
        message: TOKEN_REFUSED_MESSAGE,
      });
    }
    expect(await aliasEntries()).toEqual([]);
  });

  it('is idempotent for the same device, refuses another device, and rebinds with a replace token', async () => {
    const svc = service();
    const first = await enroll(svc, { token: await newToken() });
    const same = await enroll(svc, { token: await newToken() });
    expect(same).toMatchObject({ outcome: Outcome.ALREADY_REGISTERED, entryId: first.entryId });

    const conflictToken = await newToken();
    const conflict = await rejection(() =>
      enroll(svc, { token: conflictToken, ekPublic: devB.ekPublic, ekCert: devB.cert }),
    );
    expect(conflict.code).toBe('ERR_ENROLL_ALIAS_CONFLICT');
    expect(conflict.message).toBe(
      `${ALIAS} is already bound to another device (pub_hash ${devA.hash}, entry ${first.entryId}): generate a provisioning token with -replace to rebind it (this token is now used)`,
    );
    // The refused attempt spent its token.
    const reuse = await rejection(() =>
      enroll(svc, { token: conflictToken, ekPublic: devB.ekPublic, ekCert: devB.cert }),
    );
    expect(reuse.message).toBe(TOKEN_REFUSED_MESSAGE);

    const replaced = await enroll(svc, {
      token: await newToken(ALIAS, { replace: true }),
      ekPublic: devB.ekPublic,
      ekCert: devB.cert,
    });
    expect(replaced).toMatchObject({
      outcome: Outcome.REPLACED,
      entryId: first.entryId,
      pubHash: devB.hash,
      previousPubHashes: [devA.hash],
    });
    const entries = await aliasEntries();
    expect(entries.map((e) => [e.id, e.selectors])).toEqual([
      [first.entryId, [{ type: 'tpm', value: `pub_hash:${devB.hash}` }]],
    ]);

    // Device B under a second alias: created, naming the first alias.
    const second = await enroll(svc, {
      token: await newToken('spiffe://example.org/gw/2'),
      ekPublic: devB.ekPublic,
      ekCert: devB.cert,
    });
    expect(second).toMatchObject({ outcome: Outcome.CREATED, otherAliases: [ALIAS] });
  });

  it('refuses an alias other than the token’s, naming both (the token is spent)', async () => {
    const svc = service();
    const token = await newToken();
    const err = await rejection(() =>
      enroll(svc, { token, spiffeId: 'spiffe://example.org/gw/9' }),
    );
    expect(err).toMatchObject({
      code: 'ERR_ENROLL_PERMISSION_DENIED',
      message: `the provisioning token is for ${ALIAS}, not spiffe://example.org/gw/9 (this token is now used)`,
    });
    expect((await rejection(() => enroll(svc, { token }))).message).toBe(TOKEN_REFUSED_MESSAGE);
  });

  it('checks the EK evidence before spending the token', async () => {
    const svc = service();
    const token = await newToken();
    const foreign = device(otherCa);
    const cases: Array<[Parameters<typeof enroll>[1], string, RegExp]> = [
      [
        { token, ekCert: devB.cert },
        'ERR_ENROLL_PERMISSION_DENIED',
        /^EK certificate does not certify the EK public area$/,
      ],
      [
        { token, ekPublic: foreign.ekPublic, ekCert: foreign.cert },
        'ERR_ENROLL_PERMISSION_DENIED',
        /^EK certificate does not chain to a configured EK CA \(ek_ca_path\): /,
      ],
      [
        { token, ekCert: new Uint8Array([0x30, 0x03, 1, 2, 3]) },
        'ERR_ENROLL_PERMISSION_DENIED',
        /^EK certificate is not a TCG EK certificate: /,
      ],
      [
        { token, ekCert: new Uint8Array() },
        'ERR_ENROLL_PERMISSION_DENIED',
        /^an EK certificate is required \(require_ek_cert = true\) and none was sent$/,
      ],
      [
        { token, ekPublic: new Uint8Array([0, 2, 1, 2]) },
        'ERR_ENROLL_INVALID_ARGUMENT',
        /^invalid ek_public: not an RSA or ECC TPM2B_PUBLIC: /,
      ],
      [
        { token, ekPublic: new Uint8Array() },
        'ERR_ENROLL_INVALID_ARGUMENT',
        /^invalid ek_public: the EK public area \(TPM2B_PUBLIC\) is required$/,
      ],
      [{ token, spiffeId: 'gw/1' }, 'ERR_ENROLL_INVALID_ARGUMENT', /^invalid spiffe_id: /],
      [{ token: '' }, 'ERR_ENROLL_INVALID_ARGUMENT', /^invalid token: /],
    ];
    for (const [req, code, message] of cases) {
      const err = await rejection(() => enroll(svc, req));
      expect(err.code).toBe(code);
      expect(err.message).toMatch(message);
    }
    // None of that spent the token.
    expect((await enroll(svc, { token })).outcome).toBe(Outcome.CREATED);
  });

  it('answers arbitrary EK bytes with a coded refusal and never spends the token on them', async () => {
    const svc = service();
    const token = await newToken();
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 400 }),
        fc.option(fc.uint8Array({ maxLength: 400 }), { nil: undefined }),
        async (ekPublic, ekCert) => {
          const err = await rejection(() =>
            enroll(svc, { token, ekPublic, ...(ekCert === undefined ? {} : { ekCert }) }),
          );
          expect(['ERR_ENROLL_INVALID_ARGUMENT', 'ERR_ENROLL_PERMISSION_DENIED']).toContain(
            err.code,
          );
          expect(err.message).not.toBe(TOKEN_REFUSED_MESSAGE);
        },
      ),
      { numRuns: 200 },
    );
    expect((await enroll(svc, { token })).outcome).toBe(Outcome.CREATED);
  });

  it('follows require_ek_cert and ek_ca_path: no certificate, or any CA when no pool is set', async () => {
    const lax = service({ tpm: { requireEkCert: false } });
    const noCert = await enroll(lax, { token: await newToken(), ekCert: new Uint8Array() });
    expect(noCert.outcome).toBe(Outcome.CREATED);
    const other = device(otherCa);
    const anyCa = await enroll(lax, {
      token: await newToken('spiffe://example.org/gw/2'),
      ekPublic: other.ekPublic,
      ekCert: other.cert,
    });
    expect(anyCa).toMatchObject({ outcome: Outcome.CREATED, pubHash: other.hash });
    // NV padding after the certificate is allowed.
    const padded = new Uint8Array([...devB.cert, ...new Uint8Array(64).fill(0xff)]);
    const r = await enroll(service(), {
      token: await newToken('spiffe://example.org/gw/3'),
      ekPublic: devB.ekPublic,
      ekCert: padded,
    });
    expect(r.pubHash).toBe(devB.hash);
  });

  it('answers FailedPrecondition without a tpm attestor and leaves the token unspent', async () => {
    const token = await newToken();
    const err = await rejection(() => enroll(service({ tpm: null }), { token }));
    expect(err).toMatchObject({
      code: 'ERR_ENROLL_FAILED_PRECONDITION',
      message: 'the server has no tpm node attestor',
    });
    expect(await fx.ds.listProvisioningTokens()).toHaveLength(1);
  });

  it('lets exactly one of two devices racing for one alias bind it', async () => {
    const svc = service();
    const [t1, t2] = [await newToken(), await newToken()];
    const results = await Promise.allSettled([
      enroll(svc, { token: t1 }),
      enroll(svc, { token: t2, ekPublic: devB.ekPublic, ekCert: devB.cert }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect((lost.reason as { code: string }).code).toBe('ERR_ENROLL_ALIAS_CONFLICT');
    expect(await aliasEntries()).toHaveLength(1);
  });

  it('delays a failing caller once its burst is spent, and never charges successes', async () => {
    const svc = service({ disableRateLimit: false, failureBurst: 1, failuresPerSecond: 1 });
    // Successes are free.
    await enroll(svc, { token: await newToken() });
    await enroll(svc, { token: await newToken() });
    // First failure: answered at once (the burst).
    expect((await rejection(() => enroll(svc, { token: 'A'.repeat(43) }))).message).toBe(
      TOKEN_REFUSED_MESSAGE,
    );
    // Second failure: held until its token refills.
    let settled = false;
    const second = enroll(svc, { token: 'B'.repeat(43) }).then(
      () => {
        settled = true;
      },
      (err: unknown) => {
        settled = true;
        return err as { code: string };
      },
    );
    await clock.waitForTimer();
    expect(settled).toBe(false);
    // Meanwhile a call from that address waits at the gate; another address does not.
    let gated = false;
    const third = enroll(svc, { token: await newToken('spiffe://example.org/gw/5') }).then(() => {
      gated = true;
    });
    const elsewhere = await enroll(
      svc,
      { token: await newToken('spiffe://example.org/gw/6') },
      peerContext('198.51.100.1'),
    );
    expect(elsewhere.outcome).toBe(Outcome.CREATED);
    expect(gated).toBe(false);
    clock.advance(1_000);
    expect(await second).toMatchObject({ code: 'ERR_ENROLL_PERMISSION_DENIED' });
    await third;
    expect(gated).toBe(true);
  });
});
