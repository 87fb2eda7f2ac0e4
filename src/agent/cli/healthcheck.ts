/**
 * `spire-agent healthcheck`: is the agent serving the Workload API? As SPIRE's
 * `cmd/spire-agent/cli/healthcheck` (since SPIRE 1.0) it asks `grpc.health.v1.Health/Check`
 * (service "") on the Workload API socket and prints `Agent is healthy.` (exit 0), or on
 * stderr `Agent is unhealthy: unable to determine health` (the call failed; with `-verbose`
 * preceded by `Failed to check health: <rpc error>`) or `Agent is unhealthy: agent returned
 * status "NOT_SERVING"` (exit 1). `-verbose` first prints `Checking agent health...`;
 * `-shallow` is accepted and, as in SPIRE, changes nothing.
 *
 * SPIRE's agent answers that health check by fetching an X.509 context from its own
 * Workload API: OK and PermissionDenied (the caller simply has no entry) mean SERVING,
 * anything else (Unavailable while the agent is not ready, …) NOT_SERVING. When the agent
 * on the socket has no health service (`Unimplemented`), this command makes that same probe
 * itself, so the answer is the same either way.
 *
 * What it trusts: the agent's answers; it reads no SVID material.
 */
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import type { CliCommand } from '../../common/cli/command-tree.js';
import { FlagSet, isFlagError } from '../../common/cli/flag-set.js';
import { goQuote } from '../../common/cli/go-quote.js';
import type { CliIo } from '../../common/cli/io.js';
import { describeCliError } from '../../common/cli/rpc-error.js';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import { createUdsTransport } from '../../common/grpc.js';
import { healthv1 } from '../../protocol/index.js';
import { WorkloadApiClient } from '../workload-api/client.js';
import { defineSocketFlags, resolveAgentSocket } from './socket.js';

const { SERVING, NOT_SERVING } = healthv1.HealthCheckResponse_ServingStatus;

function unhealthy(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_CLI_COMMAND_FAILED',
    message,
    cause === undefined ? {} : { cause },
  );
}

function defineFlags(fs: FlagSet) {
  return {
    shallow: fs.bool('shallow', false, 'Perform a less stringent health check'),
    verbose: fs.bool('verbose', false, 'Print verbose information'),
    socket: defineSocketFlags(fs, 'Path to the SPIRE Agent API socket'),
  };
}

/** SPIRE's agent health service: a Workload API fetch, PermissionDenied counting as healthy. */
async function probeWorkloadApi(
  socketPath: string,
): Promise<healthv1.HealthCheckResponse_ServingStatus> {
  const client = new WorkloadApiClient({ socket: socketPath, env: {} });
  try {
    await client.fetchX509Context();
    return SERVING;
  } catch (err) {
    return err instanceof ConnectError && err.code === Code.PermissionDenied
      ? SERVING
      : NOT_SERVING;
  } finally {
    client.close();
  }
}

async function check(socketPath: string, verbose: boolean, io: CliIo): Promise<void> {
  const transport = createUdsTransport(socketPath);
  let status: healthv1.HealthCheckResponse_ServingStatus;
  try {
    const health = createClient(healthv1.Health, transport);
    status = (await health.check({})).status;
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.Unimplemented) {
      status = await probeWorkloadApi(socketPath);
    } else {
      if (verbose) io.stderr.write(`Failed to check health: ${describeCliError(err)}\n`);
      throw unhealthy('unable to determine health', err);
    }
  } finally {
    transport.close();
  }
  if (status !== SERVING) {
    const name = healthv1.HealthCheckResponse_ServingStatus[status] ?? String(status);
    throw unhealthy(`agent returned status ${goQuote(name)}`);
  }
}

/** The `healthcheck` command. */
export function healthcheckCommand(): CliCommand {
  const build = () => {
    const fs = new FlagSet('health');
    return { fs, flags: defineFlags(fs) };
  };
  return {
    // SPIRE's Help() prints the usage and returns "" (mitchellh/cli then adds a newline).
    help: () => build().fs.usage(),
    async run(args, io) {
      const { fs, flags } = build();
      try {
        fs.parse(args);
      } catch (err) {
        if (!isFlagError(err)) throw err;
        io.stderr.write(fs.failureText(err));
        return 1;
      }
      const verbose = flags.verbose.value;
      try {
        if (verbose) io.stdout.write('Checking agent health...\n');
        const socketPath = resolveAgentSocket(
          { socketPath: flags.socket.socketPath.value, instance: flags.socket.instance.value },
          io.env,
          io.cwd ?? process.cwd(),
        );
        await check(socketPath, verbose, io);
      } catch (err) {
        io.stderr.write(`Agent is unhealthy: ${describeError(err)}\n`);
        return 1;
      }
      io.stdout.write('Agent is healthy.\n');
      return 0;
    },
  };
}
