#!/usr/bin/env bash
# A container's service through the edge and our userspace WireGuard tunnel beside the same
# service reached directly, a 200 MB download beside wireguard-go, agent start and memory
# (release build; needs root for network namespaces).
#   bench/containers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/demiurge-target}"
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  systemctl stop nginx >/dev/null 2>&1 || service nginx stop >/dev/null 2>&1 || true
fi
scripts/install-deps.sh --test
cargo build --release --bin demiurge
exec python3 bench/containers.py "$CARGO_TARGET_DIR/release/demiurge"
