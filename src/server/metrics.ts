/**
 * The server's Prometheus metrics (prom-client) behind the {@link ServerMetrics} interface the
 * services report into, and a datastore wrapper that times every call.
 *
 * Metric names (all prefixed `spire_edge_server_`):
 * - `svids_issued_total{type="x509|jwt",caller="agent|admin"}`
 * - `node_attestations_total{attestor,result="ok|error"}`
 * - `datastore_latency_seconds{op}` (histogram)
 * - `authorized_entries_cache_size` (gauge)
 * - `ca_rotations_total{kind="x509|jwt"}`
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ServerMetrics } from './context.js';
import type { DataStore } from './datastore/types.js';

export interface PrometheusMetrics extends ServerMetrics {
  readonly registry: Registry;
}

/** Creates the server's metrics in a fresh registry. */
export function createPrometheusMetrics(): PrometheusMetrics {
  const registry = new Registry();
  const p = 'spire_edge_server_';
  const svids = new Counter({
    name: `${p}svids_issued_total`,
    help: 'SVIDs issued, by type and caller',
    labelNames: ['type', 'caller'],
    registers: [registry],
  });
  const attestations = new Counter({
    name: `${p}node_attestations_total`,
    help: 'Node attestations, by attestor and result',
    labelNames: ['attestor', 'result'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: `${p}datastore_latency_seconds`,
    help: 'Datastore call latency, by operation',
    labelNames: ['op'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const cacheSize = new Gauge({
    name: `${p}authorized_entries_cache_size`,
    help: 'Registration entries held by the authorized-entries cache',
    registers: [registry],
  });
  const rotations = new Counter({
    name: `${p}ca_rotations_total`,
    help: 'CA activations, by kind',
    labelNames: ['kind'],
    registers: [registry],
  });
  return {
    registry,
    svidIssued: (type, caller, count = 1) => svids.inc({ type, caller }, count),
    attestation: (attestor, result) => attestations.inc({ attestor, result }),
    datastoreLatency: (op, seconds) => latency.observe({ op }, seconds),
    authorizedEntriesCacheSize: (n) => cacheSize.set(n),
    caRotation: (kind) => rotations.inc({ kind }),
  };
}

/** Wraps a datastore so every asynchronous method reports its latency. */
export function instrumentDataStore(store: DataStore, metrics: ServerMetrics): DataStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function' || typeof prop !== 'string' || prop === 'close') return value;
      return (...args: unknown[]) => {
        const start = performance.now();
        const out = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (out instanceof Promise) {
          return out.finally(() =>
            metrics.datastoreLatency(prop, (performance.now() - start) / 1000),
          );
        }
        return out;
      };
    },
  });
}
