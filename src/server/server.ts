/**
 * `spire-server run`: wires the configuration to the running server — datastore, key manager,
 * upstream authority, CA manager, the admin API on the private Unix socket, the agent API on
 * TCP with mutual TLS, health endpoints, Prometheus metrics and housekeeping — and tears it all
 * down again on SIGINT/SIGTERM (or an abort signal in tests).
 *
 * The services see only {@link ServerContext}; this module is the one place that knows the
 * concrete implementations.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Clock, every, systemClock } from '../common/clock.js';
import { describeError, SpireEdgeError } from '../common/errors.js';
import { listenHttp } from '../common/http-listener.js';
import { createConfiguredLogger, type Logger } from '../common/log.js';
import { looksLikePem } from '../common/pem.js';
import { cryptoRandom, type RandomSource } from '../common/random.js';
import { openDiskKeyManager } from '../hsm/disk.js';
import type { KeyManager } from '../hsm/key-manager.js';
import { MemoryKeyManager } from '../hsm/memory.js';
import {
  pkcs11KeyManagerSettingsFromPluginData,
  pkcs11UpstreamAuthoritySettingsFromPluginData,
} from '../hsm/pkcs11/config.js';
import { openPkcs11KeyManager } from '../hsm/pkcs11/key-manager.js';
import { openPkcs11UpstreamAuthority } from '../hsm/pkcs11/upstream-authority.js';
import { parseCertificates } from '../spiffe/x509-cert.js';
import { EkCaPool } from '../tpm/ek-chain.js';
import { type AdminServer, startAdminServer } from './api/admin/admin-server.js';
import { type AgentServer, startAgentServer } from './api/agent/agent-server.js';
import { createEnrollmentServices, type EnrollmentTpmSettings } from './api/enrollment/index.js';
import type { ServerNodeAttestor } from './attestation/node-attestor.js';
import { openPolicyDirectory, type PolicyDirectory } from './attestation/policy-directory.js';
import { createTpmAttestor, type TpmClockRecord } from './attestation/tpm.js';
import { createX509PopAttestor } from './attestation/x509pop.js';
import type { JournalStore } from './ca/journal.js';
import { CaManager } from './ca/manager.js';
import type { ServerCa } from './ca/server-ca.js';
import type { UpstreamAuthority } from './ca/upstream-authority.js';
import { openDiskUpstreamAuthority } from './ca/upstream-disk.js';
import {
  loadServerConfigFile,
  type ServerConfig,
  type ServerFlags,
  type TpmNodeAttestorData,
} from './config.js';
import type { ServerContext } from './context.js';
import { openDataStore } from './datastore/index.js';
import type { DataStore } from './datastore/types.js';
import { createPrometheusMetrics, instrumentDataStore, type PrometheusMetrics } from './metrics.js';

/** The standard streams and environment of a CLI invocation. */
export interface ServerIo {
  readonly stdout: { write(chunk: string): unknown };
  readonly stderr: { write(chunk: string): unknown };
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** Input of {@link runServer} and {@link validateServerConfig}. */
export interface RunServerInput {
  readonly flags: ServerFlags;
  /** SPIRE's `-logSourceLocation`; accepted for compatibility, source locations are not logged. */
  readonly logSourceLocation?: boolean;
  readonly io: ServerIo;
  /** Stops the server when aborted (tests); SIGINT and SIGTERM always do. */
  readonly signal?: AbortSignal;
  /** Called once the server serves (tests, the quickstart). */
  readonly onReady?: (server: RunningServer) => void;
  readonly clock?: Clock;
  readonly random?: RandomSource;
}

/** A running server, as {@link startServer} returns it. */
export interface RunningServer {
  readonly config: ServerConfig;
  readonly context: ServerContext;
  readonly caManager: CaManager;
  readonly adminServer: AdminServer;
  readonly agentServer: AgentServer;
  /** The agent API address actually bound (bind_port 0 picks a free port). */
  readonly agentApiAddress: { readonly host: string; readonly port: number };
  /** The health listener's address, when enabled. */
  readonly healthAddress?: { readonly host: string; readonly port: number };
  /** The Prometheus listener's address, when configured. */
  readonly metricsAddress?: { readonly host: string; readonly port: number };
  /** Whether the server is ready (datastore answers, CA active, keys usable). */
  ready(): Promise<boolean>;
  close(): Promise<void>;
}

/** How often the stored trust bundle is re-read (HA: another server's new roots). */
const BUNDLE_REFRESH_MS = 5_000;
/** How often expired join tokens, old events and expired authorities are pruned. */
const HOUSEKEEPING_MS = 60_000;
/** Events older than this are pruned (caches poll every second; SPIRE keeps them a while). */
const EVENT_RETENTION_SECONDS = 3_600;
/** Stored authorities that expired longer ago than this are pruned from the stored bundle. */
const BUNDLE_PRUNE_MARGIN_SECONDS = 24 * 3_600;

/**
 * Loads and checks the configuration as `run` would, including the files that plugins name,
 * without opening the datastore or starting anything.
 *
 * @throws SpireEdgeError `ERR_CONFIG_*` naming the problem.
 */
export async function validateServerConfig(input: RunServerInput): Promise<ServerConfig> {
  const config = await loadServerConfigFile(input.flags.config, input.flags, input.io.env);
  for (const na of config.plugins.nodeAttestors) {
    if (na.name === 'x509pop') await loadX509PopRoots(na.data as X509PopData);
    if (na.name === 'tpm') await loadTpmEkCaPool(na.data as TpmNodeAttestorData);
  }
  const ua = config.plugins.upstreamAuthority;
  if (ua !== undefined && ua.name === 'disk') {
    const d = ua.data as DiskUpstreamData;
    for (const p of [d.cert_file_path, d.key_file_path, d.bundle_file_path]) {
      if (p !== undefined) await readConfiguredFile(p, `UpstreamAuthority "disk"`);
    }
  }
  return config;
}

/**
 * Runs the server until SIGINT/SIGTERM (or `input.signal`), then stops it cleanly.
 * Resolves to the exit code: 0 after a clean stop.
 */
export async function runServer(input: RunServerInput): Promise<number> {
  const config = await validateServerConfig(input);
  const server = await startServer(config, input);
  input.onReady?.(server);
  await new Promise<void>((resolveStop) => {
    const stop = (): void => resolveStop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (input.signal !== undefined) {
      if (input.signal.aborted) stop();
      else input.signal.addEventListener('abort', stop, { once: true });
    }
  });
  server.context.log.info('Stopping server');
  await server.close();
  return 0;
}

/** Starts every part of the server from a validated configuration. */
export async function startServer(
  config: ServerConfig,
  options: Pick<RunServerInput, 'io' | 'clock' | 'random'>,
): Promise<RunningServer> {
  const clock = options.clock ?? systemClock;
  const random = options.random ?? cryptoRandom;
  const s = config.server;
  const log = createConfiguredLogger(config.server, options.io.stderr);
  for (const w of config.warnings) log.warn(w);
  for (const d of config.plugins.disabled)
    log.info('Plugin disabled', { type: d.type, name: d.name });

  const closers: Array<() => Promise<void> | void> = [];
  const closeAll = async (): Promise<void> => {
    for (const c of closers.splice(0).reverse()) {
      try {
        await c();
      } catch (err) {
        log.warn('Error while stopping', { error: describeError(err) });
      }
    }
  };

  try {
    await mkdir(s.dataDir, { recursive: true, mode: 0o700 });
    const metrics = createPrometheusMetrics();

    const rawStore = await openDataStore({
      databaseType: config.plugins.dataStore.data.database_type as 'sqlite3' | 'postgres',
      connectionString: config.plugins.dataStore.data.connection_string,
      clock,
      random,
    });
    closers.push(() => rawStore.close());
    const dataStore = instrumentDataStore(rawStore, metrics);
    log.info('Datastore open', {
      database_type: rawStore.databaseType,
      schema_version: await rawStore.schemaVersion(),
    });

    const keyManager = await openKeyManager(config, options.io.env, clock);
    closers.push(() => keyManager.close());
    const upstream = await openUpstreamAuthority(config, options.io.env, clock, random);
    if (upstream !== undefined) closers.push(() => upstream.close());

    const serverId = await loadServerId(s.dataDir);
    const tdName = s.trustDomain.name;
    const caManager = await CaManager.start({
      trustDomain: s.trustDomain,
      keyManager,
      journalStore: dataStoreJournal(dataStore, `server/${serverId}`),
      ...(upstream === undefined ? {} : { upstreamAuthority: upstream }),
      caTtlSeconds: s.caTtlMs / 1000,
      caKeyType: s.caKeyType,
      jwtKeyType: s.jwtKeyType,
      caSubject: {
        country: [...s.caSubject.country],
        organization: [...s.caSubject.organization],
        ...(s.caSubject.commonName === '' ? {} : { commonName: s.caSubject.commonName }),
      },
      defaultX509SvidTtlSeconds: s.defaultX509SvidTtlMs / 1000,
      defaultJwtSvidTtlSeconds: s.defaultJwtSvidTtlMs / 1000,
      ...(s.jwtIssuer === undefined ? {} : { jwtIssuer: s.jwtIssuer }),
      clock,
      random,
      onBundleChange: async (bundle) => {
        // Append (never replace): in HA each server contributes its own authorities.
        await dataStore.appendBundle({
          trustDomain: tdName,
          x509Authorities: bundle.x509Authorities.map((a) => ({ certificateDer: a.certificate })),
          jwtAuthorities: bundle.jwtAuthorities.map((k) => ({
            keyId: k.keyId,
            publicKeyDer: k.publicKeySpki,
            notAfter: Math.floor(k.notAfter.getTime() / 1000),
          })),
        });
      },
      onEvent: (e) => {
        if (e.type === 'x509-ca-activated') metrics.caRotation('x509');
        if (e.type === 'jwt-key-activated') metrics.caRotation('jwt');
        log.info('CA event', { ...e, subsystem_name: 'ca_manager' });
      },
    });
    closers.push(() => caManager.close());

    const trustBundle = new StoredTrustBundle(dataStore, tdName, caManager.ca, log);
    await trustBundle.refresh();
    closers.push(trustBundle.startRefreshing(clock, BUNDLE_REFRESH_MS));

    const context: ServerContext = {
      trustDomain: s.trustDomain,
      dataStore,
      ca: trustBundle.ca,
      clock,
      random,
      log,
      metrics,
      defaultX509SvidTtl: s.defaultX509SvidTtlMs / 1000,
      defaultJwtSvidTtl: s.defaultJwtSvidTtlMs / 1000,
      agentTtl: s.agentTtlMs / 1000,
    };

    const ready = async (): Promise<boolean> => {
      try {
        await rawStore.schemaVersion();
      } catch {
        return false;
      }
      const st = caManager.status();
      if (st.x509.current === undefined || st.jwt.current === undefined) return false;
      // An HSM that stopped answering makes the server not ready (it never falls back to a
      // software key); it becomes ready again when the token answers.
      for (const part of [keyManager, upstream]) {
        const health = (part as { health?: () => Promise<{ ok: boolean }> } | undefined)?.health;
        if (health !== undefined && !(await health.call(part)).ok) return false;
      }
      return true;
    };

    const enrollmentTpm = await enrollmentTpmSettings(config);
    const enrollment = createEnrollmentServices({
      context,
      ...(enrollmentTpm === undefined ? {} : { tpm: enrollmentTpm }),
    });
    const adminServer = await startAdminServer({
      context,
      socketPath: resolve(s.socketPath),
      ready,
      extraRoutes: enrollment.registerAdmin,
    });
    closers.push(() => adminServer.close());

    // The EK CA file is read once, for the tpm attestor and device enrollment alike.
    const attestors = await createNodeAttestors(config, context, enrollmentTpm?.ekCaPool);
    const agentServer = await startAgentServer({
      context,
      host: s.bindAddress,
      port: s.bindPort,
      attestors,
      openServices: [enrollment.agentApi],
    });
    closers.push(() => agentServer.close());

    closers.push(every(clock, HOUSEKEEPING_MS, () => houseKeep(context)));

    let healthAddress: { host: string; port: number } | undefined;
    if (config.healthChecks.listenerEnabled) {
      const h = config.healthChecks;
      const srv = await listenHttp(h.bindAddress, h.bindPort, async (path) => {
        if (path === h.livePath) return { status: 200, body: { live: true } };
        if (path === h.readyPath) {
          const ok = await ready();
          return { status: ok ? 200 : 500, body: { ready: ok } };
        }
        return undefined;
      });
      healthAddress = srv.address;
      closers.push(() => srv.close());
    }

    let metricsAddress: { host: string; port: number } | undefined;
    const prom = config.telemetry.prometheus;
    if (prom !== undefined) {
      const srv = await listenHttp(prom.host, prom.port, async (path) =>
        path === '/metrics'
          ? {
              status: 200,
              text: await metrics.registry.metrics(),
              type: metrics.registry.contentType,
            }
          : undefined,
      );
      metricsAddress = srv.address;
      closers.push(() => srv.close());
    }

    log.info('Starting Server APIs', {
      address: `${agentServer.address.host}:${agentServer.address.port}`,
      socket_path: adminServer.socketPath,
      trust_domain: tdName,
      data_dir: s.dataDir,
    });

    let closing: Promise<void> | undefined;
    return {
      config,
      context,
      caManager,
      adminServer,
      agentServer,
      agentApiAddress: agentServer.address,
      ...(healthAddress === undefined ? {} : { healthAddress }),
      ...(metricsAddress === undefined ? {} : { metricsAddress }),
      ready,
      close: () => {
        closing ??= closeAll();
        return closing;
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Pieces

type X509PopData = {
  ca_bundle_path?: string;
  ca_bundle_paths?: readonly string[];
  agent_path_template?: string;
  max_intermediates?: number;
  max_rsa_key_size?: number;
};
type DiskUpstreamData = {
  cert_file_path: string;
  key_file_path: string;
  bundle_file_path?: string;
};

async function readConfiguredFile(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new SpireEdgeError(
      'ERR_CONFIG_INVALID',
      `${what}: cannot read ${path}: ${describeError(err)}`,
      { cause: err },
    );
  }
}

async function loadX509PopRoots(data: X509PopData): Promise<Uint8Array[]> {
  const paths =
    data.ca_bundle_paths ?? (data.ca_bundle_path === undefined ? [] : [data.ca_bundle_path]);
  const roots: Uint8Array[] = [];
  for (const p of paths) {
    const bytes = await readConfiguredFile(p, 'NodeAttestor "x509pop"');
    try {
      // SPIRE's ca_bundle_path is PEM; DER files are accepted too.
      const data = looksLikePem(bytes) ? bytes.toString('utf8') : new Uint8Array(bytes);
      roots.push(...parseCertificates(data).map((c) => c.der));
    } catch (err) {
      throw new SpireEdgeError(
        'ERR_CONFIG_INVALID',
        `NodeAttestor "x509pop": ${p} is not a PEM certificate bundle: ${describeError(err)}`,
        { cause: err },
      );
    }
  }
  if (roots.length === 0) {
    throw new SpireEdgeError(
      'ERR_CONFIG_INVALID',
      'NodeAttestor "x509pop": the CA bundle holds no certificates',
    );
  }
  return roots;
}

async function openKeyManager(
  config: ServerConfig,
  env: Readonly<Record<string, string | undefined>>,
  clock: Clock,
): Promise<KeyManager> {
  const km = config.plugins.keyManager;
  switch (km.name) {
    case 'memory':
      return new MemoryKeyManager();
    case 'disk':
      return openDiskKeyManager({ keysPath: (km.data as { keys_path: string }).keys_path });
    case 'pkcs11':
      return openPkcs11KeyManager({
        ...pkcs11KeyManagerSettingsFromPluginData(definedOnly(km.data)),
        env,
        clock,
      });
    default:
      throw new SpireEdgeError('ERR_CONFIG_INVALID', `KeyManager "${km.name}" is not available`);
  }
}

async function openUpstreamAuthority(
  config: ServerConfig,
  env: Readonly<Record<string, string | undefined>>,
  clock: Clock,
  random: RandomSource,
): Promise<UpstreamAuthority | undefined> {
  const ua = config.plugins.upstreamAuthority;
  if (ua === undefined) return undefined;
  if (ua.name === 'pkcs11') {
    return openPkcs11UpstreamAuthority({
      ...pkcs11UpstreamAuthoritySettingsFromPluginData(definedOnly(ua.data)),
      env,
      clock,
      random,
    });
  }
  if (ua.name !== 'disk') {
    throw new SpireEdgeError(
      'ERR_CONFIG_INVALID',
      `UpstreamAuthority "${ua.name}" is not available`,
    );
  }
  const d = ua.data as DiskUpstreamData;
  return openDiskUpstreamAuthority({
    certFilePath: d.cert_file_path,
    keyFilePath: d.key_file_path,
    ...(d.bundle_file_path === undefined ? {} : { bundleFilePath: d.bundle_file_path }),
    clock,
    random,
  });
}

async function createNodeAttestors(
  config: ServerConfig,
  context: ServerContext,
  tpmEkCaPool: EkCaPool | undefined,
): Promise<ServerNodeAttestor[]> {
  const out: ServerNodeAttestor[] = [];
  for (const na of config.plugins.nodeAttestors) {
    if (na.name === 'join_token') continue; // built into the agent API, as in SPIRE
    if (na.name === 'x509pop') {
      const d = na.data as X509PopData;
      out.push(
        createX509PopAttestor({
          trustDomain: context.trustDomain,
          caBundle: await loadX509PopRoots(d),
          clock: context.clock,
          random: context.random,
          ...(d.agent_path_template === undefined
            ? {}
            : { agentPathTemplate: d.agent_path_template }),
          ...(d.max_intermediates === undefined ? {} : { maxIntermediates: d.max_intermediates }),
          ...(d.max_rsa_key_size === undefined ? {} : { maxRsaKeySize: d.max_rsa_key_size }),
        }),
      );
      continue;
    }
    if (na.name === 'tpm') {
      out.push(
        await createConfiguredTpmAttestor(
          na.data as TpmNodeAttestorData,
          tpmEkCaPool,
          context,
          config.server.dataDir,
        ),
      );
      continue;
    }
    throw new SpireEdgeError('ERR_CONFIG_INVALID', `NodeAttestor "${na.name}" is not available`);
  }
  return out;
}

/**
 * `ek_ca_path`: one PEM (or DER) file with the EK manufacturer CAs; self-signed certificates
 * are the roots, the others intermediates.
 */
async function loadTpmEkCaPool(data: TpmNodeAttestorData): Promise<EkCaPool | undefined> {
  if (data.ek_ca_path === undefined) return undefined;
  const what = 'NodeAttestor "tpm"';
  const bytes = await readConfiguredFile(data.ek_ca_path, what);
  let certs: ReturnType<typeof parseCertificates>;
  try {
    certs = parseCertificates(looksLikePem(bytes) ? bytes.toString('utf8') : new Uint8Array(bytes));
  } catch (err) {
    throw new SpireEdgeError(
      'ERR_CONFIG_INVALID',
      `${what}: ${data.ek_ca_path} is not a PEM certificate bundle: ${describeError(err)}`,
      { cause: err },
    );
  }
  const selfSigned = (c: (typeof certs)[number]) =>
    Buffer.from(c.issuerDer).equals(Buffer.from(c.subjectDer));
  const roots = certs.filter(selfSigned);
  if (roots.length === 0) {
    throw new SpireEdgeError(
      'ERR_CONFIG_INVALID',
      `${what}: ${data.ek_ca_path} holds no self-signed root certificate`,
    );
  }
  return EkCaPool.from({ roots, intermediates: certs.filter((c) => !selfSigned(c)) });
}

function tpmClockRecordOf(evidence: string): TpmClockRecord | undefined {
  try {
    const c = (JSON.parse(evidence) as { clockInfo?: Record<string, unknown> }).clockInfo;
    if (
      c !== undefined &&
      typeof c.resetCount === 'number' &&
      typeof c.restartCount === 'number' &&
      typeof c.clock === 'string' &&
      typeof c.safe === 'boolean'
    ) {
      return {
        resetCount: c.resetCount,
        restartCount: c.restartCount,
        clock: c.clock,
        safe: c.safe,
      };
    }
  } catch {
    // Not JSON: no previous clock state.
  }
  return undefined;
}

/** The tpm attestor's settings that device enrollment checks EKs with; undefined without one. */
async function enrollmentTpmSettings(
  config: ServerConfig,
): Promise<EnrollmentTpmSettings | undefined> {
  const na = config.plugins.nodeAttestors.find((a) => a.name === 'tpm');
  if (na === undefined) return undefined;
  const d = na.data as TpmNodeAttestorData;
  const pool = await loadTpmEkCaPool(d);
  return {
    requireEkCert: d.require_ek_cert,
    allowSha1: d.allow_sha1,
    ...(pool === undefined ? {} : { ekCaPool: pool }),
  };
}

async function createConfiguredTpmAttestor(
  d: TpmNodeAttestorData,
  pool: EkCaPool | undefined,
  context: ServerContext,
  dataDir: string,
): Promise<ServerNodeAttestor> {
  const ds = context.dataStore;
  const serverId = `${context.trustDomain.idString()}/spire/server`;
  let policies: PolicyDirectory;
  try {
    policies = await openPolicyDirectory({
      path: d.firmware_policies_path ?? join(dataDir, DEFAULT_POLICY_DIRNAME),
      allowSha1: d.allow_sha1,
      clock: context.clock,
      log: context.log,
    });
  } catch (err) {
    throw new SpireEdgeError('ERR_CONFIG_INVALID', `NodeAttestor "tpm": ${describeError(err)}`, {
      cause: err,
    });
  }
  try {
    return createTpmAttestor({
      trustDomain: context.trustDomain,
      clock: context.clock,
      random: context.random,
      ...(pool === undefined ? {} : { ekCaPool: pool }),
      requireEkCert: d.require_ek_cert,
      requireEnrollment: d.require_enrollment,
      allowSha1: d.allow_sha1,
      requireEventLog: d.require_event_log,
      pcrBanks: d.pcr_banks as ('sha1' | 'sha256' | 'sha384' | 'sha512')[],
      pcrIndices: d.pcr_indices.map(Number),
      // Enrolled = a node entry with the EK's pub_hash selector, parented to the server.
      isEnrolled: async (hash) => {
        const page = await ds.listEntries({
          byParentId: serverId,
          bySelectors: {
            selectors: [{ type: 'tpm', value: `pub_hash:${hash}` }],
            match: 'superset',
          },
          pagination: { pageSize: 1 },
        });
        return page.items.length > 0;
      },
      lastClockInfo: async (agentId) => {
        const node = await ds.getAttestedNode(agentId);
        return node === undefined || node.attestationDataType !== 'tpm'
          ? undefined
          : tpmClockRecordOf(node.evidence);
      },
      policies: () => policies.current(),
      onDeviceFailure: (agentId, reason) => recordAttestationFailure(context, agentId, reason),
    });
  } catch (err) {
    throw new SpireEdgeError('ERR_CONFIG_INVALID', `NodeAttestor "tpm": ${describeError(err)}`, {
      cause: err,
    });
  }
}

/** The firmware policy directory under data_dir when `firmware_policies_path` is not set. */
export const DEFAULT_POLICY_DIRNAME = 'firmware-policies';

/**
 * Records why a known device failed a re-attestation: the node's evidence keeps its last
 * successful attestation and gains `lastFailure { at, reason }` (shown by `agent show`).
 * A device never attested before has no node to record it on: the log line is all.
 */
async function recordAttestationFailure(
  context: ServerContext,
  agentId: string,
  reason: string,
): Promise<void> {
  context.log.warn('tpm attestation failed after credential activation', {
    agent_id: agentId,
    reason,
  });
  const node = await context.dataStore.getAttestedNode(agentId);
  if (node === undefined) return;
  let evidence: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(node.evidence) as unknown;
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
      evidence = parsed as Record<string, unknown>;
    }
  } catch {
    // No evidence yet: start one.
  }
  evidence.lastFailure = { at: new Date(context.clock.nowMs()).toISOString(), reason };
  await context.dataStore.updateAttestedNode({
    spiffeId: agentId,
    set: { evidence: JSON.stringify(evidence) },
    mask: ['evidence'],
  });
}

/** plugin_data without the keys the schema left undefined. */
function definedOnly(data: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data as Record<string, unknown>))
    if (v !== undefined) out[k] = v;
  return out;
}

