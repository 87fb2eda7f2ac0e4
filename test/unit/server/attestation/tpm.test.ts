/**
 * The server `tpm` attestor against a software TPM (test/unit/tpm/support/soft-tpm.ts): the
 * good flow and every refusal the threat model lists, each with its error code.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../src/common/clock.js';
import { cryptoRandom } from '../../../../src/common/random.js';
import { loadFirmwarePolicies } from '../../../../src/policy/firmware-policy.js';
import {
  clockProblem,
  createTpmAttestor,
  type TpmAttestorOptions,
} from '../../../../src/server/attestation/tpm.js';
import {
  decodeTpmChallenge,
  decodeTpmPayload,
  decodeTpmResponse,
  encodeTpmPayload,
  encodeTpmResponse,
  TPM_MAX_PAYLOAD,
  type TpmChallenge,
  tpmQuoteNonce,
} from '../../../../src/server/attestation/tpm-wire.js';
import {
  EkCaPool,
  marshalTpm2bPublic,
  objectName,
  parseEventLog,
  pcrSelection,
  replayEventLog,
  spkiFromTpmtPublic,
} from '../../../../src/tpm/index.js';
import { makeCa, makeEkCert } from '../../tpm/support/ek-ca.js';
import { ALG, agileLog, EV, pcr7Events } from '../../tpm/support/event-log-builder.js';
import {
  AK_ATTRIBUTES,
  makeAk,
  makeEk,
  type SoftKey,
  softActivateCredential,
  softQuote,
} from '../../tpm/support/soft-tpm.js';

const TD = 'example.org';
const root = makeCa('EK root');
const intermediate = makeCa('EK intermediate', { issuer: root });
const otherRoot = makeCa('Untrusted root');
const pool = EkCaPool.from({ roots: [root.der], intermediates: [intermediate.der] });

interface Device {
  ek: SoftKey;
  ak: SoftKey;
  ekCert?: Uint8Array;
  pcrs: Map<number, Uint8Array>;
}

function device(o: { ak?: SoftKey; certIssuer?: typeof root | null } = {}): Device {
  const ek = makeEk('rsa');
  const issuer = o.certIssuer === undefined ? intermediate : o.certIssuer;
  const pcrs = new Map<number, Uint8Array>();
  for (let i = 0; i < 8; i++) pcrs.set(i, createHash('sha256').update(`pcr${i}`).digest());
  return {
    ek,
    ak: o.ak ?? makeAk('ecc'),
    ...(issuer === null
      ? {}
      : { ekCert: makeEkCert(issuer, createPublicKey(ek.privateKey), { model: 'swtpm' }) }),
    pcrs,
  };
}

function payloadOf(d: Device, over: { ekPublic?: SoftKey; ak?: SoftKey } = {}): Uint8Array {
  return encodeTpmPayload({
    ...(d.ekCert === undefined ? {} : { ekCert: d.ekCert }),
    ekPublic: marshalTpm2bPublic((over.ekPublic ?? d.ek).public),
    akPublic: marshalTpm2bPublic((over.ak ?? d.ak).public),
    pcrs: [{ bank: 'sha256', indices: [0, 1, 2, 3, 4, 5, 6, 7] }],
  });
}

interface AnswerTweaks {
  secret?: (s: Uint8Array) => Uint8Array;
  nonce?: (n: Uint8Array) => Uint8Array;
  reportedPcrs?: (p: Map<number, Uint8Array>) => Map<number, Uint8Array>;
  signature?: (s: Uint8Array) => Uint8Array;
  /** The TPM that activates (default: the device's own EK). */
  activatingEk?: SoftKey;
  resetCount?: number;
}

/** What a TPM and our agent answer, in software. */
function answer(d: Device, challengeBytes: Uint8Array, t: AnswerTweaks = {}): Uint8Array {
  const c: TpmChallenge = decodeTpmChallenge(challengeBytes);
  let secret: Uint8Array;
  try {
    secret = softActivateCredential(
      t.activatingEk ?? d.ek,
      objectName(d.ak.public),
      c.idObject,
      c.encryptedSecret,
    );
  } catch {
    secret = new Uint8Array(32);
  }
  const nonce = (t.nonce ?? ((n) => n))(tpmQuoteNonce(secret, c.nonce));
  const indices = c.pcrs[0]!.indices;
  const q = softQuote(d.ak, {
    nonce,
    selection: [pcrSelection('sha256', indices)],
    pcrs: new Map([['sha256', d.pcrs]]),
    ...(t.resetCount === undefined ? {} : { resetCount: t.resetCount }),
  });
  return encodeTpmResponse({
    secret: (t.secret ?? ((s) => s))(secret),
    quotes: [
      {
        quoted: q.quoted,
        signature: (t.signature ?? ((s) => s))(q.signature),
        pcrs: (t.reportedPcrs ?? ((p) => p))(new Map(d.pcrs)),
      },
    ],
  });
}

