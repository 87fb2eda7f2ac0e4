/**
 * The admin socket's grpc.health.v1 Check: SERVING while the readiness probe passes,
 * NOT_SERVING when it fails or throws, NotFound for services that are not on the socket.
 */
import { create } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { healthv1 } from '../../../../src/protocol/index.js';
import { createHealthService } from '../../../../src/server/api/admin/health.js';
import {
  type AdminFixture,
  handlerContext,
  rejection,
  startAdminFixture,
} from './admin-support.js';

const S = healthv1.HealthCheckResponse_ServingStatus;
let fx: AdminFixture;
beforeAll(async () => {
  fx = await startAdminFixture();
});
afterAll(() => fx.close());

const check = (svc: ReturnType<typeof createHealthService>, service: string) =>
  svc.check(
    create(healthv1.HealthCheckRequestSchema, { service }),
    handlerContext(healthv1.Health, 'check'),
  );

describe('health Check', () => {
  it('reports SERVING while the datastore answers, for the server and each listed service', async () => {
    const svc = createHealthService(fx.context, { services: ['a.B'] });
    expect(await check(svc, '')).toEqual({ status: S.SERVING });
    expect(await check(svc, 'a.B')).toEqual({ status: S.SERVING });
    expect(await rejection(() => check(svc, 'c.D'))).toMatchObject({
      code: 'ERR_API_NOT_FOUND',
      message: 'unknown service',
    });
  });

  it('reports NOT_SERVING when the probe fails or throws', async () => {
    expect(
      await check(createHealthService(fx.context, { services: [], ready: () => false }), ''),
    ).toEqual({
      status: S.NOT_SERVING,
    });
    const throwing = createHealthService(fx.context, {
      services: [],
      ready: () => {
        throw new Error('datastore down');
      },
    });
    expect(await check(throwing, '')).toEqual({ status: S.NOT_SERVING });
    expect(fx.logs.some((l) => l.includes('health check failed'))).toBe(true);
  });
});
