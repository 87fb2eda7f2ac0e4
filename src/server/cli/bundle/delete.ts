/**
 * `spire-server bundle delete`: deletes the federated bundle of `-id`. `-mode restrict`
 * (default: refuse while entries federate with it), `delete` (also delete those entries) or
 * `dissociate` (remove the relationship from them). Prints `bundle deleted.`.
 */
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { goQuote } from '../../../common/cli/go-quote.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { describeCliError } from '../../../common/cli/rpc-error.js';
import { bundlev1 } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { writeProtoJson } from '../output.js';
import { cliFailure } from '../util.js';

const Mode = bundlev1.BatchDeleteFederatedBundleRequest_Mode;

/**
 * SPIRE's `deleteModeFromFlag`.
 *
 * @throws SpireEdgeError `ERR_CLI_COMMAND_FAILED` (`unsupported mode "x"`).
 */
export function parseDeleteMode(mode: string): bundlev1.BatchDeleteFederatedBundleRequest_Mode {
  switch (mode) {
    case '':
    case 'restrict':
      return Mode.RESTRICT;
    case 'dissociate':
      return Mode.DISSOCIATE;
    case 'delete':
      return Mode.DELETE;
    default:
      throw cliFailure(`unsupported mode ${goQuote(mode)}`);
  }
}

function defineFlags(fs: FlagSet) {
  return {
    id: fs.string('id', '', 'SPIFFE ID of the trust domain'),
    mode: fs.string('mode', 'restrict', 'Deletion mode: one of restrict, delete, or dissociate'),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  if (f.id.value === '') throw cliFailure('id is required');
  const mode = parseDeleteMode(f.mode.value);
  let resp: bundlev1.BatchDeleteFederatedBundleResponse;
  try {
    resp = await ctx.clients.bundle.batchDeleteFederatedBundle({
      mode,
      trustDomains: [f.id.value],
    });
  } catch (err) {
    throw cliFailure(`failed to delete federated bundle: ${describeCliError(err)}`, err);
  }
  if (f.output.value === 'json') {
    writeProtoJson(ctx.io, bundlev1.BatchDeleteFederatedBundleResponseSchema, resp);
    return;
  }
  const result = resp.results[0];
  if ((result?.status?.code ?? 0) !== 0) {
    throw cliFailure(
      `failed to delete federated bundle ${goQuote(result?.trustDomain ?? '')}: ${result?.status?.message ?? ''}`,
    );
  }
  ctx.io.stdout.write('bundle deleted.\n');
}

/** The `bundle delete` command. */
export function bundleDeleteCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'bundle delete', defineFlags, run }, options);
}
