/**
 * `spire-server entry update`: replaces registration entries (every field, as SPIRE's CLI sends
 * no input mask) from flags (`-entryID` required) or from a batch file (`-data`).
 *
 * `-disableX509SVIDPrefetch` / `-jwtSVIDIncludeJTI` change only the attribute given: the
 * entry's other additional attributes are fetched and kept, as SPIRE does. Deliberate
 * difference: SPIRE treats `-disableX509SVIDPrefetch=false` like `=true` (its flag callback
 * ignores the value); here the value is honoured.
 *
 * Output as `entry create`, with `Failed to update the following entry …`.
 */
import { create } from '@bufbuild/protobuf';
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { parseGoBool } from '../../../common/cli/go-value.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { describeCliError } from '../../../common/cli/rpc-error.js';
import { entryv1, types } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { readCommandInput } from '../input.js';
import { writeProtoJson } from '../output.js';
import { cliFailure, idStringToProto, parseSelector, toInt32 } from '../util.js';
import { printEntryResults } from './create.js';
import { parseEntriesFile } from './data-file.js';

function defineFlags(fs: FlagSet) {
  const attrs = {
    disablePrefetch: undefined as boolean | undefined,
    includeJti: undefined as boolean | undefined,
  };
  const boolArg = (raw: string): boolean => {
    const r = parseGoBool(raw);
    if (!r.ok) throw new Error(r.error);
    return r.value;
  };
  return {
    attrs,
    entryID: fs.string('entryID', '', 'The Registration Entry ID of the record to update'),
    parentID: fs.string('parentID', '', "The SPIFFE ID of this record's parent"),
    spiffeID: fs.string('spiffeID', '', 'The SPIFFE ID that this record represents'),
    x509SVIDTTL: fs.int(
      'x509SVIDTTL',
      0,
      'The lifetime, in seconds, for x509-SVIDs issued based on this registration entry.',
    ),
    jwtSVIDTTL: fs.int(
      'jwtSVIDTTL',
      0,
      'The lifetime, in seconds, for JWT-SVIDs issued based on this registration entry.',
    ),
    data: fs.string(
      'data',
      '',
      "Path to a file containing registration JSON (optional). If set to '-', read the JSON from stdin.",
    ),
    selector: fs.strings(
      'selector',
      'A colon-delimited type:value selector. Can be used more than once',
    ),
    federatesWith: fs.strings(
      'federatesWith',
      'SPIFFE ID of a trust domain to federate with. Can be used more than once',
    ),
    admin: fs.bool(
      'admin',
      false,
      "If set, the SPIFFE ID in this entry will be granted access to the SPIRE Server's management APIs",
    ),
    downstream: fs.bool(
      'downstream',
      false,
      'A boolean value that, when set, indicates that the entry describes a downstream SPIRE server',
    ),
    storeSVID: fs.bool(
      'storeSVID',
      false,
      'A boolean value that, when set, indicates that the resulting issued SVID from this entry must be stored through an SVIDStore plugin',
    ),
    entryExpiry: fs.int(
      'entryExpiry',
      0,
      'An expiry, from epoch in seconds, for the resulting registration entry to be pruned',
    ),
    dns: fs.strings(
      'dns',
      'A DNS name that will be included in SVIDs issued based on this entry, where appropriate. Can be used more than once',
    ),
    hint: fs.string(
      'hint',
      '',
      'The entry hint, used to disambiguate entries with the same SPIFFE ID',
    ),
    disableX509SVIDPrefetch: fs.boolFunc(
      'disableX509SVIDPrefetch',
      'A boolean value that, when set, disables prefetching X509 SVID for this entry',
      (raw) => {
        attrs.disablePrefetch = boolArg(raw);
      },
    ),
    jwtSVIDIncludeJTI: fs.boolFunc(
      'jwtSVIDIncludeJTI',
      "A boolean value that, when set, includes a unique 'jti' claim in JWT-SVIDs issued for this entry and bypasses the agent JWT-SVID cache",
      (raw) => {
        attrs.includeJti = boolArg(raw);
      },
    ),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

function validate(f: Flags): void {
  if (f.data.value !== '') return;
  if (f.entryID.value === '') throw cliFailure('entry ID is required');
  if (f.selector.value.length < 1) throw cliFailure('at least one selector is required');
  if (f.parentID.value === '') throw cliFailure('a parent ID is required');
  if (f.spiffeID.value === '') throw cliFailure('a SPIFFE ID is required');
  if (f.x509SVIDTTL.value < 0n) throw cliFailure('a positive x509-SVID TTL is required');
  if (f.jwtSVIDTTL.value < 0n) throw cliFailure('a positive JWT-SVID TTL is required');
}

function ttl(v: bigint, what: string): number {
  try {
    return toInt32(v);
  } catch (err) {
    throw cliFailure(`invalid value for ${what} TTL: ${(err as Error).message}`, err);
  }
}

function entryFromFlags(f: Flags): types.Entry {
  const parentId = idStringToProto(f.parentID.value);
  const spiffeId = idStringToProto(f.spiffeID.value);
  const entry = create(types.EntrySchema, {
    id: f.entryID.value,
    parentId,
    spiffeId,
    downstream: f.downstream.value,
    expiresAt: f.entryExpiry.value,
    dnsNames: [...f.dns.value],
    x509SvidTtl: ttl(f.x509SVIDTTL.value, 'X509 SVID'),
    jwtSvidTtl: ttl(f.jwtSVIDTTL.value, 'JWT SVID'),
    hint: f.hint.value,
    selectors: f.selector.value.map(parseSelector),
    federatesWith: [...f.federatesWith.value],
    admin: f.admin.value,
    storeSvid: f.storeSVID.value,
  });
  if (f.attrs.disablePrefetch !== undefined || f.attrs.includeJti !== undefined) {
    entry.additionalAttributes = create(types.Entry_AdditionalAttributesSchema, {
      disableX509SvidPrefetch: f.attrs.disablePrefetch ?? false,
      jwtSvidIncludeJti: f.attrs.includeJti ?? false,
    });
  }
  return entry;
}

/** SPIRE's `mergeAdditionalAttributes`: keep the stored attributes not given on the command line. */
function mergeAdditionalAttributes(e: types.Entry, existing: types.Entry, f: Flags): void {
  const merged = create(types.Entry_AdditionalAttributesSchema, {
    disableX509SvidPrefetch: existing.additionalAttributes?.disableX509SvidPrefetch ?? false,
    jwtSvidIncludeJti: existing.additionalAttributes?.jwtSvidIncludeJti ?? false,
  });
  if (f.attrs.disablePrefetch !== undefined) {
    merged.disableX509SvidPrefetch = f.attrs.disablePrefetch;
  }
  if (f.attrs.includeJti !== undefined) merged.jwtSvidIncludeJti = f.attrs.includeJti;
  e.additionalAttributes = merged;
}

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  validate(f);
  const fromFile = f.data.value !== '';
  const entries = fromFile
    ? parseEntriesFile((await readCommandInput(ctx, f.data.value)).toString('utf8'))
    : [entryFromFlags(f)];
  if (!fromFile && (f.attrs.disablePrefetch !== undefined || f.attrs.includeJti !== undefined)) {
    let existing: types.Entry;
    try {
      existing = await ctx.clients.entry.getEntry({ id: f.entryID.value });
    } catch (err) {
      throw cliFailure(
        `failed to fetch existing entry to merge additional attributes: ${describeCliError(err)}`,
        err,
      );
    }
    mergeAdditionalAttributes(entries[0]!, existing, f);
  }
  const resp = await ctx.clients.entry.batchUpdateEntry({ entries });
  resp.results.forEach((r, i) => {
    if ((r.status?.code ?? 0) !== 0 && entries[i] !== undefined) r.entry = entries[i];
  });
  if (f.output.value === 'json') {
    writeProtoJson(ctx.io, entryv1.BatchUpdateEntryResponseSchema, resp);
    return;
  }
  printEntryResults(ctx, resp.results, 'update');
}

/** The `entry update` command. */
export function entryUpdateCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'entry update', defineFlags, run }, options);
}
