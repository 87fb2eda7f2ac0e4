/**
 * Public names of the server's admin API (the private Unix socket): the server itself,
 * each service's builder for servers that mount them elsewhere, and the authorization
 * helpers. See docs/server-api.md.
 */
export {
  type AdminServer,
  type AdminServerOptions,
  DEFAULT_ADMIN_SOCKET_DIR_MODE,
  DEFAULT_ADMIN_SOCKET_PATH,
  registerAdminServices,
  startAdminServer,
} from './admin-server.js';
export {
  type AgentAdminService,
  createAgentAdminService,
  EVIDENCE_HEADER,
  EVIDENCE_TRUNCATED_HEADER,
  JOIN_TOKEN_ATTESTOR,
  joinTokenAgentId,
  MAX_EVIDENCE_HEADER_BYTES,
  newJoinToken,
  readAttestationEvidence,
} from './agent.js';
export {
  type AdminAuthorizerOptions,
  type AdminCaller,
  adminAuthorizer,
  allowedAdminUids,
  authorizeAdmin,
  callerFields,
  kAdminCaller,
} from './authorize.js';
export { type BundleAdminService, createBundleAdminService } from './bundle.js';
export { createEntryAdminService, type EntryAdminService } from './entry.js';
export {
  createHealthService,
  type HealthAdminService,
  type HealthServiceOptions,
} from './health.js';
export { createSvidAdminService, type SvidAdminService } from './svid.js';
