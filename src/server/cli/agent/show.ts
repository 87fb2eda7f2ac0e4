/**
 * `spire-server agent show -spiffeID <id>`: one attested agent, with its selectors:
 * `Found an attested agent given its SPIFFE ID`, a blank line, the agent, then one
 * `Selectors         : type:value` line per selector.
 */
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { types } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { writeProtoJson } from '../output.js';
import { agentIdArg, formatAgent } from './common.js';

function defineFlags(fs: FlagSet) {
  return {
    spiffeID: fs.string('spiffeID', '', 'The SPIFFE ID of the agent to show (agent identity)'),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  const id = agentIdArg(f.spiffeID.value);
  const agent = await ctx.clients.agent.getAgent({ id });
  if (f.output.value === 'json') {
    writeProtoJson(ctx.io, types.AgentSchema, agent);
    return;
  }
  let out = `Found an attested agent given its SPIFFE ID\n\n${formatAgent(agent)}`;
  for (const s of agent.selectors) out += `Selectors         : ${s.type}:${s.value}\n`;
  ctx.io.stdout.write(out);
}

/** The `agent show` command. */
export function agentShowCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'agent show', defineFlags, run }, options);
}
