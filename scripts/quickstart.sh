#!/bin/sh
# The set-up-and-run command: installs what is missing, builds, then runs the quickstart —
# a real spire-server on embedded defaults (SQLite) with its CA keys in a SoftHSM2 token it
# creates under .quickstart/, a software TPM (swtpm) enrolled with tpm-enroll, a real
# spire-agent attested by that TPM, a registration entry for the current user, and a workload
# receiving its X509-SVID through the Workload API, checked with openssl. Everything stops at
# the end; pass --keep-running to leave it serving until Ctrl-C, --join-token to attest the
# agent with a join token instead. See docs/quickstart.md.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
exec node dist/demo/quickstart.js .quickstart "$@"
