/**
 * Property tests of every parser of TPM bytes (bounded: a few hundred runs each). Random and
 * mutated inputs must produce a result or the documented coded error — never another
 * exception — and parsed structures must marshal back to the same bytes. The long-running
 * version is bench/tpm-fuzz.ts.
 */
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { checkOne, fuzzTargets, inputsFor } from './support/fuzz-targets.js';

const targets = fuzzTargets();

describe('fuzz: TPM parsers throw only coded errors', () => {
  it.each(targets.map((t) => [t.name, t] as const))('%s', (_, t) => {
    // Seeds themselves are valid.
    for (const s of t.seeds) checkOne(t, s);
    fc.assert(
      fc.property(inputsFor(t), (bytes) => {
        checkOne(t, bytes);
      }),
      { numRuns: 300 },
    );
  });
});
