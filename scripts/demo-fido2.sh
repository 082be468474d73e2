#!/usr/bin/env bash
# demo-fido2.sh DIR — the FIDO2 / WebAuthn part of `make demo`. The demo server set up by
# scripts/lib.sh (config $DIR/hwfido.yaml, fido2 enabled with RP ID localhost) is already
# running. Headless Chromium with its virtual authenticator registers a passkey for a user
# (authorized by a caller token from the demo login service) and logs in without a username;
# the HSM-signed result token is verified against the server's JWKS and printed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
dir=${1:?usage: scripts/demo-fido2.sh DIR}
cfg="$dir/hwfido.yaml"
port=$(sed -n 's/^  listen: 127.0.0.1:\([0-9]*\)$/\1/p' "$cfg")
[ -n "$port" ] || { echo "no listen port in $cfg"; exit 1; }
grep -q '^fido2:' "$cfg" || { echo "$cfg has no fido2 section"; exit 1; }

echo "== 4. FIDO2 / WebAuthn with headless Chromium (RP ID localhost, origin http://localhost:$port)"
CGO_ENABLED=1 go build -o "$BIN/fido2demo" ./test/browser/fido2demo
# The caller token (the login service vouching for the user) goes into a 0600 file.
(umask 077; "$BIN/fidoctl" caller token -key "$dir/secrets/login.key" -iss https://login.example -aud hwfido \
  -user carol > "$dir/secrets/fido2-caller.jwt")
"$BIN/fido2demo" -url "http://localhost:$port" -user carol -caller-token-file "$dir/secrets/fido2-caller.jwt"
