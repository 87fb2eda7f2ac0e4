/**
 * The agent's client of the server's agent API (SPIRE's `spire.api.server.*.v1`, the methods an
 * agent calls), behind the {@link AgentServerClient} interface the managers use, so their unit
 * tests can run against a fake server.
 *
 * {@link createAgentServerClient} speaks gRPC over TLS: the server must present
 * `spiffe://<td>/spire/server` chaining to the agent's current bundle; AttestAgent goes without
 * a client certificate, every other call with the agent SVID. Transports are rebuilt when the
 * bundle or the agent SVID changes (the old one is closed a little later, so calls in flight
 * finish). Every call has a deadline.
 *
 * What it checks: the wire shape of answers (convert.ts). What the caller must still check:
 * SVIDs against the bundle and their IDs and keys (the cache and node identity managers do).
 *
 * Errors: the server's status as a ConnectError (`Unavailable` when it cannot be reached);
 * {@link agentRejection} tells which of them mean the server no longer accepts this agent.
 */
import type { KeyObject } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Transport } from '@connectrpc/connect';
import type { GrpcClientTransport } from '../../common/grpc.js';
// The generated modules of the services used, not src/protocol/index.js (which loads every
// API's descriptors, SDS's included): the agent keeps only what it uses in memory.
import * as bundlev1 from '../../protocol/gen/spire/api/server/bundle/v1/bundle_pb.js';
import * as entryv1 from '../../protocol/gen/spire/api/server/entry/v1/entry_pb.js';
import * as svidv1 from '../../protocol/gen/spire/api/server/svid/v1/svid_pb.js';
import * as types from '../../protocol/gen/spire/api/types/index.js';
import type { TrustDomain } from '../../spiffe/id.js';
import type { AgentSvid, AttestAgentResult } from '../attestation/attest-agent.js';
import type { AgentNodeAttestor } from '../attestation/node-attestor.js';
import { createAgentApiTransport } from '../attestation/server-transport.js';
import type { BundleRecord, EntryRecord } from '../storage/records.js';
import { bundleFromProto, entryFromProto, invalidResponse, spiffeIdString } from './convert.js';

/** One X509-SVID to mint: the entry and a CSR for a key the agent generated. */
export interface X509SvidParam {
  readonly entryId: string;
  readonly csr: Uint8Array;
}

/** What BatchNewX509SVID answered for one param (unverified). */
export type X509SvidResult =
  | {
      readonly ok: true;
      readonly spiffeId: string;
      /** Leaf first; DER. */
      readonly certChain: readonly Uint8Array[];
    }
  | { readonly ok: false; readonly code: Code; readonly message: string };

/** A JWT-SVID from NewJWTSVID (unverified). */
export interface IssuedJwtSvid {
  readonly token: string;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
}

/** The authorized entries as the server has them. */
export interface AuthorizedEntries {
  /** Every authorized entry ID with its revision number. */
  readonly revisions: ReadonlyMap<string, number>;
  /** Full entries for the IDs that are new or whose revision differs from what was known. */
  readonly changed: readonly EntryRecord[];
  /** Entries the server sent that the agent could not use (logged by the caller). */
  readonly invalid: readonly { readonly id: string; readonly error: Error }[];
}

/** The calls the agent makes to its server. */
export interface AgentServerClient {
  /** AttestAgent with `attestor` for the key of `csr` (no client certificate). */
  attestAgent(
    attestor: AgentNodeAttestor,
    csr: Uint8Array,
    signal?: AbortSignal,
  ): Promise<AttestAgentResult>;
  /** RenewAgent with the current agent SVID. */
  renewAgent(csr: Uint8Array, signal?: AbortSignal): Promise<AgentSvid>;
  /** GetBundle: the trust domain's bundle. */
  getBundle(signal?: AbortSignal): Promise<BundleRecord>;
  /** GetFederatedBundle; undefined when the server has no bundle for `trustDomain`. */
  getFederatedBundle(trustDomain: string, signal?: AbortSignal): Promise<BundleRecord | undefined>;
  /**
   * SyncAuthorizedEntries: `known` maps the entry IDs the agent holds to their revisions; full
   * entries come back only for IDs that are new or changed (SPIRE's revision-based sync).
   */
  syncAuthorizedEntries(
    known: ReadonlyMap<string, number>,
    signal?: AbortSignal,
  ): Promise<AuthorizedEntries>;
  /** BatchNewX509SVID: one result per param, in order. */
  batchNewX509Svid(
    params: readonly X509SvidParam[],
    signal?: AbortSignal,
  ): Promise<readonly X509SvidResult[]>;
  /** NewJWTSVID for an authorized entry and an audience. */
  newJwtSvid(
    entryId: string,
    audience: readonly string[],
    signal?: AbortSignal,
  ): Promise<IssuedJwtSvid>;
  /** Closes the connections. */
  close(): void;
}

/** Why the server refuses this agent (SPIRE's `PermissionDeniedDetails.Reason`, by name). */
export type AgentRejection =
  | 'expired'
  | 'not-attested'
  | 'not-active'
  | 'banned'
  | 'must-reattest'
  | 'unauthenticated';

