/**
 * Prints one plain closing line, `tests: N passed, N failed, N skipped`, that CI reads, and in
 * CI (CI=true) fails the run when any test was skipped: every tier must really run there.
 *
 * It also runs the stall watchdog (test/support/stall-watchdog.ts): a test file that runs for
 * longer than `SPIRE_EDGE_TEST_STALL_MS` (default 6 min) is reported with the process tree,
 * killed and failed, instead of hanging the run.
 */
import type { TestModule } from 'vitest/node';
import { StallWatchdog } from './stall-watchdog.js';

/** The watchdog's reporter hooks, and the closing line at the end of the run. */
export default class SummaryReporter extends StallWatchdog {
  override onTestRunEnd(testModules: ReadonlyArray<TestModule> = []): void {
    super.onTestRunEnd();
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const stalled = new Set(this.stalledFiles);
    for (const m of testModules) {
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        if (state === 'passed') passed++;
        // tests of a file the watchdog killed never finished: failures, not skips
        else if (state === 'failed' || stalled.has(m.moduleId)) failed++;
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
