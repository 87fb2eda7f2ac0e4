/**
 * `spire.api.server.agent.v1.Agent`, the methods agents call (SPIRE's
 * `pkg/server/api/agent/v1/service.go`):
 *
 * - **AttestAgent** (bidi stream, open to anyone): `params {data {type, payload}, params
 *   {csr}}` → zero or more `challenge` ↔ `challenge_response` rounds driven by the node
 *   attestor for `type` → `result {svid, reattestable}`. Then: a banned node is refused;
 *   the agent SVID is signed from the CSR for `agent_ttl`; the node selectors are stored
 *   and the attested node created or updated (serial, expiry, attestation type,
 *   can_reattest, evidence summary). An existing re-attestable node re-attests in place.
 * - **RenewAgent** (agent): CSR in, new agent SVID out; the new serial is recorded as
 *   pending and becomes current when the agent first presents it (see caller.ts). A node
 *   that can re-attest must re-attest instead (PermissionDenied, AGENT_MUST_REATTEST).
 * - **PostStatus** (agent): accepted and ignored (SPIRE records the agent version).
 *
 * Status codes as SPIRE: malformed params and CSRs InvalidArgument; unknown attestation
 * type FailedPrecondition; evidence that does not verify PermissionDenied; join tokens that
 * are unknown, used or expired InvalidArgument; banned PermissionDenied; rate limits
 * ResourceExhausted.
 */
import { create } from '@bufbuild/protobuf';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { describeError, isSpireEdgeError, SpireEdgeError } from '../../../common/errors.js';
import { grpcPeer } from '../../../common/grpc.js';
import { agentv1, types } from '../../../protocol/index.js';
import { parseCsr } from '../../../spiffe/csr.js';
import { parseSpiffeId } from '../../../spiffe/id.js';
import { parseCertificate } from '../../../spiffe/x509-cert.js';
import { type AttestationResult, attestationError } from '../../attestation/node-attestor.js';
import type { AttestedNode } from '../../datastore/types.js';
import { agentCaller, permissionDenied } from './caller.js';
import { serialToDecimal, x509SvidToProto } from './convert.js';
import type { AgentApiDeps } from './deps.js';

function invalidArgument(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_AGENT_API_INVALID_ARGUMENT',
    message,
    cause === undefined ? {} : { cause },
  );
}

