/**
 * Public names of the server's agent API: the TLS listener ({@link startAgentServer}) and
 * the service implementations agents call (Agent, Entry, SVID and Bundle methods), agent
 * authentication and rate limiting.
 */
export {
  type AgentServer,
  type AgentServerOptions,
  type AgentServerRateLimits,
  OPEN_AGENT_API_METHODS,
  startAgentServer,
} from './agent-server.js';
export { createAgentService } from './agent-service.js';
export { createBundleService, currentBundle } from './bundle-service.js';
export {
  AgentAuthenticator,
  type AgentCaller,
  agentCaller,
  kAgentCaller,
  permissionDenied,
} from './caller.js';
export {
  bundleToProto,
  entryToProto,
  maskBundle,
  maskEntry,
  serialToDecimal,
  spiffeIdFromProto,
  spiffeIdToProto,
  x509SvidToProto,
} from './convert.js';
export type { AgentApiDeps, AgentApiLimiters, AuthorizedEntriesSource } from './deps.js';
export { createEntryService } from './entry-service.js';
export {
  ATTEST_LIMIT_PER_SECOND,
  KeyedRateLimiter,
  type KeyedRateLimiterOptions,
  POST_STATUS_LIMIT_PER_SECOND,
  SIGN_LIMIT_PER_SECOND,
} from './rate-limit.js';
export { ServerSvid, type ServerSvidState } from './server-svid.js';
export { createSvidService } from './svid-service.js';
