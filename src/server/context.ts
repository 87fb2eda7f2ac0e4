/**
 * What every server API service is given: narrow interfaces only (SPIRE's shape). Services
 * never see the CA manager, its timers or the KeyManager; they sign through {@link ServerCa}
 * and store through {@link DataStore}.
 */
import type { Clock } from '../common/clock.js';
import type { Logger } from '../common/log.js';
import type { RandomSource } from '../common/random.js';
import type { TrustDomain } from '../spiffe/id.js';
import type { ServerCa } from './ca/server-ca.js';
import type { DataStore } from './datastore/types.js';

/** Server-wide counters and histograms the services report into (Prometheus in production). */
export interface ServerMetrics {
  /** An SVID was issued (`type`: x509 | jwt; `caller`: agent | admin). */
  svidIssued(type: 'x509' | 'jwt', caller: 'agent' | 'admin', count?: number): void;
  /** A node attestation finished. */
  attestation(attestor: string, result: 'ok' | 'error'): void;
  /** A datastore call took `seconds`. */
  datastoreLatency(op: string, seconds: number): void;
  /** The authorized-entries cache holds `entries` entries. */
  authorizedEntriesCacheSize(entries: number): void;
  /** The CA rotated (`kind`: x509 | jwt). */
  caRotation(kind: 'x509' | 'jwt'): void;
}

/** A {@link ServerMetrics} that records nothing (tests). */
export const noMetrics: ServerMetrics = {
  svidIssued() {},
  attestation() {},
  datastoreLatency() {},
  authorizedEntriesCacheSize() {},
  caRotation() {},
};

/** The shared context of the server's API services. */
export interface ServerContext {
  readonly trustDomain: TrustDomain;
  readonly dataStore: DataStore;
  readonly ca: ServerCa;
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly log: Logger;
  readonly metrics: ServerMetrics;
  /** Default X509-SVID TTL (seconds), `default_x509_svid_ttl`. */
  readonly defaultX509SvidTtl: number;
  /** Default JWT-SVID TTL (seconds), `default_jwt_svid_ttl`. */
  readonly defaultJwtSvidTtl: number;
  /** Agent SVID TTL (seconds), `agent_ttl`. */
  readonly agentTtl: number;
}
