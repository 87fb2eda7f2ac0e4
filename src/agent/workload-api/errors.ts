/**
 * The Workload API's errors, with SPIRE's messages (pkg/agent/endpoints: middleware.go,
 * workload/handler.go) so clients and operators see what they see with SPIRE. The gRPC
 * status follows the code's suffix through the one table in src/common/grpc/errors.ts.
 *
 * | code | gRPC | message |
 * |---|---|---|
 * | `ERR_WORKLOAD_SECURITY_HEADER_INVALID` | InvalidArgument | security header missing from request |
 * | `ERR_WORKLOAD_ARGUMENT_INVALID` | InvalidArgument | audience must be specified, svid must be specified, invalid requested SPIFFE ID: … |
 * | `ERR_JWT_SVID_INVALID` (from validateJwtSvid) | InvalidArgument | the rule the token broke |
 * | `ERR_WORKLOAD_API_UNAVAILABLE` | Unavailable | workload api is not ready |
 * | `ERR_WORKLOAD_ATTESTATION_UNAVAILABLE` | Unavailable | workload attestation failed |
 * | `ERR_WORKLOAD_JWT_SVID_UNAVAILABLE` | Unavailable | could not fetch JWT-SVID: … |
 * | `ERR_WORKLOAD_IDENTITY_PERMISSION_DENIED` | PermissionDenied | no identity issued |
 * | `ERR_WORKLOAD_CALLER_UNKNOWN` | Internal | could not resolve caller information |
 * | `ERR_WORKLOAD_WIT_UNIMPLEMENTED` | Unimplemented | fetching WIT-SVIDs is not implemented |
 */
import { describeError, SpireEdgeError } from '../../common/errors.js';

/** Missing or wrong `workload.spiffe.io: true` metadata. */
export function securityHeaderMissing(): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_WORKLOAD_SECURITY_HEADER_INVALID',
    'security header missing from request',
  );
}

/** A request field breaks a rule (`message` is SPIRE's text). */
export function argumentInvalid(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_WORKLOAD_ARGUMENT_INVALID',
    message,
    cause === undefined ? {} : { cause },
  );
}

/** The identity source is not ready yet. */
export function notReady(): SpireEdgeError {
  return new SpireEdgeError('ERR_WORKLOAD_API_UNAVAILABLE', 'workload api is not ready');
}

/** Attestation failed, or the caller exited so its selectors cannot be trusted. */
export function attestationFailed(cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_WORKLOAD_ATTESTATION_UNAVAILABLE',
    'workload attestation failed',
    cause === undefined ? {} : { cause },
  );
}

/** The caller has no live identity. */
export function noIdentityIssued(): SpireEdgeError {
  return new SpireEdgeError('ERR_WORKLOAD_IDENTITY_PERMISSION_DENIED', 'no identity issued');
}

/** The source could not produce a JWT-SVID. */
export function jwtSvidUnavailable(cause: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_WORKLOAD_JWT_SVID_UNAVAILABLE',
    `could not fetch JWT-SVID: ${describeError(cause)}`,
    { cause },
  );
}

/** No SO_PEERCRED for the connection (not a Unix socket, or the addon failed). */
export function callerUnknown(): SpireEdgeError {
  return new SpireEdgeError('ERR_WORKLOAD_CALLER_UNKNOWN', 'could not resolve caller information');
}

/** A method of the published API that this agent does not serve. */
export function unimplemented(message: string): SpireEdgeError {
  return new SpireEdgeError('ERR_WORKLOAD_WIT_UNIMPLEMENTED', message);
}
