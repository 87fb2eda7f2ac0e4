/**
 * A SPIFFE Workload API client (go-spiffe's `workloadapi.Client` in TypeScript), over the
 * Unix socket. Used by the `spire-agent api …` commands and by tests.
 *
 * The socket: the `socket` option (path or `unix:///path`), else `SPIFFE_ENDPOINT_SOCKET`,
 * else SPIRE's default `/tmp/spire-agent/public/api.sock`. Every request carries
 * `workload.spiffe.io: true`.
 *
 * What it trusts: the agent on the socket (the Workload API is the root of trust for the
 * workload: its SVIDs and bundles are taken as given). What it checks: every answer parses
 * (X509-SVID shape and key match, bundles, JWKS, JWT-SVID shape); JWT-SVIDs are parsed
 * WITHOUT signature verification, as go-spiffe's client does (they come from the agent).
 *
 * Errors: the server's status as a ConnectError (`err.code`: `Code.PermissionDenied` "no
 * identity issued", `Code.Unavailable`, `Code.InvalidArgument`, …; a missing socket is
 * `Unavailable`); answers that do not parse reject with `ERR_WORKLOAD_RESPONSE_INVALID`,
 * `ERR_X509_SVID_INVALID`, `ERR_BUNDLE_INVALID`, `ERR_JWT_SVID_INVALID`.
 */
import type { JsonObject } from '@bufbuild/protobuf';
import { type Client, Code, ConnectError, createClient } from '@connectrpc/connect';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import {
  createUdsTransport,
  type GrpcClientOptions,
  type GrpcClientTransport,
} from '../../common/grpc.js';
import { WORKLOAD_API_HEADER, workload } from '../../protocol/index.js';
import { BundleSet } from '../../spiffe/bundle-set.js';
import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../../spiffe/id.js';
import { parseJwtBundle } from '../../spiffe/jwt-bundle.js';
import { type JwtSvid, parseJwtSvidInsecure } from '../../spiffe/jwt-svid.js';
import { parseX509Bundle, type X509Bundle } from '../../spiffe/x509-bundle.js';
import { parseX509SvidRaw, type X509Svid } from '../../spiffe/x509-svid.js';
import { workloadApiEndpoint } from './endpoint.js';

/** Options of {@link WorkloadApiClient}. */
export interface WorkloadApiClientOptions extends GrpcClientOptions {
  /** Socket path or `unix:///path`; overrides `SPIFFE_ENDPOINT_SOCKET`. */
  readonly socket?: string;
  /** Where to read `SPIFFE_ENDPOINT_SOCKET` (default `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Per-call options. */
export interface WorkloadCallOptions {
  readonly signal?: AbortSignal;
  /** Deadline of the call (for streams: of the first message), ms. */
  readonly timeoutMs?: number;
}

/** One `FetchX509SVID` message, parsed (go-spiffe's `X509Context`). */
export interface X509Context {
  /** The SVIDs, in the server's order; later SVIDs repeating a non-empty hint are dropped. */
  readonly svids: readonly X509Svid[];
  /** Every trust domain's X.509 bundle: the SVIDs' own and the federated ones. */
  readonly bundles: BundleSet;
  /** The federated bundles only, by trust domain name. */
  readonly federatedBundles: ReadonlyMap<string, X509Bundle>;
  readonly crl: readonly Uint8Array[];
  /** The message as received (for tools that write its bytes out). */
  readonly response: workload.X509SVIDResponse;
}

/** Arguments of {@link WorkloadApiClient.fetchJwtSvids}. */
export interface FetchJwtSvidParams {
  /** At least one audience. */
  readonly audience: string | readonly string[];
  /** Only this identity's token. */
  readonly spiffeId?: string;
}

/** A JWT-SVID from `FetchJWTSVID` (parsed, not verified) with its hint. */
export interface FetchedJwtSvid {
  readonly svid: JwtSvid;
  readonly hint: string;
}

/** The answer of `ValidateJWTSVID`. */
export interface ValidatedJwtSvid {
  readonly spiffeId: SpiffeId;
  readonly claims: JsonObject;
}

/** Backoff of the watch loops: linear from `initialMs` to `maxMs` (go-spiffe: 1 s … 30 s). */
export interface WatchBackoff {
  readonly initialMs: number;
  readonly maxMs: number;
}

/** Options of the watch methods. */
export interface WatchOptions<T> {
  /** Called with every parsed update. */
  readonly onUpdate: (update: T) => void;
  /** Called with every failure (stream error, unparsable update) before retrying. */
  readonly onError?: (err: unknown) => void;
  /** Ends the watch. */
  readonly signal?: AbortSignal;
  readonly backoff?: WatchBackoff;
}

const DEFAULT_BACKOFF: WatchBackoff = { initialMs: 1000, maxMs: 30_000 };

function invalidResponse(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_WORKLOAD_RESPONSE_INVALID',
    message,
    cause === undefined ? {} : { cause },
  );
}

