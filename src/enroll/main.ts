/**
 * `tpm-enroll`: device provisioning (docs/tpm-enroll.md). On the device, reads the EK (public
 * area and, when the manufacturer stored one, its certificate) and PCR values, and prints the
 * enrollment record with the `spire-server entry create -node …` command that binds a SPIFFE
 * ID to the device. It can also create that node alias entry itself:
 * - `-register`, on the server host, through the admin socket (idempotent; `-replace` to
 *   rebind an alias to another device);
 * - `-serverAddress` with a one-time provisioning token (`spire-server enrollment token
 *   generate`), from the device over the network: the server's agent API port, TLS, the server
 *   checked against `-trustBundle`. The token (`-provisioningToken`, `-provisioningTokenFile`
 *   or env `SPIRE_EDGE_PROVISIONING_TOKEN`) carries the alias and the permission to replace.
 * bin/tpm-enroll calls {@link main} through bin/launch.js.
 *
 * Flags are SPIRE-style (Go `flag` syntax, single dash, camelCase):
 * `-tcti`, `-ekAlgorithm`, `-pcrs`, `-trustDomain`, `-spiffeID`, `-output`, `-register`,
 * `-socketPath`, `-replace`, `-serverAddress`, `-serverPort`, `-trustBundle`,
 * `-provisioningToken`, `-provisioningTokenFile`, `-writePolicy` with `-policyName`.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { FlagSet, isFlagError } from '../common/cli/flag-set.js';
import type { CliIo } from '../common/cli/io.js';
import { outputFlag } from '../common/cli/output-flag.js';
import { describeCliError } from '../common/cli/rpc-error.js';
import { describeError, SpireEdgeError } from '../common/errors.js';
import { looksLikePem } from '../common/pem.js';
import {
  firmwarePolicyFromJson,
  formatFirmwarePolicy,
  isValidPolicyName,
} from '../policy/firmware-policy.js';
import { parseSpiffeId, parseTrustDomain } from '../spiffe/id.js';
import { splitCertificates } from '../spiffe/x509-cert.js';
import type { EkAlgorithm, PcrBank, Tpm } from '../tpm/device/tpm.js';
import type { EnrollmentClient } from './network.js';
import { buildEnrollmentRecord, type EnrollmentRecord, formatEnrollmentRecord } from './record.js';
import type { EntryClient, RegisterResult } from './register.js';

/** The default TCTI: the kernel's resource manager on real hardware. */
export const DEFAULT_TCTI = 'device:/dev/tpmrm0';
/** The default PCR selection (the firmware / boot PCRs of the PC Client profile). */
export const DEFAULT_PCRS = 'sha256:0,1,2,3,4,5,6,7';
/** SPIRE's default server admin socket. */
export const DEFAULT_SOCKET_PATH = '/tmp/spire-server/private/api.sock';
/** SPIRE's default agent API port (where the enrollment service listens too). */
export const DEFAULT_SERVER_PORT = 8081;
/** The environment variable `-provisioningToken` falls back to (keeps the token out of `ps`). */
export const PROVISIONING_TOKEN_ENV = 'SPIRE_EDGE_PROVISIONING_TOKEN';

const EK_ALGORITHMS: readonly EkAlgorithm[] = ['rsa', 'ecc-p256', 'ecc-p384'];
const BANKS: readonly PcrBank[] = ['sha1', 'sha256', 'sha384', 'sha512'];

/** The TPM calls `tpm-enroll` makes. */
export type EnrollTpm = Pick<Tpm, 'ekPublic' | 'readEkCertificate' | 'readPcrs' | 'close'>;

/** Injection points for tests. */
export interface EnrollMainOptions {
  /** Opens the TPM (default: the native addon's {@link openTpm}). */
  readonly openTpm?: (tcti: string) => Promise<EnrollTpm>;
  /** The entry API client for `-register` (default: over `-socketPath`). */
  readonly entryClient?: (
    socketPath: string,
  ) => { client: EntryClient; close(): void } | Promise<{ client: EntryClient; close(): void }>;
  /** The enrollment API client for `-serverAddress` (default: TLS, checked against the bundle). */
  readonly enrollmentClient?: (server: {
    host: string;
    port: number;
    trustDomain: string;
    bundle: readonly Uint8Array[];
  }) =>
    | { client: EnrollmentClient; close(): void }
    | Promise<{ client: EnrollmentClient; close(): void }>;
}

