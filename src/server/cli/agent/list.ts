/**
 * `spire-server agent list`: the attested agents matching the filter flags, paging through the
 * API 1000 at a time. Pretty output: `Found N attested agents:` and a blank line, then each
 * agent; `No attested agents found` when there are none.
 */
import { create } from '@bufbuild/protobuf';
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { agentv1, type types } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { writeProtoJson } from '../output.js';
import { pluralize } from '../util.js';
import { buildAgentFilter, defineAgentFilterFlags, formatAgent } from './common.js';

/** Page size of SPIRE's `agent list`. */
export const LIST_AGENTS_PAGE_SIZE = 1000;

function defineFlags(fs: FlagSet) {
  return { ...defineAgentFilterFlags(fs), output: outputFlag(fs) };
}

type Flags = ReturnType<typeof defineFlags>;

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  const filter = buildAgentFilter(f);
  const agents: types.Agent[] = [];
  let pageToken = '';
  do {
    const resp = await ctx.clients.agent.listAgents({
      pageSize: LIST_AGENTS_PAGE_SIZE,
      pageToken,
      filter,
    });
    agents.push(...resp.agents);
    pageToken = resp.nextPageToken;
  } while (pageToken !== '');
  if (f.output.value === 'json') {
    writeProtoJson(
      ctx.io,
      agentv1.ListAgentsResponseSchema,
      create(agentv1.ListAgentsResponseSchema, { agents }),
    );
    return;
  }
  if (agents.length === 0) {
    ctx.io.stdout.write('No attested agents found\n');
    return;
  }
  let out = `${pluralize(`Found ${agents.length} attested `, 'agent', 'agents', agents.length)}:\n\n`;
  for (const a of agents) out += formatAgent(a);
  ctx.io.stdout.write(out);
}

/** The `agent list` command. */
export function agentListCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'agent list', defineFlags, run }, options);
}
