#!/bin/sh
# Starts a manufactured software TPM (swtpm) in the foreground, for the quickstart, the docs
# and by-hand debugging. Ctrl-C stops it.
#
#   scripts/swtpm.sh [--dir DIR] [--port P] [--fresh] [--manufacture-only]
#
# DIR (default ${XDG_STATE_HOME:-$HOME/.local/state}/spire-edge/swtpm) holds:
#   state/                  the TPM state (tpm2-00.permall) plus copies of the EK CA
#                           certificates: state/ek-ca-root.pem, state/ek-ca-intermediate.pem
#   ca/                     the local CA (swtpm_localca statedir: root + intermediate keys)
#   setup.conf, localca.conf, localca.options   the swtpm_setup / swtpm_localca configuration
# The TPM is manufactured (EK RSA-2048 at 0x81010001 with its certificate in NV 0x01C00002,
# EK ECC P-384 at 0x81010016 with its certificate in NV 0x01C00016, a platform certificate
# in NV 0x01C08000, only the sha256 PCR bank active) when DIR has no state yet or with
# --fresh; otherwise the existing state (and so the same EK) is reused. The local CA is
# created on first use and kept, so every TPM manufactured in DIR chains to the same root.
# Nothing is written outside DIR (the Debian default would use /var/lib/swtpm-localca).
#
# The server listens on 127.0.0.1:P (default 2321) and its control channel on P+1. The
# TCTI string for tpm2-tss and tpm2-tools is printed on stdout before swtpm starts. The test harness
# (test/harness/swtpm.ts) manufactures through this script with --manufacture-only.
set -eu

say() { printf 'swtpm.sh: %s\n' "$*" >&2; }
fail() { printf 'swtpm.sh: FAILED: %s\n' "$*" >&2; exit 1; }
need() {
  command -v "$1" >/dev/null 2>&1 || fail "$1 not found: install Debian package $2 (scripts/setup.sh does)"
}
usage() {
  sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

DIR="${XDG_STATE_HOME:-${HOME:-/tmp}/.local/state}/spire-edge/swtpm"
PORT=2321
FRESH=0
MANUFACTURE_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || usage; DIR="$2"; shift 2 ;;
    --port) [ $# -ge 2 ] || usage; PORT="$2"; shift 2 ;;
    --fresh) FRESH=1; shift ;;
    --manufacture-only) MANUFACTURE_ONLY=1; shift ;;
    -h|--help) usage ;;
    *) say "unknown argument: $1"; usage ;;
  esac
done
case "$PORT" in
  ''|*[!0-9]*) fail "--port must be a number, got '$PORT'" ;;
esac
[ "$PORT" -ge 1 ] && [ "$PORT" -le 65534 ] || fail "--port must be 1..65534 (the control channel uses P+1)"

need swtpm swtpm
need swtpm_setup swtpm-tools
need swtpm_localca swtpm-tools

mkdir -p "$DIR/state" "$DIR/ca"
DIR=$(cd "$DIR" && pwd) # the configuration files need absolute paths

# The configuration is rewritten every time (cheap), so a moved DIR still works.
cat >"$DIR/localca.conf" <<EOF
statedir = $DIR/ca
signingkey = $DIR/ca/signkey.pem
issuercert = $DIR/ca/issuercert.pem
certserial = $DIR/ca/certserial
EOF
cat >"$DIR/localca.options" <<EOF
--platform-manufacturer spire-edge
--platform-version 2.1
--platform-model swtpm
EOF
cat >"$DIR/setup.conf" <<EOF
create_certs_tool = $(command -v swtpm_localca)
create_certs_tool_config = $DIR/localca.conf
create_certs_tool_options = $DIR/localca.options
active_pcr_banks = sha256
EOF

if [ "$FRESH" -eq 1 ] || [ ! -s "$DIR/state/tpm2-00.permall" ]; then
  say "manufacturing a TPM in $DIR/state (EK and platform certificates from the local CA in $DIR/ca)"
  if ! swtpm_setup --tpm2 --tpmstate "$DIR/state" --create-ek-cert --create-platform-cert \
    --config "$DIR/setup.conf" --overwrite >"$DIR/setup.log" 2>&1; then
    cat "$DIR/setup.log" >&2
    fail "swtpm_setup (log above and in $DIR/setup.log)"
  fi
  cp "$DIR/ca/swtpm-localca-rootca-cert.pem" "$DIR/state/ek-ca-root.pem"
  cp "$DIR/ca/issuercert.pem" "$DIR/state/ek-ca-intermediate.pem"
else
  say "reusing the TPM state in $DIR/state (--fresh manufactures a new one)"
fi
[ "$MANUFACTURE_ONLY" -eq 1 ] && exit 0

CTRL_PORT=$((PORT + 1))
# stdout carries only the TCTI string (one line) so a caller can read it; hints go to stderr.
printf 'swtpm:host=127.0.0.1,port=%s\n' "$PORT"
say "serving on 127.0.0.1:$PORT (control 127.0.0.1:$CTRL_PORT); for tpm2-tools:"
say "  export TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=$PORT TSS2_LOG=all+none"
say "EK CA root $DIR/state/ek-ca-root.pem, intermediate $DIR/state/ek-ca-intermediate.pem"
# exec: this script's PID becomes swtpm's, so a signal sent to it reaches swtpm directly.
exec swtpm socket --tpm2 \
  --server "type=tcp,port=$PORT,bindaddr=127.0.0.1" \
  --ctrl "type=tcp,port=$CTRL_PORT,bindaddr=127.0.0.1" \
  --tpmstate "dir=$DIR/state" \
  --flags not-need-init,startup-clear
