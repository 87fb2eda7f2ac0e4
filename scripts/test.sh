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
npx --no-install vitest run "$@"
