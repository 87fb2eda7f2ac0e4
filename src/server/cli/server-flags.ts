/**
 * The flags of `spire-server run` and `spire-server validate` (SPIRE's `run` flags, which
 * `validate` shares), and what the server entry points receive. Flags override the
 * configuration file only when given a non-zero value, as SPIRE's merge does. `-config`
 * defaults to `conf/server/server.conf` (SPIRE's default, applied when the flag is empty).
 */

import type { FlagSet } from '../../common/cli/flag-set.js';
import type { CliIo } from '../../common/cli/io.js';
import type { ServerFlags } from '../config.js';

/** Defines SPIRE's `run` flags on `fs`. */
export function defineServerFlags(fs: FlagSet) {
  return {
    bindAddress: fs.string('bindAddress', '', 'IP address or DNS name of the SPIRE server'),
    serverPort: fs.int('serverPort', 0, 'Port number of the SPIRE server'),
    config: fs.string('config', '', 'Path to a SPIRE config file'),
    dataDir: fs.string('dataDir', '', 'Directory to store runtime data to'),
    logFile: fs.string('logFile', '', 'File to write logs to'),
    logFormat: fs.string('logFormat', '', "'text' or 'json'"),
    logSourceLocation: fs.bool(
      'logSourceLocation',
      false,
      'Include source file, line number and function name in log lines',
    ),
    logLevel: fs.string('logLevel', '', "'debug', 'info', 'warn', or 'error'"),
    trustDomain: fs.string('trustDomain', '', 'The trust domain that this server belongs to'),
    expandEnv: fs.bool('expandEnv', false, 'Expand environment variables in SPIRE config file'),
    socketPath: fs.string('socketPath', '', 'Path to bind the SPIRE Server API socket to'),
  };
}

/** The flags {@link defineServerFlags} returns. */
export type ServerFlagValues = ReturnType<typeof defineServerFlags>;

/** What `run` and `validate` hand to the server module (src/server/server.ts). */
export interface ServerCommandInput {
  /** The flag overrides that were given (non-empty / non-zero), in the config loader's shape. */
  readonly flags: ServerFlags;
  /** `-logSourceLocation`. */
  readonly logSourceLocation: boolean;
  /** Streams and environment (`-expandEnv` reads `io.env`). */
  readonly io: CliIo;
}

/** The given flags as {@link ServerFlags} (zero values left out, so the file's values stay). */
export function toServerFlags(f: ServerFlagValues): ServerFlags {
  const out: {
    -readonly [K in keyof ServerFlags]: ServerFlags[K];
  } = {};
  if (f.config.value !== '') out.config = f.config.value;
  if (f.trustDomain.value !== '') out.trustDomain = f.trustDomain.value;
  if (f.dataDir.value !== '') out.dataDir = f.dataDir.value;
  if (f.logLevel.value !== '') out.logLevel = f.logLevel.value;
  if (f.logFormat.value !== '') out.logFormat = f.logFormat.value;
  if (f.logFile.value !== '') out.logFile = f.logFile.value;
  if (f.socketPath.value !== '') out.socketPath = f.socketPath.value;
  if (f.bindAddress.value !== '') out.bindAddress = f.bindAddress.value;
  if (f.serverPort.value !== 0n) out.serverPort = Number(f.serverPort.value);
  if (f.expandEnv.value) out.expandEnv = true;
  return out;
}
