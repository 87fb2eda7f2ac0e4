/**
 * The SPIFFE Workload API service (`SpiffeWorkloadAPI`, SPIFFE Workload API spec and
 * SPIRE's pkg/agent/endpoints/workload/handler.go) over an {@link IdentitySource} and a
 * {@link CallerResolver}, transport-free: {@link createWorkloadApiService} is the logic,
 * {@link createWorkloadApiHandlers} mounts it as a connect service (tests mount that on an
 * in-memory router) and raw-routes.ts on `node:http2` streams directly, which is what
 * `startWorkloadApiServer` serves the five methods with. Both paths run the same code below.
 *
 * Every call: the `workload.spiffe.io: true` header (else InvalidArgument), argument
 * checks, `Unavailable` until the source is ready, caller attestation (SO_PEERCRED +
 * pidfd + attestors). Then:
 *
 * - `FetchX509SVID` (stream): the caller's identities — unexpired, ordered by entry ID,
 *   one per non-empty hint (oldest entry wins) — with the own bundle and the bundles of
 *   every trust domain they federate with; sent at once, then again whenever the answer
 *   changes (source change, or an SVID reaching its expiry). No identity (at first or
 *   later): `PermissionDenied` "no identity issued", ending the stream. While the stream is
 *   open its selectors are retained by the source (`IdentitySource.retain`), so that an
 *   SVID cache with a size limit keeps (or mints) its SVIDs; when the caller has entries
 *   whose SVIDs are not cached yet because of that limit, the first message waits for them
 *   (as SPIRE's LRU cache makes a new subscriber wait).
 * - `FetchX509Bundles`, `FetchJWTBundles` (streams): own + federated bundles (X.509 as
 *   concatenated DER, JWT as JWKS JSON), keyed `spiffe://<td>`; identical answers are not
 *   resent. Without an identity: `PermissionDenied`, unless `allowUnauthenticatedVerifiers`
 *   (then the own bundle only).
 * - `FetchJWTSVID`: one JWT-SVID per identity (or only `spiffe_id`'s, which must be one of
 *   the caller's); `PermissionDenied` when none.
 * - `ValidateJWTSVID`: validates against the own and the caller's federated JWT bundles;
 *   answers the SPIFFE ID and the claims (`aud` always a list; for a foreign trust domain
 *   only `sub`, `exp`, `aud` and `allowedForeignJwtClaims`).
 * - `FetchWITSVID`, `FetchWITBundles`: `Unimplemented` (as SPIRE).
 *
 * Never sends an SVID at or past its `expiresAt` (checked when each message is built).
 */

import type {
  DescMessage,
  JsonObject,
  JsonValue,
  MessageInitShape,
  MessageShape,
} from '@bufbuild/protobuf';
import { create, toBinary } from '@bufbuild/protobuf';
import type { ServiceImpl } from '@connectrpc/connect';
import { type Clock, systemClock } from '../../common/clock.js';
import { describeError } from '../../common/errors.js';
import { type Logger, nullLogger } from '../../common/log.js';
// The generated module itself rather than src/protocol/index.js, which loads the descriptors
// of every API (admin, SDS) — a warm agent start needs only these (docs/performance.md).
import * as workload from '../../protocol/gen/spiffe/workload/workload_pb.js';
import { BundleSet } from '../../spiffe/bundle-set.js';
import { parseSpiffeId } from '../../spiffe/id.js';
import type { CallerResolver, WorkloadCallContext, WorkloadCaller } from './caller.js';
import {
  argumentInvalid,
  jwtSvidUnavailable,
  noIdentityIssued,
  notReady,
  securityHeaderMissing,
  unimplemented,
} from './errors.js';
import type { IdentitySource, TrustDomainBundles, WorkloadIdentity } from './identity-source.js';