function usageError(message: string): SpireEdgeError {
  return new SpireEdgeError('ERR_ENROLL_USAGE', message);
}

/**
 * Parses `-pcrs`: `bank:i,j,…` selections joined by `+` (tpm2-tools' syntax), or `none`.
 *
 * @throws SpireEdgeError `ERR_ENROLL_USAGE` naming the bad part.
 */
export function parsePcrFlag(text: string): Array<{ bank: PcrBank; indices: number[] }> {
  if (text === 'none' || text === '') return [];
  const out: Array<{ bank: PcrBank; indices: number[] }> = [];
  for (const part of text.split('+')) {
    const i = part.indexOf(':');
    const bank = (i < 0 ? part : part.slice(0, i)) as PcrBank;
    if (!BANKS.includes(bank)) {
      throw usageError(`-pcrs: unknown bank ${JSON.stringify(bank)} (${BANKS.join(', ')})`);
    }
    if (out.some((s) => s.bank === bank)) throw usageError(`-pcrs: bank ${bank} given twice`);
    const list = i < 0 ? '' : part.slice(i + 1);
    const indices = list.split(',').map((s) => {
      if (!/^(?:0|[1-9][0-9]?)$/.test(s) || Number(s) > 23) {
        throw usageError(`-pcrs: ${bank}: PCR index ${JSON.stringify(s)} is not 0..23`);
      }
      return Number(s);
    });
    if (new Set(indices).size !== indices.length) {
      throw usageError(`-pcrs: ${bank}: an index is repeated`);
    }
    out.push({ bank, indices: indices.sort((a, b) => a - b) });
  }
  return out;
}

function defineFlags(fs: FlagSet) {
  return {
    tcti: fs.string(
      'tcti',
      DEFAULT_TCTI,
      'TCTI of the TPM (device:/dev/tpmrm0, swtpm:host=…,port=…)',
    ),
    ekAlgorithm: fs.string('ekAlgorithm', 'rsa', 'EK key type: rsa, ecc-p256 or ecc-p384'),
    pcrs: fs.string(
      'pcrs',
      DEFAULT_PCRS,
      'PCRs to read, bank:indices joined by + (e.g. sha256:0,7+sha1:0), or none',
    ),
    trustDomain: fs.string('trustDomain', '', 'Trust domain of the server (for the printed IDs)'),
    spiffeID: fs.string(
      'spiffeID',
      '',
      'Node alias SPIFFE ID to bind to this device (spiffe://td/path, or /path with -trustDomain)',
    ),
    register: fs.bool(
      'register',
      false,
      'Create the node alias entry through the server admin socket (run on the server host)',
    ),
    socketPath: fs.string('socketPath', DEFAULT_SOCKET_PATH, 'Path to the SPIRE Server API socket'),
    replace: fs.bool(
      'replace',
      false,
      'With -register: rebind the alias if it is bound to another device',
    ),
    serverAddress: fs.string(
      'serverAddress',
      '',
      'Register over the network: the server (agent API) host, with a provisioning token',
    ),
    serverPort: fs.int('serverPort', DEFAULT_SERVER_PORT, 'Port of the server agent API'),
    trustBundle: fs.string(
      'trustBundle',
      '',
      "With -serverAddress: PEM file of the server's trust bundle (spire-server bundle show)",
    ),
    provisioningToken: fs.string(
      'provisioningToken',
      '',
      `One-time provisioning token (spire-server enrollment token generate); default env ${PROVISIONING_TOKEN_ENV}`,
    ),
    provisioningTokenFile: fs.string(
      'provisioningTokenFile',
      '',
      'File holding the provisioning token',
    ),
    writePolicy: fs.string(
      'writePolicy',
      '',
      'Write a firmware policy allowing the PCR values read to this file (for firmware-policies/)',
    ),
    policyName: fs.string(
      'policyName',
      '',
      'Name of the policy -writePolicy writes (tpm:policy:<name>)',
    ),
    output: outputFlag(fs),
  };
}

type Flags = ReturnType<typeof defineFlags>;

