/**
 * Public names of the server's CA: the CA manager (rotation, journal, bundle), the narrow
 * `ServerCa` signing interface the APIs use, and the UpstreamAuthority interface with its
 * `disk` implementation.
 */

export {
  type AuthorityStatus,
  decodeJournal,
  encodeJournal,
  JOURNAL_CAP,
  type JournalData,
  type JournalStore,
  MemoryJournalStore,
  type SlotId,
} from './journal.js';
export {
  type BundleChange,
  type BundleChangeListener,
  type CaEvent,
  type CaEventListener,
  CaManager,
  type CaManagerConfig,
  type CaManagerStatus,
  DEFAULT_BUNDLE_PRUNE_MARGIN_SECONDS,
  DEFAULT_CA_TTL_SECONDS,
  DEFAULT_JWT_SVID_TTL_SECONDS,
  DEFAULT_RETRY_INTERVAL_SECONDS,
  DEFAULT_X509_SVID_TTL_SECONDS,
  type SlotStatus,
} from './manager.js';
export {
  type ActiveJwtKey,
  type ActiveX509Ca,
  type CaBundle,
  type CaJwtAuthority,
  type CaX509Authority,
  LocalServerCa,
  NOT_BEFORE_BACKDATE_SECONDS,
  type ServerCa,
  type SignedJwtSvid,
  type SignedX509Svid,
  type SignJwtSvidParams,
  type SignX509SvidFromCsrParams,
  type SignX509SvidParams,
} from './server-ca.js';
export type {
  MintX509CaRequest,
  MintX509CaResponse,
  UpstreamAuthority,
  X509CaSubject,
} from './upstream-authority.js';
export {
  DiskUpstreamAuthority,
  type DiskUpstreamAuthorityConfig,
  openDiskUpstreamAuthority,
} from './upstream-disk.js';