/**
 * When `err` is the server refusing this agent's identity (PermissionDenied carrying SPIRE's
 * `PermissionDeniedDetails`, or Unauthenticated: the agent SVID does not chain to the server's
 * authorities), the reason; otherwise undefined (unreachable, overloaded, a bad request).
 */
export function agentRejection(err: unknown): AgentRejection | undefined {
  if (!(err instanceof ConnectError)) return undefined;
  if (err.code === Code.Unauthenticated) return 'unauthenticated';
  if (err.code !== Code.PermissionDenied) return undefined;
  const details = err.findDetails(types.PermissionDeniedDetailsSchema);
  const R = types.PermissionDeniedDetails_Reason;
  for (const d of details) {
    switch (d.reason) {
      case R.AGENT_EXPIRED:
        return 'expired';
      case R.AGENT_NOT_ATTESTED:
        return 'not-attested';
      case R.AGENT_NOT_ACTIVE:
        return 'not-active';
      case R.AGENT_BANNED:
        return 'banned';
      case R.AGENT_MUST_REATTEST:
        return 'must-reattest';
      default:
        break;
    }
  }
  return undefined;
}

/** The agent's current credentials, read for every call. */
export interface AgentCallCredentials {
  /** The trust domain's X.509 authorities (DER); empty before bootstrap. */
  readonly bundle: readonly Uint8Array[];
  /** The agent SVID and key, once attested. */
  readonly svid?: {
    readonly certChain: readonly Uint8Array[];
    readonly privateKey: KeyObject;
  };
}

/** Options of {@link createAgentServerClient}. */
export interface AgentServerClientOptions {
  readonly host: string;
  readonly port: number;
  readonly trustDomain: TrustDomain;
  /** Read for every call (the managers keep the bundle and SVID current). */
  readonly credentials: () => AgentCallCredentials;
  /** Deadline of one call, ms (default 30 000). */
  readonly callTimeoutMs?: number;
  /** How long a replaced transport stays open for calls in flight, ms (default 30 000). */
  readonly retireAfterMs?: number;
}

/** A request stream the caller writes to while it reads the responses. */
class RequestQueue<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  #wake: (() => void) | undefined;
  #closed = false;

  push(item: T): void {
    this.#items.push(item);
    this.#wake?.();
  }

  close(): void {
    this.#closed = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const next = this.#items.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.#closed) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }
}

function noBundle(): ConnectError {
  return new ConnectError(
    'the agent has no trust bundle to authenticate the server with',
    Code.FailedPrecondition,
  );
}

function noSvid(): ConnectError {
  return new ConnectError('the agent has no SVID to authenticate with', Code.FailedPrecondition);
}

