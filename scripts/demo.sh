#!/usr/bin/env bash
# demo.sh — from nothing to a working result (run by `make demo` after deps and build):
#   1. a SoftHSM token with the server's keys generated inside it, self-tested, and a JWS
#      signed in the HSM and verified with the exported JWK;
#   2. hwfido-server started on that token and a fresh SQLite store;
#   3. FIDO UAF in-band flows: registration, step-up authentication and a confirmed
#      transaction, each answered with an HSM-signed result token verified against the JWKS;
#   4. (demo-tpm.sh) the same with authenticatord: UAF keys in swtpm, Basic Full attestation by a
#      vendor CA in the HSM, the PIN checked by the TPM;
#   5. (demo-oob.sh) out-of-band flows: QR registration, payment confirmed and rejected, push,
#      usernameless login by QR, deregistration — each with its status trail;
#   6. (demo-fido2.sh) FIDO2 registration and login in headless Chromium.
# Everything lives under var/demo and talks to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
dir=var/demo
port=19080
rm -rf "$dir"
trap stop_server EXIT

echo "== 1. HSM: SoftHSM token, keys generated inside it (PINs from 0600 files under $dir/secrets)"
setup_env "$dir" "$port"
"$BIN/fidoctl" hsm selftest -uri "$HWFIDO_URI" | sed 's/^/  /'

echo "== 2. hwfido-server on http://127.0.0.1:$port (store $dir/hwfido.db)"
# The demo's server logs at info (audit events, reloads); benchmarks keep lib.sh's warn.
HWFIDO_LOG_LEVEL=info start_server "$dir/server.log"
curl -fsS "http://127.0.0.1:$port/healthz" | sed 's/^/  healthz: /'; echo
curl -fsS "http://127.0.0.1:$port/nevisfido/uaf/1.1/facets" | sed 's/^/  facets: /'; echo

echo "== 3. FIDO UAF in-band with the software test authenticator (AAID FFFF#FB01)"
"$BIN/fidobench" demo -url "http://127.0.0.1:$port" -facet https://app.example -login-key "$dir/secrets/login.key" \
  -iss https://login.example -aud hwfido -user alice

if [ -x scripts/demo-tpm.sh ]; then scripts/demo-tpm.sh "$dir" "$port"; fi
if [ -x scripts/demo-oob.sh ]; then scripts/demo-oob.sh "$dir" "$port"; fi
if [ -x scripts/demo-fido2.sh ]; then scripts/demo-fido2.sh "$dir"; fi
echo "== done: the server log is $dir/server.log"
