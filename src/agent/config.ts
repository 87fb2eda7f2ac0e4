/**
 * The agent's configuration: SPIRE's `agent.conf` (HCL v1, or its JSON form), validated against
 * the keys spire-edge supports, with SPIRE's defaults and `spire-agent run` flag overrides
 * applied, returned as a typed {@link AgentConfig}.
 *
 * Reference for every key: docs/configuration-agent.md. SPIRE facts followed here (from
 * `cmd/spire-agent/cli/run` and doc/spire_agent.md): socket `/tmp/spire-agent/public/api.sock`,
 * log level INFO / format text, trust bundle format `pem`; exactly one of `trust_bundle_path`,
 * `trust_bundle_url` (https only) or `insecure_bootstrap` (SPIRE's messages); `join_token` and
 * `join_token_file` exclusive; flags are merged over the file *before* those rules are checked
 * (a `-trustBundle` flag beside a file's `trust_bundle_url` is an error, as in SPIRE); a boolean
 * flag only turns an option on; exactly one NodeAttestor and KeyManager, at least one
 * WorkloadAttestor. spire-edge differences (documented): `data_dir` is required (SPIRE defaults
 * to the working directory, but the agent's store lives there), `server_port` defaults to 8081
 * (SPIRE requires it), `sync_interval` is an `agent` key (SPIRE's `experimental.sync_interval`
 * is accepted too).
 *
 * {@link loadAgentConfig} is pure (text in, config out); {@link loadAgentConfigFile} reads the
 * file and the join token file. Errors: `ERR_CONFIG_INVALID` (every problem listed,
 * `details.problems`), `ERR_CONFIG_NOT_FOUND`, `ERR_CONFIG_READ`.
 */
import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
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
import { parseTrustDomain, type TrustDomain } from '../spiffe/id.js';

/** SPIRE's default `-config` path, relative to the working directory. */
export const DEFAULT_AGENT_CONFIG_PATH = 'conf/agent/agent.conf';
/** SPIRE's default Workload API socket. */
export const DEFAULT_AGENT_SOCKET_PATH = '/tmp/spire-agent/public/api.sock';
/** The server port when none is configured (spire-edge; SPIRE requires `server_port`). */
export const DEFAULT_SERVER_PORT = 8081;
/** SPIRE's sync interval with the server (its `experimental.sync_interval` default). */
export const DEFAULT_SYNC_INTERVAL_MS = 5_000;
/** SPIRE's default soft limit of cached X509-SVIDs and JWT-SVIDs. */
export const DEFAULT_SVID_CACHE_MAX_SIZE = 1000;
/** SPIRE's default Docker socket for the docker workload attestor. */
export const DEFAULT_DOCKER_SOCKET = 'unix:///var/run/docker.sock';

/** Log levels (SPIRE's, upper-case; the file may use any case). */
export type AgentLogLevel = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
/** Log formats. */
export type AgentLogFormat = 'text' | 'json';
/** Format of the bootstrap trust bundle (`trust_bundle_format`). */
export type TrustBundleFormat = 'pem' | 'spiffe';
/** Key types of workload X509-SVIDs (`workload_x509_svid_key_type`). */
export type WorkloadKeyType = 'ec-p256';

const LOG_LEVELS: readonly AgentLogLevel[] = ['DEBUG', 'INFO', 'WARN', 'ERROR'];
const LOG_FORMATS: readonly AgentLogFormat[] = ['text', 'json'];
const BUNDLE_FORMATS: readonly TrustBundleFormat[] = ['pem', 'spiffe'];

function trustDomainProblem(value: string): string | undefined {
  try {
    parseTrustDomain(value);
    return undefined;
  } catch (err) {
    return `is not a valid trust domain: ${describeError(err)}`;
  }
}

function httpsUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a valid URL';
  }
  if (url.protocol !== 'https:') return 'must start with https://';
  if (url.hostname === '') return 'must name a host';
  return undefined;
}

function keyTypeProblem(value: string): string | undefined {
  if (value === 'ec-p256') return undefined;
  if (value === 'rsa-2048' || value === 'ec-p384') {
    return `${JSON.stringify(value)} is not supported yet; use "ec-p256"`;
  }
  return `must be ec-p256, not ${JSON.stringify(value)}`;
}

