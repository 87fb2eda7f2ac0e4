/**
 * The `docker` workload attestor (SPIRE's `WorkloadAttestor "docker"`): selectors from
 * the container a process runs in, as the Docker Engine API describes it.
 *
 * The container ID comes from `/proc/<pid>/cgroup` (cgroup v1 and v2, cgroupfs and
 * systemd drivers; see {@link containerIdFromCgroups}); a process outside any container
 * gets no selectors. Then `GET /containers/<id>/json` on `docker_socket_path` (retried 3
 * times, 100 ms backoff doubling, as SPIRE) gives the selectors (type `docker`):
 * - `label:<key>:<value>` per container label (sorted by key),
 * - `env:<KEY=value>` per environment variable (the raw `Config.Env` strings),
 * - `image_id:<Config.Image>` — the image reference the container was created from
 *   (e.g. `envoyproxy/envoy:v1.29`), despite the name,
 * - `image_config_digest:<image Id>` from `GET /images/<image>/json`, when that succeeds.
 *
 * Not implemented from SPIRE: Podman socket detection, custom
 * `container_id_cgroup_matchers`, the mountinfo fallback, sigstore verification.
 * No Docker engine runs on this project's test machines: the attestor is tested against
 * a Unix-socket HTTP server that answers the Engine API's inspect shapes.
 *
 * Errors: `ERR_DOCKER_*` from the API client and the cgroup walk,
 * `ERR_WORKLOAD_ATTESTOR_FAILED` when /proc cannot be read.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import { parseUnixEndpoint } from '../../common/grpc.js';
import { parseCgroupFile } from './cgroup.js';
import { containerIdFromCgroups } from './container-id.js';
import { DockerApiClient, type DockerContainerConfig } from './docker-api.js';
import type { Selector } from './selector.js';
import { type AttestOptions, checkPid, type WorkloadAttestor } from './workload-attestor.js';

/** SPIRE's default `docker_socket_path`. */
export const DEFAULT_DOCKER_SOCKET_PATH = 'unix:///var/run/docker.sock';

/** Options of {@link createDockerWorkloadAttestor} (SPIRE's plugin_data keys in comments). */
export interface DockerWorkloadAttestorOptions {
  /** `docker_socket_path`: a path or `unix:///path`. Default `unix:///var/run/docker.sock`. */
  readonly dockerSocketPath?: string;
  /** `docker_version`: the Engine API version to call (`1.43`); unversioned when absent. */
  readonly dockerVersion?: string;
  /** Default `/proc`. */
  readonly procRoot?: string;
  /** Deadline of one API request, ms. Default 10 000. */
  readonly requestTimeoutMs?: number;
  /** Container-inspect retries after the first failure. Default 3. */
  readonly retries?: number;
  /** First retry delay, ms, doubling each retry. Default 100. */
  readonly initialBackoffMs?: number;
}

/** The selector values of a container, in SPIRE's order (labels, env, image). */
export function dockerSelectorValues(config: DockerContainerConfig): string[] {
  const values: string[] = [];
  for (const key of Object.keys(config.labels).sort()) {
    values.push(`label:${key}:${config.labels[key]}`);
  }
  for (const e of config.env) values.push(`env:${e}`);
  if (config.image !== '') values.push(`image_id:${config.image}`);
  return values;
}

/** The `docker` workload attestor. Bad options throw TypeError. */
export function createDockerWorkloadAttestor(
  options: DockerWorkloadAttestorOptions = {},
): WorkloadAttestor {
  const socketPath = parseUnixEndpoint(options.dockerSocketPath ?? DEFAULT_DOCKER_SOCKET_PATH);
  const client = new DockerApiClient({
    socketPath,
    ...(options.dockerVersion === undefined ? {} : { apiVersion: options.dockerVersion }),
    ...(options.requestTimeoutMs === undefined ? {} : { timeoutMs: options.requestTimeoutMs }),
  });
  const procRoot = options.procRoot ?? '/proc';
  const retries = options.retries ?? 3;
  const backoff = options.initialBackoffMs ?? 100;
  if (!Number.isSafeInteger(retries) || retries < 0) {
    throw new TypeError('retries must be a non-negative integer');
  }
  if (!Number.isFinite(backoff) || backoff < 0) {
    throw new TypeError('initialBackoffMs must be a non-negative number');
  }

  async function inspect(id: string, signal?: AbortSignal): Promise<DockerContainerConfig> {
    for (let i = 0; ; i++) {
      try {
        return await client.inspectContainer(id, signal);
      } catch (err) {
        if (i >= retries || signal?.aborted) throw err;
        await sleep(backoff * 2 ** i, undefined, signal === undefined ? {} : { signal });
      }
    }
  }

  return {
    name: 'docker',
    async attest(pid: number, opts: AttestOptions = {}): Promise<Selector[]> {
      checkPid(pid);
      let text: string;
      try {
        text = await readFile(join(procRoot, String(pid), 'cgroup'), 'utf8');
      } catch (err) {
        throw new SpireEdgeError(
          'ERR_WORKLOAD_ATTESTOR_FAILED',
          `could not read the cgroup of pid ${pid}: ${describeError(err)}`,
          { cause: err, details: { attestor: 'docker' } },
        );
      }
      const id = containerIdFromCgroups(parseCgroupFile(text));
      if (id === undefined) return [];
      const config = await inspect(id, opts.signal);
      const values = dockerSelectorValues(config);
      if (config.image !== '') {
        try {
          values.push(
            `image_config_digest:${await client.inspectImageId(config.image, opts.signal)}`,
          );
        } catch {
          // SPIRE skips this selector when the image cannot be inspected.
          opts.signal?.throwIfAborted();
        }
      }
      return values.map((value) => ({ type: 'docker', value }));
    },
  };
}
