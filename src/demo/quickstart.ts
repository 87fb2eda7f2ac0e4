/**
 * The quickstart (`scripts/quickstart.sh`): a real `spire-server` on embedded defaults (SQLite)
 * whose CA keys live in a SoftHSM2 token created under the quickstart directory, a real
 * `spire-agent` that joins it with a join token, a registration entry for the current user, and
 * a workload (`spire-agent api fetch x509`, running as this user) that receives its X509-SVID
 * through the SPIFFE Workload API; the SVID is checked with `openssl verify`. Then both
 * processes stop cleanly (or keep running with --keep-running).
 *
 * Usage: node dist/demo/quickstart.js [DIR] [--keep-running]
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCertificates } from '../spiffe/x509-cert.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const SPIRE_SERVER = join(ROOT, 'bin', 'spire-server');
const SPIRE_AGENT = join(ROOT, 'bin', 'spire-agent');
const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const TOKEN_LABEL = 'spire-edge-quickstart';
const TRUST_DOMAIN = 'example.org';
const WORKLOAD_ID = `spiffe://${TRUST_DOMAIN}/quickstart/workload`;
const NODE_ID = `spiffe://${TRUST_DOMAIN}/quickstart/gateway`;

function say(s: string): void {
  process.stdout.write(`quickstart: ${s}\n`);
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  return execFileSync(cmd, args, { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Creates (once) a SoftHSM2 token under `dir` and returns its environment and PIN file. */
function ensureToken(dir: string): { env: NodeJS.ProcessEnv; pinFile: string; pin: string } {
  const hsmDir = join(dir, 'hsm');
  const tokens = join(hsmDir, 'tokens');
  mkdirSync(tokens, { recursive: true, mode: 0o700 });
  const conf = join(hsmDir, 'softhsm2.conf');
  writeFileSync(
    conf,
    `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  const env = { ...process.env, SOFTHSM2_CONF: conf };
  const pinFile = join(hsmDir, 'user-pin');
  if (readdirSync(tokens).length === 0 || !existsSync(pinFile)) {
    const pin = randomBytes(8).toString('hex');
    const soPin = randomBytes(8).toString('hex');
    run(
      'softhsm2-util',
      ['--init-token', '--free', '--label', TOKEN_LABEL, '--pin', pin, '--so-pin', soPin],
      env,
    );
    writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 });
    say(`created SoftHSM2 token "${TOKEN_LABEL}" in ${tokens} (user PIN in ${pinFile}, mode 0600)`);
  } else {
    say(`reusing SoftHSM2 token "${TOKEN_LABEL}" in ${tokens}`);
  }
  return { env, pinFile, pin: readFileSync(pinFile, 'utf8').trim() };
}

function writeConfig(dir: string, pinFile: string): { path: string; socketPath: string } {
  const socketPath = join(dir, 'server', 'private', 'api.sock');
  const path = join(dir, 'server.conf');
  writeFileSync(
    path,
    `server {
  bind_address = "127.0.0.1"
  bind_port = "0"
  socket_path = "${socketPath}"
  trust_domain = "${TRUST_DOMAIN}"
  data_dir = "${join(dir, 'server')}"
  log_level = "INFO"
}

plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
    }
  }
  KeyManager "pkcs11" {
    plugin_data {
      module_path = "${SOFTHSM_MODULE}"
      token_label = "${TOKEN_LABEL}"
      pin_file = "${pinFile}"
      key_label_prefix = "spire-edge-"
    }
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
}
`,
  );
  return { path, socketPath };
}

function writeAgentConfig(
  dir: string,
  serverPort: number,
  bundlePath: string,
): { path: string; socketPath: string } {
  const socketPath = join(dir, 'agent', 'public', 'api.sock');
  const path = join(dir, 'agent.conf');
  writeFileSync(
    path,
    `agent {
  data_dir = "${join(dir, 'agent')}"
  server_address = "127.0.0.1"
  server_port = ${serverPort}
  socket_path = "${socketPath}"
  trust_domain = "${TRUST_DOMAIN}"
  trust_bundle_path = "${bundlePath}"
  log_level = "INFO"
}

plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`,
  );
  return { path, socketPath };
}

/** A long-running child whose output is kept for error messages. */
class Service {
  readonly child: ChildProcess;
  #output = '';
  readonly #exited: Promise<void>;

  constructor(
    readonly name: string,
    args: string[],
    env: NodeJS.ProcessEnv,
  ) {
    this.child = spawn(args[0]!, args.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer): void => {
      this.#output = (this.#output + d.toString()).slice(-20_000);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.#exited = new Promise((r) => this.child.once('exit', () => r()));
  }

  get output(): string {
    return this.#output;
  }

  async waitFor(check: () => boolean, what: string, ms = 60_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (this.child.exitCode !== null) {
        throw new Error(`${this.name} exited with ${this.child.exitCode}:\n${this.#output}`);
      }
      if (Date.now() > deadline)
        throw new Error(`${this.name}: ${what} not reached:\n${this.#output}`);
      await new Promise((r) => setTimeout(r, 150));
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    await this.#exited;
  }
}

function succeeds(cmd: string, args: string[], env?: NodeJS.ProcessEnv): boolean {
  try {
    run(cmd, args, env);
    return true;
  } catch {
    return false;
  }
}

