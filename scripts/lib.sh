# lib.sh — shared by run.sh, demo.sh and loadtest.sh (source it). Sets up a local
# environment in a folder: PIN files (random, 0600), a SoftHSM token with the server's keys
# (softhsm-setup, PINs never on a command line), a login-service key pair standing in for
# the relying party's login service, a metadata folder and a server configuration.
# Idempotent: an existing token, PIN files and keys are kept.

BIN=${BIN:-bin}

# setup_env DIR PORT — prepares DIR; exports SOFTHSM2_CONF, HWFIDO_URI, HWFIDO_CONFIG.
setup_env() {
  local dir=$1 port=$2
  mkdir -p "$dir/secrets" "$dir/metadata"
  chmod 700 "$dir/secrets"
  for f in so-pin user-pin; do
    [ -s "$dir/secrets/$f" ] || (umask 077; head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/secrets/$f")
  done
  local out
  out=$("$BIN/softhsm-setup" -dir "$dir/softhsm" -label hwfido \
        -so-pin-file "$dir/secrets/so-pin" -user-pin-file "$dir/secrets/user-pin")
  echo "$out" | grep -v '^URI=' | sed 's/^/  /'
  HWFIDO_URI=$(echo "$out" | sed -n 's/^URI=//p')
  export SOFTHSM2_CONF="$dir/softhsm/softhsm2.conf" HWFIDO_URI
  [ -s "$dir/secrets/login.key" ] || "$BIN/fidoctl" caller keygen -key "$dir/secrets/login.key" -pub "$dir/login.pem" >/dev/null
  "$BIN/fidobench" statement > "$dir/metadata/fidobench.json"
  HWFIDO_CONFIG="$dir/hwfido.yaml"
  export HWFIDO_CONFIG
  cat > "$HWFIDO_CONFIG" <<YAML
version: 1
server:
  listen: 127.0.0.1:$port
hsm:
  uri: "$HWFIDO_URI"
  sessions: 4
store:
  path: $dir/hwfido.db
fido-uaf:
  app-id: http://127.0.0.1:$port/nevisfido/uaf/1.1/facets
  facets: ["https://app.example", "ios:bundle-id:ch.example.access"]
  metadata:
    path: $dir/metadata
  policies:
    default:
      accepted:
        - - assertionSchemes: [UAFV1TLV]
            authenticationAlgorithms: [1, 2]
  counter-policy: reject
caller-auth:
  tokens:
    - issuer: https://login.example
      audience: hwfido
      keys-file: $dir/login.pem
result-token:
  issuer: http://127.0.0.1:$port
  audience: https://app.example
fido2:
  enabled: true
  rp-id: localhost
  rp-name: hwfido demo
  origins: ["http://localhost:$port"]
  attestation-policy: monitor
  demo: true
log:
  level: warn
YAML
}

# start_server LOG — starts hwfido-server in the background, waits for /healthz.
start_server() {
  local log=$1 port
  port=$(sed -n 's/^  listen: 127.0.0.1:\([0-9]*\)$/\1/p' "$HWFIDO_CONFIG")
  "$BIN/hwfido-server" -config "$HWFIDO_CONFIG" > "$log" 2>&1 &
  SERVER_PID=$!
  # A script that restarts the server (demo-tpm.sh, to load new metadata) leaves its pid here
  # so the stop_server of the script that started the first one stops it too.
  echo "$SERVER_PID" > "$(dirname "$HWFIDO_CONFIG")/server.pid"
  for _ in $(seq 1 200); do
    if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then echo "server exited:"; cat "$log"; return 1; fi
    sleep 0.1
  done
  echo "server not healthy after 20s"; cat "$log"; return 1
}

stop_server() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  local pidfile pid
  [ -n "${HWFIDO_CONFIG:-}" ] || return 0
  pidfile="$(dirname "$HWFIDO_CONFIG")/server.pid"
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile"); rm -f "$pidfile"
  # Only a live hwfido-server with that pid (not a recycled pid) is stopped.
  if grep -qa 'hwfido-server' "/proc/$pid/cmdline" 2>/dev/null && kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  fi
  return 0
}

