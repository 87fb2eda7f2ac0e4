// A vitest setup file (runs in each worker before its test file): tells the stall watchdog
// (test/support/stall-watchdog.ts, in the main process) which file this worker runs and which
// test it is in, by writing `<SPIRE_EDGE_WATCHDOG_DIR>/<pid>` synchronously at each step. The
// watchdog then knows which worker to kill, and where it was even when its event loop is
// blocked (vitest's own progress events are throttled and can be lost then). Without the
// variable (the watchdog is not loaded) it does nothing.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, expect } from 'vitest';
import { WATCHDOG_DIR_ENV, type WorkerMark } from './stall-watchdog.js';

const dir = process.env[WATCHDOG_DIR_ENV];
const file = expect.getState().testPath ?? '';

function mark(phase: string, test?: string): void {
  if (dir === undefined || file === '') return;
  const m: WorkerMark = {
    pid: process.pid,
    file,
    phase,
    ...(test === undefined ? {} : { test }),
    // not Date.now(): a test may fake Date with vi.useFakeTimers()
    at: Math.round(performance.timeOrigin + performance.now()),
  };
  try {
    writeFileSync(join(dir, String(process.pid)), JSON.stringify(m));
  } catch {
    // The watchdog's directory is gone (the run is ending): nothing to tell.
  }
}

mark('loading the file or in beforeAll');
beforeEach((ctx) => mark('in test (or its beforeEach)', ctx.task.fullName));
afterEach((ctx) => mark('after test (afterEach, next test or afterAll)', ctx.task.fullName));
afterAll(() => mark('finished its hooks'));
