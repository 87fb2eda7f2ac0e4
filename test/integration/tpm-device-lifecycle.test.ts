// Lifecycle of the TPM layer against a real swtpm: serialisation of concurrent callers,
// handle hygiene on a TPM without a resource manager (swtpm has three object slots), errors
// with their TSS2_RC, close() waiting for work in flight — at the Tpm adapter and directly at
// the native addon — and wall times of the agent-side TPM steps.
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSpireEdgeError, type SpireEdgeError } from '../../src/common/errors.js';
import { loadNativeAddon } from '../../src/native/addon.js';
import {
  type Credential,
  hasTpmRc,
  type LoadedAk,
  openTpm,
  TPM_RC,
  type Tpm,
} from '../../src/tpm/device/index.js';
import { makeTempDir, removeTempDir, requireBinary, run } from '../harness/common.js';
import { type SwtpmInstance, startSwtpm } from '../harness/swtpm.js';

let swtpm: SwtpmInstance;
let dir: string;
const SEL = { bank: 'sha256', indices: [0, 1, 2, 3, 4, 5, 6, 7] } as const;

beforeAll(async () => {
  swtpm = await startSwtpm();
  dir = await makeTempDir('tpm-device-lifecycle');
});

afterAll(async () => {
  await swtpm?.stop();
  if (dir !== undefined) await removeTempDir(dir);
});

