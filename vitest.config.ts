import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start real processes (swtpm, softhsm, mosquitto, postgres) and load
    // the native addon: run files in child processes, two at a time on these 2-core machines.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    setupFiles: ['./test/support/setup.ts', './test/support/watchdog-worker.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
