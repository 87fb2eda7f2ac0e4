/**
 * `api fetch x509 -write DIR`: the files SPIRE writes, with its names, order, messages and
 * modes (`fetch_x509.go` `writeResponse`, `diskutil.Write*File`). For SVID number `i`:
 *
 * | file | content | mode |
 * |---|---|---|
 * | `svid.<i>.pem` | the SVID chain, leaf first, PEM `CERTIFICATE` blocks | 0644 |
 * | `svid.<i>.key` | the private key, PEM `PRIVATE KEY` (PKCS#8) | 0600 |
 * | `bundle.<i>.pem` | the own trust domain's authorities | 0644 |
 * | `federated_bundle.<i>.<j>.pem` | federated bundle `j`, trust domains sorted by name | 0644 |
 *
 * Files are created or truncated in place (not atomically, as in SPIRE); the directory must
 * exist. Modes are given at creation and are subject to the umask, as in SPIRE — except that
 * the key file is always made 0600, even when it existed before with a wider mode (SPIRE
 * leaves an existing file's mode as it was).
 *
 * Errors are Go's `*PathError` texts: `open out/svid.0.pem: no such file or directory`.
 */
import { open } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { compareBytes } from '../../../common/cli/flag-set.js';
import type { CliIo } from '../../../common/cli/io.js';
import { SpireEdgeError } from '../../../common/errors.js';
import { encodePem } from '../../../common/pem.js';

/** What is written for one SVID. */
export interface SvidFileSet {
  /** DER certificates, leaf first. */
  readonly certificates: readonly Uint8Array[];
  /** The private key as PEM (`PRIVATE KEY`). */
  readonly keyPem: string;
  /** DER authorities of the SVID's own trust domain. */
  readonly bundle: readonly Uint8Array[];
  /** Federated bundles as (trust domain label, DER authorities); sorted here by label. */
  readonly federatedBundles: ReadonlyArray<readonly [string, readonly Uint8Array[]]>;
}

const PUBLIC_MODE = 0o644;
const PRIVATE_MODE = 0o600;

/** Go's `*PathError` text for a failed file operation: `open <path>: <errno text>`. */
export function goPathError(op: string, path: string, err: unknown): SpireEdgeError {
  const e = err as NodeJS.ErrnoException;
  // Node's message is "ENOENT: no such file or directory, open '/x'": keep the middle part.
  const m = /^[A-Z0-9_]+: (.*?), \w+(?: '.*')?$/.exec(e?.message ?? '');
  const text = m?.[1] ?? e?.message ?? String(err);
  return new SpireEdgeError('ERR_CLI_COMMAND_FAILED', `${op} ${path}: ${text}`, { cause: err });
}

async function writeFile(
  shown: string,
  cwd: string,
  data: string,
  mode: number,
  forceMode: boolean,
): Promise<void> {
  const path = resolvePath(cwd, shown);
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'w', mode);
  } catch (err) {
    throw goPathError('open', shown, err);
  }
  try {
    if (forceMode) await handle.chmod(mode);
    await handle.writeFile(data);
  } catch (err) {
    throw goPathError('write', shown, err);
  } finally {
    await handle.close();
  }
}

function pemCertificates(ders: readonly Uint8Array[]): string {
  return ders.map((d) => encodePem('CERTIFICATE', d)).join('');
}

/**
 * Writes every SVID's files into `dir` (relative to `cwd`) and prints SPIRE's `Writing …`
 * lines on stdout (they are printed even with `-silent`, as in SPIRE). Stops at the first
 * failure.
 *
 * @throws SpireEdgeError `ERR_CLI_COMMAND_FAILED` with Go's path error text.
 */
export async function writeSvidFiles(
  io: CliIo,
  dir: string,
  cwd: string,
  svids: readonly SvidFileSet[],
): Promise<void> {
  for (const [i, svid] of svids.entries()) {
    const svidPath = join(dir, `svid.${i}.pem`);
    const keyPath = join(dir, `svid.${i}.key`);
    const bundlePath = join(dir, `bundle.${i}.pem`);
    io.stdout.write(`Writing SVID #${i} to file ${svidPath}.\n`);
    await writeFile(svidPath, cwd, pemCertificates(svid.certificates), PUBLIC_MODE, false);
    io.stdout.write(`Writing key #${i} to file ${keyPath}.\n`);
    await writeFile(keyPath, cwd, svid.keyPem, PRIVATE_MODE, true);
    io.stdout.write(`Writing bundle #${i} to file ${bundlePath}.\n`);
    await writeFile(bundlePath, cwd, pemCertificates(svid.bundle), PUBLIC_MODE, false);
    const federated = [...svid.federatedBundles].sort(([a], [b]) => compareBytes(a, b));
    for (const [j, [trustDomain, certs]] of federated.entries()) {
      const path = join(dir, `federated_bundle.${i}.${j}.pem`);
      io.stdout.write(
        `Writing federated bundle #${j} for trust domain ${trustDomain} to file ${path}.\n`,
      );
      await writeFile(path, cwd, pemCertificates(certs), PUBLIC_MODE, false);
    }
  }
}
