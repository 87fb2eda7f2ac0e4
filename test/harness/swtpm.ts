/**
 * A manufactured software TPM 2.0 (swtpm) for integration tests: EK certificates from a
 * local CA, served on ephemeral 127.0.0.1 ports as a child of the test process.
 *
 * Manufacturing (`swtpm_setup` with `swtpm_localca`) is done by `scripts/swtpm.sh
 * --manufacture-only`, the same steps the quickstart uses. It takes ~0.6–1.3 s, so the result
 * is cached once per machine ({@link cachedDir}) and every instance starts on its *own copy*
 * of that state. Consequence: instances share one EK (and one EK certificate) unless
 * `uniqueEk` is set; a test that needs two distinct TPMs (two agents) must ask for it.
 *
 * What a manufactured TPM holds (swtpm 0.7.1, seen and asserted by the harness test):
 * RSA-2048 EK persisted at {@link SWTPM_HANDLES}.rsaEk with its certificate in NV
 * 0x01C00002; ECC **P-384** EK at 0x81010016 with its certificate in NV 0x01C00016; a
 * platform certificate in NV 0x01C08000; only the sha256 PCR bank active. EK certificates are
 * issued by the local CA's intermediate ("swtpm-localca"), itself issued by its root
 * ("swtpm-localca-rootca"). Everything is written under temp dirs, never under
 * /var/lib/swtpm-localca.
 *
 * swtpm has no resource manager: flush transient handles. It serves one client connection at
 * a time; a second client waits until the first disconnects.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SpireEdgeError } from '../../src/common/errors.js';
import {
  cachedDir,
  fileStamp,
  freePortPair,
  listensOn,
  makeTempDir,
  type RunOptions,
  type RunResult,
  removeTempDir,
  requireBinary,
  retryOnPortInUse,
  run,
  type Service,
  spawnService,
} from './common.js';

/** Handles and NV indices of a TPM manufactured by this harness (and scripts/swtpm.sh). */
export const SWTPM_HANDLES = {
  /** Persistent RSA-2048 EK (TCG EK template, low range). */
  rsaEk: 0x81010001,
  /** Persistent ECC P-384 EK. */
  eccEk: 0x81010016,
  /** NV index of the RSA-2048 EK certificate (DER). */
  rsaEkCertNv: 0x01c00002,
  /** NV index of the ECC P-384 EK certificate (DER); swtpm's choice, in the TCG high range. */
  eccEkCertNv: 0x01c00016,
  /** NV index of the platform (attribute) certificate. */
  platformCertNv: 0x01c08000,
} as const;

/** Where the local CA that signed the EK certificates keeps its files (read-only). */
export interface SwtpmLocalCa {
  /** The swtpm_localca statedir. Shared by all instances: copy it before issuing from it. */
  dir: string;
  rootCertPath: string;
  rootKeyPath: string;
  /** The intermediate ("issuercert") that signs the EK and platform certificates. */
  intermediateCertPath: string;
  intermediateKeyPath: string;
}

/** Options of {@link startSwtpm}. */
export interface SwtpmOptions {
  /**
   * The swtpm state directory (`--tpmstate dir=`). Default: a fresh temp dir, removed by
   * stop(). A directory given here is kept by stop().
   */
  stateDir?: string;
  /**
   * With `stateDir`: start on the state already there (a TPM that kept its EK and NV
   * across "power cycles" of the test), manufacturing only when the directory has none.
   * Without it, `stateDir` is overwritten with freshly manufactured state.
   */
  reuseState?: boolean;
  /**
   * Manufacture a new TPM (new EK and EK certificates, same CA) instead of copying the
   * cached one: ~0.6 s more. Needed whenever two TPMs in one test must differ. Ignored when
   * `reuseState` finds existing state.
   */
  uniqueEk?: boolean;
}

