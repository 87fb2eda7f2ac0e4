#!/bin/sh
# The set-up-and-run command: installs what is missing, builds, and runs the quickstart.
# (Today: the SPIFFE library demo. It becomes a server + agent with swtpm and SoftHSM as those
# land.)
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
echo "quickstart: minting and verifying SVIDs with the spire-edge library"
exec node dist/demo/library-demo.js .quickstart
