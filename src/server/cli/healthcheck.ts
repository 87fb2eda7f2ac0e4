/**
 * `spire-server healthcheck`: asks the server's gRPC health service (`grpc.health.v1.Health/
 * Check`, service "") on the API socket. Prints `Server is healthy.` (exit 0), or fails with
 * `Error: server is unhealthy: unable to determine health` / `… server returned status
 * "NOT_SERVING"` (exit 1). `-verbose` adds progress and the underlying error; `-shallow` is
 * accepted for compatibility and, as in SPIRE, changes nothing.
 */
import type { CliCommand } from '../../common/cli/command-tree.js';
import type { FlagSet } from '../../common/cli/flag-set.js';
import { goQuote } from '../../common/cli/go-quote.js';
import { describeCliError } from '../../common/cli/rpc-error.js';
import { healthv1 } from '../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from './adapter.js';
import { cliFailure } from './util.js';

function defineFlags(fs: FlagSet) {
  return {
    shallow: fs.bool('shallow', false, 'Perform a less stringent health check'),
    verbose: fs.bool('verbose', false, 'Print verbose information'),
  };
}

type Flags = ReturnType<typeof defineFlags>;

async function check(f: Flags, ctx: ServerCommandContext): Promise<void> {
  if (f.verbose.value) ctx.io.stdout.write('Checking server health...\n');
  let resp: healthv1.HealthCheckResponse;
  try {
    resp = await ctx.clients.health.check({});
  } catch (err) {
    if (f.verbose.value) ctx.io.stderr.write(`Failed to check health: ${describeCliError(err)}\n`);
    throw cliFailure('unable to determine health', err);
  }
  if (resp.status !== healthv1.HealthCheckResponse_ServingStatus.SERVING) {
    const name = healthv1.HealthCheckResponse_ServingStatus[resp.status] ?? String(resp.status);
    throw cliFailure(`server returned status ${goQuote(name)}`);
  }
}

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  try {
    await check(f, ctx);
  } catch (err) {
    throw cliFailure(`server is unhealthy: ${(err as Error).message}`, err);
  }
  ctx.io.stdout.write('Server is healthy.\n');
}

/** The `healthcheck` command. */
export function healthcheckCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'healthcheck', defineFlags, run }, options);
}
