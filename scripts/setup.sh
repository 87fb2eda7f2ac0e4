#!/bin/sh
# Idempotent set-up on a fresh Debian machine: system packages (when missing), npm
# dependencies from the lockfile, the native addon and the TypeScript build.
# Prints each step; fails with a message naming the step that failed.
set -eu
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }
fail() { printf 'setup: FAILED: %s\n' "$*" >&2; exit 1; }

DEBIAN_PACKAGES="swtpm swtpm-tools tpm2-tools libtss2-dev softhsm2 opensc mosquitto mosquitto-clients postgresql python3-grpcio openssl g++ make python3"

missing=""
for p in $DEBIAN_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  say "installing Debian packages:$missing"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    fail "packages missing ($missing) and not root: install them or run as root"
  fi
  $SUDO apt-get update -qq || fail "apt-get update"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null \
    || fail "apt-get install$missing"
else
  say "Debian packages present"
fi

# npm dependencies: reinstall when the lockfile changed since the last install.
stamp=node_modules/.spire-edge-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error || fail "npm ci"
  cp package-lock.json "$stamp"
else
  say "npm dependencies up to date"
fi

if [ ! -f build/Release/spire_edge_native.node ] || [ -n "$(find native binding.gyp -newer build/Release/spire_edge_native.node 2>/dev/null | head -1)" ]; then
  say "building native addon"
  sh scripts/build-native.sh || fail "native addon build (see native/, binding.gyp)"
else
  say "native addon up to date"
fi

say "building TypeScript (tsc -p tsconfig.build.json)"
npx --no-install tsc -p tsconfig.build.json || fail "TypeScript build"
say "bundling the agent (scripts/bundle-agent.mjs → dist/agent-bundle/)"
node scripts/bundle-agent.mjs || fail "agent bundle (esbuild)"
say "done"
