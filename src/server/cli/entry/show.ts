/**
 * `spire-server entry show`: lists registration entries matching the filter flags (or the one
 * `-entryID`), sorted as SPIRE sorts them, paging through the API 500 at a time.
 *
 * Pretty output: `Found N entries` (`Found 1 entry`) then each entry. `-output json`: a
 * `ListEntriesResponse` holding every entry.
 */
import { create } from '@bufbuild/protobuf';
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { describeCliError } from '../../../common/cli/rpc-error.js';
import { entryv1, type types } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { writeProtoJson } from '../output.js';
import { cliFailure, pluralize } from '../util.js';
import { buildEntryFilter, defineEntryFilterFlags } from './filter.js';
import { formatEntry, sortEntries } from './print.js';

/** Page size of SPIRE's `entry show`. */
export const LIST_ENTRIES_PAGE_SIZE = 500;

function defineFlags(fs: FlagSet) {
  return {
    entryID: fs.string('entryID', '', 'The Entry ID of the records to show'),
    ...defineEntryFilterFlags(fs, 'show'),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

async function fetchEntries(f: Flags, ctx: ServerCommandContext): Promise<types.Entry[]> {
  if (f.entryID.value !== '') {
    try {
      return [await ctx.clients.entry.getEntry({ id: f.entryID.value })];
    } catch (err) {
      throw cliFailure(`error fetching entry ID ${f.entryID.value}: ${describeCliError(err)}`, err);
    }
  }
  const filter = buildEntryFilter(f);
  const entries: types.Entry[] = [];
  let pageToken = '';
  do {
    let resp: entryv1.ListEntriesResponse;
    try {
      resp = await ctx.clients.entry.listEntries({
        pageSize: LIST_ENTRIES_PAGE_SIZE,
        pageToken,
        filter,
      });
    } catch (err) {
      throw cliFailure(`error fetching entries: ${describeCliError(err)}`, err);
    }
    entries.push(...resp.entries);
    pageToken = resp.nextPageToken;
  } while (pageToken !== '');
  return entries;
}

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  if (
    f.entryID.value !== '' &&
    (f.parentID.value !== '' || f.spiffeID.value !== '' || f.selector.value.length > 0)
  ) {
    throw cliFailure("the -entryID flag can't be combined with others");
  }
  const entries = await fetchEntries(f, ctx);
  sortEntries(entries);
  if (f.output.value === 'json') {
    writeProtoJson(
      ctx.io,
      entryv1.ListEntriesResponseSchema,
      create(entryv1.ListEntriesResponseSchema, { entries }),
    );
    return;
  }
  let out = `${pluralize(`Found ${entries.length} `, 'entry', 'entries', entries.length)}\n`;
  for (const e of entries) out += formatEntry(e);
  ctx.io.stdout.write(out);
}

/** The `entry show` command. */
export function entryShowCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'entry show', defineFlags, run }, options);
}
