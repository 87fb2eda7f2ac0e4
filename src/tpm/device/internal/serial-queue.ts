/**
 * Runs async tasks one at a time, in call order: the in-process mutex that serialises the
 * commands of one `Tpm` (a TPM executes one command at a time, and an ESYS context is not
 * reentrant). A task that fails does not stop the ones queued after it.
 */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  /** Queues `task`; resolves or rejects with its result once every earlier task has settled. */
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task);
    this.#tail = result.catch(() => undefined);
    return result;
  }

  /** Resolves once every task queued so far has settled. */
  drained(): Promise<void> {
    return this.#tail.then(() => undefined);
  }
}
