/**
 * `spire.api.server.bundle.v1.Bundle` for admins: the trust domain's own bundle (GetBundle,
 * AppendBundle) and federated bundles (Count, List, Get, BatchCreate/Update/Set/Delete), with
 * SPIRE's semantics (pkg/server/api/bundle/v1).
 *
 * - GetBundle reads the datastore bundle of our trust domain, which the CA manager keeps up
 *   to date (every X.509 CA and JWT key it prepares is appended there).
 * - Federated methods refuse our own trust domain, as SPIRE does.
 * - PublishJWTAuthority exists in SPIRE for a downstream server to push its JWT key to the
 *   upstream SPIRE server; spire-edge has no SPIRE UpstreamAuthority yet, so it validates
 *   the request and answers Unimplemented. PublishWITAuthority: Unimplemented.
 *
 * What it trusts: the caller is an admin (checked by the admin socket's authorizer). Bundle
 * contents are validated (certificates parse, JWT keys are SubjectPublicKeyInfo) but not
 * authenticated: an admin vouches for what it sets.
 */
import { create } from '@bufbuild/protobuf';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { bundlev1, type types } from '../../../protocol/index.js';
import type { ServerContext } from '../../context.js';
import type { Bundle, BundleDeleteMode, BundleInput } from '../../datastore/types.js';
import {
  apiError,
  bundleFieldsOfMask,
  bundleInputFromProto,
  errorStatus,
  fromDataStoreError,
  invalidField,
  jwtAuthoritiesFromProto,
  okStatus,
  pageSizeFromProto,
  protoFromBundle,
  trustDomainFromString,
  x509AuthoritiesFromProto,
} from '../convert.js';
import { callerFields } from './authorize.js';

/** The methods of the Bundle service this module implements. */
export type BundleAdminService = Pick<
  ServiceImpl<typeof bundlev1.Bundle>,
  | 'countBundles'
  | 'getBundle'
  | 'appendBundle'
  | 'publishJWTAuthority'
  | 'publishWITAuthority'
  | 'listFederatedBundles'
  | 'getFederatedBundle'
  | 'batchCreateFederatedBundle'
  | 'batchUpdateFederatedBundle'
  | 'batchSetFederatedBundle'
  | 'batchDeleteFederatedBundle'
>;

const DELETE_MODES: Readonly<Record<number, BundleDeleteMode>> = {
  [bundlev1.BatchDeleteFederatedBundleRequest_Mode.RESTRICT]: 'restrict',
  [bundlev1.BatchDeleteFederatedBundleRequest_Mode.DELETE]: 'delete',
  [bundlev1.BatchDeleteFederatedBundleRequest_Mode.DISSOCIATE]: 'dissociate',
};

/**
 * Builds the Bundle admin service over `context`.
 * Mount with `router.service(bundlev1.Bundle, createBundleAdminService(context))`.
 */