function trustDomainOfKey(key: string) {
  try {
    return parseTrustDomain(key);
  } catch (err) {
    throw invalidResponse(`bundle key ${JSON.stringify(key)} is not a trust domain`, err);
  }
}

/** Parses a `FetchX509SVID` message as go-spiffe does (`parseX509Context`). */
export function parseX509Context(resp: workload.X509SVIDResponse): X509Context {
  if (resp.svids.length === 0) throw invalidResponse('no SVIDs in response');
  const hints = new Set<string>();
  const svids: X509Svid[] = [];
  const bundles = new BundleSet();
  for (const s of resp.svids) {
    let id: SpiffeId;
    try {
      id = parseSpiffeId(s.spiffeId);
    } catch (err) {
      throw invalidResponse(`svid spiffe_id ${JSON.stringify(s.spiffeId)} is invalid`, err);
    }
    if (!bundles.has(id.trustDomain)) {
      bundles.set(parseX509Bundle(id.trustDomain, s.bundle));
    }
    if (s.hint !== '' && hints.has(s.hint)) continue;
    hints.add(s.hint);
    const svid = parseX509SvidRaw(s.x509Svid, s.x509SvidKey, s.hint === '' ? {} : { hint: s.hint });
    if (!svid.id.equals(id)) {
      throw invalidResponse(
        `svid spiffe_id ${s.spiffeId} does not match its certificate's ${svid.id.toString()}`,
      );
    }
    svids.push(svid);
  }
  const federated = new Map<string, X509Bundle>();
  for (const [key, der] of Object.entries(resp.federatedBundles)) {
    const td = trustDomainOfKey(key);
    const b = parseX509Bundle(td, der);
    federated.set(td.name, b);
    bundles.set(b);
  }
  return { svids, bundles, federatedBundles: federated, crl: resp.crl, response: resp };
}

/** Parses a `FetchX509Bundles` message into a bundle set. */
export function parseX509BundlesResponse(resp: workload.X509BundlesResponse): BundleSet {
  const set = new BundleSet();
  for (const [key, der] of Object.entries(resp.bundles)) {
    set.set(parseX509Bundle(trustDomainOfKey(key), der));
  }
  return set;
}

