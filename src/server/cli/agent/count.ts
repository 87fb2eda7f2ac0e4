/**
 * `spire-server agent count`: the number of attested agents matching the filter flags of
 * `agent list`, printed as `N attested agents` (`1 attested agent`).
 */
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { agentv1 } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { writeProtoJson } from '../output.js';
import { pluralize } from '../util.js';
import { buildAgentFilter, defineAgentFilterFlags } from './common.js';

function defineFlags(fs: FlagSet) {
  return { ...defineAgentFilterFlags(fs), output: outputFlag(fs) };
}

type Flags = ReturnType<typeof defineFlags>;

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  const resp = await ctx.clients.agent.countAgents({ filter: buildAgentFilter(f) });
  if (f.output.value === 'json') {
    writeProtoJson(ctx.io, agentv1.CountAgentsResponseSchema, resp);
    return;
  }
  ctx.io.stdout.write(`${pluralize(`${resp.count} attested `, 'agent', 'agents', resp.count)}\n`);
}

/** The `agent count` command. */
export function agentCountCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'agent count', defineFlags, run }, options);
}
