/**
 * `spire-agent api fetch x509` (alias `api fetch`): the caller's X509-SVIDs from the Workload
 * API (the first `FetchX509SVID` message), as SPIRE's `fetch_x509.go`:
 *
 * - `-output pretty` (default): each SVID of the response is parsed and verified against its
 *   own trust domain's bundle (a failure is `"<id>" SVID failed verification against bundle:
 *   <reason>`), printed in SPIRE's layout (x509-printer.ts) unless `-silent`, and with
 *   `-write DIR` written to files (svid-files.ts).
 * - `-output json`: the response message as SPIRE prints it (protojson, proto field names,
 *   bytes — the private keys included — as base64); `-write` and `-silent` are ignored there,
 *   as in SPIRE.
 *
 * Every SVID of the message is printed and written, in the agent's order (hints are not
 * de-duplicated here, as SPIRE's command does not).
 */
import { createPrivateKey } from 'node:crypto';
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { protoToGoJson } from '../../../common/cli/go-json.js';
import { goQuote } from '../../../common/cli/go-quote.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { describeError, SpireEdgeError } from '../../../common/errors.js';
import { workload } from '../../../protocol/index.js';
import { parseSpiffeId } from '../../../spiffe/id.js';
import { X509Bundle } from '../../../spiffe/x509-bundle.js';
import { type ParsedCertificate, parseCertificates } from '../../../spiffe/x509-cert.js';
import { verifyX509Svid } from '../../../spiffe/x509-verify.js';
import { type WorkloadCommandContext, workloadCommand } from './adapter.js';
import { type SvidFileSet, writeSvidFiles } from './svid-files.js';
import { formatX509SvidResponse, type PrintableX509Svid } from './x509-printer.js';

function defineFlags(fs: FlagSet) {
  return {
    silent: fs.bool('silent', false, 'Suppress stdout'),
    write: fs.string(
      'write',
      '',
      'Write SVID data to the specified path (optional; only available for pretty output format)',
    ),
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

/** One SVID of the response, parsed: what is printed and what is written. */
export interface ParsedX509Svid {
  readonly spiffeId: string;
  readonly printable: PrintableX509Svid;
  readonly files: SvidFileSet;
}

type Federated = ReadonlyArray<readonly [string, readonly ParsedCertificate[]]>;

function parseSvid(s: workload.X509SVID, federated: Federated): ParsedX509Svid {
  const chain = parseCertificates(s.x509Svid);
  let keyPem: string;
  try {
    keyPem = createPrivateKey({ key: Buffer.from(s.x509SvidKey), format: 'der', type: 'pkcs8' })
      .export({ format: 'pem', type: 'pkcs8' })
      .toString();
  } catch (err) {
    throw failure(`failed to parse private key: ${describeError(err)}`, err);
  }
  if (s.bundle.length === 0) throw failure('no certificates in trust bundle');
  let authorities: ParsedCertificate[];
  try {
    authorities = parseCertificates(s.bundle);
  } catch (err) {
    throw failure(`failed to parse trust bundle: ${describeError(err)}`, err);
  }
  return {
    spiffeId: s.spiffeId,
    printable: {
      spiffeId: s.spiffeId,
      hint: s.hint,
      certificates: chain,
      bundle: authorities,
      federatedBundles: federated,
    },
    files: {
      certificates: chain.map((c) => c.der),
      keyPem,
      bundle: authorities.map((c) => c.der),
      federatedBundles: federated.map(([label, certs]) => [label, certs.map((c) => c.der)]),
    },
  };
}

/**
 * SPIRE's `parseAndValidateX509SVIDResponse`: every SVID and federated bundle parsed, every
 * SVID verified against its own trust domain's bundle at `now`.
 *
 * @throws SpireEdgeError `ERR_CLI_COMMAND_FAILED` with SPIRE's texts.
 */
export function parseX509SvidResponse(
  resp: workload.X509SVIDResponse,
  now: Date = new Date(),
): ParsedX509Svid[] {
  if (resp.svids.length === 0) throw failure('workload response contains no svids');
  const federated: Array<readonly [string, ParsedCertificate[]]> = [];
  for (const [key, der] of Object.entries(resp.federatedBundles)) {
    if (der.length === 0) {
      throw failure(`no certificates in bundle for federated domain ${goQuote(key)}`);
    }
    try {
      federated.push([key, parseCertificates(der)]);
    } catch (err) {
      throw failure(
        `failed to parse bundle for federated domain ${goQuote(key)}: ${describeError(err)}`,
        err,
      );
    }
  }
  const svids = resp.svids.map((s, i) => {
    try {
      return parseSvid(s, federated);
    } catch (err) {
      throw failure(
        `failed to parse svid entry ${i} for spiffe id ${goQuote(s.spiffeId)}: ${describeError(err)}`,
        err,
      );
    }
  });
  for (const svid of svids) {
    let td: string;
    try {
      td = parseSpiffeId(svid.spiffeId).trustDomain.name;
    } catch (err) {
      throw failure(describeError(err), err);
    }
    try {
      verifyX509Svid(svid.files.certificates, new X509Bundle(td, svid.files.bundle), { now });
    } catch (err) {
      throw failure(
        `${goQuote(svid.spiffeId)} SVID failed verification against bundle: ${describeError(err)}`,
        err,
      );
    }
  }
  return svids;
}

async function run(f: Flags, ctx: WorkloadCommandContext): Promise<void> {
  const start = ctx.nowNs();
  const x509 = await ctx.call((options) => ctx.client.fetchX509Context(options));
  const elapsed = ctx.nowNs() - start;
  if (f.output.value === 'json') {
    ctx.io.stdout.write(`${protoToGoJson(workload.X509SVIDResponseSchema, x509.response)}\n`);
    return;
  }
  const svids = parseX509SvidResponse(x509.response);
  if (!f.silent.value) {
    ctx.io.stdout.write(
      formatX509SvidResponse(
        svids.map((s) => s.printable),
        elapsed,
      ),
    );
  }
  if (f.write.value !== '') {
    await writeSvidFiles(
      ctx.io,
      f.write.value,
      ctx.cwd,
      svids.map((s) => s.files),
    );
  }
}

/** The `api fetch x509` command (also registered as `api fetch`). */
export function fetchX509Command(): CliCommand {
  return workloadCommand({ name: 'fetch x509', defineFlags, run });
}
