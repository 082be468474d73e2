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
