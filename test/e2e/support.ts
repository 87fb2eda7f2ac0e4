/**
 * End-to-end support: the commands as an operator runs them — `./bin/spire-server` (and later
 * `./bin/spire-agent`) as real processes running the compiled dist/ output.
 *
 * dist/ is built by scripts/setup.sh before the tests run; when it is missing or older than
 * src/ (a developer running one file), {@link ensureBuilt} rebuilds it with
 * `tsc -p tsconfig.build.json`.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
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

const BUILD_LOCK = join(ROOT, '.e2e-build.lock');
/** How long a worker waits for another worker's build (s). */
const BUILD_LOCK_WAIT_S = 240;
/** How long one build may take (s). */
const BUILD_TIMEOUT_S = 180;
/** flock's exit status when it gave up waiting for the lock. */
const LOCK_TIMEOUT_STATUS = 75;

/**
 * Builds dist/ when it is missing or older than src/. Test files run in parallel workers: one
 * builds at a time, under a kernel lock (`flock` on the `.e2e-build.lock` directory) that is
 * released when its holder dies, so a killed run never leaves a stale lock behind; the others
 * wait (at most {@link BUILD_LOCK_WAIT_S} s), then find dist/ fresh and do not build again.
 * The build runs under `timeout`, which kills its whole process group (npx → node → the native
 * compiler) after {@link BUILD_TIMEOUT_S} s: this call is synchronous (it blocks the worker's
 * event loop, so vitest's timeouts cannot stop it) and must end on its own.
 */
export function ensureBuilt(entry = join(ROOT, 'dist', 'server', 'cli', 'main.js')): void {
  const fresh = () =>
    existsSync(entry) && statSync(entry).mtimeMs >= newestMtime(join(ROOT, 'src'));
  if (fresh()) return;
  mkdirSync(BUILD_LOCK, { recursive: true });
  // Under the lock, build only if dist/ is still stale: another worker may have just built it.
  const script = [
    'if [ -e "$1" ] && [ -z "$(find src -name \'*.ts\' -newer "$1" -print -quit)" ]; then exit 0; fi',
    `exec timeout -k 5 ${BUILD_TIMEOUT_S} npx --no-install tsc -p tsconfig.build.json`,
  ].join('\n');
  const r = spawnSync(
    'flock',
    [
      '-w',
      String(BUILD_LOCK_WAIT_S),
      '-E',
      String(LOCK_TIMEOUT_STATUS),
      BUILD_LOCK,
      'sh',
      '-c',
      script,
      'sh',
      entry,
    ],
    {
      cwd: ROOT,
      encoding: 'utf8',
      // a last resort only: flock -w and timeout already bound everything below
      timeout: (BUILD_LOCK_WAIT_S + BUILD_TIMEOUT_S + 30) * 1000,
      killSignal: 'SIGKILL',
    },
  );
  if (r.error !== undefined) {
    throw new Error(`could not run flock (util-linux; run scripts/setup.sh): ${r.error.message}`);
  }
  if (r.status === LOCK_TIMEOUT_STATUS) {
    throw new Error(`${BUILD_LOCK} was held by another build for more than ${BUILD_LOCK_WAIT_S} s`);
  }
  if (!existsSync(entry)) {
    const how =
      r.status === 124 || r.status === 137
        ? `did not finish within ${BUILD_TIMEOUT_S} s`
        : `exited ${String(r.status ?? r.signal)}`;
    throw new Error(
      `could not build dist/ (run scripts/setup.sh): tsc ${how}\n${r.stdout}${r.stderr}`,
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
  /** Extra lines in the server block (`agent_ttl = "30s"`). */
  readonly extraServer?: string;
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
${o.extraServer ?? ''}
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

// ---------------------------------------------------------------------------------------------
// Agent processes, workloads as other users (the agent end-to-end tests)

/** A free TCP port on 127.0.0.1 (bound, then released), for a server that must restart on it. */
export function freeTcpPort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createNetServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => done(port));
    });
  });
}

/**
 * Sets `bind_port` in a server.conf written by {@link writeServerConfig}, so a server that is
 * killed and started again listens where its agents look for it. Returns `port`.
 */
export function setServerBindPort(configPath: string, port: number): number {
  const text = readFileSync(configPath, 'utf8');
  if (!text.includes('bind_port = "0"')) throw new Error(`no bind_port = "0" in ${configPath}`);
  writeFileSync(configPath, text.replace('bind_port = "0"', `bind_port = "${port}"`));
  return port;
}

/** `./bin/spire-server <args…> -socketPath <socketPath>`. */
export function serverCommand(socketPath: string): (...args: string[]) => Promise<ProcessResult> {
  return (...args) => runCommand(SPIRE_SERVER, [...args, '-socketPath', socketPath]);
}

