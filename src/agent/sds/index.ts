/**
 * Envoy's Secret Discovery Service v3 on the agent's Workload API socket, as SPIRE's agent
 * serves it: the handlers, their `sds { … }` settings, the resource builder and the node
 * rules that pick the validation context encoding. See docs/envoy-sds.md.
 */
export {
  type ResolvedSdsConfig,
  resolveSdsConfig,
  SDS_DEFAULTS,
  type SdsConfig,
} from './config.js';
export { createSdsHandlers, registerSdsService, type SdsServiceOptions } from './handler.js';
export {
  DISABLE_SPIFFE_CERT_VALIDATION_KEY,
  supportsSpiffeValidator,
  useSpiffeValidator,
} from './node.js';
export {
  type BuildSdsSecretsOptions,
  buildSdsSecrets,
  packSecrets,
  type SdsState,
  SPIFFE_VALIDATOR_NAME,
} from './resources.js';
