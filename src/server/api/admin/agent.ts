/**
 * The management methods of `spire.api.server.agent.v1.Agent`: CountAgents, ListAgents,
 * GetAgent, DeleteAgent (evict), BanAgent and CreateJoinToken, with SPIRE's semantics
 * (pkg/server/api/agent/v1). AttestAgent, RenewAgent and PostStatus are the agent API's.
 *
 * - DeleteAgent removes the attested node and its selectors: the agent's renewals fail from
 *   then on and it must attest again (a join-token agent needs a new token).
 * - BanAgent marks the node banned (and clears its serial numbers, as SPIRE does): the
 *   agent API refuses a banned agent until an admin deletes the node.
 * - CreateJoinToken stores only the token's SHA-256 (the datastore hashes it) and returns
 *   the token once; with `agent_id` it also creates SPIRE's node-alias entry
 *   `spiffe://<td>/spire/agent/join_token/<token>` → `agent_id`, selector
 *   `spiffe_id:<that parent ID>`. Tokens are never logged.
 * - GetAgent returns the attestation evidence summary the datastore keeps for the node in
 *   the response header {@link EVIDENCE_HEADER} (the Agent message has no field for it);
 *   read it with {@link readAttestationEvidence}.
 *
 * What it trusts: the caller is an admin (checked by the admin socket's authorizer).
 */
import { create } from '@bufbuild/protobuf';
import { decodeBinaryHeader, encodeBinaryHeader, type ServiceImpl } from '@connectrpc/connect';
import { isSpireEdgeError } from '../../../common/errors.js';
import type { RandomSource } from '../../../common/random.js';
import { type agentv1, types } from '../../../protocol/index.js';
import { type SpiffeId, spiffeIdFromSegments } from '../../../spiffe/id.js';
import type { ServerContext } from '../../context.js';
import type { AttestedNode } from '../../datastore/types.js';
import {
  apiError,
  fromDataStoreError,
  idFromProto,
  invalidField,
  pageSizeFromProto,
  protoFromAttestedNode,
} from '../convert.js';
import { agentFilterFromProto } from '../filters.js';
import { callerFields } from './authorize.js';

/** The methods of the Agent service this module implements. */
export type AgentAdminService = Pick<
  ServiceImpl<typeof agentv1.Agent>,
  'countAgents' | 'listAgents' | 'getAgent' | 'deleteAgent' | 'banAgent' | 'createJoinToken'
>;

/**
 * Response header of GetAgent carrying the node's attestation evidence summary (the
 * datastore's `evidence` JSON text, UTF-8, gRPC binary header encoding). Absent when the
 * node has none or the output mask leaves it out.
 */
export const EVIDENCE_HEADER = 'spire-edge-attestation-evidence-bin';
/** Evidence summaries longer than this are not sent (HTTP/2 header lists are limited). */
export const MAX_EVIDENCE_HEADER_BYTES = 16 * 1024;
/** Response header set instead of {@link EVIDENCE_HEADER} when the summary was too long. */
export const EVIDENCE_TRUNCATED_HEADER = 'spire-edge-attestation-evidence-omitted';

/** The evidence summary of a GetAgent response's headers, or undefined when none was sent. */
export function readAttestationEvidence(headers: Headers): string | undefined {
  const v = headers.get(EVIDENCE_HEADER);
  if (v === null) return undefined;
  return new TextDecoder().decode(decodeBinaryHeader(v));
}

/** The SPIFFE ID path segment of join-token agents (`/spire/agent/join_token/<token>`). */
export const JOIN_TOKEN_ATTESTOR = 'join_token';
const TOKEN_RE = /^[A-Za-z0-9._-]{1,255}$/;

