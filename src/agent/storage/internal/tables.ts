/**
 * The in-memory tables behind an agent store snapshot, and how a snapshot is frozen from them.
 */
import type { AgentStoreSnapshot } from '../agent-store.js';
import {
  KEY_AGENT,
  KEY_BUNDLE,
  KEY_SYNC,
  PREFIX_DEVICE,
  PREFIX_ENTRY,
  PREFIX_FEDERATED,
  PREFIX_JWT,
  PREFIX_X509,
} from '../layout.js';
import type {
  AgentIdentityRecord,
  BundleRecord,
  EntryRecord,
  JwtSvidRecord,
  SyncStateRecord,
  X509SvidRecord,
} from '../records.js';

/** The records of a snapshot, by kind. */
export interface Tables {
  agent: AgentIdentityRecord | undefined;
  bundle: BundleRecord | undefined;
  federatedBundles: Map<string, BundleRecord>;
  entries: Map<string, EntryRecord>;
  sync: SyncStateRecord | undefined;
  x509Svids: Map<string, X509SvidRecord>;
  jwtSvids: Map<string, JwtSvidRecord>;
  /** Device records by name (`device:<name>`). */
  devices: Map<string, Uint8Array>;
}

/** An immutable snapshot over `t` (the maps are shared, never mutated afterwards). */
export function freezeSnapshot(
  revision: number,
  trustDomain: string,
  t: Tables,
): AgentStoreSnapshot {
  return Object.freeze({
    revision,
    trustDomain,
    agent: t.agent,
    bundle: t.bundle,
    federatedBundles: t.federatedBundles,
    entries: t.entries,
    sync: t.sync,
    x509Svids: t.x509Svids,
    jwtSvids: t.jwtSvids,
    devices: t.devices,
  });
}

/** True when the snapshot holds a record under the data key `key`. */
export function snapshotHas(s: AgentStoreSnapshot, key: string): boolean {
  if (key === KEY_AGENT) return s.agent !== undefined;
  if (key === KEY_BUNDLE) return s.bundle !== undefined;
  if (key === KEY_SYNC) return s.sync !== undefined;
  if (key.startsWith(PREFIX_FEDERATED))
    return s.federatedBundles.has(key.slice(PREFIX_FEDERATED.length));
  if (key.startsWith(PREFIX_ENTRY)) return s.entries.has(key.slice(PREFIX_ENTRY.length));
  if (key.startsWith(PREFIX_X509)) return s.x509Svids.has(key.slice(PREFIX_X509.length));
  if (key.startsWith(PREFIX_JWT)) return s.jwtSvids.has(key.slice(PREFIX_JWT.length));
  if (key.startsWith(PREFIX_DEVICE)) return s.devices.has(key.slice(PREFIX_DEVICE.length));
  return false;
}
