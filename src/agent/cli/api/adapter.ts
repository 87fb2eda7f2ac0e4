/**
 * Turns a `spire-agent api …` command definition into a runnable {@link CliCommand}, as
 * SPIRE's `cmd/spire-agent/cli/api` adapter does: adds `-timeout` (default 5s), `-socketPath`
 * and `-instance`, parses flags Go-style, connects a {@link WorkloadApiClient} to the chosen
 * socket (see socket.ts), runs the command and prints any failure on stderr, exit 1.
 *
 * Output rules (SPIRE's): a flag error prints Go's message and the usage, then the message
 * again; a failure prints the bare error (`rpc error: code = PermissionDenied desc = no
 * identity issued`), with no `Error:` prefix. Every Workload API call gets its own deadline
 * of `-timeout` (none when it is 0 or negative); a call that runs out fails with
 * `rpc error: code = DeadlineExceeded desc = context deadline exceeded`.
 *
 * What it trusts: the agent on the socket, as any Workload API client does.
 */
import { Code, ConnectError } from '@connectrpc/connect';
import type { CliCommand } from '../../../common/cli/command-tree.js';
import { FlagSet, isFlagError } from '../../../common/cli/flag-set.js';
import type { CliIo } from '../../../common/cli/io.js';
import { describeCliError } from '../../../common/cli/rpc-error.js';
import { WorkloadApiClient, type WorkloadCallOptions } from '../../workload-api/client.js';
import { defineSocketFlags, resolveAgentSocket } from '../socket.js';
import { timeoutFlag } from './timeout-flag.js';

/** What a command's `run` gets. */
export interface WorkloadCommandContext {
  readonly io: CliIo;
  readonly client: WorkloadApiClient;
  /** The working directory relative paths are resolved against. */
  readonly cwd: string;
  /**
   * Runs one Workload API call with a fresh `-timeout` deadline; the deadline's failure is
   * grpc-go's `DeadlineExceeded` "context deadline exceeded".
   */
  call<T>(fn: (options: WorkloadCallOptions) => Promise<T>): Promise<T>;
  /** Monotonic nanoseconds, for "Received … after <duration>". */
  nowNs(): bigint;
}

/** A command: its flag-set name, flags and body. */
export interface WorkloadCommandDefinition<F> {
  /** The name in `Usage of <name>:` (SPIRE's `name()`, e.g. `fetch x509`). */
  readonly name: string;
  /** Defines the command's own flags on `fs` and returns their live views. */
  defineFlags(fs: FlagSet): F;
  /** Runs the command; throws to fail (the error's text is printed, exit 1). */
  run(flags: F, ctx: WorkloadCommandContext): Promise<void>;
}

/** SPIRE's `-socketPath` usage for the `api` commands. */
const SOCKET_USAGE = 'Path to the SPIRE Agent API Unix domain socket';

/** Largest delay `setTimeout` honours (longer ones fire at once): treat as no deadline. */
const MAX_TIMER_MS = 2_147_483_647;

/** The error grpc-go gives a call whose context deadline passed. */
export function deadlineExceeded(): ConnectError {
  return new ConnectError('context deadline exceeded', Code.DeadlineExceeded);
}

function withDeadline<T>(
  timeoutNs: bigint,
  fn: (options: WorkloadCallOptions) => Promise<T>,
): Promise<T> {
  const ms = Number(timeoutNs) / 1e6;
  if (timeoutNs <= 0n || ms > MAX_TIMER_MS) return fn({});
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(deadlineExceeded()), Math.max(1, Math.ceil(ms)));
  return fn({ signal: ac.signal }).then(
    (v) => {
      clearTimeout(timer);
      return v;
    },
    (err: unknown) => {
      clearTimeout(timer);
      throw ac.signal.aborted ? deadlineExceeded() : err;
    },
  );
}

/** Builds the {@link CliCommand} for `def`; see the file comment. */
export function workloadCommand<F>(def: WorkloadCommandDefinition<F>): CliCommand {
  const build = () => {
    const fs = new FlagSet(def.name);
    const timeout = timeoutFlag(fs);
    const socket = defineSocketFlags(fs, SOCKET_USAGE);
    const flags = def.defineFlags(fs);
    return { fs, timeout, socket, flags };
  };
  return {
    // SPIRE's Help() prints the usage and returns "" (mitchellh/cli then adds a newline).
    help: () => build().fs.usage(),
    async run(args, io) {
      const { fs, timeout, socket, flags } = build();
      try {
        fs.parse(args);
      } catch (err) {
        if (!isFlagError(err)) throw err;
        io.stderr.write(fs.failureText(err));
        io.stderr.write(`${err.message}\n`);
        return 1;
      }
      const cwd = io.cwd ?? process.cwd();
      let client: WorkloadApiClient;
      try {
        const path = resolveAgentSocket(
          { socketPath: socket.socketPath.value, instance: socket.instance.value },
          io.env,
          cwd,
        );
        client = new WorkloadApiClient({ socket: path, env: {} });
      } catch (err) {
        io.stderr.write(`${describeCliError(err)}\n`);
        return 1;
      }
      try {
        await def.run(flags, {
          io,
          client,
          cwd,
          call: (fn) => withDeadline(timeout.value, fn),
          nowNs: () => process.hrtime.bigint(),
        });
        return 0;
      } catch (err) {
        io.stderr.write(`${describeCliError(err)}\n`);
        return 1;
      } finally {
        client.close();
      }
    },
  };
}