/** The gRPC implementation of {@link AgentServerClient}. */
export function createAgentServerClient(options: AgentServerClientOptions): AgentServerClient {
  const timeoutMs = options.callTimeoutMs ?? 30_000;
  const retireAfterMs = options.retireAfterMs ?? 30_000;
  let anon: { key: readonly Uint8Array[]; transport: GrpcClientTransport } | undefined;
  let authed:
    | {
        bundle: readonly Uint8Array[];
        chain: readonly Uint8Array[];
        transport: GrpcClientTransport;
      }
    | undefined;
  const retired = new Set<GrpcClientTransport>();
  let closed = false;

  const retire = (t: GrpcClientTransport): void => {
    retired.add(t);
    const timer = setTimeout(() => {
      retired.delete(t);
      t.close();
    }, retireAfterMs);
    timer.unref();
  };

  const base = () => ({ host: options.host, port: options.port, trustDomain: options.trustDomain });

  const anonymous = (): Transport => {
    if (closed) throw new ConnectError('the server client is closed', Code.Canceled);
    const { bundle } = options.credentials();
    if (bundle.length === 0) throw noBundle();
    if (anon === undefined || anon.key !== bundle) {
      if (anon !== undefined) retire(anon.transport);
      anon = { key: bundle, transport: createAgentApiTransport({ ...base(), bundle }) };
    }
    return anon.transport;
  };

  const authenticated = (): Transport => {
    if (closed) throw new ConnectError('the server client is closed', Code.Canceled);
    const { bundle, svid } = options.credentials();
    if (bundle.length === 0) throw noBundle();
    if (svid === undefined) throw noSvid();
    if (authed === undefined || authed.bundle !== bundle || authed.chain !== svid.certChain) {
      if (authed !== undefined) retire(authed.transport);
      authed = {
        bundle,
        chain: svid.certChain,
        transport: createAgentApiTransport({
          ...base(),
          bundle,
          svid: { certChain: svid.certChain, privateKey: svid.privateKey },
        }),
      };
    }
    return authed.transport;
  };

  const callOptions = (signal?: AbortSignal) => ({
    timeoutMs,
    ...(signal === undefined ? {} : { signal }),
  });

  return {
    // Attestation code is loaded when first used: an agent restarted with a valid SVID may
    // not attest for hours.
    async attestAgent(attestor, csr, signal) {
      const { attestAgent } = await import('../attestation/attest-agent.js');
      return attestAgent(anonymous(), attestor, {
        csr,
        timeoutMs,
        ...(signal === undefined ? {} : { signal }),
      });
    },

    async renewAgent(csr, signal) {
      const { renewAgent } = await import('../attestation/attest-agent.js');
      return renewAgent(authenticated(), { csr, ...(signal === undefined ? {} : { signal }) });
    },

    async getBundle(signal) {
      const b = await createClient(bundlev1.Bundle, authenticated()).getBundle(
        {},
        callOptions(signal),
      );
      return bundleFromProto(b, options.trustDomain);
    },

    async getFederatedBundle(trustDomain, signal) {
      try {
        const b = await createClient(bundlev1.Bundle, authenticated()).getFederatedBundle(
          { trustDomain },
          callOptions(signal),
        );
        return bundleFromProto(b, trustDomain);
      } catch (err) {
        if (err instanceof ConnectError && err.code === Code.NotFound) return undefined;
        throw err;
      }
    },

    async syncAuthorizedEntries(known, signal) {
      const client = createClient(entryv1.Entry, authenticated());
      const requests = new RequestQueue<entryv1.SyncAuthorizedEntriesRequest>();
      requests.push(create(entryv1.SyncAuthorizedEntriesRequestSchema, {}));
      const revisions = new Map<string, number>();
      const changed: EntryRecord[] = [];
      const invalid: { id: string; error: Error }[] = [];
      const take = (e: types.Entry): void => {
        try {
          const rec = entryFromProto(e);
          revisions.set(rec.id, rec.revisionNumber);
          if (known.get(rec.id) !== rec.revisionNumber) changed.push(rec);
        } catch (err) {
          invalid.push({ id: e.id, error: err as Error });
        }
      };
      let pagedRevisions: { id: string; revision: number }[] | undefined;
      let asked = false;
      try {
        for await (const res of client.syncAuthorizedEntries(requests, callOptions(signal))) {
          for (const e of res.entries) take(e);
          if (res.entryRevisions.length > 0) {
            pagedRevisions ??= [];
            for (const r of res.entryRevisions) {
              const n = Number(r.revisionNumber);
              if (r.id === '' || !Number.isSafeInteger(n) || n < 0) {
                throw invalidResponse('SyncAuthorizedEntries sent an invalid entry revision');
              }
              pagedRevisions.push({ id: r.id, revision: n });
            }
          }
          if (res.more) continue;
          if (pagedRevisions !== undefined && !asked) {
            // Paged mode: ask in full only for what is new or changed.
            asked = true;
            const wanted: string[] = [];
            for (const r of pagedRevisions) {
              revisions.set(r.id, r.revision);
              if (known.get(r.id) !== r.revision) wanted.push(r.id);
            }
            if (wanted.length > 0) {
              requests.push(create(entryv1.SyncAuthorizedEntriesRequestSchema, { ids: wanted }));
              continue;
            }
          }
          requests.close();
        }
      } finally {
        requests.close();
      }
      if (pagedRevisions !== undefined) {
        // Entries paged by revision but not sent in full (deleted meanwhile) are dropped.
        const got = new Set(changed.map((e) => e.id));
        for (const r of pagedRevisions) {
          if (known.get(r.id) !== r.revision && !got.has(r.id)) revisions.delete(r.id);
        }
      }
      return { revisions, changed, invalid };
    },

    async batchNewX509Svid(params, signal) {
      if (params.length === 0) return [];
      const res = await createClient(svidv1.SVID, authenticated()).batchNewX509SVID(
        { params: params.map((p) => ({ entryId: p.entryId, csr: p.csr })) },
        callOptions(signal),
      );
      if (res.results.length !== params.length) {
        throw invalidResponse(
          `BatchNewX509SVID answered ${res.results.length} results for ${params.length} requests`,
        );
      }
      return res.results.map((r): X509SvidResult => {
        const code = r.status?.code ?? Code.Unknown;
        if (code !== 0) {
          return { ok: false, code: code as Code, message: r.status?.message ?? '' };
        }
        if (r.svid === undefined || r.svid.certChain.length === 0) {
          return { ok: false, code: Code.Internal, message: 'the server returned an empty SVID' };
        }
        return {
          ok: true,
          spiffeId: spiffeIdString(r.svid.id, 'X509-SVID id'),
          certChain: r.svid.certChain.map((c) => new Uint8Array(c)),
        };
      });
    },

    async newJwtSvid(entryId, audience, signal) {
      const res = await createClient(svidv1.SVID, authenticated()).newJWTSVID(
        { entryId, audience: [...audience] },
        callOptions(signal),
      );
      const svid = res.svid;
      if (svid === undefined || svid.token === '')
        throw invalidResponse('the server returned an empty JWT-SVID');
      return {
        token: svid.token,
        issuedAtMs: Number(svid.issuedAt) * 1000,
        expiresAtMs: Number(svid.expiresAt) * 1000,
      };
    },

    close() {
      closed = true;
      anon?.transport.close();
      authed?.transport.close();
      for (const t of retired) t.close();
      retired.clear();
      anon = undefined;
      authed = undefined;
    },
  };
}
