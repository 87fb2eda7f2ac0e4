/**
 * A real agent API server for integration tests: SQLite datastore in a temp dir, a CA
 * manager with an in-memory key manager, the authorized-entries cache and the TLS listener
 * on 127.0.0.1 with an ephemeral port; plus agent-side helpers (keys, CSRs, transports).
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentSvid, attestAgent } from '../../src/agent/attestation/attest-agent.js';
import { createCsr } from '../../src/agent/attestation/csr.js';
import { createJoinTokenAttestorClient } from '../../src/agent/attestation/join-token.js';
import { createAgentApiTransport } from '../../src/agent/attestation/server-transport.js';
import { systemClock } from '../../src/common/clock.js';
import type { GrpcClientTransport } from '../../src/common/grpc.js';
import { nullLogger } from '../../src/common/log.js';
import { cryptoRandom } from '../../src/common/random.js';
import { MemoryKeyManager } from '../../src/hsm/memory.js';
import {
  type AgentServer,
  type AgentServerOptions,
  startAgentServer,
} from '../../src/server/api/agent/agent-server.js';
import type { ServerNodeAttestor } from '../../src/server/attestation/node-attestor.js';
import { AuthorizedEntries } from '../../src/server/authz/authorized-entries.js';
import { MemoryJournalStore } from '../../src/server/ca/journal.js';
import { CaManager } from '../../src/server/ca/manager.js';
import type { ServerContext, ServerMetrics } from '../../src/server/context.js';
import { openDataStore } from '../../src/server/datastore/index.js';
import type { DataStore } from '../../src/server/datastore/types.js';
import { parseTrustDomain } from '../../src/spiffe/id.js';

export const TD = 'example.org';

/** Counters of what the server reported. */
export interface RecordedMetrics extends ServerMetrics {
  readonly issued: { x509: number; jwt: number };
  readonly attestations: Array<[string, 'ok' | 'error']>;
  cacheSize: number;
}

export function recordingMetrics(): RecordedMetrics {
  const m: RecordedMetrics = {
    issued: { x509: 0, jwt: 0 },
    attestations: [],
    cacheSize: -1,
    svidIssued(type, _caller, count = 1) {
      m.issued[type] += count;
    },
    attestation(a, r) {
      m.attestations.push([a, r]);
    },
    datastoreLatency() {},
    authorizedEntriesCacheSize(n) {
      m.cacheSize = n;
    },
    caRotation() {},
  };
  return m;
}

/** One running server and what the tests need around it. */
export interface Harness {
  readonly ds: DataStore;
  readonly ca: CaManager;
  readonly context: ServerContext;
  readonly entries: AuthorizedEntries;
  readonly server: AgentServer;
  readonly metrics: RecordedMetrics;
  readonly port: number;
  /** The trust bundle roots (DER). */
  bundle(): Uint8Array[];
  /** A transport without a client certificate. */
  anonymous(): GrpcClientTransport;
  /** A transport authenticated with an agent SVID. */
  as(svid: AgentSvid, key: KeyObject): GrpcClientTransport;
  close(): Promise<void>;
}

export async function startHarness(
  opts: {
    attestors?: (ctx: ServerContext) => ServerNodeAttestor[];
    server?: Partial<AgentServerOptions>;
    context?: Partial<ServerContext>;
  } = {},
): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'agent-api-'));
  const ds = await openDataStore({
    databaseType: 'sqlite3',
    connectionString: join(dir, 'datastore.sqlite3'),
  });
  const ca = await CaManager.start({
    trustDomain: TD,
    keyManager: new MemoryKeyManager(),
    journalStore: new MemoryJournalStore(),
  });
  const metrics = recordingMetrics();
  const context: ServerContext = {
    trustDomain: parseTrustDomain(TD),
    dataStore: ds,
    ca: ca.ca,
    clock: systemClock,
    random: cryptoRandom,
    log: nullLogger,
    metrics,
    defaultX509SvidTtl: 3600,
    defaultJwtSvidTtl: 300,
    agentTtl: 3600,
    ...opts.context,
  };
  const entries = await AuthorizedEntries.start({
    dataStore: ds,
    trustDomain: TD,
    pollIntervalMs: 0,
    metrics,
  });
  const server = await startAgentServer({
    context,
    host: '127.0.0.1',
    port: 0,
    attestors: opts.attestors?.(context) ?? [],
    authorizedEntries: entries,
    rateLimit: { attestation: false },
    ...opts.server,
  });
  const transports: GrpcClientTransport[] = [];
  const port = server.address.port;
  const bundle = () => ca.ca.getX509Authorities();
  const track = (t: GrpcClientTransport) => {
    transports.push(t);
    return t;
  };
  return {
    ds,
    ca,
    context,
    entries,
    server,
    metrics,
    port,
    bundle,
    anonymous: () =>
      track(
        createAgentApiTransport({ host: '127.0.0.1', port, trustDomain: TD, bundle: bundle() }),
      ),
    as: (svid, key) =>
      track(
        createAgentApiTransport({
          host: '127.0.0.1',
          port,
          trustDomain: TD,
          bundle: bundle(),
          svid: { certChain: svid.certChain, privateKey: key },
        }),
      ),
    async close() {
      for (const t of transports) t.close();
      await server.close();
      await entries.close();
      await ca.close();
      await ds.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function newKey(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

/** Issues a join token and attests with it; returns the SVID and its key. */
export async function joinTokenAgent(
  h: Harness,
  token = `tok-${Math.random().toString(36).slice(2)}`,
): Promise<{ svid: AgentSvid; key: KeyObject; token: string; reattestable: boolean }> {
  await h.ds.createJoinToken({ token, expiresAt: Math.floor(Date.now() / 1000) + 600 });
  const key = newKey();
  const r = await attestAgent(h.anonymous(), createJoinTokenAttestorClient(token), {
    csr: createCsr(key),
  });
  return { svid: r.svid, key, token, reattestable: r.reattestable };
}
