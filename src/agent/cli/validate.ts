/**
 * `spire-agent validate`: loads and checks the configuration as `run` would (same flags, the
 * join token file read too), without starting anything. Prints `SPIRE agent configuration
 * file is valid.` (exit 0), or on stderr `SPIRE agent configuration file is invalid:
 * <problems>` (exit 1), as SPIRE does. The check is src/agent/config.ts's
 * `loadAgentConfigFile`; what needs the running agent (the trust bundle file's content, the
 * socket directory, the server's reachability) is checked by `run`, not here.
 */
import type { CliCommand } from '../../common/cli/command-tree.js';
import { FlagSet, isFlagError } from '../../common/cli/flag-set.js';
import { describeCliError } from '../../common/cli/rpc-error.js';
import { loadAgentConfigFile } from '../config.js';
import { defineAgentFlags, toAgentFlags } from './agent-flags.js';

const INVALID = 'SPIRE agent configuration file is invalid';

/** The `validate` command. */
export function validateCommand(): CliCommand {
  const build = () => {
    const fs = new FlagSet('validate');
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
        io.stderr.write(`${INVALID}: ${err.message}\n`);
        return 1;
      }
      try {
        const agentFlags = toAgentFlags(flags, io.cwd);
        await loadAgentConfigFile(agentFlags.config, agentFlags, io.env);
      } catch (err) {
        io.stderr.write(`${INVALID}: ${describeCliError(err)}\n`);
        return 1;
      }
      io.stdout.write('SPIRE agent configuration file is valid.\n');
      return 0;
    },
  };
}