async function caught(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

async function expectCode(p: Promise<unknown>, code: string): Promise<SpireEdgeError> {
  const err = await caught(p);
  expect(isSpireEdgeError(err), `expected ${code}, got ${String(err)}`).toBe(true);
  expect((err as SpireEdgeError).code).toBe(code);
  return err as SpireEdgeError;
}

/** What tpm2-tools sees (only while nothing holds the swtpm connection). */
async function toolsHandles(kind: 'handles-transient' | 'handles-loaded-session'): Promise<string> {
  return (await swtpm.tpm2(['getcap', kind])).stdout.trim();
}

async function makeCredential(ekPublic: Uint8Array, name: Uint8Array, secret: Uint8Array) {
  const base = join(dir, `cred-${Buffer.from(name).toString('hex').slice(0, 12)}`);
  await writeFile(`${base}.ek`, ekPublic);
  await writeFile(`${base}.secret`, secret);
  await run(
    requireBinary('tpm2_makecredential', 'tpm2-tools'),
    ['-T', 'none', '-e', `${base}.ek`, '-s', `${base}.secret`, '-n'].concat([
      Buffer.from(name).toString('hex'),
      '-o',
      `${base}.blob`,
    ]),
    { env: { TSS2_LOG: 'all+none' } },
  );
  const b = await readFile(`${base}.blob`);
  const n1 = b.readUInt16BE(8);
  const n2 = b.readUInt16BE(10 + n1);
  return {
    idObject: new Uint8Array(b.subarray(8, 10 + n1)),
    encryptedSecret: new Uint8Array(b.subarray(10 + n1, 12 + n1 + n2)),
  } satisfies Credential;
}

function nonce(i: number): Uint8Array {
  return new Uint8Array(createHash('sha256').update(`n${i}`).digest());
}

describe('Tpm lifecycle (swtpm)', () => {
  it('serialises concurrent callers and leaves no transient object or session behind after 200 quotes and churn', async () => {
    const tpm = await openTpm({ tcti: swtpm.tcti });
    try {
      const blobs = await tpm.createAk('ecc-p256');
      const ak = await tpm.loadAk(blobs);
      // 20 callers at once: all served, each with its own nonce in its quote.
      const concurrent = await Promise.all(
        Array.from({ length: 20 }, (_, i) => tpm.quote(ak, nonce(i), SEL)),
      );
      concurrent.forEach((q, i) => {
        expect(Buffer.from(q.quoted).includes(Buffer.from(nonce(i)))).toBe(true);
      });
      for (let i = 0; i < 200; i++) await tpm.quote(ak, nonce(1000 + i), SEL);
      // Churn that uses sessions and extra objects: load/flush, seal/unseal, activation.
      const ekPublic = await tpm.ekPublic('rsa');
      const secret = new Uint8Array(16).fill(9);
      const cred = await makeCredential(ekPublic, blobs.name, secret); // offline: no TPM
      for (let i = 0; i < 10; i++) {
        const again = await tpm.loadAk(blobs);
        await tpm.quote(again, nonce(i), SEL);
        await tpm.flushAk(again);
        const sealed = await tpm.seal(secret, { pcrs: SEL });
        expect(Buffer.from(await tpm.unseal(sealed)).equals(Buffer.from(secret))).toBe(true);
        expect(
          Buffer.from(await tpm.activateCredential(ak, cred)).equals(Buffer.from(secret)),
        ).toBe(true);
      }
      // In the TPM: exactly our one AK (the EK is persistent), and no session.
      const transient = await tpm.handles('transient');
      expect(transient).toHaveLength(1);
      expect(transient[0]! >>> 24).toBe(0x80);
      expect(await tpm.handles('loaded-session')).toEqual([]);
    } finally {
      await tpm.close();
    }
    // close() flushed the AK; tpm2-tools (another implementation) agrees.
    expect(await toolsHandles('handles-transient')).toBe('');
    expect(await toolsHandles('handles-loaded-session')).toBe('');
  });

  it('maps TPM and ESYS failures to ERR_TPM_RC with rc and decoded text, and close() flushes objects left loaded', async () => {
    const tpm = await openTpm({ tcti: swtpm.tcti });
    let ak: LoadedAk;
    try {
      const blobs = await tpm.createAk('ecc-p256');
      ak = await tpm.loadAk(blobs);
      await tpm.flushAk(ak);
      // A flushed handle: ESYS refuses it (layer 7, esapi).
      const flushed = await expectCode(tpm.quote(ak, nonce(1), SEL), 'ERR_TPM_RC');
      expect(flushed.details['rc']).toBe(0x70018);
      expect(flushed.details['rcText']).toBe('esapi:The ESYS_TR resource object is bad');
      expect(flushed.details['op']).toBe('Esys_Quote');
      expect(flushed.message).toMatch(/^could not quote: Esys_Quote failed: esapi:/);
      expect(flushed.cause).toBeInstanceOf(Error);
      // A LoadedAk this Tpm did not hand out (a copy, or another Tpm's) is an argument error:
      // ESYS handles mean nothing outside their context.
      await expect(tpm.quote({ ...ak }, nonce(1), SEL)).rejects.toBeInstanceOf(TypeError);
      // Blobs whose name was tampered with are refused after the load, and the load undone.
      const renamed = { ...blobs, name: new Uint8Array(blobs.name).fill(1, 2) };
      await expectCode(tpm.loadAk(renamed), 'ERR_TPM_BLOB_INVALID');
      // A truncated public area never reaches the TPM.
      const badPub = { ...blobs, public: blobs.public.subarray(0, 10) };
      const mu = await expectCode(tpm.loadAk(badPub), 'ERR_TPM_BLOB_INVALID');
      expect(String(mu.details['rcText'])).toMatch(/^mu:/);
      // swtpm has three object slots, and a persistent parent takes one while a child loads:
      // the third AK does not fit, and the TPM answers with its own 0x902.
      const loaded: LoadedAk[] = [];
      const full = await caught(
        (async () => {
          for (let i = 0; i < 4; i++) loaded.push(await tpm.loadAk(blobs));
        })(),
      );
      expect(hasTpmRc(full, TPM_RC.OBJECT_MEMORY)).toBe(true);
      expect((full as SpireEdgeError).details['rcText']).toBe(
        'tpm:warn(2.0): out of memory for object contexts',
      );
      expect(loaded).toHaveLength(2);
    } finally {
      await tpm.close();
    }
    expect(await toolsHandles('handles-transient')).toBe('');
    // Calls after close() are refused without touching the TPM.
    await expectCode(tpm.getRandom(1), 'ERR_TPM_CLOSED');
    await expectCode(tpm.quote(ak, nonce(1), SEL), 'ERR_TPM_CLOSED');
    await tpm.close(); // idempotent
  });

  it('returns TPM-layer rc values from the native addon (quote with the EK, a decrypt key)', async () => {
    const addon = loadNativeAddon();
    const ctx = await addon.tpmOpen(swtpm.tcti);
    try {
      const ek = await addon.tpmCreateEk(ctx, 'rsa', 0x81010001);
      expect(ek.persistent).toBe(true);
      const err = (await caught(addon.tpmQuote(ctx, ek.handle, nonce(0), 'sha256', [0]))) as {
        code: string;
        rc: number;
        rcText: string;
        op: string;
      };
      expect(err.code).toBe('ERR_TPM_RC');
      expect(err.rc >>> 16).toBe(0); // the TPM itself
      expect(err.rcText).toMatch(/^tpm:/);
      expect(err.op).toBe('Esys_Quote');
      expect(() => addon.tpmQuote(ctx, ek.handle, new Uint8Array(65), 'sha256', [0])).toThrow(
        TypeError,
      );
      expect(() => addon.tpmNvRead({} as never, 0x01c00002)).toThrow(TypeError);
    } finally {
      await addon.tpmClose(ctx);
    }
  });

  it('close() waits for calls in flight, at the adapter and at the native addon', async () => {
    const tpm = await openTpm({ tcti: swtpm.tcti });
    const ak = await tpm.loadAk(await tpm.createAk('ecc-p256'));
    const order: string[] = [];
    const quotes = Array.from({ length: 10 }, (_, i) =>
      tpm.quote(ak, nonce(i), SEL).then((q) => {
        order.push(`quote${i}`);
        return q;
      }),
    );
    const closed = tpm.close().then(() => order.push('closed'));
    const late = caught(tpm.getRandom(8));
    const settled = await Promise.allSettled(quotes);
    await closed;
    expect(settled.every((s) => s.status === 'fulfilled')).toBe(true);
    expect(order).toEqual([...Array.from({ length: 10 }, (_, i) => `quote${i}`), 'closed']);
    expect(isSpireEdgeError(await late, 'ERR_TPM_CLOSED')).toBe(true);
    expect(await toolsHandles('handles-transient')).toBe('');

    // Natively, without the adapter's queue: work already queued on the libuv pool finishes
    // before tpmClose() tears the context down; later calls reject with ERR_TPM_CLOSED.
    const addon = loadNativeAddon();
    const ctx = await addon.tpmOpen(swtpm.tcti);
    const done: string[] = [];
    const work = Array.from({ length: 6 }, (_, i) =>
      addon.tpmGetRandom(ctx, 32).then((b) => {
        done.push(`r${i}`);
        return b;
      }),
    );
    const nativeClosed = addon.tpmClose(ctx).then(() => done.push('closed'));
    const after = (await caught(addon.tpmGetRandom(ctx, 1))) as { code?: string };
    expect(after.code).toBe('ERR_TPM_CLOSED');
    const results = await Promise.all(work);
    await nativeClosed;
    expect(results.every((r) => r.length === 32)).toBe(true);
    expect(done.at(-1)).toBe('closed');
    expect(done).toHaveLength(7);
    await addon.tpmClose(ctx); // idempotent
  });

  it('measures quote wall time and the agent-side attestation steps', async () => {
    const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
    const tpm: Tpm = await openTpm({ tcti: swtpm.tcti });
    const steps: Record<string, number> = {};
    try {
      let t = process.hrtime.bigint();
      const cert = await tpm.readEkCertificate('rsa');
      steps['readEkCertificate'] = ms(t);
      t = process.hrtime.bigint();
      const ekPublic = await tpm.ekPublic('rsa');
      steps['ekPublic'] = ms(t);
      t = process.hrtime.bigint();
      const blobs = await tpm.createAk('ecc-p256');
      steps['createAk (once per device)'] = ms(t);
      t = process.hrtime.bigint();
      const ak = await tpm.loadAk(blobs);
      steps['loadAk'] = ms(t);
      const secret = new Uint8Array(32).fill(3);
      const cred = await makeCredential(ekPublic, blobs.name, secret); // the server's part
      t = process.hrtime.bigint();
      const got = await tpm.activateCredential(ak, cred);
      steps['activateCredential'] = ms(t);
      t = process.hrtime.bigint();
      await tpm.readPcrs(SEL);
      steps['readPcrs'] = ms(t);
      t = process.hrtime.bigint();
      await tpm.quote(ak, nonce(0), SEL);
      steps['quote'] = ms(t);
      expect(cert).toBeDefined();
      expect(Buffer.from(got).equals(Buffer.from(secret))).toBe(true);

      const n = 200;
      t = process.hrtime.bigint();
      for (let i = 0; i < n; i++) await tpm.quote(ak, nonce(i), SEL);
      const perQuote = ms(t) / n;
      const attestation =
        steps['loadAk']! + steps['activateCredential']! + steps['readPcrs']! + steps['quote']!;
      console.info(
        `tpm-device timings (swtpm, ESYS in-process): quote ${perQuote.toFixed(2)} ms/op over ${n}; ` +
          Object.entries(steps)
            .map(([k, v]) => `${k} ${v.toFixed(1)} ms`)
            .join(', ') +
          `; agent-side attestation (load AK + activate + PCRs + quote) ${attestation.toFixed(1)} ms`,
      );
      // Loose bounds that still catch a pathological regression (e.g. a reconnect per call).
      expect(perQuote).toBeLessThan(25);
    } finally {
      await tpm.close();
    }
  });
});