function unixEndpointProblem(value: string): string | undefined {
  const path = value.startsWith('unix://') ? value.slice('unix://'.length) : value;
  if (path.startsWith('/')) return undefined;
  return 'must be unix:///absolute/path or an absolute path (only Unix sockets are supported)';
}

// ---------------------------------------------------------------------------------------------
// Built-in plugins

const NOT_YET = NOT_SUPPORTED_YET;

/**
 * `NodeAttestor "join_token"`: attest with a one-time token from `spire-server token generate`,
 * given by `join_token`, `join_token_file` or `-joinToken`.
 */
export const agentJoinTokenPlugin = definePlugin(
  'NodeAttestor',
  'join_token',
  {},
  { description: 'one-time join token (join_token, join_token_file or -joinToken)' },
);

/** `NodeAttestor "x509pop"`: prove possession of the key of a provisioned certificate. */
export const agentX509popPlugin = definePlugin(
  'NodeAttestor',
  'x509pop',
  {
    private_key_path: string({ required: true }),
    certificate_path: string({ required: true }),
    intermediates_path: string(),
  },
  {
    description: 'X.509 proof of possession with a provisioned certificate and key',
    unsupported: {
      spiffe_endpoint_socket: `${NOT_YET} (the server's x509pop mode "spiffe" is not supported)`,
    },
  },
);

/**
 * `NodeAttestor "tpm"`: attest with the device's TPM 2.0 (EK certificate, credential
 * activation, PCR quote); see docs/tpm-attestation.md. The same TPM seals the agent store's
 * secrets at rest (`seal_secrets`, default true; `seal_pcrs` binds the sealed data key to
 * sha256 PCRs) — docs/configuration-agent.md, "Private keys at rest".
 */
export const agentTpmPlugin = definePlugin(
  'NodeAttestor',
  'tpm',
  {
    tcti: string({ default: 'device:/dev/tpmrm0' }),
    ek_algorithm: string({ default: 'rsa', oneOf: ['rsa', 'ecc-p256', 'ecc-p384'] }),
    pcr_banks: stringList({
      checkItem: (b) =>
        ['sha1', 'sha256', 'sha384', 'sha512'].includes(b)
          ? undefined
          : 'must be sha1, sha256, sha384 or sha512',
    }),
    pcr_indices: stringList({
      checkItem: (i) =>
        /^(?:[0-9]|1[0-9]|2[0-3])$/.test(i) ? undefined : 'must be a PCR index 0 to 23',
    }),
    event_log_path: string({ default: '/sys/kernel/security/tpm0/binary_bios_measurements' }),
    seal_secrets: boolean({ default: true }),
    seal_pcrs: stringList({
      checkItem: (i) =>
        /^(?:[0-9]|1[0-9]|2[0-3])$/.test(i) ? undefined : 'must be a PCR index 0 to 23',
    }),
  },
  {
    description:
      'TPM 2.0 (tcti, ek_algorithm; the server decides the quoted PCRs, pcr_banks/pcr_indices add more; seal_secrets, seal_pcrs)',
    check(data, h) {
      if (!data.seal_secrets && data.seal_pcrs !== undefined && data.seal_pcrs.length > 0) {
        h.report(`${h.path}.seal_pcrs needs seal_secrets = true`, 'seal_pcrs');
      }
    },
  },
);

/** Decoded `plugin_data` of `NodeAttestor "tpm"`. */
export type AgentTpmData = typeof agentTpmPlugin extends PluginDefinition<infer D> ? D : never;

/** `KeyManager "disk"`: the agent's key persisted in the agent store (`directory` is accepted, unused). */
export const agentDiskKeyManagerPlugin = definePlugin(
  'KeyManager',
  'disk',
  { directory: string({ required: true }) },
  {
    description:
      "the agent's private key persisted in the agent store (directory accepted for SPIRE compatibility, unused)",
  },
);

/** `KeyManager "memory"`: the agent's key in memory only (re-attest after a restart). */
export const agentMemoryKeyManagerPlugin = definePlugin(
  'KeyManager',
  'memory',
  {},
  { description: "the agent's private key in memory only; a restart re-attests" },
);

/** `WorkloadAttestor "unix"`: uid/gid/user/group selectors, optionally path and sha256. */
export const unixWorkloadAttestorPlugin = definePlugin(
  'WorkloadAttestor',
  'unix',
  {
    discover_workload_path: boolean({ default: false }),
    workload_size_limit: integer({ default: 0 }),
  },
  { description: 'unix:uid, unix:user, unix:gid, unix:group, supplementary groups, path, sha256' },
);

