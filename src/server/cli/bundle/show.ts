/**
 * `spire-server bundle show`: prints the server's own trust bundle — PEM certificates by
 * default, the SPIFFE bundle document with `-format spiffe`, or the `Bundle` message with
 * `-output json` (which ignores `-format`, as SPIRE does).
 */
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { types } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { writeProtoJson } from '../output.js';
import { formatBundle, formatFlagUsage } from './common.js';

function defineFlags(fs: FlagSet) {
  return {
    format: fs.string('format', 'pem', formatFlagUsage('show the bundle')),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  const bundle = await ctx.clients.bundle.getBundle({});
  if (f.output.value === 'json') {
    writeProtoJson(ctx.io, types.BundleSchema, bundle);
    return;
  }
  ctx.io.stdout.write(formatBundle(bundle, f.format.value, false));
}

/** The `bundle show` command. */
export function bundleShowCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'bundle show', defineFlags, run }, options);
}
