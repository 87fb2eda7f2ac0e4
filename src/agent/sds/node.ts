/**
 * What an SDS answer depends on in the requesting Envoy's `Node` (SPIRE's sdsv3 handler):
 * whether bundles go out as the `envoy.tls.cert_validator.spiffe` validator or as plain
 * `trusted_ca`.
 *
 * The node is unverified data from the caller; it can only choose between two encodings of
 * the same bundles the caller is entitled to, never widen what it receives.
 */
import type { JsonValue } from '@bufbuild/protobuf';
import type { sdsv3 } from '../../protocol/index.js';
import type { ResolvedSdsConfig } from './config.js';

/** The node metadata key with which one Envoy overrides `disableSpiffeCertValidation`. */
export const DISABLE_SPIFFE_CERT_VALIDATION_KEY = 'disable_spiffe_cert_validation';

/** Go's strconv.ParseBool spellings. */
const TRUE_WORDS = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE_WORDS = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/** A Struct value as a boolean, as SPIRE reads it: a bool, or a ParseBool string. */
function parseBoolValue(v: JsonValue | undefined): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    if (TRUE_WORDS.has(v)) return true;
    if (FALSE_WORDS.has(v)) return false;
  }
  return undefined;
}

/**
 * True when the SPIFFE certificate validator extension exists in that Envoy: a structured
 * `user_agent_build_version` of 1.18 or later, or no structured version at all (SPIRE
 * assumes a current Envoy then). A build version without its `version` counts as 0.0.
 */
export function supportsSpiffeValidator(node: sdsv3.Node | undefined): boolean {
  const v = node?.userAgentVersionType;
  if (v?.case !== 'userAgentBuildVersion') return true;
  const major = v.value.version?.majorNumber ?? 0;
  const minor = v.value.version?.minorNumber ?? 0;
  return (major === 1 && minor > 17) || major > 1;
}

/**
 * Whether bundles are answered with the SPIFFE validator for this node: the configured
 * `disableSpiffeCertValidation`, overridden by the node's metadata key
 * {@link DISABLE_SPIFFE_CERT_VALIDATION_KEY} when it holds a bool or a ParseBool string
 * (anything else is ignored), and only when the Envoy is new enough.
 */
export function useSpiffeValidator(
  node: sdsv3.Node | undefined,
  config: Pick<ResolvedSdsConfig, 'disableSpiffeCertValidation'>,
): boolean {
  let disabled = config.disableSpiffeCertValidation;
  const meta = node?.metadata;
  if (meta !== undefined && Object.hasOwn(meta, DISABLE_SPIFFE_CERT_VALIDATION_KEY)) {
    const override = parseBoolValue(meta[DISABLE_SPIFFE_CERT_VALIDATION_KEY]);
    if (override !== undefined) disabled = override;
  }
  return !disabled && supportsSpiffeValidator(node);
}
