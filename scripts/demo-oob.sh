#!/usr/bin/env bash
# demo-oob.sh DIR PORT — the out-of-band part of `make demo`. The demo server (config
# DIR/hwfido.yaml, SoftHSM token DIR/softhsm) is already running on 127.0.0.1:PORT. This script:
#   1. makes sure the server has the out-of-band dispatchers (link-png-qr-code for QR codes,
#      hwfido-stream for pushes to the device) and restarts it if it had to add them;
#   2. starts swtpm + authenticatord (reusing the TPM state of demo-tpm.sh when present, else a
#      new one whose metadata statement goes into DIR/metadata, loaded by the server on SIGHUP);
#   3. starts rp-demo ("Example Bank", internal/rpdemo) and, as its browser would, logs in with a
#      password and runs: registration of the device by QR code, a payment confirmed on the
#      device, a payment rejected on the device — printing each status trail the bank's backend
#      followed on the server's status stream, and the transaction hash of the verified result
#      token;
#   4. a push: the bank's backend role dispatches a payment to the dispatch target the device
#      created at registration (hwfido-stream), the daemon receives it on its stream and it is
#      approved with `authenticatorctl approve`; the trail is read from
#      GET /nevisfido/status/<id>/events;
#   5. usernameless authentication: a new (anonymous) browser clicks "Log in with your phone",
#      the device scans the QR code (no username, no caller token); the trail shows the userId
#      each status carried — none before `succeeded`, then carol — and the bank logs the
#      browser in as the user of the verified result token;
#   6. out-of-band deregistration, last (it removes the device's key): "Remove your phone" in
#      that session — the key the phone login proved; the device applies the
#      DeregistrationRequest; the daemon's key list and the server (a step-up request for
#      carol: statusCode 1200 before, 1404 after) are shown before and after.
# PINs, the password and the caller token live in 0600 files under DIR/secrets and reach the
# programs on file descriptors or in files, never on a command line. Everything is on 127.0.0.1.
set -euo pipefail
# Cookie jars, result tokens and status trails written below are for the owner only.
umask 077
cd "$(dirname "$0")/.."
. scripts/lib.sh
dir=${1:?usage: scripts/demo-oob.sh DIR PORT}
port=${2:?usage: scripts/demo-oob.sh DIR PORT}
dir=$(cd "$dir" && pwd)
url="http://127.0.0.1:$port"
HWFIDO_CONFIG="$dir/hwfido.yaml"
export HWFIDO_CONFIG SOFTHSM2_CONF="$dir/softhsm/softhsm2.conf"
sec="$dir/secrets"
oobdir="$dir/oob"
mkdir -p "$oobdir"
chmod 700 "$oobdir"
for c in swtpm swtpm_ioctl curl openssl; do
  command -v "$c" >/dev/null || { echo "$c is required (make deps)"; exit 1; }
done

echo "== Out-of-band with the TPM device: registration, transaction confirmation (QR, push), usernameless login, deregistration (files under $oobdir)"

# 1. Dispatchers.
if ! grep -q '^oob:' "$HWFIDO_CONFIG"; then
  cat >> "$HWFIDO_CONFIG" <<YAML
oob:
  dispatchers:
    - type: link-png-qr-code
      link-base-url: https://bank.example/oob
    - type: hwfido-stream
YAML
  echo "  added oob.dispatchers (link-png-qr-code, hwfido-stream) to $HWFIDO_CONFIG; restarting hwfido-server"
  stop_server
  [ -f "$dir/server.log" ] && mv "$dir/server.log" "$dir/server-oob-restart.log"
  # At info, like demo.sh's server: reload_server below waits for the reload's log line.
  HWFIDO_LOG_LEVEL=info start_server "$dir/server.log"
fi

# 2. The TPM device.
tpm="$dir/tpm"
sock="$tpm/authd.sock"
ctl() { "$BIN/authenticatorctl" -socket "$sock" "$@"; }
SWTPM_PID= DAEMON_PID= RP_PID= CURL_PID=
cleanup() {
  [ -n "$CURL_PID" ] && kill "$CURL_PID" 2>/dev/null || true
  if [ -n "$RP_PID" ]; then kill "$RP_PID" 2>/dev/null || true; wait "$RP_PID" 2>/dev/null || true; fi
  stop_tpm "$tpm" || true
}
trap cleanup EXIT

start_swtpm "$tpm" "$tpm/swtpm-oob.log"
fresh=
if [ ! -s "$tpm/authenticatord.json" ]; then
  fresh=1
  daemon_config "$tpm" "$sock"
  "$BIN/authenticatord" provision -config "$tpm/authenticatord.json" -lockout-auth-file "$sec/tpm-lockout-auth" \
    2>"$tpm/provision.log" || { cat "$tpm/provision.log"; exit 1; }
