#!/bin/sh
# The test command: installs whatever is missing, then runs the formatter/linter check, the
# type check and every test tier (unit, contract, integration with real swtpm, SoftHSM2,
# mosquitto and PostgreSQL, end-to-end). CI runs exactly this (.ci/run).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
echo "test: biome ci (format + lint, incl. the no-I/O rule for pure folders)"
npx --no-install biome ci --reporter=summary .
echo "test: tsc --noEmit (strict type check of src, test, bench)"
npx --no-install tsc -p tsconfig.json
echo "test: vitest run"
# A backstop: the watchdog in test/support/summary-reporter.ts fails a stalled test file after
# SPIRE_EDGE_TEST_STALL_MS (6 min) and a run with no progress after 10 min; this bounds the
# run itself (a normal one takes 4-5 min on two cores) should the main vitest process block.
timeout -k 30 40m npx --no-install vitest run "$@"
