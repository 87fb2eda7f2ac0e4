/**
 * Benchmark helpers. Every benchmark prints its figure beside a baseline measured in the same
 * run on the same machine (for example SVIDs minted/s beside raw crypto.sign/s) and the ratio,
 * so results compare across machines. Timed tests never assert on speed; benchmarks do not
 * fail: they report.
 */

export interface Rate {
  readonly name: string;
  /** Operations per second. */
  readonly opsPerSec: number;
  readonly ops: number;
  readonly seconds: number;
}

/** Runs `fn` repeatedly for about `seconds` (after a short warm-up) and returns ops/s. */
export async function measure(
  name: string,
  fn: () => unknown | Promise<unknown>,
  {
    seconds = 2,
    warmup = 0.3,
    batch = 1,
  }: { seconds?: number; warmup?: number; batch?: number } = {},
): Promise<Rate> {
  const run = async (budgetMs: number): Promise<[number, number]> => {
    const start = performance.now();
    let ops = 0;
    let now = start;
    while (now - start < budgetMs) {
      for (let i = 0; i < batch; i++) {
        const r = fn();
        if (r instanceof Promise) await r;
      }
      ops += batch;
      now = performance.now();
    }
    return [ops, (now - start) / 1000];
  };
  await run(warmup * 1000);
  const [ops, secs] = await run(seconds * 1000);
  return { name, ops, seconds: secs, opsPerSec: ops / secs };
}

/** Like {@link measure} with `concurrency` operations in flight at once. */
export async function measureConcurrent(
  name: string,
  fn: () => Promise<unknown>,
  { seconds = 2, concurrency = 16 }: { seconds?: number; concurrency?: number } = {},
): Promise<Rate> {
  const deadline = performance.now() + seconds * 1000;
  const start = performance.now();
  let ops = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        await fn();
        ops++;
      }
    }),
  );
  const secs = (performance.now() - start) / 1000;
  return { name, ops, seconds: secs, opsPerSec: ops / secs };
}

/** Latency percentiles (ms) of samples. */
export function percentiles(samplesMs: number[], ps: number[] = [50, 99]): Record<string, number> {
  const s = [...samplesMs].sort((a, b) => a - b);
  const out: Record<string, number> = {};
  for (const p of ps)
    out[`p${p}`] = s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
  return out;
}

const fmt = (n: number): string =>
  n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2);

/**
 * Prints `subject` beside `baseline` with the ratio and, when given, the goal ratio.
 * Returns the ratio.
 */
export function reportRatio(title: string, subject: Rate, baseline: Rate, goal?: number): number {
  const ratio = subject.opsPerSec / baseline.opsPerSec;
  const goalText =
    goal === undefined ? '' : `  goal ≥ ${goal.toFixed(2)} ${ratio >= goal ? 'MET' : 'NOT MET'}`;
  console.log(`\n## ${title}`);
  console.log(`  ${subject.name.padEnd(48)} ${fmt(subject.opsPerSec).padStart(12)} /s`);
  console.log(
    `  ${baseline.name.padEnd(48)} ${fmt(baseline.opsPerSec).padStart(12)} /s  (baseline, same run)`,
  );
  console.log(`  ratio ${ratio.toFixed(3)}${goalText}`);
  return ratio;
}

/** A benchmark module exports `title` and `run`. */
export interface Benchmark {
  readonly title: string;
  run(): Promise<void>;
}