/** The alias ID from -spiffeID / -trustDomain, checked; undefined when not given. */
function aliasOf(f: Flags): { spiffeId?: string; trustDomain?: string } {
  let td: string | undefined;
  if (f.trustDomain.value !== '') {
    try {
      td = parseTrustDomain(f.trustDomain.value).name;
    } catch (err) {
      throw usageError(`-trustDomain: ${(err as Error).message}`);
    }
  }
  let raw = f.spiffeID.value;
  if (raw === '') return td === undefined ? {} : { trustDomain: td };
  if (raw.startsWith('/')) {
    if (td === undefined) throw usageError('-spiffeID: a path needs -trustDomain');
    raw = `spiffe://${td}${raw}`;
  }
  let id: ReturnType<typeof parseSpiffeId>;
  try {
    id = parseSpiffeId(raw);
  } catch (err) {
    throw usageError(`-spiffeID: ${(err as Error).message}`);
  }
  if (id.path === '') throw usageError('-spiffeID: the alias ID needs a path');
  if (td !== undefined && id.trustDomain.name !== td) {
    throw usageError(`-spiffeID: ${raw} is not in trust domain ${td}`);
  }
  return { spiffeId: id.toString(), trustDomain: id.trustDomain.name };
}

async function defaultOpenTpm(tcti: string): Promise<EnrollTpm> {
  const { openTpm } = await import('../tpm/device/open-tpm.js');
  return openTpm({ tcti });
}

// The gRPC client and generated protobuf code load only for -register: reading the TPM is
// the common case and should start fast on small devices.
async function defaultEntryClient(
  socketPath: string,
): Promise<{ client: EntryClient; close(): void }> {
  const [{ createClient }, { createUdsTransport }, { entryv1 }] = await Promise.all([
    import('@connectrpc/connect'),
    import('../common/grpc.js'),
    import('../protocol/index.js'),
  ]);
  const transport = createUdsTransport(socketPath);
  return { client: createClient(entryv1.Entry, transport), close: () => transport.close() };
}

/** The record and the raw EK bytes it was built from (sent as read for network enrollment). */
interface DeviceRead {
  readonly record: EnrollmentRecord;
  readonly ekPublic: Uint8Array;
  readonly ekCertificate: Uint8Array | undefined;
}

async function readRecord(
  f: Flags,
  alias: { spiffeId?: string; trustDomain?: string },
  open: (tcti: string) => Promise<EnrollTpm>,
): Promise<DeviceRead> {
  const alg = f.ekAlgorithm.value as EkAlgorithm;
  const selections = parsePcrFlag(f.pcrs.value);
  const tpm = await open(f.tcti.value);
  try {
    const ekPublic = await tpm.ekPublic(alg);
    const ekCertificate = await tpm.readEkCertificate(alg);
    const pcrs = new Map<string, ReadonlyMap<number, Uint8Array>>();
    for (const s of selections) pcrs.set(s.bank, await tpm.readPcrs(s));
    const record = buildEnrollmentRecord({
      ekAlgorithm: alg,
      ekPublic,
      ekCertificate,
      pcrs,
      spiffeId: alias.spiffeId,
      trustDomain: alias.trustDomain,
    });
    return { record, ekPublic, ekCertificate };
  } finally {
    await tpm.close();
  }
}

/**
 * A firmware policy (JSON text) allowing exactly the PCR values in `record`, validated by the
 * policy parser before it is written.
 *
 * @throws SpireEdgeError `ERR_ENROLL_USAGE` when no PCRs were read, `ERR_POLICY_INVALID` for a
 *   bad name.
 */
export function policyFromRecord(record: EnrollmentRecord, name: string): string {
  if (Object.keys(record.pcrs).length === 0) {
    throw usageError('-writePolicy needs PCR values: -pcrs must not be none');
  }
  const pcrs: Record<string, Record<string, string[]>> = {};
  for (const [bank, values] of Object.entries(record.pcrs)) {
    pcrs[bank] = Object.fromEntries(Object.entries(values).map(([i, d]) => [i, [d]]));
  }
  const policy = firmwarePolicyFromJson(
    { name, description: `PCR values of the device with pub_hash ${record.pub_hash}`, pcrs },
    '-writePolicy',
  );
  return formatFirmwarePolicy(policy);
}