fi
start_daemon "$tpm" "$sock" "$tpm/authenticatord-oob.log"
if [ -n "$fresh" ] || [ ! -s "$dir/metadata/authenticatord-4857-0001.json" ]; then
  ctl metadata > "$dir/metadata/authenticatord-4857-0001.json"
  echo "  new TPM device; metadata statement $dir/metadata/authenticatord-4857-0001.json, reloading hwfido-server (SIGHUP)"
  reload_server "$dir"
fi
echo "  authenticatord on $sock (TPM state $tpm)"
[ -s "$sec/oob-pin" ] || (umask 077; od -An -tu4 -N4 /dev/urandom | tr -d ' ' > "$sec/oob-pin")

# 3. Example Bank.
rport=$((port + 100))
rp="http://127.0.0.1:$rport"
user=carol
[ -s "$sec/rp-password" ] || (umask 077; head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$sec/rp-password")
(umask 077; "$BIN/rp-demo" hash-password -user "$user" -password-fd 3 3<"$sec/rp-password" > "$oobdir/users")
cat > "$oobdir/rp-demo.json" <<JSON
{"version": 1, "listen": "127.0.0.1:$rport", "server": "$url", "usersFile": "$oobdir/users",
 "login": {"issuer": "https://login.example", "audience": "hwfido", "keyFile": "$sec/login.key"},
 "resultToken": {"issuer": "$url", "audience": "https://app.example"}, "operationTimeout": "2m"}
JSON
"$BIN/rp-demo" -config "$oobdir/rp-demo.json" > "$oobdir/rp-demo.log" 2>&1 &
RP_PID=$!
for _ in $(seq 1 200); do curl -fsS "$rp/" -o /dev/null >/dev/null 2>&1 && break; kill -0 "$RP_PID" 2>/dev/null || break; sleep 0.05; done
curl -fsS "$rp/" -o /dev/null || { echo "rp-demo did not start"; cat "$oobdir/rp-demo.log"; exit 1; }
echo "  rp-demo (Example Bank) on $rp — open it in a browser to click through the same flows"

jar="$oobdir/cookies"
rm -f "$jar"
csrf() { curl -fsS -b "$jar" -c "$jar" "$rp/" | sed -n 's/.*<meta name="csrf-token" content="\([^"]*\)">.*/\1/p'; }
token=$(csrf)
# The password goes to curl in a 0600 file (--data-urlencode name@file), not on its command line.
(umask 077; printf '%s' "$(cat "$sec/rp-password")" > "$oobdir/password-field")
code=$(curl -sS -o /dev/null -w '%{http_code}' -b "$jar" -c "$jar" -H "Origin: $rp" \
  --data-urlencode "username=$user" --data-urlencode "password@$oobdir/password-field" --data-urlencode "csrf=$token" "$rp/login")
rm -f "$oobdir/password-field"
[ "$code" = 303 ] || { echo "login failed: HTTP $code"; exit 1; }
token=$(csrf)
echo "  logged in to Example Bank as $user (password login, session cookie HttpOnly + SameSite=Strict)"

field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
start() { # start PATH BODY — starts an operation at the bank, prints its JSON answer
  curl -fsS -b "$jar" -H "Origin: $rp" -H "X-CSRF-Token: $token" -H 'Content-Type: application/json' -d "$2" "$rp$1"
}
follow() { # follow OP FILE — reads the bank's event stream of OP into FILE in the background
  curl -sS -N --max-time 150 -b "$jar" "$rp/api/ops/$1/events" > "$2" &
  CURL_PID=$!
}
finish() { # finish FILE — waits for the stream to end and prints the final state
  wait "$CURL_PID" || true
  CURL_PID=
  local last
  last=$(grep '^data: ' "$1" | tail -1 | sed 's/^data: //')
  echo "    status trail: $(echo "$last" | sed -n 's/.*"trail":\[\([^]]*\)\].*/\1/p' | tr -d '"' | sed 's/,/ → /g')"
  echo "    outcome: $(echo "$last" | field outcome)$(echo "$last" | grep -q '"verified":true' && echo ' (result token verified against the JWKS)')"
  LAST=$last
}
# trail_users JSON — the trail with the userId the server's status carried at each step.
trail_users() {
  local t u
  t=$(echo "$1" | sed -n 's/.*"trail":\[\([^]]*\)\].*/\1/p' | tr -d '"' | tr ',' '\n')
  u=$(echo "$1" | sed -n 's/.*"trailUserIds":\[\([^]]*\)\].*/\1/p' | tr -d '"' | tr ',' '\n')
  paste -d'|' <(echo "$t") <(echo "$u") | sed 's/^\(.*\)|$/\1 (no userId)/; s/^\(.*\)|\(.*\)$/\1 (userId \2)/' | paste -sd'|' | sed 's/|/ → /g'
}
qrfile() { # qrfile JSON FILE — writes the QR PNG of a start answer
  echo "$1" | field qr | sed 's/^data:image\/png;base64,//' | base64 -d > "$2"
}

echo "  1. register the device by QR code"
ans=$(start /api/registration '{}')
op=$(echo "$ans" | field op)
qrfile "$ans" "$oobdir/registration-qr.png"
follow "$op" "$oobdir/registration.events"
ctl oob -qr "$oobdir/registration-qr.png" -target-name "demo laptop" -pin-fd 3 3<"$sec/oob-pin" > "$oobdir/registration.json" 2>"$oobdir/registration.err" \
  || { cat "$oobdir/registration.err" "$oobdir/registration.json"; exit 1; }
finish "$oobdir/registration.events"
REG_KEYID=$(echo "$LAST" | field keyId)
echo "    key id (from the verified result token): $REG_KEYID"

pay() { # pay AMOUNT DECISION-FLAG
  local ans op tx
  ans=$(start /api/payment "{\"amount\":\"$1\",\"payee\":\"ACME AG\"}")
  op=$(echo "$ans" | field op)
  tx=$(echo "$ans" | field transaction)
  echo "    transaction: $tx (via $(echo "$ans" | field via))"
  qrfile "$ans" "$oobdir/payment-qr.png"
  follow "$op" "$oobdir/payment-$1.events"
  set +e
  if [ "$2" = -yes ]; then
    ctl oob -qr "$oobdir/payment-qr.png" -yes -pin-fd 3 3<"$sec/oob-pin" > "$oobdir/payment-$1.json" 2>"$oobdir/payment-$1.err"
  else
    ctl oob -qr "$oobdir/payment-qr.png" -reject > "$oobdir/payment-$1.json" 2>"$oobdir/payment-$1.err"
  fi
  echo "    authenticatorctl exit code $? ($2)"
  set -e
  finish "$oobdir/payment-$1.events"
  PAY_TX=$tx
}
b64url_sha256() { printf '%s' "$1" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=\n'; }

echo "  2. confirm a payment on the device (QR code)"
pay 120.00 -yes
got=$(echo "$LAST" | field txHash)
want=$(b64url_sha256 "$PAY_TX")
echo "    tx_hash in the result token: $got"
[ "$got" = "$want" ] && echo "    = base64url(SHA-256(\"$PAY_TX\")) ✓" || { echo "    MISMATCH: want $want"; exit 1; }

echo "  3. reject a payment on the device (QR code)"
pay 9999.00 -reject
echo "    clientErrorCode $(echo "$LAST" | sed -n 's/.*"clientErrorCode":\([0-9]*\).*/\1/p') (3 = USER_CANCELLED)"

echo "  4. push a payment to the device's dispatch target (hwfido-stream)"
target=$(ctl targets | sed -n 's/^ *"id": "\([^"]*\)".*/\1/p' | head -1)
if [ -z "$target" ]; then
  echo "    the device has no dispatch target; skipping the push"
else
  echo "    dispatch target $target (created with the registration)"
  (umask 077; "$BIN/fidoctl" caller token -key "$sec/login.key" -iss https://login.example -aud hwfido -user "$user" > "$oobdir/caller.jwt"
   printf 'Authorization: Bearer %s\n' "$(cat "$oobdir/caller.jwt")" > "$oobdir/caller.header")
  tx="Pay 42.00 EUR to ACME AG"
  ctxjson="{\\\"username\\\":\\\"$user\\\",\\\"transaction\\\":\\\"$tx\\\"}"
  # The caller token reaches curl in a 0600 header file (-H @file), not on its command line.
  ans=$(curl -fsS -H @"$oobdir/caller.header" -H 'Content-Type: application/json' -H 'Accept: application/json' \
    -d "{\"dispatchTargetId\":\"$target\",\"getUafRequest\":{\"op\":\"Auth\",\"context\":\"$ctxjson\"}}" \
    "$url/nevisfido/token/dispatch/authentication")
  sid=$(echo "$ans" | field sessionId)
  echo "    dispatchResult: $(echo "$ans" | field dispatchResult)"
  # The session id opens the Status Service (and its result token): the URL goes to curl
  # as a config on stdin, not on its command line.
  printf 'url = "%s"\n' "$url/nevisfido/status/$sid/events" | curl -sS -N --max-time 60 -K - > "$oobdir/push.events" &
  CURL_PID=$!
  id=
  for _ in $(seq 1 100); do
    id=$(ctl pending | sed -n 's/^ *"id": "\([^"]*\)".*/\1/p' | head -1)
    [ -n "$id" ] && break
    sleep 0.1
  done
  if [ -z "$id" ]; then echo "    the push did not reach the device"; exit 1; fi
  # Approve only once the status stream is open, so its trail starts before the answer.
  for _ in $(seq 1 50); do grep -q '^data: ' "$oobdir/push.events" && break; sleep 0.1; done
  echo "    the device received it (pending $id); approving"
  ctl approve "$id" -yes -pin-fd 3 3<"$sec/oob-pin" > "$oobdir/push.json" 2>"$oobdir/push.err" || { cat "$oobdir/push.err"; exit 1; }
  wait "$CURL_PID" || true
  CURL_PID=
  echo "    status trail: $(grep '^data: ' "$oobdir/push.events" | sed 's/.*"status":"\([^"]*\)".*/\1/' | paste -sd' ' | sed 's/ / → /g')"
fi

# stepup_status USER — the server's answer to a step-up request for USER: 1200 while it has a
# registration of USER, 1404 when it has none (the request is only built, never answered).
stepup_status() {
  curl -fsS -H 'Content-Type: application/json' -d "{\"op\":\"Auth\",\"context\":\"{\\\"username\\\":\\\"$1\\\"}\"}" \
    "$url/nevisfido/uaf/1.1/request/authentication" | sed -n 's/.*"statusCode":\([0-9]*\).*/\1/p'
}
daemon_keys() { # the key ids the daemon holds (authenticatorctl list)
  ctl list | sed -n 's/^ *"\([A-Za-z0-9_-]\{20,\}\)",\{0,1\}$/\1/p' | paste -sd' '
}

echo "  5. log in without a username: a new browser shows the login QR code, the device scans it"
(umask 077; : > "$oobdir/cookies-phone")
jar="$oobdir/cookies-phone"
token=$(csrf)
ans=$(start /api/login/qr '{}')
op=$(echo "$ans" | field op)
qrfile "$ans" "$oobdir/login-qr.png"
echo "    usernameless authentication dispatched by an anonymous session (no username, no caller token)"
follow "$op" "$oobdir/login.events"
ctl oob -qr "$oobdir/login-qr.png" -pin-fd 3 3<"$sec/oob-pin" > "$oobdir/login.json" 2>"$oobdir/login.err" \
  || { cat "$oobdir/login.err" "$oobdir/login.json"; exit 1; }
finish "$oobdir/login.events"
echo "    userId per status: $(trail_users "$LAST")"
got=$(echo "$LAST" | field verifiedUser)
echo "    result token sub: $got"
[ "$got" = "$user" ] || { echo "    want $user"; exit 1; }
# The answer rotates the session: its new cookie goes into the jar (-c), as a browser keeps it.
ans=$(curl -fsS -b "$jar" -c "$jar" -H "Origin: $rp" -H "X-CSRF-Token: $token" -H 'Content-Type: application/json' -d '{}' "$rp/api/ops/$op/login")
token=$(echo "$ans" | field csrf)
who=$(curl -fsS -b "$jar" "$rp/" | sed -n 's/.*<strong id="whoami">\([^<]*\)<.*/\1/p')
echo "    the bank logged the browser in as: $who (session rotated)"
[ "$who" = "$user" ] || exit 1

echo "  6. remove the device (out-of-band deregistration by QR code, in the session logged in by phone)"
before=$(daemon_keys)
echo "    before: daemon keys [$before]; server: step-up request for $user → statusCode $(stepup_status "$user")"
ans=$(start /api/deregistration '{}')
op=$(echo "$ans" | field op)
qrfile "$ans" "$oobdir/deregistration-qr.png"
echo "    deregistration dispatched with a caller token for $user; context: $user, the AAID and key id the phone login proved"
follow "$op" "$oobdir/deregistration.events"
ctl oob -qr "$oobdir/deregistration-qr.png" > "$oobdir/deregistration.json" 2>"$oobdir/deregistration.err" \
  || { cat "$oobdir/deregistration.err" "$oobdir/deregistration.json"; exit 1; }
finish "$oobdir/deregistration.events"
echo "$LAST" | grep -q '"removed":true' && echo "    the bank checked: the server no longer lists key $(echo "$LAST" | field removedKeyId) for $user"
after=$(daemon_keys)
code=$(stepup_status "$user")
echo "    after:  daemon keys [$after]; server: step-up request for $user → statusCode $code"
case " $after " in *" $REG_KEYID "*) echo "    the daemon still holds $REG_KEYID"; exit 1;; esac
[ "$code" = 1404 ] || { echo "    the server still has a registration of $user"; exit 1; }
echo "    $user's key $REG_KEYID is gone from the device and the server (1404 = no registration)"
[ -z "$after" ] || echo "    the device's other keys stay (bob's, from demo-tpm.sh): [$after]"
echo "  the bank's log: $oobdir/rp-demo.log"