export async function main(argv: string[]): Promise<number> {
  const keep = argv.includes('--keep-running');
  const dir = resolve(argv.find((a) => !a.startsWith('--')) ?? '.quickstart');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { env, pinFile, pin } = ensureToken(dir);
  const server = writeConfig(dir, pinFile);
  const services: Service[] = [];
  const srv = (...a: string[]): string =>
    run(SPIRE_SERVER, [...a, '-socketPath', server.socketPath]);

  try {
    say(`starting spire-server (config ${server.path})`);
    const s = new Service('spire-server', [SPIRE_SERVER, 'run', '-config', server.path], env);
    services.push(s);
    const portOf = (): number =>
      Number(/msg="Starting Server APIs" address=[\d.]+:(\d+)/.exec(s.output)?.[1] ?? Number.NaN);
    await s.waitFor(
      () =>
        !Number.isNaN(portOf()) &&
        succeeds(SPIRE_SERVER, ['healthcheck', '-socketPath', server.socketPath]),
      'healthy',
    );
    const port = portOf();
    say(`server is healthy (agent API on 127.0.0.1:${port})`);

    // Registration: the agent joins as NODE_ID; the workload is this user (unix:uid).
    const uid = process.getuid?.() ?? 0;
    if (!srv('entry', 'show', '-spiffeID', WORKLOAD_ID).includes(WORKLOAD_ID)) {
      srv(
        'entry',
        'create',
        '-parentID',
        NODE_ID,
        '-spiffeID',
        WORKLOAD_ID,
        '-selector',
        `unix:uid:${uid}`,
        '-x509SVIDTTL',
        '3600',
      );
      say(`registered ${WORKLOAD_ID} for unix:uid:${uid} under ${NODE_ID}`);
    }
    const bundlePath = join(dir, 'bootstrap-bundle.pem');
    writeFileSync(bundlePath, srv('bundle', 'show'));
    const agent = writeAgentConfig(dir, port, bundlePath);
    const agentArgs = [SPIRE_AGENT, 'run', '-config', agent.path];
    if (!existsSync(join(dir, 'agent', 'agent-store'))) {
      const token = /^Token: (\S+)$/m.exec(
        srv('token', 'generate', '-spiffeID', NODE_ID, '-ttl', '600'),
      )?.[1];
      if (token === undefined) throw new Error('token generate printed no token');
      agentArgs.push('-joinToken', token);
    }

    say(`starting spire-agent (config ${agent.path})`);
    const a = new Service('spire-agent', agentArgs, process.env);
    services.push(a);
    const svidDir = join(dir, 'workload');
    mkdirSync(svidDir, { recursive: true });
    // The workload: this user's process asking the Workload API for its X509-SVID.
    await a.waitFor(
      () =>
        succeeds(SPIRE_AGENT, [
          'api',
          'fetch',
          'x509',
          '-socketPath',
          agent.socketPath,
          '-write',
          svidDir,
        ]),
      'an X509-SVID for the workload',
    );
    const svidPath = join(svidDir, 'svid.0.pem');
    const bundle = join(svidDir, 'bundle.0.pem');
    const [leaf] = parseCertificates(readFileSync(svidPath, 'utf8'));
    let verify: string;
    try {
      verify = run('openssl', ['verify', '-CAfile', bundle, svidPath]).trim();
    } catch (err) {
      verify = `FAILED: ${(err as { stderr?: string }).stderr ?? String(err)}`;
    }

    const objects = run(
      'pkcs11-tool',
      [
        '--module',
        SOFTHSM_MODULE,
        '--token-label',
        TOKEN_LABEL,
        '--login',
        '--pin',
        pin,
        '--list-objects',
        '--type',
        'privkey',
      ],
      env,
    );
    const labels = [...objects.matchAll(/label:\s+(\S+)/g)].map((m) => m[1]).sort();

    process.stdout.write(
      [
        '',
        `SPIFFE ID   : ${leaf?.extensions.subjectAltName?.uris[0] ?? '?'} (received through the Workload API at ${agent.socketPath})`,
        `Expires at  : ${leaf?.notAfter.toISOString() ?? '?'}`,
        `openssl     : ${verify}`,
        `SVID files  : ${svidPath}, ${join(svidDir, 'svid.0.key')}, ${bundle}`,
        `CA keys     : on PKCS#11 token "${TOKEN_LABEL}" (module ${SOFTHSM_MODULE},`,
        `              token files in ${join(dir, 'hsm', 'tokens')}), objects ${labels.join(', ')}:`,
        '              private, sensitive, never extractable',
        `Try         : ./bin/spire-agent api fetch x509 -socketPath ${agent.socketPath}`,
        `              ./bin/spire-server entry show -socketPath ${server.socketPath}`,
        '',
      ].join('\n'),
    );
    if (keep) {
      say('server and agent keep running; press Ctrl-C to stop them');
      await new Promise<void>((r) => {
        process.once('SIGINT', () => r());
        process.once('SIGTERM', () => r());
      });
    }
    return verify.endsWith(': OK') ? 0 : 1;
  } finally {
    for (const svc of services.reverse()) {
      const t0 = Date.now();
      await svc.stop();
      say(`${svc.name} stopped (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`quickstart failed: ${(err as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
