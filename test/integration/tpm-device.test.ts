// The Tpm adapter over the native tpm2-tss addon against a real swtpm, cross-checked with
// tpm2-tools and openssl (independent implementations). swtpm serves one connection at a
// time, so every tpm2-tools call here runs while no Tpm is open.
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSpireEdgeError, type SpireEdgeError } from '../../src/common/errors.js';
import {
  type AkAlgorithm,
  type Credential,
  decodeSealedBlob,
  EK_LOCATIONS,
  encodeSealedBlob,
  hasTpmRc,
  type OpenTpmOptions,
  openTpm,
  TPM_RC,
  type Tpm,
} from '../../src/tpm/device/index.js';
import { makeTempDir, removeTempDir, requireBinary, run } from '../harness/common.js';
import { SWTPM_HANDLES, type SwtpmInstance, startSwtpm } from '../harness/swtpm.js';

let swtpm: SwtpmInstance;
let dir: string;
let fileNo = 0;

beforeAll(async () => {
  swtpm = await startSwtpm();
  dir = await makeTempDir('tpm-device-test');
});

afterAll(async () => {
  await swtpm?.stop();
  if (dir !== undefined) await removeTempDir(dir);
});

/** Opens a Tpm, runs `fn`, and always closes it (so tpm2-tools can reach swtpm afterwards). */
async function withTpm<T>(
  fn: (tpm: Tpm) => Promise<T>,
  options: Partial<OpenTpmOptions> = {},
): Promise<T> {
  const tpm = await openTpm({ tcti: swtpm.tcti, ...options });
  try {
    return await fn(tpm);
  } finally {
    await tpm.close();
  }
}

async function file(name: string, data?: Uint8Array): Promise<string> {
  const path = join(dir, `${fileNo++}-${name}`);
  if (data !== undefined) await writeFile(path, data);
  return path;
}

async function openssl(args: string[]): Promise<{ code: number; out: string }> {
  const r = await run(requireBinary('openssl', 'openssl'), args, { allowFailure: true });
  return { code: r.code, out: r.stdout + r.stderr };
}

async function expectCode(p: Promise<unknown>, code: string): Promise<SpireEdgeError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isSpireEdgeError(err), `expected a SpireEdgeError ${code}, got ${String(err)}`).toBe(true);
  expect((err as SpireEdgeError).code).toBe(code);
  return err as SpireEdgeError;
}

/** Splits tpm2_makecredential's output: 0xBADCC0DE, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET. */
function splitCredentialFile(b: Buffer): Credential {
  expect(b.readUInt32BE(0)).toBe(0xbadcc0de);
  expect(b.readUInt32BE(4)).toBe(1);
  const n1 = b.readUInt16BE(8);
  const n2 = b.readUInt16BE(10 + n1);
  expect(12 + n1 + n2).toBe(b.length);
  return {
    idObject: new Uint8Array(b.subarray(8, 10 + n1)),
    encryptedSecret: new Uint8Array(b.subarray(10 + n1)),
  };
}

async function makeCredential(
  ekPublic: Uint8Array,
  secret: Uint8Array,
  name: Uint8Array,
): Promise<Credential> {
  const out = await file('cred.blob');
  // -T none: MakeCredential is public-key crypto, done offline by tpm2-tools (no TPM access).
  await run(
    requireBinary('tpm2_makecredential', 'tpm2-tools'),
    [
      '-T',
      'none',
      '-e',
      await file('ek.pub', ekPublic),
      '-s',
      await file('secret', secret),
      '-n',
      Buffer.from(name).toString('hex'),
      '-o',
      out,
    ],
    { env: { TSS2_LOG: 'all+none' } },
  );
  return splitCredentialFile(await readFile(out));
}