/** `WorkloadAttestor "systemd"`: the unit that owns the process. */
export const systemdWorkloadAttestorPlugin = definePlugin(
  'WorkloadAttestor',
  'systemd',
  {},
  { description: 'systemd:id and systemd:fragment_path of the owning unit' },
);

/** `WorkloadAttestor "docker"`: container labels, image and environment from the Engine API. */
export const dockerWorkloadAttestorPlugin = definePlugin(
  'WorkloadAttestor',
  'docker',
  {
    docker_socket_path: string({ default: DEFAULT_DOCKER_SOCKET, check: unixEndpointProblem }),
    docker_version: string(),
    use_new_container_locator: boolean({ default: true }),
  },
  {
    description: 'docker:label, docker:image_id, docker:env from the Docker Engine API',
    unsupported: {
      podman_socket_path: `${NOT_YET} (Podman)`,
      podman_socket_path_template: `${NOT_YET} (Podman)`,
      container_id_cgroup_matchers: `${NOT_YET}; the cgroup v1/v2 locator finds Docker's container IDs`,
      docker_host: 'it is for Windows, which spire-edge does not support',
      sigstore: NOT_YET,
      experimental: NOT_YET,
      verbose_container_locator_logs: NOT_YET,
    },
    check(data, h) {
      if (!data.use_new_container_locator) {
        h.report(
          `${h.path}.use_new_container_locator = false is not supported: spire-edge has only the cgroup v1/v2 locator`,
          'use_new_container_locator',
        );
      }
    },
  },
);

/** Decoded `plugin_data` of `NodeAttestor "x509pop"`. */
export type AgentX509popData =
  typeof agentX509popPlugin extends PluginDefinition<infer D> ? D : never;
/** Decoded `plugin_data` of `WorkloadAttestor "unix"`. */
export type UnixWorkloadAttestorData =
  typeof unixWorkloadAttestorPlugin extends PluginDefinition<infer D> ? D : never;
/** Decoded `plugin_data` of `WorkloadAttestor "docker"`. */
export type DockerWorkloadAttestorData =
  typeof dockerWorkloadAttestorPlugin extends PluginDefinition<infer D> ? D : never;

/**
 * A new registry of the agent's plugin types and built-in plugins. Later plugins
 * (`NodeAttestor "tpm"`) are added with `.register(definePlugin('NodeAttestor', 'tpm', …))`
 * and the registry passed to {@link loadAgentConfig} / {@link loadAgentConfigFile}.
 */
export function createAgentPluginRegistry(): PluginRegistry {
  return new PluginRegistry(
    [
      { type: 'NodeAttestor', min: 1, max: 1, description: 'exactly one' },
      { type: 'KeyManager', min: 1, max: 1, description: 'exactly one' },
      { type: 'WorkloadAttestor', min: 1, max: undefined, description: 'at least one' },
    ],
    {
      unsupportedTypes: {
        SVIDStore: 'spire-edge has no SVIDStore plugins',
        DataStore: 'it is a server plugin type',
        UpstreamAuthority: 'it is a server plugin type',
        Notifier: 'it is a server plugin type',
      },
    },
  )
    .register(agentJoinTokenPlugin)
    .register(agentX509popPlugin)
    .register(agentTpmPlugin)
    .register(agentDiskKeyManagerPlugin)
    .register(agentMemoryKeyManagerPlugin)
    .register(unixWorkloadAttestorPlugin)
    .register(systemdWorkloadAttestorPlugin)
    .register(dockerWorkloadAttestorPlugin);
}

// ---------------------------------------------------------------------------------------------
// Schema

const experimentalFields = {
  sync_interval: duration({ positive: true }),
} as const;

const experimentalUnsupported: Readonly<Record<string, string>> = {
  named_pipe_name: 'it is for Windows, which spire-edge does not support',
  admin_named_pipe_name: 'it is for Windows, which spire-edge does not support',
  use_sync_authorized_entries: 'spire-edge always syncs with SyncAuthorizedEntries',
  require_pq_kem: NOT_YET,
  jwt_svid_cache_hit_timeout: NOT_YET,
  ratelimit: NOT_YET,
  broker: NOT_YET,
  feature_flags: NOT_YET,
};

