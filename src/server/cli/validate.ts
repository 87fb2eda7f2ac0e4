/**
 * `spire-server validate`: loads and checks the configuration as `run` would (same flags),
 * without starting anything. Prints `SPIRE server configuration file is valid.` (exit 0) or
 * `SPIRE server configuration file is invalid: <problems>` on stderr (exit 1). The check is
 * src/server/server.ts's `validateServerConfig`, which throws on an invalid configuration.
 */
import type { CliCommand } from '../../common/cli/command-tree.js';
import { FlagSet, isFlagError } from '../../common/cli/flag-set.js';
import { describeCliError } from '../../common/cli/rpc-error.js';
// ---- server wiring (src/server/server.ts, written by the lead) ------------------------------
import { validateServerConfig } from '../server.js';
// ---------------------------------------------------------------------------------------------
import { defineServerFlags, toServerFlags } from './server-flags.js';

/** The `validate` command. */
export function validateCommand(): CliCommand {
  const build = () => {
    const fs = new FlagSet('validate');
    return { fs, flags: defineServerFlags(fs) };
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
        io.stderr.write(`SPIRE server configuration file is invalid: ${err.message}\n`);
        return 1;
      }
      try {
        await validateServerConfig({
          flags: toServerFlags(flags),
          logSourceLocation: flags.logSourceLocation.value,
          io,
        });
      } catch (err) {
        io.stderr.write(`SPIRE server configuration file is invalid: ${describeCliError(err)}\n`);
        return 1;
      }
      io.stdout.write('SPIRE server configuration file is valid.\n');
      return 0;
    },
  };
}
