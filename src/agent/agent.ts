/**
 * `spire-agent run`: wires the configuration to the running agent and tears it down again on
 * SIGINT/SIGTERM (or an abort signal in tests).
 *
 * Start order, chosen so that an agent restarted while the server is down serves workloads
 * within milliseconds:
 * 1. the store under `data_dir` (a corrupt, foreign, newer or unsealable store is moved aside
 *    and logged loudly, then the agent starts fresh and re-attests — never a crash loop);
 * 2. the Workload API on `socket_path`, serving from the store's snapshot at once when it is
 *    warm (`Unavailable` until the first sync otherwise);
 * 3. trust: the stored bundle first; else `trust_bundle_path` (read now: a bad file is a
 *    start-up error), `trust_bundle_url` or `insecure_bootstrap` (with a loud warning), fetched
 *    in the background with retries;
 * 4. the node identity (stored agent SVID, or attestation) and the sync loop, in the background
 *    with backoff — an unreachable server never blocks the start;
 * 5. the health listener (`/live`, `/ready`) and Prometheus, when configured.
 *
 * The managers (src/agent/manager) do the work; this module is the one place that knows the
 * concrete implementations. See docs/agent.md.
 */
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Clock, systemClock } from '../common/clock.js';
import { describeError, type SpireEdgeError } from '../common/errors.js';
import { listenHttp } from '../common/http-listener.js';
import { createConfiguredLogger, type Logger } from '../common/log.js';
import type { RandomSource } from '../common/random.js';
import { cryptoRandom } from '../common/random.js';
import { createJoinTokenAttestorClient } from './attestation/join-token.js';
import type { AgentNodeAttestor } from './attestation/node-attestor.js';
import type { TpmAgentPlugin } from './attestation/tpm.js';
import {
  type AgentConfig,
  type AgentFlags,
  type AgentTpmData,
  type AgentX509popData,
  type DockerWorkloadAttestorData,
  loadAgentConfigFile,
  type UnixWorkloadAttestorData,
} from './config.js';
import { SvidCache } from './manager/cache.js';
import { isWarmSnapshot, StoreIdentitySource } from './manager/identity-source.js';
import { createLazyAgentServerClient } from './manager/lazy-server-client.js';
import { ManagedStore } from './manager/managed-store.js';
import { DeferredAgentMetrics } from './manager/metrics.js';
import type { NodeIdentityManager } from './manager/node-identity.js';
import { releaseFreedMemory } from './manager/release-memory.js';
import type { AgentServerClient } from './manager/server-client.js';
import type { SyncManager } from './manager/sync.js';
import type { AgentStore } from './storage/agent-store.js';
import { openAgentStoreWithRecovery } from './storage/quarantine.js';
import type { BundleRecord } from './storage/records.js';
import type { Sealer } from './storage/sealer.js';
import type { AgentStoreErrorCode } from './storage/store-errors.js';
import { startWorkloadApiServer, type WorkloadApiServer } from './workload-api/server.js';
import { combineWorkloadAttestors } from './workload-attestors/combine.js';
import { createDockerWorkloadAttestor } from './workload-attestors/docker.js';
import { createSystemdWorkloadAttestor } from './workload-attestors/systemd.js';
import { createUnixWorkloadAttestor } from './workload-attestors/unix.js';
import type { WorkloadAttestor } from './workload-attestors/workload-attestor.js';

