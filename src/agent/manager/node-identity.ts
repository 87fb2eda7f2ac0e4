/**
 * The agent's own identity (SPIRE's agent `attestor` + `svid rotator`): node attestation, the
 * agent SVID and its key persisted in the store, renewal at half-life, re-attestation without a
 * restart, and a clear error state when the agent cannot get an identity any more.
 *
 * Lifecycle:
 * - **Start**: a stored, unexpired agent SVID with its key is used at once (no server needed:
 *   an agent restarted during an outage keeps its identity). Otherwise the agent attests — after
 *   bootstrapping the trust bundle when the store has none.
 * - **Renewal** at half of the SVID's lifetime (lifetime.ts): RenewAgent with a new key; an
 *   agent the server marked `reattestable` attests again instead (SPIRE's rule, e.g. x509pop).
 * - **Rejection** ({@link NodeIdentityManager.reportRejection}, from any call the server refused
 *   with SPIRE's PermissionDenied reasons): evicted, banned, not active, expired or unknown to
 *   the server's CA → attest again when the attestor can (x509pop, or a join token not yet
 *   used); a `join_token` agent whose token is spent cannot: it stops with a coded error, and
 *   after an eviction clears its entries and cached SVIDs (the operator revoked it), while after
 *   a mere expiry it keeps serving cached workload SVIDs until they expire.
 * - **Failures** (server unreachable, overloaded): retried with exponential backoff and jitter
 *   (1 s doubling to 8 min by default). The current SVID stays in use until it expires.
 *
 * What it checks: every SVID the server issues (issued-svid.ts: chain to the bundle, ID under
 * `spiffe://<td>/spire/agent/`, the key it generated). What it trusts: the store.
 *
 * Errors (in {@link NodeIdentityState.error}): `ERR_AGENT_CANNOT_ATTEST` (no usable SVID and no
 * attestor that can attest), `ERR_AGENT_ATTESTATION_REFUSED` (a join token the server refused),
 * `ERR_AGENT_EVICTED`, `ERR_AGENT_SVID_EXPIRED`, `ERR_AGENT_NO_BUNDLE`, and the causes of
 * retried failures.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import { type Clock, systemClock } from '../../common/clock.js';
import { describeError, isSpireEdgeError, SpireEdgeError } from '../../common/errors.js';
import { type Logger, nullLogger } from '../../common/log.js';
import type { RandomSource } from '../../common/random.js';
import { cryptoRandom } from '../../common/random.js';
import type { TrustDomain } from '../../spiffe/id.js';
import { parseCertificate } from '../../spiffe/x509-cert.js';
import { createCsr } from '../attestation/csr.js';
import type { AgentNodeAttestor } from '../attestation/node-attestor.js';
import type { AgentIdentityRecord, BundleRecord } from '../storage/records.js';
import { Backoff } from './backoff.js';
import { checkIssuedX509Svid } from './issued-svid.js';
import { generateEcP256Key, type KeyGenerator, sameBytes, spkiOf } from './keys.js';
import { halfLifeAt } from './lifetime.js';
import type { ManagedStore } from './managed-store.js';
import { type AgentMetrics, nullAgentMetrics } from './metrics.js';
import { type AgentRejection, type AgentServerClient, agentRejection } from './server-client.js';

/** The agent's usable identity. */
export interface AgentCredentials {
  readonly spiffeId: string;
  /** Leaf first; DER. */
  readonly certChain: readonly Uint8Array[];
  readonly privateKey: KeyObject;
  readonly notBeforeMs: number;
  readonly expiresAtMs: number;
  /** The server lets this agent attest again instead of renewing. */
  readonly reattestable: boolean;
  readonly attestorType: string;
}

