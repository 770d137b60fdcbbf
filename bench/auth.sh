#!/usr/bin/env bash
# Sign-in throughput and authenticated request rate of `demiurge serve` (release build), with
# nginx answering a static 200 through the same load tool as the ceiling to compare against.
#   bench/auth.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/demiurge-target}"
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v hey >/dev/null || need+=(hey)
command -v nginx >/dev/null || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  systemctl stop nginx >/dev/null 2>&1 || service nginx stop >/dev/null 2>&1 || true
fi
scripts/install-deps.sh
cargo build --release --bin demiurge
exec python3 bench/auth.py "$CARGO_TARGET_DIR/release/demiurge"