/** A random UUID v4 (SPIRE's join token form) from `random`. */
export function newJoinToken(random: RandomSource): string {
  const b = random.bytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Buffer.from(b).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** `spiffe://<td>/spire/agent/join_token/<token>`: the agent ID a join token attests to. */
export function joinTokenAgentId(td: ServerContext['trustDomain'], token: string): SpiffeId {
  return spiffeIdFromSegments(td, 'spire', 'agent', JOIN_TOKEN_ATTESTOR, token);
}

/**
 * Builds the Agent management service over `context`.
 * Mount with `router.service(agentv1.Agent, createAgentAdminService(context))` (merge with
 * the agent API's methods when both are served by one router).
 */
export function createAgentAdminService(context: ServerContext): AgentAdminService {
  const td = context.trustDomain;
  const ds = context.dataStore;
  const log = context.log.with({ subsystem_name: 'api', service: 'agent' });

  const agentId = (id: types.SPIFFEID | undefined): string =>
    idFromProto(id, 'id', td, 'agent').toString();

  return {
    async countAgents(req) {
      const filter = agentFilterFromProto(req.filter);
      try {
        return { count: await ds.countAttestedNodes(filter) };
      } catch (err) {
        throw fromDataStoreError(err, 'count agents');
      }
    },

    async listAgents(req) {
      const filter = agentFilterFromProto(req.filter);
      const pageSize = pageSizeFromProto(req.pageSize);
      try {
        const page = await ds.listAttestedNodes({
          ...filter,
          ...(pageSize === undefined ? {} : { pagination: { pageSize, pageToken: req.pageToken } }),
        });
        return {
          agents: page.items.map((n) => protoFromAttestedNode(n, req.outputMask)),
          nextPageToken: page.nextPageToken ?? '',
        };
      } catch (err) {
        if (isSpireEdgeError(err, 'ERR_DATASTORE_INVALID_ARGUMENT') && /token/.test(err.message)) {
          throw apiError('ERR_API_INVALID_ARGUMENT', `invalid page_token: ${err.message}`, err);
        }
        throw fromDataStoreError(err, 'list agents');
      }
    },

    async getAgent(req, ctx) {
      const id = agentId(req.id);
      let node: AttestedNode | undefined;
      try {
        node = await ds.getAttestedNode(id);
      } catch (err) {
        throw fromDataStoreError(err, 'fetch agent');
      }
      if (node === undefined) throw apiError('ERR_API_NOT_FOUND', 'agent not found');
      if (node.evidence !== '') {
        const bytes = new TextEncoder().encode(node.evidence);
        if (bytes.length <= MAX_EVIDENCE_HEADER_BYTES) {
          ctx.responseHeader.set(EVIDENCE_HEADER, encodeBinaryHeader(bytes));
        } else {
          ctx.responseHeader.set(EVIDENCE_TRUNCATED_HEADER, String(bytes.length));
        }
      }
      return protoFromAttestedNode(node, req.outputMask);
    },

    async deleteAgent(req, ctx) {
      const id = agentId(req.id);
      try {
        await ds.deleteAttestedNode(id);
      } catch (err) {
        throw fromDataStoreError(err, 'remove agent', 'agent not found');
      }
      log.info('agent deleted', { method: 'DeleteAgent', ...callerFields(ctx), spiffe_id: id });
      return {};
    },

    async banAgent(req, ctx) {
      const id = agentId(req.id);
      try {
        await ds.updateAttestedNode({ spiffeId: id, set: { banned: true }, mask: ['banned'] });
      } catch (err) {
        throw fromDataStoreError(err, 'ban agent', 'agent not found');
      }
      log.info('agent banned', { method: 'BanAgent', ...callerFields(ctx), spiffe_id: id });
      return {};
    },

    async createJoinToken(req, ctx) {
      if (req.ttl < 1) throw invalidField('ttl', 'must be a positive number of seconds');
      const agent =
        req.agentId === undefined
          ? undefined
          : idFromProto(req.agentId, 'agent_id', td, 'workload').toString();
      if (req.token !== '' && (!TOKEN_RE.test(req.token) || /^\.{1,2}$/.test(req.token))) {
        throw invalidField(
          'token',
          "a join token may only contain letters, digits, '.', '_' and '-' (at most 255)",
        );
      }
      const token = req.token === '' ? newJoinToken(context.random) : req.token;
      const expiresAt = Math.floor(context.clock.nowMs() / 1000) + req.ttl;
      try {
        await ds.createJoinToken({ token, expiresAt });
      } catch (err) {
        throw fromDataStoreError(err, 'create token');
      }
      if (agent !== undefined) {
        const parent = joinTokenAgentId(td, token).toString();
        try {
          await ds.createEntry({
            parentId: parent,
            spiffeId: agent,
            selectors: [{ type: 'spiffe_id', value: parent }],
          });
        } catch (err) {
          // Do not leave a token behind whose alias entry is missing.
          await ds.consumeJoinToken(token, 0).catch(() => undefined);
          log.error('join token alias entry failed', {
            method: 'CreateJoinToken',
            ...callerFields(ctx),
            // the error text may contain the parent ID, which contains the token
            error_code: isSpireEdgeError(err) ? err.code : 'internal',
          });
          throw fromDataStoreError(err, 'create join token registration entry');
        }
      }
      log.info('join token created', {
        method: 'CreateJoinToken',
        ...callerFields(ctx),
        expires_at: expiresAt,
        ...(agent === undefined ? {} : { agent_spiffe_id: agent }),
      });
      return create(types.JoinTokenSchema, { value: token, expiresAt: BigInt(expiresAt) });
    },
  };
}
