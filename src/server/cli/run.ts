/**
 * `spire-server run`: starts the server with SPIRE's flags (see {@link defineServerFlags}).
 * Flag errors print Go's message and usage, then the message again (as SPIRE does), exit 1.
 * The server itself is src/server/server.ts (`runServer`), which resolves to the exit code
 * once the server stops (SIGINT/SIGTERM: 0).
 *
 * This is the only module (with validate.ts) that imports the server wiring, so the other
 * commands load without it.
 */
import type { CliCommand } from '../../common/cli/command-tree.js';
import { FlagSet, isFlagError } from '../../common/cli/flag-set.js';
import { describeCliError } from '../../common/cli/rpc-error.js';
// ---- server wiring (src/server/server.ts, written by the lead) ------------------------------
import { runServer } from '../server.js';
// ---------------------------------------------------------------------------------------------
import { defineServerFlags, toServerFlags } from './server-flags.js';

/** The `run` command. */
export function runCommand(): CliCommand {
  const build = () => {
    const fs = new FlagSet('run');
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
        io.stderr.write(`${err.message}\n`);
        return 1;
      }
      try {
        return await runServer({
          flags: toServerFlags(flags),
          logSourceLocation: flags.logSourceLocation.value,
          io,
        });
      } catch (err) {
        io.stderr.write(`${describeCliError(err)}\n`);
        return 1;
      }
    },
  };
}