/** A stable identity for this server's CA journal, kept in data_dir (one per replica). */
async function loadServerId(dataDir: string): Promise<string> {
  const path = join(dataDir, 'server-id');
  try {
    const id = (await readFile(path, 'utf8')).trim();
    if (/^[0-9a-f-]{36}$/.test(id)) return id;
    throw new SpireEdgeError('ERR_SERVER_STATE_INVALID', `${path} does not hold a server id`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = randomUUID();
  await writeFile(path, `${id}\n`, { mode: 0o600, flag: 'wx' });
  return id;
}

/** The CA journal kept in the datastore (so HA replicas on PostgreSQL each keep their own). */
function dataStoreJournal(dataStore: DataStore, key: string): JournalStore {
  return {
    load: () => dataStore.loadCaJournal(key),
    save: (bytes) => dataStore.saveCaJournal(key, bytes),
  };
}

/**
 * The trust bundle as stored (every replica's roots), merged with this server's own CA
 * authorities. Agents authenticate against it, so an agent attested by one replica is accepted
 * by another.
 */
class StoredTrustBundle {
  #x509: Uint8Array[] = [];
  readonly ca: ServerCa;

  constructor(
    private readonly dataStore: DataStore,
    private readonly trustDomain: string,
    local: ServerCa,
    private readonly log: Logger,
  ) {
    const merged = (): Uint8Array[] => {
      const out = [...this.#x509];
      for (const der of local.getX509Authorities()) {
        if (!out.some((d) => Buffer.compare(d, der) === 0)) out.push(der);
      }
      return out;
    };
    this.ca = {
      signX509Svid: (p) => local.signX509Svid(p),
      signX509SvidFromCsr: (csr, p) => local.signX509SvidFromCsr(csr, p),
      signJwtSvid: (p) => local.signJwtSvid(p),
      getX509Authorities: merged,
      getJwtAuthorities: () => local.getJwtAuthorities(),
      getCurrentX509Ca: () => local.getCurrentX509Ca(),
    };
  }

  async refresh(): Promise<void> {
    const b = await this.dataStore.getBundle(this.trustDomain);
    if (b !== undefined) this.#x509 = b.x509Authorities.map((a) => a.certificateDer);
  }

  startRefreshing(clock: Clock, everyMs: number): () => void {
    return every(
      clock,
      everyMs,
      () => this.refresh(),
      (err) => this.log.warn('Could not refresh the trust bundle', { error: describeError(err) }),
    );
  }
}

async function houseKeep(context: ServerContext): Promise<void> {
  const now = Math.floor(context.clock.nowMs() / 1000);
  const ds = context.dataStore;
  const jobs: Array<[string, () => Promise<unknown>]> = [
    ['join tokens', () => ds.pruneJoinTokens(now)],
    ['provisioning tokens', () => ds.pruneProvisioningTokens(now)],
    ['entry events', () => ds.pruneEntryEvents(EVENT_RETENTION_SECONDS)],
    ['node events', () => ds.pruneAttestedNodeEvents(EVENT_RETENTION_SECONDS)],
    ['registration entries', () => ds.pruneEntries(now)],
    ['bundle', () => ds.pruneBundle(context.trustDomain.name, now - BUNDLE_PRUNE_MARGIN_SECONDS)],
  ];
  for (const [what, job] of jobs) {
    try {
      await job();
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_DATASTORE_CONFLICT') continue;
      context.log.warn(`Could not prune expired ${what}`, { error: describeError(err) });
    }
  }
}

export type { PrometheusMetrics };
