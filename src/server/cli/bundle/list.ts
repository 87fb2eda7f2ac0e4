/**
 * `spire-server bundle list`: prints the federated bundles (each under a `****` banner naming
 * its trust domain, separated by blank lines), or the one named by `-id` (no banner).
 * `-format pem|spiffe` as `bundle show`; `-output json` prints the API response.
 */
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { bundlev1, types } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { writeProtoJson } from '../output.js';
import { formatBundle, formatFlagUsage } from './common.js';

function defineFlags(fs: FlagSet) {
  return {
    id: fs.string('id', '', 'SPIFFE ID of the trust domain'),
    format: fs.string('format', 'pem', formatFlagUsage('list federated bundles')),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  if (f.id.value !== '') {
    const bundle = await ctx.clients.bundle.getFederatedBundle({ trustDomain: f.id.value });
    if (f.output.value === 'json') {
      writeProtoJson(ctx.io, types.BundleSchema, bundle);
      return;
    }
    ctx.io.stdout.write(formatBundle(bundle, f.format.value, false));
    return;
  }
  const resp = await ctx.clients.bundle.listFederatedBundles({});
  if (f.output.value === 'json') {
    writeProtoJson(ctx.io, bundlev1.ListFederatedBundlesResponseSchema, resp);
    return;
  }
  resp.bundles.forEach((bundle, i) => {
    if (i !== 0) ctx.io.stdout.write('\n');
    ctx.io.stdout.write(formatBundle(bundle, f.format.value, true));
  });
}

/** The `bundle list` command. */
export function bundleListCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'bundle list', defineFlags, run }, options);
}