export function createBundleAdminService(context: ServerContext): BundleAdminService {
  const td = context.trustDomain;
  const ds = context.dataStore;
  const log = context.log.with({ subsystem_name: 'api', service: 'bundle' });

  /** A federated bundle from a batch item; refuses our own trust domain (SPIRE's wording). */
  function federated(b: types.Bundle, verb: string): BundleInput {
    const name = trustDomainFromString(b.trustDomain, 'bundle.trust_domain').name;
    if (name === td.name) {
      throw apiError(
        'ERR_API_INVALID_ARGUMENT',
        `${verb} a federated bundle for the server's own trust domain is not allowed`,
      );
    }
    return bundleInputFromProto(b);
  }

  function logBatch(ctx: HandlerContext, method: string, tds: string[], failed: number): void {
    log.info('federated bundles changed', {
      method,
      ...callerFields(ctx),
      ok: tds.length,
      failed,
      trust_domains: tds.join(','),
    });
  }

  /** One batch item's outcome. */
  interface Item {
    status: types.Status;
    bundle?: types.Bundle;
  }

  function summarize(ctx: HandlerContext, method: string, results: readonly Item[]): void {
    const ok = results.filter((r) => r.status.code === 0);
    logBatch(
      ctx,
      method,
      ok.map((r) => r.bundle?.trustDomain ?? ''),
      results.length - ok.length,
    );
  }

  /** Validates and writes each bundle on its own; a failed item does not stop the batch. */
  async function batch(
    items: readonly types.Bundle[],
    verb: string,
    action: string,
    write: (input: BundleInput) => Promise<Bundle>,
    outputMask: types.BundleMask | undefined,
  ): Promise<Item[]> {
    const results: Item[] = [];
    for (const b of items) {
      try {
        const input = federated(b, verb);
        let stored: Bundle;
        try {
          stored = await write(input);
        } catch (err) {
          throw fromDataStoreError(err, action, 'bundle not found');
        }
        results.push({ status: okStatus(), bundle: protoFromBundle(stored, outputMask) });
      } catch (err) {
        results.push({ status: errorStatus(err) });
      }
    }
    return results;
  }

  return {
    async countBundles() {
      try {
        return { count: await ds.countBundles() };
      } catch (err) {
        throw fromDataStoreError(err, 'count bundles');
      }
    },

    async getBundle(req) {
      let b: Bundle | undefined;
      try {
        b = await ds.getBundle(td.name);
      } catch (err) {
        throw fromDataStoreError(err, 'fetch bundle');
      }
      if (b === undefined) throw apiError('ERR_API_NOT_FOUND', 'bundle not found');
      return protoFromBundle(b, req.outputMask);
    },

    async appendBundle(req, ctx) {
      if (req.x509Authorities.length === 0 && req.jwtAuthorities.length === 0) {
        throw apiError('ERR_API_INVALID_ARGUMENT', 'no authorities to append');
      }
      if (req.witAuthorities.length > 0) {
        throw invalidField('wit_authorities', 'WIT authorities are not supported');
      }
      const x509Authorities = x509AuthoritiesFromProto(req.x509Authorities, 'x509_authorities');
      const jwtAuthorities = jwtAuthoritiesFromProto(req.jwtAuthorities, 'jwt_authorities');
      let b: Bundle;
      try {
        b = await ds.appendBundle({ trustDomain: td.name, x509Authorities, jwtAuthorities });
      } catch (err) {
        throw fromDataStoreError(err, 'append bundle');
      }
      log.info('bundle appended', {
        method: 'AppendBundle',
        ...callerFields(ctx),
        x509_authorities: x509Authorities.length,
        jwt_authorities: jwtAuthorities.map((k) => k.keyId).join(','),
      });
      return protoFromBundle(b, req.outputMask);
    },

    async publishJWTAuthority(req) {
      if (req.jwtAuthority === undefined) {
        throw apiError('ERR_API_INVALID_ARGUMENT', 'missing JWT authority');
      }
      jwtAuthoritiesFromProto([req.jwtAuthority], 'jwt_authority');
      throw apiError(
        'ERR_API_UNIMPLEMENTED',
        'publishing JWT authorities requires a SPIRE upstream authority, which this server does not have',
      );
    },

    async publishWITAuthority() {
      throw apiError('ERR_API_UNIMPLEMENTED', 'WIT-SVID functionality is not yet implemented');
    },

    async listFederatedBundles(req) {
      const pageSize = pageSizeFromProto(req.pageSize);
      try {
        const page = await ds.listBundles(
          pageSize === undefined ? {} : { pagination: { pageSize, pageToken: req.pageToken } },
        );
        return {
          bundles: page.items
            .filter((b) => b.trustDomain !== td.name)
            .map((b) => protoFromBundle(b, req.outputMask)),
          nextPageToken: page.nextPageToken ?? '',
        };
      } catch (err) {
        if (err instanceof Error && /token/.test(err.message)) {
          const e = fromDataStoreError(err, 'list bundles');
          if (e.code === 'ERR_API_INVALID_ARGUMENT') {
            throw apiError('ERR_API_INVALID_ARGUMENT', `invalid page_token: ${err.message}`, err);
          }
        }
        throw fromDataStoreError(err, 'list bundles');
      }
    },

    async getFederatedBundle(req) {
      const name = trustDomainFromString(req.trustDomain, 'trust_domain').name;
      if (name === td.name) {
        throw apiError(
          'ERR_API_INVALID_ARGUMENT',
          "getting a federated bundle for the server's own trust domain is not allowed",
        );
      }
      let b: Bundle | undefined;
      try {
        b = await ds.getBundle(name);
      } catch (err) {
        throw fromDataStoreError(err, 'fetch bundle');
      }
      if (b === undefined) throw apiError('ERR_API_NOT_FOUND', 'bundle not found');
      return protoFromBundle(b, req.outputMask);
    },

    async batchCreateFederatedBundle(req, ctx) {
      const results = await batch(
        req.bundle,
        'creating',
        'create bundle',
        (input) =>
          ds.createBundle(input).catch((err: unknown) => {
            const e = fromDataStoreError(err, 'create bundle');
            throw e.code === 'ERR_API_ALREADY_EXISTS'
              ? apiError('ERR_API_ALREADY_EXISTS', 'bundle already exists', err)
              : e;
          }),
        req.outputMask,
      );
      summarize(ctx, 'BatchCreateFederatedBundle', results);
      return { results };
    },

    async batchUpdateFederatedBundle(req, ctx) {
      const mask = bundleFieldsOfMask(req.inputMask);
      const results = await batch(
        req.bundle,
        'updating',
        'update bundle',
        (input) => ds.updateBundle({ bundle: input, mask }),
        req.outputMask,
      );
      summarize(ctx, 'BatchUpdateFederatedBundle', results);
      return { results };
    },

    async batchSetFederatedBundle(req, ctx) {
      const results = await batch(
        req.bundle,
        'setting',
        'set bundle',
        (input) => ds.setBundle(input),
        req.outputMask,
      );
      summarize(ctx, 'BatchSetFederatedBundle', results);
      return { results };
    },

    async batchDeleteFederatedBundle(req, ctx) {
      const mode = DELETE_MODES[req.mode];
      if (mode === undefined) {
        throw invalidField('mode', `unknown deletion mode ${req.mode}`);
      }
      const results: bundlev1.BatchDeleteFederatedBundleResponse_Result[] = [];
      for (const name of req.trustDomains) {
        try {
          const t = trustDomainFromString(name, 'trust_domains').name;
          if (t === td.name) {
            throw apiError(
              'ERR_API_INVALID_ARGUMENT',
              'removing the bundle for the server trust domain is not allowed',
            );
          }
          await ds.deleteBundle(t, mode).catch((err: unknown) => {
            throw fromDataStoreError(err, 'delete federated bundle', 'bundle not found');
          });
          results.push(
            create(bundlev1.BatchDeleteFederatedBundleResponse_ResultSchema, {
              trustDomain: name,
              status: okStatus(),
            }),
          );
        } catch (err) {
          results.push(
            create(bundlev1.BatchDeleteFederatedBundleResponse_ResultSchema, {
              trustDomain: name,
              status: errorStatus(err),
            }),
          );
        }
      }
      const ok = results.filter((r) => r.status?.code === 0).map((r) => r.trustDomain);
      log.info('federated bundles deleted', {
        method: 'BatchDeleteFederatedBundle',
        ...callerFields(ctx),
        mode,
        ok: ok.length,
        failed: results.length - ok.length,
        trust_domains: ok.join(','),
      });
      return { results };
    },
  };
}
