/**
 * End-to-end support: the commands as an operator runs them — `./bin/spire-server` (and later
 * `./bin/spire-agent`) as real processes running the compiled dist/ output.
 *
 * dist/ is built by scripts/setup.sh before the tests run; when it is missing or older than
 * src/ (a developer running one file), {@link ensureBuilt} rebuilds it with
 * `tsc -p tsconfig.build.json`.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');
export const SPIRE_SERVER = join(ROOT, 'bin', 'spire-server');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** Builds dist/ when it is missing or older than src/. */
export function ensureBuilt(entry = join(ROOT, 'dist', 'server', 'cli', 'main.js')): void {
  if (existsSync(entry) && statSync(entry).mtimeMs >= newestMtime(join(ROOT, 'src'))) return;
  const r = spawnSync('npx', ['--no-install', 'tsc', '-p', 'tsconfig.build.json'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 180_000,
  });
  if (!existsSync(entry)) {
    throw new Error(
      `could not build dist/ (run scripts/setup.sh): tsc exited ${String(r.status)}\n${r.stdout}${r.stderr}`,
    );
  }
}

export interface ProcessResult {
  readonly code: number | null;
  readonly out: string;
  readonly err: string;
}

/** Runs a command to completion with `stdin`, in the repository root, TZ=UTC. */
export function runCommand(
  cmd: string,
  args: readonly string[],
  { stdin = '', env = {} }: { stdin?: string; env?: Record<string, string> } = {},
): Promise<ProcessResult> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, {
      cwd: ROOT,
      env: { PATH: process.env['PATH'] ?? '', TZ: 'UTC', ...env },
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    child.on('error', fail);
    child.on('close', (code) => done({ code, out, err }));
    child.stdin.end(stdin);
  });
}

/** A long-running command (`spire-server run`) with its output kept for error messages. */
export interface ServiceProcess {
  readonly child: ChildProcess;
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

/** Starts a long-running command and waits until `ready()` resolves true. */
export async function startProcess(
  cmd: string,
  args: readonly string[],
  ready: () => Promise<boolean>,
  { timeoutMs = 30_000, env = {} }: { timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<ServiceProcess> {
  const child = spawn(cmd, args, {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', TZ: 'UTC', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let output = '';
  const keep = (d: Buffer): void => {
    output = (output + d.toString('utf8')).slice(-64_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code) => {
      running.delete(child);
      r(code);
    }),
  );
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`${cmd} ${args.join(' ')} exited with ${child.exitCode}:\n${output}`);
    }
    if (await ready().catch(() => false)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${cmd} ${args.join(' ')} was not ready within ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    output: () => output,
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

export interface ServerConfigOptions {
  readonly dir: string;
  readonly trustDomain?: string;
  /** `sqlite3` (default, under data_dir) or a PostgreSQL connection string. */
  readonly postgres?: string;
  readonly extraPlugins?: string;
  /** The KeyManager block (default: `KeyManager "disk"` under data_dir). */
  readonly keyManager?: string;
}

/** Writes a server.conf for a test server (agent API on a free port, socket in `dir`). */
export function writeServerConfig(o: ServerConfigOptions): {
  path: string;
  socketPath: string;
  dataDir: string;
} {
  const socketPath = join(o.dir, 'private', 'api.sock');
  const dataDir = join(o.dir, 'data');
  const dataStore =
    o.postgres === undefined
      ? 'database_type = "sqlite3"'
      : `database_type = "postgres"\n      connection_string = "${o.postgres}"`;
  const path = join(o.dir, 'server.conf');
  writeFileSync(
    path,
    `server {
  bind_address = "127.0.0.1"
  bind_port = "0"
  socket_path = "${socketPath}"
  trust_domain = "${o.trustDomain ?? 'example.org'}"
  data_dir = "${dataDir}"
  log_level = "DEBUG"
}

plugins {
  DataStore "sql" {
    plugin_data {
      ${dataStore}
    }
  }
  ${
    o.keyManager ??
    `KeyManager "disk" {
    plugin_data {
      keys_path = "${dataDir}/keys.json"
    }
  }`
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
${o.extraPlugins ?? ''}
}
`,
  );
  return { path, socketPath, dataDir };
}

/** Starts `./bin/spire-server run -config <path>` and waits until `healthcheck` passes. */
export async function startServerProcess(
  configPath: string,
  socketPath: string,
  env: Record<string, string> = {},
): Promise<ServiceProcess> {
  ensureBuilt();
  return startProcess(
    SPIRE_SERVER,
    ['run', '-config', configPath],
    async () => {
      if (!existsSync(socketPath)) return false;
      const r = await runCommand(SPIRE_SERVER, ['healthcheck', '-socketPath', socketPath]);
      return r.code === 0;
    },
    { env },
  );
}

/** The agent API port a server process bound (from its "Starting Server APIs" log line). */
export function agentApiPort(server: ServiceProcess): number {
  const m = /msg="Starting Server APIs" address=[\d.]+:(\d+)/.exec(server.output());
  if (m === null) throw new Error(`no agent API address in the server log:\n${server.output()}`);
  return Number(m[1]);
}

/** `./bin/spire-agent` (runs dist/agent/cli/main.js). */
export const SPIRE_AGENT = join(ROOT, 'bin', 'spire-agent');
