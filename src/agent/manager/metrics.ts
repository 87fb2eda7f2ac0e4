/**
 * What the agent's managers report, behind the {@link AgentMetrics} interface: the null sink,
 * and {@link DeferredAgentMetrics}, which counts in plain numbers until the Prometheus
 * implementation (prometheus-metrics.ts, prom-client) is loaded — after the Workload API
 * listens, and only when Prometheus is configured — then hands everything over to it.
 *
 * Metric names (all prefixed `spire_edge_agent_`):
 * - `syncs_total{result="ok|error"}` — sync cycles with the server
 * - `x509_svids_minted_total` — workload X509-SVIDs received (first mint and rotations)
 * - `x509_svid_mint_failures_total` — workload X509-SVIDs the server refused or that failed checks
 * - `jwt_svids_fetched_total{source="server|cache"}` — JWT-SVIDs handed to workloads
 * - `node_attestations_total{kind="attest|renew",result="ok|error"}` — agent SVID attestation and renewal
 * - `cached_entries`, `cached_x509_svids`, `cached_jwt_svids` — what the store holds
 * - `server_reachable` — 1 after a successful sync, 0 after a failed one
 * - `agent_svid_expiry_seconds` — the agent SVID's notAfter (Unix seconds)
 */
import type { AgentPrometheusMetrics } from './prometheus-metrics.js';

/** The agent's metrics sink. */
export interface AgentMetrics {
  sync(result: 'ok' | 'error'): void;
  x509SvidsMinted(count: number): void;
  x509SvidMintFailures(count: number): void;
  jwtSvidFetched(source: 'server' | 'cache'): void;
  nodeAttestation(kind: 'attest' | 'renew', result: 'ok' | 'error'): void;
  cacheSizes(sizes: { entries: number; x509Svids: number; jwtSvids: number }): void;
  agentSvidExpiry(expiresAtMs: number): void;
}

/** Drops everything. */
export const nullAgentMetrics: AgentMetrics = {
  sync() {},
  x509SvidsMinted() {},
  x509SvidMintFailures() {},
  jwtSvidFetched() {},
  nodeAttestation() {},
  cacheSizes() {},
  agentSvidExpiry() {},
};

/**
 * {@link AgentMetrics} that needs nothing loaded: values are kept in plain numbers until
 * {@link DeferredAgentMetrics.load} loads prom-client and the agent's Prometheus metrics, which
 * then receive everything counted so far and every later call. An agent without Prometheus
 * never loads prom-client (measured: ~50 ms of start and ~2 MB; docs/performance.md).
 */
export class DeferredAgentMetrics implements AgentMetrics {
  #target: AgentMetrics | undefined;
  #loading: Promise<AgentPrometheusMetrics> | undefined;
  // what was reported before the Prometheus metrics existed
  readonly #syncs = { ok: 0, error: 0 };
  #lastSync: 'ok' | 'error' | undefined;
  #minted = 0;
  #mintFailures = 0;
  readonly #jwt = { server: 0, cache: 0 };
  readonly #attestations = new Map<`${'attest' | 'renew'}:${'ok' | 'error'}`, number>();
  #sizes: { entries: number; x509Svids: number; jwtSvids: number } | undefined;
  #expiryMs: number | undefined;

  sync(result: 'ok' | 'error'): void {
    if (this.#target !== undefined) {
      this.#target.sync(result);
      return;
    }
    this.#syncs[result]++;
    this.#lastSync = result;
  }

  x509SvidsMinted(count: number): void {
    if (this.#target !== undefined) {
      this.#target.x509SvidsMinted(count);
      return;
    }
    this.#minted += count;
  }

  x509SvidMintFailures(count: number): void {
    if (this.#target !== undefined) {
      this.#target.x509SvidMintFailures(count);
      return;
    }
    this.#mintFailures += count;
  }

  jwtSvidFetched(source: 'server' | 'cache'): void {
    if (this.#target !== undefined) {
      this.#target.jwtSvidFetched(source);
      return;
    }
    this.#jwt[source]++;
  }

  nodeAttestation(kind: 'attest' | 'renew', result: 'ok' | 'error'): void {
    if (this.#target !== undefined) {
      this.#target.nodeAttestation(kind, result);
      return;
    }
    const key = `${kind}:${result}` as const;
    this.#attestations.set(key, (this.#attestations.get(key) ?? 0) + 1);
  }

  cacheSizes(sizes: { entries: number; x509Svids: number; jwtSvids: number }): void {
    if (this.#target !== undefined) {
      this.#target.cacheSizes(sizes);
      return;
    }
    this.#sizes = { ...sizes };
  }

  agentSvidExpiry(expiresAtMs: number): void {
    if (this.#target !== undefined) {
      this.#target.agentSvidExpiry(expiresAtMs);
      return;
    }
    this.#expiryMs = expiresAtMs;
  }

  /**
   * Loads the Prometheus metrics (once), hands them what was reported so far and forwards
   * every later call to them. Resolves to them (their `registry` is what `/metrics` serves).
   */
  load(): Promise<AgentPrometheusMetrics> {
    this.#loading ??= import('./prometheus-metrics.js').then(({ createAgentPrometheusMetrics }) => {
      const m = createAgentPrometheusMetrics();
      // the last sync's result goes last: it sets server_reachable
      const order: ('ok' | 'error')[] =
        this.#lastSync === 'error' ? ['ok', 'error'] : ['error', 'ok'];
      for (const r of order) for (let i = 0; i < this.#syncs[r]; i++) m.sync(r);
      if (this.#minted > 0) m.x509SvidsMinted(this.#minted);
      if (this.#mintFailures > 0) m.x509SvidMintFailures(this.#mintFailures);
      for (const source of ['server', 'cache'] as const) {
        for (let i = 0; i < this.#jwt[source]; i++) m.jwtSvidFetched(source);
      }
      for (const [key, n] of this.#attestations) {
        const [kind, result] = key.split(':') as ['attest' | 'renew', 'ok' | 'error'];
        for (let i = 0; i < n; i++) m.nodeAttestation(kind, result);
      }
      if (this.#sizes !== undefined) m.cacheSizes(this.#sizes);
      if (this.#expiryMs !== undefined) m.agentSvidExpiry(this.#expiryMs);
      this.#target = m;
      return m;
    });
    return this.#loading;
  }
}