describe('Tpm over the native addon (swtpm)', () => {
  it('returns random bytes from the TPM and rejects bad sizes with TypeError', async () => {
    await withTpm(async (tpm) => {
      const a = await tpm.getRandom(100);
      const b = await tpm.getRandom(100);
      expect(a).toBeInstanceOf(Uint8Array);
      expect(a).toHaveLength(100);
      expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
      await expect(tpm.getRandom(0)).rejects.toBeInstanceOf(TypeError);
      await expect(tpm.getRandom(1.5)).rejects.toBeInstanceOf(TypeError);
    });
  });

  it('reads EK certificates from NV that openssl parses and chains to the harness EK CA', async () => {
    const [root, intermediate] = swtpm.ekCaCertPaths;
    const certs = await withTpm(async (tpm) => ({
      rsa: await tpm.readEkCertificate('rsa'),
      p384: await tpm.readEkCertificate('ecc-p384'),
      p256: await tpm.readEkCertificate('ecc-p256'),
    }));
    // swtpm provisions no low-range ECC certificate: absence is `undefined`, not an error.
    expect(certs.p256).toBeUndefined();
    for (const [name, der, nv] of [
      ['rsa', certs.rsa, SWTPM_HANDLES.rsaEkCertNv],
      ['p384', certs.p384, SWTPM_HANDLES.eccEkCertNv],
    ] as const) {
      expect(der, name).toBeInstanceOf(Uint8Array);
      const path = await file(`${name}-ek.der`, der!);
      const subject = await openssl(['x509', '-inform', 'der', '-in', path, '-noout', '-subject']);
      expect(subject.code, subject.out).toBe(0);
      expect(subject.out).toMatch(/^subject=/);
      const pem = await file(`${name}-ek.pem`);
      expect((await openssl(['x509', '-inform', 'der', '-in', path, '-out', pem])).code).toBe(0);
      const verify = await openssl(['verify', '-CAfile', root, '-untrusted', intermediate, pem]);
      expect(verify.code, verify.out).toBe(0);
      expect(verify.out).toContain(': OK');
      // Byte for byte what tpm2_nvread reads from the same index.
      const viaTools = await file(`${name}-nvread.der`);
      await swtpm.tpm2(['nvread', `0x${nv.toString(16)}`, '-o', viaTools]);
      expect(Buffer.from(der!).equals(await readFile(viaTools))).toBe(true);
    }
    // The certificate does not verify against an unrelated root.
    const other = await file('other-root.pem');
    const key = await file('other-root.key');
    await openssl(
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'].concat([
        '-nodes',
        '-keyout',
        key,
        '-out',
        other,
        '-subj',
        '/CN=other',
        '-days',
        '1',
      ]),
    );
    const rsaPem = await file('rsa-again.pem');
    await openssl([
      'x509',
      '-inform',
      'der',
      '-in',
      await file('rsa.der', certs.rsa!),
      '-out',
      rsaPem,
    ]);
    expect((await openssl(['verify', '-CAfile', other, rsaPem])).code).not.toBe(0);
  });

  it('returns the EK public area tpm2_readpublic gives, and derives the same EK from the TCG templates', async () => {
    const persisted = await withTpm(async (tpm) => ({
      rsa: await tpm.ekPublic('rsa'),
      p384: await tpm.ekPublic('ecc-p384'),
    }));
    // Re-derived from the L-1 and H-3 templates, ignoring the persistent handles.
    const derived = await withTpm(
      async (tpm) => ({ rsa: await tpm.ekPublic('rsa'), p384: await tpm.ekPublic('ecc-p384') }),
      { persistentEkHandles: { rsa: null, 'ecc-p384': null } },
    );
    for (const [name, handle] of [
      ['rsa', SWTPM_HANDLES.rsaEk],
      ['p384', SWTPM_HANDLES.eccEk],
    ] as const) {
      // tpm2_readpublic -o writes the marshalled TPM2B_PUBLIC (tpm2-tools' "tss" format).
      const out = await file(`${name}-readpublic.pub`);
      await swtpm.tpm2(['readpublic', '-c', `0x${handle.toString(16)}`, '-o', out]);
      const tools = await readFile(out);
      expect(Buffer.from(persisted[name]).equals(tools), `${name} persisted`).toBe(true);
      expect(Buffer.from(derived[name]).equals(tools), `${name} derived`).toBe(true);
    }
    expect(EK_LOCATIONS.rsa.persistentHandle).toBe(SWTPM_HANDLES.rsaEk);
    expect(EK_LOCATIONS['ecc-p384'].persistentHandle).toBe(SWTPM_HANDLES.eccEk);
    // Derived EKs are transient: close() flushed them.
    expect((await swtpm.tpm2(['getcap', 'handles-transient'])).stdout.trim()).toBe('');
  });

  it('derives the L-2 ECC P-256 EK exactly as tpm2_createek does', async () => {
    const ours = await withTpm((tpm) => tpm.ekPublic('ecc-p256'));
    const out = await file('createek-ecc.pub');
    const ctx = await file('createek-ecc.ctx');
    await swtpm.tpm2(['createek', '-G', 'ecc', '-c', ctx, '-u', out]);
    await swtpm.tpm2(['flushcontext', '-t']);
    expect(Buffer.from(ours).equals(await readFile(out))).toBe(true);
  });

  for (const alg of ['ecc-p256', 'rsa-2048'] as const satisfies readonly AkAlgorithm[]) {
    it(`creates and loads a ${alg} AK whose quote tpm2_checkquote accepts (and rejects when altered)`, async () => {
      const nonce = new Uint8Array(createHash('sha256').update(`nonce-${alg}`).digest());
      // Seven PCRs: tpm2_checkquote 5.4 cannot hash eight or more from a "values" file.
      const selection = { bank: 'sha256', indices: [0, 1, 2, 3, 4, 5, 7] } as const;
      // Make the PCR values non-trivial first ("firmware" measured into PCR 4).
      await swtpm.tpm2(['pcrextend', `4:sha256=${createHash('sha256').update(alg).digest('hex')}`]);
      const r = await withTpm(async (tpm) => {
        const blobs = await tpm.createAk(alg);
        expect(blobs.ek).toBe('rsa');
        expect(blobs.alg).toBe(alg);
        const ak = await tpm.loadAk(blobs);
        expect(Buffer.from(ak.name).equals(Buffer.from(blobs.name))).toBe(true);
        expect(ak.name.subarray(0, 2)).toEqual(new Uint8Array([0x00, 0x0b])); // sha256 nameAlg
        const quote = await tpm.quote(ak, nonce, selection);
        const pcrs = await tpm.readPcrs(selection);
        return { blobs, quote, pcrs };
      });
      expect([...r.pcrs.keys()]).toEqual(selection.indices);
      // TPMS_ATTEST of a quote ends with its TPM2B_DIGEST pcrDigest: the hash of the PCRs.
      const values = Buffer.concat([...r.pcrs.values()]);
      const digest = createHash('sha256').update(values).digest();
      expect(Buffer.from(r.quote.quoted.subarray(-32)).equals(digest)).toBe(true);
      expect(Buffer.from(r.quote.quoted.subarray(0, 4)).toString('hex')).toBe('ff544347');

      const pub = await file('ak.pub', r.blobs.public);
      const msg = await file('quote.msg', r.quote.quoted);
      const sig = await file('quote.sig', r.quote.signature);
      const pcrFile = await file('pcrs.bin', values);
      const check = (m: string, q: string, p: string) =>
        swtpm.tpm2(
          ['checkquote', '-u', pub, '-m', m, '-s', sig, '-q', q, '-g', 'sha256'].concat([
            '-f',
            p,
            '-l',
            'sha256:0,1,2,3,4,5,7',
          ]),
          { allowFailure: true },
        );
      const good = await check(msg, Buffer.from(nonce).toString('hex'), pcrFile);
      expect(good.code, good.stderr).toBe(0);
      // Another nonce, a changed PCR value, a flipped byte of the message: all refused.
      const otherNonce = Buffer.from(nonce);
      otherNonce[0]! ^= 1;
      expect((await check(msg, otherNonce.toString('hex'), pcrFile)).code).not.toBe(0);
      const badPcrs = Buffer.from(values);
      badPcrs[40]! ^= 1;
      expect(
        (await check(msg, Buffer.from(nonce).toString('hex'), await file('bad-pcrs.bin', badPcrs)))
          .code,
      ).not.toBe(0);
      const badMsg = Buffer.from(r.quote.quoted);
      badMsg[badMsg.length - 40]! ^= 1;
      expect(
        (await check(await file('bad.msg', badMsg), Buffer.from(nonce).toString('hex'), pcrFile))
          .code,
      ).not.toBe(0);
    });
  }

  it('recovers a credential made by tpm2_makecredential, and only for the AK it names', async () => {
    const secret = new Uint8Array(createHash('sha256').update('the secret').digest());
    const { ekPublic, blobs, other } = await withTpm(async (tpm) => ({
      ekPublic: await tpm.ekPublic('rsa'),
      blobs: await tpm.createAk('ecc-p256'),
      other: await tpm.createAk('ecc-p256'),
    }));
    const good = await makeCredential(ekPublic, secret, blobs.name);
    const forOther = await makeCredential(ekPublic, secret, other.name);
    await withTpm(async (tpm) => {
      const ak = await tpm.loadAk(blobs);
      expect(Buffer.from(await tpm.activateCredential(ak, good)).equals(Buffer.from(secret))).toBe(
        true,
      );
      // A credential bound to another AK's name fails the TPM's integrity check.
      const err = await expectCode(tpm.activateCredential(ak, forOther), 'ERR_TPM_RC');
      expect(hasTpmRc(err, TPM_RC.INTEGRITY)).toBe(true);
      expect(err.details['op']).toBe('Esys_ActivateCredential');
      expect(String(err.details['rcText'])).toContain('integrity check failed');
    });
  });

  it('activates credentials with the P-384 EK (H-3, HMAC-authorised, ECC salt) as well', async () => {
    const secret = new Uint8Array(32).fill(7);
    const { ekPublic, blobs } = await withTpm(async (tpm) => ({
      ekPublic: await tpm.ekPublic('ecc-p384'),
      blobs: await tpm.createAk('ecc-p256', { ek: 'ecc-p384' }),
    }));
    expect(blobs.ek).toBe('ecc-p384');
    const cred = await makeCredential(ekPublic, secret, blobs.name);
    const got = await withTpm(async (tpm) => tpm.activateCredential(await tpm.loadAk(blobs), cred));
    expect(Buffer.from(got).equals(Buffer.from(secret))).toBe(true);
  });

  it('seals and unseals, and a PCR-bound blob stops unsealing once that PCR is extended', async () => {
    const data = new Uint8Array(createHash('sha512').update('agent key').digest());
    const { bound, unbound } = await withTpm(async (tpm) => {
      const bound = await tpm.seal(data, { pcrs: { bank: 'sha256', indices: [7, 0] } });
      const unbound = await tpm.seal(data);
      expect(Buffer.from(await tpm.unseal(bound)).equals(Buffer.from(data))).toBe(true);
      expect(Buffer.from(await tpm.unseal(unbound)).equals(Buffer.from(data))).toBe(true);
      await expect(tpm.seal(new Uint8Array(129))).rejects.toBeInstanceOf(TypeError);
      await expect(tpm.seal(new Uint8Array(0))).rejects.toBeInstanceOf(TypeError);
      return { bound, unbound };
    });
    // A "firmware change": PCR 7 is extended.
    await swtpm.tpm2(['pcrextend', `7:sha256=${'ab'.repeat(32)}`]);
    await withTpm(async (tpm) => {
      const err = await expectCode(tpm.unseal(bound), 'ERR_TPM_RC');
      expect(hasTpmRc(err, TPM_RC.POLICY_FAIL)).toBe(true);
      expect(err.details['op']).toBe('Esys_Unseal');
      expect(Buffer.from(await tpm.unseal(unbound)).equals(Buffer.from(data))).toBe(true);
      // Damaged blobs: our framing, then the TPM structures inside it.
      await expectCode(
        tpm.unseal(bound.subarray(0, bound.length - 1)),
        'ERR_TPM_SEALED_BLOB_INVALID',
      );
      const garbled = Buffer.from(unbound);
      garbled.writeUInt16BE(0x0099, 13); // TPMT_PUBLIC type: no such algorithm
      const blobErr = await expectCode(tpm.unseal(garbled), 'ERR_TPM_BLOB_INVALID');
      expect(typeof blobErr.details['rc']).toBe('number');
    });
    // After a reboot the PCR is back to its sealed value: the bound blob unseals again.
    await swtpm.restart();
    await withTpm(async (tpm) => {
      expect(Buffer.from(await tpm.unseal(bound)).equals(Buffer.from(data))).toBe(true);
    });
  });

  it('reports a TPM that cannot be reached with its TCTI rc', async () => {
    const err = await expectCode(openTpm({ tcti: 'swtpm:host=127.0.0.1,port=1' }), 'ERR_TPM_RC');
    expect(err.details['op']).toBe('Tss2_TctiLdr_Initialize');
    expect(err.details['rc']).toBe(0xa000a);
    expect(err.details['rcText']).toBe('tcti:IO failure');
    await expect(openTpm({ tcti: '' })).rejects.toBeInstanceOf(TypeError);
  });

  it('reports an inactive PCR bank precisely', async () => {
    await withTpm(async (tpm) => {
      const err = await expectCode(
        tpm.readPcrs({ bank: 'sha1', indices: [0] }),
        'ERR_TPM_PCR_UNAVAILABLE',
      );
      expect(err.message).toContain('pcr bank not active');
      await expect(tpm.readPcrs({ bank: 'sha256', indices: [24] })).rejects.toBeInstanceOf(
        TypeError,
      );
      await expect(tpm.readPcrs({ bank: 'sha256', indices: [1, 1] })).rejects.toBeInstanceOf(
        TypeError,
      );
      // 24 PCRs need several TPM2_PCR_Read commands (at most 8 digests each).
      const all = await tpm.readPcrs({ bank: 'sha256', indices: [...Array(24).keys()] });
      expect(all.size).toBe(24);
      expect([...all.values()].every((d) => d.length === 32)).toBe(true);
    });
  });
});