/** Where the node identity manager stands. */
export type NodeIdentityStatus =
  /** Not started yet. */
  | 'starting'
  /** Attesting (first time or again). */
  | 'attesting'
  /** Holds an unexpired agent SVID. */
  | 'ready'
  /** Has no usable SVID; retrying (see `error`, `retryAtMs`). */
  | 'retrying'
  /** Cannot get an identity without an operator (see `error`); cached workload SVIDs are still served. */
  | 'stopped'
  /** Closed. */
  | 'closed';

/** A snapshot of the manager's state. */
export interface NodeIdentityState {
  readonly status: NodeIdentityStatus;
  /** Why the last attempt failed (retrying), or why it stopped. */
  readonly error?: SpireEdgeError | Error;
  /** When the next attempt is planned, ms since the epoch. */
  readonly retryAtMs?: number;
  /** When the agent SVID will be renewed, ms since the epoch. */
  readonly renewAtMs?: number;
}

/** Options of {@link NodeIdentityManager}. */
export interface NodeIdentityOptions {
  readonly store: ManagedStore;
  readonly server: Pick<AgentServerClient, 'attestAgent' | 'renewAgent'>;
  readonly trustDomain: TrustDomain;
  /** The configured node attestor; absent when the agent cannot attest (no join token). */
  readonly attestor?: AgentNodeAttestor;
  /** The attestor works once (`join_token`): after one success it cannot attest again. */
  readonly attestorSingleUse?: boolean;
  /** The single-use attestor was already used for the stored identity. */
  readonly attestorUsed?: boolean;
  /** Keep the agent key in the store (KeyManager "disk"); default true. */
  readonly persistKey?: boolean;
  /** Fetches the bootstrap bundle when the store has none. */
  readonly bootstrapBundle?: () => Promise<BundleRecord>;
  readonly clock?: Clock;
  readonly random?: RandomSource;
  readonly log?: Logger;
  readonly metrics?: AgentMetrics;
  /** Retry delays; default 1 s doubling to 8 min. */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  readonly generateKey?: KeyGenerator;
  /** Called whenever the usable identity changes (attested, renewed, lost). */
  readonly onChange?: (credentials: AgentCredentials | undefined) => void;
}

/** Retry delays of attestation and renewal: 1 s doubling to 8 min. */
export const NODE_IDENTITY_BACKOFF = { initialMs: 1_000, maxMs: 8 * 60_000 } as const;

function coded(code: string, message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(code as `ERR_${string}`, message, cause === undefined ? {} : { cause });
}

const EVICTION: ReadonlySet<AgentRejection> = new Set(['not-attested', 'banned', 'not-active']);

/** Manages the agent's own SVID (see the module docs). */
export class NodeIdentityManager {
  readonly #o: NodeIdentityOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #metrics: AgentMetrics;
  readonly #backoff: Backoff;
  readonly #generateKey: KeyGenerator;
  readonly #persistKey: boolean;
  #creds: AgentCredentials | undefined;
  #attestorUsed: boolean;
  #status: NodeIdentityStatus = 'starting';
  #error: SpireEdgeError | Error | undefined;
  #retryAtMs: number | undefined;
  #renewAtMs: number | undefined;
  #cancelTimer: () => void = () => {};
  #busy = false;
  #pending: (() => Promise<void>) | undefined;
  /** Rejections acted on since the server last accepted this agent. */
  #rejections = 0;
  readonly #rejectionBackoff: Backoff;
  readonly #abort = new AbortController();
  readonly #idle = new Set<() => void>();

  constructor(options: NodeIdentityOptions) {
    if (typeof options?.store?.write !== 'function') throw new TypeError('store is required');
    if (typeof options.server?.attestAgent !== 'function')
      throw new TypeError('server is required');
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#log = options.log ?? nullLogger;
    this.#metrics = options.metrics ?? nullAgentMetrics;
    const random = options.random ?? cryptoRandom;
    const b = options.backoff ?? NODE_IDENTITY_BACKOFF;
    this.#backoff = new Backoff({ ...b, random });
    this.#rejectionBackoff = new Backoff({ ...b, random });
    this.#generateKey = options.generateKey ?? generateEcP256Key;
    this.#persistKey = options.persistKey ?? true;
    this.#attestorUsed = options.attestorUsed ?? false;
  }

