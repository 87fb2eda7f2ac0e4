/**
 * `spire-server agent show -spiffeID <id>`: one attested agent, with its selectors:
 * `Found an attested agent given its SPIFFE ID`, a blank line, the agent, then one
 * `Selectors         : type:value` line per selector, then the attestation evidence summary
 * the server recorded (evidence.ts; spire-edge's addition).
 */
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { protoToGoJson } from '../../../common/cli/go-json.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { types } from '../../../protocol/index.js';
import { readAttestationEvidence } from '../../api/admin/agent.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { writeProtoJson } from '../output.js';
import { agentIdArg, formatAgent } from './common.js';
import { evidenceJson, formatEvidence } from './evidence.js';

function defineFlags(fs: FlagSet) {
  return {
    spiffeID: fs.string('spiffeID', '', 'The SPIFFE ID of the agent to show (agent identity)'),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  const id = agentIdArg(f.spiffeID.value);
  let evidence: string | undefined;
  const agent = await ctx.clients.agent.getAgent(
    { id },
    {
      onHeader: (h) => {
        evidence = readAttestationEvidence(h);
      },
    },
  );
  if (f.output.value === 'json') {
    const e = evidenceJson(evidence);
    if (e === undefined) {
      writeProtoJson(ctx.io, types.AgentSchema, agent);
      return;
    }
    // SPIRE's Agent JSON, with spire-edge's evidence summary as one more field.
    const json = JSON.parse(protoToGoJson(types.AgentSchema, agent)) as Record<string, unknown>;
    ctx.io.stdout.write(`${JSON.stringify({ ...json, attestation_evidence: e })}\n`);
    return;
  }
  let out = `Found an attested agent given its SPIFFE ID\n\n${formatAgent(agent)}`;
  for (const s of agent.selectors) out += `Selectors         : ${s.type}:${s.value}\n`;
  out += formatEvidence(evidence);
  ctx.io.stdout.write(out);
}

/** The `agent show` command. */
export function agentShowCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'agent show', defineFlags, run }, options);
}
