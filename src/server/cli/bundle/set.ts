/**
 * `spire-server bundle set`: creates or replaces the federated bundle of `-id` from `-path`
 * (stdin when empty), in `-format pem` (default) or `spiffe`. Prints `bundle set.`.
 */
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { describeCliError } from '../../../common/cli/rpc-error.js';
import { bundlev1 } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { readCommandInput } from '../input.js';
import { writeProtoJson } from '../output.js';
import { cliFailure } from '../util.js';
import { parseBundleData, validateFormat } from './common.js';

function defineFlags(fs: FlagSet) {
  return {
    id: fs.string('id', '', 'SPIFFE ID of the trust domain'),
    path: fs.string('path', '', 'Path to the bundle data'),
    format: fs.string('format', 'pem', 'The format of the bundle data. Either "pem" or "spiffe".'),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  if (f.id.value === '') throw cliFailure('id flag is required');
  const format = validateFormat(f.format.value);
  let data: Buffer;
  try {
    data = await readCommandInput(ctx, f.path.value, true);
  } catch (err) {
    throw cliFailure(`unable to load bundle data: ${describeCliError(err)}`, err);
  }
  const bundle = parseBundleData(data, format, f.id.value);
  let resp: bundlev1.BatchSetFederatedBundleResponse;
  try {
    resp = await ctx.clients.bundle.batchSetFederatedBundle({ bundle: [bundle] });
  } catch (err) {
    throw cliFailure(`failed to set federated bundle: ${describeCliError(err)}`, err);
  }
  if (f.output.value === 'json') {
    writeProtoJson(ctx.io, bundlev1.BatchSetFederatedBundleResponseSchema, resp);
    return;
  }
  const status = resp.results[0]?.status;
  if ((status?.code ?? 0) !== 0) {
    throw cliFailure(`failed to set federated bundle: ${status?.message ?? ''}`);
  }
  ctx.io.stdout.write('bundle set.\n');
}

/** The `bundle set` command. */
export function bundleSetCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'bundle set', defineFlags, run }, options);
}
