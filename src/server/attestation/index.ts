/**
 * Public names of server-side node attestation: the {@link ServerNodeAttestor} interface
 * and its `join_token`, `x509pop` and `tpm` implementations, plus
 * the x509pop and tpm wire formats shared with the agent.
 */
export {
  createJoinTokenAttestor,
  JOIN_TOKEN_TYPE,
  type JoinTokenAttestorOptions,
  joinTokenAgentId,
  MAX_JOIN_TOKEN_LENGTH,
} from './join-token.js';
export {
  type AttestationChallenge,
  type AttestationContext,
  type AttestationErrorCode,
  type AttestationResult,
  attestationError,
  type ServerNodeAttestor,
} from './node-attestor.js';
export {
  clockProblem,
  createTpmAttestor,
  TPM_DEFAULT_PCR_BANKS,
  TPM_DEFAULT_PCR_INDICES,
  TPM_TYPE,
  type TpmAttestorOptions,
  type TpmClockRecord,
} from './tpm.js';
export * from './tpm-wire.js';
export {
  certificateFingerprint,
  createX509PopAttestor,
  serialNumberHex,
  X509POP_DEFAULT_AGENT_PATH_TEMPLATE,
  X509POP_DEFAULT_MAX_INTERMEDIATES,
  X509POP_DEFAULT_MAX_RSA_KEY_SIZE,
  X509POP_TYPE,
  type X509PopAttestorOptions,
} from './x509pop.js';
export {
  decodeX509PopChallenge,
  decodeX509PopPayload,
  decodeX509PopResponse,
  encodeX509PopChallenge,
  encodeX509PopPayload,
  encodeX509PopResponse,
  X509POP_NONCE_LENGTH,
  type X509PopChallenge,
  type X509PopResponse,
  x509PopSignedMessage,
} from './x509pop-wire.js';