/** A response stream fed by a concurrent task. */
class Outbox<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  #wake: (() => void) | undefined;
  #done = false;
  #error: { err: unknown } | undefined;

  push(item: T): void {
    this.#items.push(item);
    this.#wake?.();
  }

  close(): void {
    this.#done = true;
    this.#wake?.();
  }

  fail(err: unknown): void {
    this.#error = { err };
    this.#done = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const item = this.#items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      if (this.#error !== undefined) throw this.#error.err;
      if (this.#done) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }
}

interface SignedAgentSvid {
  readonly certChain: Uint8Array[];
  readonly expiresAt: Date;
  readonly serial: string;
  readonly notAfter: number;
}

async function signAgentSvid(
  deps: AgentApiDeps,
  agentId: string,
  csr: Uint8Array,
): Promise<SignedAgentSvid> {
  const signed = await deps.context.ca.signX509SvidFromCsr(csr, {
    spiffeId: agentId,
    ttlSeconds: deps.context.agentTtl,
  });
  const leaf = parseCertificate(signed.certChain[0]!);
  deps.context.metrics.svidIssued('x509', 'agent');
  return {
    certChain: signed.certChain,
    expiresAt: signed.expiresAt,
    serial: serialToDecimal(leaf.serial),
    notAfter: Math.floor(leaf.notAfter.getTime() / 1000),
  };
}

function checkAgentId(deps: AgentApiDeps, result: AttestationResult): string {
  const td = deps.context.trustDomain;
  let ok = false;
  try {
    const id = parseSpiffeId(result.agentId);
    ok = id.memberOf(td) && id.path.startsWith('/spire/agent/');
  } catch {
    ok = false;
  }
  if (!ok) {
    // A misbehaving attestor, not the agent's fault: Internal, as SPIRE.
    throw new SpireEdgeError(
      'ERR_AGENT_API_ATTESTOR_FAILED',
      `the node attestor produced an invalid agent ID (must be under ${td.idString()}/spire/agent/)`,
    );
  }
  return result.agentId;
}

/** Creates or updates the attested node after a successful attestation. */
async function storeNode(
  deps: AgentApiDeps,
  type: string,
  result: AttestationResult,
  svid: SignedAgentSvid,
  existing: AttestedNode | undefined,
): Promise<AttestedNode> {
  const ds = deps.context.dataStore;
  const evidence = JSON.stringify(result.evidence ?? {});
  const update = async (): Promise<AttestedNode> => {
    await ds.setNodeSelectors(result.agentId, result.selectors);
    return ds.updateAttestedNode({
      spiffeId: result.agentId,
      set: {
        certSerialNumber: svid.serial,
        certNotAfter: svid.notAfter,
        newCertSerialNumber: '',
        newCertNotAfter: 0,
        canReattest: result.canReattest,
        evidence,
      },
    });
  };
  if (existing !== undefined) return update();
  try {
    return await ds.createAttestedNode({
      spiffeId: result.agentId,
      attestationDataType: type,
      certSerialNumber: svid.serial,
      certNotAfter: svid.notAfter,
      canReattest: result.canReattest,
      selectors: result.selectors,
      evidence,
    });
  } catch (err) {
    // Another server (or a concurrent stream) created it first: update instead.
    if (isSpireEdgeError(err, 'ERR_DATASTORE_ALREADY_EXISTS')) return update();
    throw err;
  }
}

async function runAttestation(
  deps: AgentApiDeps,
  requests: AsyncIterable<agentv1.AttestAgentRequest>,
  ctx: HandlerContext,
  send: (m: agentv1.AttestAgentResponse) => void,
): Promise<void> {
  const peer = grpcPeer(ctx);
  const remoteAddress = peer.kind === 'tls' ? peer.remoteAddress : undefined;
  await deps.limiters.attest?.take(remoteAddress ?? 'unknown', 1, ctx.signal);

  const it = requests[Symbol.asyncIterator]();
  const next = async (what: string): Promise<agentv1.AttestAgentRequest> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            attestationError(
              'ERR_ATTESTATION_DEADLINE_EXCEEDED',
              `agent did not send the ${what} within ${deps.challengeTimeoutMs} ms`,
            ),
          ),
        deps.challengeTimeoutMs,
      );
      timer.unref();
    });
    try {
      const r = await Promise.race([it.next(), timeout]);
      if (r.done === true) {
        throw invalidArgument(`failed to receive ${what} from stream: the agent closed it`);
      }
      return r.value;
    } finally {
      clearTimeout(timer);
    }
  };

  const first = await next('attestation request');
  if (first.step.case !== 'params') throw invalidArgument('malformed param: missing params');
  const params = first.step.value;
  if (params.data === undefined) throw invalidArgument('malformed param: missing attestation data');
  if (params.params === undefined) {
    throw invalidArgument('malformed param: missing X509-SVID parameters');
  }
  const csr = params.params.csr;
  if (csr.length === 0) throw invalidArgument('malformed param: missing CSR');
  const type = params.data.type;
  if (type === '') throw invalidArgument('malformed param: missing attestation data type');
  if (params.data.payload.length === 0) {
    throw invalidArgument('malformed param: missing attestation data payload');
  }
  // Refuse a bad CSR before the attestor consumes anything (a join token is single-use).
  try {
    parseCsr(csr);
  } catch (err) {
    throw invalidArgument(`failed to parse CSR: ${describeError(err)}`, err);
  }
  const attestor = deps.attestors.get(type);
  if (attestor === undefined) {
    throw new SpireEdgeError(
      'ERR_AGENT_API_FAILED_PRECONDITION',
      `error getting node attestor: could not find node attestor type "${type}"`,
    );
  }

  const metrics = deps.context.metrics;
  let result: AttestationResult;
  try {
    result = await attestor.attest(
      params.data.payload,
      async (challenge) => {
        send(
          create(agentv1.AttestAgentResponseSchema, {
            step: { case: 'challenge', value: challenge },
          }),
        );
        const r = await next('challenge response');
        if (r.step.case !== 'challengeResponse') {
          throw invalidArgument('expected a challenge response from the agent');
        }
        return r.step.value;
      },
      {
        ...(remoteAddress === undefined ? {} : { remoteAddress }),
        signal: ctx.signal,
      },
    );
  } catch (err) {
    metrics.attestation(type, 'error');
    throw err;
  }

  try {
    const agentId = checkAgentId(deps, result);
    const existing = await deps.context.dataStore.getAttestedNode(agentId);
    if (
      existing !== undefined &&
      (existing.banned || (existing.certSerialNumber === '' && existing.newCertSerialNumber === ''))
    ) {
      throw permissionDenied(
        types.PermissionDeniedDetails_Reason.AGENT_BANNED,
        'failed to attest: agent is banned',
      );
    }
    const svid = await signAgentSvid(deps, agentId, csr);
    const node = await storeNode(deps, type, result, svid, existing);
    deps.entries.noteAttestedNode?.(node);
    metrics.attestation(type, 'ok');
    deps.log.info('agent attestation request completed', {
      agent_id: agentId,
      node_attestor_type: type,
      address: remoteAddress,
      reattestable: result.canReattest,
    });
    send(
      create(agentv1.AttestAgentResponseSchema, {
        step: {
          case: 'result',
          value: {
            svid: x509SvidToProto(agentId, svid.certChain, svid.expiresAt),
            reattestable: result.canReattest,
          },
        },
      }),
    );
  } catch (err) {
    metrics.attestation(type, 'error');
    throw err;
  }
}

/** The agent-facing methods of the Agent service. */
export function createAgentService(deps: AgentApiDeps): Partial<ServiceImpl<typeof agentv1.Agent>> {
  return {
    async *attestAgent(requests, ctx) {
      const out = new Outbox<agentv1.AttestAgentResponse>();
      const work = runAttestation(deps, requests, ctx, (m) => out.push(m)).then(
        () => out.close(),
        (err: unknown) => out.fail(err),
      );
      try {
        yield* out;
      } finally {
        await work;
      }
    },

    async renewAgent(req, ctx) {
      const caller = agentCaller(ctx);
      await deps.limiters.sign?.take(caller.id, 1, ctx.signal);
      if (caller.node.canReattest) {
        throw permissionDenied(
          types.PermissionDeniedDetails_Reason.AGENT_MUST_REATTEST,
          'agent must reattest instead of renew',
        );
      }
      if (req.params === undefined) throw invalidArgument('params cannot be nil');
      if (req.params.csr.length === 0) throw invalidArgument('missing CSR');
      const svid = await signAgentSvid(deps, caller.id, req.params.csr);
      await deps.context.dataStore.updateAttestedNode({
        spiffeId: caller.id,
        set: { newCertSerialNumber: svid.serial, newCertNotAfter: svid.notAfter },
      });
      deps.log.info('renewed agent SVID', { agent_id: caller.id });
      return { svid: x509SvidToProto(caller.id, svid.certChain, svid.expiresAt) };
    },

    async postStatus(_req, ctx) {
      const caller = agentCaller(ctx);
      await deps.limiters.postStatus?.take(caller.remoteAddress ?? caller.id, 1, ctx.signal);
      return {};
    },
  };
}
