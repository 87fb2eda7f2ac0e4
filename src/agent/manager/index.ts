/**
 * The agent's managers: its own identity (attestation, renewal, re-attestation), the sync loop
 * with the server, the persisted SVID cache with rotation, and the Workload API's identity
 * source over the store. `startAgent` (src/agent/agent.ts) wires them. See docs/agent.md.
 */
export { Backoff, type BackoffOptions } from './backoff.js';
export {
  fetchBundleInsecurely,
  type LoadBootstrapBundleOptions,
  loadBootstrapBundle,
  parseBootstrapBundle,
} from './bootstrap.js';
export {
  DEFAULT_JWT_CACHE_MAX_SIZE,
  DEFAULT_X509_BATCH_SIZE,
  DEFAULT_X509_CACHE_MAX_SIZE,
  DEMAND_MINT_INTERVAL_MS,
  type JwtSvidSubject,
  RELEASE_MEMORY_AFTER_MINTS,
  type ReconcileResult,
  SvidCache,
  type SvidCacheOptions,
} from './cache.js';
export {
  bundleFromProto,
  bundleFromSpiffeBundle,
  bundleRecordsEqual,
  entryFromProto,
  trustDomainBundlesOf,
} from './convert.js';
export {
  isWarmSnapshot,
  StoreIdentitySource,
  type StoreIdentitySourceOptions,
} from './identity-source.js';
export { checkIssuedX509Svid, type IssuedX509Svid } from './issued-svid.js';
export { generateEcP256Key, type KeyGenerator } from './keys.js';
export { createLazyAgentServerClient } from './lazy-server-client.js';
export {
  halfLifeAt,
  issuedAtEstimate,
  jwtRenewAt,
  NOT_BEFORE_BACKDATE_MS,
  ROTATION_JITTER,
  rotationAt,
} from './lifetime.js';
export { ManagedStore, type StoreWriteBuilder } from './managed-store.js';
export { type AgentMetrics, DeferredAgentMetrics, nullAgentMetrics } from './metrics.js';
export {
  type AgentCredentials,
  NODE_IDENTITY_BACKOFF,
  NodeIdentityManager,
  type NodeIdentityOptions,
  type NodeIdentityState,
  type NodeIdentityStatus,
} from './node-identity.js';
export {
  type AgentPrometheusMetrics,
  createAgentPrometheusMetrics,
} from './prometheus-metrics.js';
export { releaseFreedMemory } from './release-memory.js';
export {
  type AgentCallCredentials,
  type AgentRejection,
  type AgentServerClient,
  type AgentServerClientOptions,
  type AuthorizedEntries,
  agentRejection,
  createAgentServerClient,
  type IssuedJwtSvid,
  type X509SvidParam,
  type X509SvidResult,
} from './server-client.js';
export {
  DEFAULT_SYNC_INTERVAL_MS,
  MAX_SYNC_BACKOFF_MS,
  SYNC_STATE_WRITE_INTERVAL_MS,
  type SyncCache,
  type SyncIdentity,
  SyncManager,
  type SyncManagerOptions,
  type SyncReport,
  type SyncState,
} from './sync.js';
