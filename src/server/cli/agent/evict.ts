/**
 * `spire-server agent evict -spiffeID <id>`: evicts (deletes) an attested agent, which must
 * attest again to get an identity. Prints `Agent evicted successfully`; `-output json` prints
 * the empty response (`{}`).
 */
import { EmptySchema } from '@bufbuild/protobuf/wkt';
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { writeProtoJson } from '../output.js';
import { agentIdArg } from './common.js';

function defineFlags(fs: FlagSet) {
  return {
    spiffeID: fs.string('spiffeID', '', 'The SPIFFE ID of the agent to evict (agent identity)'),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  const id = agentIdArg(f.spiffeID.value);
  const resp = await ctx.clients.agent.deleteAgent({ id });
  if (f.output.value === 'json') {
    writeProtoJson(ctx.io, EmptySchema, resp);
    return;
  }
  ctx.io.stdout.write('Agent evicted successfully\n');
}

/** The `agent evict` command. */
export function agentEvictCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'agent evict', defineFlags, run }, options);
}
