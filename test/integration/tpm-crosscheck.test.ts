/**
 * Cross-checks of src/tpm with an independent implementation: tpm2-tools 5.4 driving a real
 * software TPM (swtpm). Quotes made by tpm2_quote verify with verifyQuote (and fail when a PCR
 * value changes); credentials made by our makeCredential are recovered by
 * tpm2_activatecredential (RSA and ECC EKs); our AK names equal tpm2_createak's; the EK
 * pub_hash from our TPMT_PUBLIC → SPKI path equals the hash of tpm2_createek's PEM; the EK
 * certificate in NV parses under the profile, chains to the swtpm local CA and certifies the
 * EK.
 *
 * swtpm has no resource manager: every step flushes transient objects (tpm2_flushcontext -t)
 * and saved sessions.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePem } from '../../src/common/pem.js';
import {
  checkAkAttributes,
  EkCaPool,
  ekCertMatchesPublic,
  makeCredential,
  objectName,
  type PcrBank,
  parseEkCertificate,
  parseTpm2bEncryptedSecret,
  parseTpm2bIdObject,
  parseTpm2bPublic,
  parseTpmsAttest,
  parseTpmtSignature,
  pubHash,
  TPM_ALG,
  type TpmtPublic,
  verifyQuote,
} from '../../src/tpm/index.js';
import { makeTempDir, removeTempDir } from '../harness/common.js';
import { SWTPM_HANDLES, type SwtpmInstance, startSwtpm } from '../harness/swtpm.js';

let tpm: SwtpmInstance;
let dir: string;

beforeAll(async () => {
  tpm = await startSwtpm();
  dir = await makeTempDir('tpm-crosscheck');
});

afterAll(async () => {
  await tpm?.stop();
  if (dir !== undefined) await removeTempDir(dir);
});

const f = (name: string): string => join(dir, name);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

async function tpm2(...args: string[]): Promise<void> {
  await tpm.tpm2(args);
}

async function flush(): Promise<void> {
  await tpm2('flushcontext', '-t');
  await tpm2('flushcontext', '-s');
}

/** tpm2_createek (transient, saved to `ctx`) → our parsed EK public area. */
async function createEk(alg: 'rsa' | 'ecc', ctx: string): Promise<TpmtPublic> {
  await tpm2('createek', '-c', f(ctx), '-G', alg, '-u', f(`${ctx}.pub`));
  await flush();
  return parseTpm2bPublic(await readFile(f(`${ctx}.pub`)));
}

/** tpm2_createak under the EK context → { public, name file bytes }. */
async function createAk(
  ek: string,
  ctx: string,
  alg: 'ecc' | 'rsa',
  scheme: 'ecdsa' | 'rsassa' | 'rsapss',
): Promise<{ pub: TpmtPublic; name: Uint8Array }> {
  await tpm2(
    'createak',
    '-C',
    f(ek),
    '-c',
    f(ctx),
    '-G',
    alg,
    '-g',
    'sha256',
    '-s',
    scheme,
    '-u',
    f(`${ctx}.pub`),
    '-n',
    f(`${ctx}.name`),
  );
  await flush();
  return {
    pub: parseTpm2bPublic(await readFile(f(`${ctx}.pub`))),
    name: new Uint8Array(await readFile(f(`${ctx}.name`))),
  };
}

/** tpm2_makecredential's file layout: BE32 0xBADCC0DE, BE32 version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET. */
function credentialFile(idObject: Uint8Array, encryptedSecret: Uint8Array): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(0xbadcc0de, 0);
  header.writeUInt32BE(1, 4);
  return Buffer.concat([header, idObject, encryptedSecret]);
}

/** TPM2_ActivateCredential through tpm2-tools with the EK policy session; returns the secret or the failure. */
async function activate(
  ak: string,
  ek: string,
  blob: string,
): Promise<{ ok: boolean; secret?: Buffer; stderr: string }> {
  await tpm2('startauthsession', '--policy-session', '-S', f('session.ctx'));
  await tpm2('policysecret', '-S', f('session.ctx'), '-c', '0x4000000B');
  const r = await tpm.tpm2(
    [
      'activatecredential',
      '-c',
      f(ak),
      '-C',
      f(ek),
      '-i',
      f(blob),
      '-o',
      f('secret.out'),
      '-P',
      `session:${f('session.ctx')}`,
    ],
    { allowFailure: true, env: { TSS2_LOG: 'all+none' } },
  );
  await tpm2('flushcontext', f('session.ctx')).catch(() => undefined);
  await flush();
  return r.code === 0
    ? { ok: true, secret: await readFile(f('secret.out')), stderr: r.stderr }
    : { ok: false, stderr: r.stderr };
}