const agentFields = {
  data_dir: string(),
  server_address: string(),
  server_port: integer({ default: DEFAULT_SERVER_PORT, min: 1, max: 65535 }),
  socket_path: string({ default: DEFAULT_AGENT_SOCKET_PATH }),
  trust_domain: string({ check: trustDomainProblem }),
  trust_bundle_path: string(),
  trust_bundle_url: string({ check: httpsUrlProblem }),
  trust_bundle_format: string({ default: 'pem', oneOf: BUNDLE_FORMATS }),
  insecure_bootstrap: boolean({ default: false }),
  join_token: string(),
  join_token_file: string(),
  log_level: string({ default: 'INFO', oneOf: LOG_LEVELS, ignoreCase: true }),
  log_format: string({ default: 'text', oneOf: LOG_FORMATS, ignoreCase: true }),
  log_file: string(),
  sync_interval: duration({ positive: true }),
  x509_svid_cache_max_size: integer({ default: 0, min: 0 }),
  jwt_svid_cache_max_size: integer({ default: 0, min: 0 }),
  workload_x509_svid_key_type: string({ default: 'ec-p256', check: keyTypeProblem }),
  allow_unauthenticated_verifiers: boolean({ default: false }),
  disable_sds_api: boolean({ default: false }),
  sds: optionalBlock({
    default_svid_name: string({ default: 'default' }),
    default_bundle_name: string({ default: 'ROOTCA' }),
    default_all_bundles_name: string({ default: 'ALL' }),
    disable_spiffe_cert_validation: boolean({ default: false }),
  }),
  experimental: optionalBlock(experimentalFields, { unsupported: experimentalUnsupported }),
} as const;

const agentUnsupported: Readonly<Record<string, string>> = {
  admin_socket_path: `${NOT_YET} (the agent admin API: Debug and Delegated Identity)`,
  authorized_delegates: `${NOT_YET} (the Delegated Identity API)`,
  allowed_foreign_jwt_claims: NOT_YET,
  availability_target: NOT_YET,
  disable_workload_api: NOT_YET,
  rebootstrap_mode: NOT_YET,
  rebootstrap_delay: NOT_YET,
  trust_bundle_unix_socket: NOT_YET,
  trust_bundle_spiffe_workload_api: NOT_YET,
  log_selectors: NOT_YET,
  log_source_location: NOT_YET,
  profiling_enabled: 'Go profiling does not apply to spire-edge',
  profiling_port: 'Go profiling does not apply to spire-edge',
  profiling_freq: 'Go profiling does not apply to spire-edge',
  profiling_names: 'Go profiling does not apply to spire-edge',
};

function documentFields(registry: PluginRegistry) {
  return {
    agent: block(agentFields, { required: true, unsupported: agentUnsupported }),
    health_checks: healthChecksSection,
    telemetry: telemetrySection,
    plugins: pluginsField(registry, { required: true }),
  };
}

type AgentFileValue = BlockValue<ReturnType<typeof documentFields>>;
type AgentSectionValue = BlockValue<typeof agentFields>;

// ---------------------------------------------------------------------------------------------
// Typed result

/** Where the agent gets its first trust bundle when its store has none. */
export type TrustBundleSource =
  /** `trust_bundle_path` (`-trustBundle`): a file, read at start. */
  | { readonly kind: 'path'; readonly path: string; readonly format: TrustBundleFormat }
  /** `trust_bundle_url` (`-trustBundleUrl`): downloaded over https (system trust store). */
  | { readonly kind: 'url'; readonly url: string; readonly format: TrustBundleFormat }
  /** `insecure_bootstrap`: the server is not authenticated on first contact. */
  | { readonly kind: 'insecure' };

