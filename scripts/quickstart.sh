#!/bin/sh
# The set-up-and-run command: installs what is missing, builds, then starts a real spire-server
# on embedded defaults (SQLite) with its CA keys in a SoftHSM2 token it creates under
# .quickstart/, mints an X509-SVID through the admin API, checks it with openssl, prints where
# the CA key lives, and stops the server. Pass --keep-running to leave it serving until Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
exec node dist/demo/quickstart.js .quickstart "$@"