describe('tpm2-tools against swtpm vs src/tpm', () => {
  let rsaEk: TpmtPublic;
  let eccEk: TpmtPublic;
  let eccAk: { pub: TpmtPublic; name: Uint8Array };
  let rsaAk: { pub: TpmtPublic; name: Uint8Array };

  beforeAll(async () => {
    rsaEk = await createEk('rsa', 'ek-rsa.ctx');
    eccEk = await createEk('ecc', 'ek-ecc.ctx');
    eccAk = await createAk('ek-rsa.ctx', 'ak-ecc.ctx', 'ecc', 'ecdsa');
    rsaAk = await createAk('ek-rsa.ctx', 'ak-rsa.ctx', 'rsa', 'rsassa');
  }, 60_000);

  it('parses the EKs and AKs tpm2-tools wrote, and computes the same AK names as tpm2_createak', async () => {
    expect(rsaEk).toMatchObject({ type: TPM_ALG.RSA, objectAttributes: 0x000300b2 });
    expect(eccEk).toMatchObject({ type: TPM_ALG.ECC, parameters: { curveId: 0x0003 } });
    for (const ak of [eccAk, rsaAk]) {
      expect(hex(objectName(ak.pub))).toBe(hex(ak.name));
      expect(() => checkAkAttributes(ak.pub)).not.toThrow();
    }
    // And tpm2_readpublic's name of the loaded AK agrees.
    const rp = await tpm.tpm2(['readpublic', '-c', f('ak-ecc.ctx'), '-n', f('rp.name')]);
    await flush();
    expect(hex(await readFile(f('rp.name')))).toBe(hex(eccAk.name));
    expect(rp.stdout).toContain(hex(eccAk.name));
  });

  it('hashes the EK public key from tpm2_createek -f pem to the same pub_hash', async () => {
    for (const [alg, ek] of [
      ['rsa', rsaEk],
      ['ecc', eccEk],
    ] as const) {
      await tpm2(
        'createek',
        '-c',
        f(`pem-${alg}.ctx`),
        '-G',
        alg,
        '-f',
        'pem',
        '-u',
        f(`ek-${alg}.pem`),
      );
      await flush();
      const [block] = decodePem(await readFile(f(`ek-${alg}.pem`), 'utf8'));
      expect(block!.label).toBe('PUBLIC KEY');
      expect(pubHash(ek)).toBe(createHash('sha256').update(block!.der).digest('hex'));
    }
  });

  it('verifies the RSA EK certificate from NV: profile, chain to the swtpm local CA, key == EK', async () => {
    await tpm2('nvread', `0x${SWTPM_HANDLES.rsaEkCertNv.toString(16)}`, '-o', f('ekcert.der'));
    const ek = parseEkCertificate(new Uint8Array(await readFile(f('ekcert.der'))));
    expect(ek.manufacturer).toMatch(/^id:[0-9A-F]{8}$/);
    expect(ek.model).toBeTruthy();
    expect(ek.version).toBeTruthy();
    const [root, intermediate] = await Promise.all(
      tpm.ekCaCertPaths.map((p) => readFile(p, 'utf8')),
    );
    const pool = EkCaPool.from({ roots: [root!], intermediates: [intermediate!] });
    expect(pool.verify(ek, { now: new Date() })).toHaveLength(3);
    expect(ekCertMatchesPublic(ek, rsaEk)).toBe(true);
    expect(ekCertMatchesPublic(ek, eccEk)).toBe(false);
    expect(ek.pubHash).toBe(pubHash(rsaEk));
  });

  it.each([
    ['ECDSA P-256', 'ak-ecc.ctx', () => eccAk],
    ['RSASSA-2048', 'ak-rsa.ctx', () => rsaAk],
  ] as const)(
    'verifies a tpm2_quote by the %s AK and refuses it when one PCR value changes',
    async (_, ctx, ak) => {
      await tpm2('pcrextend', `7:sha256=${randomBytes(32).toString('hex')}`);
      const nonce = randomBytes(20);
      await tpm2(
        'quote',
        '-c',
        f(ctx),
        '-l',
        'sha256:0,1,2,7',
        '-q',
        nonce.toString('hex'),
        '-m',
        f('quote.msg'),
        '-s',
        f('quote.sig'),
        '-o',
        f('pcrs.out'),
        '-F',
        'values',
        '-g',
        'sha256',
      );
      await flush();
      const quoted = new Uint8Array(await readFile(f('quote.msg')));
      const signature = new Uint8Array(await readFile(f('quote.sig')));
      const values = await readFile(f('pcrs.out'));
      expect(values).toHaveLength(4 * 32);
      const pcrs = new Map<PcrBank, Map<number, Uint8Array>>([
        [
          'sha256',
          new Map(
            [0, 1, 2, 7].map((i, k) => [i, new Uint8Array(values.subarray(k * 32, k * 32 + 32))]),
          ),
        ],
      ]);
      // tpm2_pcrread agrees with the values tpm2_quote wrote.
      await tpm2('pcrread', 'sha256:0,1,2,7', '-o', f('pcrread.out'));
      expect(hex(await readFile(f('pcrread.out')))).toBe(hex(values));

      const v = verifyQuote({ akPublic: ak().pub, quoted, signature, pcrs, expectedNonce: nonce });
      expect([...v.pcrSelection]).toEqual([['sha256', [0, 1, 2, 7]]]);
      expect(hex(v.pcrs.get('sha256')!.get(7)!)).toBe(hex(values.subarray(96)));
      expect(v.clockInfo.safe).toBe(true);
      expect(parseTpmtSignature(signature).sigAlg).toBe(
        ctx === 'ak-ecc.ctx' ? TPM_ALG.ECDSA : TPM_ALG.RSASSA,
      );
      expect(hex(parseTpmsAttest(quoted).extraData)).toBe(hex(nonce));

      const changed = new Map([['sha256' as PcrBank, new Map(pcrs.get('sha256')!)]]);
      const pcr0 = new Uint8Array(changed.get('sha256')!.get(0)!);
      pcr0[31]! ^= 1;
      changed.get('sha256')!.set(0, pcr0);
      expect(() =>
        verifyQuote({ akPublic: ak().pub, quoted, signature, pcrs: changed, expectedNonce: nonce }),
      ).toThrow(
        expect.objectContaining({
          code: 'ERR_TPM_QUOTE_INVALID',
          message: expect.stringContaining('pcrDigest'),
        }),
      );
      expect(() =>
        verifyQuote({
          akPublic: ak().pub,
          quoted,
          signature,
          pcrs,
          expectedNonce: randomBytes(20),
        }),
      ).toThrow(
        expect.objectContaining({
          code: 'ERR_TPM_QUOTE_INVALID',
          message: expect.stringContaining('nonce'),
        }),
      );
      const otherAk = ctx === 'ak-ecc.ctx' ? rsaAk : eccAk;
      expect(() =>
        verifyQuote({ akPublic: otherAk.pub, quoted, signature, pcrs, expectedNonce: nonce }),
      ).toThrow(expect.objectContaining({ code: 'ERR_TPM_QUOTE_INVALID' }));
    },
  );

  it.each([
    ['RSA-2048 EK (OAEP, "IDENTITY")', 'ek-rsa.ctx', () => rsaEk],
    ['ECC P-256 EK (ECDH + KDFe)', 'ek-ecc.ctx', () => eccEk],
  ] as const)(
    'tpm2_activatecredential recovers a secret from our makeCredential with the %s',
    async (_, ekCtx, ek) => {
      // An AK under this EK (the credential is bound to the AK's name).
      const ak =
        ekCtx === 'ek-rsa.ctx' ? eccAk : await createAk(ekCtx, 'ak-under-ecc.ctx', 'ecc', 'ecdsa');
      const akCtx = ekCtx === 'ek-rsa.ctx' ? 'ak-ecc.ctx' : 'ak-under-ecc.ctx';
      const secret = randomBytes(32);
      const made = makeCredential({
        ekPublic: ek(),
        objectName: objectName(ak.pub),
        credential: secret,
      });
      await writeFile(f('cred.blob'), credentialFile(made.idObject, made.encryptedSecret));
      const r = await activate(akCtx, ekCtx, 'cred.blob');
      expect(r.stderr).toBe('');
      expect(r.ok).toBe(true);
      expect(hex(r.secret!)).toBe(hex(secret));

      // Made for another name, the TPM refuses it (the HMAC binds the AK name).
      const wrong = makeCredential({
        ekPublic: ek(),
        objectName: objectName(rsaAk.pub),
        credential: secret,
      });
      await writeFile(f('wrong.blob'), credentialFile(wrong.idObject, wrong.encryptedSecret));
      const bad = await activate(akCtx, ekCtx, 'wrong.blob');
      expect(bad.ok).toBe(false);
    },
  );

  it('works with the persistent high-range ECC P-384 EK (SHA-384, AES-256-CFB) and its NV certificate', async () => {
    const handle = `0x${SWTPM_HANDLES.eccEk.toString(16)}`;
    await tpm2('readpublic', '-c', handle, '-o', f('ek-p384.pub'));
    const ek = parseTpm2bPublic(await readFile(f('ek-p384.pub')));
    expect(ek).toMatchObject({
      type: TPM_ALG.ECC,
      nameAlg: TPM_ALG.SHA384,
      parameters: {
        curveId: 0x0004,
        symmetric: { algorithm: TPM_ALG.AES, keyBits: 256, mode: TPM_ALG.CFB },
      },
    });
    // ActivateCredential needs the AK and the EK loaded in the same TPM, not the AK under this
    // EK; this template sets userWithAuth, so the EK is authorized by its (empty) password.
    const secret = randomBytes(48);
    const made = makeCredential({ ekPublic: ek, objectName: eccAk.name, credential: secret });
    await writeFile(f('p384.blob'), credentialFile(made.idObject, made.encryptedSecret));
    await tpm2(
      'activatecredential',
      '-c',
      f('ak-ecc.ctx'),
      '-C',
      handle,
      '-i',
      f('p384.blob'),
      '-o',
      f('p384.out'),
    );
    await flush();
    expect(hex(await readFile(f('p384.out')))).toBe(hex(secret));

    await tpm2('nvread', `0x${SWTPM_HANDLES.eccEkCertNv.toString(16)}`, '-o', f('ekcert-p384.der'));
    const cert = parseEkCertificate(new Uint8Array(await readFile(f('ekcert-p384.der'))));
    const [root, intermediate] = await Promise.all(
      tpm.ekCaCertPaths.map((p) => readFile(p, 'utf8')),
    );
    expect(
      EkCaPool.from({ roots: [root!], intermediates: [intermediate!] }).verify(cert, {
        now: new Date(),
      }),
    ).toHaveLength(3);
    expect(ekCertMatchesPublic(cert, ek)).toBe(true);
    expect(cert.pubHash).toBe(pubHash(ek));
  });

  it('reads the credential file that tpm2_makecredential itself writes as header + TPM2B_ID_OBJECT + TPM2B_ENCRYPTED_SECRET', async () => {
    await writeFile(f('plain.secret'), randomBytes(16));
    await tpm.tpm2([
      'makecredential',
      '-T',
      'none',
      '-u',
      f('ek-rsa.ctx.pub'),
      '-s',
      f('plain.secret'),
      '-n',
      hex(eccAk.name),
      '-o',
      f('tools.blob'),
    ]);
    const b = new Uint8Array(await readFile(f('tools.blob')));
    const view = Buffer.from(b);
    expect(view.readUInt32BE(0)).toBe(0xbadcc0de);
    expect(view.readUInt32BE(4)).toBe(1);
    const idLen = view.readUInt16BE(8);
    const id = parseTpm2bIdObject(b.subarray(8, 10 + idLen));
    expect(id.integrityHmac).toHaveLength(32);
    expect(id.encIdentity).toHaveLength(2 + 16);
    expect(parseTpm2bEncryptedSecret(b.subarray(10 + idLen))).toHaveLength(256);
    // Same shape as ours.
    const ours = makeCredential({
      ekPublic: rsaEk,
      objectName: eccAk.name,
      credential: randomBytes(16),
    });
    expect(credentialFile(ours.idObject, ours.encryptedSecret)).toHaveLength(b.length);
    // And the TPM activates tpm2-tools' blob too (a control for the activation steps above).
    expect((await activate('ak-ecc.ctx', 'ek-rsa.ctx', 'tools.blob')).ok).toBe(true);
  });
});
