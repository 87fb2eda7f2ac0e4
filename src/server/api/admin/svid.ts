/**
 * The admin methods of `spire.api.server.svid.v1.SVID`: MintX509SVID and MintJWTSVID, with
 * SPIRE's semantics (pkg/server/api/svid/v1). BatchNewX509SVID and NewJWTSVID are the agent
 * API's (as is NewDownstreamX509CA, called by downstream servers); MintWITSVID is not
 * supported (Unimplemented).
 *
 * - MintX509SVID: the SPIFFE ID is the CSR's single URI SAN and must be a workload ID of our
 *   trust domain; the CSR's DNS SANs become the SVID's (validated, no wildcard overlap); the
 *   CSR's signature is checked (proof of possession). The CSR's subject is not copied (the
 *   CA uses its SVID subject). `ttl` 0 means the server default; the CA caps it.
 * - MintJWTSVID: `id` must be a workload ID of our trust domain, at least one audience.
 *
 * What it trusts: the caller is an admin — minting signs any identity of the trust domain,
 * so these methods must never be reachable by non-admins. Every mint is logged (ID, expiry,
 * caller) and counted in `svidIssued(…, 'admin')`; keys and tokens are never logged.
 */
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { describeError, isSpireEdgeError } from '../../../common/errors.js';
import type { svidv1 } from '../../../protocol/index.js';
import { parseCsr } from '../../../spiffe/csr.js';
import { parseSpiffeId, type SpiffeId } from '../../../spiffe/id.js';
import { parseJwtSvidInsecure } from '../../../spiffe/jwt-svid.js';
import type { ServerContext } from '../../context.js';
import {
  apiError,
  checkWildcardOverlap,
  dnsNameProblem,
  idFromProto,
  idRuleProblem,
  invalidField,
  protoFromId,
} from '../convert.js';
import { callerFields } from './authorize.js';

/** The methods of the SVID service this module implements. */
export type SvidAdminService = Pick<
  ServiceImpl<typeof svidv1.SVID>,
  'mintX509SVID' | 'mintJWTSVID' | 'mintWITSVID'
>;

/** CA failures: a CA that is not ready is `Unavailable`-worthy but SPIRE says Internal. */
function signFailed(what: string, err: unknown): never {
  if (isSpireEdgeError(err) && err.code.startsWith('ERR_API_')) throw err;
  throw apiError(
    'ERR_API_INTERNAL',
    `failed to sign ${what}${isSpireEdgeError(err) ? `: ${err.message}` : ''}`,
    err,
  );
}

/**
 * Builds the SVID admin service over `context` (trust domain, CA, metrics, logger).
 * Mount with `router.service(svidv1.SVID, createSvidAdminService(context))` (merge with the
 * agent API's methods when both are served by one router).
 */
export function createSvidAdminService(context: ServerContext): SvidAdminService {
  const td = context.trustDomain;
  const log = context.log.with({ subsystem_name: 'api', service: 'svid' });

  function logMint(ctx: HandlerContext, method: string, id: SpiffeId, expiresAt: Date): void {
    log.info('svid minted', {
      method,
      ...callerFields(ctx),
      spiffe_id: id.toString(),
      expires_at: expiresAt.toISOString(),
    });
  }

  return {
    async mintX509SVID(req, ctx) {
      if (req.csr.length === 0) throw invalidField('csr', 'missing CSR');
      if (req.ttl < 0) throw invalidField('ttl', 'must not be negative');
      let csr: ReturnType<typeof parseCsr>;
      try {
        csr = parseCsr(req.csr);
      } catch (err) {
        throw invalidField('csr', describeError(err), err);
      }
      const uris = csr.extensions.subjectAltName?.uris ?? [];
      if (uris.length === 0) throw invalidField('csr', 'CSR URI SAN is required');
      if (uris.length > 1) throw invalidField('csr', 'only one URI SAN is expected');
      let id: SpiffeId;
      try {
        id = parseSpiffeId(uris[0]!);
      } catch (err) {
        throw invalidField('csr', `CSR URI SAN is invalid: ${describeError(err)}`, err);
      }
      const idProblem = idRuleProblem(id, td, 'workload');
      if (idProblem !== undefined) {
        throw invalidField('csr', `CSR URI SAN is invalid: ${idProblem}`);
      }
      const dnsNames = [...(csr.extensions.subjectAltName?.dnsNames ?? [])];
      for (const n of dnsNames) {
        const problem = dnsNameProblem(n);
        if (problem !== undefined) {
          throw invalidField('csr', `CSR DNS name ${JSON.stringify(n)} is invalid: ${problem}`);
        }
      }
      checkWildcardOverlap(dnsNames, 'csr');
      let signed: Awaited<ReturnType<typeof context.ca.signX509Svid>>;
      try {
        signed = await context.ca.signX509Svid({
          spiffeId: id,
          publicKey: csr.spkiDer,
          ttlSeconds: req.ttl,
          ...(dnsNames.length === 0 ? {} : { dnsNames }),
        });
      } catch (err) {
        signFailed('X509-SVID', err);
      }
      context.metrics.svidIssued('x509', 'admin');
      logMint(ctx, 'MintX509SVID', id, signed.expiresAt);
      return {
        svid: {
          id: protoFromId(id),
          certChain: signed.certChain,
          expiresAt: BigInt(Math.floor(signed.expiresAt.getTime() / 1000)),
        },
      };
    },

    async mintJWTSVID(req, ctx) {
      const id = idFromProto(req.id, 'id', td, 'workload');
      if (req.audience.length === 0) {
        throw invalidField('audience', 'at least one audience is required');
      }
      req.audience.forEach((a, i) => {
        if (a === '') throw invalidField(`audience[${i}]`, 'audience cannot be empty');
      });
      if (req.ttl < 0) throw invalidField('ttl', 'must not be negative');
      let signed: Awaited<ReturnType<typeof context.ca.signJwtSvid>>;
      try {
        signed = await context.ca.signJwtSvid({
          spiffeId: id,
          audience: req.audience,
          ttlSeconds: req.ttl,
        });
      } catch (err) {
        signFailed('JWT-SVID', err);
      }
      const issuedAt =
        parseJwtSvidInsecure(signed.token).issuedAt ?? new Date(context.clock.nowMs());
      context.metrics.svidIssued('jwt', 'admin');
      logMint(ctx, 'MintJWTSVID', id, signed.expiresAt);
      return {
        svid: {
          token: signed.token,
          id: protoFromId(id),
          expiresAt: BigInt(Math.floor(signed.expiresAt.getTime() / 1000)),
          issuedAt: BigInt(Math.floor(issuedAt.getTime() / 1000)),
        },
      };
    },

    async mintWITSVID() {
      throw apiError('ERR_API_UNIMPLEMENTED', 'WIT-SVID functionality is not yet implemented');
    },
  };
}
