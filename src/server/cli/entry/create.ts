/**
 * `spire-server entry create`: creates registration entries from flags or from a batch file
 * (`-data <file>`, `-data -` for stdin), with SPIRE's flags, checks, messages and output.
 *
 * Pretty output: each created entry (see {@link formatEntry}) on stdout; each refused one on
 * stderr after `Failed to create the following entry (code: <Code>, msg: "<message>"):`, then
 * `Error: failed to create one or more entries` and exit 1. `-output json`: the
 * `BatchCreateEntryResponse` (refused items carry the requested entry), exit 0.
 */
import { create } from '@bufbuild/protobuf';
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { goQuote } from '../../../common/cli/go-quote.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { grpcCodeName } from '../../../common/cli/rpc-error.js';
import { entryv1, types } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { readCommandInput } from '../input.js';
import { writeProtoJson } from '../output.js';
import { cliFailure, idStringToProto, parseSelector, toInt32 } from '../util.js';
import { parseEntriesFile } from './data-file.js';
import { formatEntry } from './print.js';

/** The path of a server's SPIFFE ID, the parent of `-node` entries (SPIRE's `ServerIDPath`). */
export const SERVER_ID_PATH = '/spire/server';

function defineFlags(fs: FlagSet) {
  return {
    entryID: fs.string(
      'entryID',
      '',
      'A custom ID for this registration entry (optional). If not set, a new entry ID will be generated',
    ),
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
    node: fs.bool(
      'node',
      false,
      'If set, this entry will be applied to matching nodes rather than workloads',
    ),
    admin: fs.bool(
      'admin',
      false,
      "If set, the SPIFFE ID in this entry will be granted access to the SPIRE Server's management APIs",
    ),
    storeSVID: fs.bool(
      'storeSVID',
      false,
      'A boolean value that, when set, indicates that the resulting issued SVID from this entry must be stored through an SVIDStore plugin',
    ),
    downstream: fs.bool(
      'downstream',
      false,
      'A boolean value that, when set, indicates that the entry describes a downstream SPIRE server',
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
    disableX509SVIDPrefetch: fs.bool(
      'disableX509SVIDPrefetch',
      false,
      'A boolean value that, when set, disables prefetching X509 SVID for this entry',
    ),
    jwtSVIDIncludeJTI: fs.bool(
      'jwtSVIDIncludeJTI',
      false,
      "A boolean value that, when set, includes a unique 'jti' claim in JWT-SVIDs issued for this entry and bypasses the agent JWT-SVID cache",
    ),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

function validate(f: Flags): void {
  if (f.data.value !== '') return;
  if (f.selector.value.length < 1) throw cliFailure('at least one selector is required');
  if (f.node.value && f.federatesWith.value.length > 0) {
    throw cliFailure('node entries can not federate');
  }
  if (f.parentID.value === '' && !f.node.value) {
    throw cliFailure('a parent ID is required if the node flag is not set');
  }
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
  const spiffeId = idStringToProto(f.spiffeID.value);
  const parentId = f.node.value
    ? create(types.SPIFFEIDSchema, { trustDomain: spiffeId.trustDomain, path: SERVER_ID_PATH })
    : idStringToProto(f.parentID.value);
  const entry = create(types.EntrySchema, {
    id: f.entryID.value,
    parentId,
    spiffeId,
    downstream: f.downstream.value,
    expiresAt: f.entryExpiry.value,
    dnsNames: [...f.dns.value],
    storeSvid: f.storeSVID.value,
    x509SvidTtl: ttl(f.x509SVIDTTL.value, 'X509 SVID'),
    jwtSvidTtl: ttl(f.jwtSVIDTTL.value, 'JWT SVID'),
    hint: f.hint.value,
    selectors: f.selector.value.map(parseSelector),
    federatesWith: [...f.federatesWith.value],
    admin: f.admin.value,
  });
  if (f.disableX509SVIDPrefetch.value || f.jwtSVIDIncludeJTI.value) {
    entry.additionalAttributes = create(types.Entry_AdditionalAttributesSchema, {
      disableX509SvidPrefetch: f.disableX509SVIDPrefetch.value,
      jwtSvidIncludeJti: f.jwtSVIDIncludeJTI.value,
    });
  }
  return entry;
}

/**
 * Prints batch results SPIRE's way: successes on stdout, failures on stderr with their status;
 * throws `failed to <verb> one or more entries` when any failed.
 */
export function printEntryResults(
  ctx: ServerCommandContext,
  results: ReadonlyArray<{ status?: types.Status | undefined; entry?: types.Entry | undefined }>,
  verb: 'create' | 'update',
): void {
  const empty = create(types.EntrySchema);
  const failed = results.filter((r) => (r.status?.code ?? 0) !== 0);
  for (const r of results) {
    if ((r.status?.code ?? 0) === 0) ctx.io.stdout.write(formatEntry(r.entry ?? empty));
  }
  for (const r of failed) {
    ctx.io.stderr.write(
      `Failed to ${verb} the following entry (code: ${grpcCodeName(r.status?.code ?? 0)}, msg: ${goQuote(r.status?.message ?? '')}):\n`,
    );
    ctx.io.stderr.write(formatEntry(r.entry ?? empty));
  }
  if (failed.length > 0) throw cliFailure(`failed to ${verb} one or more entries`);
}

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  validate(f);
  const entries =
    f.data.value !== ''
      ? parseEntriesFile((await readCommandInput(ctx, f.data.value)).toString('utf8'))
      : [entryFromFlags(f)];
  const resp = await ctx.clients.entry.batchCreateEntry({ entries });
  resp.results.forEach((r, i) => {
    // The API leaves refused entries out of the results: show what was asked for.
    if ((r.status?.code ?? 0) !== 0 && entries[i] !== undefined) r.entry = entries[i];
  });
  if (f.output.value === 'json') {
    writeProtoJson(ctx.io, entryv1.BatchCreateEntryResponseSchema, resp);
    return;
  }
  printEntryResults(ctx, resp.results, 'create');
}

/** The `entry create` command. */
export function entryCreateCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'entry create', defineFlags, run }, options);
}
