/**
 * Prints one plain closing line, `tests: N passed, N failed, N skipped`, that CI reads, and in
 * CI (CI=true) fails the run when any test was skipped: every tier must really run there.
 */
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const m of testModules) {
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
      if (m.state() === 'failed' && [...m.children.allTests()].length === 0) failed++;
    }
    process.stdout.write(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
    if (process.env.CI === 'true' && skipped > 0) {
      process.stdout.write(
        'CI=true: skipped tests are failures here (a missing component must fail, not skip)\n',
      );
      process.exitCode = 1;
    }
  }
}
