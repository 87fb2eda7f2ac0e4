/**
 * X509-SVIDs signed by a CA key on a PKCS#11 token (SoftHSM2): SVIDs issued per second
 * through the pkcs11 KeyManager and X509SvidMinter, beside raw C_Sign per second on the same
 * token (one session synchronously, and the session pool asynchronously) and raw software
 * signing, all in the same run. Goal: SVID issuance ≥ 70 % of the raw HSM signing rate.
 *
 * Needs softhsm2 and opensc (scripts/setup.sh).
 */
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { softwareSigner } from '../src/hsm/memory.js';
import { openPkcs11KeyManager } from '../src/hsm/pkcs11/key-manager.js';
import { findObjects } from '../src/hsm/pkcs11/objects.js';
import { mintX509CaCertificate, X509SvidMinter } from '../src/spiffe/x509-mint.js';
import { startSoftHsm } from '../test/harness/softhsm.js';
import { type Benchmark, measure, measureConcurrent, type Rate, reportRatio } from './lib.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 1);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const POOL = Number(process.env['BENCH_HSM_POOL'] ?? 4);
const CONCURRENCY = Number(process.env['BENCH_HSM_CONCURRENCY'] ?? 32);

/**
 * The machines this runs on are shared: measurements alternate in rounds and each figure is
 * the median of its rounds, so a burst of load elsewhere does not favour one side.
 */
function medianRate(rates: Rate[]): Rate {
  const sorted = [...rates].sort((a, b) => a.opsPerSec - b.opsPerSec);
  const m = sorted[Math.floor(sorted.length / 2)]!;
  return { ...m, name: `${m.name} [median of ${rates.length}]` };
}

/** Raw C_Sign on the token through pkcs11js directly (no project code in the loop). */
async function openRawToken(
  modulePath: string,
  label: string,
  pin: string,
  keyLabel: string,
): Promise<{ sync: (d: Buffer) => void; async: (d: Buffer) => Promise<void>; close(): void }> {
  const p11 = new pkcs11js.PKCS11();
  p11.load(modulePath);
  // The KeyManager has initialised the library in this process already.
  try {
    p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (err) {
    if ((err as { code?: number }).code !== 0x191) throw err;
  }
  const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === label);
  if (slot === undefined) throw new Error(`no token ${label}`);
  const sessions = Array.from({ length: POOL }, () =>
    p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION),
  );
  try {
    p11.C_Login(sessions[0]!, pkcs11js.CKU_USER, pin);
  } catch (err) {
    if ((err as { code?: number }).code !== 0x100) throw err; // already logged in
  }
  const [key] = findObjects(p11, sessions[0]!, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    { type: pkcs11js.CKA_LABEL, value: keyLabel },
  ]);
  if (key === undefined) throw new Error('key not found');
  const mech = { mechanism: pkcs11js.CKM_ECDSA };
  const out = Buffer.alloc(64);
  const s0 = sessions[0]!;
  const free = [...sessions];
  return {
    sync(digest) {
      p11.C_SignInit(s0, mech, key);
      p11.C_Sign(s0, digest, out);
    },
    async async(digest) {
      const s = free.pop()!;
      try {
        p11.C_SignInit(s, mech, key);
        await p11.C_SignAsync(s, digest, Buffer.allocUnsafe(64));
      } finally {
        free.push(s);
      }
    },
    close() {
      for (const s of sessions) p11.C_CloseSession(s);
    },
  };
}

