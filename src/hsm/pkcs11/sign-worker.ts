/**
 * A dedicated signing thread for fast tokens (`signing_mode worker`, see signing-mode.ts):
 * a `worker_threads` Worker that loads the same PKCS#11 library (the library is
 * process-wide, so the sessions and object handles of the main thread are valid in it) and
 * signs batches of prepared inputs synchronously on the session it is handed, one batch at a
 * time. It never initialises or finalises the library: it is started only while the library
 * is initialised, and its C_Initialize sees CKR_CRYPTOKI_ALREADY_INITIALIZED.
 *
 * The worker's code is plain JavaScript evaluated from a string, so it runs the same under
 * `tsc` output, tsx and vitest.
 *
 * Errors: `ERR_HSM_WORKER` when the thread cannot start or dies; per-signature PKCS#11
 * failures come back as return values for the caller to map (ckr.ts).
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { SpireEdgeError } from '../../common/errors.js';

/** One signature to make: C_SignInit(mechanism, key) + C_Sign(input). */
export interface SignJob {
  /** The private key object handle. */
  readonly key: Buffer;
  /** 0: CKM_ECDSA, 1: CKM_RSA_PKCS. */
  readonly mechanism: 0 | 1;
  /** The digest (ECDSA) or DigestInfo (RSA). */
  readonly input: Buffer;
  /** The signature length. */
  readonly length: number;
}

/** A signature, or the CK_RV (or -1 for a non-PKCS#11 failure) and message of a failure. */
export type SignResult =
  | { readonly sig: Buffer }
  | { readonly rv: number; readonly message: string };

const WORKER_SOURCE = `'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const pkcs11js = require(workerData.lib);
const p11 = new pkcs11js.PKCS11();
try {
  p11.load(workerData.module);
  try {
    p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (e) {
    if (e.code !== 0x191) throw e; // CKR_CRYPTOKI_ALREADY_INITIALIZED: the main thread's
  }
} catch (e) {
  parentPort.postMessage({ type: 'failed', message: String(e && e.message) });
  throw e;
}
const MECHANISMS = [{ mechanism: pkcs11js.CKM_ECDSA }, { mechanism: pkcs11js.CKM_RSA_PKCS }];
parentPort.on('message', (m) => {
  const session = Buffer.from(m.session.buffer, m.session.byteOffset, m.session.byteLength);
  const out = new Array(m.jobs.length);
  for (let i = 0; i < m.jobs.length; i++) {
    const j = m.jobs[i];
    try {
      p11.C_SignInit(session, MECHANISMS[j.mechanism], Buffer.from(j.key.buffer, j.key.byteOffset, j.key.byteLength));
      out[i] = { sig: p11.C_Sign(session, Buffer.from(j.input.buffer, j.input.byteOffset, j.input.byteLength), Buffer.allocUnsafe(j.length)) };
    } catch (e) {
      out[i] = { rv: typeof e.code === 'number' && e.name === 'Pkcs11Error' ? e.code : -1, message: String(e && e.message) };
    }
  }
  parentPort.postMessage({ type: 'done', out });
});
parentPort.postMessage({ type: 'ready' });
`;

function workerError(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_HSM_WORKER',
    `pkcs11 signing thread: ${message}`,
    cause === undefined ? {} : { cause },
  );
}

type Reply =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'done'; out: Array<{ sig: Uint8Array } | { rv: number; message: string }> };

/** The signing thread. Start it with {@link SignWorker.start}. */
export class SignWorker {
  readonly #worker: Worker;
  #pending: { resolve: (r: SignResult[]) => void; reject: (e: unknown) => void } | undefined;
  #dead: SpireEdgeError | undefined;

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.on('message', (m: Reply) => {
      if (m.type !== 'done') return;
      const p = this.#pending;
      this.#pending = undefined;
      p?.resolve(
        m.out.map((r) =>
          'sig' in r ? { sig: Buffer.from(r.sig.buffer, r.sig.byteOffset, r.sig.byteLength) } : r,
        ),
      );
    });
    const die = (err: SpireEdgeError) => {
      this.#dead ??= err;
      const p = this.#pending;
      this.#pending = undefined;
      p?.reject(this.#dead);
    };
    worker.on('error', (err) => die(workerError(`failed: ${err.message}`, err)));
    worker.on('exit', (code) => die(workerError(`exited with code ${code}`)));
  }

  /**
   * Starts the thread and waits until it has loaded `modulePath`. Call it only while the
   * library is initialised in this process (inside `Pkcs11Module.use`).
   *
   * @throws SpireEdgeError `ERR_HSM_WORKER` when it cannot start.
   */
  static start(modulePath: string): Promise<SignWorker> {
    const lib = createRequire(import.meta.url).resolve('pkcs11js');
    return new Promise((resolve, reject) => {
      let worker: Worker;
      try {
        worker = new Worker(WORKER_SOURCE, {
          eval: true,
          workerData: { lib, module: modulePath },
          stdout: false,
          stderr: false,
        });
      } catch (err) {
        reject(workerError(`cannot start: ${(err as Error).message}`, err));
        return;
      }
      worker.unref();
      const onMessage = (m: Reply) => {
        if (m.type === 'ready') {
          cleanup();
          resolve(new SignWorker(worker));
        } else if (m.type === 'failed') {
          cleanup();
          reject(workerError(`cannot load the module: ${m.message}`));
        }
      };
      const onError = (err: Error) => {
        cleanup();
        reject(workerError(`cannot start: ${err.message}`, err));
      };
      const onExit = (code: number) => {
        cleanup();
        reject(workerError(`exited while starting (code ${code})`));
      };
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
  }

  /** True once the thread has failed or been closed. */
  get dead(): boolean {
    return this.#dead !== undefined;
  }

  /**
   * Signs `jobs` on `session`, in order. One batch at a time: the caller must await each
   * before the next, and must hold `session` (and the library) meanwhile.
   *
   * @throws SpireEdgeError `ERR_HSM_WORKER` when the thread is dead or dies meanwhile.
   */
  run(session: Buffer, jobs: readonly SignJob[]): Promise<SignResult[]> {
    if (this.#dead !== undefined) return Promise.reject(this.#dead);
    if (this.#pending !== undefined) {
      return Promise.reject(new TypeError('SignWorker.run: a batch is already running'));
    }
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.#worker.postMessage({ session, jobs });
    });
  }

  /** Stops the thread (after the batch in flight, if any, since C_Sign is not interrupted). */
  async close(): Promise<void> {
    this.#dead ??= workerError('closed');
    await this.#worker.terminate();
  }
}
