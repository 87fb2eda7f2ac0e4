/**
 * Support for the agent integration tests: a real spire-server (in this process with
 * `startServer`, or as a child process running `runServer` under tsx so it can be SIGKILLed) on
 * a fixed loopback port in a temp dir, its admin API over the private socket (join tokens,
 * entries, the bundle), agent configuration files, an agent in this process (`startAgent`) or
 * as a child process (`runAgent` under tsx), and Workload API streams read message by message.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { type RunningAgent, startAgent } from '../../src/agent/agent.js';
import { type AgentFlags, loadAgentConfigFile } from '../../src/agent/config.js';
import { createUdsTransport, type GrpcClientTransport } from '../../src/common/grpc.js';
import { encodePem } from '../../src/common/pem.js';
import {
  agentv1,
  bundlev1,
  entryv1,
  WORKLOAD_API_HEADER,
  workload,
} from '../../src/protocol/index.js';
import { type RunningServer, startServer, validateServerConfig } from '../../src/server/server.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const TD = 'example.org';
export const UID = process.geteuid!();

/** A free TCP port on 127.0.0.1 (bound and released). */
export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => ok(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns a value (not undefined/false) or the deadline passes. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 15_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`,
      );
    }
    await sleep(everyMs);
  }
}

export const silentIo = (logs: string[]) => ({
  stdout: { write: () => true },
  stderr: {
    write: (s: string) => {
      logs.push(s);
      return true;
    },
  },
  env: {},
});

/** Writes server.conf for a test server on `port` with its state in `dir`. */
export function writeServerConfig(
  dir: string,
  port: number,
  extra: { agentTtl?: string; x509Ttl?: string; extraPlugins?: string } = {},
): { path: string; socketPath: string } {
  mkdirSync(dir, { recursive: true });
  const socketPath = join(dir, 'private', 'api.sock');
  const path = join(dir, 'server.conf');
  writeFileSync(
    path,
    `server {
  bind_address = "127.0.0.1"
  bind_port = ${port}
  socket_path = "${socketPath}"
  trust_domain = "${TD}"
  data_dir = "${join(dir, 'data')}"
  log_level = "DEBUG"
  ca_ttl = "24h"
  default_x509_svid_ttl = "${extra.x509Ttl ?? '1h'}"
${extra.agentTtl === undefined ? '' : `  agent_ttl = "${extra.agentTtl}"\n`}}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
    }
  }
  KeyManager "disk" {
    plugin_data {
      keys_path = "${join(dir, 'data', 'keys.json')}"
    }
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
${extra.extraPlugins ?? ''}
}
`,
  );
  return { path, socketPath };
}

/** The admin API of a running server. */
export class Admin {
  readonly transport: GrpcClientTransport;
  readonly entry;
  readonly agent;
  readonly bundle;

  constructor(socketPath: string) {
    this.transport = createUdsTransport(socketPath);
    this.entry = createClient(entryv1.Entry, this.transport);
    this.agent = createClient(agentv1.Agent, this.transport);
    this.bundle = createClient(bundlev1.Bundle, this.transport);
  }

  async joinToken(): Promise<string> {
    return (await this.agent.createJoinToken({ ttl: 600 })).value;
  }

  async bundlePem(): Promise<string> {
    const b = await this.bundle.getBundle({});
    return b.x509Authorities.map((a) => encodePem('CERTIFICATE', a.asn1)).join('');
  }

  /** Creates an entry for `parentId` with `selectors` (`type:value` strings); returns its ID. */
  async createEntry(
    path: string,
    parentId: string,
    selectors: string[],
    options: { x509SvidTtl?: number } = {},
  ): Promise<string> {
    const parent = new URL(parentId);
    const res = await this.entry.batchCreateEntry({
      entries: [
        {
          spiffeId: { trustDomain: TD, path },
          parentId: { trustDomain: parent.host, path: parent.pathname },
          selectors: selectors.map((s) => {
            const i = s.indexOf(':');
            return { type: s.slice(0, i), value: s.slice(i + 1) };
          }),
          x509SvidTtl: options.x509SvidTtl ?? 0,
        },
      ],
    });
    const r = res.results[0]!;
    if (r.status?.code !== 0) throw new Error(`entry create failed: ${r.status?.message}`);
    return r.entry!.id;
  }

  /** Creates many entries in one call: `[path, selector]` pairs; returns their IDs. */
  async createEntries(
    parentId: string,
    specs: ReadonlyArray<readonly [string, string]>,
    x509SvidTtl = 0,
  ): Promise<string[]> {
    const parent = new URL(parentId);
    const res = await this.entry.batchCreateEntry({
      entries: specs.map(([path, sel]) => {
        const i = sel.indexOf(':');
        return {
          spiffeId: { trustDomain: TD, path },
          parentId: { trustDomain: parent.host, path: parent.pathname },
          selectors: [{ type: sel.slice(0, i), value: sel.slice(i + 1) }],
          x509SvidTtl,
        };
      }),
    });
    return res.results.map((r) => {
      if (r.status?.code !== 0) throw new Error(`entry create failed: ${r.status?.message}`);
      return r.entry!.id;
    });
  }

  async deleteEntries(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const res = await this.entry.batchDeleteEntry({ ids: [...ids] });
    for (const r of res.results) if (r.status?.code !== 0) throw new Error('entry delete failed');
  }

  async deleteEntry(id: string): Promise<void> {
    const res = await this.entry.batchDeleteEntry({ ids: [id] });
    if (res.results[0]?.status?.code !== 0) throw new Error('entry delete failed');
  }

  close(): void {
    this.transport.close();
  }
}

/** A spire-server running in this process. */
export async function startInProcessServer(
  configPath: string,
  logs: string[],
): Promise<RunningServer> {
  const io = silentIo(logs);
  const config = await validateServerConfig({ flags: { config: configPath }, io });
  return startServer(config, { io });
}

/** A child process running a TypeScript entry point under tsx, with its output kept. */
export interface ChildService {
  readonly child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string | null>;
  kill(signal?: NodeJS.Signals): Promise<number | string | null>;
}

/** Spawns `node --import tsx <script> ...args` in the repository root. */
export function spawnTsx(
  script: string,
  args: string[],
  env: Record<string, string> = {},
): ChildService {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', TZ: 'UTC', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d.toString('utf8')).slice(-200_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | string | null>((r) =>
    child.once('exit', (code, signal) => r(code ?? signal)),
  );
  return {
    child,
    output: () => out,
    exited,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Writes a script that runs `runServer` on the config given as argv[2]. */
export function writeServerScript(dir: string): string {
  const path = join(dir, 'server-main.mts');
  writeFileSync(
    path,
    `import { runServer } from ${JSON.stringify(join(ROOT, 'src/server/server.ts'))};
