/**
 * One TPM, one session at a time: the agent's `tpm` node attestor (a session per attestation,
 * held from the payload to the challenge's answer) and the store's TPM sealer (a session at
 * store open to unseal, or create, its data key) share the device through one
 * {@link TpmAccess}. swtpm and a TPM without a resource manager (`/dev/tpm0`) serve one
 * connection: a second one would wait for the first to disconnect — inside one process, a
 * deadlock as soon as the first holder waits on the second. Sessions here are queued in call
 * order instead; each opens the TPM when it starts and closes it when released, so the TPM is
 * free between sessions (tpm2-tools, `tpm-enroll`, a test can use it).
 *
 * Trusts: `openTpm`, for reaching the right TPM. What a caller must still do: release every
 * session it acquires (`withTpm` does), and never wait, while holding a session, for something
 * that needs another session.
 */
import { SpireEdgeError } from '../../common/errors.js';
import type { Tpm } from '../../tpm/device/tpm.js';

/** An open TPM held exclusively until {@link TpmSession.release}. */
export interface TpmSession {
  readonly tpm: Tpm;
  /** Closes the TPM (flushing what the session loaded) and starts the next session. Idempotent. */
  release(): Promise<void>;
}

/** Counters for diagnostics and tests. */
export interface TpmAccessStats {
  /** Sessions opened so far. */
  readonly sessions: number;
  /** Sessions open now (0 or 1). */
  readonly active: number;
  /** The most sessions ever open at once: 1 unless something is badly wrong. */
  readonly maxActive: number;
  /** Callers waiting for a session now. */
  readonly waiting: number;
}

/** Serialised access to one TPM (see the module docs). */
export interface TpmAccess {
  /**
   * Waits for earlier sessions to be released, then opens the TPM. Rejects with what
   * `openTpm` threw (the next session still starts), or `ERR_TPM_CLOSED` after close().
   */
  acquire(): Promise<TpmSession>;
  /** Runs `fn` in a session of its own and releases it whatever `fn` does. */
  withTpm<T>(fn: (tpm: Tpm) => Promise<T>): Promise<T>;
  stats(): TpmAccessStats;
  /**
   * Refuses new sessions (`ERR_TPM_CLOSED`), including queued ones that have not started;
   * a session already open stays its holder's to release. Idempotent.
   */
  close(): Promise<void>;
}

function closedError(): SpireEdgeError {
  return new SpireEdgeError('ERR_TPM_CLOSED', 'could not open a tpm session: tpm access is closed');
}

/** Creates the shared access to the TPM that `openTpm` opens (called once per session). */
export function createTpmAccess(openTpm: () => Promise<Tpm>): TpmAccess {
  if (typeof openTpm !== 'function') throw new TypeError('openTpm must be a function');
  let tail: Promise<void> = Promise.resolve();
  let closed = false;
  const counts = { sessions: 0, active: 0, maxActive: 0, waiting: 0 };

  async function acquire(): Promise<TpmSession> {
    if (closed) throw closedError();
    let free!: () => void;
    const slot = new Promise<void>((resolve) => {
      free = resolve;
    });
    const previous = tail;
    tail = previous.then(() => slot);
    counts.waiting++;
    await previous;
    counts.waiting--;
    if (closed) {
      free();
      throw closedError();
    }
    let tpm: Tpm;
    try {
      tpm = await openTpm();
    } catch (err) {
      free();
      throw err;
    }
    counts.sessions++;
    counts.active++;
    counts.maxActive = Math.max(counts.maxActive, counts.active);
    let releasing: Promise<void> | undefined;
    return {
      tpm,
      release() {
        releasing ??= (async () => {
          try {
            await tpm.close();
          } finally {
            counts.active--;
            free();
          }
        })();
        return releasing;
      },
    };
  }

  return {
    acquire,
    async withTpm(fn) {
      if (typeof fn !== 'function') throw new TypeError('fn must be a function');
      const session = await acquire();
      let result: Awaited<ReturnType<typeof fn>>;
      try {
        result = await fn(session.tpm);
      } catch (err) {
        // fn's error is the one to report; the session is released either way.
        await session.release().catch(() => {});
        throw err;
      }
      await session.release();
      return result;
    },
    stats: () => ({ ...counts }),
    async close() {
      closed = true;
    },
  };
}
