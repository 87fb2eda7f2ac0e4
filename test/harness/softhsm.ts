/**
 * A SoftHSM2 token in a temp dir, for PKCS#11 integration tests.
 *
 * There is no long-running process: SoftHSM is a library (`/usr/lib/softhsm/libsofthsm2.so`)
 * loaded by whoever uses it, and it finds its tokens through the configuration file named by
 * `SOFTHSM2_CONF`. "Starting" writes that file and initialises a token; `stop()` removes the
 * directory.
 *
 * In-process use (pkcs11js): SoftHSM reads `SOFTHSM2_CONF` when the module is initialised
 * (`C_Initialize`), not when it is loaded, so a test file sets
 * `process.env.SOFTHSM2_CONF = instance.confPath` before initialising and uses one instance
 * per file (each vitest file runs in its own forked process, so this does not leak between
 * files). Child processes get it through `instance.env`.
 *
 * SoftHSM 2.6 offers raw `CKM_ECDSA` only: hash first, sign the digest, get raw r||s.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SpireEdgeError } from '../../src/common/errors.js';
import {
  makeTempDir,
  type RunOptions,
  type RunResult,
  removeTempDir,
  requireBinary,
  requireFile,
  run,
} from './common.js';

/** The Debian softhsm2 package's PKCS#11 module. */
export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

/** Options of {@link startSoftHsm}. */
export interface SoftHsmOptions {
  /** Label of the first token. Default `spire-edge`. */
  label?: string;
  /** User PIN. Default `1234`. */
  pin?: string;
  /** Security officer PIN. Default `5678`. */
  soPin?: string;
}

/** A SoftHSM2 configuration with one initialised token. */
export interface SoftHsmInstance {
  readonly modulePath: string;
  /** The softhsm2.conf to put in SOFTHSM2_CONF. */
  readonly confPath: string;
  readonly tokenDir: string;
  /** Label, PIN and SO PIN of the first token. */
  readonly label: string;
  readonly pin: string;
  readonly soPin: string;
  /** `{ SOFTHSM2_CONF: confPath }` for child processes. */
  readonly env: { readonly SOFTHSM2_CONF: string };
  /**
   * The PKCS#11 slot ID SoftHSM assigned to the first token (SoftHSM reassigns an
   * initialised token to a slot derived from its serial; slot IDs are not 0..n).
   */
  readonly slotId: number;
  /**
   * Runs `pkcs11-tool --module <module> ...args` with SOFTHSM2_CONF set. Select the token
   * with `--token-label` (or `--slot`); PINs are passed by the caller (`--login --pin`).
   */
  pkcs11Tool(args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Initialises another token in a free slot with this instance's PINs; returns its slot ID. */
  initToken(label: string): Promise<number>;
  /** Removes the directory (tokens and configuration); idempotent. */
  stop(): Promise<void>;
}

const REASSIGNED = /reassigned to slot (\d+)/;

/**
 * Writes a SoftHSM2 configuration in a fresh temp dir and initialises one token. Throws
 * `ERR_HARNESS_MISSING_COMPONENT` naming the Debian package when softhsm2 or opensc
 * (pkcs11-tool) are missing, `ERR_HARNESS_COMMAND_FAILED` when token initialisation fails.
 */
export async function startSoftHsm(options: SoftHsmOptions = {}): Promise<SoftHsmInstance> {
  const util = requireBinary('softhsm2-util', 'softhsm2');
  const tool = requireBinary('pkcs11-tool', 'opensc');
  const modulePath = requireFile(SOFTHSM_MODULE, 'softhsm2');
  const label = options.label ?? 'spire-edge';
  const pin = options.pin ?? '1234';
  const soPin = options.soPin ?? '5678';

  const dir = await makeTempDir('softhsm');
  const tokenDir = join(dir, 'tokens');
  const confPath = join(dir, 'softhsm2.conf');
  await mkdir(tokenDir);
  await writeFile(
    confPath,
    [
      `directories.tokendir = ${tokenDir}`,
      'objectstore.backend = file',
      'log.level = ERROR',
      'slots.removable = false',
      '',
    ].join('\n'),
  );
  const env = { SOFTHSM2_CONF: confPath } as const;

  const initToken = async (tokenLabel: string): Promise<number> => {
    const result = await run(
      util,
      ['--init-token', '--free', '--label', tokenLabel, '--pin', pin, '--so-pin', soPin],
      { env },
    );
    const slot = REASSIGNED.exec(result.stdout)?.[1];
    if (slot === undefined) {
      throw new SpireEdgeError(
        'ERR_HARNESS_COMMAND_FAILED',
        `softhsm2-util --init-token printed no slot id: ${result.stdout.trim()}`,
      );
    }
    return Number.parseInt(slot, 10);
  };

  let slotId: number;
  try {
    slotId = await initToken(label);
  } catch (e) {
    await removeTempDir(dir);
    throw e;
  }
  let stopping: Promise<void> | undefined;
  return {
    modulePath,
    confPath,
    tokenDir,
    label,
    pin,
    soPin,
    env,
    slotId,
    pkcs11Tool: (args, runOptions = {}) =>
      run(tool, ['--module', modulePath, ...args], {
        ...runOptions,
        env: { ...env, ...runOptions.env },
      }),
    initToken,
    stop() {
      stopping ??= removeTempDir(dir);
      return stopping;
    },
  };
}