/** A running swtpm. */
export interface SwtpmInstance {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** The control channel: always port + 1, where the swtpm TCTI looks for it. */
  readonly ctrlPort: number;
  /** TCTI config string for tpm2-tss / tpm2-tools: `swtpm:host=127.0.0.1,port=<port>`. */
  readonly tcti: string;
  readonly stateDir: string;
  /** PID of the current swtpm process (it changes on restart()). */
  readonly pid: number;
  /** PEM of the local CA root at the top of the EK certificate chain. */
  readonly ekCaCertPem: string;
  /** `[root, intermediate]` PEM paths (copies kept in the state dir). */
  readonly ekCaCertPaths: readonly [string, string];
  readonly localCa: SwtpmLocalCa;
  /**
   * Runs a tpm2-tools command against this TPM through the `tpm2` multi-call binary:
   * `tpm2(['getrandom', '8'])` (a leading `tpm2_` is accepted: `['tpm2_getrandom', '8']`),
   * with TPM2TOOLS_TCTI set and TSS2_LOG=all+none (pass `env: { TSS2_LOG: 'all+error' }`
   * to see why a TCTI fails to load). Throws `ERR_HARNESS_COMMAND_FAILED` on a non-zero exit
   * unless `allowFailure`.
   */
  tpm2(args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Stops swtpm (SIGTERM, then SIGKILL) and removes the temp dir; idempotent. */
  stop(): Promise<void>;
  /**
   * Stops swtpm and starts it again on the same state and ports: a reboot (PCRs and
   * transient objects are reset by startup-clear; persistent handles and NV remain).
   */
  restart(): Promise<void>;
}

const SCRIPT = fileURLToPath(new URL('../../scripts/swtpm.sh', import.meta.url));
/** Bump when the layout of the cached template changes. */
const TEMPLATE_FORMAT = '1';
const STATE_FILES = ['tpm2-00.permall', 'ek-ca-root.pem', 'ek-ca-intermediate.pem'];

/**
 * Builds (once per machine) the manufactured template: `<dir>/state` with the TPM state and
 * EK CA certificate copies, `<dir>/ca` with the local CA.
 */
async function template(): Promise<string> {
  const swtpm = requireBinary('swtpm', 'swtpm');
  const setup = requireBinary('swtpm_setup', 'swtpm-tools');
  const localca = requireBinary('swtpm_localca', 'swtpm-tools');
  const sh = requireBinary('sh', 'dash');
  const script = await readFile(SCRIPT, 'utf8');
  return cachedDir(
    'swtpm',
    [TEMPLATE_FORMAT, fileStamp(swtpm), fileStamp(setup), fileStamp(localca), script],
    [...STATE_FILES.map((f) => join('state', f)), 'ca/signkey.pem'],
    async (dir) => {
      await run(sh, [SCRIPT, '--dir', dir, '--manufacture-only']);
    },
  );
}

async function manufactureUnique(templateDir: string, workDir: string): Promise<string> {
  const sh = requireBinary('sh', 'dash');
  const layout = join(workDir, 'manufacture');
  await mkdir(layout, { recursive: true });
  await cp(join(templateDir, 'ca'), join(layout, 'ca'), { recursive: true });
  // Copies of the CA would all count serial numbers from the same value: start each copy at
  // a random 40-bit serial so certificates of different instances never share one.
  const serial = randomBytes(5).readUIntBE(0, 5) + 1;
  await writeFile(join(layout, 'ca', 'certserial'), String(serial));
  await run(sh, [SCRIPT, '--dir', layout, '--manufacture-only']);
  return join(layout, 'state');
}

async function copyState(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const f of STATE_FILES) await cp(join(from, f), join(to, f));
}

/**
 * Starts a manufactured swtpm (see the module comment) on fresh 127.0.0.1 ports P and P+1,
 * ready when swtpm itself listens on both. Throws `ERR_HARNESS_MISSING_COMPONENT` naming
 * the Debian package when swtpm, swtpm-tools or tpm2-tools are missing,
 * `ERR_HARNESS_STATE_INVALID` when `reuseState` finds state without the EK CA copies, and
 * the {@link spawnService} errors with swtpm's output when it does not start.
 */
export async function startSwtpm(options: SwtpmOptions = {}): Promise<SwtpmInstance> {
  const swtpm = requireBinary('swtpm', 'swtpm');
  const tpm2 = requireBinary('tpm2', 'tpm2-tools');
  const templateDir = await template();
  const workDir = options.stateDir === undefined ? await makeTempDir('swtpm') : undefined;
  try {
    return await startIn(templateDir, workDir, swtpm, tpm2, options);
  } catch (e) {
    if (workDir !== undefined) await removeTempDir(workDir);
    throw e;
  }
}

