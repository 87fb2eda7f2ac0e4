/**
 * `spire_edge.enrollment.v1.ProvisioningToken` on the admin socket (ours, not SPIRE's):
 * create, list and revoke one-time provisioning tokens for device enrollment.
 *
 * - CreateProvisioningToken: `spiffe_id` (required; a member of the server's trust domain with
 *   a path outside the reserved `/spire` namespace — the node alias to bind), `ttl` seconds
 *   (0 → {@link DEFAULT_PROVISIONING_TOKEN_TTL}), `replace`. The token is generated here from
 *   the context's randomness, stored as its SHA-256, and returned once.
 * - ListProvisioningTokens: unexpired tokens (alias, replace, expiry, creation, fingerprint),
 *   never their values.
 * - RevokeProvisioningTokens: deletes every token of an alias; answers how many.
 *
 * Tokens are never logged; creation and revocation are logged with the admin caller.
 *
 * What it trusts: the caller is an admin (the admin socket's authorizer runs first).
 */
import type { ServiceImpl } from '@connectrpc/connect';
import { describeError } from '../../../common/errors.js';
import type { enrollmentv1 } from '../../../protocol/index.js';
import { parseSpiffeId, type SpiffeId } from '../../../spiffe/id.js';
import type { ServerContext } from '../../context.js';
import { callerFields } from '../admin/authorize.js';
import { checkIdRule, fromDataStoreError, invalidField } from '../convert.js';
import {
  DEFAULT_PROVISIONING_TOKEN_TTL,
  newProvisioningToken,
  tokenFingerprint,
} from './provisioning-token.js';

/** The ProvisioningToken service implementation. */
export type ProvisioningTokenService = ServiceImpl<typeof enrollmentv1.ProvisioningToken>;

/** Parses `value` as a node alias of `context`'s trust domain (`field` for messages). */
function aliasId(context: ServerContext, value: string, field: string): SpiffeId {
  if (value === '') throw invalidField(field, 'a node alias SPIFFE ID is required');
  let id: SpiffeId;
  try {
    id = parseSpiffeId(value);
  } catch (err) {
    throw invalidField(field, describeError(err), err);
  }
  checkIdRule(id, field, context.trustDomain, 'workload');
  return id;
}

/**
 * Builds the service over `context`. Mount with
 * `router.service(enrollmentv1.ProvisioningToken, createProvisioningTokenService(context))`
 * on the admin socket only.
 */
export function createProvisioningTokenService(context: ServerContext): ProvisioningTokenService {
  const ds = context.dataStore;
  const log = context.log.with({ subsystem_name: 'api', service: 'provisioning_token' });
  const nowSeconds = () => Math.floor(context.clock.nowMs() / 1000);

  return {
    async createProvisioningToken(req, ctx) {
      const alias = aliasId(context, req.spiffeId, 'spiffe_id').toString();
      if (req.ttl < 0) throw invalidField('ttl', 'must be a positive number of seconds');
      const ttl = req.ttl === 0 ? DEFAULT_PROVISIONING_TOKEN_TTL : req.ttl;
      const value = newProvisioningToken(context.random);
      const expiresAt = nowSeconds() + ttl;
      let tokenHash: string;
      try {
        ({ tokenHash } = await ds.createProvisioningToken({
          token: value,
          spiffeId: alias,
          replace: req.replace,
          expiresAt,
        }));
      } catch (err) {
        throw fromDataStoreError(err, 'create provisioning token');
      }
      log.info('provisioning token created', {
        method: 'CreateProvisioningToken',
        ...callerFields(ctx),
        spiffe_id: alias,
        replace: req.replace,
        expires_at: expiresAt,
        fingerprint: tokenFingerprint(tokenHash),
      });
      return { value, spiffeId: alias, replace: req.replace, expiresAt: BigInt(expiresAt) };
    },

    async listProvisioningTokens(req) {
      const by = req.bySpiffeId === '' ? undefined : parseFilterId(req.bySpiffeId);
      try {
        const now = nowSeconds();
        const list = await ds.listProvisioningTokens(by === undefined ? {} : { bySpiffeId: by });
        return {
          tokens: list
            .filter((t) => t.expiresAt > now)
            .map((t) => ({
              spiffeId: t.spiffeId,
              replace: t.replace,
              expiresAt: BigInt(t.expiresAt),
              createdAt: BigInt(t.createdAt),
              fingerprint: tokenFingerprint(t.tokenHash),
            })),
        };
      } catch (err) {
        throw fromDataStoreError(err, 'list provisioning tokens');
      }
    },

    async revokeProvisioningTokens(req, ctx) {
      const alias = aliasId(context, req.spiffeId, 'spiffe_id').toString();
      let revoked: number;
      try {
        revoked = await ds.deleteProvisioningTokens(alias);
      } catch (err) {
        throw fromDataStoreError(err, 'revoke provisioning tokens');
      }
      log.info('provisioning tokens revoked', {
        method: 'RevokeProvisioningTokens',
        ...callerFields(ctx),
        spiffe_id: alias,
        revoked,
      });
      return { revoked };
    },
  };
}

function parseFilterId(value: string): string {
  try {
    return parseSpiffeId(value).toString();
  } catch (err) {
    throw invalidField('by_spiffe_id', describeError(err), err);
  }
}
