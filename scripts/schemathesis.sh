#!/usr/bin/env bash
# Runs Schemathesis over the whole API of a fresh server: every operation, all checks, the
# stateful phase (following the document's links from what a create makes to where it is
# used), a fixed seed. The server runs on SQLite, or on a fresh database of the PostgreSQL
# server DEMIURGE_TEST_DATABASE_URL names. Exits non-zero on any failure; scripts/test.sh runs
# it on both backends.
#   scripts/schemathesis.sh [sqlite|postgres] [extra st arguments]   e.g. postgres -n 50
set -euo pipefail
cd "$(dirname "$0")/.."

backend=sqlite
case "${1:-}" in
  sqlite|postgres) backend=$1; shift ;;
esac

command -v st >/dev/null || pip install --quiet schemathesis
cargo build --quiet --bin demiurge
target="${CARGO_TARGET_DIR:-target}/debug/demiurge"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
data=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; cp "$data/server.log" "${ST_SERVER_LOG:-/dev/null}" 2>/dev/null || true; rm -rf "$data"' EXIT
if [ "$backend" = postgres ]; then
  : "${DEMIURGE_TEST_DATABASE_URL:?a PostgreSQL server is needed: eval \"\$(scripts/pg.sh start)\"}"
  db="schemathesis_$(date +%s%N)"
  psql -q "$DEMIURGE_TEST_DATABASE_URL" -c "CREATE DATABASE $db" >/dev/null
  export DEMIURGE_DATABASE__URL="${DEMIURGE_TEST_DATABASE_URL%/*}/$db"
fi
DEMIURGE_SERVER__DATA_DIR="$data" DEMIURGE_EDGE__HTTP="127.0.0.1:$port" DEMIURGE_EDGE__HTTPS= \
  DEMIURGE_DNS__LISTEN= DEMIURGE_VPN__LISTEN= DEMIURGE_LOG__LEVEL=${ST_LOG_LEVEL:-warn} \
  DEMIURGE_AUTH__LOGIN_RATE=100000/1s DEMIURGE_AUTH__SIGNUP_RATE=100000/1s \
  "$target" serve >"$data/server.log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done

# The first account is the instance admin; scripts/schemathesis_hooks.py signs it in and makes
# the token every operation is called with (again whenever one was revoked by the run).
curl -sf -H "Origin: $base" -H 'Content-Type: application/json' \
  -d '{"username":"schemathesis","email":"st@example.test","password":"correct horse battery","setup_code":"'"$(cat "$data/setup-code")"'"}' \
  "$base/api/v1/auth/signup" >/dev/null
export DEMIURGE_ST_BASE="$base" DEMIURGE_ST_LOGIN=schemathesis DEMIURGE_ST_PASSWORD="correct horse battery"
export SCHEMATHESIS_HOOKS=scripts/schemathesis_hooks.py

st --config-file scripts/schemathesis.toml run "$base/api/v1/openapi.json" --checks all \
  --max-examples 20 --seed 1 --workers 2 --phases examples,coverage,fuzzing,stateful --no-color "$@"