/** Parses a `FetchJWTBundles` message (JWKS per trust domain) into a bundle set. */
export function parseJwtBundlesResponse(resp: workload.JWTBundlesResponse): BundleSet {
  const set = new BundleSet();
  for (const [key, jwks] of Object.entries(resp.bundles)) {
    set.set(parseJwtBundle(trustDomainOfKey(key), jwks));
  }
  return set;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** A Workload API client on one connection (opened on first use). */
export class WorkloadApiClient {
  /** The socket path in use. */
  readonly socketPath: string;
  readonly #transport: GrpcClientTransport;
  readonly #client: Client<typeof workload.SpiffeWorkloadAPI>;
  readonly #headers = { [WORKLOAD_API_HEADER]: 'true' };

  constructor(options: WorkloadApiClientOptions = {}) {
    this.socketPath = workloadApiEndpoint(options.socket, options.env ?? process.env);
    this.#transport = createUdsTransport(this.socketPath, options);
    this.#client = createClient(workload.SpiffeWorkloadAPI, this.#transport);
  }

  /** The first `FetchX509SVID` message: the caller's SVIDs and bundles. */
  async fetchX509Context(options: WorkloadCallOptions = {}): Promise<X509Context> {
    const resp = await this.#first(
      (signal) => this.#client.fetchX509SVID({}, { headers: this.#headers, signal }),
      options,
    );
    return parseX509Context(resp);
  }

  /** The first `FetchX509Bundles` message. */
  async fetchX509Bundles(options: WorkloadCallOptions = {}): Promise<BundleSet> {
    const resp = await this.#first(
      (signal) => this.#client.fetchX509Bundles({}, { headers: this.#headers, signal }),
      options,
    );
    return parseX509BundlesResponse(resp);
  }

  /** The first `FetchJWTBundles` message. */
  async fetchJwtBundles(options: WorkloadCallOptions = {}): Promise<BundleSet> {
    const resp = await this.#first(
      (signal) => this.#client.fetchJWTBundles({}, { headers: this.#headers, signal }),
      options,
    );
    return parseJwtBundlesResponse(resp);
  }

  /**
   * JWT-SVIDs for an audience: one per identity, or only `spiffeId`'s. Tokens are parsed
   * (not verified); later tokens repeating a non-empty hint are dropped, as go-spiffe does.
   */
  async fetchJwtSvids(
    params: FetchJwtSvidParams,
    options: WorkloadCallOptions = {},
  ): Promise<FetchedJwtSvid[]> {
    const audience = typeof params.audience === 'string' ? [params.audience] : [...params.audience];
    if (audience.length === 0) throw new TypeError('audience must not be empty');
    const resp = await this.#client.fetchJWTSVID(
      { audience, spiffeId: params.spiffeId ?? '' },
      this.#callOptions(options),
    );
    if (resp.svids.length === 0) throw invalidResponse('there were no SVIDs in the response');
    const hints = new Set<string>();
    const out: FetchedJwtSvid[] = [];
    for (const s of resp.svids) {
      if (s.hint !== '' && hints.has(s.hint)) continue;
      hints.add(s.hint);
      const svid = parseJwtSvidInsecure(s.svid);
      if (svid.id.toString() !== s.spiffeId) {
        throw invalidResponse(`JWT-SVID sub ${svid.id.toString()} does not match ${s.spiffeId}`);
      }
      out.push({ svid, hint: s.hint });
    }
    return out;
  }

  /** Asks the agent to validate `token` for `audience`; the agent's answer, parsed. */
  async validateJwtSvid(
    token: string,
    audience: string,
    options: WorkloadCallOptions = {},
  ): Promise<ValidatedJwtSvid> {
    const resp = await this.#client.validateJWTSVID(
      { svid: token, audience },
      this.#callOptions(options),
    );
    let spiffeId: SpiffeId;
    try {
      spiffeId = parseSpiffeId(resp.spiffeId);
    } catch (err) {
      throw invalidResponse('validation answer holds no valid spiffe_id', err);
    }
    return { spiffeId, claims: resp.claims ?? {} };
  }

  /**
   * Streams X.509 contexts until `signal` aborts (then resolves). Reconnects with backoff
   * after errors, except `InvalidArgument` (the request itself is wrong), which rejects —
   * go-spiffe's `WatchX509Context` rules.
   */
  watchX509Context(options: WatchOptions<X509Context>): Promise<void> {
    return this.#watch(
      (signal) => this.#client.fetchX509SVID({}, { headers: this.#headers, signal }),
      parseX509Context,
      options,
    );
  }

  /** Streams X.509 bundle sets (see {@link watchX509Context} for the rules). */
  watchX509Bundles(options: WatchOptions<BundleSet>): Promise<void> {
    return this.#watch(
      (signal) => this.#client.fetchX509Bundles({}, { headers: this.#headers, signal }),
      parseX509BundlesResponse,
      options,
    );
  }

  /** Streams JWT bundle sets (see {@link watchX509Context} for the rules). */
  watchJwtBundles(options: WatchOptions<BundleSet>): Promise<void> {
    return this.#watch(
      (signal) => this.#client.fetchJWTBundles({}, { headers: this.#headers, signal }),
      parseJwtBundlesResponse,
      options,
    );
  }

  /** Closes the connection; calls in flight fail. */
  close(): void {
    this.#transport.close();
  }

  #callOptions(options: WorkloadCallOptions) {
    return {
      headers: this.#headers,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    };
  }

  async #first<T>(
    open: (signal: AbortSignal) => AsyncIterable<T>,
    options: WorkloadCallOptions,
  ): Promise<T> {
    const ac = new AbortController();
    const outer = options.signal;
    const onAbort = () => ac.abort(outer?.reason);
    outer?.addEventListener('abort', onAbort, { once: true });
    if (outer?.aborted) ac.abort(outer.reason);
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(
            () => ac.abort(new ConnectError('deadline exceeded', Code.DeadlineExceeded)),
            options.timeoutMs,
          );
    try {
      for await (const message of open(ac.signal)) return message;
      throw invalidResponse('the stream ended without a message');
    } catch (err) {
      if (ac.signal.aborted && ac.signal.reason instanceof ConnectError) throw ac.signal.reason;
      throw err;
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onAbort);
      ac.abort();
    }
  }

  async #watch<M, T>(
    open: (signal: AbortSignal) => AsyncIterable<M>,
    parse: (m: M) => T,
    options: WatchOptions<T>,
  ): Promise<void> {
    if (typeof options?.onUpdate !== 'function') throw new TypeError('onUpdate is required');
    const { signal, onUpdate } = options;
    const onError = options.onError ?? (() => {});
    const backoff = options.backoff ?? DEFAULT_BACKOFF;
    let attempt = 0;
    const stopped = () => signal?.aborted === true;
    while (!stopped()) {
      const ac = new AbortController();
      const onAbort = () => ac.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      let failure: unknown;
      try {
        for await (const m of open(ac.signal)) {
          attempt = 0;
          let update: T;
          try {
            update = parse(m);
          } catch (err) {
            onError(err);
            continue;
          }
          try {
            onUpdate(update);
          } catch (err) {
            // the caller's bug must not tear the stream down and reconnect in a loop
            onError(err);
          }
        }
        failure = new ConnectError('the stream ended', Code.Unavailable);
      } catch (err) {
        failure = err;
      } finally {
        signal?.removeEventListener('abort', onAbort);
        ac.abort();
      }
      if (stopped()) return;
      onError(failure);
      const code = failure instanceof ConnectError ? failure.code : undefined;
      if (code === Code.InvalidArgument || code === Code.Canceled) {
        throw failure instanceof Error
          ? failure
          : invalidResponse(`watch failed: ${describeError(failure)}`);
      }
      const delay = Math.min(backoff.initialMs * (attempt + 1), backoff.maxMs);
      attempt++;
      await sleep(delay, signal);
    }
  }
}
