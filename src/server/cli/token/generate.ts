/**
 * `spire-server token generate`: creates a join token (`-ttl` seconds, default 600), optionally
 * with a registration entry giving the node `-spiffeID`. Pretty output: `Token: <token>`, plus
 * `Warning: Missing SPIFFE ID.` when no `-spiffeID` was given. `-output json`: the
 * `JoinToken` (`{"expires_at":"…","value":"…"}`).
 *
 * The token is a credential: it is printed once and never logged.
 */
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { types } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { writeProtoJson } from '../output.js';
import { cliFailure, idStringToProto, toInt32 } from '../util.js';

/** SPIRE's default join token TTL, seconds. */
export const DEFAULT_JOIN_TOKEN_TTL = 600;

function defineFlags(fs: FlagSet) {
  return {
    ttl: fs.int('ttl', DEFAULT_JOIN_TOKEN_TTL, 'Token TTL in seconds'),
    spiffeID: fs.string(
      'spiffeID',
      '',
      'Additional SPIFFE ID to assign the token owner (optional)',
    ),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  const agentId = f.spiffeID.value === '' ? undefined : idStringToProto(f.spiffeID.value);
  let ttl: number;
  try {
    ttl = toInt32(f.ttl.value);
  } catch (err) {
    throw cliFailure(`invalid value for TTL: ${(err as Error).message}`, err);
  }
  const token = await ctx.clients.agent.createJoinToken({
    ttl,
    ...(agentId === undefined ? {} : { agentId }),
  });
  if (f.output.value === 'json') {
    writeProtoJson(ctx.io, types.JoinTokenSchema, token);
    return;
  }
  ctx.io.stdout.write(`Token: ${token.value}\n`);
  if (f.spiffeID.value === '') ctx.io.stdout.write('Warning: Missing SPIFFE ID.\n');
}

/** The `token generate` command (its flag set is named `generate`, as SPIRE's). */
export function tokenGenerateCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'generate', defineFlags, run }, options);
}
