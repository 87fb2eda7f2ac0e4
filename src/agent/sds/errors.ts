/**
 * The SDS service's errors, with SPIRE's messages (pkg/agent/endpoints/sdsv3/handler.go) so
 * Envoy's logs and operators see what they see with SPIRE. The gRPC status follows the
 * code's suffix through the one table in src/common/grpc/errors.ts. Readiness and caller
 * attestation fail with the Workload API's errors (`ERR_WORKLOAD_API_UNAVAILABLE`,
 * `ERR_WORKLOAD_ATTESTATION_UNAVAILABLE`, `ERR_WORKLOAD_CALLER_UNKNOWN`).
 *
 * | code | gRPC | message |
 * |---|---|---|
 * | `ERR_SDS_RESOURCE_NAMES_INVALID` | InvalidArgument | workload is not authorized for the requested identities ["…"] |
 * | `ERR_SDS_SPIFFE_VALIDATOR_UNSUPPORTED` | Internal | unable to use "SPIFFE validator" on Envoy below 1.17 |
 * | `ERR_SDS_DELTA_UNIMPLEMENTED` | Unimplemented | Method is not implemented |
 */
import { SpireEdgeError } from '../../common/errors.js';

/** How many names, and how many characters of each, an error message quotes. */
const MAX_QUOTED_NAMES = 16;
const MAX_QUOTED_CHARS = 256;

/**
 * Names Go's `%q` would print for a `[]string` (`["a" "b"]`), bounded: the names come from
 * the client, and the message travels in an HTTP/2 trailer.
 */
function quoteNames(names: readonly string[]): string {
  const shown = names.slice(0, MAX_QUOTED_NAMES).map((n) => {
    const cut = n.length > MAX_QUOTED_CHARS ? `${n.slice(0, MAX_QUOTED_CHARS)}…` : n;
    return JSON.stringify(cut);
  });
  const more = names.length - shown.length;
  return `[${shown.join(' ')}${more > 0 ? ` …(${more} more)` : ''}]`;
}

/** The request named resources the caller has no right to (or that do not exist). */
export function resourcesNotAuthorized(names: readonly string[]): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_SDS_RESOURCE_NAMES_INVALID',
    `workload is not authorized for the requested identities ${quoteNames(names)}`,
    { details: { names: names.slice(0, MAX_QUOTED_NAMES) } },
  );
}

/** The all-bundles resource needs the SPIFFE certificate validator, which is off or too new. */
export function spiffeValidatorUnsupported(): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_SDS_SPIFFE_VALIDATOR_UNSUPPORTED',
    'unable to use "SPIFFE validator" on Envoy below 1.17',
  );
}

/** `DeltaSecrets`, which SPIRE does not serve either. */
export function deltaUnimplemented(): SpireEdgeError {
  return new SpireEdgeError('ERR_SDS_DELTA_UNIMPLEMENTED', 'Method is not implemented');
}
