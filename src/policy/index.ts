/**
 * Firmware policies (pure): load, validate and evaluate named sets of allowed PCR values,
 * which the `tpm` NodeAttestor turns into `tpm:policy:<name>` selectors.
 *
 * Error code: `ERR_POLICY_INVALID` (a policy file that breaks a rule; the message names the
 * file and the field).
 */
export {
  evaluatePolicies,
  type FirmwarePolicy,
  firmwarePolicyFromJson,
  formatFirmwarePolicy,
  isValidPolicyName,
  loadFirmwarePolicies,
  MAX_PCR_INDEX,
  type PcrValueMap,
  POLICY_BANKS,
  POLICY_LIMITS,
  type PolicyBank,
  type PolicyErrorCode,
  parseFirmwarePolicy,
  policyMismatch,
  policyPcrSelection,
  satisfiesPolicy,
} from './firmware-policy.js';