  /** The agent SVID and key when they are unexpired. */
  current(): AgentCredentials | undefined {
    const c = this.#creds;
    return c !== undefined && c.expiresAtMs > this.#clock.nowMs() ? c : undefined;
  }

  /** The manager's state (for readiness, logs and tests). */
  state(): NodeIdentityState {
    return {
      status: this.#status === 'ready' && this.current() === undefined ? 'retrying' : this.#status,
      ...(this.#error === undefined ? {} : { error: this.#error }),
      ...(this.#retryAtMs === undefined ? {} : { retryAtMs: this.#retryAtMs }),
      ...(this.#renewAtMs === undefined ? {} : { renewAtMs: this.#renewAtMs }),
    };
  }

  /** True when the configured attestor can attest now. */
  canAttest(): boolean {
    return (
      this.#o.attestor !== undefined && !(this.#o.attestorSingleUse === true && this.#attestorUsed)
    );
  }

  /**
   * Loads the stored identity and plans what comes next (renewal, or attestation). Returns at
   * once; attestation runs in the background.
   */
  start(): void {
    if (this.#status !== 'starting') return;
    const loaded = this.#load(this.#o.store.snapshot.agent);
    if (loaded !== undefined && loaded.expiresAtMs > this.#clock.nowMs()) {
      this.#creds = loaded;
      this.#status = 'ready';
      this.#metrics.agentSvidExpiry(loaded.expiresAtMs);
      this.#log.info('using the stored agent SVID', {
        spiffe_id: loaded.spiffeId,
        expires_at: new Date(loaded.expiresAtMs),
      });
      this.#planRenewal();
      this.#o.onChange?.(loaded);
      return;
    }
    if (loaded !== undefined) {
      this.#log.warn('the stored agent SVID has expired', { spiffe_id: loaded.spiffeId });
    }
    this.#attestOrStop(
      loaded === undefined && this.#o.store.snapshot.agent !== undefined
        ? 'the stored agent identity has no usable key (KeyManager "memory" keeps none across restarts)'
        : loaded === undefined
          ? 'the agent has no identity yet'
          : 'the stored agent SVID has expired',
    );
  }

  /**
   * Tells the manager that the server refused this agent (a reason from `agentRejection`).
   * Attests again when it can; otherwise stops (see the module docs). Repeated rejections right
   * after a re-attestation back off.
   */
  reportRejection(reason: AgentRejection): void {
    if (this.#status !== 'ready' || this.#busy) return;
    this.#handleRejection(reason);
  }

  #handleRejection(reason: AgentRejection): void {
    this.#log.warn('the server refused the agent SVID', { reason });
    if (reason === 'must-reattest' && this.#creds !== undefined) {
      this.#creds = { ...this.#creds, reattestable: true };
    }
    if (this.canAttest()) {
      const delay = this.#rejections === 0 ? 0 : this.#rejectionBackoff.next();
      this.#rejections++;
      this.#status = 'attesting';
      this.#plan(delay, () => this.#attest());
      return;
    }
    if (EVICTION.has(reason)) {
      void this.#evicted(reason);
      return;
    }
    this.#lose();
    this.#stop(
      coded(
        'ERR_AGENT_SVID_EXPIRED',
        `the server no longer accepts the agent SVID (${reason}) and ${this.#cannotAttestWhy()}; cached workload SVIDs are served until they expire`,
      ),
    );
  }

  /** Tells the manager the server accepted a call with the current SVID (resets rejection backoff). */
  noteAccepted(): void {
    this.#rejections = 0;
    this.#rejectionBackoff.reset();
  }