/** The `agent { … }` section, with defaults and flags applied. Durations in milliseconds. */
export interface AgentSectionConfig {
  /** Directory for the agent's state (its LevelDB store lives in `<data_dir>/agent-store`). */
  readonly dataDir: string;
  /** The server's DNS name or IP address (brackets of an IPv6 literal removed). */
  readonly serverAddress: string;
  readonly serverPort: number;
  /** The Workload API socket, as given. */
  readonly socketPath: string;
  readonly trustDomain: TrustDomain;
  readonly trustBundle: TrustBundleSource;
  /** The join token, from `join_token` or `-joinToken` (or `join_token_file`, once read). */
  readonly joinToken?: string;
  /** `join_token_file`, when set ({@link loadAgentConfigFile} reads it into `joinToken`). */
  readonly joinTokenFile?: string;
  readonly logLevel: AgentLogLevel;
  readonly logFormat: AgentLogFormat;
  readonly logFile?: string;
  /** How often the agent syncs with the server while it is reachable. */
  readonly syncIntervalMs: number;
  /** Soft limit of cached X509-SVIDs (SPIRE's LRU size; 0 in the file means the default). */
  readonly x509SvidCacheMaxSize: number;
  /** Limit of cached JWT-SVIDs (0 in the file means the default). */
  readonly jwtSvidCacheMaxSize: number;
  readonly workloadX509SvidKeyType: WorkloadKeyType;
  /** Release bundles (FetchX509Bundles, FetchJWTBundles, ValidateJWTSVID) to callers with no identity. */
  readonly allowUnauthenticatedVerifiers: boolean;
  /**
   * Envoy SDS on the Workload API socket (SPIRE's `sds { … }`), or `false` when
   * `disable_sds_api = true`.
   */
  readonly sds:
    | false
    | {
        readonly defaultSvidName: string;
        readonly defaultBundleName: string;
        readonly defaultAllBundlesName: string;
        readonly disableSpiffeCertValidation: boolean;
      };
}

/** `health_checks { … }` (shared with the server). */
export type AgentHealthChecksConfig = HealthChecksConfig;

/** `telemetry { … }` (shared with the server). */
export type AgentTelemetryConfig = TelemetryConfig;

/** The enabled plugins, sorted by role. */
export interface AgentPluginsConfig {
  readonly nodeAttestor: PluginConfig;
  readonly keyManager: PluginConfig;
  /** In declaration order (their selectors are combined). */
  readonly workloadAttestors: readonly PluginConfig[];
  /** Every enabled plugin in declaration order. */
  readonly all: readonly PluginConfig[];
  /** Plugins written with `enabled = false` (skipped, as SPIRE does). */
  readonly disabled: readonly PluginRef[];
}

/** The agent's validated configuration. */
export interface AgentConfig {
  /** The file the configuration came from (as given), for messages. */
  readonly source: string;
  readonly format: ConfigFormat;
  readonly agent: AgentSectionConfig;
  readonly healthChecks: AgentHealthChecksConfig;
  readonly telemetry: AgentTelemetryConfig;
  readonly plugins: AgentPluginsConfig;
  /** Things to log as warnings (insecure bootstrap). */
  readonly warnings: readonly string[];
}

// ---------------------------------------------------------------------------------------------
// Flags

/**
 * `spire-agent run` flags that override the file (SPIRE's names). String values are validated
 * like the file's; `serverPort` may be a number or a numeric string; a boolean flag only turns
 * its option on (`false` leaves the file's value), as SPIRE merges flags.
 */
export interface AgentFlags {
  /** `-config`: the file to read (used by {@link loadAgentConfigFile}). */
  readonly config?: string;
  readonly dataDir?: string;
  readonly joinToken?: string;
  readonly joinTokenFile?: string;
  readonly logFile?: string;
  readonly logFormat?: string;
  readonly logLevel?: string;
  readonly serverAddress?: string;
  readonly serverPort?: number | string;
  readonly socketPath?: string;
  /** `-trustBundle`: `trust_bundle_path`. */
  readonly trustBundle?: string;
  /** `-trustBundleUrl`: `trust_bundle_url`. */
  readonly trustBundleUrl?: string;
  readonly trustBundleFormat?: string;
  readonly trustDomain?: string;
  readonly insecureBootstrap?: boolean;
  readonly allowUnauthenticatedVerifiers?: boolean;
  /** `-expandEnv`: expand `$VAR`/`${VAR}` in the file before parsing. */
  readonly expandEnv?: boolean;
}

type FlagKey = keyof typeof agentFields;
type FlagValues = Partial<Record<FlagKey, unknown>>;

