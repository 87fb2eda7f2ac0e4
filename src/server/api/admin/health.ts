/**
 * `grpc.health.v1.Health/Check` on the admin socket, which `spire-server healthcheck` calls
 * (SPIRE serves the standard health service there). The empty service name and the names of
 * the services mounted on the socket answer SERVING when the readiness probe passes and
 * NOT_SERVING otherwise; any other name is NotFound, per the gRPC health checking protocol.
 * Watch is not implemented (Unimplemented).
 *
 * Spec: https://github.com/grpc/grpc/blob/master/doc/health-checking.md
 */
import type { ServiceImpl } from '@connectrpc/connect';
import { healthv1 } from '../../../protocol/index.js';
import type { ServerContext } from '../../context.js';
import { apiError } from '../convert.js';

/** The methods of the Health service this module implements. */
export type HealthAdminService = Pick<ServiceImpl<typeof healthv1.Health>, 'check'>;

/** Options of {@link createHealthService}. */
export interface HealthServiceOptions {
  /** Fully qualified names of the services on the socket (`spire.api.server.entry.v1.Entry`, …). */
  readonly services: readonly string[];
  /**
   * Readiness probe; default: the datastore answers `countBundles`. A probe that throws or
   * resolves false reports NOT_SERVING.
   */
  readonly ready?: () => boolean | Promise<boolean>;
}

/** Builds the health service over `context`. */
export function createHealthService(
  context: ServerContext,
  options: HealthServiceOptions,
): HealthAdminService {
  const known = new Set(['', ...options.services]);
  const ready =
    options.ready ??
    (async () => {
      await context.dataStore.countBundles();
      return true;
    });
  return {
    async check(req) {
      if (!known.has(req.service)) throw apiError('ERR_API_NOT_FOUND', 'unknown service');
      let ok: boolean;
      try {
        ok = await ready();
      } catch (err) {
        context.log.warn('health check failed', {
          subsystem_name: 'api',
          error: err instanceof Error ? err.message : String(err),
        });
        ok = false;
      }
      return {
        status: ok
          ? healthv1.HealthCheckResponse_ServingStatus.SERVING
          : healthv1.HealthCheckResponse_ServingStatus.NOT_SERVING,
      };
    },
  };
}