  /** Attests (or renews) now, whatever the schedule (operator action, tests). */
  refreshNow(): Promise<void> {
    if (this.#isClosed()) return Promise.resolve();
    this.#cancelTimer();
    return this.#creds !== undefined && this.current() !== undefined && !this.#creds.reattestable
      ? this.#run(() => this.#renew())
      : this.#run(() => this.#attest());
  }

  /** Resolves when no attempt is running (tests). */
  idle(): Promise<void> {
    if (!this.#busy) return Promise.resolve();
    return new Promise((resolve) => this.#idle.add(resolve));
  }

  #isClosed(): boolean {
    return this.#status === 'closed';
  }

  /** Stops timers and aborts work in flight. */
  close(): void {
    this.#status = 'closed';
    this.#cancelTimer();
    this.#abort.abort();
  }

  // -------------------------------------------------------------------------------------------

  #cannotAttestWhy(): string {
    const a = this.#o.attestor;
    if (a === undefined) return 'no node attestor can attest (no join token is configured)';
    return `the ${a.type} attestor cannot attest again (a join token works once: start the agent with a new one)`;
  }

  #load(rec: AgentIdentityRecord | undefined): AgentCredentials | undefined {
    if (rec === undefined || rec.privateKey === undefined) return undefined;
    try {
      if (!rec.spiffeId.startsWith(`${this.#o.trustDomain.idString()}/spire/agent/`))
        return undefined;
      const leaf = parseCertificate(rec.certChain[0]!);
      const privateKey = createPrivateKey({
        key: Buffer.from(rec.privateKey),
        format: 'der',
        type: 'pkcs8',
      });
      if (!sameBytes(spkiOf(privateKey), leaf.spkiDer)) return undefined;
      return {
        spiffeId: rec.spiffeId,
        certChain: rec.certChain,
        privateKey,
        notBeforeMs: leaf.notBefore.getTime(),
        expiresAtMs: leaf.notAfter.getTime(),
        reattestable: rec.reattestable,
        attestorType: rec.attestorType,
      };
    } catch (err) {
      this.#log.warn('the stored agent identity cannot be used', { error: describeError(err) });
      return undefined;
    }
  }