/** The standard streams and environment of a CLI invocation. */
export interface AgentIo {
  readonly stdout: { write(chunk: string): unknown };
  readonly stderr: { write(chunk: string): unknown };
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** Options of {@link startAgent}. */
export interface StartAgentOptions {
  readonly io: AgentIo;
  readonly clock?: Clock;
  readonly random?: RandomSource;
  /**
   * Seals keys and tokens at rest instead of the configured sealer (tests). By default
   * `NodeAttestor "tpm"` seals them with the TPM (`seal_secrets`); other attestors do not seal.
   */
  readonly sealer?: Sealer;
  /** Replaces the configured workload attestors (tests). */
  readonly workloadAttestor?: WorkloadAttestor;
  /** Replaces the logger built from the configuration (tests). */
  readonly log?: Logger;
}

/** Input of {@link runAgent}. */
export interface RunAgentInput {
  readonly flags: AgentFlags;
  readonly io: AgentIo;
  /** Stops the agent when aborted (tests); SIGINT and SIGTERM always do. */
  readonly signal?: AbortSignal;
  /** Called once the agent runs (tests, the quickstart). */
  readonly onReady?: (agent: RunningAgent) => void;
  readonly clock?: Clock;
  readonly random?: RandomSource;
}

/** A running agent, as {@link startAgent} returns it. */
export interface RunningAgent {
  readonly config: AgentConfig;
  readonly log: Logger;
  readonly store: AgentStore;
  readonly managedStore: ManagedStore;
  readonly source: StoreIdentitySource;
  readonly workloadApi: WorkloadApiServer;
  readonly nodeIdentity: NodeIdentityManager;
  readonly sync: SyncManager;
  readonly cache: SvidCache;
  /** Set when the previous store was unusable and moved aside at start. */
  readonly quarantined?: {
    readonly path: string;
    readonly error: SpireEdgeError<AgentStoreErrorCode>;
  };
  /** Milliseconds from the call of {@link startAgent} to the Workload API listening. */
  readonly startedInMs: number;
  /** The health listener's address, when enabled. */
  readonly healthAddress?: { readonly host: string; readonly port: number };
  /** The Prometheus listener's address, when configured. */
  readonly metricsAddress?: { readonly host: string; readonly port: number };
  /**
   * Ready: the Workload API can answer (warm store, or synced) and the node identity has not
   * stopped (evicted, or a spent join token).
   */
  ready(): boolean;
  close(): Promise<void>;
}

function createWorkloadAttestor(config: AgentConfig, log: Logger): WorkloadAttestor {
  const attestors: WorkloadAttestor[] = config.plugins.workloadAttestors.map((p) => {
    switch (p.name) {
      case 'unix': {
        const d = p.data as UnixWorkloadAttestorData;
        return createUnixWorkloadAttestor({
          discoverWorkloadPath: d.discover_workload_path,
          workloadSizeLimit: d.workload_size_limit,
        });
      }
      case 'systemd':
        return createSystemdWorkloadAttestor();
      case 'docker': {
        const d = p.data as DockerWorkloadAttestorData;
        return createDockerWorkloadAttestor({
          dockerSocketPath: d.docker_socket_path,
          ...(d.docker_version === undefined ? {} : { dockerVersion: d.docker_version }),
        });
      }
      default:
        throw new TypeError(`WorkloadAttestor "${p.name}" has no implementation`);
    }
  });
  return combineWorkloadAttestors(attestors, {
    log: log.with({ subsystem_name: 'workload_attestor' }),
  });
}

/**
 * `NodeAttestor "tpm"`: the attestor, its AK store in the agent store and the store's TPM
 * sealer over one shared TPM access — built before the store opens (the sealer unseals the
 * store's data key while it opens). Built even when a join token wins the attestation: the TPM
 * still seals the store.
 */
async function createTpmPlugin(
  config: AgentConfig,
  log: Logger,
): Promise<TpmAgentPlugin | undefined> {
  const na = config.plugins.nodeAttestor;
  if (na.name !== 'tpm') return undefined;
  const d = na.data as AgentTpmData;
  if (!d.seal_secrets) {
    log.warn(
      'NodeAttestor "tpm": seal_secrets = false: the agent key, workload SVID keys and JWT-SVIDs are stored in the agent store unsealed, readable by anyone who can read data_dir',
      { data_dir: config.agent.dataDir },
    );
  }
  const { tpmAgentPluginFromConfig } = await import('./attestation/tpm.js');
  return tpmAgentPluginFromConfig({
    tcti: d.tcti,
    ekAlgorithm: d.ek_algorithm as 'rsa' | 'ecc-p256' | 'ecc-p384',
    ...(d.pcr_banks === undefined
      ? {}
      : { pcrBanks: d.pcr_banks as ('sha1' | 'sha256' | 'sha384' | 'sha512')[] }),
    ...(d.pcr_indices === undefined ? {} : { pcrIndices: d.pcr_indices.map(Number) }),
    dataDir: config.agent.dataDir,
    eventLogPath: d.event_log_path,
    onEventLogProblem: (message) => log.warn(message),
    sealSecrets: d.seal_secrets,
    ...(d.seal_pcrs === undefined ? {} : { sealPcrs: d.seal_pcrs.map(Number) }),
    onSealerOpen: (e) =>
      log.info('agent store secrets sealed by the TPM', {
        sealing: e.action,
        tpm_ms: Math.round(e.tpmMs),
        ...(e.pcrs === undefined ? {} : { seal_pcrs: e.pcrs.indices.join(',') }),
      }),
  });
}

/** The configured node attestor: a join token wins over the NodeAttestor plugin (SPIRE's rule). */
async function createNodeAttestor(
  config: AgentConfig,
  random: RandomSource,
  tpm: TpmAgentPlugin | undefined,
): Promise<AgentNodeAttestor | undefined> {
  if (config.agent.joinToken !== undefined)
    return createJoinTokenAttestorClient(config.agent.joinToken);
  const na = config.plugins.nodeAttestor;
  if (na.name === 'join_token') return undefined;
  if (na.name === 'x509pop') {
    const d = na.data as AgentX509popData;
    const { loadX509PopAttestorClient } = await import('./attestation/x509pop.js');
    return loadX509PopAttestorClient(
      {
        privateKeyPath: d.private_key_path,
        certificatePath: d.certificate_path,
        ...(d.intermediates_path === undefined ? {} : { intermediatesPath: d.intermediates_path }),
      },
      random,
    );
  }
  // The TPM is held per attestation; the AK blobs live in the store (device:tpm-ak).
  if (na.name === 'tpm' && tpm !== undefined) return tpm.attestor;
  throw new TypeError(`NodeAttestor "${na.name}" has no agent implementation`);
}

/** Starts every part of the agent from a validated configuration (see the module docs). */
export async function startAgent(
  config: AgentConfig,
  options: StartAgentOptions,
): Promise<RunningAgent> {
  const t0 = performance.now();
  const clock = options.clock ?? systemClock;
  const random = options.random ?? cryptoRandom;
  const a = config.agent;
  const td = a.trustDomain;
  const log = options.log ?? createConfiguredLogger(config.agent, options.io.stderr);
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
    // Plugins first: a bad x509pop key is a configuration error, before anything starts.
    const tpm = await createTpmPlugin(config, log);
    if (tpm !== undefined) closers.push(() => tpm.close());
    const attestor = await createNodeAttestor(config, random, tpm);
    const closeAttestor = (attestor as { close?: () => Promise<void> } | undefined)?.close;
    if (closeAttestor !== undefined) closers.push(() => closeAttestor());
    const workloadAttestor = options.workloadAttestor ?? createWorkloadAttestor(config, log);

    await mkdir(a.dataDir, { recursive: true, mode: 0o700 });
    const opened = await openAgentStoreWithRecovery({
      dataDir: a.dataDir,
      trustDomain: td,
      clock,
      random,
      ...(options.sealer !== undefined
        ? { sealer: options.sealer }
        : tpm?.createSealer === undefined
          ? {}
          : { createSealer: tpm.createSealer }),
      onQuarantine: ({ path, error }) =>
        log.error(
          'THE AGENT STORE COULD NOT BE USED AND WAS MOVED ASIDE: the agent starts fresh, attests again and resyncs with the server; workloads get SVIDs once the server has answered',
          { error_code: error.code, error: error.message, quarantined_path: path },
        ),
    });
    const store = opened.store;
    closers.push(() => store.close());
    tpm?.akStore.bind(store);
    const managed = new ManagedStore(store);
    closers.push(() => managed.settled());
    const snap = store.snapshot;
    const warm = isWarmSnapshot(snap);
    log.info('agent store opened', {
      data_dir: a.dataDir,
      store_id: store.storeId,
      entries: snap.entries.size,
      x509_svids: snap.x509Svids.size,
      warm,
      elapsed_ms: Math.round(performance.now() - t0),
    });

    // prom-client is loaded below, after the Workload API listens, and only for Prometheus
    const metrics = new DeferredAgentMetrics();
    const updateSizes = () => {
      const s = managed.snapshot;
      metrics.cacheSizes({
        entries: s.entries.size,
        x509Svids: s.x509Svids.size,
        jwtSvids: s.jwtSvids.size,
      });
    };
    updateSizes();
    closers.push(managed.onChange(updateSizes));

    // The identity manager is created below; the server client reads it lazily.
    let identity: NodeIdentityManager | undefined;
    const server: AgentServerClient = createLazyAgentServerClient({
      host: a.serverAddress,
      port: a.serverPort,
      trustDomain: td,
      credentials: () => {
        const c = identity?.current();
        return {
          bundle: managed.snapshot.bundle?.x509Authorities ?? [],
          ...(c === undefined
            ? {}
            : { svid: { certChain: c.certChain, privateKey: c.privateKey } }),
        };
      },
    });
    closers.push(() => server.close());

    const cache = new SvidCache({
      store: managed,
      server,
      trustDomain: td,
      clock,
      random,
      log: log.with({ subsystem_name: 'svid_cache' }),
      metrics,
      jwtCacheMaxSize: a.jwtSvidCacheMaxSize,
      x509CacheMaxSize: a.x509SvidCacheMaxSize,
      releaseMemory: releaseFreedMemory,
    });
    closers.push(() => cache.close());
    const source = new StoreIdentitySource({
      store: managed,
      jwt: cache,
      svids: cache,
      clock,
      readyAtStart: warm,
    });
    closers.push(() => source.close());

    const workloadApi = await startWorkloadApiServer({
      socketPath: resolve(a.socketPath),
      source,
      attestor: workloadAttestor,
      log: log.with({ subsystem_name: 'endpoints' }),
      clock,
      allowUnauthenticatedVerifiers: a.allowUnauthenticatedVerifiers,
      sds: a.sds,
    });
    closers.push(() => workloadApi.close());
    const startedInMs = performance.now() - t0;
    log.info('Starting Workload API', {
      socket_path: workloadApi.socketPath,
      ready: source.ready(),
      elapsed_ms: Math.round(startedInMs),
    });

    // Trust bootstrap, only when the store has no bundle (a synced bundle is newer).
    let bootstrapBundle: (() => Promise<BundleRecord>) | undefined;
    if (snap.bundle === undefined) {
      const src = a.trustBundle;
      const load = async () =>
        (await import('./manager/bootstrap.js')).loadBootstrapBundle(src, {
          trustDomain: td,
          server: { host: a.serverAddress, port: a.serverPort },
        });
      if (src.kind === 'path') {
        const b = await load();
        bootstrapBundle = async () => b;
      } else {
        bootstrapBundle = async () => {
          if (src.kind === 'insecure') {
            log.warn(
              'INSECURE BOOTSTRAP: trusting the bundle the server presents without authenticating it (insecure_bootstrap = true); use trust_bundle_path or trust_bundle_url outside testing',
              { server_address: a.serverAddress, server_port: a.serverPort },
            );
          }
          return load();
        };
      }
    }

    // Loaded only now, once the Workload API serves: a warm start does not wait for them.
    const [{ NodeIdentityManager }, { SyncManager }] = await Promise.all([
      import('./manager/node-identity.js'),
      import('./manager/sync.js'),
    ]);
    let sync: SyncManager | undefined;
    const single = attestor?.type === 'join_token';
    identity = new NodeIdentityManager({
      store: managed,
      server,
      trustDomain: td,
      ...(attestor === undefined ? {} : { attestor }),
      attestorSingleUse: single,
      attestorUsed:
        single &&
        snap.agent?.spiffeId === `${td.idString()}/spire/agent/join_token/${a.joinToken ?? ''}`,
      persistKey: config.plugins.keyManager.name !== 'memory',
      ...(bootstrapBundle === undefined ? {} : { bootstrapBundle }),
      clock,
      random,
      log: log.with({ subsystem_name: 'attestor' }),
      metrics,
      onChange: (c) => {
        if (c !== undefined) sync?.wake();
      },
    });
    const nodeIdentity = identity;
    closers.push(() => nodeIdentity.close());
    sync = new SyncManager({
      store: managed,
      server,
      identity: nodeIdentity,
      cache,
      trustDomain: td,
      intervalMs: a.syncIntervalMs,
      clock,
      random,
      log: log.with({ subsystem_name: 'manager' }),
      metrics,
      onSynced: () => source.markReady(),
    });
    const syncManager = sync;
    closers.push(() => syncManager.close());
    nodeIdentity.start();
    syncManager.start();

    const ready = (): boolean => source.ready() && nodeIdentity.state().status !== 'stopped';

    let healthAddress: { host: string; port: number } | undefined;
    if (config.healthChecks.listenerEnabled) {
      const h = config.healthChecks;
      const srv = await listenHttp(h.bindAddress, h.bindPort, (path) => {
        if (path === h.livePath) return { status: 200, body: { live: true } };
        if (path === h.readyPath) {
          const ok = ready();
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
      const { registry } = await metrics.load();
      const srv = await listenHttp(prom.host, prom.port, (path) =>
        path === '/metrics'
          ? registry.metrics().then((text) => ({ status: 200, text, type: registry.contentType }))
          : undefined,
      );
      metricsAddress = srv.address;
      closers.push(() => srv.close());
    }

    let closing: Promise<void> | undefined;
    return {
      config,
      log,
      store,
      managedStore: managed,
      source,
      workloadApi,
      nodeIdentity,
      sync: syncManager,
      cache,
      ...(opened.quarantined === undefined ? {} : { quarantined: opened.quarantined }),
      startedInMs,
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

/**
 * Runs the agent until SIGINT/SIGTERM (or `input.signal`), then stops it cleanly. Resolves to
 * the exit code: 0 after a clean stop.
 *
 * @throws SpireEdgeError `ERR_CONFIG_*` for the configuration, the store's open errors
 *   (`ERR_AGENT_STORE_LOCKED`, `ERR_AGENT_STORE_IO`), `ERR_AGENT_BOOTSTRAP_*` for an unusable
 *   `trust_bundle_path`, `ERR_X509POP_KEY_INVALID`, `ERR_GRPC_SOCKET_*`.
 */
export async function runAgent(input: RunAgentInput): Promise<number> {
  const config = await loadAgentConfigFile(input.flags.config, input.flags, input.io.env);
  const agent = await startAgent(config, {
    io: input.io,
    ...(input.clock === undefined ? {} : { clock: input.clock }),
    ...(input.random === undefined ? {} : { random: input.random }),
  });
  input.onReady?.(agent);
  await new Promise<void>((resolveStop) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolveStop();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (input.signal !== undefined) {
      if (input.signal.aborted) stop();
      else input.signal.addEventListener('abort', stop, { once: true });
    }
  });
  agent.log.info('Stopping agent');
  await agent.close();
  return 0;
}
