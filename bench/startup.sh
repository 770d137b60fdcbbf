#!/usr/bin/env bash
# Start-up, memory and size of `demiurge serve` (release build), side by side with a peer made of
# two of the programs it replaces: nginx (front door) + PowerDNS (authoritative DNS).
#   bench/startup.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/demiurge-target}"
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v pdns_server >/dev/null || need+=(pdns-server pdns-backend-bind)
command -v dig >/dev/null || need+=(bind9-dnsutils)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  # Debian starts the packaged services; the benchmark runs its own copies on loopback.
  systemctl stop nginx pdns >/dev/null 2>&1 || service nginx stop >/dev/null 2>&1 || true
fi
scripts/install-deps.sh
cargo build --release --bin demiurge
exec python3 bench/startup.py "$CARGO_TARGET_DIR/release/demiurge" "${1:-10}"