const bench: Benchmark = {
  title: `X509-SVIDs with a P-256 CA key on SoftHSM2 (pool ${POOL}, ${CONCURRENCY} in flight)`,
  async run() {
    const hsm = await startSoftHsm({ label: 'bench' });
    process.env['SOFTHSM2_CONF'] = hsm.confPath;
    const km = await openPkcs11KeyManager({
      modulePath: hsm.modulePath,
      tokenLabel: hsm.label,
      pin: hsm.pin,
      sessionPoolSize: POOL,
    });
    try {
      const caKey = await km.generateKey('x509-CA-A', 'ec-p256');
      const now = new Date();
      const notAfter = new Date(now.getTime() + 86_400_000);
      const caCert = await mintX509CaCertificate({
        trustDomain: 'example.org',
        subject: { country: ['US'], organization: ['SPIFFE'] },
        publicKey: caKey.publicKey,
        notBefore: now,
        notAfter,
        signer: caKey,
      });
      const hsmMinter = new X509SvidMinter({ issuerCertDer: caCert, signer: caKey });
      const leafKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
      const leafSpki = new Uint8Array(leafKey.export({ type: 'spki', format: 'der' }));
      const svidOpts = {
        spiffeId: 'spiffe://example.org/ns/default/sa/reports',
        publicKey: leafSpki,
        notBefore: now,
        notAfter: new Date(now.getTime() + 3_600_000),
      };
      // The same TBS size as a real SVID, for the raw baselines.
      const tbsLike = (await hsmMinter.mint(svidOpts)).subarray(0, 400);
      const digest = createHash('sha256').update(tbsLike).digest();

      // Wait for signing_mode auto to finish measuring the token.
      for (let i = 0; i < 100 && !km.signingMode.decided; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      console.log(`  signing_mode auto: ${km.signingMode.reason}`);
      // The same key through a second KeyManager forced to sign in libuv workers (it finds
      // the key by label, as a restarted server would).
      const asyncKm = await openPkcs11KeyManager({
        modulePath: hsm.modulePath,
        tokenLabel: hsm.label,
        pin: hsm.pin,
        sessionPoolSize: POOL,
        signingMode: 'async',
      });
      const asyncKey = (await asyncKm.getKey('x509-CA-A'))!;
      const asyncMinter = new X509SvidMinter({ issuerCertDer: caCert, signer: asyncKey });
      // And one signing on the event loop.
      const syncKm = await openPkcs11KeyManager({
        modulePath: hsm.modulePath,
        tokenLabel: hsm.label,
        pin: hsm.pin,
        sessionPoolSize: POOL,
        signingMode: 'sync',
      });
      const syncKey = (await syncKm.getKey('x509-CA-A'))!;
      const syncMinter = new X509SvidMinter({ issuerCertDer: caCert, signer: syncKey });
      const raw = await openRawToken(
        hsm.modulePath,
        hsm.label,
        hsm.pin,
        `${km.keyLabelPrefix}x509-CA-A`,
      );

      const rounds: Record<string, Rate[]> = {};
      const add = (k: string, r: Rate): void => {
        const list = rounds[k] ?? [];
        list.push(r);
        rounds[k] = list;
      };
      const opts = { seconds: SECONDS };
      const conc = { seconds: SECONDS, concurrency: CONCURRENCY };
      for (let i = 0; i < ROUNDS; i++) {
        add(
          'rawSync',
          await measure(
            'raw C_Sign P-256, 1 session, sync (pkcs11js)',
            () => raw.sync(digest),
            opts,
          ),
        );
        add(
          'rawPooled',
          await measureConcurrent(
            `raw C_SignAsync P-256, ${POOL} sessions (pkcs11js)`,
            () => raw.async(digest),
            {
              seconds: SECONDS,
              concurrency: POOL,
            },
          ),
        );
        add(
          'kmSign',
          await measureConcurrent(
            `pkcs11 KeyManager key.sign, auto → ${km.signingMode.path} (${CONCURRENCY} in flight)`,
            () => caKey.sign(tbsLike),
            conc,
          ),
        );
        add(
          'svids',
          await measureConcurrent(
            `X509SvidMinter.mint, pkcs11 key, auto → ${km.signingMode.path} (${CONCURRENCY} in flight)`,
            () => hsmMinter.mint(svidOpts),
            conc,
          ),
        );
        add(
          'svidsAsync',
          await measureConcurrent(
            `X509SvidMinter.mint, pkcs11 key, signing_mode async (${CONCURRENCY} in flight)`,
            () => asyncMinter.mint(svidOpts),
            conc,
          ),
        );
        add(
          'svidsSync',
          await measureConcurrent(
            `X509SvidMinter.mint, pkcs11 key, signing_mode sync (${CONCURRENCY} in flight)`,
            () => syncMinter.mint(svidOpts),
            conc,
          ),
        );
      }
      raw.close();
      await asyncKm.close();
      await syncKm.close();
      console.log(`  signing_mode auto after the rounds: ${km.signingMode.reason}`);
      const rawSync = medianRate(rounds['rawSync']!);
      const rawPooled = medianRate(rounds['rawPooled']!);
      const kmSign = medianRate(rounds['kmSign']!);
      const svids = medianRate(rounds['svids']!);
      const svidsAsync = medianRate(rounds['svidsAsync']!);
      const svidsSync = medianRate(rounds['svidsSync']!);
      const mode = km.signingMode.path;

      // Software baselines: raw signing, and SVIDs from an in-memory CA key.
      const sw = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const rawSoftware = await measure(
        'raw crypto.sign P-256 (KeyObject)',
        () => sign('sha256', tbsLike, { key: sw, dsaEncoding: 'ieee-p1363' }),
        { seconds: SECONDS },
      );
      const swSigner = softwareSigner(sw);
      const swCa = await mintX509CaCertificate({
        trustDomain: 'example.org',
        subject: { country: ['US'], organization: ['SPIFFE'] },
        publicKey: swSigner.publicKey,
        notBefore: now,
        notAfter,
        signer: swSigner,
      });
      const swMinter = new X509SvidMinter({ issuerCertDer: swCa, signer: swSigner });
      const swSvids = await measure(
        'X509SvidMinter.mintSync, software key',
        () => swMinter.mintSync(svidOpts),
        { seconds: SECONDS },
      );

      const bestRaw = rawSync.opsPerSec >= rawPooled.opsPerSec ? rawSync : rawPooled;
      reportRatio('pkcs11 KeyManager signs/s vs raw C_Sign/s', kmSign, rawSync);
      reportRatio(
        `SVIDs/s (pkcs11 key, signing_mode auto → ${mode}) vs the best raw HSM signing rate`,
        svids,
        bestRaw,
        0.7,
      );
      // The same comparison round by round (each round measures both back to back).
      const perRound = rounds['svids']!.map((r, i) => {
        const a = rounds['rawSync']![i]!.opsPerSec;
        const b = rounds['rawPooled']![i]!.opsPerSec;
        return r.opsPerSec / Math.max(a, b);
      });
      const sorted = [...perRound].sort((a, b) => a - b);
      console.log(
        `  per-round ratios ${perRound.map((r) => r.toFixed(3)).join(', ')}; median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(3)}`,
      );
      reportRatio(
        'SVIDs/s (pkcs11 key, signing_mode sync) vs raw C_Sign/s, sync',
        svidsSync,
        rawSync,
      );
      reportRatio(
        'SVIDs/s (pkcs11 key, signing_mode async) vs raw C_SignAsync/s, pooled',
        svidsAsync,
        rawPooled,
      );
      reportRatio('raw C_SignAsync/s, pooled vs raw C_Sign/s, sync', rawPooled, rawSync);
      reportRatio('raw C_Sign/s (SoftHSM, sync) vs raw crypto.sign/s', rawSync, rawSoftware);
      reportRatio('SVIDs/s (software key) vs raw crypto.sign/s', swSvids, rawSoftware);
    } finally {
      await km.close();
      await hsm.stop();
    }
  },
};

export default bench;
