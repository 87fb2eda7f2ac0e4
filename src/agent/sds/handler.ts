/**
 * Envoy's Secret Discovery Service v3 (`envoy.service.secret.v3.SecretDiscoveryService`) on
 * the agent's Workload API socket, as SPIRE's agent serves it (pkg/agent/endpoints/sdsv3,
 * doc/spire_agent.md "Envoy SDS Support"): Envoy, attested as a workload by the same caller
 * resolver as Workload API calls (SO_PEERCRED + pidfd + workload attestors), receives its
 * X509-SVIDs as `tls_certificate` secrets and trust bundles as validation contexts (see
 * resources.ts for names and encodings). No `workload.spiffe.io` header is required: SPIRE
 * checks it on `/SpiffeWorkloadAPI/` methods only, and Envoy does not send it.
 *
 * - `StreamSecrets` (bidi, state of the world): attests the caller once, then answers the
 *   first request, every change of the subscribed names, and every change of what those
 *   names resolve to (source change, an SVID reaching its expiry) — but never an answer
 *   identical to the last one sent. Each response has a fresh nonce and a `version_info`
 *   that counts distinct contents on this stream ("1", "2", …). A request whose
 *   `response_nonce` is not the last nonce sent is stale and ignored; one with the last
 *   nonce is an ACK, or a NACK when its `version_info` differs from the version sent (the
 *   client rolled back; logged with its `error_detail`, nothing is resent until the content
 *   changes). The node (validator choice) is remembered from earlier requests when a later
 *   one omits it. Unknown names end the stream with InvalidArgument, as SPIRE; the client's
 *   half-close ends it with OK.
 * - `FetchSecrets` (unary): the same resources, `version_info` and nonce empty.
 * - `DeltaSecrets`: Unimplemented (as SPIRE).
 *
 * Responses echo the request's `type_url` (the Secret type URL when the request has none).
 * Never sends an SVID at or past its `expiresAt` (filtered when each answer is built).
 *
 * What it trusts: the identity source and the caller resolver. The request (names, node
 * metadata, versions) is the caller's data: it selects among what the caller's selectors
 * earn and can never widen it.
 */
