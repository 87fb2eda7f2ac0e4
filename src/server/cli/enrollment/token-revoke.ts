/**
 * `spire-server enrollment token revoke -spiffeID <alias>`: deletes every unused provisioning
 * token for that node alias. Pretty output: `Revoked N provisioning tokens for <alias>`;
 * `-output json`: `{"revoked":N}`. Revoking changes no entry: a device already enrolled stays
 * enrolled (delete its node alias entry for that). Ours, not SPIRE's.
 */
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { enrollmentv1 } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { writeProtoJson } from '../output.js';
import { cliFailure, pluralize } from '../util.js';

function defineFlags(fs: FlagSet) {
  return {
    spiffeID: fs.string('spiffeID', '', 'Node alias SPIFFE ID whose tokens to revoke (required)'),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  if (f.spiffeID.value === '') throw cliFailure('a SPIFFE ID is required (-spiffeID)');
  const resp = await ctx.clients.provisioningToken.revokeProvisioningTokens({
    spiffeId: f.spiffeID.value,
  });
  if (f.output.value === 'json') {
    writeProtoJson(ctx.io, enrollmentv1.RevokeProvisioningTokensResponseSchema, resp);
    return;
  }
  const n = resp.revoked;
  ctx.io.stdout.write(
    `${pluralize(`Revoked ${n} provisioning `, 'token', 'tokens', n)} for ${f.spiffeID.value}\n`,
  );
}

/** The `enrollment token revoke` command. */
export function enrollmentTokenRevokeCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'enrollment token revoke', defineFlags, run }, options);
}
