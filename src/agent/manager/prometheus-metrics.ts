/**
 * The agent's metrics in Prometheus form (prom-client, a registry of its own); names in
 * metrics.ts. Loaded only when Prometheus is configured, through `DeferredAgentMetrics.load`.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { AgentMetrics } from './metrics.js';

/** {@link AgentMetrics} with the Prometheus registry that holds them. */
export interface AgentPrometheusMetrics extends AgentMetrics {
  readonly registry: Registry;
}

/** Creates the agent's metrics in a fresh registry. */
export function createAgentPrometheusMetrics(): AgentPrometheusMetrics {
  const registry = new Registry();
  const p = 'spire_edge_agent_';
  const registers = [registry];
  const syncs = new Counter({
    name: `${p}syncs_total`,
    help: 'Sync cycles with the server, by result',
    labelNames: ['result'],
    registers,
  });
  const minted = new Counter({
    name: `${p}x509_svids_minted_total`,
    help: 'Workload X509-SVIDs received from the server (first mint and rotations)',
    registers,
  });
  const mintFailures = new Counter({
    name: `${p}x509_svid_mint_failures_total`,
    help: 'Workload X509-SVIDs the server refused or that failed verification',
    registers,
  });
  const jwt = new Counter({
    name: `${p}jwt_svids_fetched_total`,
    help: 'JWT-SVIDs handed to workloads, by source',
    labelNames: ['source'],
    registers,
  });
  const attest = new Counter({
    name: `${p}node_attestations_total`,
    help: 'Agent SVID attestations and renewals, by kind and result',
    labelNames: ['kind', 'result'],
    registers,
  });
  const entries = new Gauge({
    name: `${p}cached_entries`,
    help: 'Authorized entries held',
    registers,
  });
  const x509 = new Gauge({
    name: `${p}cached_x509_svids`,
    help: 'Workload X509-SVIDs held',
    registers,
  });
  const jwts = new Gauge({ name: `${p}cached_jwt_svids`, help: 'JWT-SVIDs held', registers });
  const reachable = new Gauge({
    name: `${p}server_reachable`,
    help: '1 after a successful sync with the server, 0 after a failed one',
    registers,
  });
  const expiry = new Gauge({
    name: `${p}agent_svid_expiry_seconds`,
    help: "The agent SVID's notAfter, Unix seconds",
    registers,
  });
  return {
    registry,
    sync(result) {
      syncs.inc({ result });
      reachable.set(result === 'ok' ? 1 : 0);
    },
    x509SvidsMinted: (n) => minted.inc(n),
    x509SvidMintFailures: (n) => mintFailures.inc(n),
    jwtSvidFetched: (source) => jwt.inc({ source }),
    nodeAttestation: (kind, result) => attest.inc({ kind, result }),
    cacheSizes(s) {
      entries.set(s.entries);
      x509.set(s.x509Svids);
      jwts.set(s.jwtSvids);
    },
    agentSvidExpiry: (ms) => expiry.set(Math.floor(ms / 1000)),
  };
}