import { create, toBinary } from '@bufbuild/protobuf';
import type { ConnectRouter, HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { type Clock, systemClock } from '../../common/clock.js';
import { describeError } from '../../common/errors.js';
import { type Logger, nullLogger } from '../../common/log.js';
import { cryptoRandom, type RandomSource } from '../../common/random.js';
import { sdsv3 } from '../../protocol/index.js';
import type { CallerResolver, WorkloadCaller } from '../workload-api/caller.js';
import { notReady } from '../workload-api/errors.js';
import type { IdentitySource, WorkloadIdentity } from '../workload-api/identity-source.js';
import { type ResolvedSdsConfig, resolveSdsConfig, type SdsConfig } from './config.js';
import { deltaUnimplemented } from './errors.js';
import { useSpiffeValidator } from './node.js';
import { buildSdsSecrets, packSecrets, type SdsState } from './resources.js';
import { StreamEvents } from './stream-events.js';

/** Options of {@link createSdsHandlers} and {@link registerSdsService}. */
export interface SdsServiceOptions {
  readonly source: IdentitySource;
  /** The Workload API's resolver, usually `createPeerCallerResolver(…)`. */
  readonly callerResolver: CallerResolver;
  /** SPIRE's `sds { … }` settings; defaults in `SDS_DEFAULTS`. */
  readonly config?: SdsConfig;
  /** Expiry checks and expiry wake-ups. Default the system clock. */
  readonly clock?: Clock;
  /** Nonces. Default the system CSPRNG. */
  readonly random?: RandomSource;
  readonly log?: Logger;
}

/** The state a caller may see now: unexpired identities by entry ID, own and federated bundles. */
function stateFor(source: IdentitySource, caller: WorkloadCaller, nowMs: number) {
  const all = source.identitiesFor(caller.selectors);
  const identities = all
    .filter((i) => i.expiresAt.getTime() > nowMs)
    .sort((a, b) => (a.entryId < b.entryId ? -1 : a.entryId > b.entryId ? 1 : 0));
  const own = source.bundle();
  const ownName = own.x509.trustDomain.name;
  const tds = new Set<string>();
  for (const i of identities) for (const td of i.federatesWith) if (td !== ownName) tds.add(td);
  const federated = source.federatedBundles([...tds].sort());
  const state: SdsState = { identities, own, federated };
  return { state, wakeAtMs: nextExpiry(all, nowMs) };
}

/** The earliest future expiry among `all`, for the stream's wake-up timer. */
function nextExpiry(all: readonly WorkloadIdentity[], nowMs: number): number | undefined {
  let next: number | undefined;
  for (const i of all) {
    const t = i.expiresAt.getTime();
    if (t > nowMs && (next === undefined || t < next)) next = t;
  }
  return next;
}

/** SPIRE's `subListChanged`: a different length, or a name not in the old list. */
function namesChanged(before: readonly string[], after: readonly string[]): boolean {
  if (before.length !== after.length) return true;
  const old = new Set(before);
  return after.some((n) => !old.has(n));
}

function bytesEqual(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && a.length === b.length && Buffer.compare(a, b) === 0;
}

/** The `SecretDiscoveryService` implementation. */
export function createSdsHandlers(
  options: SdsServiceOptions,
): ServiceImpl<typeof sdsv3.SecretDiscoveryService> {
  const { source, callerResolver } = options;
  if (typeof source?.identitiesFor !== 'function') throw new TypeError('source is required');
  if (typeof callerResolver?.resolve !== 'function') {
    throw new TypeError('callerResolver is required');
  }
  const config: ResolvedSdsConfig = resolveSdsConfig(options.config);
  const clock = options.clock ?? systemClock;
  const random = options.random ?? cryptoRandom;
  const log = options.log ?? nullLogger;

  async function begin(ctx: HandlerContext): Promise<WorkloadCaller> {
    if (!source.ready()) throw notReady();
    return callerResolver.resolve(ctx);
  }

  /** The resources for `req` (node from `node`) now, as Any messages plus their encoding. */
  function answer(
    caller: WorkloadCaller,
    req: sdsv3.DiscoveryRequest,
    node: sdsv3.Node | undefined,
  ) {
    const nowMs = clock.nowMs();
    const { state, wakeAtMs } = stateFor(source, caller, nowMs);
    const secrets = buildSdsSecrets(state, req.resourceNames, {
      config,
      spiffeValidator: useSpiffeValidator(node, config),
    });
    const resources = packSecrets(secrets);
    const typeUrl = req.typeUrl === '' ? sdsv3.SECRET_TYPE_URL : req.typeUrl;
    const content = toBinary(
      sdsv3.DiscoveryResponseSchema,
      create(sdsv3.DiscoveryResponseSchema, { resources, typeUrl }),
    );
    return { resources, typeUrl, content, wakeAtMs };
  }

  function nonceAfter(previous: string): string {
    for (;;) {
      const n = Buffer.from(random.bytes(8)).toString('hex');
      if (n !== previous) return n;
    }
  }

  return {
    async *streamSecrets(requests, ctx) {
      const caller = await begin(ctx);
      const slog = log.with({ pid: caller.pid, method: 'StreamSecrets' });
      const events = new StreamEvents(requests, source, ctx.signal, clock);
      try {
        let lastReq: sdsv3.DiscoveryRequest | undefined;
        let node: sdsv3.Node | undefined;
        let lastNonce = '';
        let lastContent: Uint8Array | undefined;
        let version = 0;
        let wakeAtMs: number | undefined;
        for (;;) {
          const ev = await events.next(wakeAtMs);
          if (ev.kind === 'end') return;
          let subscriptionChanged = false;
          if (ev.kind === 'request') {
            const req = ev.request;
            slog.debug('received StreamSecrets request', {
              resource_names: req.resourceNames,
              version_info: req.versionInfo,
              nonce: req.responseNonce,
            });
            if (req.errorDetail !== undefined) {
              slog.error('envoy reported errors applying secrets', {
                resource_names: req.resourceNames,
                error: req.errorDetail.message,
              });
            }
            if (lastNonce !== '') {
              if (req.responseNonce !== lastNonce) {
                slog.warn('received unexpected nonce; ignoring request', {
                  nonce: req.responseNonce,
                  expect: lastNonce,
                });
                continue;
              }
              if (req.versionInfo === '' || req.versionInfo !== String(version)) {
                slog.error('client rejected expected version and rolled back', {
                  version_info: req.versionInfo,
                  expect: String(version),
                });
              }
            }
            if (req.node !== undefined) node = req.node;
            subscriptionChanged =
              lastReq === undefined || namesChanged(lastReq.resourceNames, req.resourceNames);
            lastReq = req;
            if (!subscriptionChanged) continue;
          }
          if (lastReq === undefined) continue;
          let built: ReturnType<typeof answer>;
          try {
            built = answer(caller, lastReq, node);
          } catch (err) {
            slog.error('error building stream secrets response', { error: describeError(err) });
            throw err;
          }
          wakeAtMs = built.wakeAtMs;
          const same = bytesEqual(lastContent, built.content);
          if (same && !subscriptionChanged) continue;
          if (!same) {
            version++;
            lastContent = built.content;
          }
          const nonce = nonceAfter(lastNonce);
          slog.debug('sending StreamSecrets response', {
            version_info: String(version),
            nonce,
            count: built.resources.length,
          });
          lastNonce = nonce;
          yield create(sdsv3.DiscoveryResponseSchema, {
            versionInfo: String(version),
            resources: built.resources,
            typeUrl: built.typeUrl,
            nonce,
          });
        }
      } finally {
        events.close();
      }
    },

    async fetchSecrets(req, ctx) {
      const caller = await begin(ctx);
      let built: ReturnType<typeof answer>;
      try {
        built = answer(caller, req, req.node);
      } catch (err) {
        log.error('error building fetch secrets response', {
          pid: caller.pid,
          error: describeError(err),
        });
        throw err;
      }
      log.debug('sending FetchSecrets response', {
        pid: caller.pid,
        resource_names: req.resourceNames,
        count: built.resources.length,
      });
      return { versionInfo: '', resources: built.resources, typeUrl: built.typeUrl, nonce: '' };
    },

    // biome-ignore lint/correctness/useYield: answers before streaming anything
    async *deltaSecrets() {
      throw deltaUnimplemented();
    },
  };
}

/**
 * Mounts the SDS service on a connect router (the Workload API server's, so both share the
 * socket, the caller resolver and the transport limits).
 */
export function registerSdsService(router: ConnectRouter, options: SdsServiceOptions): void {
  router.service(sdsv3.SecretDiscoveryService, createSdsHandlers(options));
}
