/**
 * `spire-server jwt mint`: mints a JWT-SVID for `-spiffeID` with one or more `-audience`
 * values and an optional `-ttl` duration (rounded up to whole seconds). Prints the token (or
 * the `MintJWTSVIDResponse` with `-output json`), or writes it to the file `-write` (0600).
 * A lifetime cut short by the server is reported on stderr, as SPIRE does; the token's
 * expiry is read without verifying it (only to warn), nothing else is trusted from it.
 */
import { decodeJwt, decodeProtectedHeader } from 'jose';
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { describeCliError } from '../../../common/cli/rpc-error.js';
import { svidv1 } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { goJoinPath, writeFileAtomic } from '../files.js';
import { writeProtoJson } from '../output.js';
import { cliFailure, idStringToProto } from '../util.js';
import { ttlToSeconds, warnIfCapped } from '../x509/mint.js';

/** The JWS algorithms a JWT-SVID may use (go-spiffe's `AllowedSignatureAlgorithms`). */
const ALLOWED_ALGORITHMS = new Set([
  'RS256',
  'RS384',
  'RS512',
  'ES256',
  'ES384',
  'ES512',
  'PS256',
  'PS384',
  'PS512',
]);

function defineFlags(fs: FlagSet) {
  return {
    spiffeID: fs.string('spiffeID', '', 'SPIFFE ID of the JWT-SVID'),
    ttl: fs.duration('ttl', 0n, 'TTL of the JWT-SVID'),
    audience: fs.strings(
      'audience',
      'Audience claim that will be included in the SVID. Can be used more than once.',
    ),
    write: fs.string('write', '', 'File to write token to instead of stdout'),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

/** The `exp` claim of `token`, read without verification. */
function endOfLife(token: string): number {
  const alg = decodeProtectedHeader(token).alg;
  if (alg === undefined || !ALLOWED_ALGORITHMS.has(alg)) {
    throw new Error(`unexpected signature algorithm ${JSON.stringify(alg ?? '')}`);
  }
  const exp = decodeJwt(token).exp;
  if (exp === undefined) throw new Error('no expiry claim');
  return exp;
}

async function run(f: Flags, ctx: ServerCommandContext): Promise<void> {
  if (f.spiffeID.value === '') throw cliFailure('spiffeID must be specified');
  if (f.audience.value.length === 0) throw cliFailure('at least one audience must be specified');
  const id = idStringToProto(f.spiffeID.value);
  const ttl = ttlToSeconds(f.ttl.value);
  let resp: svidv1.MintJWTSVIDResponse;
  try {
    resp = await ctx.clients.svid.mintJWTSVID({ id, ttl, audience: [...f.audience.value] });
  } catch (err) {
    throw cliFailure(`unable to mint SVID: ${describeCliError(err)}`, err);
  }
  const token = resp.svid?.token ?? '';
  if (token === '') throw cliFailure('server response missing token');
  let exp: number | undefined;
  try {
    exp = endOfLife(token);
  } catch (err) {
    ctx.io.stderr.write(`Unable to determine JWT-SVID lifetime: ${(err as Error).message}\n`);
  }
  if (exp !== undefined) warnIfCapped(ctx, 'JWT-SVID', exp, f.ttl.value);
  if (f.write.value === '') {
    if (f.output.value === 'json') writeProtoJson(ctx.io, svidv1.MintJWTSVIDResponseSchema, resp);
    else ctx.io.stdout.write(`${token}\n`);
    return;
  }
  const path = goJoinPath(f.write.value);
  try {
    await writeFileAtomic(ctx.resolvePath(path), token, 0o600);
  } catch (err) {
    throw cliFailure(`unable to write token: ${(err as Error).message}`, err);
  }
  ctx.io.stdout.write(`JWT-SVID written to ${path}\n`);
}

/** The `jwt mint` command. */
export function jwtMintCommand(options: ServerCommandOptions = {}): CliCommand {
  return serverCommand({ name: 'jwt mint', defineFlags, run }, options);
}
