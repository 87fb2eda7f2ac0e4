/**
 * Where the Workload API listens: SPIRE's default socket and the `SPIFFE_ENDPOINT_SOCKET`
 * convention (SPIFFE Workload Endpoint §4: `unix:///abs/path`; a bare absolute path is
 * accepted too, as SPIRE's CLI does).
 */
import { parseUnixEndpoint } from '../../common/grpc.js';

/** SPIRE's default agent `socket_path`. */
export const DEFAULT_WORKLOAD_API_SOCKET = '/tmp/spire-agent/public/api.sock';

/** The environment variable naming the Workload API endpoint. */
export const SPIFFE_ENDPOINT_SOCKET = 'SPIFFE_ENDPOINT_SOCKET';

/**
 * The endpoint a client uses: `socket` when given, else `SPIFFE_ENDPOINT_SOCKET` from `env`,
 * else {@link DEFAULT_WORKLOAD_API_SOCKET}; as an absolute path.
 *
 * @throws SpireEdgeError `ERR_GRPC_SOCKET_PATH_INVALID` for a malformed value.
 */
export function workloadApiEndpoint(
  socket?: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string {
  const chosen = socket ?? env[SPIFFE_ENDPOINT_SOCKET] ?? '';
  return parseUnixEndpoint(chosen === '' ? DEFAULT_WORKLOAD_API_SOCKET : chosen);
}
