/**
 * The server's configuration: SPIRE's `server.conf` (HCL v1, or its JSON form), validated
 * against the keys spire-edge supports, with SPIRE's defaults and `spire-server run` flag
 * overrides applied, returned as a typed {@link ServerConfig}.
 *
 * Reference for every key: docs/configuration-server.md. SPIRE facts followed here (from
 * `cmd/spire-server/cli/run` and doc/spire_server.md): defaults bind 0.0.0.0:8081, socket
 * `/tmp/spire-server/private/api.sock`, log level INFO / format text, ca_ttl 24h,
 * default_x509_svid_ttl 1h, default_jwt_svid_ttl 5m, ca_key_type ec-p256 with jwt_key_type
 * defaulting to it, agent_ttl defaulting to default_x509_svid_ttl, CA subject C=US O=SPIFFE; flags
 * take precedence over the file; relative paths are used as given (relative to the working
 * directory), not to the configuration file.
 *
 * {@link loadServerConfig} is pure (text in, config out); {@link loadServerConfigFile} reads the
 * file. Errors: `ERR_CONFIG_INVALID` (every problem listed, `details.problems`),
 * `ERR_CONFIG_NOT_FOUND`, `ERR_CONFIG_READ`.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { describeError, SpireEdgeError } from '../common/errors.js';
import {
  type HealthChecksConfig,
  healthChecksSection,
  NOT_SUPPORTED_YET,
  type TelemetryConfig,
  telemetrySection,
  toHealthChecksConfig,
  toTelemetryConfig,
  trimBrackets,
} from '../config/common-sections.js';
import { formatDuration } from '../config/duration.js';
import { type Environment, expandEnv } from '../config/expand-env.js';
import { parseHcl } from '../config/hcl.js';
import { parseHclJson } from '../config/hcl-json.js';
import {
  type DecodedPlugins,
  definePlugin,
  type PluginConfig,
  type PluginDefinition,
  type PluginRef,
  PluginRegistry,
  pluginsField,
} from '../config/plugin-registry.js';
import {
  type BlockValue,
  block,
  boolean,
  type ConfigProblem,
  DecodeContext,
  decodeBody,
  duration,
  type Field,
  integer,
  optionalBlock,
  problemsError,
  string,
  stringList,
} from '../config/schema.js';
import {
  type ConfigEntry,
  type ConfigFormat,
  type ConfigValue,
  detectConfigFormat,
  findEntryPos,
  MAX_CONFIG_SIZE,
  type Position,
} from '../config/tree.js';
import {
  pkcs11KeyManagerSettingsFromPluginData,
  pkcs11UpstreamAuthoritySettingsFromPluginData,
} from '../hsm/pkcs11/config.js';
import { parseTrustDomain, type TrustDomain } from '../spiffe/id.js';

/** SPIRE's default `-config` path, relative to the working directory. */
export const DEFAULT_SERVER_CONFIG_PATH = 'conf/server/server.conf';
/** SPIRE's default server API socket. */
export const DEFAULT_SERVER_SOCKET_PATH = '/tmp/spire-server/private/api.sock';

const HOUR = 3_600_000;
const MINUTE = 60_000;
/** SPIRE's cap on an SVID TTL that a CA rotation can always honour (7 days). */
const MAX_SVID_TTL_MS = 7 * 24 * HOUR;

/** Log levels (SPIRE's, upper-case; the file may use any case). */
export type LogLevel = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
/** Log formats. */
export type LogFormat = 'text' | 'json';
/** CA and JWT key types (`ca_key_type`, `jwt_key_type`). */
export type KeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-4096';

const LOG_LEVELS: readonly LogLevel[] = ['DEBUG', 'INFO', 'WARN', 'ERROR'];
const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];
const KEY_TYPES: readonly KeyType[] = ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-4096'];

