/**
 * Public names of the KeyManagers: the interface and the `memory` and `disk`
 * implementations (SPIRE's server KeyManager plugins).
 */

export { DiskKeyManager, type DiskKeyManagerConfig, openDiskKeyManager } from './disk.js';
export {
  assertKeyId,
  assertKeyType,
  type KeyManager,
  MAX_KEY_ID_LENGTH,
  type ManagedKey,
} from './key-manager.js';
export {
  generateSoftwareKey,
  keyTypeOfPrivateKey,
  MemoryKeyManager,
  softwareSigner,
} from './memory.js';