  #attestOrStop(why: string): void {
    if (this.canAttest()) {
      this.#status = 'attesting';
      this.#plan(0, () => this.#attest());
      return;
    }
    this.#stop(coded('ERR_AGENT_CANNOT_ATTEST', `${why} and ${this.#cannotAttestWhy()}`));
  }

  #stop(err: SpireEdgeError): void {
    this.#status = 'stopped';
    this.#error = err;
    this.#retryAtMs = undefined;
    this.#renewAtMs = undefined;
    this.#cancelTimer();
    this.#log.error(err.message, { error_code: err.code });
  }

  /** Forgets the in-memory identity and tells the listeners. */
  #lose(): void {
    if (this.#creds === undefined) return;
    this.#creds = undefined;
    this.#o.onChange?.(undefined);
  }

  async #evicted(reason: AgentRejection): Promise<void> {
    this.#lose();
    this.#stop(
      coded(
        'ERR_AGENT_EVICTED',
        `the server evicted this agent (${reason}) and ${this.#cannotAttestWhy()}; its entries and cached SVIDs were removed`,
      ),
    );
    try {
      // The operator revoked this node: stop serving what it was authorized for. The bundle
      // stays, so a new join token can attest without a new bootstrap.
      await this.#o.store.write((_s, tx) =>
        tx.clear(['agent', 'entries', 'sync', 'x509Svids', 'jwtSvids']),
      );
    } catch (err) {
      this.#log.error('could not clear the evicted agent state', { error: describeError(err) });
    }
  }

  #plan(delayMs: number, task: () => Promise<void>): void {
    this.#cancelTimer();
    this.#retryAtMs = delayMs > 0 ? this.#clock.nowMs() + delayMs : undefined;
    this.#cancelTimer = this.#clock.setTimer(delayMs, () => {
      this.#cancelTimer = () => {};
      void this.#run(task);
    });
  }

  async #run(task: () => Promise<void>): Promise<void> {
    if (this.#isClosed()) return;
    if (this.#busy) {
      // Planned while another attempt runs: run it right after.
      this.#pending = task;
      return;
    }
    this.#busy = true;
    try {
      let next: (() => Promise<void>) | undefined = task;
      while (next !== undefined && !this.#isClosed()) {
        this.#pending = undefined;
        await next();
        next = this.#pending;
      }
    } finally {
      this.#pending = undefined;
      this.#busy = false;
      for (const r of [...this.#idle]) r();
      this.#idle.clear();
    }
  }

  #planRenewal(): void {
    const c = this.#creds;
    if (c === undefined) return;
    const at = halfLifeAt(c.notBeforeMs, c.expiresAtMs);
    this.#renewAtMs = at;
    this.#plan(Math.max(0, at - this.#clock.nowMs()), () =>
      c.reattestable && this.canAttest() ? this.#attest() : this.#renew(),
    );
    this.#retryAtMs = undefined;
  }

  /** A failed attempt: keep the current SVID while it lasts, retry with backoff. */
  #failed(err: unknown, what: string, retry: () => Promise<void>): void {
    if (this.#isClosed()) return;
    const delay = this.#backoff.next();
    this.#error = err instanceof Error ? err : new Error(String(err));
    if (this.current() === undefined) {
      this.#lose();
      this.#status = this.#status === 'attesting' ? 'attesting' : 'retrying';
    }
    this.#log.warn(`${what} failed; retrying`, {
      error: describeError(err),
      retry_in_ms: delay,
      attempt: this.#backoff.failures,
    });
    this.#plan(delay, retry);
  }

  async #bundle(): Promise<BundleRecord> {
    const stored = this.#o.store.snapshot.bundle;
    if (stored !== undefined) return stored;
    if (this.#o.bootstrapBundle === undefined) {
      throw coded('ERR_AGENT_NO_BUNDLE', 'the agent has no trust bundle and no bootstrap source');
    }
    const b = await this.#o.bootstrapBundle();
    const snap = await this.#o.store.write((s, tx) => {
      if (s.bundle === undefined) tx.setBundle(b);
    });
    this.#log.info('bootstrapped the trust bundle', {
      trust_domain: b.trustDomain,
      x509_authorities: b.x509Authorities.length,
    });
    return snap.bundle ?? b;
  }

  async #attest(): Promise<void> {
    const attestor = this.#o.attestor;
    if (attestor === undefined || !this.canAttest()) {
      this.#attestOrStop('the agent must attest');
      return;
    }
    this.#status = 'attesting';
    const td = this.#o.trustDomain;
    const prefix = `${td.idString()}/spire/agent/`;
    try {
      const bundle = await this.#bundle();
      const key = await this.#generateKey();
      const result = await this.#o.server.attestAgent(attestor, createCsr(key), this.#abort.signal);
      const checked = checkIssuedX509Svid(result.svid.certChain, {
        trustDomain: td,
        authorities: bundle.x509Authorities,
        spki: spkiOf(key),
        expectedId: (id) => id === result.svid.id && id.startsWith(prefix),
        now: this.#clock.now(),
      });
      if (this.#o.attestorSingleUse === true) this.#attestorUsed = true;
      await this.#persist(
        {
          spiffeId: checked.spiffeId,
          certChain: result.svid.certChain,
          privateKey: key,
          notBeforeMs: checked.notBeforeMs,
          expiresAtMs: checked.notAfterMs,
          reattestable: result.reattestable,
          attestorType: attestor.type,
        },
        true,
      );
      this.#metrics.nodeAttestation('attest', 'ok');
      this.#log.info('Node attestation was successful', {
        spiffe_id: checked.spiffeId,
        reattestable: result.reattestable,
        expires_at: new Date(checked.notAfterMs),
      });
    } catch (err) {
      if (this.#isClosed()) return;
      this.#metrics.nodeAttestation('attest', 'error');
      if (this.#o.attestorSingleUse === true && isRefusal(err)) {
        this.#attestorUsed = true;
        this.#lose();
        this.#stop(
          coded(
            'ERR_AGENT_ATTESTATION_REFUSED',
            `the server refused ${attestor.type} attestation: ${describeError(err)}; start the agent with a new join token`,
            err,
          ),
        );
        return;
      }
      this.#failed(err, 'node attestation', () => this.#attest());
    }
  }

  async #renew(): Promise<void> {
    const c = this.current();
    if (c === undefined) {
      this.#lose();
      this.#attestOrStop('the agent SVID expired before it could be renewed');
      return;
    }
    try {
      const bundle = this.#o.store.snapshot.bundle;
      if (bundle === undefined) throw coded('ERR_AGENT_NO_BUNDLE', 'the agent has no trust bundle');
      const key = await this.#generateKey();
      const svid = await this.#o.server.renewAgent(createCsr(key), this.#abort.signal);
      const checked = checkIssuedX509Svid(svid.certChain, {
        trustDomain: this.#o.trustDomain,
        authorities: bundle.x509Authorities,
        spki: spkiOf(key),
        expectedId: c.spiffeId,
        now: this.#clock.now(),
      });
      await this.#persist(
        {
          ...c,
          certChain: svid.certChain,
          privateKey: key,
          notBeforeMs: checked.notBeforeMs,
          expiresAtMs: checked.notAfterMs,
        },
        false,
      );
      this.#metrics.nodeAttestation('renew', 'ok');
      this.#log.info('renewed the agent SVID', {
        spiffe_id: c.spiffeId,
        expires_at: new Date(checked.notAfterMs),
      });
    } catch (err) {
      if (this.#isClosed()) return;
      this.#metrics.nodeAttestation('renew', 'error');
      const rejection = agentRejection(err);
      if (rejection !== undefined) {
        this.#handleRejection(rejection);
        return;
      }
      this.#failed(err, 'agent SVID renewal', () => this.#renew());
    }
  }

  /** Stores a new identity (one batch) and makes it current. */
  async #persist(creds: AgentCredentials, attested: boolean): Promise<void> {
    const nowMs = this.#clock.nowMs();
    const previous = this.#o.store.snapshot.agent;
    const record: AgentIdentityRecord = {
      spiffeId: creds.spiffeId,
      certChain: creds.certChain,
      ...(this.#persistKey
        ? {
            privateKey: new Uint8Array(creds.privateKey.export({ format: 'der', type: 'pkcs8' })),
          }
        : {}),
      expiresAtMs: creds.expiresAtMs,
      reattestable: creds.reattestable,
      attestorType: creds.attestorType,
      lastAttestedAtMs: attested ? nowMs : (previous?.lastAttestedAtMs ?? nowMs),
    };
    await this.#o.store.write((snap, tx) => {
      // Another node identity: what the store holds was authorized for the old one.
      if (snap.agent !== undefined && snap.agent.spiffeId !== record.spiffeId) {
        tx.clear(['entries', 'sync', 'x509Svids', 'jwtSvids']);
      }
      tx.setAgentIdentity(record);
    });
    if (this.#isClosed()) return;
    this.#creds = creds;
    this.#status = 'ready';
    this.#error = undefined;
    this.#backoff.reset();
    this.#metrics.agentSvidExpiry(creds.expiresAtMs);
    this.#planRenewal();
    this.#o.onChange?.(creds);
  }
}

/** A join token the server will never accept (unknown, used, expired) or an attestor refusal. */
function isRefusal(err: unknown): boolean {
  if (isSpireEdgeError(err, 'ERR_AGENT_ISSUED_SVID_INVALID')) return false;
  return (
    err instanceof ConnectError &&
    (err.code === Code.InvalidArgument ||
      err.code === Code.PermissionDenied ||
      err.code === Code.FailedPrecondition)
  );
}
