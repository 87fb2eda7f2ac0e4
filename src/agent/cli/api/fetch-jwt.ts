/**
 * `spire-agent api fetch jwt -audience A[,B…] [-spiffeID ID]`: JWT-SVIDs for the audience and
 * the JWT bundles, from the Workload API, as SPIRE's `fetch_jwt.go` (bundles are fetched
 * first, then the SVIDs; each call has its own `-timeout`).
 *
 * `-output pretty` (default; `-format` is SPIRE's deprecated alias of `-output`):
 *
 * ```text
 * token(spiffe://example.org/web):
 * 	eyJhbGciOi…
 * hint(spiffe://example.org/web):
 * 	internal
 * bundle(spiffe://example.org):
 * 	{"keys":[…]}
 * ```
 *
 * (`hint(…)` only for a token with a hint; bundles sorted by trust domain, where SPIRE uses
 * Go map order.) `-output json`: `[<JWTSVIDResponse>,<JWTBundlesResponse>]` on one line.
 *
 * Tokens are printed as the agent issued them, unverified (they come from the agent). The
 * JWKS printed is the bundle re-encoded after parsing (the same keys, in the agent's order).
 */
import { create } from '@bufbuild/protobuf';
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { protoToGoJson } from '../../../common/cli/go-json.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { SpireEdgeError } from '../../../common/errors.js';
import { workload } from '../../../protocol/index.js';
import { JwtBundle } from '../../../spiffe/jwt-bundle.js';
import { type WorkloadCommandContext, workloadCommand } from './adapter.js';

/** SPIRE's `CommaStringsFlag`: each use replaces the list with the value split at commas. */
function commaStrings(fs: FlagSet, name: string, usage: string) {
  let list: string[] = [];
  return fs.define(
    name,
    usage,
    {
      set(raw) {
        list = raw.split(',');
      },
      text: () => list.join(','),
      zeroText: '',
      typeName: 'value',
    },
    (): readonly string[] => list,
  );
}

function defineFlags(fs: FlagSet) {
  return {
    audience: commaStrings(fs, 'audience', 'comma separated list of audience values'),
    spiffeId: fs.string('spiffeID', '', 'SPIFFE ID subject (optional)'),
    output: outputFlag(fs, { aliases: [{ name: 'format', usage: 'deprecated; use -output' }] }),
  };
}

type Flags = ReturnType<typeof defineFlags>;

async function run(f: Flags, ctx: WorkloadCommandContext): Promise<void> {
  const audience = f.audience.value;
  if (audience.length === 0) {
    throw new SpireEdgeError('ERR_CLI_COMMAND_FAILED', 'audience must be specified');
  }
  const bundleSet = await ctx.call((options) => ctx.client.fetchJwtBundles(options));
  const fetched = await ctx.call((options) =>
    ctx.client.fetchJwtSvids({ audience, spiffeId: f.spiffeId.value }, options),
  );
  const svids = fetched.map((s) => ({
    spiffeId: s.svid.id.toString(),
    svid: s.svid.token,
    hint: s.hint,
  }));
  const bundles: Array<[string, string]> = [];
  for (const b of bundleSet.bundles()) {
    if (b instanceof JwtBundle) bundles.push([`spiffe://${b.trustDomain.name}`, b.marshal()]);
  }
  if (f.output.value === 'json') {
    const svidResp = create(workload.JWTSVIDResponseSchema, { svids });
    const bundlesResp = create(workload.JWTBundlesResponseSchema, {
      bundles: Object.fromEntries(bundles.map(([k, v]) => [k, Buffer.from(v, 'utf8')])),
    });
    ctx.io.stdout.write(
      `[${protoToGoJson(workload.JWTSVIDResponseSchema, svidResp)},${protoToGoJson(
        workload.JWTBundlesResponseSchema,
        bundlesResp,
      )}]\n`,
    );
    return;
  }
  let out = '';
  for (const s of svids) {
    out += `token(${s.spiffeId}):\n\t${s.svid}\n`;
    if (s.hint !== '') out += `hint(${s.spiffeId}):\n\t${s.hint}\n`;
  }
  for (const [td, jwks] of bundles) out += `bundle(${td}):\n\t${jwks}\n`;
  ctx.io.stdout.write(out);
}

/** The `api fetch jwt` command. */
export function fetchJwtCommand(): CliCommand {
  return workloadCommand({ name: 'fetch jwt', defineFlags, run });
}
