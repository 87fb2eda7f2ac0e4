/**
 * The `spire-server enrollment token …` commands' adapter: SPIRE-style flags (`-socketPath`,
 * `-instance`, the same socket selection as every server command, see ../adapter.ts), a client
 * of spire-edge's `spire_edge.enrollment.v1.ProvisioningToken` service on the admin socket,
 * and `Error: <message>` with exit 1 on failure.
 *
 * The shared adapter's clients cover SPIRE's services only; these commands talk to our own.
 */
import { type Client, createClient } from '@connectrpc/connect';
import type { CliCommand } from '../../../common/cli/command-tree.js';
import { FlagSet, isFlagError } from '../../../common/cli/flag-set.js';
import type { CliIo } from '../../../common/cli/io.js';
import { describeCliError } from '../../../common/cli/rpc-error.js';
import { createUdsTransport } from '../../../common/grpc.js';
import { enrollmentv1 } from '../../../protocol/index.js';
import { resolveServerSocket } from '../adapter.js';
import { DEFAULT_SOCKET_PATH } from '../util.js';

/** What an enrollment command's `run` gets. */
export interface EnrollmentCommandContext {
  readonly io: CliIo;
  readonly client: Client<typeof enrollmentv1.ProvisioningToken>;
  /** The current time, ms since the epoch. */
  now(): number;
}

/** A command: its flag-set name, flags and body. */
export interface EnrollmentCommandDefinition<F> {
  /** The name in `Usage of <name>:`. */
  readonly name: string;
  defineFlags(fs: FlagSet): F;
  /** Runs the command; throws to fail (`Error: <message>`, exit 1). */
  run(flags: F, ctx: EnrollmentCommandContext): Promise<void>;
}

/** Options of {@link enrollmentCommand} (tests inject a clock). */
export interface EnrollmentCommandOptions {
  readonly now?: () => number;
}

/** Builds the {@link CliCommand} for `def`; see the file comment. */
export function enrollmentCommand<F>(
  def: EnrollmentCommandDefinition<F>,
  options: EnrollmentCommandOptions = {},
): CliCommand {
  const build = () => {
    const fs = new FlagSet(def.name);
    const socketPath = fs.string(
      'socketPath',
      DEFAULT_SOCKET_PATH,
      'Path to the SPIRE Server API socket',
    );
    const instance = fs.string(
      'instance',
      '',
      'Instance name to substitute into socket templates (env SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE).',
    );
    return { fs, socketPath, instance, flags: def.defineFlags(fs) };
  };
  return {
    help() {
      return `${build().fs.usage()}flag: help requested`;
    },
    async run(args, io) {
      const { fs, socketPath, instance, flags } = build();
      try {
        fs.parse(args);
      } catch (err) {
        if (!isFlagError(err)) throw err;
        io.stderr.write(fs.failureText(err));
        return 1;
      }
      let transport: ReturnType<typeof createUdsTransport> | undefined;
      try {
        const cwd = io.cwd ?? process.cwd();
        const path = resolveServerSocket(socketPath.value, instance.value, io.env, cwd);
        transport = createUdsTransport(path);
        await def.run(flags, {
          io,
          client: createClient(enrollmentv1.ProvisioningToken, transport),
          now: options.now ?? Date.now,
        });
        return 0;
      } catch (err) {
        io.stderr.write(`Error: ${describeCliError(err)}\n`);
        return 1;
      } finally {
        transport?.close();
      }
    },
  };
}