function attestor(o: Partial<TpmAttestorOptions> = {}) {
  return createTpmAttestor({
    trustDomain: TD,
    clock: new ManualClock(Date.UTC(2026, 5, 1)),
    random: cryptoRandom,
    ekCaPool: pool,
    isEnrolled: async () => false,
    ...o,
  });
}

async function errOf(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
    return { message: 'resolved' };
  } catch (err) {
    return err as { code?: string; message: string };
  }
}

async function deniedWith(p: Promise<unknown>, message: RegExp): Promise<void> {
  const err = await errOf(p);
  expect(err.code).toBe('ERR_ATTESTATION_PERMISSION_DENIED');
  expect(err.message).toMatch(message);
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

const ekHash = (d: Device) =>
  createHash('sha256').update(spkiFromTpmtPublic(d.ek.public)).digest('hex');

describe('tpm attestor', () => {
  it('attests a device with an EK certificate: agent ID, selectors, evidence', async () => {
    const d = device();
    const r = await attestor().attest(payloadOf(d), async (c) => answer(d, c), {});
    const hash = ekHash(d);
    expect(r.agentId).toBe(`spiffe://${TD}/spire/agent/tpm/${hash}`);
    expect(r.canReattest).toBe(true);
    const values = r.selectors.map((s) => `${s.type}:${s.value}`);
    expect(values).toContain(`tpm:pub_hash:${hash}`);
    expect(values).toContain('tpm:ek_manufacturer:id:53504500');
    expect(values).toContain('tpm:ek_model:swtpm');
    expect(values).toContain('tpm:ek_version:id:20191023');
    expect(values).toContain('tpm:ek_issuer_cn:EK intermediate');
    for (let i = 0; i < 8; i++) {
      expect(values).toContain(
        `tpm:pcr:sha256:${i}:${Buffer.from(d.pcrs.get(i)!).toString('hex')}`,
      );
    }
    expect(r.evidence?.clockInfo).toEqual({
      resetCount: 3,
      restartCount: 0,
      clock: '123456',
      safe: true,
    });
  });

  it('a replayed response (from an earlier stream) is refused', async () => {
    const d = device();
    const a = attestor();
    let old: Uint8Array | undefined;
    await a.attest(
      payloadOf(d),
      async (c) => {
        old = answer(d, c);
        return old;
      },
      {},
    );
    await deniedWith(
      a.attest(payloadOf(d), async () => old!, {}),
      /secret is wrong/,
    );
  });

  it('a quote over another nonce is refused', async () => {
    const d = device();
    const err = await errOf(
      attestor().attest(
        payloadOf(d),
        async (c) => answer(d, c, { nonce: (n) => createHash('sha256').update(n).digest() }),
        {},
      ),
    );
    expect(err.code).toBe('ERR_ATTESTATION_PERMISSION_DENIED');
    expect(err.message).toMatch(/extraData does not equal the expected nonce/);
  });

  it('a wrong secret is refused', async () => {
    const d = device();
    const err = await errOf(
      attestor().attest(
        payloadOf(d),
        async (c) => answer(d, c, { secret: (s) => s.map((b, i) => (i === 0 ? b ^ 1 : b)) }),
        {},
      ),
    );
    expect(err.code).toBe('ERR_ATTESTATION_PERMISSION_DENIED');
    expect(err.message).toMatch(/secret is wrong/);
  });

  it("an AK from TPM B presented with TPM A's EK cannot activate the credential", async () => {
    const a = device();
    const b = device();
    // B's AK with A's EK (and certificate): only A's TPM could recover the secret, and A's
    // TPM does not hold B's AK. B's TPM tries with its own EK: wrong secret.
    const mixed: Device = { ...a, ak: b.ak };
    const err = await errOf(
      attestor().attest(
        payloadOf(mixed),
        async (c) => answer(mixed, c, { activatingEk: b.ek }),
        {},
      ),
    );
    expect(err.code).toBe('ERR_ATTESTATION_PERMISSION_DENIED');
    expect(err.message).toMatch(/secret is wrong/);
  });

  it('an EK certificate from an untrusted CA is refused before any challenge', async () => {
    const d = device({ certIssuer: otherRoot });
    let challenged = false;
    const err = await errOf(
      attestor().attest(
        payloadOf(d),
        async (c) => {
          challenged = true;
          return answer(d, c);
        },
        {},
      ),
    );
    expect(err?.code).toBe('ERR_ATTESTATION_PERMISSION_DENIED');
    expect(err?.message).toMatch(/does not chain/);
    expect(challenged).toBe(false);
  });

  it('an EK certificate whose key is not the EK is refused', async () => {
    const d = device();
    const other = makeEk('rsa');
    const err = await errOf(
      attestor().attest(payloadOf(d, { ekPublic: other }), async (c) => answer(d, c), {}),
    );
    expect(err?.code).toBe('ERR_ATTESTATION_PERMISSION_DENIED');
    expect(err?.message).toMatch(/does not certify the EK public area/);
  });

  it('an AK that is not restricted is refused', async () => {
    const ak = makeAk('ecc', { attributes: AK_ATTRIBUTES & ~0x00010000 });
    const d = device({ ak });
    const err = await errOf(attestor().attest(payloadOf(d), async (c) => answer(d, c), {}));
    expect(err?.code).toBe('ERR_ATTESTATION_PERMISSION_DENIED');
    expect(err?.message).toMatch(/restricted is not set/);
  });

  it('a changed PCR value is refused', async () => {
    const d = device();
    const err = await errOf(
      attestor().attest(
        payloadOf(d),
        async (c) =>
          answer(d, c, {
            reportedPcrs: (p) => {
              const m = new Map(p);
              m.set(7, new Uint8Array(32).fill(0xaa));
              return m;
            },
          }),
        {},
      ),
    );
    expect(err.code).toBe('ERR_ATTESTATION_PERMISSION_DENIED');
    expect(err.message).toMatch(/pcrDigest does not match/);
  });

  it('a flipped signature byte is refused', async () => {
    const d = device();
    const err = await errOf(
      attestor().attest(
        payloadOf(d),
        async (c) =>
          answer(d, c, {
            signature: (s) => s.map((b, i) => (i === s.length - 5 ? b ^ 0x01 : b)),
          }),
        {},
      ),
    );
    expect(err.code).toBe('ERR_ATTESTATION_PERMISSION_DENIED');
    expect(err.message).toMatch(/signature does not verify/);
  });

  it('enrollment: required and missing is refused; enrolled passes; no certificate needs enrollment', async () => {
    const d = device();
    expect(
      await codeOf(
        attestor({ requireEnrollment: true }).attest(payloadOf(d), async (c) => answer(d, c), {}),
      ),
    ).toBe('ERR_ATTESTATION_PERMISSION_DENIED');
    const enrolled = new Set([ekHash(d)]);
    const r = await attestor({
      requireEnrollment: true,
      isEnrolled: async (h) => enrolled.has(h),
    }).attest(payloadOf(d), async (c) => answer(d, c), {});
    expect(r.agentId).toContain(ekHash(d));

    const bare = device({ certIssuer: null });
    // require_ek_cert (default): refused.
    expect(await codeOf(attestor().attest(payloadOf(bare), async (c) => answer(bare, c), {}))).toBe(
      'ERR_ATTESTATION_PERMISSION_DENIED',
    );
    const lax = { requireEkCert: false, isEnrolled: async (h: string) => h === ekHash(bare) };
    const ok = await attestor(lax).attest(payloadOf(bare), async (c) => answer(bare, c), {});
    expect(ok.selectors.map((s) => s.value)).not.toContain(
      expect.stringMatching(/^ek_manufacturer:/),
    );
    expect(
      await codeOf(
        attestor({ ...lax, isEnrolled: async () => false }).attest(
          payloadOf(bare),
          async (c) => answer(bare, c),
          {},
        ),
      ),
    ).toBe('ERR_ATTESTATION_PERMISSION_DENIED');
  });

  it('a TPM whose reset counter went backwards is refused', async () => {
    const d = device();
    const a = attestor({
      lastClockInfo: async () => ({ resetCount: 5, restartCount: 0, clock: '1', safe: true }),
    });
    expect(
      await codeOf(a.attest(payloadOf(d), async (c) => answer(d, c, { resetCount: 4 }), {})),
    ).toBe('ERR_ATTESTATION_PERMISSION_DENIED');
    const r = await a.attest(payloadOf(d), async (c) => answer(d, c, { resetCount: 6 }), {});
    expect(r.evidence?.clockInfo).toMatchObject({ resetCount: 6 });
    expect(
      clockProblem(
        { resetCount: 1, restartCount: 2, clock: '100', safe: true },
        { resetCount: 1, restartCount: 2, clock: 50n, safe: true },
      ),
    ).toMatch(/clock 50 is lower/);
    expect(
      clockProblem(
        { resetCount: 1, restartCount: 2, clock: '100', safe: true },
        { resetCount: 1, restartCount: 2, clock: 50n, safe: false },
      ),
    ).toBeUndefined();
  });

  it('firmware policies: a satisfied policy adds tpm:policy:<name>, a lost one says why', async () => {
    const d = device();
    const hex = (i: number) => Buffer.from(d.pcrs.get(i)!).toString('hex');
    const policies = loadFirmwarePolicies([
      {
        name: 'good.json',
        text: JSON.stringify({ name: 'fw-good', pcrs: { sha256: { 0: [hex(0)], 7: [hex(7)] } } }),
      },
      {
        name: 'other.json',
        text: JSON.stringify({ name: 'fw-other', pcrs: { sha256: { 7: ['ab'.repeat(32)] } } }),
      },
      {
        // PCR 10 is not in pcr_indices: the challenge must ask for it because a policy reads it.
        name: 'pcr10.json',
        text: JSON.stringify({ name: 'fw-10', pcrs: { sha256: { 10: ['00'.repeat(32)] } } }),
      },
    ]);
    d.pcrs.set(10, new Uint8Array(32));
    let asked: number[] = [];
    const a = attestor({ policies: () => policies });
    const r = await a.attest(
      payloadOf(d),
      async (c) => {
        asked = [...decodeTpmChallenge(c).pcrs[0]!.indices];
        return answer(d, c);
      },
      {},
    );
    expect(asked).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 10]);
    const values = r.selectors.map((s) => `${s.type}:${s.value}`);
    expect(values).toContain('tpm:policy:fw-good');
    expect(values).toContain('tpm:policy:fw-10');
    expect(values).not.toContain('tpm:policy:fw-other');
    expect(r.evidence?.policies).toEqual({
      'fw-good': 'satisfied',
      'fw-other': `sha256 PCR 7 is ${hex(7)}, not the digest the policy allows`,
      'fw-10': 'satisfied',
    });

    // Firmware change: PCR 0 extended. The next attestation loses fw-good and says why.
    const before = hex(0);
    d.pcrs.set(0, createHash('sha256').update(d.pcrs.get(0)!).update('new fw').digest());
    const r2 = await a.attest(payloadOf(d), async (c) => answer(d, c), {});
    const values2 = r2.selectors.map((s) => `${s.type}:${s.value}`);
    expect(values2).not.toContain('tpm:policy:fw-good');
    expect(values2).toContain('tpm:policy:fw-10');
    expect(r2.evidence?.policies).toHaveProperty(
      'fw-good',
      `sha256 PCR 0 is ${hex(0)}, not the digest the policy allows`,
    );
    expect(hex(0)).not.toBe(before);
  });

  it('failures after credential activation are reported for the device; earlier ones are not', async () => {
    const d = device();
    const reported: Array<[string, string]> = [];
    const a = attestor({
      onDeviceFailure: async (id, reason) => {
        reported.push([id, reason]);
      },
    });
    // Wrong secret: no proof of possession, nothing reported.
    await deniedWith(
      a.attest(payloadOf(d), async (c) => answer(d, c, { secret: (s) => s.map((b) => b ^ 1) }), {}),
      /secret is wrong/,
    );
    expect(reported).toEqual([]);
    // A flipped quote signature after a good activation: reported with the reason.
    await deniedWith(
      a.attest(
        payloadOf(d),
        async (c) =>
          answer(d, c, {
            signature: (sig) => {
              const x = new Uint8Array(sig);
              x[x.length - 1]! ^= 1;
              return x;
            },
          }),
        {},
      ),
      /does not verify/,
    );
    expect(reported).toHaveLength(1);
    expect(reported[0]![0]).toBe(`spiffe://${TD}/spire/agent/tpm/${ekHash(d)}`);
    expect(reported[0]![1]).toMatch(/quotes\[0\] does not verify/);
  });

  it('event log: a log that replays to the quoted PCRs adds its summary and tpm:secure_boot', async () => {
    const d = device();
    const events = [
      { pcr: 0, type: EV.S_CRTM_VERSION, data: 'firmware 1.0' },
      ...[0, 1, 2, 3, 4, 5, 6].map((pcr) => ({ pcr, type: EV.SEPARATOR, data: '\0\0\0\0' })),
      ...pcr7Events(Uint8Array.of(1)),
    ];
    const log = agileLog({ algorithms: [[ALG.sha256, 32]] }, events);
    // The device's PCRs are what its firmware measured: the log's own replay.
    for (const [i, v] of replayEventLog(parseEventLog(log)).get('sha256')!) d.pcrs.set(i, v);
    const withLog = (c: Uint8Array, l: Uint8Array) => {
      const r = decodeTpmResponse(answer(d, c));
      return encodeTpmResponse({ ...r, eventLog: l });
    };
    const a = attestor();
    const r = await a.attest(payloadOf(d), async (c) => withLog(c, log), {});
    const values = r.selectors.map((s) => `${s.type}:${s.value}`);
    expect(values).toContain('tpm:secure_boot:true');
    expect(r.evidence?.eventLog).toMatchObject({
      format: 'crypto-agile',
      verifiedPcrs: { sha256: [0, 1, 2, 3, 4, 5, 6, 7] },
      secureBoot: true,
    });

    // One event's digest changed: replay no longer matches PCR 3, refused and reported.
    const reported: string[] = [];
    const b = attestor({
      onDeviceFailure: async (_id, reason) => {
        reported.push(reason);
      },
    });
    const tampered = agileLog(
      { algorithms: [[ALG.sha256, 32]] },
      events.map((e) => (e.pcr === 3 ? { ...e, data: '\0\0\0\x01' } : e)),
    );
    await deniedWith(
      b.attest(payloadOf(d), async (c) => withLog(c, tampered), {}),
      /event log does not replay to the quoted PCRs: .*PCR sha256:3 gives [0-9a-f]{64} but the quote has/,
    );
    expect(reported).toHaveLength(1);

    // Garbage is refused as a bad log; no log at all passes unless require_event_log.
    await deniedWith(
      a.attest(payloadOf(d), async (c) => withLog(c, new Uint8Array(64).fill(7)), {}),
      /event log is not acceptable/,
    );
    const noLog = await a.attest(payloadOf(d), async (c) => answer(d, c), {});
    expect(noLog.selectors.some((s) => s.value.startsWith('secure_boot:'))).toBe(false);
    await deniedWith(
      attestor({ requireEventLog: true }).attest(payloadOf(d), async (c) => answer(d, c), {}),
      /event log is required/,
    );
  });

  it('truncated, oversized and malformed payloads and responses are coded errors', async () => {
    const d = device();
    const a = attestor();
    const good = payloadOf(d);
    const never = async (): Promise<Uint8Array> => {
      throw new Error('no challenge expected');
    };
    for (const bad of [
      good.subarray(0, good.length - 7),
      new Uint8Array(TPM_MAX_PAYLOAD + 1).fill(0x20),
      new TextEncoder().encode('{"version":2}'),
      new TextEncoder().encode('[]'),
    ]) {
      expect(await codeOf(a.attest(bad, never, {}))).toBe('ERR_ATTESTATION_INVALID_ARGUMENT');
    }
    // A truncated TPM2B_PUBLIC inside a well-formed payload.
    const p = decodeTpmPayload(good);
    const cut = encodeTpmPayload({ ...p, akPublic: p.akPublic.subarray(0, 40) });
    const err = await errOf(a.attest(cut, never, {}));
    expect(err.code).toBe('ERR_ATTESTATION_INVALID_ARGUMENT');
    expect(err.message).toMatch(/ak_public/);
    // Malformed and truncated responses.
    for (const resp of [
      (c: Uint8Array) => answer(d, c).subarray(0, 30),
      () => new Uint8Array(40_000).fill(0x20),
      () => new TextEncoder().encode('{"version":1,"secret":"AA==","quotes":[]}'),
    ]) {
      expect(await codeOf(a.attest(good, async (c) => resp(c), {}))).toBe(
        'ERR_ATTESTATION_INVALID_ARGUMENT',
      );
    }
  });

  it('configuration: a pool is required with require_ek_cert, sha1 needs allow_sha1', () => {
    expect(() =>
      createTpmAttestor({ trustDomain: TD, clock: new ManualClock(), random: cryptoRandom }),
    ).toThrow(expect.objectContaining({ code: 'ERR_TPM_ATTESTOR_CONFIG_INVALID' }));
    expect(() => attestor({ pcrBanks: ['sha1'] })).toThrow(
      expect.objectContaining({ code: 'ERR_TPM_ATTESTOR_CONFIG_INVALID' }),
    );
    expect(() => attestor({ pcrIndices: [24] })).toThrow(
      expect.objectContaining({ code: 'ERR_TPM_ATTESTOR_CONFIG_INVALID' }),
    );
  });
});