/** Options of {@link createWorkloadApiHandlers} and {@link createWorkloadApiService}. */
export interface WorkloadApiHandlerOptions {
  readonly source: IdentitySource;
  readonly callers: CallerResolver;
  /** Expiry checks and expiry wake-ups. Default the system clock. */
  readonly clock?: Clock;
  readonly log?: Logger;
  /** SPIRE's `allow_unauthenticated_verifiers`: bundles for callers without identity. */
  readonly allowUnauthenticatedVerifiers?: boolean;
  /** SPIRE's `allowed_foreign_jwt_claims`: claims kept when validating foreign tokens. */
  readonly allowedForeignJwtClaims?: readonly string[];
}

/**
 * The metadata every Workload API request carries (`WORKLOAD_API_HEADER` of src/protocol,
 * repeated here so that this module does not load every API's descriptors; a unit test keeps
 * them equal).
 */
export const SECURITY_HEADER = 'workload.spiffe.io';

/** Longest single timer a stream arms; it simply re-arms (setTimeout overflows past 2^31 ms). */
const MAX_WAKE_MS = 24 * 3600 * 1000;

function checkHeader(ctx: WorkloadCallContext): void {
  if (ctx.requestHeader.get(SECURITY_HEADER) !== 'true') throw securityHeaderMissing();
}

/** SPIRE's order and hint rule over unexpired identities. */
function visibleIdentities(all: readonly WorkloadIdentity[], nowMs: number | undefined) {
  const live = nowMs === undefined ? [...all] : all.filter((i) => i.expiresAt.getTime() > nowMs);
  live.sort((a, b) => (a.entryId < b.entryId ? -1 : a.entryId > b.entryId ? 1 : 0));
  const byHint = new Map<string, WorkloadIdentity>();
  for (const i of live) {
    if (i.hint === '') continue;
    const held = byHint.get(i.hint);
    if (
      held === undefined ||
      i.entryCreatedAt < held.entryCreatedAt ||
      (i.entryCreatedAt === held.entryCreatedAt && i.entryId < held.entryId)
    ) {
      byHint.set(i.hint, i);
    }
  }
  return live.filter((i) => i.hint === '' || byHint.get(i.hint) === i);
}

/** The earliest future expiry among `all`, for a stream's wake-up timer. */
function nextExpiry(all: readonly WorkloadIdentity[], nowMs: number): number | undefined {
  let next: number | undefined;
  for (const i of all) {
    const t = i.expiresAt.getTime();
    if (t > nowMs && (next === undefined || t < next)) next = t;
  }
  return next;
}

function federatedTrustDomains(identities: readonly WorkloadIdentity[], own: string): string[] {
  const tds = new Set<string>();
  for (const i of identities) for (const td of i.federatesWith) if (td !== own) tds.add(td);
  return [...tds].sort();
}

