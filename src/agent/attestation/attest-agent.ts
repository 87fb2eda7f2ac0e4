/**
 * Client helpers for the server's agent API: {@link attestAgent} drives one AttestAgent
 * stream (params → challenge ↔ challenge_response rounds → result), {@link renewAgent}
 * renews the agent SVID (RenewAgent). Message semantics follow SPIRE's
 * `spire.api.server.agent.v1`.
 *
 * What these trust: nothing they receive is verified here. The caller must verify the
 * returned SVID chain against its trust bundle (`verifyX509Svid`) and check that the ID is
 * the agent ID it expects before using it.
 *
 * Errors: the server's status as a ConnectError (InvalidArgument, PermissionDenied, …);
 * `ERR_AGENT_ATTESTATION_INVALID` when the server breaks the protocol (no result, an empty
 * SVID); the attestor's own errors.
 */
import { create } from '@bufbuild/protobuf';
import { createClient, type Transport } from '@connectrpc/connect';
import { SpireEdgeError } from '../../common/errors.js';
// The generated modules themselves, not src/protocol/index.ts: that would load every API's
// descriptors (admin, SDS…) on the agent's first attestation.
import * as agentv1 from '../../protocol/gen/spire/api/server/agent/v1/agent_pb.js';
import type { X509SVID } from '../../protocol/gen/spire/api/types/x509svid_pb.js';
import type { AgentNodeAttestor } from './node-attestor.js';

/** An agent X509-SVID as the server returned it (unverified). */
export interface AgentSvid {
  /** The SPIFFE ID the server put in the response. */
  readonly id: string;
  /** Leaf first, then intermediates up to (excluding) the root; DER. */
  readonly certChain: Uint8Array[];
  /** The leaf's notAfter, seconds since the epoch. */
  readonly expiresAt: number;
}

/** The result of {@link attestAgent}. */
export interface AttestAgentResult {
  readonly svid: AgentSvid;
  /** Whether the server lets this node attest again instead of renewing (SPIRE's `reattestable`). */
  readonly reattestable: boolean;
}

/** Options of {@link attestAgent}. */
export interface AttestAgentOptions {
  /** A PKCS#10 request (DER) for the agent's new key (see createCsr). */
  readonly csr: Uint8Array;
  readonly signal?: AbortSignal;
  /** Deadline of the whole exchange; default 60 s. */
  readonly timeoutMs?: number;
}

function protocolError(message: string): SpireEdgeError {
  return new SpireEdgeError('ERR_AGENT_ATTESTATION_INVALID', message);
}

function svidOf(svid: X509SVID | undefined): AgentSvid {
  if (svid === undefined || svid.certChain.length === 0 || svid.id === undefined) {
    throw protocolError('the server returned an empty agent SVID');
  }
  return {
    id: `spiffe://${svid.id.trustDomain}${svid.id.path}`,
    certChain: svid.certChain.map((c) => new Uint8Array(c)),
    expiresAt: Number(svid.expiresAt),
  };
}

/** A request stream the caller writes to while the responses are read. */
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

/**
 * Attests this node: sends the attestor's payload and the CSR, answers every challenge
 * with the attestor, and resolves with the agent SVID.
 */
export async function attestAgent(
  transport: Transport,
  attestor: AgentNodeAttestor,
  options: AttestAgentOptions,
): Promise<AttestAgentResult> {
  if (!(options?.csr instanceof Uint8Array) || options.csr.length === 0) {
    throw new TypeError('attestAgent needs a DER CSR');
  }
  const client = createClient(agentv1.Agent, transport);
  const requests = new RequestQueue<agentv1.AttestAgentRequest>();
  requests.push(
    create(agentv1.AttestAgentRequestSchema, {
      step: {
        case: 'params',
        value: {
          data: { type: attestor.type, payload: await attestor.payload() },
          params: { csr: options.csr },
        },
      },
    }),
  );
  const abort = new AbortController();
  let responses: AsyncIterator<agentv1.AttestAgentResponse> | undefined;
  try {
    // Our own deadline (an unref'd timer) and an abort on the way out: connect's timeoutMs
    // would keep a timer, and the process, alive until the deadline once we stop reading.
    const signals = [abort.signal, AbortSignal.timeout(options.timeoutMs ?? 60_000)];
    if (options.signal !== undefined) signals.push(options.signal);
    responses = client
      .attestAgent(requests, { signal: AbortSignal.any(signals) })
      [Symbol.asyncIterator]();
    let next = responses.next();
    for (;;) {
      const r = await next;
      if (r.done === true) throw protocolError('the server ended attestation without a result');
      const res = r.value;
      if (res.step.case === 'result') {
        requests.close();
        return { svid: svidOf(res.step.value.svid), reattestable: res.step.value.reattestable };
      }
      if (res.step.case !== 'challenge') {
        throw protocolError('the server sent an AttestAgentResponse without a step');
      }
      // Watch the stream while the attestor works: the server may give up (deadline,
      // refusal) and the answer must not wait for an attestor that never returns.
      next = responses.next();
      const ended = next.then(
        () => undefined,
        () => undefined,
      );
      const answer = await Promise.race([
        attestor.respond(res.step.value, abort.signal).then((bytes) => ({ bytes })),
        ended.then(() => undefined),
      ]);
      if (answer === undefined) {
        abort.abort();
        const early = await next; // rejects with the server's status when it failed
        if (early.done === true)
          throw protocolError('the server ended attestation without a result');
        throw protocolError('the server sent a message before the challenge response');
      }
      requests.push(
        create(agentv1.AttestAgentRequestSchema, {
          step: { case: 'challengeResponse', value: answer.bytes },
        }),
      );
    }
  } finally {
    abort.abort();
    requests.close();
  }
}

/**
 * Renews the agent SVID over a transport authenticated with the current agent SVID. The
 * server records the new serial as pending; it becomes current when the agent first
 * connects with the new SVID (SPIRE's behaviour).
 */
export async function renewAgent(
  transport: Transport,
  options: { readonly csr: Uint8Array; readonly signal?: AbortSignal },
): Promise<AgentSvid> {
  if (!(options?.csr instanceof Uint8Array) || options.csr.length === 0) {
    throw new TypeError('renewAgent needs a DER CSR');
  }
  const client = createClient(agentv1.Agent, transport);
  const res = await client.renewAgent(
    { params: { csr: options.csr } },
    options.signal === undefined ? {} : { signal: options.signal },
  );
  return svidOf(res.svid);
}