/** What `-serverAddress` needs, read and checked before the TPM is opened. */
interface NetworkTarget {
  readonly host: string;
  readonly port: number;
  readonly trustDomain: string;
  readonly bundle: Uint8Array[];
  readonly token: string;
}

async function networkTarget(
  f: Flags,
  alias: { spiffeId?: string; trustDomain?: string },
  io: CliIo,
): Promise<NetworkTarget | undefined> {
  const tokenFlags = [
    ['-provisioningToken', f.provisioningToken.value],
    ['-provisioningTokenFile', f.provisioningTokenFile.value],
    ['-trustBundle', f.trustBundle.value],
  ] as const;
  if (f.serverAddress.value === '') {
    const given = tokenFlags.find(([, v]) => v !== '');
    if (given !== undefined) throw usageError(`${given[0]} needs -serverAddress`);
    return undefined;
  }
  if (f.register.value) throw usageError('-register and -serverAddress exclude each other');
  if (f.replace.value) {
    throw usageError(
      '-replace does not apply with -serverAddress: the provisioning token carries it (spire-server enrollment token generate -replace)',
    );
  }
  if (alias.spiffeId === undefined) {
    throw usageError("-serverAddress needs -spiffeID (the provisioning token's alias)");
  }
  const port = f.serverPort.value;
  if (port < 1n || port > 65535n) throw usageError('-serverPort must be in 1..65535');
  if (f.trustBundle.value === '') {
    throw usageError("-serverAddress needs -trustBundle (the server's trust bundle PEM file)");
  }
  if (f.provisioningToken.value !== '' && f.provisioningTokenFile.value !== '') {
    throw usageError('-provisioningToken and -provisioningTokenFile exclude each other');
  }
  const cwd = io.cwd ?? process.cwd();
  let token = f.provisioningToken.value;
  if (f.provisioningTokenFile.value !== '') {
    const path = resolvePath(cwd, f.provisioningTokenFile.value);
    try {
      token = (await readFile(path, 'utf8')).trim();
    } catch (err) {
      throw usageError(`-provisioningTokenFile: cannot read ${path}: ${describeError(err)}`);
    }
  }
  if (token === '') token = (io.env[PROVISIONING_TOKEN_ENV] ?? '').trim();
  if (token === '') {
    throw usageError(
      `-serverAddress needs a provisioning token (-provisioningToken, -provisioningTokenFile or env ${PROVISIONING_TOKEN_ENV})`,
    );
  }
  const bundlePath = resolvePath(cwd, f.trustBundle.value);
  let bundle: Uint8Array[];
  try {
    const bytes = await readFile(bundlePath);
    bundle = splitCertificates(
      looksLikePem(bytes) ? bytes.toString('utf8') : new Uint8Array(bytes),
    );
  } catch (err) {
    throw usageError(
      `-trustBundle: cannot read certificates from ${bundlePath}: ${describeError(err)}`,
    );
  }
  if (bundle.length === 0) throw usageError(`-trustBundle: ${bundlePath} holds no certificates`);
  return {
    host: f.serverAddress.value,
    port: Number(port),
    trustDomain: alias.trustDomain!,
    bundle,
    token,
  };
}

async function defaultEnrollmentClient(server: {
  host: string;
  port: number;
  trustDomain: string;
  bundle: readonly Uint8Array[];
}): Promise<{ client: EnrollmentClient; close(): void }> {
  const { connectEnrollmentClient } = await import('./network.js');
  return connectEnrollmentClient(server);
}

function describeRegistration(r: RegisterResult, spiffeId: string, hash: string): string {
  switch (r.outcome) {
    case 'created':
      return `Registered ${spiffeId} for tpm:pub_hash:${hash} (entry ${r.entryId})`;
    case 'already-registered':
      return `Already registered: ${spiffeId} is bound to tpm:pub_hash:${hash} (entry ${r.entryId}); nothing changed`;
    case 'replaced':
      return `Replaced: ${spiffeId} now bound to tpm:pub_hash:${hash} instead of ${r.previousPubHashes.join(', ') || 'no pub_hash'} (entry ${r.entryId})`;
  }
}

