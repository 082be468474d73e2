#!/usr/bin/env bash
# demo-tpm.sh DIR PORT — the TPM part of `make demo`. The demo server (config DIR/hwfido.yaml,
# SoftHSM token DIR/softhsm) is already running on 127.0.0.1:PORT. This script:
#   1. starts swtpm (state DIR/tpm/swtpm, Unix sockets), provisions its dictionary-attack
#      lockout with `authenticatord provision` and starts authenticatord on it;
#   2. Basic Full attestation: the TPM creates the attestation key, the vendor CA key in the
#      demo's SoftHSM token certifies it (`fidoctl vendor certify`), the daemon installs the
#      certificate, and its metadata statement (naming the vendor root) goes into
#      DIR/metadata, and the running server reloads its metadata on SIGHUP;
#   3. registration, step-up authentication and a confirmed transaction with authenticatorctl,
#      each server answer printed and its HSM-signed result token verified against the
#      server's JWKS (authenticatorctl -verify).
# The PIN and the caller token live in 0600 files and reach authenticatorctl on a file
# descriptor / token file, never on a command line. At exit the daemon is stopped (it sends
# TPM2_Shutdown, an orderly shutdown, so no dictionary-attack try is charged at the next
# start) and then swtpm.
set -euo pipefail
umask 077 # result tokens and logs written below are for the owner only
cd "$(dirname "$0")/.."
. scripts/lib.sh
dir=${1:?usage: scripts/demo-tpm.sh DIR PORT}
port=${2:?usage: scripts/demo-tpm.sh DIR PORT}
dir=$(cd "$dir" && pwd)
url="http://127.0.0.1:$port"
HWFIDO_CONFIG="$dir/hwfido.yaml"
export SOFTHSM2_CONF="$dir/softhsm/softhsm2.conf"
HWFIDO_URI=$(sed -n 's/^  uri: "\(.*\)"$/\1/p' "$HWFIDO_CONFIG")
[ -n "$HWFIDO_URI" ] || { echo "no hsm uri in $HWFIDO_CONFIG"; exit 1; }
command -v swtpm >/dev/null && command -v swtpm_ioctl >/dev/null || { echo "swtpm and swtpm_ioctl are required (make deps)"; exit 1; }

tpm="$dir/tpm"
sec="$dir/secrets"
sock="$tpm/authd.sock"
ctl() { "$BIN/authenticatorctl" -socket "$sock" "$@"; }

SWTPM_PID= DAEMON_PID=
cleanup() {
  local had_daemon=$DAEMON_PID
  if stop_tpm "$tpm"; then
    [ -z "$had_daemon" ] || echo "  authenticatord stopped (TPM2_Shutdown sent)"
  else
    echo "  authenticatord exited with an error (see $tpm/authenticatord.log)"
  fi
}
trap cleanup EXIT

echo "== TPM: swtpm, authenticatord, Basic Full attestation (state under $tpm)"
start_swtpm "$tpm" "$tpm/swtpm.log"
daemon_config "$tpm" "$sock"
if [ ! -s "$sec/tpm-lockout-auth" ]; then
  "$BIN/authenticatord" provision -config "$tpm/authenticatord.json" -lockout-auth-file "$sec/tpm-lockout-auth" \
    2>"$tpm/provision.log" || { cat "$tpm/provision.log"; exit 1; }
  echo "  DA lockout provisioned: 5 tries, lockoutAuth in $sec/tpm-lockout-auth"
fi
start_daemon "$tpm" "$sock" "$tpm/authenticatord.log"

ctl attestation-key -create -out "$tpm/ak.pem"
"$BIN/fidoctl" vendor certify -uri "$HWFIDO_URI" -pubkey "$tpm/ak.pem" -aaid 4857#0001 \
  -root "$tpm/vendor-root.pem" -out "$tpm/ak-cert.pem" | sed 's/^/  /'
ctl install-cert -cert "$tpm/ak-cert.pem" -root "$tpm/vendor-root.pem" | sed 's/^/  /'
ctl metadata > "$dir/metadata/authenticatord-4857-0001.json"
echo "  metadata statement $dir/metadata/authenticatord-4857-0001.json (basic_full + vendor root)"

# The running server reloads its metadata (and HSM keys) on SIGHUP; the reload's outcome
# is the next "reload done" / "reload failed" line of its log.
echo "  reloading hwfido-server's metadata (SIGHUP)"
reload_server "$dir"
echo "  $(grep 'uaf metadata reloaded' "$dir/server.log" | tail -1 | sed 's/.*msg=//')"

(umask 077
 od -An -tu4 -N4 /dev/urandom | tr -d ' ' > "$sec/tpm-pin"
 "$BIN/fidoctl" caller token -key "$sec/login.key" -iss https://login.example -aud hwfido -user bob > "$sec/tpm-caller.jwt")

step() { # step TITLE ARGS... — runs authenticatorctl with the PIN on fd 3; the answer JSON goes to a file
  local title=$1; shift
  echo "  $title"
  { ctl "$@" -verify -pin-fd 3 3<"$sec/tpm-pin" 2>&1 >"$tpm/last.json"; } | sed 's/^/    /'
}
step "registration (Basic Full, caller token for bob)" register -server "$url" -username bob -token-file "$sec/tpm-caller.jwt"
step "step-up authentication" authenticate -server "$url" -username bob
step "transaction confirmation" confirm -server "$url" -username bob -transaction "Pay 120.00 EUR to ACME AG" -yes
echo "  daemon status: $(ctl status | tr -d ' \n')"
