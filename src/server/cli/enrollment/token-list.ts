/**
 * `spire-server enrollment token list [-spiffeID <alias>]`: the unexpired provisioning tokens
 * — alias, fingerprint (first 16 hex digits of the token's SHA-256), whether it may replace,
 * expiry and creation time — never the tokens themselves. Pretty output: `Found N
 * provisioning tokens` then one block per token; `-output json`: the response message.
 * Ours, not SPIRE's.
 */
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { formatGoTime } from '../../../common/cli/go-time.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { enrollmentv1 } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { writeProtoJson } from '../output.js';
import { pluralize } from '../util.js';

function defineFlags(fs: FlagSet) {
  return {
    spiffeID: fs.string('spiffeID', '', 'Only tokens for this node alias SPIFFE ID'),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

function line(label: string, value: string): string {
  return `${label.padEnd(24)}: ${value}\n`;
}

/** One token as `enrollment token list` prints it, ending with a blank line. */
export function formatProvisioningToken(t: enrollmentv1.ProvisioningTokenInfo): string {
  return `${
    line('SPIFFE ID', t.spiffeId) +
    line('Fingerprint', t.fingerprint) +
    line('Replace', String(t.replace)) +
    line('Expires at', formatGoTime(t.expiresAt)) +
    line('Created at', formatGoTime(t.createdAt))
  }\n`;
}

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  const resp = await ctx.clients.provisioningToken.listProvisioningTokens({
    bySpiffeId: f.spiffeID.value,
  });
  if (f.output.value === 'json') {
    writeProtoJson(ctx.io, enrollmentv1.ListProvisioningTokensResponseSchema, resp);
    return;
  }
  const n = resp.tokens.length;
  let out = `${pluralize(`Found ${n} provisioning `, 'token', 'tokens', n)}\n`;
  if (n > 0) out += '\n';
  for (const t of resp.tokens) out += formatProvisioningToken(t);
  ctx.io.stdout.write(out);
}

/** The `enrollment token list` command. */
export function enrollmentTokenListCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'enrollment token list', defineFlags, run }, options);
}
