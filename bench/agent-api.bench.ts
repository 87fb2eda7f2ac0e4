/**
 * The agent API under load.
 *
 * 1. X509-SVIDs issued per second through BatchNewX509SVID over real TLS on 127.0.0.1
 *    (CSR in: parse, proof-of-possession check, authorization through the entry cache,
 *    mint, chain out), batches of 50, several concurrent streams on several connections,
 *    beside raw `crypto.sign` P-256 signatures per second in the same run. The agents run
 *    in a worker thread so the server has its event loop to itself, as it would in
 *    production. Goal: ≥ 25 % of the raw signing rate.
 * 2. Authorized-entries lookups at 10,000 agents × 10 entries (5 parented by the agent, 5
 *    through a node-alias entry shared by 10 agents): µs per lookup on one core. SPIRE
 *    reports ~21 µs per lookup at 50,000 agents for its in-memory cache.
 *
 * This file is also the worker's entry point (it checks `workerData`).
 */
import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createClient } from '@connectrpc/connect';
import { attestAgent } from '../src/agent/attestation/attest-agent.js';
import { createCsr } from '../src/agent/attestation/csr.js';
import { createJoinTokenAttestorClient } from '../src/agent/attestation/join-token.js';
import { createAgentApiTransport } from '../src/agent/attestation/server-transport.js';
import { ManualClock, systemClock } from '../src/common/clock.js';
import { nullLogger } from '../src/common/log.js';
import { cryptoRandom } from '../src/common/random.js';
import { MemoryKeyManager } from '../src/hsm/memory.js';
import { svidv1 } from '../src/protocol/index.js';
import { startAgentServer } from '../src/server/api/agent/agent-server.js';
import { AuthorizedEntries } from '../src/server/authz/authorized-entries.js';
import { AuthorizedEntryCache } from '../src/server/authz/authorized-entries-cache.js';
import { MemoryJournalStore } from '../src/server/ca/journal.js';
import { CaManager } from '../src/server/ca/manager.js';
import type { ServerCa } from '../src/server/ca/server-ca.js';
import { noMetrics, type ServerContext } from '../src/server/context.js';
import { openDataStore } from '../src/server/datastore/index.js';
import type { RegistrationEntry } from '../src/server/datastore/types.js';
import { parseTrustDomain } from '../src/spiffe/id.js';
import { type Benchmark, measure, type Rate, reportRatio } from './lib.js';

const TD = 'example.org';
const BATCH = 50;
const CONNECTIONS = 2;
const STREAMS_PER_CONNECTION = 4;
const SECONDS = 4;

interface WorkerInput {
  readonly port: number;
  readonly bundle: Uint8Array[];
  readonly certChain: Uint8Array[];
  readonly keyPem: string;
  readonly entryIds: string[];
  readonly seconds: number;
}