/** The entry ID in `spire-server entry create|show` output (the first one). */
export function entryIdOf(out: string): string {
  const m = /^Entry ID\s+: (\S+)$/m.exec(out);
  if (m === null) throw new Error(`no entry ID in:\n${out}`);
  return m[1]!;
}

/** `spire-server token generate [-spiffeID ID]`: the token. */
export async function generateJoinToken(socketPath: string, spiffeId?: string): Promise<string> {
  const r = await serverCommand(socketPath)(
    'token',
    'generate',
    ...(spiffeId === undefined ? [] : ['-spiffeID', spiffeId]),
  );
  const token = /^Token: (\S+)$/m.exec(r.out)?.[1];
  if (r.code !== 0 || token === undefined) {
    throw new Error(`token generate failed (${String(r.code)}): ${r.out}${r.err}`);
  }
  return token;
}

/** Options of {@link writeAgentConfig}. */
export interface AgentConfigOptions {
  /** The agent's directory: agent.conf, `agent-data/`, `public/api.sock`. */
  readonly dir: string;
  readonly serverPort: number;
  /** PEM bootstrap bundle (`spire-server bundle show` output). */
  readonly bundlePath: string;
  readonly trustDomain?: string;
  /**
   * Default `500ms` (tests want fast syncs); `null` writes no `sync_interval`, so the agent
   * runs its own default (5 s).
   */
  readonly syncInterval?: string | null;
  /** Default `DEBUG`. */
  readonly logLevel?: string;
  /** Extra lines in the agent block (`health_checks`, `telemetry` go in `extraBlocks`). */
  readonly extraBlocks?: string;
  /** The NodeAttestor block (default: `NodeAttestor "join_token" { plugin_data {} }`). */
  readonly nodeAttestor?: string;
}

/**
 * Writes agent.conf (join_token node attestation, disk key manager, unix workload attestor).
 * The Workload API socket is `<dir>/public/api.sock`: the agent creates `public/` 0755 and
 * the socket 0777, so workloads of any uid can connect when `dir` and its parents are
 * traversable (0755) by them.
 */
export function writeAgentConfig(o: AgentConfigOptions): {
  path: string;
  socketPath: string;
  dataDir: string;
} {
  mkdirSync(o.dir, { recursive: true, mode: 0o755 });
  const socketPath = join(o.dir, 'public', 'api.sock');
  const dataDir = join(o.dir, 'agent-data');
  const path = join(o.dir, 'agent.conf');
  writeFileSync(
    path,
    `agent {
  data_dir = "${dataDir}"
  server_address = "127.0.0.1"
  server_port = ${o.serverPort}
  socket_path = "${socketPath}"
  trust_domain = "${o.trustDomain ?? 'example.org'}"
  trust_bundle_path = "${o.bundlePath}"
  log_level = "${o.logLevel ?? 'DEBUG'}"${o.syncInterval === null ? '' : `\n  sync_interval = "${o.syncInterval ?? '500ms'}"`}
}
${o.extraBlocks ?? ''}
plugins {
  ${
    o.nodeAttestor ??
    `NodeAttestor "join_token" {
    plugin_data {}
  }`
  }
  KeyManager "disk" {
    plugin_data {
      directory = "${dataDir}"
    }
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`,
  );
  return { path, socketPath, dataDir };
}

/**
 * Starts `./bin/spire-agent run -config <path> [-joinToken T]` and waits until its Workload
 * API listens: its log says `Starting Workload API` (so `log_level` must be INFO or DEBUG, text
 * format). The socket file is not a sign: a SIGKILLed agent leaves it behind. A cold agent
 * answers `Unavailable` until its first sync: wait for SVIDs separately.
 */
