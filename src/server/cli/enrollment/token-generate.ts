/**
 * `spire-server enrollment token generate -spiffeID <alias> [-ttl 600] [-replace]`: creates a
 * one-time provisioning token that lets one device bind itself to the node alias `-spiffeID`
 * with `tpm-enroll -serverAddress … -provisioningToken …` (docs/tpm-enroll.md). Pretty output:
 * `Token: <token>` (as `token generate`), plus a note when `-replace` is set. `-output json`:
 * `{"value":…,"spiffe_id":…,"replace":…,"expires_at":"…"}`.
 *
 * The token is a credential: it is printed once, never logged, and the server keeps only its
 * SHA-256. Ours, not SPIRE's.
 */
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { enrollmentv1 } from '../../../protocol/index.js';
import { DEFAULT_PROVISIONING_TOKEN_TTL } from '../../api/enrollment/provisioning-token.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { writeProtoJson } from '../output.js';
import { cliFailure, toInt32 } from '../util.js';

function defineFlags(fs: FlagSet) {
  return {
    spiffeID: fs.string(
      'spiffeID',
      '',
      'Node alias SPIFFE ID the device will be bound to (required)',
    ),
    ttl: fs.int('ttl', DEFAULT_PROVISIONING_TOKEN_TTL, 'Token TTL in seconds'),
    replace: fs.bool(
      'replace',
      false,
      'Let the token rebind the alias if it is bound to another device',
    ),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  if (f.spiffeID.value === '') throw cliFailure('a SPIFFE ID is required (-spiffeID)');
  let ttl: number;
  try {
    ttl = toInt32(f.ttl.value);
  } catch (err) {
    throw cliFailure(`invalid value for TTL: ${(err as Error).message}`, err);
  }
  if (ttl < 1) throw cliFailure('invalid value for TTL: must be at least 1 second');
  const token = await ctx.clients.provisioningToken.createProvisioningToken({
    spiffeId: f.spiffeID.value,
    ttl,
    replace: f.replace.value,
  });
  if (f.output.value === 'json') {
    writeProtoJson(ctx.io, enrollmentv1.CreateProvisioningTokenResponseSchema, token);
    return;
  }
  ctx.io.stdout.write(`Token: ${token.value}\n`);
  if (token.replace) {
    ctx.io.stdout.write(
      `Note: this token may rebind ${token.spiffeId} if it is bound to another device\n`,
    );
  }
}

/** The `enrollment token generate` command. */
export function enrollmentTokenGenerateCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'enrollment token generate', defineFlags, run }, options);
}
