/**
 * The workload attestor plugin interface (SPIRE's `WorkloadAttestor`): given the PID of a
 * process that called the Workload API, answer the selectors that describe it. The agent
 * runs every configured attestor and unions their selectors (see `combineWorkloadAttestors`);
 * registration entries whose selectors are a subset of that union apply to the workload.
 */
import type { Selector } from './selector.js';

/** Options of {@link WorkloadAttestor.attest}. */
export interface AttestOptions {
  /**
   * A pidfd for `pid`, opened when the caller connected. Attestors read `/proc/<pid>`; the
   * caller (the Workload API) checks this pidfd is still alive AFTER attestation, so a PID
   * that was recycled during attestation is never attributed to the original caller.
   * Attestors may use it to stop early; they need not.
   */
  readonly pidfd?: number;
  /** Aborts the attestation (the call went away, or a deadline passed). */
  readonly signal?: AbortSignal;
}

/**
 * One workload attestor.
 *
 * What it trusts: the kernel's view of the process (`/proc/<pid>`), and whatever local
 * authority it asks (the Docker Engine API, systemd). What the caller must still check:
 * that `pid` still denotes the process that connected (pidfd), and which entries the
 * selectors match.
 *
 * Errors: a rejection means "this attestor could not tell" (the combinator logs it and
 * keeps the other attestors' selectors); a workload the attestor does not recognise (no
 * container, no unit) resolves with no selectors.
 */
export interface WorkloadAttestor {
  /** The plugin name, which is also the `type` of every selector it returns. */
  readonly name: string;
  attest(pid: number, options?: AttestOptions): Promise<Selector[]>;
}

/** Throws TypeError unless `pid` is a positive 32-bit integer. */
export function checkPid(pid: number): void {
  if (!Number.isSafeInteger(pid) || pid < 1 || pid > 0x7fffffff) {
    throw new TypeError('pid must be a positive 32-bit integer');
  }
}