async function startIn(
  templateDir: string,
  workDir: string | undefined,
  swtpm: string,
  tpm2: string,
  options: SwtpmOptions,
): Promise<SwtpmInstance> {
  const stateDir = options.stateDir ?? join(workDir!, 'state');

  const hasState = existsSync(join(stateDir, 'tpm2-00.permall'));
  if (!(options.reuseState === true && hasState)) {
    if (options.uniqueEk === true) {
      const scratch = await makeTempDir('swtpm-mfg');
      await copyState(await manufactureUnique(templateDir, scratch), stateDir);
      await removeTempDir(scratch);
    } else {
      await copyState(join(templateDir, 'state'), stateDir);
    }
  }
  const ekCaCertPaths = [
    join(stateDir, 'ek-ca-root.pem'),
    join(stateDir, 'ek-ca-intermediate.pem'),
  ] as const;
  if (!ekCaCertPaths.every((p) => existsSync(p))) {
    throw new SpireEdgeError(
      'ERR_HARNESS_STATE_INVALID',
      `state dir ${stateDir} has no ek-ca-root.pem / ek-ca-intermediate.pem: manufacture it with scripts/swtpm.sh or the harness`,
    );
  }
  const ekCaCertPem = await readFile(ekCaCertPaths[0], 'utf8');
  const ca = join(templateDir, 'ca');
  const localCa: SwtpmLocalCa = {
    dir: ca,
    rootCertPath: join(ca, 'swtpm-localca-rootca-cert.pem'),
    rootKeyPath: join(ca, 'swtpm-localca-rootca-privkey.pem'),
    intermediateCertPath: join(ca, 'issuercert.pem'),
    intermediateKeyPath: join(ca, 'signkey.pem'),
  };

  const launch = (port: number, ctrlPort: number): Promise<Service> =>
    spawnService({
      name: 'swtpm',
      command: swtpm,
      args: [
        'socket',
        '--tpm2',
        '--server',
        `type=tcp,port=${port},bindaddr=127.0.0.1`,
        '--ctrl',
        `type=tcp,port=${ctrlPort},bindaddr=127.0.0.1`,
        '--tpmstate',
        `dir=${stateDir}`,
        '--flags',
        'not-need-init,startup-clear',
      ],
      ready: async (pid) => (await listensOn(pid, port)) && listensOn(pid, ctrlPort),
      stopGraceMs: 3_000,
    });

  // The swtpm TCTI has no control-port option: it always uses port + 1.
  let port = 0;
  let service = await retryOnPortInUse(async () => {
    port = await freePortPair();
    return launch(port, port + 1);
  });
  const ctrlPort = port + 1;
  const tcti = `swtpm:host=127.0.0.1,port=${port}`;

  let stopped = false;
  let stopping: Promise<void> | undefined;
  return {
    host: '127.0.0.1',
    port,
    ctrlPort,
    tcti,
    stateDir,
    get pid() {
      return service.pid;
    },
    ekCaCertPem,
    ekCaCertPaths,
    localCa,
    tpm2(args, runOptions = {}) {
      const [first, ...rest] = args;
      if (first === undefined) throw new TypeError('args must name a tpm2-tools command');
      const tool = first.startsWith('tpm2_') ? first.slice('tpm2_'.length) : first;
      return run(tpm2, [tool, ...rest], {
        ...runOptions,
        env: { TPM2TOOLS_TCTI: tcti, TSS2_LOG: 'all+none', ...runOptions.env },
      });
    },
    stop() {
      stopping ??= (async () => {
        stopped = true;
        await service.stop();
        if (workDir !== undefined) await removeTempDir(workDir);
      })();
      return stopping;
    },
    async restart() {
      if (stopped) throw new TypeError('restart() after stop()');
      await service.stop();
      // Same ports, so the TCTI string stays valid; the old listener is closed, but give a
      // port that another process grabbed meanwhile a few chances.
      for (let attempt = 1; ; attempt++) {
        try {
          service = await launch(port, ctrlPort);
          return;
        } catch (e) {
          if (
            !(e instanceof SpireEdgeError && e.code === 'ERR_HARNESS_PORT_IN_USE') ||
            attempt >= 20
          ) {
            throw e;
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
  };
}

/** Path of scripts/swtpm.sh (for tests that drive it, and docs). */
export const SWTPM_SCRIPT = SCRIPT;

/**
 * The cached manufactured template, in scripts/swtpm.sh's `--dir` layout (`state/`, `ca/`):
 * for tests that seed a `--dir` without paying for a manufacture. Read-only: copy it.
 */
export function swtpmTemplateDir(): Promise<string> {
  return template();
}