const STRING_FLAGS = [
  ['dataDir', 'data_dir'],
  ['joinToken', 'join_token'],
  ['joinTokenFile', 'join_token_file'],
  ['logFile', 'log_file'],
  ['logFormat', 'log_format'],
  ['logLevel', 'log_level'],
  ['serverAddress', 'server_address'],
  ['serverPort', 'server_port'],
  ['socketPath', 'socket_path'],
  ['trustBundle', 'trust_bundle_path'],
  ['trustBundleUrl', 'trust_bundle_url'],
  ['trustBundleFormat', 'trust_bundle_format'],
  ['trustDomain', 'trust_domain'],
] as const satisfies ReadonlyArray<readonly [keyof AgentFlags, FlagKey]>;

const BOOLEAN_FLAGS = [
  ['insecureBootstrap', 'insecure_bootstrap'],
  ['allowUnauthenticatedVerifiers', 'allow_unauthenticated_verifiers'],
] as const satisfies ReadonlyArray<readonly [keyof AgentFlags, FlagKey]>;

const FLAG_SOURCE = 'command line';
const NOWHERE: Position = { line: 0, column: 0 };

/** Validates flag values with the same rules as the file's keys. */
function decodeFlags(flags: AgentFlags): { values: FlagValues; problems: ConfigProblem[] } {
  if (typeof flags !== 'object' || flags === null) throw new TypeError('flags must be an object');
  const ctx = new DecodeContext(FLAG_SOURCE);
  const values: FlagValues = {};
  for (const [flag, key] of STRING_FLAGS) {
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
    const field = agentFields[key] as Field<unknown>;
    const entry: ConfigEntry = { key, keyPos: NOWHERE, value };
    const decoded = field.read([entry], ctx, `-${flag}`, undefined);
    if (decoded !== undefined) values[key] = decoded;
  }
  for (const [flag, key] of BOOLEAN_FLAGS) {
    const raw = flags[flag];
    if (raw === undefined) continue;
    if (typeof raw !== 'boolean') throw new TypeError(`flag -${flag} must be a boolean`);
    if (raw) values[key] = true;
  }
  const problems = ctx.problems.map((p) => ({ ...p, line: undefined, column: undefined }));
  return { values, problems };
}

// ---------------------------------------------------------------------------------------------
// Building the typed config

/** The `agent` section with the flags merged over it (flags win, as in SPIRE). */
function merged(s: AgentSectionValue, flags: FlagValues): AgentSectionValue {
  return { ...s, ...(flags as Partial<AgentSectionValue>) };
}

