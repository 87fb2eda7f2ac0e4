/**
 * `spire.api.server.bundle.v1.Bundle`, the methods agents call (SPIRE's
 * `pkg/server/api/bundle/v1/service.go`):
 *
 * - **GetBundle** (open to anyone, as SPIRE's policy `allow_any`): the trust domain's
 *   bundle. The stored bundle is merged with the CA manager's current authorities, so a
 *   CA prepared a moment ago is served even before the stored bundle catches up.
 * - **GetFederatedBundle** (agent): a federated trust domain's stored bundle; the server's
 *   own trust domain is InvalidArgument, an unknown one NotFound.
 */
import { create } from '@bufbuild/protobuf';
import type { ServiceImpl } from '@connectrpc/connect';
import { SpireEdgeError } from '../../../common/errors.js';
import { type bundlev1, types } from '../../../protocol/index.js';
import { parseTrustDomain } from '../../../spiffe/id.js';
import type { Bundle } from '../../datastore/types.js';
import { agentCaller } from './caller.js';
import { bundleToProto, maskBundle } from './convert.js';
import type { AgentApiDeps } from './deps.js';

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** The served bundle of the server's own trust domain (stored ∪ the CA's authorities). */
export async function currentBundle(deps: Pick<AgentApiDeps, 'context'>): Promise<types.Bundle> {
  const { context } = deps;
  const td = context.trustDomain.name;
  const stored: Bundle | undefined = await context.dataStore.getBundle(td);
  const out =
    stored === undefined ? create(types.BundleSchema, { trustDomain: td }) : bundleToProto(stored);
  for (const der of context.ca.getX509Authorities()) {
    if (!out.x509Authorities.some((a) => sameBytes(a.asn1, der))) {
      out.x509Authorities.push(create(types.X509CertificateSchema, { asn1: der }));
    }
  }
  for (const k of context.ca.getJwtAuthorities()) {
    if (!out.jwtAuthorities.some((j) => j.keyId === k.keyId)) {
      out.jwtAuthorities.push(
        create(types.JWTKeySchema, {
          keyId: k.keyId,
          publicKey: k.publicKeySpki,
          expiresAt: BigInt(Math.floor(k.notAfter.getTime() / 1000)),
        }),
      );
    }
  }
  return out;
}

/** The agent-facing methods of the Bundle service. */
export function createBundleService(
  deps: AgentApiDeps,
): Partial<ServiceImpl<typeof bundlev1.Bundle>> {
  return {
    async getBundle(req) {
      return maskBundle(await currentBundle(deps), req.outputMask);
    },

    async getFederatedBundle(req, ctx) {
      agentCaller(ctx);
      let td: string;
      try {
        td = parseTrustDomain(req.trustDomain).name;
      } catch (err) {
        throw new SpireEdgeError(
          'ERR_AGENT_API_INVALID_ARGUMENT',
          `trust domain argument is not valid: ${(err as Error).message}`,
          { cause: err },
        );
      }
      if (td === deps.context.trustDomain.name) {
        throw new SpireEdgeError(
          'ERR_AGENT_API_INVALID_ARGUMENT',
          "getting a federated bundle for the server's own trust domain is not allowed",
        );
      }
      const stored = await deps.context.dataStore.getBundle(td);
      if (stored === undefined) {
        throw new SpireEdgeError('ERR_AGENT_API_NOT_FOUND', 'bundle not found');
      }
      return maskBundle(bundleToProto(stored), req.outputMask);
    },
  };
}