export async function startAgentProcess(
  configPath: string,
  {
    joinToken,
    env = {},
    timeoutMs = 30_000,
  }: {
    joinToken?: string;
    env?: Record<string, string>;
    timeoutMs?: number;
  } = {},
): Promise<ServiceProcess> {
  ensureBuilt(join(ROOT, 'dist', 'agent', 'cli', 'main.js'));
  const args = ['run', '-config', configPath];
  if (joinToken !== undefined) args.push('-joinToken', joinToken);
  const p = await startProcess(SPIRE_AGENT, args, async () => true, { env });
  const deadline = Date.now() + timeoutMs;
  while (!p.output().includes('msg="Starting Workload API"')) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) {
      throw new Error(`spire-agent run exited (${String(p.child.exitCode)}):\n${p.output()}`);
    }
    if (Date.now() > deadline) {
      p.child.kill('SIGKILL');
      throw new Error(`spire-agent run did not listen within ${timeoutMs} ms:\n${p.output()}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return p;
}

/** Sends `signal` to a process started by {@link startProcess}; resolves with its exit code or signal. */
export function signalProcess(
  p: ServiceProcess,
  signal: NodeJS.Signals,
): Promise<number | NodeJS.Signals | null> {
  const { child } = p;
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve(child.exitCode ?? child.signalCode);
  }
  const exited = new Promise<number | NodeJS.Signals | null>((r) =>
    child.once('exit', (code, sig) => r(code ?? sig)),
  );
  child.kill(signal);
  return exited;
}

/** The workload program run by {@link WorkloadProcess}. */
export const WORKLOAD_PROGRAM = join(ROOT, 'test', 'e2e', 'workload-process.ts');

/** One line of test/e2e/workload-process.ts output. */
export interface WorkloadEvent {
  readonly event: string;
  /** Wall-clock time (ms since the epoch) when the workload printed it. */
  readonly at: number;
  readonly [field: string]: unknown;
}

/** An SVID as test/e2e/workload-process.ts reports it. */
export interface ReportedSvid {
  readonly id: string;
  readonly serial: string;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly certsPem: string;
  readonly keyPem: string;
}

/**
 * test/e2e/workload-process.ts as a separate process — as `uid`:`gid` through `setpriv
 * --reuid --regid --clear-groups` when given (the test must run as root) — talking to the
 * agent at `socketPath` through `SPIFFE_ENDPOINT_SOCKET`. Its JSON lines are queued and read
 * with {@link WorkloadProcess.next}.
 */
export class WorkloadProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | NodeJS.Signals | null>;
  readonly #queue: WorkloadEvent[] = [];
  readonly #waiters: Array<() => void> = [];
  #stderr = '';

  constructor(args: readonly string[], { uid, socketPath }: { uid?: number; socketPath: string }) {
    const node = [process.execPath, '--import', 'tsx', WORKLOAD_PROGRAM, ...args];
    const [cmd, ...argv] =
      uid === undefined
        ? node
        : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', ...node];
    this.child = spawn(cmd!, argv, {
      cwd: ROOT,
      env: {
        PATH: process.env['PATH'] ?? '',
        TZ: 'UTC',
        SPIFFE_ENDPOINT_SOCKET: `unix://${socketPath}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(this.child);
    this.exited = new Promise((r) =>
      this.child.once('exit', (code, sig) => {
        running.delete(this.child);
        r(code ?? sig);
        this.#wake();
      }),
    );
    let partial = '';
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      partial += d;
      let nl = partial.indexOf('\n');
      while (nl >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        nl = partial.indexOf('\n');
        try {
          this.#queue.push(JSON.parse(line) as WorkloadEvent);
        } catch {
          this.#stderr += `(stdout) ${line}\n`;
        }
      }
      this.#wake();
    });
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.#stderr = (this.#stderr + d).slice(-16_000);
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** What the process wrote on stderr (for failure messages). */
  stderr(): string {
    return this.#stderr;
  }

  /**
   * The next event that is not a `started` line. Rejects after `timeoutMs`, or when the
   * process exits with nothing left to read.
   */
  async next(timeoutMs = 20_000): Promise<WorkloadEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.#queue.shift();
      if (e !== undefined) {
        if (e.event === 'started') continue;
        return e;
      }
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`the workload exited with nothing more to read:\n${this.#stderr}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no workload event within ${timeoutMs} ms:\n${this.#stderr}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Kills the process (SIGKILL by default) and waits for it. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await this.exited;
  }
}

/** `openssl verify -CAfile bundle cert` on PEM text; exit code and output. */
export function opensslVerify(
  dir: string,
  bundlePem: string,
  certsPem: string,
): { code: number | null; out: string } {
  const bundle = join(dir, `bundle-${process.hrtime.bigint()}.pem`);
  const cert = join(dir, `cert-${process.hrtime.bigint()}.pem`);
  writeFileSync(bundle, bundlePem);
  writeFileSync(cert, certsPem);
  const r = spawnSync('openssl', ['verify', '-CAfile', bundle, '-untrusted', cert, cert], {
    encoding: 'utf8',
  });
  if (r.error !== undefined) {
    throw new Error(`openssl is not available (run scripts/setup.sh): ${r.error.message}`);
  }
  return { code: r.status, out: `${r.stdout}${r.stderr}`.replaceAll(cert, 'CERT') };
}

/** `./bin/tpm-enroll` (runs dist/enroll/main.js). */
export const TPM_ENROLL = join(ROOT, 'bin', 'tpm-enroll');
