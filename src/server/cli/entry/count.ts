/**
 * `spire-server entry count`: counts registration entries matching the filter flags (the same
 * flags as `entry show`, without `-entryID`). Pretty output: `N registration entries`
 * (`1 registration entry`). `-output json`: the `CountEntriesResponse`.
 */
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { entryv1 } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { writeProtoJson } from '../output.js';
import { pluralize } from '../util.js';
import { buildEntryFilter, defineEntryFilterFlags } from './filter.js';

function defineFlags(fs: FlagSet) {
  return { ...defineEntryFilterFlags(fs, 'count'), output: outputFlag(fs) };
}

type Flags = ReturnType<typeof defineFlags>;

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  const resp = await ctx.clients.entry.countEntries({ filter: buildEntryFilter(f) });
  if (f.output.value === 'json') {
    writeProtoJson(ctx.io, entryv1.CountEntriesResponseSchema, resp);
    return;
  }
  ctx.io.stdout.write(
    `${pluralize(`${resp.count} registration `, 'entry', 'entries', resp.count)}\n`,
  );
}

/** The `entry count` command. */
export function entryCountCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'entry count', defineFlags, run }, options);
}