// The at-rest format of sealed data is read back from the agent's store: a parser of bytes
// that may be damaged, so it gets property tests (no TPM needed).
describe('sealed blob format', () => {
  const tpm2b = fc
    .uint8Array({ maxLength: 300 })
    .map((b) => new Uint8Array([b.length >> 8, b.length & 0xff, ...b]));
  const selection = fc.option(
    fc.record({
      bank: fc.constantFrom('sha1', 'sha256', 'sha384', 'sha512') as fc.Arbitrary<
        'sha1' | 'sha256' | 'sha384' | 'sha512'
      >,
      indices: fc.uniqueArray(fc.integer({ min: 0, max: 23 }), { minLength: 1, maxLength: 24 }),
    }),
    { nil: undefined },
  );

  it('round-trips every well-formed blob', () => {
    fc.assert(
      fc.property(selection, tpm2b, tpm2b, (pcrs, pub, priv) => {
        const blob = encodeSealedBlob({ pcrs, public: pub, private: priv });
        const back = decodeSealedBlob(blob);
        expect(back.public).toEqual(pub);
        expect(back.private).toEqual(priv);
        expect(back.pcrs?.bank).toBe(pcrs?.bank);
        expect(back.pcrs?.indices).toEqual(pcrs && [...pcrs.indices].sort((a, b) => a - b));
        expect(encodeSealedBlob(back)).toEqual(blob);
      }),
      { numRuns: 300 },
    );
  });

  it('rejects any other bytes with ERR_TPM_SEALED_BLOB_INVALID only', () => {
    const valid = encodeSealedBlob({
      pcrs: { bank: 'sha256', indices: [0, 7] },
      public: new Uint8Array([0, 2, 1, 2]),
      private: new Uint8Array([0, 1, 9]),
    });
    const mutated = fc
      .tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 1, max: 255 }))
      .map(([i, x]) => {
        const b = new Uint8Array(valid);
        b[i]! ^= x;
        return b;
      });
    const inputs = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      mutated,
      fc.nat({ max: valid.length - 1 }).map((n) => valid.subarray(0, n)),
      fc.uint8Array({ minLength: 1, maxLength: 8 }).map((t) => new Uint8Array([...valid, ...t])),
    );
    fc.assert(
      fc.property(inputs, (bytes) => {
        try {
          const back = decodeSealedBlob(bytes);
          // Whatever decodes must re-encode to the same bytes (no silent reinterpretation).
          expect(encodeSealedBlob(back)).toEqual(bytes);
        } catch (e) {
          expect(isSpireEdgeError(e, 'ERR_TPM_SEALED_BLOB_INVALID')).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
    expect(() => decodeSealedBlob(valid.subarray(0, 10))).toThrow(
      /shorter than its 11-byte header/,
    );
  });
});
