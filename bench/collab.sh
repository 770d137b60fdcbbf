#!/usr/bin/env bash
# The collaboration gateway against the Node reference server (@y/websocket-server 0.1.1) in
# one run: fan-out latency and CPU, client capacity, initial sync of a 10,000-node project,
# durable appends per second. Release build.
#   bench/collab.sh [fanout_seconds]     (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/demiurge-target}"
scripts/install-deps.sh --test
cargo build --release --bin demiurge
exec node bench/collab.mjs "$CARGO_TARGET_DIR/release/demiurge" "${1:-60}"
