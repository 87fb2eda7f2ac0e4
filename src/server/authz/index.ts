/**
 * Public names of the authorized-entries cache: which registration entries each agent may
 * fetch SVIDs for (direct children, node-alias descendants), kept current from the
 * datastore's change events.
 */

export {
  AuthorizedEntries,
  type AuthorizedEntriesOptions,
  DEFAULT_EVENT_TIMEOUT_MS,
  DEFAULT_FULL_RELOAD_INTERVAL_MS,
  DEFAULT_POLL_INTERVAL_MS,
  DEFAULT_PRUNE_EVENTS_OLDER_THAN_SECONDS,
  type PollResult,
} from './authorized-entries.js';
export {
  AuthorizedEntryCache,
  type AuthorizedEntryCacheOptions,
  type AuthorizedEntryCacheStats,
} from './authorized-entries-cache.js';
