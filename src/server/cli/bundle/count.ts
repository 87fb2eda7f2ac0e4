/**
 * `spire-server bundle count`: the number of bundles (the server's own and federated ones),
 * printed as `N bundles` (`1 bundle`).
 */
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { bundlev1 } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { writeProtoJson } from '../output.js';
import { pluralize } from '../util.js';

function defineFlags(fs: FlagSet) {
  return { output: outputFlag(fs) };
}

type Flags = ReturnType<typeof defineFlags>;

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  const resp = await ctx.clients.bundle.countBundles({});
  if (f.output.value === 'json') {
    writeProtoJson(ctx.io, bundlev1.CountBundlesResponseSchema, resp);
    return;
  }
  ctx.io.stdout.write(`${pluralize(`${resp.count} `, 'bundle', 'bundles', resp.count)}\n`);
}

/** The `bundle count` command. */
export function bundleCountCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'bundle count', defineFlags, run }, options);
}