# The TPM device of the demos (demo-tpm.sh, demo-oob.sh): swtpm with its state under TPM/swtpm
# and Unix sockets TPM/swtpm.sock and TPM/swtpm.ctrl, and authenticatord on it.

# start_swtpm TPM LOG — starts swtpm (log LOG) and waits for its socket; sets SWTPM_PID.
start_swtpm() {
  local tpm=$1 log=$2
  mkdir -p "$tpm/swtpm" "$tpm/state"
  chmod 700 "$tpm"
  rm -f "$tpm/swtpm.sock" "$tpm/swtpm.ctrl"
  swtpm socket --tpm2 --tpmstate dir="$tpm/swtpm" \
    --server type=unixio,path="$tpm/swtpm.sock" --ctrl type=unixio,path="$tpm/swtpm.ctrl" \
    --flags not-need-init,startup-clear --log file="$log" &
  SWTPM_PID=$!
  for _ in $(seq 1 100); do [ -S "$tpm/swtpm.sock" ] && break; sleep 0.05; done
  [ -S "$tpm/swtpm.sock" ] || { echo "swtpm did not start"; cat "$log"; return 1; }
}

# daemon_config TPM SOCK — writes TPM/authenticatord.json: the daemon on swtpm, local API
# socket SOCK, dictionary-attack lockout after 5 wrong PINs.
daemon_config() {
  cat > "$1/authenticatord.json" <<JSON
{"version": 1, "tpm": {"unix": "$1/swtpm.sock"}, "stateDir": "$1/state",
 "socket": {"path": "$2"}, "facetID": "https://app.example",
 "da": {"maxTries": 5, "recoveryTime": "10m", "lockoutRecovery": "1h"}, "logLevel": "info"}
JSON
}

# start_daemon TPM SOCK LOG — starts authenticatord with TPM/authenticatord.json and waits
# until its local API answers on SOCK; sets DAEMON_PID.
start_daemon() {
  local tpm=$1 sock=$2 log=$3
  "$BIN/authenticatord" -config "$tpm/authenticatord.json" > "$log" 2>&1 &
  DAEMON_PID=$!
  for _ in $(seq 1 200); do
    "$BIN/authenticatorctl" -socket "$sock" status >/dev/null 2>&1 && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "authenticatord did not start"; cat "$log"; return 1
}

# stop_tpm TPM — stops authenticatord (SIGTERM: it sends TPM2_Shutdown, so the next start
# charges no dictionary-attack try) and then swtpm. Returns 1 when the daemon exited with
# an error.
stop_tpm() {
  local rc=0
  if [ -n "${DAEMON_PID:-}" ]; then
    kill "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || rc=1
    DAEMON_PID=
  fi
  if [ -n "${SWTPM_PID:-}" ]; then
    swtpm_ioctl --unix "$1/swtpm.ctrl" -s >/dev/null 2>&1 || kill "$SWTPM_PID" 2>/dev/null || true
    wait "$SWTPM_PID" 2>/dev/null || true
    SWTPM_PID=
  fi
  return $rc
}

# reload_server DIR — sends SIGHUP to the demo's running server (pid in DIR/server.pid),
# which reloads its HSM keys and metadata, and waits for the outcome in DIR/server.log.
reload_server() {
  local dir=$1 pid before
  pid=$(cat "$dir/server.pid")
  grep -qa hwfido-server "/proc/$pid/cmdline" || { echo "no hwfido-server with pid $pid"; return 1; }
  before=$(grep -c -e 'reload done' -e 'reload failed' "$dir/server.log" || true)
  kill -HUP "$pid"
  for _ in $(seq 1 200); do
    [ "$(grep -c -e 'reload done' -e 'reload failed' "$dir/server.log" || true)" -gt "$before" ] && break
    sleep 0.05
  done
  if [ "$(grep -c -e 'reload done' -e 'reload failed' "$dir/server.log" || true)" -le "$before" ] ||
     grep -q 'reload failed' "$dir/server.log"; then
    echo "  the reload did not succeed:"; tail -5 "$dir/server.log"; return 1
  fi
}