function bytesEqual(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * Wakes a stream when the source changes, a deadline passes or the call ends. Subscribed
 * for the stream's whole life so no change between two sends is missed, and unsubscribed
 * the moment the call ends — even if the transport never resumes the generator again
 * (a generator suspended at `yield` runs its `finally` only when resumed).
 */
class StreamWaker {
  #pending = true;
  #closed = false;

  #resolve: (() => void) | undefined;
  #cancelTimer: () => void = () => {};
  readonly #unsubscribe: () => void;
  readonly #release: () => void;
  readonly #signal: AbortSignal;
  readonly #clock: Clock;

  constructor(
    source: IdentitySource,
    signal: AbortSignal,
    clock: Clock,
    release: () => void = () => {},
  ) {
    this.#signal = signal;
    this.#clock = clock;
    this.#release = release;
    this.#unsubscribe = source.subscribe(this.#poke);
    signal.addEventListener('abort', this.close, { once: true });
    if (signal.aborted) this.close();
  }

  /** True once the call ended (or {@link close} was called). */
  get closed(): boolean {
    return this.#closed;
  }

  readonly #poke = (): void => {
    this.#pending = true;
    const r = this.#resolve;
    this.#resolve = undefined;
    r?.();
  };

  /** Resolves at the next change (at once if one happened since the last call). */
  async next(wakeAtMs: number | undefined): Promise<void> {
    if (!this.#pending && !this.#closed) {
      await new Promise<void>((resolve) => {
        this.#resolve = resolve;
        if (wakeAtMs !== undefined) {
          const delay = Math.min(MAX_WAKE_MS, Math.max(0, wakeAtMs - this.#clock.nowMs()) + 1);
          this.#cancelTimer = this.#clock.setTimer(delay, this.#poke);
        }
      });
      this.#cancelTimer();
      this.#cancelTimer = () => {};
    }
    this.#pending = false;
  }

  /** Unsubscribes, cancels the timer and releases a waiting `next`. Idempotent. */
  readonly close = (): void => {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    this.#release();
    this.#cancelTimer();
    this.#signal.removeEventListener('abort', this.close);
    this.#poke();
  };
}

/** One answer of a stream: the message, its encoding (compared, sent) and the next wake-up. */
export interface StreamAnswer<T> {
  readonly message: T;
  readonly bytes: Uint8Array;
  readonly wakeAtMs: number | undefined;
}

/**
 * An open stream's answer builder, called at once and after every change; `undefined` means
 * "nothing to send yet" (SVIDs still being minted). Throws to end the stream with an error.
 */
export type StreamBuilder<T> = (nowMs: number) => StreamAnswer<T> | undefined;

/** A stream answer of `schema` built from `init`, with its serialized bytes. */
function streamAnswer<D extends DescMessage>(
  schema: D,
  init: MessageInitShape<D>,
  wakeAtMs: number | undefined,
): StreamAnswer<MessageShape<D>> {
  const message = create(schema, init);
  return { message, bytes: toBinary(schema, message), wakeAtMs };
}

/** A built X509-SVID answer and what it was built from (see `x509Answers`). */
interface X509AnswerMemo {
  readonly answer: StreamAnswer<workload.X509SVIDResponse>;
  readonly own: TrustDomainBundles;
  /** The federated trust domains asked for, and the bundles held for them then. */
  readonly federatedTds: readonly string[];
  readonly federatedBundles: ReadonlyMap<string, TrustDomainBundles>;
  readonly builtAtMs: number;
}

/** An opened stream: its builder and the release of what it retained. */
export interface OpenedStream<T> {
  readonly build: StreamBuilder<T>;
  readonly release: () => void;
}

/** The transport-free Workload API (see the module docs); both transports call it. */
export interface WorkloadApiService {
  /** Header check, readiness, attestation; then the caller's X509-SVID stream. */
  openX509SvidStream(ctx: WorkloadCallContext): Promise<OpenedStream<workload.X509SVIDResponse>>;
  openX509BundlesStream(
    ctx: WorkloadCallContext,
  ): Promise<OpenedStream<workload.X509BundlesResponse>>;
  openJwtBundlesStream(
    ctx: WorkloadCallContext,
  ): Promise<OpenedStream<workload.JWTBundlesResponse>>;
  fetchJwtSvid(
    req: workload.JWTSVIDRequest,
    ctx: WorkloadCallContext,
  ): Promise<MessageInitShape<typeof workload.JWTSVIDResponseSchema>>;
  validateJwtSvid(
    req: workload.ValidateJWTSVIDRequest,
    ctx: WorkloadCallContext,
  ): Promise<MessageInitShape<typeof workload.ValidateJWTSVIDResponseSchema>>;
  /**
   * The answers of an opened stream until `signal` aborts: the first at once (or as soon as
   * there is one), then every different answer after a change or an expiry. Throws the
   * builder's error. Subscribed to the source for the stream's whole life; unsubscribed (and
   * the stream's retention released) the moment `signal` aborts, even if the generator is
   * never resumed again (a generator suspended at `yield` runs its `finally` only when
   * resumed).
   */
  answers<T>(signal: AbortSignal, stream: OpenedStream<T>): AsyncGenerator<StreamAnswer<T>>;
}

/** The Workload API logic over `options.source` and `options.callers`. */
export function createWorkloadApiService(options: WorkloadApiHandlerOptions): WorkloadApiService {
  const { source, callers } = options;
  if (typeof source?.identitiesFor !== 'function') throw new TypeError('source is required');
  if (typeof callers?.resolve !== 'function') throw new TypeError('callers is required');
  const clock = options.clock ?? systemClock;
  const log = options.log ?? nullLogger;
  const allowUnauthenticated = options.allowUnauthenticatedVerifiers ?? false;
  const allowedForeignClaims = new Set(options.allowedForeignJwtClaims ?? []);

  async function begin(ctx: WorkloadCallContext): Promise<WorkloadCaller> {
    if (!source.ready()) throw notReady();
    return callers.resolve(ctx);
  }

  function ownTrustDomain(): { name: string; bundles: TrustDomainBundles } {
    const bundles = source.bundle();
    return { name: bundles.x509.trustDomain.name, bundles };
  }

  /**
   * Answers built from an `identitiesFor` result, by that array: a source that returns the same
   * array while nothing changed (StoreIdentitySource) gets each answer built and encoded once
   * instead of on every call. The answer is reused only while the bundles are the same objects
   * and no identity has crossed its expiry since it was built.
   */
  const x509Answers = new WeakMap<readonly WorkloadIdentity[], X509AnswerMemo>();

  function x509SvidAnswer(
    caller: WorkloadCaller,
    nowMs: number,
  ): StreamAnswer<workload.X509SVIDResponse> | undefined {
    const all = source.identitiesFor(caller.selectors);
    // SVIDs held back by the cache's size limit are on their way: wait (SPIRE's subscriber
    // waits for every SVID of its entries before its first update).
    if (source.pendingFor?.(caller.selectors) === true) return undefined;
    const own = ownTrustDomain();
    const memo = x509Answers.get(all);
    if (memo !== undefined && memoHolds(memo, own.bundles, nowMs)) return memo.answer;
    const ids = visibleIdentities(all, nowMs);
    if (ids.length === 0) {
      log.error('no identity issued', { pid: caller.pid, uid: caller.uid });
      throw noIdentityIssued();
    }
    const bundleDer = own.bundles.x509.marshalDer();
    const federated: Record<string, Uint8Array> = {};
    const federatedTds = federatedTrustDomains(ids, own.name);
    const federatedBundles = source.federatedBundles(federatedTds);
    for (const [td, b] of federatedBundles) {
      federated[`spiffe://${td}`] = b.x509.marshalDer();
    }
    const answer = streamAnswer(
      workload.X509SVIDResponseSchema,
      {
        svids: ids.map((i) => ({
          spiffeId: i.spiffeId,
          x509Svid: i.certChain.length === 1 ? i.certChain[0]! : Buffer.concat(i.certChain),
          x509SvidKey: i.privateKeyPkcs8,
          bundle: bundleDer,
          hint: i.hint,
        })),
        federatedBundles: federated,
      },
      nextExpiry(all, nowMs),
    );
    x509Answers.set(all, {
      answer,
      own: own.bundles,
      federatedTds,
      federatedBundles,
      builtAtMs: nowMs,
    });
    return answer;
  }

  /** True while `memo`'s answer is still the one a fresh build would give at `nowMs`. */
  function memoHolds(memo: X509AnswerMemo, own: TrustDomainBundles, nowMs: number): boolean {
    if (memo.own !== own || nowMs < memo.builtAtMs) return false;
    if (memo.answer.wakeAtMs !== undefined && nowMs >= memo.answer.wakeAtMs) return false;
    if (memo.federatedTds.length === 0) return true;
    // the same bundle objects, and none gained or lost since
    const now = source.federatedBundles(memo.federatedTds);
    return memo.federatedTds.every((td) => now.get(td) === memo.federatedBundles.get(td));
  }

  /**
   * Own + federated bundles for a caller, or PermissionDenied: `encode` gives each trust
   * domain's entry of the response's map (`spiffe://<td>` → bytes).
   */
  function bundlesFor(
    caller: WorkloadCaller,
    nowMs: number,
    encode: (b: TrustDomainBundles) => Uint8Array,
  ): { bundles: Record<string, Uint8Array>; wakeAtMs: number | undefined } {
    const all = source.identitiesFor(caller.selectors);
    const ids = visibleIdentities(all, nowMs);
    if (ids.length === 0 && !allowUnauthenticated) throw noIdentityIssued();
    const own = ownTrustDomain();
    const list: TrustDomainBundles[] = [own.bundles];
    if (ids.length > 0) {
      for (const b of source.federatedBundles(federatedTrustDomains(ids, own.name)).values()) {
        list.push(b);
      }
    }
    const bundles: Record<string, Uint8Array> = {};
    for (const b of list) bundles[`spiffe://${b.x509.trustDomain.name}`] = encode(b);
    return { bundles, wakeAtMs: nextExpiry(all, nowMs) };
  }

  const noRelease = () => {};

  return {
    async openX509SvidStream(ctx) {
      checkHeader(ctx);
      const caller = await begin(ctx);
      const release = source.retain?.(caller.selectors) ?? noRelease;
      return { build: (nowMs) => x509SvidAnswer(caller, nowMs), release };
    },

    async openX509BundlesStream(ctx) {
      checkHeader(ctx);
      const caller = await begin(ctx);
      return {
        release: noRelease,
        build: (nowMs) => {
          const { bundles, wakeAtMs } = bundlesFor(caller, nowMs, (b) => b.x509.marshalDer());
          return streamAnswer(workload.X509BundlesResponseSchema, { bundles }, wakeAtMs);
        },
      };
    },

    async openJwtBundlesStream(ctx) {
      checkHeader(ctx);
      const caller = await begin(ctx);
      return {
        release: noRelease,
        build: (nowMs) => {
          const { bundles, wakeAtMs } = bundlesFor(caller, nowMs, (b) =>
            Buffer.from(b.jwt.marshal(), 'utf8'),
          );
          return streamAnswer(workload.JWTBundlesResponseSchema, { bundles }, wakeAtMs);
        },
      };
    },

    async fetchJwtSvid(req, ctx) {
      checkHeader(ctx);
      if (req.audience.length === 0) throw argumentInvalid('audience must be specified');
      if (req.audience.some((a) => a === '')) {
        throw argumentInvalid('audience values must not be empty');
      }
      if (req.spiffeId !== '') {
        try {
          parseSpiffeId(req.spiffeId);
        } catch (err) {
          throw argumentInvalid(`invalid requested SPIFFE ID: ${describeError(err)}`, err);
        }
      }
      const caller = await begin(ctx);
      const ids = visibleIdentities(source.identitiesFor(caller.selectors), undefined).filter(
        (i) => req.spiffeId === '' || i.spiffeId === req.spiffeId,
      );
      if (ids.length === 0) {
        log.error('no identity issued', { pid: caller.pid, uid: caller.uid });
        throw noIdentityIssued();
      }
      const svids = await Promise.all(
        ids.map(async (i) => {
          let t: Awaited<ReturnType<IdentitySource['fetchJwtSvid']>>;
          try {
            t = await source.fetchJwtSvid(i, req.audience, ctx.signal);
          } catch (err) {
            log.error('could not fetch JWT-SVID', {
              spiffe_id: i.spiffeId,
              error: describeError(err),
            });
            throw jwtSvidUnavailable(err);
          }
          if (t.expiresAt.getTime() <= clock.nowMs()) {
            throw jwtSvidUnavailable(new Error(`the JWT-SVID for ${i.spiffeId} has expired`));
          }
          return { spiffeId: i.spiffeId, svid: t.token, hint: i.hint };
        }),
      );
      return { svids };
    },

    async validateJwtSvid(req, ctx) {
      checkHeader(ctx);
      if (req.audience === '') throw argumentInvalid('audience must be specified');
      if (req.svid === '') throw argumentInvalid('svid must be specified');
      const caller = await begin(ctx);
      const own = ownTrustDomain();
      const set = new BundleSet([own.bundles.jwt]);
      const ids = source.identitiesFor(caller.selectors);
      for (const b of source.federatedBundles(federatedTrustDomains(ids, own.name)).values()) {
        set.set(b.jwt);
      }
      // Loaded on first use: it brings in jose, which a warm start does not need.
      const { validateJwtSvid } = await import('../../spiffe/jwt-svid.js');
      const svid = await validateJwtSvid(req.svid, set, [req.audience], { now: clock.now() });
      const claims: JsonObject = {};
      const foreign = svid.id.trustDomain.name !== own.name;
      for (const [k, v] of Object.entries(svid.claims)) {
        if (foreign && k !== 'sub' && k !== 'exp' && k !== 'aud' && !allowedForeignClaims.has(k)) {
          continue;
        }
        claims[k] = v as JsonValue;
      }
      if (typeof claims['aud'] === 'string') claims['aud'] = [claims['aud']];
      return { spiffeId: svid.id.toString(), claims };
    },

    async *answers(signal, stream) {
      const waker = new StreamWaker(source, signal, clock, stream.release);
      try {
        let last: Uint8Array | undefined;
        let wakeAtMs: number | undefined;
        for (;;) {
          await waker.next(wakeAtMs);
          if (signal.aborted || waker.closed) return;
          const built = stream.build(clock.nowMs());
          if (built === undefined) continue;
          wakeAtMs = built.wakeAtMs;
          if (!bytesEqual(last, built.bytes)) {
            last = built.bytes;
            yield built;
          }
        }
      } finally {
        waker.close();
      }
    },
  };
}

/**
 * The `SpiffeWorkloadAPI` service implementation for connect (see the module docs). A stream
 * whose call ends unsubscribes at once, even if connect never resumes its generator.
 */
export function createWorkloadApiHandlers(
  options: WorkloadApiHandlerOptions,
): ServiceImpl<typeof workload.SpiffeWorkloadAPI> {
  const service = createWorkloadApiService(options);

  async function* messages<T>(signal: AbortSignal, stream: OpenedStream<T>): AsyncGenerator<T> {
    for await (const answer of service.answers(signal, stream)) yield answer.message;
  }

  return {
    async *fetchX509SVID(_req, ctx) {
      yield* messages(ctx.signal, await service.openX509SvidStream(ctx));
    },

    async *fetchX509Bundles(_req, ctx) {
      yield* messages(ctx.signal, await service.openX509BundlesStream(ctx));
    },

    async *fetchJWTBundles(_req, ctx) {
      yield* messages(ctx.signal, await service.openJwtBundlesStream(ctx));
    },

    fetchJWTSVID: (req, ctx) => service.fetchJwtSvid(req, ctx),

    validateJWTSVID: (req, ctx) => service.validateJwtSvid(req, ctx),

    // biome-ignore lint/correctness/useYield: answers before streaming anything
    async *fetchWITSVID(_req, ctx) {
      checkHeader(ctx);
      throw unimplemented('fetching WIT-SVIDs is not implemented');
    },

    // biome-ignore lint/correctness/useYield: answers before streaming anything
    async *fetchWITBundles(_req, ctx) {
      checkHeader(ctx);
      throw unimplemented('fetching WIT bundles is not implemented');
    },
  };
}
