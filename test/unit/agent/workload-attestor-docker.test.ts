/**
 * The docker workload attestor. No Docker engine runs on these machines: the daemon is a
 * small HTTP/1.1 server on a Unix socket that answers the Docker Engine API's
 * container-inspect (`GET /containers/{id}/json`) and image-inspect
 * (`GET /images/{name}/json`) shapes, with the fields a real daemon returns (Config.Labels,
 * Config.Env, Config.Image; image Id). The workload's cgroup comes from a fake /proc tree.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDockerWorkloadAttestor } from '../../../src/agent/workload-attestors/docker.js';
import { SpireEdgeError } from '../../../src/common/errors.js';

const ID = `${'0123456789abcdef'.repeat(4)}`;
const OTHER = 'e'.repeat(64);
const IMAGE_ID = `sha256:${'9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'}`;

const dir = mkdtempSync(join(tmpdir(), 'wl-docker-'));
const socketPath = join(dir, 'docker.sock');
const proc = join(dir, 'proc');
let server: http.Server;
const requests: string[] = [];
/** How the fake daemon answers the next requests: a status and a body per path. */
let answer: (path: string) => { status: number; body?: string; hang?: boolean } = () => ({
  status: 404,
});

function inspectBody(config: Record<string, unknown>): string {
  // Trimmed from a real `docker inspect` answer: the attestor must ignore everything else.
  return JSON.stringify({
    Id: ID,
    Created: '2026-01-01T00:00:00Z',
    Path: '/docker-entrypoint.sh',
    State: { Status: 'running', Running: true, Pid: 4242 },
    Image: IMAGE_ID,
    Name: '/web',
    HostConfig: { NetworkMode: 'bridge' },
    Config: {
      Hostname: '0123456789ab',
      User: '',
      Cmd: ['nginx', '-g', 'daemon off;'],
      WorkingDir: '',
      ...config,
    },
    NetworkSettings: {},
  });
}

function cgroup(pid: number, text: string): void {
  mkdirSync(join(proc, String(pid)), { recursive: true });
  writeFileSync(join(proc, String(pid), 'cgroup'), text);
}
cgroup(100, `0::/system.slice/docker-${ID}.scope\n`);
cgroup(101, `12:memory:/docker/${ID}\n1:name=systemd:/docker/${ID}\n0::/\n`);
cgroup(102, '0::/user.slice/user-1000.slice/session-1.scope\n');
cgroup(103, `4:memory:/docker/${ID}\n0::/docker/${OTHER}\n`);

beforeAll(async () => {
  server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url} host=${req.headers.host}`);
    const a = answer(req.url ?? '');
    if (a.hang === true) return;
    res.writeHead(a.status, { 'Content-Type': 'application/json' });
    res.end(a.body ?? JSON.stringify({ message: 'No such container' }));
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  requests.length = 0;
});

const attestor = (extra: Parameters<typeof createDockerWorkloadAttestor>[0] = {}) =>
  createDockerWorkloadAttestor({
    dockerSocketPath: `unix://${socketPath}`,
    procRoot: proc,
    initialBackoffMs: 5,
    ...extra,
  });

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err instanceof SpireEdgeError ? err.code : `not coded: ${String(err)}`;
  }
}

