/**
 * Which Workload API socket the `spire-agent` client commands (`api …`, `healthcheck`) talk
 * to, with SPIRE's flags (`-socketPath`, `-instance`) and precedence
 * (`cmd/spire-agent/cli/common`, POSIX):
 *
 * 1. `-socketPath` when it differs from the default `/tmp/spire-agent/public/api.sock`
 *    (giving the default explicitly is the same as not giving it, as in SPIRE);
 * 2. `-instance NAME` substituted for `%i` in `SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE` (an error
 *    when the variable is unset or holds no `%i`);
 * 3. `SPIRE_AGENT_PUBLIC_SOCKET`;
 * 4. **spire-edge:** `SPIFFE_ENDPOINT_SOCKET` (`unix:///path` or a path). SPIRE's CLI ignores
 *    it; we honour it after SPIRE's own variables so that SPIRE setups behave the same;
 * 5. the default.
 *
 * Relative paths are resolved against the working directory (SPIRE's `filepath.Abs`).
 */
import { isAbsolute, resolve as resolvePath } from 'node:path';
import type { Flag, FlagSet } from '../../common/cli/flag-set.js';
import type { CliIo } from '../../common/cli/io.js';
import { SpireEdgeError } from '../../common/errors.js';
import { parseUnixEndpoint } from '../../common/grpc.js';
import { DEFAULT_WORKLOAD_API_SOCKET, SPIFFE_ENDPOINT_SOCKET } from '../workload-api/endpoint.js';

/** The environment variable holding a socket path template with `%i`. */
export const SOCKET_TEMPLATE_ENV = 'SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE';

/** The environment variable holding the socket path. */
export const SOCKET_ENV = 'SPIRE_AGENT_PUBLIC_SOCKET';

/** SPIRE's usage text of `-instance`. */
const INSTANCE_USAGE = `Instance name to substitute into socket templates (env ${SOCKET_TEMPLATE_ENV}).`;

/** The `-socketPath` and `-instance` flags of one command. */
export interface SocketFlags {
  readonly socketPath: Flag<string>;
  readonly instance: Flag<string>;
}

/**
 * Defines `-socketPath` (default {@link DEFAULT_WORKLOAD_API_SOCKET}) and `-instance` on `fs`.
 * `usage` is the command's text for `-socketPath` (SPIRE words it differently per command).
 */
export function defineSocketFlags(fs: FlagSet, usage: string): SocketFlags {
  return {
    socketPath: fs.string('socketPath', DEFAULT_WORKLOAD_API_SOCKET, usage),
    instance: fs.string('instance', '', INSTANCE_USAGE),
  };
}

function socketFailure(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_CLI_COMMAND_FAILED',
    message,
    cause === undefined ? {} : { cause },
  );
}

function absolute(path: string, cwd: string): string {
  if (path.startsWith('unix:')) {
    try {
      return parseUnixEndpoint(path);
    } catch (err) {
      throw socketFailure((err as Error).message, err);
    }
  }
  return isAbsolute(path) ? resolvePath(path) : resolvePath(cwd, path);
}

/**
 * The absolute socket path a command connects to (see the file comment). Reads only `env`.
 *
 * @throws SpireEdgeError `ERR_CLI_COMMAND_FAILED` with SPIRE's text when `-instance` is given
 *   without a usable template, or when an endpoint URI is malformed.
 */
export function resolveAgentSocket(
  flags: { readonly socketPath: string; readonly instance: string },
  env: CliIo['env'],
  cwd: string,
): string {
  const tpl = env[SOCKET_TEMPLATE_ENV] ?? '';
  const sock = env[SOCKET_ENV] ?? '';
  const endpoint = env[SPIFFE_ENDPOINT_SOCKET] ?? '';
  if (flags.instance !== '') {
    if (tpl === '') {
      // SPIRE's text, leading space included.
      throw socketFailure(
        ` ${SOCKET_TEMPLATE_ENV} environment variable must be defined when using the instance flag`,
      );
    }
    if (!tpl.includes('%i')) throw socketFailure(`failed to find %i in ${SOCKET_TEMPLATE_ENV}`);
  }
  let path: string;
  if (flags.socketPath !== DEFAULT_WORKLOAD_API_SOCKET) path = flags.socketPath;
  else if (flags.instance !== '') path = tpl.replaceAll('%i', flags.instance);
  else if (sock !== '') path = sock;
  else if (endpoint !== '') path = endpoint;
  else path = DEFAULT_WORKLOAD_API_SOCKET;
  return absolute(path, cwd);
}
