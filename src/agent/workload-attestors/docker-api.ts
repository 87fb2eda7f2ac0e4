/**
 * A minimal Docker Engine API client over the daemon's Unix socket (HTTP/1.1): the two
 * inspect calls the docker workload attestor needs, with bounded responses and deadlines.
 * Response shapes follow the Engine API reference (`ContainerInspectResponse`,
 * `ImageInspect`); only the fields used are checked.
 *
 * What it trusts: whoever listens on the socket (the Docker daemon; access to that socket
 * is root-equivalent, so the agent's configuration decides it).
 *
 * Errors: `ERR_DOCKER_API_UNAVAILABLE` (cannot connect, timeout, unexpected status),
 * `ERR_DOCKER_CONTAINER_NOT_FOUND` / `ERR_DOCKER_IMAGE_NOT_FOUND` (404), `ERR_DOCKER_API_RESPONSE_INVALID` (not the
 * documented JSON shape, or larger than the limit).
 */
import http from 'node:http';
import { describeError, SpireEdgeError } from '../../common/errors.js';

/** The container fields the attestor uses (Engine API `ContainerInspectResponse.Config`). */
export interface DockerContainerConfig {
  /** `Config.Labels` (`null` in the API means none). */
  readonly labels: Readonly<Record<string, string>>;
  /** `Config.Env`, `KEY=value` strings as the container was started with. */
  readonly env: readonly string[];
  /** `Config.Image`: the image reference the container was created from (name:tag or ID). */
  readonly image: string;
}

/** Options of {@link DockerApiClient}. */
export interface DockerApiClientOptions {
  /** Absolute path of the daemon socket. */
  readonly socketPath: string;
  /** API version prefix (`1.43` → `/v1.43/…`); unversioned paths when absent. */
  readonly apiVersion?: string;
  /** Deadline of one request, ms. Default 10 000. */
  readonly timeoutMs?: number;
  /** Largest response body accepted, bytes. Default 4 MiB. */
  readonly maxResponseBytes?: number;
}

const CONTAINER_ID_RE = /^[0-9a-fA-F]{64}$/;

function unavailable(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_DOCKER_API_UNAVAILABLE',
    message,
    cause === undefined ? {} : { cause },
  );
}

function badResponse(message: string): SpireEdgeError {
  return new SpireEdgeError('ERR_DOCKER_API_RESPONSE_INVALID', message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses the container-inspect JSON into the fields the attestor uses. */
export function parseContainerInspect(body: unknown): DockerContainerConfig {
  if (!isObject(body)) throw badResponse('container inspect response is not a JSON object');
  const config = body['Config'];
  if (!isObject(config)) throw badResponse('container inspect response has no Config object');
  const rawLabels = config['Labels'] ?? null;
  const labels: Record<string, string> = {};
  if (rawLabels !== null) {
    if (!isObject(rawLabels)) throw badResponse('container Config.Labels is not an object');
    for (const [k, v] of Object.entries(rawLabels)) {
      if (typeof v !== 'string') throw badResponse(`container label ${k} is not a string`);
      labels[k] = v;
    }
  }
  const rawEnv = config['Env'] ?? null;
  let env: string[] = [];
  if (rawEnv !== null) {
    if (!Array.isArray(rawEnv) || !rawEnv.every((e) => typeof e === 'string')) {
      throw badResponse('container Config.Env is not an array of strings');
    }
    env = rawEnv as string[];
  }
  const image = config['Image'] ?? '';
  if (typeof image !== 'string') throw badResponse('container Config.Image is not a string');
  return { labels, env, image };
}

/** Docker Engine API calls over a Unix socket. */
export class DockerApiClient {
  readonly #socketPath: string;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;

  constructor(options: DockerApiClientOptions) {
    if (typeof options?.socketPath !== 'string' || !options.socketPath.startsWith('/')) {
      throw new TypeError('socketPath must be an absolute path');
    }
    const v = options.apiVersion;
    if (v !== undefined && !/^v?[0-9]+\.[0-9]+$/.test(v)) {
      throw new TypeError('apiVersion must look like 1.43');
    }
    this.#socketPath = options.socketPath;
    this.#prefix = v === undefined ? '' : `/v${v.replace(/^v/, '')}`;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#maxBytes = options.maxResponseBytes ?? 4 * 1024 * 1024;
  }

  /**
   * `GET /containers/<id>/json`.
   *
   * @throws SpireEdgeError `ERR_DOCKER_CONTAINER_NOT_FOUND`, `ERR_DOCKER_API_UNAVAILABLE`,
   *   `ERR_DOCKER_API_RESPONSE_INVALID`.
   */
  async inspectContainer(id: string, signal?: AbortSignal): Promise<DockerContainerConfig> {
    if (!CONTAINER_ID_RE.test(id)) throw new TypeError('container id must be 64 hex digits');
    const { status, body } = await this.#get(`/containers/${id}/json`, signal);
    if (status === 404) {
      throw new SpireEdgeError('ERR_DOCKER_CONTAINER_NOT_FOUND', `no such container ${id}`);
    }
    if (status !== 200) throw unavailable(`container inspect answered HTTP ${status}`);
    return parseContainerInspect(body);
  }

  /**
   * `GET /images/<name>/json` → the image ID (`Id`, the config digest `sha256:…`).
   *
   * @throws SpireEdgeError `ERR_DOCKER_IMAGE_NOT_FOUND` (404), `ERR_DOCKER_API_UNAVAILABLE`,
   *   `ERR_DOCKER_API_RESPONSE_INVALID`.
   */
  async inspectImageId(name: string, signal?: AbortSignal): Promise<string> {
    if (typeof name !== 'string' || name === '') throw new TypeError('image name is required');
    const path = `/images/${name.split('/').map(encodeURIComponent).join('/')}/json`;
    const { status, body } = await this.#get(path, signal);
    if (status === 404) {
      throw new SpireEdgeError('ERR_DOCKER_IMAGE_NOT_FOUND', `no such image ${name}`);
    }
    if (status !== 200) throw unavailable(`image inspect answered HTTP ${status}`);
    if (!isObject(body) || typeof body['Id'] !== 'string') {
      throw badResponse('image inspect response has no Id string');
    }
    return body['Id'];
  }

  #get(path: string, signal?: AbortSignal): Promise<{ status: number; body: unknown }> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const done = (err: Error | undefined, value?: { status: number; body: unknown }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err !== undefined) reject(err);
        else resolve(value!);
      };
      const req = http.request({
        socketPath: this.#socketPath,
        path: this.#prefix + path,
        method: 'GET',
        agent: false,
        headers: { Host: 'docker', Accept: 'application/json' },
      });
      const timer = setTimeout(() => {
        req.destroy();
        done(unavailable(`docker API request timed out after ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      timer.unref();
      const onAbort = () => {
        req.destroy();
        done(signal?.reason instanceof Error ? signal.reason : unavailable('request aborted'));
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      req.once('error', (err) =>
        done(
          unavailable(
            `cannot reach the docker API at ${this.#socketPath}: ${describeError(err)}`,
            err,
          ),
        ),
      );
      req.once('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > this.#maxBytes) {
            req.destroy();
            done(badResponse(`docker API response exceeds ${this.#maxBytes} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.once('error', (err) =>
          done(unavailable(`docker API response failed: ${err.message}`, err)),
        );
        res.once('end', () => {
          const status = res.statusCode ?? 0;
          if (status !== 200) {
            done(undefined, { status, body: undefined });
            return;
          }
          try {
            done(undefined, { status, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
          } catch {
            done(badResponse('docker API response is not JSON'));
          }
        });
      });
      req.end();
    });
  }
}
