#!/usr/bin/env bash
# The board in Chromium on big boards, and what open boards cost the server (release build).
#   bench/board.sh            (BENCH_ONLY=fps|latency|memory|open runs one part)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/demiurge-target}"
scripts/install-deps.sh --test
cargo build --release --bin demiurge --features heap-stats
exec node bench/board.mjs "$CARGO_TARGET_DIR/release/demiurge"
