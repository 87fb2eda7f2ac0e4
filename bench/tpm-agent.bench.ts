/**
 * Agent-side TPM attestation wall time with a real software TPM (swtpm, native tpm2-tss ESYS
 * in this process): one complete attestation is the agent's payload (open the TPM, read the
 * EK certificate and public area, load the AK) and its answer to the server's challenge
 * (TPM2_ActivateCredential, one TPM2_Quote over sha256 PCRs 0–7, read those PCRs, close),
 * verified by the server's `tpm` attestor in the same process (EK chain, MakeCredential,
 * quote). Baseline in the same run: the cheapest TPM session — open the TPM, TPM2_GetRandom
 * of 8 bytes, close — so the ratio says how many plain TPM round trips an attestation costs.
 * Reported as p50/p90 of N sequential runs (the TPM serves one caller at a time).
 */
import { readFileSync } from 'node:fs';
import { createTpmAttestorClient, type TpmAkStore } from '../src/agent/attestation/tpm.js';
import { ManualClock } from '../src/common/clock.js';
import { cryptoRandom } from '../src/common/random.js';
import { createTpmAttestor } from '../src/server/attestation/tpm.js';
import { parseCertificates } from '../src/spiffe/x509-cert.js';
import { openTpm } from '../src/tpm/device/index.js';
import type { AkBlobs } from '../src/tpm/device/tpm.js';
import { EkCaPool } from '../src/tpm/index.js';
import { startSwtpm } from '../test/harness/swtpm.js';
import { type Benchmark, percentiles } from './lib.js';

const RUNS = 40;

async function timed(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

function row(name: string, samples: number[]): Record<string, number> {
  const p = percentiles(samples, [50, 90]);
  console.log(
    `  ${name.padEnd(60)} p50 ${p.p50!.toFixed(1).padStart(7)} ms   p90 ${p.p90!.toFixed(1).padStart(7)} ms`,
  );
  return p;
}

const bench: Benchmark = {
  title: 'agent-side TPM attestation with swtpm',
  async run() {
    const tpm = await startSwtpm();
    try {
      const certs = tpm.ekCaCertPaths.flatMap((p) => parseCertificates(readFileSync(p, 'utf8')));
      const selfSigned = (c: (typeof certs)[number]) =>
        Buffer.from(c.issuerDer).equals(Buffer.from(c.subjectDer));
      const pool = EkCaPool.from({
        roots: certs.filter(selfSigned).map((c) => c.der),
        intermediates: certs.filter((c) => !selfSigned(c)).map((c) => c.der),
      });
      const server = createTpmAttestor({
        trustDomain: 'example.org',
        clock: new ManualClock(Date.now()),
        random: cryptoRandom,
        ekCaPool: pool,
      });
      let blobs: AkBlobs | undefined;
      const akStore: TpmAkStore = {
        load: async () => blobs,
        save: async (b) => {
          blobs = b;
        },
      };
      const agent = createTpmAttestorClient({
        openTpm: () => openTpm({ tcti: tpm.tcti }),
        akStore,
      });
      let agentMs = 0;
      const attest = async () => {
        let t = performance.now();
        const payload = await agent.payload();
        agentMs = performance.now() - t;
        await server.attest(
          payload,
          async (c) => {
            t = performance.now();
            const r = await agent.respond(c);
            agentMs += performance.now() - t;
            return r;
          },
          {},
        );
      };
      // The first attestation creates the AK (kept for the others, as on a device).
      const t0 = performance.now();
      await attest();
      const first = performance.now() - t0;
      const agentSide: number[] = [];
      const whole = await timed(RUNS, async () => {
        await attest();
        agentSide.push(agentMs);
      });
      const baseline = await timed(RUNS, async () => {
        const t = await openTpm({ tcti: tpm.tcti });
        try {
          await t.getRandom(8);
        } finally {
          await t.close();
        }
      });
      console.log(`\n## ${RUNS} sequential attestations (swtpm ${tpm.tcti})`);
      console.log(
        `  first attestation, AK created                              ${first.toFixed(1)} ms`,
      );
      const a = row('agent side (payload + respond: TPM work and encoding)', agentSide);
      row('whole attestation (agent + server verification, in process)', whole);
      const b = row('baseline: open TPM + GetRandom(8) + close', baseline);
      console.log(
        `  ratio agent side / baseline (p50): ${(a.p50! / b.p50!).toFixed(1)} TPM round trips`,
      );
    } finally {
      await tpm.stop();
    }
  },
};

export default bench;
