/**
 * The agent's SPIFFE Workload API: the server on a Unix socket, its handlers, the
 * `IdentitySource` it serves from (with an in-memory implementation), caller attestation
 * by peer credentials and pidfd, and a client.
 */
export {
  type CallerResolver,
  createPeerCallerResolver,
  type PeerCallerResolverOptions,
  type WorkloadCaller,
} from './caller.js';
export {
  type FetchedJwtSvid,
  type FetchJwtSvidParams,
  parseJwtBundlesResponse,
  parseX509BundlesResponse,
  parseX509Context,
  type ValidatedJwtSvid,
  type WatchBackoff,
  type WatchOptions,
  WorkloadApiClient,
  type WorkloadApiClientOptions,
  type WorkloadCallOptions,
  type X509Context,
} from './client.js';
export {
  DEFAULT_WORKLOAD_API_SOCKET,
  SPIFFE_ENDPOINT_SOCKET,
  workloadApiEndpoint,
} from './endpoint.js';
export { createWorkloadApiHandlers, type WorkloadApiHandlerOptions } from './handlers.js';
export {
  entryMatches,
  type IdentitySource,
  type JwtSvidToken,
  selectorKeys,
  type TrustDomainBundles,
  type WorkloadIdentity,
} from './identity-source.js';
export {
  type MemoryIdentityEntry,
  MemoryIdentitySource,
  type MemoryIdentitySourceOptions,
} from './memory-identity-source.js';
export {
  startWorkloadApiServer,
  type WorkloadApiServer,
  type WorkloadApiServerOptions,
} from './server.js';
