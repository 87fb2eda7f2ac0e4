/**
 * `spire-agent run`: starts the agent with SPIRE's flags (agent-flags.ts) and runs it until
 * SIGINT/SIGTERM. Flag errors print Go's message and usage, then the message again (as SPIRE
 * does), exit 1; a configuration or start-up failure prints the error, exit 1. The agent itself
 * is src/agent/agent.ts (`runAgent`), which resolves to the exit code once it stopped (0 after
 * a clean stop).
 *
 * This is the only `spire-agent` command module that imports the agent wiring, so the other
 * commands load without it.
 */
import type { CliCommand } from '../../common/cli/command-tree.js';
import { FlagSet, isFlagError } from '../../common/cli/flag-set.js';
import { describeCliError } from '../../common/cli/rpc-error.js';
// ---- agent wiring (src/agent/agent.ts) ------------------------------------------------------
import { type RunningAgent, runAgent } from '../agent.js';
// ---------------------------------------------------------------------------------------------
import { defineAgentFlags, toAgentFlags } from './agent-flags.js';

/** Options of {@link runCommand} (tests stop the agent with `signal`). */
export interface RunCommandOptions {
  /** Stops the agent like SIGINT/SIGTERM do. */
  readonly signal?: AbortSignal;
  /** Called once the agent has started. */
  readonly onReady?: (agent: RunningAgent) => void;
}

/** The `run` command. */
export function runCommand(options: RunCommandOptions = {}): CliCommand {
  const build = () => {
    const fs = new FlagSet('run');
    return { fs, flags: defineAgentFlags(fs) };
  };
  return {
    help: () => `${build().fs.usage()}flag: help requested`,
    async run(args, io) {
      const { fs, flags } = build();
      try {
        fs.parse(args);
      } catch (err) {
        if (!isFlagError(err)) throw err;
        io.stderr.write(fs.failureText(err));
        io.stderr.write(`${err.message}\n`);
        return 1;
      }
      try {
        return await runAgent({
          flags: toAgentFlags(flags, io.cwd),
          io,
          ...(options.signal === undefined ? {} : { signal: options.signal }),
          ...(options.onReady === undefined ? {} : { onReady: options.onReady }),
        });
      } catch (err) {
        io.stderr.write(`${describeCliError(err)}\n`);
        return 1;
      }
    },
  };
}