function trustDomainProblem(value: string): string | undefined {
  try {
    parseTrustDomain(value);
    return undefined;
  } catch (err) {
    return `is not a valid trust domain: ${describeError(err)}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Built-in plugins

const NOT_YET_PLUGIN = 'not supported by spire-edge yet';

/** `DataStore "sql"`: SQLite (embedded default) or PostgreSQL (shared by HA replicas). */
export const sqlDataStorePlugin = definePlugin(
  'DataStore',
  'sql',
  {
    database_type: string({ required: true, oneOf: ['sqlite3', 'postgres'] }),
    connection_string: string(),
    ro_connection_string: string(),
    max_open_conns: integer({ min: 0 }),
    max_idle_conns: integer({ min: 0 }),
    conn_max_lifetime: duration({ min: 0 }),
    disable_migration: boolean({ default: false }),
  },
  {
    description: 'SQL datastore: sqlite3 (default path <data_dir>/datastore.sqlite3) or postgres',
    unsupported: {
      root_ca_path: 'it is for MySQL, which spire-edge does not support',
      client_cert_path: 'it is for MySQL, which spire-edge does not support',
      client_key_path: 'it is for MySQL, which spire-edge does not support',
      log_sql: 'SQL statement logging is not available',
    },
    check(data, h) {
      if (data.database_type === 'postgres' && data.connection_string === undefined) {
        h.report(`${h.path}.connection_string is required when database_type is postgres`);
      }
      if (data.database_type === 'sqlite3' && data.ro_connection_string !== undefined) {
        h.report(`${h.path}.ro_connection_string applies to postgres only`, 'ro_connection_string');
      }
    },
  },
);

/** `KeyManager "memory"`: keys live in memory only (lost on restart). */
export const memoryKeyManagerPlugin = definePlugin(
  'KeyManager',
  'memory',
  {},
  {
    description: 'keys in memory only; a restart creates new CA keys',
  },
);

/** `KeyManager "disk"`: keys persisted to one file. */
export const diskKeyManagerPlugin = definePlugin(
  'KeyManager',
  'disk',
  { keys_path: string({ required: true }) },
  { description: 'keys persisted in one file' },
);

/** `NodeAttestor "join_token"`: agents attest with one-time tokens from `token generate`. */
export const joinTokenNodeAttestorPlugin = definePlugin(
  'NodeAttestor',
  'join_token',
  {},
  { description: 'one-time join tokens' },
);

/** `NodeAttestor "x509pop"`: agents prove possession of a certificate's key. */
export const x509popNodeAttestorPlugin = definePlugin(
  'NodeAttestor',
  'x509pop',
  {
    mode: string({ default: 'external_pki', oneOf: ['external_pki', 'spiffe'] }),
    ca_bundle_path: string(),
    ca_bundle_paths: stringList(),
    agent_path_template: string(),
    max_intermediates: integer({ default: 4, min: 1 }),
    max_rsa_key_size: integer({ default: 8192, min: 2048 }),
  },
  {
    description: 'X.509 proof of possession against configured CA bundles',
    unsupported: {
      spiffe_prefix: 'it belongs to mode "spiffe", which is not supported',
      verify_client_ip: 'not supported yet',
    },
    check(data, h) {
      if (data.mode === 'spiffe') {
        h.report(`${h.path}.mode "spiffe" is not supported yet; use "external_pki"`, 'mode');
        return;
      }
      const one = data.ca_bundle_path !== undefined;
      const many = data.ca_bundle_paths !== undefined && data.ca_bundle_paths.length > 0;
      if (one && many) {
        h.report(
          `only one of ${h.path}.ca_bundle_path or ca_bundle_paths can be set`,
          'ca_bundle_paths',
        );
      } else if (!one && !many) {
        h.report(`one of ${h.path}.ca_bundle_path or ca_bundle_paths must be set`);
      }
    },
  },
);

/** PCR index list items: 0 to 23 (HCL numbers are read as text). */
function pcrIndexProblem(item: string): string | undefined {
  return /^(?:[0-9]|1[0-9]|2[0-3])$/.test(item) ? undefined : 'must be a PCR index 0 to 23';
}

/**
 * `NodeAttestor "tpm"`: EK certificate (or enrolled EK) → credential activation → quote over
 * a fresh nonce → PCR selectors (docs/tpm-attestation.md).
 */
export const tpmNodeAttestorPlugin = definePlugin(
  'NodeAttestor',
  'tpm',
  {
    ek_ca_path: string(),
    require_ek_cert: boolean({ default: true }),
    require_enrollment: boolean({ default: false }),
    pcr_banks: stringList({
      default: ['sha256'],
      checkItem: (b) =>
        ['sha1', 'sha256', 'sha384', 'sha512'].includes(b)
          ? undefined
          : 'must be sha1, sha256, sha384 or sha512',
    }),
    pcr_indices: stringList({
      default: ['0', '1', '2', '3', '4', '5', '6', '7'],
      checkItem: pcrIndexProblem,
    }),
    allow_sha1: boolean({ default: false }),
    firmware_policies_path: string(),
    require_event_log: boolean({ default: false }),
  },
  {
    description: 'TPM 2.0: EK certificate or enrollment, credential activation, PCR quote',
    unsupported: {
      reattest_interval: `${NOT_YET_PLUGIN}: agents re-attest on every SVID renewal`,
    },
    check(data, h) {
      if (data.require_ek_cert && data.ek_ca_path === undefined) {
        h.report(`${h.path}.ek_ca_path is required when require_ek_cert is true`);
      }
      if (data.pcr_banks.includes('sha1') && !data.allow_sha1) {
        h.report(`${h.path}.pcr_banks: sha1 needs allow_sha1 = true`, 'pcr_banks');
      }
      if (data.pcr_indices.length === 0) h.report(`${h.path}.pcr_indices must not be empty`);
    },
  },
);

/** Decoded `plugin_data` of `NodeAttestor "tpm"`. */
export type TpmNodeAttestorData =
  typeof tpmNodeAttestorPlugin extends PluginDefinition<infer D> ? D : never;

/** `UpstreamAuthority "disk"`: the server CA is signed by a CA whose key is on disk. */
export const diskUpstreamAuthorityPlugin = definePlugin(
  'UpstreamAuthority',
  'disk',
  {
    cert_file_path: string({ required: true }),
    key_file_path: string({ required: true }),
    bundle_file_path: string(),
  },
  { description: 'upstream CA certificate and key read from files' },
);

/** `plugin_data` keys shared by the PKCS#11 KeyManager and UpstreamAuthority (see docs/hsm.md). */
const pkcs11TokenFields = {
  module_path: string(),
  token_label: string(),
  token_serial: string(),
  slot_id: integer({ min: 0 }),
  pin: string(),
  pin_file: string(),
  pin_env: string(),
  uri: string(),
  session_pool_size: integer({ min: 1, max: 64 }),
};

/** Reports what the PKCS#11 settings parser rejects (one source, several PIN sources, …). */
function checkPkcs11(
  parse: (data: Readonly<Record<string, unknown>>) => unknown,
): (
  data: Readonly<Record<string, unknown>>,
  h: { path: string; report(msg: string): void },
) => void {
  return (data, h) => {
    const plain: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(data)) if (v !== undefined) plain[k] = v;
    try {
      parse(plain);
    } catch (err) {
      h.report(`${h.path}: ${describeError(err)}`);
    }
  };
}

/** `KeyManager "pkcs11"`: CA and JWT keys generated and kept on a PKCS#11 token (HSM). */
export const pkcs11KeyManagerPlugin = definePlugin(
  'KeyManager',
  'pkcs11',
  {
    ...pkcs11TokenFields,
    key_label_prefix: string(),
    key_type: string({ oneOf: ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-4096'] }),
    key_id_length: integer({ min: 1, max: 64 }),
    signing_mode: string({ oneOf: ['auto', 'worker', 'async', 'sync'] }),
  },
  {
    description: 'keys generated on a PKCS#11 token, never extractable',
    check: checkPkcs11(pkcs11KeyManagerSettingsFromPluginData),
  },
);

/** `UpstreamAuthority "pkcs11"`: a root CA whose key and certificate live on a PKCS#11 token. */
export const pkcs11UpstreamAuthorityPlugin = definePlugin(
  'UpstreamAuthority',
  'pkcs11',
  {
    ...pkcs11TokenFields,
    key_label: string(),
    key_id: string(),
    certificate_label: string(),
  },
  {
    description: 'upstream root CA key and certificate on a PKCS#11 token',
    check: checkPkcs11(pkcs11UpstreamAuthoritySettingsFromPluginData),
  },
);

/** Decoded `plugin_data` of `DataStore "sql"`. */
export type SqlDataStoreData =
  typeof sqlDataStorePlugin extends PluginDefinition<infer D> ? D : never;

/**
 * A new registry of the server's plugin types and built-in plugins. Later plugins
 * (`KeyManager "pkcs11"`, `NodeAttestor "tpm"`, `UpstreamAuthority "pkcs11"`) are added here.
 */
export function createServerPluginRegistry(): PluginRegistry {
  return new PluginRegistry(
    [
      { type: 'DataStore', min: 1, max: 1, description: 'exactly one' },
      { type: 'KeyManager', min: 1, max: 1, description: 'exactly one' },
      { type: 'NodeAttestor', min: 0, max: undefined, description: 'any number, unique names' },
      { type: 'UpstreamAuthority', min: 0, max: 1, description: 'at most one' },
    ],
    {
      unsupportedTypes: {
        Notifier: 'spire-edge has no notifier plugins',
        BundlePublisher: 'spire-edge has no bundle publisher plugins',
        CredentialComposer: 'spire-edge has no credential composer plugins',
        NodeResolver: 'SPIRE removed NodeResolver plugins; node attestors produce the selectors',
        UpstreamCA: 'SPIRE renamed it UpstreamAuthority',
      },
    },
  )
    .register(sqlDataStorePlugin)
    .register(memoryKeyManagerPlugin)
    .register(diskKeyManagerPlugin)
    .register(pkcs11KeyManagerPlugin)
    .register(joinTokenNodeAttestorPlugin)
    .register(x509popNodeAttestorPlugin)
    .register(tpmNodeAttestorPlugin)
    .register(diskUpstreamAuthorityPlugin)
    .register(pkcs11UpstreamAuthorityPlugin);
}

// ---------------------------------------------------------------------------------------------
// Schema

const NOT_YET = NOT_SUPPORTED_YET;

const serverFields = {
  bind_address: string({ default: '0.0.0.0' }),
  bind_port: integer({ default: 8081, min: 0, max: 65535 }),
  socket_path: string({ default: DEFAULT_SERVER_SOCKET_PATH }),
  trust_domain: string({ check: trustDomainProblem }),
  data_dir: string(),
  log_level: string({ default: 'INFO', oneOf: LOG_LEVELS, ignoreCase: true }),
  log_format: string({ default: 'text', oneOf: LOG_FORMATS, ignoreCase: true }),
  log_file: string(),
  ca_ttl: duration({ default: 24 * HOUR, positive: true }),
  default_x509_svid_ttl: duration({ default: HOUR, positive: true }),
  default_jwt_svid_ttl: duration({ default: 5 * MINUTE, positive: true }),
  agent_ttl: duration({ positive: true }),
  ca_key_type: string({ default: 'ec-p256', oneOf: KEY_TYPES, ignoreCase: true }),
  jwt_key_type: string({ oneOf: KEY_TYPES, ignoreCase: true }),
  ca_subject: optionalBlock({
    country: stringList({ default: [] }),
    organization: stringList({ default: [] }),
    common_name: string(),
  }),
  jwt_issuer: string(),
  audit_log_enabled: boolean({ default: false }),
} as const;

const serverUnsupported: Readonly<Record<string, string>> = {
  admin_ids: NOT_YET,
  federation: `${NOT_YET} (federation is planned)`,
  experimental: 'experimental SPIRE options are not supported',
  ratelimit: NOT_YET,
  disable_jwt_svids: NOT_YET,
  log_source_location: NOT_YET,
  profiling_enabled: 'Go profiling does not apply to spire-edge',
  profiling_port: 'Go profiling does not apply to spire-edge',
  profiling_freq: 'Go profiling does not apply to spire-edge',
  profiling_names: 'Go profiling does not apply to spire-edge',
  prune_attested_nodes_expired_for: NOT_YET,
  prune_attested_nodes_batch_size: NOT_YET,
  prune_tofu_nodes: NOT_YET,
  proxy_protocol_trusted_cidrs: NOT_YET,
  tls_config: NOT_YET,
  max_attested_node_info_staleness: NOT_YET,
  default_svid_ttl: 'SPIRE removed it; use default_x509_svid_ttl',
  registration_uds_path: 'SPIRE replaced it with socket_path',
  upstream_bundle: 'SPIRE removed it; upstream CA certificates are always in the bundle',
};

function documentFields(registry: PluginRegistry) {
  return {
    server: block(serverFields, { required: true, unsupported: serverUnsupported }),
    health_checks: healthChecksSection,
    telemetry: telemetrySection,
    plugins: pluginsField(registry, { required: true }),
  };
}

type ServerFileValue = BlockValue<ReturnType<typeof documentFields>>;
type ServerSectionValue = BlockValue<typeof serverFields>;

// ---------------------------------------------------------------------------------------------
// Typed result

/** The CA certificate subject (`ca_subject`). */
export interface CaSubjectConfig {
  readonly country: readonly string[];
  readonly organization: readonly string[];
  readonly commonName: string;
}

/** The `server { … }` section, with defaults and flags applied. Durations in milliseconds. */
export interface ServerSectionConfig {
  /** Listen address for the agent/server API (brackets of an IPv6 literal removed). */
  readonly bindAddress: string;
  /** Listen port; 0 asks the OS for a free port (spire-edge extension; SPIRE maps 0 to 8081). */
  readonly bindPort: number;
  /** The admin API socket, as given (a relative path is relative to the working directory). */
  readonly socketPath: string;
  readonly trustDomain: TrustDomain;
  readonly dataDir: string;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  readonly logFile?: string;
  readonly caTtlMs: number;
  readonly defaultX509SvidTtlMs: number;
  readonly defaultJwtSvidTtlMs: number;
  /** Agent SVID TTL; `default_x509_svid_ttl` unless `agent_ttl` is set (SPIRE's rule). */
  readonly agentTtlMs: number;
  readonly caKeyType: KeyType;
  /** JWT signing key type; `ca_key_type` unless `jwt_key_type` is set. */
  readonly jwtKeyType: KeyType;
  readonly caSubject: CaSubjectConfig;
  readonly jwtIssuer?: string;
  readonly auditLogEnabled: boolean;
}

export type { HealthChecksConfig, TelemetryConfig };

/** `DataStore "sql"` data with the connection string always filled in. */
export type ResolvedSqlDataStoreData = SqlDataStoreData & { readonly connection_string: string };

/** The enabled plugins, sorted by role. */
export interface ServerPluginsConfig {
  readonly dataStore: PluginConfig<ResolvedSqlDataStoreData>;
  readonly keyManager: PluginConfig;
  readonly nodeAttestors: readonly PluginConfig[];
  readonly upstreamAuthority?: PluginConfig;
  /** Every enabled plugin in declaration order (data as in `dataStore` etc.). */
  readonly all: readonly PluginConfig[];
  /** Plugins written with `enabled = false` (skipped, as SPIRE does). */
  readonly disabled: readonly PluginRef[];
  /**
   * True when the file gave no `connection_string` for SQLite and it was derived from
   * `data_dir` (`<data_dir>/datastore.sqlite3`, a spire-edge default; SPIRE requires the key).
   */
  readonly connectionStringDerived: boolean;
}

/** The server's validated configuration. */
export interface ServerConfig {
  /** The file the configuration came from (as given), for messages. */
  readonly source: string;
  readonly format: ConfigFormat;
  readonly server: ServerSectionConfig;
  readonly healthChecks: HealthChecksConfig;
  readonly telemetry: TelemetryConfig;
  readonly plugins: ServerPluginsConfig;
  /** Things SPIRE would log a warning about (empty ca_subject, TTLs a CA rotation may cut short). */
  readonly warnings: readonly string[];
}

// ---------------------------------------------------------------------------------------------
// Flags

/**
 * `spire-server run` flags that override the file (SPIRE's names). String values are validated
 * like the file's; `serverPort` may be a number or a numeric string.
 */
export interface ServerFlags {
  /** `-config`: the file to read (used by {@link loadServerConfigFile}). */
  readonly config?: string;
  readonly trustDomain?: string;
  readonly dataDir?: string;
  readonly logLevel?: string;
  readonly logFormat?: string;
  readonly logFile?: string;
  readonly socketPath?: string;
  readonly bindAddress?: string;
  readonly serverPort?: number | string;
  /** `-expandEnv`: expand `$VAR`/`${VAR}` in the file before parsing. */
  readonly expandEnv?: boolean;
}

interface FlagValues {
  trust_domain?: string;
  data_dir?: string;
  log_level?: string;
  log_format?: string;
  log_file?: string;
  socket_path?: string;
  bind_address?: string;
  bind_port?: number;
}

const FLAG_KEYS = [
  ['trustDomain', 'trust_domain'],
  ['dataDir', 'data_dir'],
  ['logLevel', 'log_level'],
  ['logFormat', 'log_format'],
  ['logFile', 'log_file'],
  ['socketPath', 'socket_path'],
  ['bindAddress', 'bind_address'],
  ['serverPort', 'bind_port'],
] as const satisfies ReadonlyArray<readonly [keyof ServerFlags, keyof FlagValues]>;

const FLAG_SOURCE = 'command line';
const NOWHERE: Position = { line: 0, column: 0 };

/** Validates flag values with the same rules as the file's keys. */
function decodeFlags(flags: ServerFlags): { values: FlagValues; problems: ConfigProblem[] } {
  if (typeof flags !== 'object' || flags === null) throw new TypeError('flags must be an object');
  const ctx = new DecodeContext(FLAG_SOURCE);
  const values: Record<string, unknown> = {};
  for (const [flag, key] of FLAG_KEYS) {
    const raw = flags[flag];
    // An empty flag is unset, as with Go's flag package merged by SPIRE.
    if (raw === undefined || raw === '') continue;
    let value: ConfigValue;
    if (typeof raw === 'string') {
      value = { kind: 'string', value: raw, pos: NOWHERE };
    } else if (flag === 'serverPort' && typeof raw === 'number') {
      value = {
        kind: 'number',
        value: raw,
        text: String(raw),
        integer: Number.isInteger(raw),
        pos: NOWHERE,
      };
    } else {
      throw new TypeError(
        `flag -${flag} must be a ${flag === 'serverPort' ? 'number or ' : ''}string`,
      );
    }
    const field = serverFields[key] as Field<unknown>;
    const entry: ConfigEntry = { key, keyPos: NOWHERE, value };
    const decoded = field.read([entry], ctx, `-${flag}`, undefined);
    if (decoded !== undefined) values[key] = decoded;
  }
  const problems = ctx.problems.map((p) => ({ ...p, line: undefined, column: undefined }));
  return { values: values as FlagValues, problems };
}

// ---------------------------------------------------------------------------------------------
// Building the typed config

const DEFAULT_CA_SUBJECT: CaSubjectConfig = {
  country: ['US'],
  organization: ['SPIFFE'],
  commonName: '',
};

function sqliteDefaultPath(dataDir: string): string {
  return join(dataDir, 'datastore.sqlite3');
}

function ttlWarnings(server: ServerSectionConfig, agentTtlSet: boolean): string[] {
  const maxSvid = Math.min(server.caTtlMs / 6, MAX_SVID_TTL_MS);
  const checks: Array<[string, number]> = [
    ['default_x509_svid_ttl', server.defaultX509SvidTtlMs],
    ['default_jwt_svid_ttl', server.defaultJwtSvidTtlMs],
  ];
  if (agentTtlSet) checks.push(['agent_ttl', server.agentTtlMs]);
  const warnings: string[] = [];
  for (const [name, ttl] of checks) {
    if (ttl <= maxSvid) continue;
    warnings.push(
      `${name} (${formatDuration(ttl)}) is too high for ca_ttl (${formatDuration(server.caTtlMs)}): SVIDs may be issued with shorter lifetimes; set ${name} to ${formatDuration(maxSvid)} or less, or ca_ttl to ${formatDuration(Math.min(ttl, MAX_SVID_TTL_MS) * 6)} or more`,
    );
  }
  return warnings;
}

function buildServerSection(
  s: ServerSectionValue,
  flags: FlagValues,
  report: (path: string, message: string) => void,
  warnings: string[],
): ServerSectionConfig | undefined {
  const trustDomain = flags.trust_domain ?? s.trust_domain;
  const dataDir = flags.data_dir ?? s.data_dir;
  if (trustDomain === undefined) {
    report(
      'server.trust_domain',
      'missing required key server.trust_domain (or the -trustDomain flag)',
    );
  }
  if (dataDir === undefined) {
    report('server.data_dir', 'missing required key server.data_dir (or the -dataDir flag)');
  }
  if (trustDomain === undefined || dataDir === undefined) return undefined;
  let caSubject = DEFAULT_CA_SUBJECT;
  if (s.ca_subject !== undefined) {
    const subject: CaSubjectConfig = {
      country: s.ca_subject.country,
      organization: s.ca_subject.organization,
      commonName: s.ca_subject.common_name ?? '',
    };
    if (
      subject.country.length === 0 &&
      subject.organization.length === 0 &&
      subject.commonName === ''
    ) {
      warnings.push('ca_subject is set but empty; the default subject (C=US, O=SPIFFE) is used');
    } else {
      caSubject = subject;
    }
  }
  const logFile = flags.log_file ?? s.log_file;
  const caKeyType = s.ca_key_type as KeyType;
  return {
    bindAddress: trimBrackets(flags.bind_address ?? s.bind_address),
    bindPort: flags.bind_port ?? s.bind_port,
    socketPath: flags.socket_path ?? s.socket_path,
    trustDomain: parseTrustDomain(trustDomain),
    dataDir,
    logLevel: (flags.log_level ?? s.log_level) as LogLevel,
    logFormat: (flags.log_format ?? s.log_format) as LogFormat,
    ...(logFile === undefined ? {} : { logFile }),
    caTtlMs: s.ca_ttl,
    defaultX509SvidTtlMs: s.default_x509_svid_ttl,
    defaultJwtSvidTtlMs: s.default_jwt_svid_ttl,
    agentTtlMs: s.agent_ttl ?? s.default_x509_svid_ttl,
    caKeyType,
    jwtKeyType: (s.jwt_key_type as KeyType | undefined) ?? caKeyType,
    caSubject,
    ...(s.jwt_issuer === undefined ? {} : { jwtIssuer: s.jwt_issuer }),
    auditLogEnabled: s.audit_log_enabled,
  };
}

function buildPlugins(decoded: DecodedPlugins, dataDir: string): ServerPluginsConfig {
  let connectionStringDerived = false;
  const all = decoded.enabled.map((p): PluginConfig => {
    if (!sqlDataStorePlugin.is(p)) return p;
    if (p.data.connection_string !== undefined) return p;
    connectionStringDerived = true;
    return { ...p, data: { ...p.data, connection_string: sqliteDefaultPath(dataDir) } };
  });
  // The registry's multiplicity rules guarantee exactly one DataStore (sql) and KeyManager.
  const dataStore = all.find(
    (p) => p.type === 'DataStore',
  ) as PluginConfig<ResolvedSqlDataStoreData>;
  const keyManager = all.find((p) => p.type === 'KeyManager')!;
  const upstreamAuthority = all.find((p) => p.type === 'UpstreamAuthority');
  return {
    dataStore,
    keyManager,
    nodeAttestors: all.filter((p) => p.type === 'NodeAttestor'),
    ...(upstreamAuthority === undefined ? {} : { upstreamAuthority }),
    all,
    disabled: decoded.disabled,
    connectionStringDerived,
  };
}

// ---------------------------------------------------------------------------------------------
// Loading

/** Input of {@link loadServerConfig}. */
export interface LoadServerConfigInput {
  /** The configuration text (HCL or JSON). */
  readonly text: string;
  /** The file name for messages and format detection (`.json` → JSON). Default `server.conf`. */
  readonly filename?: string;
  /** Flag overrides. */
  readonly flags?: ServerFlags;
  /** The environment for `-expandEnv` (default: empty — the function is pure). */
  readonly env?: Environment;
  /** Plugin registry (default: {@link createServerPluginRegistry}). */
  readonly registry?: PluginRegistry;
}

/**
 * Loads the server configuration from text: expands the environment when `flags.expandEnv`,
 * parses HCL or JSON, validates every key against the supported schema, applies SPIRE's
 * defaults and the flag overrides, and returns the typed config. Pure: no file system access.
 *
 * Trusts nothing in the text. The caller must still check what needs I/O: that paths exist,
 * that the bind address resolves, that the ports are free.
 *
 * @throws SpireEdgeError `ERR_CONFIG_INVALID` listing every problem (`file:line: message`).
 * @throws TypeError when `text` is not a string or a flag has the wrong type.
 */
export function loadServerConfig(input: LoadServerConfigInput): ServerConfig {
  if (typeof input !== 'object' || input === null) throw new TypeError('input must be an object');
  const file = input.filename ?? 'server.conf';
  const flags = input.flags ?? {};
  if (typeof input.text !== 'string') throw new TypeError('text must be a string');
  const text = flags.expandEnv === true ? expandEnv(input.text, input.env ?? {}) : input.text;
  const format = detectConfigFormat(text, file);
  const root =
    format === 'json' ? parseHclJson(text, { filename: file }) : parseHcl(text, { filename: file });
  const registry = input.registry ?? createServerPluginRegistry();
  const ctx = new DecodeContext(file);
  const flagResult = decodeFlags(flags);
  const raw = decodeBody(root, documentFields(registry), {}, ctx, '', root.pos) as
    | ServerFileValue
    | undefined;
  const problems: ConfigProblem[] = [...ctx.problems, ...flagResult.problems];
  const omitted = ctx.problemCount - ctx.problems.length;
  if (raw === undefined || problems.length > 0) throw problemsError(problems, omitted);

  const warnings: string[] = [];
  const serverPos = findEntryPos(root, 'server');
  const server = buildServerSection(
    raw.server,
    flagResult.values,
    (path, message) =>
      problems.push({ file, line: serverPos.line, column: serverPos.column, path, message }),
    warnings,
  );
  if (server === undefined) throw problemsError(problems);
  warnings.push(...ttlWarnings(server, raw.server.agent_ttl !== undefined));
  return {
    source: file,
    format,
    server,
    healthChecks: toHealthChecksConfig(raw.health_checks),
    telemetry: toTelemetryConfig(raw.telemetry),
    plugins: buildPlugins(raw.plugins, server.dataDir),
    warnings,
  };
}

/**
 * Applies `spire-server run` flag overrides to a loaded configuration (flags win over the file,
 * as in SPIRE), validating each flag like the file key it replaces. When `-dataDir` changes the
 * data directory, a SQLite connection string derived from `data_dir` follows it.
 *
 * @throws SpireEdgeError `ERR_CONFIG_INVALID` naming each bad flag.
 */
export function applyServerFlags(config: ServerConfig, flags: ServerFlags): ServerConfig {
  const { values, problems } = decodeFlags(flags);
  if (problems.length > 0) throw problemsError(problems);
  const s = config.server;
  const server: ServerSectionConfig = {
    ...s,
    ...(values.bind_address === undefined
      ? {}
      : { bindAddress: trimBrackets(values.bind_address) }),
    ...(values.bind_port === undefined ? {} : { bindPort: values.bind_port }),
    ...(values.socket_path === undefined ? {} : { socketPath: values.socket_path }),
    ...(values.trust_domain === undefined
      ? {}
      : { trustDomain: parseTrustDomain(values.trust_domain) }),
    ...(values.data_dir === undefined ? {} : { dataDir: values.data_dir }),
    ...(values.log_level === undefined ? {} : { logLevel: values.log_level as LogLevel }),
    ...(values.log_format === undefined ? {} : { logFormat: values.log_format as LogFormat }),
    ...(values.log_file === undefined ? {} : { logFile: values.log_file }),
  };
  let plugins = config.plugins;
  const ds = plugins.dataStore;
  if (values.data_dir !== undefined && plugins.connectionStringDerived) {
    const dataStore = {
      ...ds,
      data: { ...ds.data, connection_string: sqliteDefaultPath(values.data_dir) },
    };
    plugins = {
      ...plugins,
      dataStore,
      all: plugins.all.map((p) => (p === ds ? dataStore : p)),
    };
  }
  return { ...config, server, plugins };
}

/**
 * Reads and loads the server configuration file: `path`, else `flags.config`, else SPIRE's
 * default `conf/server/server.conf` (relative to the working directory). At most
 * {@link MAX_CONFIG_SIZE} bytes of UTF-8. `env` is used for `-expandEnv` (default
 * `process.env`).
 *
 * @throws SpireEdgeError `ERR_CONFIG_NOT_FOUND` (says to use -config), `ERR_CONFIG_READ`,
 * `ERR_CONFIG_INVALID`.
 */
export async function loadServerConfigFile(
  path: string | undefined,
  flags: ServerFlags = {},
  env: Environment = process.env,
): Promise<ServerConfig> {
  const file = path ?? flags.config ?? DEFAULT_SERVER_CONFIG_PATH;
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new SpireEdgeError(
        'ERR_CONFIG_NOT_FOUND',
        `could not find config file ${resolvePath(file)}: please use the -config flag`,
        { cause: err },
      );
    }
    throw new SpireEdgeError(
      'ERR_CONFIG_READ',
      `unable to read configuration at ${JSON.stringify(file)}: ${describeError(err)}`,
      {
        cause: err,
      },
    );
  }
  if (bytes.length > MAX_CONFIG_SIZE) {
    throw new SpireEdgeError(
      'ERR_CONFIG_INVALID',
      `${file}: configuration is larger than ${String(MAX_CONFIG_SIZE)} bytes`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (err) {
    throw new SpireEdgeError('ERR_CONFIG_INVALID', `${file}: configuration is not valid UTF-8`, {
      cause: err,
    });
  }
  return loadServerConfig({ text, filename: file, flags, env });
}

/** Re-exported for callers that detect the format themselves. */
export { detectConfigFormat };