function buildAgentSection(
  a: AgentSectionValue,
  report: (path: string, message: string) => void,
  warnings: string[],
): AgentSectionConfig | undefined {
  let failed = false;
  const problem = (path: string, message: string) => {
    failed = true;
    report(path, message);
  };
  if (a.data_dir === undefined) {
    problem('agent.data_dir', 'missing required key agent.data_dir (or the -dataDir flag)');
  }
  if (a.server_address === undefined) {
    problem(
      'agent.server_address',
      'missing required key agent.server_address (or the -serverAddress flag)',
    );
  }
  if (a.trust_domain === undefined) {
    problem(
      'agent.trust_domain',
      'missing required key agent.trust_domain (or the -trustDomain flag)',
    );
  }
  if (a.join_token !== undefined && a.join_token_file !== undefined) {
    problem(
      'agent.join_token',
      'only one of join_token or join_token_file can be specified, not both',
    );
  }
  // SPIRE's rules and messages (cmd/spire-agent/cli/run: validateConfig).
  const path = a.trust_bundle_path;
  const url = a.trust_bundle_url;
  if (a.insecure_bootstrap) {
    if (url !== undefined && path !== undefined) {
      problem(
        'agent.insecure_bootstrap',
        'only one of insecure_bootstrap, trust_bundle_url, or trust_bundle_path can be specified, not the three options',
      );
    } else if (url !== undefined) {
      problem(
        'agent.insecure_bootstrap',
        'only one of insecure_bootstrap or trust_bundle_url can be specified, not both',
      );
    } else if (path !== undefined) {
      problem(
        'agent.insecure_bootstrap',
        'only one of insecure_bootstrap or trust_bundle_path can be specified, not both',
      );
    }
  } else if (path === undefined && url === undefined) {
    problem(
      'agent.trust_bundle_path',
      'trust_bundle_path or trust_bundle_url must be configured unless insecure_bootstrap is set',
    );
  } else if (path !== undefined && url !== undefined) {
    problem(
      'agent.trust_bundle_url',
      'only one of trust_bundle_url or trust_bundle_path can be specified, not both',
    );
  }
  if (failed) return undefined;

  const format = a.trust_bundle_format as TrustBundleFormat;
  let trustBundle: TrustBundleSource;
  if (a.insecure_bootstrap) {
    trustBundle = { kind: 'insecure' };
    warnings.push(
      'insecure_bootstrap is set: the agent does not authenticate the server when it bootstraps; a man in the middle could take over its identity — use trust_bundle_path or trust_bundle_url outside testing',
    );
  } else if (path !== undefined) {
    trustBundle = { kind: 'path', path, format };
  } else {
    trustBundle = { kind: 'url', url: url!, format };
  }
  const syncInterval = a.sync_interval ?? a.experimental?.sync_interval;
  return {
    dataDir: a.data_dir!,
    serverAddress: trimBrackets(a.server_address!),
    serverPort: a.server_port,
    socketPath: a.socket_path,
    trustDomain: parseTrustDomain(a.trust_domain!),
    trustBundle,
    ...(a.join_token === undefined ? {} : { joinToken: a.join_token }),
    ...(a.join_token_file === undefined ? {} : { joinTokenFile: a.join_token_file }),
    logLevel: a.log_level as AgentLogLevel,
    logFormat: a.log_format as AgentLogFormat,
    ...(a.log_file === undefined ? {} : { logFile: a.log_file }),
    syncIntervalMs: syncInterval ?? DEFAULT_SYNC_INTERVAL_MS,
    x509SvidCacheMaxSize: a.x509_svid_cache_max_size || DEFAULT_SVID_CACHE_MAX_SIZE,
    jwtSvidCacheMaxSize: a.jwt_svid_cache_max_size || DEFAULT_SVID_CACHE_MAX_SIZE,
    workloadX509SvidKeyType: a.workload_x509_svid_key_type as WorkloadKeyType,
    allowUnauthenticatedVerifiers: a.allow_unauthenticated_verifiers,
    sds: a.disable_sds_api
      ? false
      : {
          defaultSvidName: a.sds?.default_svid_name ?? 'default',
          defaultBundleName: a.sds?.default_bundle_name ?? 'ROOTCA',
          defaultAllBundlesName: a.sds?.default_all_bundles_name ?? 'ALL',
          disableSpiffeCertValidation: a.sds?.disable_spiffe_cert_validation ?? false,
        },
  };
}

function buildPlugins(decoded: DecodedPlugins): AgentPluginsConfig {
  // The registry's multiplicity rules guarantee one NodeAttestor and one KeyManager.
  const all = decoded.enabled;
  return {
    nodeAttestor: all.find((p) => p.type === 'NodeAttestor')!,
    keyManager: all.find((p) => p.type === 'KeyManager')!,
    workloadAttestors: all.filter((p) => p.type === 'WorkloadAttestor'),
    all,
    disabled: decoded.disabled,
  };
}

// ---------------------------------------------------------------------------------------------
// Loading

/** Input of {@link loadAgentConfig}. */
export interface LoadAgentConfigInput {
  /** The configuration text (HCL or JSON). */
  readonly text: string;
  /** The file name for messages and format detection (`.json` → JSON). Default `agent.conf`. */
  readonly filename?: string;
  /** Flag overrides. */
  readonly flags?: AgentFlags;
  /** The environment for `-expandEnv` (default: empty — the function is pure). */
  readonly env?: Environment;
  /** Plugin registry (default: {@link createAgentPluginRegistry}). */
  readonly registry?: PluginRegistry;
}

/**
 * Loads the agent configuration from text: expands the environment when `flags.expandEnv`,
 * parses HCL or JSON, validates every key against the supported schema, merges the flags over
 * the file, applies SPIRE's rules and defaults, and returns the typed config. Pure: no file
 * system access (`join_token_file` is returned as a path; {@link loadAgentConfigFile} reads it).
 *
 * Trusts nothing in the text. The caller must still check what needs I/O: that paths exist,
 * that the server address resolves, that the socket directory is usable.
 *
 * @throws SpireEdgeError `ERR_CONFIG_INVALID` listing every problem (`file:line: message`).
 * @throws TypeError when `text` is not a string or a flag has the wrong type.
 */
