/**
 * spire-edge: the public library API. The SPIFFE core (IDs, bundles, X509-SVIDs, JWT-SVIDs)
 * plus the shared error class and signing interface. The server and agent are commands
 * (`spire-server`, `spire-agent`), not library exports.
 */
export type { Clock } from './common/clock.js';
export { ManualClock, systemClock } from './common/clock.js';
export type { ErrorCode, SpireEdgeErrorOptions } from './common/errors.js';
export { isSpireEdgeError, SpireEdgeError } from './common/errors.js';
export type { KeyType, Signer } from './common/signer.js';
export { KEY_TYPES } from './common/signer.js';
export * from './spiffe/index.js';