describe('docker workload attestor (against a Docker-Engine-API-shaped server)', () => {
  it('emits label, env, image_id and image_config_digest selectors for a v2 systemd-driver container', async () => {
    answer = (path) =>
      path === `/containers/${ID}/json`
        ? {
            status: 200,
            body: inspectBody({
              Labels: { 'com.example.name': 'web', 'com.example.tier': 'front:end' },
              Env: ['PATH=/usr/bin', 'MODE=prod=1'],
              Image: 'envoyproxy/envoy:v1.29.1',
            }),
          }
        : path === '/images/envoyproxy/envoy%3Av1.29.1/json'
          ? {
              status: 200,
              body: JSON.stringify({ Id: IMAGE_ID, RepoTags: ['envoyproxy/envoy:v1.29.1'] }),
            }
          : { status: 404 };
    const selectors = await attestor().attest(100);
    expect(selectors.every((s) => s.type === 'docker')).toBe(true);
    expect(selectors.map((s) => s.value)).toEqual([
      'label:com.example.name:web',
      'label:com.example.tier:front:end',
      'env:PATH=/usr/bin',
      'env:MODE=prod=1',
      'image_id:envoyproxy/envoy:v1.29.1',
      `image_config_digest:${IMAGE_ID}`,
    ]);
    expect(requests).toEqual([
      `GET /containers/${ID}/json host=docker`,
      'GET /images/envoyproxy/envoy%3Av1.29.1/json host=docker',
    ]);
  });

  it('finds the container from cgroup v1 lines and calls a versioned API when configured', async () => {
    answer = (path) =>
      path === `/v1.43/containers/${ID}/json`
        ? { status: 200, body: inspectBody({ Labels: null, Env: null, Image: '' }) }
        : { status: 404 };
    expect(await attestor({ dockerVersion: '1.43' }).attest(101)).toEqual([]);
    expect(requests).toEqual([`GET /v1.43/containers/${ID}/json host=docker`]);
  });

  it('gives no selectors and asks nothing for a process outside containers', async () => {
    expect(await attestor().attest(102)).toEqual([]);
    expect(requests).toEqual([]);
  });

  it('refuses a process whose cgroups name two containers', async () => {
    expect(await codeOf(attestor().attest(103))).toBe('ERR_DOCKER_CONTAINER_ID_CONFLICT');
    expect(requests).toEqual([]);
  });

  it('retries container inspect 3 times, then reports a missing container', async () => {
    answer = () => ({ status: 404 });
    expect(await codeOf(attestor().attest(100))).toBe('ERR_DOCKER_CONTAINER_NOT_FOUND');
    expect(requests).toHaveLength(4);
    let n = 0;
    answer = (path) =>
      path.startsWith('/containers/') && n++ < 2
        ? { status: 500 }
        : path.startsWith('/containers/')
          ? { status: 200, body: inspectBody({ Labels: { a: 'b' }, Image: 'busybox' }) }
          : { status: 404 };
    // transient daemon errors are retried; a missing image only drops image_config_digest
    expect((await attestor().attest(100)).map((s) => s.value)).toEqual([
      'label:a:b',
      'image_id:busybox',
    ]);
  });

  it('rejects answers that are not the documented shape, or too large', async () => {
    answer = () => ({ status: 200, body: 'not json' });
    expect(await codeOf(attestor({ retries: 0 }).attest(100))).toBe(
      'ERR_DOCKER_API_RESPONSE_INVALID',
    );
    answer = () => ({ status: 200, body: inspectBody({ Labels: { a: 1 } }) });
    expect(await codeOf(attestor({ retries: 0 }).attest(100))).toBe(
      'ERR_DOCKER_API_RESPONSE_INVALID',
    );
    answer = () => ({ status: 200, body: inspectBody({ Env: 'A=B' }) });
    expect(await codeOf(attestor({ retries: 0 }).attest(100))).toBe(
      'ERR_DOCKER_API_RESPONSE_INVALID',
    );
    answer = () => ({
      status: 200,
      body: JSON.stringify({ Config: { Labels: { big: 'x'.repeat(5 << 20) } } }),
    });
    expect(await codeOf(attestor({ retries: 0 }).attest(100))).toBe(
      'ERR_DOCKER_API_RESPONSE_INVALID',
    );
  });

  it('reports an unreachable or silent daemon as unavailable', async () => {
    const missing = createDockerWorkloadAttestor({
      dockerSocketPath: join(dir, 'nothing.sock'),
      procRoot: proc,
      retries: 0,
    });
    expect(await codeOf(missing.attest(100))).toBe('ERR_DOCKER_API_UNAVAILABLE');
    answer = () => ({ status: 200, hang: true });
    const started = Date.now();
    expect(await codeOf(attestor({ retries: 0, requestTimeoutMs: 100 }).attest(100))).toBe(
      'ERR_DOCKER_API_UNAVAILABLE',
    );
    expect(Date.now() - started).toBeLessThan(2000);
    server.closeAllConnections();
  });
});