/** The agents: hammer BatchNewX509SVID and report how many SVIDs came back OK. */
async function agentWorker(
  input: WorkerInput,
): Promise<{ svids: number; seconds: number; errors: number }> {
  const csrs = Array.from({ length: 256 }, () =>
    createCsr(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
  );
  const privateKey = createPrivateKey(input.keyPem);
  const transports = Array.from({ length: CONNECTIONS }, () =>
    createAgentApiTransport({
      host: '127.0.0.1',
      port: input.port,
      trustDomain: TD,
      bundle: input.bundle,
      svid: { certChain: input.certChain, privateKey },
    }),
  );
  let n = 0;
  const params = () =>
    input.entryIds.slice(0, BATCH).map((entryId) => ({ entryId, csr: csrs[n++ & 255]! }));
  const run = async (ms: number) => {
    const deadline = performance.now() + ms;
    let svids = 0;
    let errors = 0;
    const start = performance.now();
    await Promise.all(
      transports.flatMap((t) =>
        Array.from({ length: STREAMS_PER_CONNECTION }, async () => {
          const client = createClient(svidv1.SVID, t);
          while (performance.now() < deadline) {
            const res = await client.batchNewX509SVID({ params: params() });
            for (const r of res.results) {
              if (r.status?.code === 0) svids++;
              else errors++;
            }
          }
        }),
      ),
    );
    return { svids, errors, seconds: (performance.now() - start) / 1000 };
  };
  await run(500); // warm-up
  const result = await run(input.seconds * 1000);
  for (const t of transports) t.close();
  return result;
}

if (!isMainThread && (workerData as { agentApiBench?: WorkerInput } | null)?.agentApiBench) {
  const input = (workerData as { agentApiBench: WorkerInput }).agentApiBench;
  agentWorker(input).then(
    (r) => parentPort?.postMessage(r),
    (err: unknown) => parentPort?.postMessage({ error: String(err) }),
  );
}

/** Runs the agents' load in a worker thread for SECONDS; SVIDs/s. */
async function agentLoad(input: WorkerInput, name: string): Promise<Rate> {
  // The worker loads this TypeScript file again, through tsx's loader.
  const bootstrap = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); })`;
  const worker = new Worker(bootstrap, { eval: true, workerData: { agentApiBench: input } });
  try {
    const r = await new Promise<{ svids: number; seconds: number; errors: number; error?: string }>(
      (resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      },
    );
    if (r.error !== undefined) throw new Error(`agent worker failed: ${r.error}`);
    if (r.errors > 0) throw new Error(`${r.errors} SVID requests failed`);
    return { name, ops: r.svids, seconds: r.seconds, opsPerSec: r.svids / r.seconds };
  } finally {
    await worker.terminate();
  }
}

async function signingThroughput(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'agent-api-bench-'));
  const ds = await openDataStore({
    databaseType: 'sqlite3',
    connectionString: join(dir, 'datastore.sqlite3'),
  });
  const ca = await CaManager.start({
    trustDomain: TD,
    keyManager: new MemoryKeyManager(),
    journalStore: new MemoryJournalStore(),
  });
  // The real CA, or (for the second run) one that returns a chain signed earlier: that run
  // measures the API layer alone (TLS, auth, entry cache, protobuf).
  let stubChain: Awaited<ReturnType<ServerCa['signX509SvidFromCsr']>> | undefined;
  const serverCa: ServerCa = {
    signX509Svid: (p) => ca.ca.signX509Svid(p),
    signJwtSvid: (p) => ca.ca.signJwtSvid(p),
    getX509Authorities: () => ca.ca.getX509Authorities(),
    getJwtAuthorities: () => ca.ca.getJwtAuthorities(),
    getCurrentX509Ca: () => ca.ca.getCurrentX509Ca(),
    signX509SvidFromCsr: async (csr, p) => stubChain ?? ca.ca.signX509SvidFromCsr(csr, p),
  };
  const context: ServerContext = {
    trustDomain: parseTrustDomain(TD),
    dataStore: ds,
    ca: serverCa,
    clock: systemClock,
    random: cryptoRandom,
    log: nullLogger,
    metrics: noMetrics,
    defaultX509SvidTtl: 3600,
    defaultJwtSvidTtl: 300,
    agentTtl: 3600,
  };
  const entries = await AuthorizedEntries.start({
    dataStore: ds,
    trustDomain: TD,
    pollIntervalMs: 0,
  });
  const server = await startAgentServer({
    context,
    host: '127.0.0.1',
    port: 0,
    authorizedEntries: entries,
    rateLimit: { attestation: false, signing: false },
  });
  try {
    await ds.createJoinToken({ token: 'bench', expiresAt: Math.floor(Date.now() / 1000) + 600 });
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const bundle = ca.ca.getX509Authorities();
    const anon = createAgentApiTransport({
      host: '127.0.0.1',
      port: server.address.port,
      trustDomain: TD,
      bundle,
    });
    const agent = await attestAgent(anon, createJoinTokenAttestorClient('bench'), {
      csr: createCsr(key),
    });
    anon.close();
    const entryIds: string[] = [];
    for (let i = 0; i < BATCH; i++) {
      const e = await ds.createEntry({
        spiffeId: `spiffe://example.org/workload/${i}`,
        parentId: agent.svid.id,
        selectors: [{ type: 'unix', value: `uid:${1000 + i}` }],
        dnsNames: [`w${i}.example.org`],
      });
      entryIds.push(e.id);
    }
    await entries.poll();

    // Raw baseline: P-256 signatures over a tbsCertificate-sized buffer with a KeyObject.
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const tbs = new Uint8Array(420).fill(7);
    const raw = await measure('crypto.sign P-256 (KeyObject, 420 B)', () =>
      sign('sha256', tbs, privateKey),
    );
    // The CA path alone, in process: CSR parse + proof-of-possession check + mint.
    const csrs = Array.from({ length: 64 }, () =>
      createCsr(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
    );
    let i = 0;
    const caPath = await measure('ServerCa.signX509SvidFromCsr (in process)', () =>
      ca.ca.signX509SvidFromCsr(csrs[i++ & 63]!, {
        spiffeId: 'spiffe://example.org/workload/0',
        dnsNames: ['w0.example.org'],
      }),
    );

    const input: WorkerInput = {
      port: server.address.port,
      bundle,
      certChain: agent.svid.certChain,
      keyPem: key.export({ format: 'pem', type: 'pkcs8' }) as string,
      entryIds,
      seconds: SECONDS,
    };
    const streams = CONNECTIONS * STREAMS_PER_CONNECTION;
    const issued = await agentLoad(
      input,
      `BatchNewX509SVID over TLS (${BATCH}/batch, ${streams} streams)`,
    );
    stubChain = await ca.ca.signX509SvidFromCsr(csrs[0]!, {
      spiffeId: 'spiffe://example.org/workload/0',
    });
    const apiOnly = await agentLoad(input, 'same, CA stubbed (API layer alone)');
    reportRatio('X509-SVIDs issued through the agent API vs raw P-256 signing', issued, raw, 0.25);
    reportRatio('The CA path alone (no gRPC) vs raw P-256 signing', caPath, raw);
    reportRatio('The agent API with the CA stubbed vs raw P-256 signing', apiOnly, raw, 0.25);
  } finally {
    await server.close();
    await entries.close();
    await ca.close();
    await ds.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function lookupLatency(): Promise<void> {
  const AGENTS = 10_000;
  const AGENTS_PER_ALIAS = 10;
  const DIRECT = 5;
  const VIA_ALIAS = 5;
  const clock = new ManualClock(Date.now());
  const cache = new AuthorizedEntryCache({ trustDomain: TD, clock });
  const now = Math.floor(Date.now() / 1000);
  let n = 0;
  const entry = (spiffeId: string, parentId: string, value: string): RegistrationEntry => ({
    id: `e${n++}`,
    spiffeId,
    parentId,
    selectors: [{ type: 'unix', value }],
    x509SvidTtl: 0,
    jwtSvidTtl: 0,
    dnsNames: [],
    federatesWith: [],
    admin: false,
    downstream: false,
    hint: '',
    storeSvid: false,
    entryExpiry: 0,
    revisionNumber: 0,
    createdAt: now,
  });
  const t0 = performance.now();
  const agentIds: string[] = [];
  for (let g = 0; g < AGENTS / AGENTS_PER_ALIAS; g++) {
    const aliasId = `spiffe://example.org/node/group-${g}`;
    cache.updateEntry({
      ...entry(aliasId, 'spiffe://example.org/spire/server', ''),
      selectors: [{ type: 'x509pop', value: `san:group:${g}` }],
    });
    for (let k = 0; k < VIA_ALIAS; k++) {
      cache.updateEntry(entry(`spiffe://example.org/group-${g}/svc-${k}`, aliasId, `uid:${k}`));
    }
    for (let a = 0; a < AGENTS_PER_ALIAS; a++) {
      const agentId = `spiffe://example.org/spire/agent/x509pop/${g}-${a}`;
      agentIds.push(agentId);
      cache.updateAgent(agentId, now + 3600, [
        { type: 'x509pop', value: `subject:cn:gw-${g}-${a}` },
        { type: 'x509pop', value: 'ca:fingerprint:0123456789abcdef0123456789abcdef01234567' },
        { type: 'x509pop', value: `serialnumber:${(g * AGENTS_PER_ALIAS + a).toString(16)}` },
        { type: 'x509pop', value: `san:group:${g}` },
      ]);
      for (let k = 0; k < DIRECT; k++) {
        cache.updateEntry(entry(`spiffe://example.org/gw-${g}-${a}/app-${k}`, agentId, `uid:${k}`));
      }
    }
  }
  const buildMs = performance.now() - t0;
  if (cache.getAuthorizedEntries(agentIds[0]!).length !== DIRECT + VIA_ALIAS) {
    throw new Error('benchmark cache is not shaped as intended');
  }
  let seed = 12345;
  const r = await measure(
    'getAuthorizedEntries',
    () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return cache.getAuthorizedEntries(agentIds[seed % AGENTS]!);
    },
    { seconds: 2 },
  );
  const s = cache.stats();
  console.log('\n## Authorized-entries lookup (one core)');
  console.log(
    `  ${AGENTS.toLocaleString('en-US')} agents, ${s.entries.toLocaleString('en-US')} entries + ${s.aliases.toLocaleString('en-US')} node aliases (built in ${buildMs.toFixed(0)} ms)`,
  );
  console.log(
    `  getAuthorizedEntries: ${(1e6 / r.opsPerSec).toFixed(2)} µs per lookup (${Math.round(r.opsPerSec).toLocaleString('en-US')}/s, 10 entries each); SPIRE reports ~21 µs at 50,000 agents`,
  );
}

const bench: Benchmark = {
  title: 'Agent API: BatchNewX509SVID over TLS and authorized-entries lookups',
  async run() {
    await signingThroughput();
    await lookupLatency();
  },
};

export default bench;
