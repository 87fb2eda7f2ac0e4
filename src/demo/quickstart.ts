/**
 * The quickstart (`scripts/quickstart.sh`): a real `spire-server` on embedded defaults (SQLite)
 * whose CA keys live in a SoftHSM2 token created under the quickstart directory, an X509-SVID
 * minted through the admin API and checked with `openssl verify`, then a clean stop.
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
const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const TOKEN_LABEL = 'spire-edge-quickstart';
const TRUST_DOMAIN = 'example.org';
const WORKLOAD_ID = `spiffe://${TRUST_DOMAIN}/quickstart/workload`;

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

async function waitHealthy(
  socketPath: string,
  server: ChildProcess,
  log: () => string,
): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (server.exitCode !== null)
      throw new Error(`spire-server exited with ${server.exitCode}:\n${log()}`);
    if (existsSync(socketPath)) {
      try {
        run(SPIRE_SERVER, ['healthcheck', '-socketPath', socketPath]);
        return;
      } catch {
        // not yet
      }
    }
    if (Date.now() > deadline) throw new Error(`spire-server did not become healthy:\n${log()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function main(argv: string[]): Promise<number> {
  const keep = argv.includes('--keep-running');
  const dir = resolve(argv.find((a) => !a.startsWith('--')) ?? '.quickstart');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { env, pinFile, pin } = ensureToken(dir);
  const { path, socketPath } = writeConfig(dir, pinFile);

  say(`starting spire-server (config ${path})`);
  const server = spawn(SPIRE_SERVER, ['run', '-config', path], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keepLog = (d: Buffer): void => {
    output = (output + d.toString()).slice(-20_000);
  };
  server.stdout?.on('data', keepLog);
  server.stderr?.on('data', keepLog);
  const exited = new Promise<void>((r) => server.once('exit', () => r()));
  const stop = async (): Promise<void> => {
    if (server.exitCode === null) server.kill('SIGTERM');
    await exited;
  };

  try {
    await waitHealthy(socketPath, server, () => output);
    say('server is healthy');

    const svidDir = join(dir, 'svid');
    mkdirSync(svidDir, { recursive: true });
    run(SPIRE_SERVER, [
      'x509',
      'mint',
      '-spiffeID',
      WORKLOAD_ID,
      '-ttl',
      '1h',
      '-write',
      svidDir,
      '-socketPath',
      socketPath,
    ]);
    const svidPath = join(svidDir, 'svid.pem');
    const bundlePath = join(svidDir, 'bundle.pem');
    const [leaf] = parseCertificates(readFileSync(svidPath, 'utf8'));
    let verify: string;
    try {
      verify = run('openssl', ['verify', '-CAfile', bundlePath, svidPath]).trim();
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
        `SPIFFE ID   : ${leaf?.extensions.subjectAltName?.uris[0] ?? '?'}`,
        `Expires at  : ${leaf?.notAfter.toISOString() ?? '?'}`,
        `openssl     : ${verify}`,
        `SVID files  : ${svidPath}, ${join(svidDir, 'key.pem')}, ${bundlePath}`,
        `CA keys     : on PKCS#11 token "${TOKEN_LABEL}" (module ${SOFTHSM_MODULE},`,
        `              token files in ${join(dir, 'hsm', 'tokens')}), objects ${labels.join(', ')}:`,
        '              private, sensitive, never extractable',
        `Admin socket: ${socketPath}  (try: ./bin/spire-server entry show -socketPath ${socketPath})`,
        '',
      ].join('\n'),
    );
    if (keep) {
      say('server keeps running; press Ctrl-C to stop it');
      await new Promise<void>((r) => {
        process.once('SIGINT', () => r());
        process.once('SIGTERM', () => r());
      });
    }
    return verify.endsWith(': OK') ? 0 : 1;
  } finally {
    await stop();
    say('server stopped');
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
