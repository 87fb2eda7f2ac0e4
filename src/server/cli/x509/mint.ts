/**
 * `spire-server x509 mint`: mints an X509-SVID for `-spiffeID` (with `-dns` names, `-ttl`
 * duration, rounded up to whole seconds) through the server's SVID API. The private key is
 * generated here (EC P-256) and never leaves this process: only a CSR is sent.
 *
 * Output: the SVID chain, private key and root CAs as PEM on stdout (`X509-SVID:`,
 * `Private key:`, `Root CAs:` sections), or with `-output json` as
 * `{"x509_svid":[…],"private_key":"…","root_cas":[…]}` (base64 DER); with `-write DIR` the
 * files `svid.pem` (0644), `key.pem` (0600) and `bundle.pem` (0644). A TTL cut short by the
 * server is reported on stderr, as SPIRE does.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { CliCommand } from '../../../common/cli/command-tree.js';
import type { FlagSet } from '../../../common/cli/flag-set.js';
import { goJsonMarshal } from '../../../common/cli/go-json.js';
import { formatRfc3339Utc } from '../../../common/cli/go-time.js';
import { outputFlag } from '../../../common/cli/output-flag.js';
import { describeCliError } from '../../../common/cli/rpc-error.js';
import { encodePem } from '../../../common/pem.js';
import type { svidv1 } from '../../../protocol/index.js';
import { type ServerCommandContext, type ServerCommandOptions, serverCommand } from '../adapter.js';
import { goJoinPath, writeFileAtomic } from '../files.js';
import { cliFailure, idStringToProto, protoToIdString, toInt32 } from '../util.js';
import { buildSvidCsr } from './csr.js';

const SECOND_NS = 1_000_000_000n;

/**
 * SPIRE's `ttlToSeconds`: a duration in nanoseconds as whole seconds, rounded up, as int32.
 *
 * @throws SpireEdgeError `ERR_CLI_COMMAND_FAILED` (`invalid value for TTL: overflow …`).
 */
export function ttlToSeconds(ttlNs: bigint): number {
  try {
    return toInt32((ttlNs + SECOND_NS - 1n) / SECOND_NS, 'time.Duration');
  } catch (err) {
    throw cliFailure(`invalid value for TTL: ${(err as Error).message}`, err);
  }
}

/**
 * Reports on stderr when the server capped the lifetime below the requested `-ttl` (SPIRE's
 * check: time until expiry shorter than the TTL asked for).
 */
export function warnIfCapped(
  ctx: ServerCommandContext,
  kind: 'X509-SVID' | 'JWT-SVID',
  expiresAtSeconds: bigint | number,
  ttlNs: bigint,
): void {
  const untilNs = (BigInt(expiresAtSeconds) * 1000n - BigInt(Math.floor(ctx.now()))) * 1_000_000n;
  if (untilNs < ttlNs) {
    ctx.io.stderr.write(
      `${kind} lifetime was capped shorter than specified ttl; expires "${formatRfc3339Utc(expiresAtSeconds)}"\n`,
    );
  }
}

function defineFlags(fs: FlagSet) {
  return {
    spiffeID: fs.string('spiffeID', '', 'SPIFFE ID of the X509-SVID'),
    ttl: fs.duration('ttl', 0n, 'TTL of the X509-SVID'),
    dns: fs.strings('dns', 'DNS name that will be included in SVID. Can be used more than once.'),
    write: fs.string('write', '', 'Directory to write output to instead of stdout'),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

function pemAll(label: string, ders: readonly Uint8Array[]): string {
  return ders.map((d) => encodePem(label, d)).join('');
}

function b64(der: Uint8Array): string {
  return Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
}

/** Key generation, injectable for tests (SPIRE's `generateKeyFunc`). */
export type GenerateKey = () => { privateKey: KeyObject; publicKey: KeyObject };

const generateP256: GenerateKey = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });

function runWith(generateKey: GenerateKey) {
  return async (f: Flags, ctx: ServerCommandContext): Promise<void> => {
    if (f.spiffeID.value === '') throw cliFailure('spiffeID must be specified');
    const id = idStringToProto(f.spiffeID.value);
    const ttl = ttlToSeconds(f.ttl.value);
    let keys: ReturnType<GenerateKey>;
    try {
      keys = generateKey();
    } catch (err) {
      throw cliFailure(`unable to generate key: ${(err as Error).message}`, err);
    }
    let csr: Uint8Array;
    try {
      csr = buildSvidCsr(protoToIdString(id), f.dns.value, keys.privateKey, keys.publicKey);
    } catch (err) {
      throw cliFailure(`unable to generate CSR: ${(err as Error).message}`, err);
    }
    let resp: svidv1.MintX509SVIDResponse;
    try {
      resp = await ctx.clients.svid.mintX509SVID({ csr, ttl });
    } catch (err) {
      throw cliFailure(`unable to mint SVID: ${describeCliError(err)}`, err);
    }
    const chain = resp.svid?.certChain ?? [];
    if (chain.length === 0) throw cliFailure('server response missing SVID chain');
    let rootCas: Uint8Array[];
    try {
      rootCas = (await ctx.clients.bundle.getBundle({})).x509Authorities.map((a) => a.asn1);
    } catch (err) {
      throw cliFailure(`unable to get bundle: ${describeCliError(err)}`, err);
    }
    if (rootCas.length === 0) throw cliFailure('server response missing X509 Authorities');
    warnIfCapped(ctx, 'X509-SVID', resp.svid?.expiresAt ?? 0n, f.ttl.value);
    const key = new Uint8Array(keys.privateKey.export({ format: 'der', type: 'pkcs8' }));
    const svidPem = pemAll('CERTIFICATE', chain);
    const keyPem = encodePem('PRIVATE KEY', key);
    const bundlePem = pemAll('CERTIFICATE', rootCas);
    const out = ctx.io.stdout;
    if (f.write.value === '') {
      if (f.output.value === 'json') {
        const result = {
          x509_svid: chain.map(b64),
          private_key: b64(key),
          root_cas: rootCas.map(b64),
        };
        out.write(`${goJsonMarshal(result, false)}\n`);
        return;
      }
      out.write(`X509-SVID:\n${svidPem}\nPrivate key:\n${keyPem}\nRoot CAs:\n${bundlePem}\n`);
      return;
    }
    const files: Array<[string, string, number, string, string]> = [
      ['svid.pem', svidPem, 0o644, 'SVID', 'X509-SVID'],
      ['key.pem', keyPem, 0o600, 'key', 'Private key'],
      ['bundle.pem', bundlePem, 0o644, 'bundle', 'Root CAs'],
    ];
    for (const [name, data, mode, what, label] of files) {
      const path = goJoinPath(f.write.value, name);
      try {
        await writeFileAtomic(ctx.resolvePath(path), data, mode);
      } catch (err) {
        throw cliFailure(`unable to write ${what}: ${(err as Error).message}`, err);
      }
      out.write(`${label} written to ${path}\n`);
    }
  };
}

/** Options of {@link x509MintCommand}: tests may inject the key generator. */
export interface X509MintOptions extends ServerCommandOptions {
  readonly generateKey?: GenerateKey;
}

/** The `x509 mint` command. */
export function x509MintCommand(options: X509MintOptions = {}): CliCommand {
  return serverCommand(
    { name: 'x509 mint', defineFlags, run: runWith(options.generateKey ?? generateP256) },
    options,
  );
}
