/**
 * `spire-agent healthcheck`: SPIRE's texts and exit codes against (a) the real Workload API
 * server, which has no gRPC health service, so the command probes the Workload API as
 * SPIRE's agent health service does (OK and PermissionDenied healthy, Unavailable not), and
 * (b) a server with a `grpc.health.v1.Health` service, which is asked directly.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type GrpcServer, startGrpcServer } from '../../../../src/common/grpc.js';
import { healthv1 } from '../../../../src/protocol/index.js';
import {
  type Domain,
  makeDomain,
  mintEntry,
  runCli,
  selector,
  startTestWorkloadApi,
  type TestWorkloadApi,
  tempDir,
} from './support.js';

let own: Domain;
let api: TestWorkloadApi;
let tmp: { dir: string; cleanup(): void };
let health: GrpcServer;
let healthSocket: string;
let healthStatus: healthv1.HealthCheckResponse_ServingStatus;
let healthRequests: string[];

beforeAll(async () => {
  own = await makeDomain('example.org');
  api = await startTestWorkloadApi(own);
  api.source.upsert(await mintEntry(own, 'web', ['test:caller']));
  tmp = tempDir('agent-cli-health-');
  healthSocket = join(tmp.dir, 'health.sock');
  health = await startGrpcServer({
    listen: { socketPath: healthSocket },
    shutdownGraceMs: 100,
    routes: (router) =>
      router.service(healthv1.Health, {
        async check(req) {
          healthRequests.push(req.service);
          return { status: healthStatus };
        },
      }),
  });
});

afterAll(async () => {
  await api?.close();
  await health?.close();
  tmp?.cleanup();
});

beforeEach(() => {
  api.selectors = [selector('test:caller')];
  api.source.setReady(true);
  healthStatus = healthv1.HealthCheckResponse_ServingStatus.SERVING;
  healthRequests = [];
});

const USAGE =
  'Usage of health:\n' +
  '  -instance string\n' +
  '    \tInstance name to substitute into socket templates (env SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE).\n' +
  '  -shallow\n' +
  '    \tPerform a less stringent health check\n' +
  '  -socketPath string\n' +
  '    \tPath to the SPIRE Agent API socket (default "/tmp/spire-agent/public/api.sock")\n' +
  '  -verbose\n' +
  '    \tPrint verbose information\n';

describe('against the Workload API (no health service: the Workload API is probed)', () => {
  it('healthy when the caller gets its SVIDs', async () => {
    expect(await runCli(['healthcheck', '-socketPath', api.socketPath])).toEqual({
      code: 0,
      out: 'Agent is healthy.\n',
      err: '',
    });
  });

  it('healthy when the caller has no identity (PermissionDenied), as SPIRE', async () => {
    api.selectors = [];
    expect(await runCli(['healthcheck', '-socketPath', api.socketPath, '-verbose'])).toEqual({
      code: 0,
      out: 'Checking agent health...\nAgent is healthy.\n',
      err: '',
    });
  });

  it('NOT_SERVING while the agent is not ready (Unavailable)', async () => {
    api.source.setReady(false);
    expect(await runCli(['healthcheck', '-socketPath', api.socketPath, '-shallow'])).toEqual({
      code: 1,
      out: '',
      err: 'Agent is unhealthy: agent returned status "NOT_SERVING"\n',
    });
  });
});

describe('against a gRPC health service', () => {
  it('asks service "" and reports SERVING as healthy', async () => {
    const r = await runCli(['healthcheck', '-socketPath', healthSocket]);
    expect(r).toEqual({ code: 0, out: 'Agent is healthy.\n', err: '' });
    expect(healthRequests).toEqual(['']);
  });

  it('reports any other status by name', async () => {
    healthStatus = healthv1.HealthCheckResponse_ServingStatus.NOT_SERVING;
    expect(await runCli(['healthcheck', '-socketPath', healthSocket])).toEqual({
      code: 1,
      out: '',
      err: 'Agent is unhealthy: agent returned status "NOT_SERVING"\n',
    });
    healthStatus = healthv1.HealthCheckResponse_ServingStatus.UNKNOWN;
    expect((await runCli(['healthcheck', '-socketPath', healthSocket])).err).toBe(
      'Agent is unhealthy: agent returned status "UNKNOWN"\n',
    );
  });
});

describe('failures', () => {
  it("no socket: SPIRE's texts, the dial error only with -verbose", async () => {
    const path = join(tmp.dir, 'doesnotexist.sock');
    expect(await runCli(['healthcheck', '-socketPath', path])).toEqual({
      code: 1,
      out: '',
      err: 'Agent is unhealthy: unable to determine health\n',
    });
    expect(await runCli(['healthcheck', '-socketPath', path, '-verbose'])).toEqual({
      code: 1,
      out: 'Checking agent health...\n',
      err:
        `Failed to check health: rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial unix ${path}: connect: no such file or directory"\n` +
        'Agent is unhealthy: unable to determine health\n',
    });
  });

  it('bad flag: Go prints the message and the usage (nothing else), exit 1', async () => {
    expect(await runCli(['healthcheck', '-nope'])).toEqual({
      code: 1,
      out: '',
      err: `flag provided but not defined: -nope\n${USAGE}`,
    });
  });

  it('-h prints the usage (exit 0)', async () => {
    expect(await runCli(['healthcheck', '-h'])).toEqual({ code: 0, out: '', err: `${USAGE}\n` });
  });

  it("-instance without a template is refused with SPIRE's text", async () => {
    expect(await runCli(['healthcheck', '-instance', 'a'])).toEqual({
      code: 1,
      out: '',
      err: 'Agent is unhealthy:  SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE environment variable must be defined when using the instance flag\n',
    });
  });
});