const code = await runServer({
  flags: { config: process.argv[2] },
  io: { stdout: process.stdout, stderr: process.stderr, env: process.env },
  onReady: () => process.stdout.write('SERVER READY\\n'),
});
process.exit(code);
`,
  );
  return path;
}

/** Writes a script that runs `runAgent` on the config given as argv[2]. */
export function writeAgentScript(dir: string): string {
  const path = join(dir, 'agent-main.mts');
  writeFileSync(
    path,
    `import { runAgent } from ${JSON.stringify(join(ROOT, 'src/agent/agent.ts'))};
const t0 = performance.now();
const code = await runAgent({
  flags: { config: process.argv[2] },
  io: { stdout: process.stdout, stderr: process.stderr, env: process.env },
  onReady: (a) => process.stdout.write('AGENT READY ' + JSON.stringify({ startedInMs: a.startedInMs, sinceMainMs: performance.now() - t0 }) + '\\n'),
});
process.exit(code);
`,
  );
  return path;
}

/** Starts the server script and waits for its readiness line. */
export async function startServerProcess(
  script: string,
  configPath: string,
): Promise<ChildService> {
  const s = spawnTsx(script, [configPath]);
  try {
    await Promise.race([
      waitFor('the server process to start', () => s.output().includes('SERVER READY'), 60_000),
      s.exited.then((code) => {
        throw new Error(`the server process exited (${String(code)}):\n${s.output()}`);
      }),
    ]);
  } catch (err) {
    // a server that never became ready must not outlive the test
    await s.kill();
    throw err;
  }
  return s;
}

export interface AgentConfigOptions {
  readonly dir: string;
  readonly port: number;
  readonly joinToken?: string;
  /** `trust_bundle_path`; without it, `insecure_bootstrap = true`. */
  readonly bundlePath?: string;
  readonly syncInterval?: string;
  readonly health?: boolean;
  readonly keyManager?: 'disk' | 'memory';
  /** Replaces the `NodeAttestor "join_token"` block. */
  readonly nodeAttestor?: string;
}

/** Writes agent.conf; the Workload API socket is `<dir>/public/api.sock`. */
export function writeAgentConfig(o: AgentConfigOptions): { path: string; socketPath: string } {
  mkdirSync(o.dir, { recursive: true });
  const socketPath = join(o.dir, 'public', 'api.sock');
  const path = join(o.dir, 'agent.conf');
  writeFileSync(
    path,
    `agent {
  data_dir = "${join(o.dir, 'agent-data')}"
  server_address = "127.0.0.1"
  server_port = ${o.port}
  socket_path = "${socketPath}"
  trust_domain = "${TD}"
${o.bundlePath === undefined ? '  insecure_bootstrap = true' : `  trust_bundle_path = "${o.bundlePath}"`}
  log_level = "DEBUG"
  sync_interval = "${o.syncInterval ?? '500ms'}"
${o.joinToken === undefined ? '' : `  join_token = "${o.joinToken}"\n`}}
${
  o.health === true
    ? `health_checks {
  listener_enabled = true
  bind_address = "127.0.0.1"
  bind_port = 0
}
telemetry {
  Prometheus {
    host = "127.0.0.1"
    port = 0
  }
}
`
    : ''
}plugins {
${
  o.nodeAttestor ??
  `  NodeAttestor "join_token" {
    plugin_data {}
  }`
}
  KeyManager "${o.keyManager ?? 'disk'}" {
    plugin_data {
${o.keyManager === 'memory' ? '' : `      directory = "${join(o.dir, 'agent-data')}"\n`}    }
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`,
  );
  return { path, socketPath };
}

/** Starts an agent in this process from a config file. */
export async function startInProcessAgent(
  configPath: string,
  logs: string[],
  flags: AgentFlags = {},
): Promise<RunningAgent> {
  const io = silentIo(logs);
  const config = await loadAgentConfigFile(configPath, flags, {});
  return startAgent(config, { io });
}

/** A FetchX509SVID stream read one message at a time (our own gRPC client, with the header). */
export class X509Stream {
  readonly #transport: GrpcClientTransport;
  readonly #abort = new AbortController();
  readonly #it: AsyncIterator<workload.X509SVIDResponse>;

  constructor(socketPath: string) {
    this.#transport = createUdsTransport(socketPath);
    const client = createClient(workload.SpiffeWorkloadAPI, this.#transport);
    this.#it = client
      .fetchX509SVID(create(workload.X509SVIDRequestSchema, {}), {
        headers: { [WORKLOAD_API_HEADER]: 'true' },
        signal: this.#abort.signal,
      })
      [Symbol.asyncIterator]();
  }

  /** The next message (rejects with the stream's error; `timeoutMs` guards a silent stream). */
  async next(timeoutMs = 20_000): Promise<workload.X509SVIDResponse> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('no stream message in time')), timeoutMs);
    });
    try {
      const r = await Promise.race([this.#it.next(), timeout]);
      if (r.done === true) throw new Error('stream ended');
      return r.value;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.#abort.abort();
    this.#transport.close();
  }
}

/** The SPIFFE IDs in a FetchX509SVID message, sorted. */
export function idsOf(m: workload.X509SVIDResponse): string[] {
  return m.svids.map((s) => s.spiffeId).sort();
}
