#!/usr/bin/env bash
# The collaboration gateway against the Node reference server (@y/websocket-server 0.1.1) in
# one run: fan-out latency and CPU, client capacity, initial sync of a 10,000-node project,
# durable appends per second. Release build.
#   bench/collab.sh [fanout_seconds]     (default 60)
# BENCH_PIN=1 gives each server CPU 0 alone and the load generator CPU 1; OBSERVERS=N sets how
# many clients time deliveries (default 100); BENCH_ONLY=fanout|capacity|join runs one part
# (BENCH_SERVER=node: the reference's fan-out or capacity; CAPACITY_STEPS=1500,1500 runs just
# those capacity steps); DEMIURGE_* variables pass through to the server.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/demiurge-target}"
scripts/install-deps.sh --test
cargo build --release --bin demiurge
# The load generator (bench/collab_load.rs) is a bench target: cargo names its executable.
loadgen=$(cargo bench --bench collab_load --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*collab_load-[0-9a-f]*\)).*/\1/p' | tail -1)
[ -x "$loadgen" ] || { echo "collab.sh: could not build the load generator" >&2; exit 1; }
if [ "${BENCH_PIN:-}" = 1 ]; then
  exec taskset -c 1 node bench/collab.mjs "$CARGO_TARGET_DIR/release/demiurge" "$loadgen" "${1:-60}"
fi
exec node bench/collab.mjs "$CARGO_TARGET_DIR/release/demiurge" "$loadgen" "${1:-60}"
