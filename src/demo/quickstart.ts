/**
 * The quickstart (`scripts/quickstart.sh`): a real `spire-server` on embedded defaults (SQLite)
 * whose CA keys live in a SoftHSM2 token created under the quickstart directory; a software TPM
 * (swtpm, manufactured with EK certificates by scripts/swtpm.sh under the quickstart
 * directory) standing in for the gateway's TPM; `tpm-enroll` reading the device's EK and
 * writing a firmware policy from its PCRs; the node entry binding the gateway's SPIFFE ID to
 * `tpm:pub_hash:<hash>`; a real `spire-agent` attesting with the TPM (EK certificate, credential
 * activation, quote); a registration entry for the current user; and a workload
 * (`spire-agent api fetch x509`, running as this user) that receives its X509-SVID through the
 * SPIFFE Workload API, checked with `openssl verify`. Then every process stops cleanly (or keeps
 * running with --keep-running). `--join-token` attests the agent with a join token instead.
 *
 * Usage: node dist/demo/quickstart.js [DIR] [--keep-running] [--join-token]
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCertificates } from '../spiffe/x509-cert.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const SPIRE_SERVER = join(ROOT, 'bin', 'spire-server');
const SPIRE_AGENT = join(ROOT, 'bin', 'spire-agent');
const TPM_ENROLL = join(ROOT, 'bin', 'tpm-enroll');
const SWTPM_SCRIPT = join(ROOT, 'scripts', 'swtpm.sh');
const POLICY_NAME = 'quickstart-fw';
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

function writeConfig(
  dir: string,
  pinFile: string,
  ekCaPath: string | undefined,
): { path: string; socketPath: string } {
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
  }${
    ekCaPath === undefined
      ? ''
      : `
  NodeAttestor "tpm" {
    plugin_data {
      ek_ca_path = "${ekCaPath}"
    }
  }`
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
  tcti: string | undefined,
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
  ${
    tcti === undefined
      ? 'NodeAttestor "join_token" {\n    plugin_data {}\n  }'
      : `NodeAttestor "tpm" {\n    plugin_data {\n      tcti = "${tcti}"\n    }\n  }`
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

/** A free 127.0.0.1 TCP port P whose P+1 is free too (swtpm's control channel). */
async function freePortPair(): Promise<number> {
  const listen = (port: number): Promise<number | undefined> =>
    new Promise((r) => {
      const srv = createServer();
      srv.once('error', () => r(undefined));
      srv.listen(port, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => r(p));
      });
    });
  for (let i = 0; i < 50; i++) {
    const p = await listen(0);
    if (p !== undefined && p < 65535 && (await listen(p + 1)) !== undefined) return p;
  }
  throw new Error('no free pair of TCP ports on 127.0.0.1 for swtpm');
}

/**
 * Starts swtpm through scripts/swtpm.sh with its state under `dir` (manufactured on the first
 * run, then reused, so the device keeps its EK) and waits until `tpm-enroll` can read the EK.
 */
async function startSwtpm(dir: string): Promise<{ service: Service; tcti: string; ekCa: string }> {
  const port = await freePortPair();
  const swDir = join(dir, 'swtpm');
  const service = new Service(
    'swtpm',
    ['sh', SWTPM_SCRIPT, '--dir', swDir, '--port', String(port)],
    process.env,
  );
  const tcti = `swtpm:host=127.0.0.1,port=${port}`;
  await service.waitFor(() => service.output.includes(tcti), 'swtpm serving', 120_000);
  const ekCa = join(dir, 'ek-ca.pem');
  writeFileSync(
    ekCa,
    ['ek-ca-root.pem', 'ek-ca-intermediate.pem']
      .map((f) => readFileSync(join(swDir, 'state', f), 'utf8'))
      .join(''),
  );
  return { service, tcti, ekCa };
}

interface Enrollment {
  readonly pub_hash: string;
}

