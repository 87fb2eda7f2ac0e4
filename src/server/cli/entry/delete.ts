/**
 * `spire-server entry delete`: deletes one entry (`-entryID`) or a batch (`-file <json>`,
 * `-file -` for stdin; `{"ids": ["…"]}`).
 *
 * Pretty output (SPIRE's, including its spacing): `Deleted entry with ID: <id>` per success,
 * two newlines after any success, `Failed to delete entry with ID <id> (code: <Code>, msg:
 * "<message>")` per failure on stderr, then a summary without a trailing newline
 * (`Deleted N entries successfully`, or the failure counts and exit 1). `-output json`: the
 * `BatchDeleteEntryResponse`.
 */
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { goQuote } from '../../../common/cli/go-quote.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { grpcCodeName } from '../../../common/cli/rpc-error.js';
import { entryv1 } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { readCommandInput } from '../input.js';
import { writeProtoJson } from '../output.js';
import { cliFailure } from '../util.js';
import { parseDeleteFile } from './data-file.js';

function defineFlags(fs: FlagSet) {
  return {
    entryID: fs.string('entryID', '', 'The Registration Entry ID of the record to delete.'),
    file: fs.string(
      'file',
      '',
      "Path to a file containing a JSON structure for batch deletion (optional). If set to '-', read from stdin.",
    ),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  if (f.file.value === '' && f.entryID.value === '') throw cliFailure('an entry ID is required');
  const ids =
    f.file.value !== ''
      ? parseDeleteFile((await readCommandInput(ctx, f.file.value)).toString('utf8'))
      : [f.entryID.value];
  const resp = await ctx.clients.entry.batchDeleteEntry({ ids });
  if (f.output.value === 'json') {
    writeProtoJson(ctx.io, entryv1.BatchDeleteEntryResponseSchema, resp);
    return;
  }
  const ok = resp.results.filter((r) => (r.status?.code ?? 0) === 0);
  const failed = resp.results.filter((r) => (r.status?.code ?? 0) !== 0);
  const out = ctx.io.stdout;
  for (const r of ok) out.write(`Deleted entry with ID: ${r.id}\n`);
  if (ok.length > 0) out.write('\n\n');
  for (const r of failed) {
    ctx.io.stderr.write(
      `Failed to delete entry with ID ${r.id} (code: ${grpcCodeName(r.status?.code ?? 0)}, msg: ${goQuote(r.status?.message ?? '')})\n`,
    );
  }
  if (failed.length > 0) {
    out.write('\n\n');
    out.write(
      ok.length === 0
        ? `Failed to delete ${failed.length} entries`
        : `Deleted ${ok.length} entries successfully, but failed to delete ${failed.length} entries`,
    );
    throw cliFailure('failed to delete one or more entries');
  }
  out.write(`Deleted ${ok.length} entries successfully`);
}

/** The `entry delete` command. */
export function entryDeleteCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'entry delete', defineFlags, run }, options);
}
