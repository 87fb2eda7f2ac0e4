/**
 * Public names of agent-side node attestation: the attestor interface, the `join_token`,
 * `x509pop` and `tpm` attestors (with the TPM access and the store's TPM sealer), the AttestAgent/RenewAgent client helpers, CSRs for the agent's
 * keys and the TLS transport to the server's agent API.
 */
export {
  type AgentSvid,
  type AttestAgentOptions,
  type AttestAgentResult,
  attestAgent,
  renewAgent,
} from './attest-agent.js';
export { createCsr } from './csr.js';
export { createJoinTokenAttestorClient } from './join-token.js';
export type { AgentNodeAttestor } from './node-attestor.js';
export { type AgentApiTransportOptions, createAgentApiTransport } from './server-transport.js';
export {
  type AgentStoreAkStore,
  AK_DEVICE_RECORD,
  agentStoreAkStore,
  createTpmAttestorClient,
  DEFAULT_EVENT_LOG_PATH,
  decodeAkRecord,
  encodeAkRecord,
  fileAkStore,
  fileEventLogReader,
  type TpmAgentPlugin,
  type TpmAkStore,
  type TpmAttestorClient,
  type TpmAttestorClientConfig,
  type TpmAttestorClientOptions,
  tpmAgentPluginFromConfig,
  tpmAkPath,
  tpmAttestorClientFromConfig,
} from './tpm.js';
export * from './tpm-access.js';
export * from './tpm-sealer.js';
export {
  createX509PopAttestorClient,
  loadX509PopAttestorClient,
  type X509PopAttestorClientOptions,
  type X509PopAttestorFiles,
} from './x509pop.js';
