/**
 * Runs every configured workload attestor on a PID and unions their selectors, as SPIRE's
 * agent does (`pkg/agent/attestor/workload`): attestors run concurrently; one that fails
 * is logged and its selectors are left out; only when every attestor fails does the
 * attestation fail. The whole attestation has a deadline, so an attestor stuck on a dead
 * Docker socket cannot hold a Workload API call forever.
 *
 * Errors: `ERR_WORKLOAD_ATTESTATION_FAILED` (every attestor failed),
 * `ERR_WORKLOAD_ATTESTATION_DEADLINE_EXCEEDED` (the deadline passed); an abort of the
 * caller's signal rejects with the signal's reason.
 */
import { describeError, SpireEdgeError } from '../../common/errors.js';
import { type Logger, nullLogger } from '../../common/log.js';
import { formatSelector, type Selector, uniqueSelectors } from './selector.js';
import { type AttestOptions, checkPid, type WorkloadAttestor } from './workload-attestor.js';

/** Options of {@link combineWorkloadAttestors}. */
export interface CombineWorkloadAttestorsOptions {
  readonly log?: Logger;
  /** Deadline of one attestation (all attestors together), ms. Default 30 000. */
  readonly timeoutMs?: number;
}

/**
 * One attestor that runs `attestors` together. Its `name` is `combined`; the selectors
 * keep each attestor's own type, duplicates removed, in attestor order.
 */
export function combineWorkloadAttestors(
  attestors: readonly WorkloadAttestor[],
  options: CombineWorkloadAttestorsOptions = {},
): WorkloadAttestor {
  if (!Array.isArray(attestors)) throw new TypeError('attestors must be an array');
  const names = new Set<string>();
  for (const a of attestors) {
    if (typeof a?.attest !== 'function' || typeof a.name !== 'string') {
      throw new TypeError('every attestor must be a WorkloadAttestor');
    }
    if (names.has(a.name)) throw new TypeError(`workload attestor ${a.name} is configured twice`);
    names.add(a.name);
  }
  const log = options.log ?? nullLogger;
  const timeoutMs = options.timeoutMs ?? 30_000;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    throw new TypeError('timeoutMs must be a positive integer');
  }
  const list = [...attestors];

  return {
    name: 'combined',
    async attest(pid: number, opts: AttestOptions = {}): Promise<Selector[]> {
      checkPid(pid);
      if (list.length === 0) return [];
      const outer = opts.signal;
      outer?.throwIfAborted();
      const controller = new AbortController();
      const timer = setTimeout(
        () =>
          controller.abort(
            new SpireEdgeError(
              'ERR_WORKLOAD_ATTESTATION_DEADLINE_EXCEEDED',
              `workload attestation of pid ${pid} did not finish within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
      timer.unref();
      const onOuterAbort = () => controller.abort(outer?.reason);
      outer?.addEventListener('abort', onOuterAbort, { once: true });
      const signal = controller.signal;
      try {
        const aborted = new Promise<never>((_, reject) => {
          const fail = () => reject(signal.reason);
          if (signal.aborted) fail();
          else signal.addEventListener('abort', fail, { once: true });
        });
        aborted.catch(() => {});
        const sub: AttestOptions =
          opts.pidfd === undefined ? { signal } : { signal, pidfd: opts.pidfd };
        const results = await Promise.race([
          Promise.allSettled(list.map((a) => a.attest(pid, sub))),
          aborted,
        ]);
        const selectors: Selector[] = [];
        const errors: string[] = [];
        results.forEach((r, i) => {
          const name = list[i]!.name;
          if (r.status === 'fulfilled') {
            selectors.push(...r.value);
          } else {
            errors.push(`${name}: ${describeError(r.reason)}`);
            log.error('workload attestor failed', {
              attestor: name,
              pid,
              error: describeError(r.reason),
            });
          }
        });
        if (errors.length === list.length) {
          throw new SpireEdgeError(
            'ERR_WORKLOAD_ATTESTATION_FAILED',
            `every workload attestor failed for pid ${pid}: ${errors.join('; ')}`,
          );
        }
        const out = uniqueSelectors(selectors);
        log.debug('pid attested to have selectors', {
          pid,
          selectors: out.map(formatSelector).join(','),
        });
        return out;
      } finally {
        clearTimeout(timer);
        outer?.removeEventListener('abort', onOuterAbort);
      }
    },
  };
}