/**
 * Runs `tpm-enroll` with `argv` (the arguments after the program name) and resolves to the exit
 * code: 0 on success (including an alias already registered to this device), 1 on any error
 * (`Error: <message>` on stderr; flag errors print the usage too). Never throws.
 */
export async function main(
  argv: readonly string[],
  io: CliIo,
  options: EnrollMainOptions = {},
): Promise<number> {
  const fs = new FlagSet('tpm-enroll');
  const f = defineFlags(fs);
  try {
    const rest = fs.parse(argv);
    if (rest.length > 0) throw usageError(`unexpected argument ${JSON.stringify(rest[0])}`);
  } catch (err) {
    if (isFlagError(err)) {
      if (err.code === 'ERR_CLI_HELP_REQUESTED') {
        io.stderr.write(fs.usage());
        return 0;
      }
      io.stderr.write(fs.failureText(err));
      return 1;
    }
    io.stderr.write(`Error: ${describeCliError(err)}\n`);
    return 1;
  }
  try {
    if (!EK_ALGORITHMS.includes(f.ekAlgorithm.value as EkAlgorithm)) {
      throw usageError(
        `-ekAlgorithm: ${JSON.stringify(f.ekAlgorithm.value)} is not one of ${EK_ALGORITHMS.join(', ')}`,
      );
    }
    if (f.replace.value && !f.register.value && f.serverAddress.value === '') {
      throw usageError('-replace needs -register');
    }
    const alias = aliasOf(f);
    if (f.register.value && alias.spiffeId === undefined) {
      throw usageError('-register needs -spiffeID (the node alias to create)');
    }
    if ((f.writePolicy.value === '') !== (f.policyName.value === '')) {
      throw usageError('-writePolicy and -policyName go together');
    }
    if (f.policyName.value !== '' && !isValidPolicyName(f.policyName.value)) {
      throw usageError(
        `-policyName: ${JSON.stringify(f.policyName.value)} must be 1..128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit`,
      );
    }
    const target = await networkTarget(f, alias, io);
    const device = await readRecord(f, alias, options.openTpm ?? defaultOpenTpm);
    const { record } = device;
    if (f.writePolicy.value !== '') {
      const path = resolvePath(io.cwd ?? process.cwd(), f.writePolicy.value);
      await writeFile(path, policyFromRecord(record, f.policyName.value), { flag: 'wx' });
    }

    let registration: RegisterResult | undefined;
    if (target !== undefined) {
      const conn = await (options.enrollmentClient ?? defaultEnrollmentClient)(target);
      const { enrollDevice } = await import('./network.js');
      try {
        registration = await enrollDevice({
          client: conn.client,
          token: target.token,
          spiffeId: alias.spiffeId!,
          ekPublic: device.ekPublic,
          ekCertificate: device.ekCertificate,
          pubHash: record.pub_hash,
          server: `${target.host}:${target.port}`,
        });
      } finally {
        conn.close();
      }
    } else if (f.register.value) {
      const socket = resolvePath(io.cwd ?? process.cwd(), f.socketPath.value);
      const conn = await (options.entryClient ?? defaultEntryClient)(socket);
      const { registerDevice } = await import('./register.js');
      try {
        registration = await registerDevice({
          client: conn.client,
          spiffeId: alias.spiffeId!,
          pubHash: record.pub_hash,
          replace: f.replace.value,
        });
      } finally {
        conn.close();
      }
    }

    if (f.output.value === 'json') {
      const doc =
        registration === undefined
          ? record
          : {
              ...record,
              registration: {
                outcome: registration.outcome,
                entry_id: registration.entryId,
                spiffe_id: alias.spiffeId,
                previous_pub_hashes: registration.previousPubHashes,
                other_aliases: registration.otherAliases,
              },
            };
      io.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    } else {
      io.stdout.write(formatEnrollmentRecord(record));
      if (registration !== undefined) {
        io.stdout.write(
          `\n${describeRegistration(registration, alias.spiffeId!, record.pub_hash)}\n`,
        );
        if (registration.otherAliases.length > 0) {
          io.stdout.write(
            `Note: this device is also bound to ${registration.otherAliases.join(', ')}\n`,
          );
        }
      }
    }
    return 0;
  } catch (err) {
    io.stderr.write(`Error: ${describeCliError(err)}\n`);
    return 1;
  }
}
