/**
 * The agent's persistent state in LevelDB under `data_dir`: its SVID and key, the bundles, the
 * authorized entries and sync state, and the cached workload X509-SVIDs and JWT-SVIDs, served
 * from an in-memory snapshot so that a restarted agent answers workloads without the server.
 * See docs/configuration-agent.md ("The agent store") for the layout, file modes, sealing and
 * the recovery path. Device records (`device:*`) keep small, non-secret device state (the TPM
 * sealer's sealed data key, the TPM attestor's AK blobs).
 */
export type {
  AgentStore,
  AgentStoreSnapshot,
  AgentStoreTransaction,
  ClearableKind,
  PruneResult,
  SyncResult,
} from './agent-store.js';
export { CODEC_VERSION, decodeValue, encodeValue } from './codec.js';
export {
  AGENT_STORE_DIRNAME,
  DEVICE_RECORD_MAX_BYTES,
  isDeviceRecordName,
  jwtSvidCacheKey,
  LAYOUT_VERSION,
  normalizeAudience,
  OLDEST_LAYOUT_VERSION,
} from './layout.js';
export { type OpenAgentStoreOptions, openAgentStore } from './open-agent-store.js';
export {
  openAgentStoreWithRecovery,
  type QuarantineOptions,
  quarantineAgentStore,
  type RecoveredStore,
} from './quarantine.js';
export type {
  AgentIdentityRecord,
  BundleRecord,
  EntryRecord,
  JwtAuthorityRecord,
  JwtSvidRecord,
  SelectorRecord,
  SyncStateRecord,
  X509SvidRecord,
} from './records.js';
export type { DeviceRecordAccess, SealContext, Sealer, SealerFactory } from './sealer.js';
export {
  type AgentStoreErrorCode,
  isAgentStoreError,
  isRecoverableStoreError,
} from './store-errors.js';
