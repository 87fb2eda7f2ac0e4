/**
 * Agent authentication for the agent API (SPIRE's `AgentAuthorizer` in
 * `pkg/server/endpoints/middleware.go`): a caller is an agent when its TLS client
 * certificate chain is an X509-SVID that verifies against the trust domain's current X.509
 * authorities, its ID is under `spiffe://<td>/spire/agent/`, the SVID has not expired, the
 * attested node exists and is not banned, and the certificate's serial number is the
 * node's current one — or the pending one issued by RenewAgent, which then becomes current
 * (SPIRE's new-serial handoff).
 *
 * Failures are `PermissionDenied` with SPIRE's `PermissionDeniedDetails` reason attached
 * (AGENT_EXPIRED, AGENT_NOT_ATTESTED, AGENT_BANNED, AGENT_NOT_ACTIVE), which SPIRE agents
 * read to decide whether to re-attest; a chain that does not verify is `Unauthenticated`.
 *
 * Trusts: Node's TLS layer for proof of possession of the certificate's key; the CA's
 * authorities; the datastore.
 */
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createContextKey, type HandlerContext } from '@connectrpc/connect';
import { describeError, isSpireEdgeError, SpireEdgeError } from '../../../common/errors.js';
import type { GrpcPeer } from '../../../common/grpc.js';
import { types } from '../../../protocol/index.js';
import { X509Bundle } from '../../../spiffe/x509-bundle.js';
import { parseCertificate } from '../../../spiffe/x509-cert.js';
import { verifyX509Svid } from '../../../spiffe/x509-verify.js';
import type { ServerContext } from '../../context.js';
import type { AttestedNode } from '../../datastore/types.js';
import { serialToDecimal } from './convert.js';

/** An authenticated agent. */
export interface AgentCaller {
  /** The agent's SPIFFE ID. */
  readonly id: string;
  /** The serial number (decimal) of the SVID it connected with. */
  readonly serial: string;
  /** The SVID's notAfter. */
  readonly notAfter: Date;
  /** The attested node as read for this call (after any serial handoff). */
  readonly node: AttestedNode;
  /** The caller's IP address, when known. */
  readonly remoteAddress: string | undefined;
}

/** Context key under which the authorization interceptor stores the caller. */
export const kAgentCaller = createContextKey<AgentCaller | undefined>(undefined, {
  description: 'spire-edge authenticated agent',
});

/** The authenticated agent of the current call (set by the agent server's interceptor). */
export function agentCaller(ctx: HandlerContext): AgentCaller {
  const caller = ctx.values.get(kAgentCaller);
  if (caller === undefined) {
    throw new ConnectError('caller ID missing from request context', Code.Internal);
  }
  return caller;
}

const Reason = types.PermissionDeniedDetails_Reason;

/** A PermissionDenied ConnectError carrying SPIRE's `PermissionDeniedDetails`. */
export function permissionDenied(
  reason: types.PermissionDeniedDetails_Reason,
  message: string,
): ConnectError {
  return new ConnectError(message, Code.PermissionDenied, undefined, [
    {
      desc: types.PermissionDeniedDetailsSchema,
      value: create(types.PermissionDeniedDetailsSchema, { reason }),
    },
  ]);
}

interface Verified {
  readonly authorities: readonly Uint8Array[];
  readonly id: string;
  readonly serial: string;
  readonly notAfter: Date;
}

