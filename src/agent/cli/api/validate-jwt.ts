/**
 * `spire-agent api validate jwt -audience A -svid TOKEN`: asks the agent to validate a
 * JWT-SVID (`ValidateJWTSVID`), as SPIRE's `validate_jwt.go`:
 *
 * ```text
 * SVID is valid.
 * SPIFFE ID : spiffe://example.org/web
 * Claims    : {"aud":["A"],"exp":1767272400,"iat":1767271800,"sub":"spiffe://example.org/web"}
 * ```
 *
 * Claims are printed as protojson prints a `google.protobuf.Struct`: compact, keys sorted.
 * `-output json` prints the response message. A token the agent refuses (`InvalidArgument`)
 * fails with `SVID is not valid: <reason>`; any other failure with `unable to validate JWT
 * SVID: <error>`.
 *
 * What it trusts: the agent's verdict (the validation happens in the agent, against its
 * bundles).
 */
import type { JsonValue as ProtoJsonValue } from '@bufbuild/protobuf';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import type { CliCommand } from '../../../common/cli/command-tree.js';
import { compareBytes, type FlagSet } from '../../../common/cli/flag-set.js';
import { protoToGoJson } from '../../../common/cli/go-json.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { describeCliError } from '../../../common/cli/rpc-error.js';
import { SpireEdgeError } from '../../../common/errors.js';
import { workload } from '../../../protocol/index.js';
import type { ValidatedJwtSvid } from '../../workload-api/client.js';
import { type WorkloadCommandContext, workloadCommand } from './adapter.js';

function defineFlags(fs: FlagSet) {
  return {
    audience: fs.string('audience', '', 'expected audience value'),
    svid: fs.string('svid', '', 'JWT SVID'),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

function failure(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_CLI_COMMAND_FAILED',
    message,
    cause === undefined ? {} : { cause },
  );
}

/**
 * A JSON value as Go's protojson writes it inside a `Struct`: compact, object keys sorted
 * byte-wise, strings escaped as JSON.stringify does (protojson escapes no HTML characters).
 */
export function protojsonStructText(value: ProtoJsonValue): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(protojsonStructText).join(',')}]`;
  const obj = value as { readonly [k: string]: ProtoJsonValue };
  const keys = Object.keys(obj).sort(compareBytes);
  return `{${keys.map((k) => `${JSON.stringify(k)}:${protojsonStructText(obj[k]!)}`).join(',')}}`;
}

async function run(f: Flags, ctx: WorkloadCommandContext): Promise<void> {
  if (f.audience.value === '') throw failure('audience must be specified');
  if (f.svid.value.length === 0) throw failure('svid must be specified');
  let result: ValidatedJwtSvid;
  try {
    result = await ctx.call((options) =>
      ctx.client.validateJwtSvid(f.svid.value, f.audience.value, options),
    );
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.InvalidArgument) {
      throw failure(`SVID is not valid: ${err.rawMessage}`, err);
    }
    throw failure(`unable to validate JWT SVID: ${describeCliError(err)}`, err);
  }
  const spiffeId = result.spiffeId.toString();
  if (f.output.value === 'json') {
    const resp = create(workload.ValidateJWTSVIDResponseSchema, {
      spiffeId,
      claims: result.claims,
    });
    ctx.io.stdout.write(`${protoToGoJson(workload.ValidateJWTSVIDResponseSchema, resp)}\n`);
    return;
  }
  ctx.io.stdout.write(
    `SVID is valid.\nSPIFFE ID : ${spiffeId}\nClaims    : ${protojsonStructText(result.claims)}\n`,
  );
}

/** The `api validate jwt` command. */
export function validateJwtCommand(): CliCommand {
  return workloadCommand({ name: 'validate jwt', defineFlags, run });
}
