/**
 * Long-running fuzzer for every parser of TPM bytes (the unit test runs the same targets a
 * few hundred times each; this runs them for as long as you like):
 *
 *   node --import tsx bench/tpm-fuzz.ts [--minutes N] [--seed S]
 *
 * Round-robins over the targets of test/unit/tpm/support/fuzz-targets.ts in batches of
 * 2,000 fast-check runs with fresh seeds until N minutes (default 5) have passed. Each input
 * must give a result or its target's coded error; parsed structures must re-marshal to the
 * same bytes; an input taking over 1 s counts as a hang. Exits 1 with the counterexample
 * (and the seed to replay it) on the first failure.
 */
import fc from 'fast-check';
import { checkOne, fuzzTargets, inputsFor } from '../test/unit/tpm/support/fuzz-targets.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} needs a non-negative number`);
  return v;
}

const minutes = arg('minutes', 5);
let seed = arg('seed', Date.now() % 2 ** 31);
const deadline = Date.now() + minutes * 60_000;
const targets = fuzzTargets();
const runs = new Map(targets.map((t) => [t.name, 0]));
let slowest = 0;

console.log(`tpm-fuzz: ${targets.length} targets for ${minutes} min, first seed ${seed}`);
let round = 0;
while (Date.now() < deadline) {
  for (const t of targets) {
    if (Date.now() >= deadline) break;
    const result = fc.check(
      fc.property(inputsFor(t), (bytes) => {
        const start = performance.now();
        checkOne(t, bytes);
        const ms = performance.now() - start;
        slowest = Math.max(slowest, ms);
        if (ms > 1000) throw new Error(`${t.name}: ${ms.toFixed(0)} ms on one input (hang?)`);
      }),
      { numRuns: 2000, seed },
    );
    if (result.failed) {
      console.error(`FAILED ${t.name} (replay with --seed ${seed}):`);
      console.error(fc.defaultReportMessage(result));
      process.exit(1);
    }
    runs.set(t.name, runs.get(t.name)! + result.numRuns);
    seed = (seed * 48271 + 1) % 2 ** 31;
  }
  round++;
  if (round % 10 === 0) {
    const total = [...runs.values()].reduce((a, b) => a + b, 0);
    console.log(
      `  round ${round}: ${total.toLocaleString('en-US')} inputs, slowest ${slowest.toFixed(2)} ms`,
    );
  }
}
for (const [name, n] of runs)
  console.log(`  ${name.padEnd(40)} ${n.toLocaleString('en-US').padStart(12)} inputs`);
console.log(`tpm-fuzz: no failure; slowest input ${slowest.toFixed(2)} ms`);