function sameList(a: readonly Uint8Array[], b: readonly Uint8Array[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Authenticates agents; one per server (it caches chain verification per connection). */
export class AgentAuthenticator {
  readonly #context: ServerContext;
  readonly #prefix: string;
  readonly #verified = new WeakMap<GrpcPeer, Verified>();

  constructor(context: ServerContext) {
    this.#context = context;
    this.#prefix = `${context.trustDomain.idString()}/spire/agent/`;
  }

  /** The peer's verified SVID identity (cached per connection and set of authorities). */
  #verify(peer: GrpcPeer | undefined): Verified {
    if (peer === undefined || peer.kind !== 'tls' || peer.certificateChain.length === 0) {
      throw new ConnectError('caller does not have an X509-SVID', Code.PermissionDenied);
    }
    const authorities = this.#context.ca.getX509Authorities();
    const cached = this.#verified.get(peer);
    if (cached !== undefined && sameList(cached.authorities, authorities)) return cached;
    const chain = peer.certificateChain.map(
      (b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength),
    );
    let leafNotAfter: Date;
    let serial: string;
    try {
      const leaf = parseCertificate(chain[0]!);
      leafNotAfter = leaf.notAfter;
      serial = serialToDecimal(leaf.serial);
    } catch (err) {
      throw new ConnectError(
        `client certificate cannot be parsed: ${describeError(err)}`,
        Code.Unauthenticated,
      );
    }
    const now = this.#context.clock.now();
    if (now.getTime() > leafNotAfter.getTime()) {
      // Checked before path validation so that the agent learns why (SPIRE's AGENT_EXPIRED).
      throw permissionDenied(Reason.AGENT_EXPIRED, 'agent SVID is expired');
    }
    let id: string;
    try {
      id = verifyX509Svid(chain, new X509Bundle(this.#context.trustDomain, authorities), {
        now,
      }).id.toString();
    } catch (err) {
      if (isSpireEdgeError(err)) {
        throw new ConnectError(
          `client certificate is not a valid X509-SVID of ${this.#context.trustDomain.name}: ${err.message}`,
          Code.Unauthenticated,
        );
      }
      throw err;
    }
    const v = { authorities, id, serial, notAfter: leafNotAfter };
    this.#verified.set(peer, v);
    return v;
  }

  /**
   * Authenticates the caller as an agent (see the file comment).
   *
   * @throws ConnectError PermissionDenied (with details) / Unauthenticated; the
   *   datastore's coded error when it fails.
   */
  async authenticate(peer: GrpcPeer | undefined): Promise<AgentCaller> {
    const v = this.#verify(peer);
    const remoteAddress = peer?.kind === 'tls' ? peer.remoteAddress : undefined;
    if (!v.id.startsWith(this.#prefix)) {
      throw new ConnectError(`caller ${v.id} is not an agent`, Code.PermissionDenied);
    }
    if (this.#context.clock.nowMs() > v.notAfter.getTime()) {
      throw permissionDenied(Reason.AGENT_EXPIRED, `agent "${v.id}" SVID is expired`);
    }
    const ds = this.#context.dataStore;
    const node = await ds.getAttestedNode(v.id);
    if (node === undefined) {
      throw permissionDenied(Reason.AGENT_NOT_ATTESTED, `agent "${v.id}" is not attested`);
    }
    if (node.banned || node.certSerialNumber === '') {
      throw permissionDenied(Reason.AGENT_BANNED, `agent "${v.id}" is banned`);
    }
    if (node.certSerialNumber === v.serial) {
      return { id: v.id, serial: v.serial, notAfter: v.notAfter, node, remoteAddress };
    }
    if (node.newCertSerialNumber !== '' && node.newCertSerialNumber === v.serial) {
      let updated: AttestedNode;
      try {
        updated = await ds.updateAttestedNode({
          spiffeId: v.id,
          set: {
            certSerialNumber: node.newCertSerialNumber,
            certNotAfter: node.newCertNotAfter,
            newCertSerialNumber: '',
            newCertNotAfter: 0,
          },
        });
      } catch (err) {
        throw new SpireEdgeError(
          'ERR_AGENT_API_ACTIVATION_FAILED',
          'unable to activate the new agent SVID',
          { cause: err },
        );
      }
      return { id: v.id, serial: v.serial, notAfter: v.notAfter, node: updated, remoteAddress };
    }
    throw permissionDenied(
      Reason.AGENT_NOT_ACTIVE,
      `agent "${v.id}" expected to have serial number "${node.certSerialNumber}"; has "${v.serial}"`,
    );
  }
}
