#!/usr/bin/env bash
# install-deps.sh PKG... — installs the Debian packages that are missing, idempotently.
# Runs `apt-get update` at most once per machine boot (marker in /tmp), and only when
# something has to be installed. Needs root (CI and the dev machines run as root).
set -euo pipefail
missing=()
for p in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
((${#missing[@]} == 0)) && exit 0
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
marker=/tmp/.hwfido-apt-updated
if [ ! -f "$marker" ]; then
  $SUDO apt-get update -qq
  touch "$marker"
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
