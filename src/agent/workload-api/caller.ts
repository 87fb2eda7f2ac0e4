/**
 * Who is calling the Workload API: the peer credentials of the connection (SO_PEERCRED,
 * read when it was accepted) turned into selectors by the workload attestors, with the
 * check that makes the answer trustworthy — after attesting `/proc/<pid>`, the pidfd
 * opened at accept time must still denote a live process. If the caller exited (and its
 * PID may already belong to someone else) the call fails instead of attesting a stranger
 * (SPIRE's peertracker `IsAlive` check; SPIRE answers `Unavailable` "workload attestation
 * failed" there too).
 *
 * Selectors are cached per connection for `cacheMs` (default 1 s), and concurrent calls on
 * one connection share one attestation: a client that opens hundreds of streams at once
 * costs one attestation. Failures are not cached. The liveness check runs on every call.
 */
import { Code, ConnectError, type ContextValues } from '@connectrpc/connect';
import { type Clock, systemClock } from '../../common/clock.js';
import { describeError } from '../../common/errors.js';
import { grpcPeer, type UnixGrpcPeer } from '../../common/grpc.js';
import { type Logger, nullLogger } from '../../common/log.js';
import { loadNativeAddon } from '../../native/addon.js';
import type { Selector } from '../workload-attestors/selector.js';
import type { WorkloadAttestor } from '../workload-attestors/workload-attestor.js';
import { attestationFailed, callerUnknown } from './errors.js';

/** An attested caller. */
export interface WorkloadCaller {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  readonly selectors: readonly Selector[];
}

/**
 * What a Workload API call offers the service and the caller resolver, whichever transport
 * carries it: connect's `HandlerContext` has these members, and so does the fast path's call
 * (raw-routes.ts).
 */
export interface WorkloadCallContext {
  /** Request metadata; names are case-insensitive, repeated values joined by `, `. */
  readonly requestHeader: { get(name: string): string | null };
  /** Aborted when the call ends (client gone, deadline, server shutdown). */
  readonly signal: AbortSignal;
  /** Context values; the transport's peer is under `kGrpcPeer` (src/common/grpc/peer.ts). */
  readonly values: ContextValues;
}

/** Resolves the caller of a Workload API request. */
export interface CallerResolver {
  /**
   * The caller's selectors. Rejects with `ERR_WORKLOAD_ATTESTATION_UNAVAILABLE` when
   * attestation failed or the caller exited, `ERR_WORKLOAD_CALLER_UNKNOWN` without peer
   * credentials, a `Canceled` ConnectError when the call went away.
   */
  resolve(ctx: WorkloadCallContext): Promise<WorkloadCaller>;
}

/** Options of {@link createPeerCallerResolver}. */
export interface PeerCallerResolverOptions {
  /** Usually `combineWorkloadAttestors([...])`. */
  readonly attestor: WorkloadAttestor;
  /** How long one connection's selectors are reused, ms (0 disables). Default 1000. */
  readonly cacheMs?: number;
  readonly clock?: Clock;
  readonly log?: Logger;
  /** Liveness of a pidfd; default the native addon's `pidfdAlive` (tests inject). */
  readonly pidfdAlive?: (fd: number) => boolean;
}

interface CacheEntry {
  /** Epoch ms after which the entry is stale; Infinity while the attestation runs. */
  expires: number;
  readonly selectors: Promise<readonly Selector[]>;
}

function cancelled(): ConnectError {
  return new ConnectError('the call was cancelled', Code.Canceled);
}

/** Waits for `p` unless `signal` aborts first (the shared attestation keeps running). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(cancelled());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(cancelled());
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** True once the connection's socket is gone (http2's socket proxy throws once unbound). */
function connectionGone(peer: UnixGrpcPeer): boolean {
  try {
    return peer.socket.destroyed;
  } catch {
    return true;
  }
}

/** The resolver used by the Workload API server: SO_PEERCRED + pidfd + attestors. */
export function createPeerCallerResolver(options: PeerCallerResolverOptions): CallerResolver {
  const attestor = options.attestor;
  if (typeof attestor?.attest !== 'function') throw new TypeError('attestor is required');
  const cacheMs = options.cacheMs ?? 1000;
  if (!Number.isSafeInteger(cacheMs) || cacheMs < 0) {
    throw new TypeError('cacheMs must be a non-negative integer');
  }
  const clock = options.clock ?? systemClock;
  const log = options.log ?? nullLogger;
  const pidfdAlive =
    options.pidfdAlive ??
    (
      (addon) => (fd: number) =>
        addon.pidfdAlive(fd)
    )(loadNativeAddon());
  // Keyed by the connection's peer object: dropped with the connection.
  const cache = new WeakMap<UnixGrpcPeer, CacheEntry>();

  function attestShared(peer: UnixGrpcPeer, pid: number, pidfd: number): CacheEntry {
    const hit = cache.get(peer);
    if (hit !== undefined && hit.expires > clock.nowMs()) return hit;
    const entry: CacheEntry = {
      expires: Number.POSITIVE_INFINITY,
      selectors: attestor.attest(pid, { pidfd }),
    };
    cache.set(peer, entry);
    entry.selectors.then(
      () => {
        entry.expires = clock.nowMs() + cacheMs;
      },
      () => {
        if (cache.get(peer) === entry) cache.delete(peer);
      },
    );
    return entry;
  }

  return {
    async resolve(ctx: WorkloadCallContext): Promise<WorkloadCaller> {
      const peer = grpcPeer(ctx);
      if (peer.kind !== 'unix' || peer.cred === undefined || peer.cred.pid <= 0) {
        throw callerUnknown();
      }
      const { pid, uid, gid } = peer.cred;
      const pidfd = peer.pidfd;
      if (pidfd === undefined) {
        log.warn('caller exited before its connection was accepted', { pid, uid });
        throw attestationFailed();
      }
      let selectors: readonly Selector[];
      try {
        selectors = await untilAborted(attestShared(peer, pid, pidfd).selectors, ctx.signal);
      } catch (err) {
        if (ctx.signal.aborted) throw cancelled();
        log.error('workload attestation failed', { pid, uid, error: describeError(err) });
        throw attestationFailed(err);
      }
      // The server closes the pidfd when the connection closes, and the descriptor number
      // may then be reused: only look at it while the connection (and so this call) lives.
      if (ctx.signal.aborted || connectionGone(peer)) throw cancelled();
      let alive: boolean;
      try {
        alive = pidfdAlive(pidfd);
      } catch {
        alive = false;
      }
      if (!alive) {
        cache.delete(peer);
        log.warn('could not verify existence of the original caller: caller has exited', {
          pid,
          uid,
        });
        throw attestationFailed();
      }
      return { pid, uid, gid, selectors };
    },
  };
}