/** `tpm-enroll` on the "device": the EK's pub_hash, and (first run) a policy from its PCRs. */
async function enroll(tcti: string, policyPath: string, service: Service): Promise<Enrollment> {
  const args = ['-tcti', tcti, '-spiffeID', NODE_ID, '-output', 'json'];
  if (!existsSync(policyPath)) {
    args.push(
      '-pcrs',
      'sha256:0,1,2,3,4,5,6,7',
      '-writePolicy',
      policyPath,
      '-policyName',
      POLICY_NAME,
    );
  } else {
    args.push('-pcrs', 'none');
  }
  let out = '';
  await service.waitFor(() => {
    try {
      out = run(TPM_ENROLL, args);
      return true;
    } catch {
      return false; // swtpm not listening yet
    }
  }, 'tpm-enroll reading the EK');
  return JSON.parse(out) as Enrollment;
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
  const useTpm = !argv.includes('--join-token');
  const dir = resolve(argv.find((a) => !a.startsWith('--')) ?? '.quickstart');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { env, pinFile, pin } = ensureToken(dir);
  const services: Service[] = [];

  try {
    let tpm: { tcti: string; ekCa: string; enrollment: Enrollment } | undefined;
    if (useTpm) {
      say(`starting a software TPM (scripts/swtpm.sh, state in ${join(dir, 'swtpm')})`);
      const sw = await startSwtpm(dir);
      services.push(sw.service);
      const policyDir = join(dir, 'server', 'firmware-policies');
      mkdirSync(policyDir, { recursive: true, mode: 0o700 });
      const enrollment = await enroll(sw.tcti, join(policyDir, `${POLICY_NAME}.json`), sw.service);
      say(`tpm-enroll: the device's EK is tpm:pub_hash:${enrollment.pub_hash}`);
      tpm = { tcti: sw.tcti, ekCa: sw.ekCa, enrollment };
    }
    const server = writeConfig(dir, pinFile, tpm?.ekCa);
    const srv = (...a: string[]): string =>
      run(SPIRE_SERVER, [...a, '-socketPath', server.socketPath]);

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

    // Registration: the agent joins as NODE_ID (its TPM's EK, or a join token); the workload
    // is this user (unix:uid).
    const uid = process.getuid?.() ?? 0;
    if (tpm !== undefined) {
      const selector = `tpm:pub_hash:${tpm.enrollment.pub_hash}`;
      if (!srv('entry', 'show', '-spiffeID', NODE_ID, '-selector', selector).includes(selector)) {
        srv('entry', 'create', '-node', '-spiffeID', NODE_ID, '-selector', selector);
        say(`registered the device: ${NODE_ID} is the node with ${selector}`);
      }
    }
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
    const agent = writeAgentConfig(dir, port, bundlePath, tpm?.tcti);
    const agentArgs = [SPIRE_AGENT, 'run', '-config', agent.path];
    if (tpm === undefined && !existsSync(join(dir, 'agent', 'agent-store'))) {
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
    const attested: string[] = [];
    if (tpm !== undefined) {
      const agentId = `spiffe://${TRUST_DOMAIN}/spire/agent/tpm/${tpm.enrollment.pub_hash}`;
      const shown = srv('agent', 'show', '-spiffeID', agentId);
      const policy = new RegExp(`^Firmware policy\\s+: ${POLICY_NAME}: (.*)$`, 'm').exec(
        shown,
      )?.[1];
      attested.push(
        `Agent       : ${agentId}`,
        `              attested by its TPM (${tpm.tcti}): EK certificate chained to the`,
        `              manufacturer CA ${tpm.ekCa}, credential activation, quote over sha256 PCRs 0-7;`,
        `              firmware policy ${POLICY_NAME}: ${policy ?? 'not evaluated'}`,
      );
    }

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
        ...attested,
        `Try         : ./bin/spire-agent api fetch x509 -socketPath ${agent.socketPath}`,
        `              ./bin/spire-server entry show -socketPath ${server.socketPath}`,
        ...(tpm === undefined
          ? []
          : [
              `              ./bin/spire-server agent show -socketPath ${server.socketPath} -spiffeID spiffe://${TRUST_DOMAIN}/spire/agent/tpm/${tpm.enrollment.pub_hash}`,
            ]),
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