export function loadAgentConfig(input: LoadAgentConfigInput): AgentConfig {
  if (typeof input !== 'object' || input === null) throw new TypeError('input must be an object');
  const file = input.filename ?? 'agent.conf';
  const flags = input.flags ?? {};
  if (typeof input.text !== 'string') throw new TypeError('text must be a string');
  const text = flags.expandEnv === true ? expandEnv(input.text, input.env ?? {}) : input.text;
  const format = detectConfigFormat(text, file);
  const root =
    format === 'json' ? parseHclJson(text, { filename: file }) : parseHcl(text, { filename: file });
  const registry = input.registry ?? createAgentPluginRegistry();
  const ctx = new DecodeContext(file);
  const flagResult = decodeFlags(flags);
  const raw = decodeBody(root, documentFields(registry), {}, ctx, '', root.pos) as
    | AgentFileValue
    | undefined;
  const problems: ConfigProblem[] = [...ctx.problems, ...flagResult.problems];
  const omitted = ctx.problemCount - ctx.problems.length;
  if (raw === undefined || problems.length > 0) throw problemsError(problems, omitted);

  const agentPos = findEntryPos(root, 'agent');
  const a = merged(raw.agent, flagResult.values);
  if (
    raw.agent.sync_interval !== undefined &&
    raw.agent.experimental?.sync_interval !== undefined
  ) {
    problems.push({
      file,
      line: agentPos.line,
      column: agentPos.column,
      path: 'agent.sync_interval',
      message: 'only one of agent.sync_interval or agent.experimental.sync_interval can be set',
    });
  }
  const warnings: string[] = [];
  const agent = buildAgentSection(
    a,
    (path, message) =>
      problems.push({ file, line: agentPos.line, column: agentPos.column, path, message }),
    warnings,
  );
  if (agent === undefined || problems.length > 0) throw problemsError(problems);
  return {
    source: file,
    format,
    agent,
    healthChecks: toHealthChecksConfig(raw.health_checks),
    telemetry: toTelemetryConfig(raw.telemetry),
    plugins: buildPlugins(raw.plugins),
    warnings,
  };
}

/** Options of {@link loadAgentConfigFile}. */
export interface LoadAgentConfigFileOptions {
  /** Plugin registry (default: {@link createAgentPluginRegistry}). */
  readonly registry?: PluginRegistry;
}

async function readText(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new SpireEdgeError(
      'ERR_CONFIG_READ',
      `unable to read ${what} ${JSON.stringify(file)}: ${describeError(err)}`,
      { cause: err },
    );
  }
}

/**
 * Reads `join_token_file` into `joinToken` (trimmed), as SPIRE does at start.
 *
 * @throws SpireEdgeError `ERR_CONFIG_READ` (unreadable), `ERR_CONFIG_INVALID` (empty).
 */
export async function resolveJoinTokenFile(config: AgentConfig): Promise<AgentConfig> {
  const file = config.agent.joinTokenFile;
  if (file === undefined) return config;
  const bytes = await readText(file, 'join token file');
  const token = bytes.toString('utf8').trim();
  if (token === '') {
    throw new SpireEdgeError('ERR_CONFIG_INVALID', `join token file ${file} is empty`);
  }
  return { ...config, agent: { ...config.agent, joinToken: token } };
}

/**
 * Reads and loads the agent configuration file: `path`, else `flags.config`, else SPIRE's
 * default `conf/agent/agent.conf` (relative to the working directory); then reads
 * `join_token_file` when set. At most {@link MAX_CONFIG_SIZE} bytes of UTF-8. `env` is used for
 * `-expandEnv` (default `process.env`).
 *
 * @throws SpireEdgeError `ERR_CONFIG_NOT_FOUND` (says to use -config), `ERR_CONFIG_READ`,
 * `ERR_CONFIG_INVALID`.
 */
export async function loadAgentConfigFile(
  path: string | undefined,
  flags: AgentFlags = {},
  env: Environment = process.env,
  options: LoadAgentConfigFileOptions = {},
): Promise<AgentConfig> {
  const file = path ?? flags.config ?? DEFAULT_AGENT_CONFIG_PATH;
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
      { cause: err },
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
  const config = loadAgentConfig({
    text,
    filename: file,
    flags,
    env,
    ...(options.registry === undefined ? {} : { registry: options.registry }),
  });
  return resolveJoinTokenFile(config);
}
