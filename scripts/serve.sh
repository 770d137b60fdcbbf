#!/usr/bin/env bash
# Builds the release binary and runs `demiurge serve` on the embedded defaults
# (SQLite in ./data, everything on loopback). Extra arguments go to `demiurge serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec cargo run --release --bin demiurge -- serve "$@"
