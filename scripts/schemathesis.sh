#!/usr/bin/env bash
# Runs Schemathesis over the whole API of a fresh server, as the security review did: every
# operation, all checks, a fixed seed, one instance-admin token. Prints Schemathesis's report;
# exits non-zero when it finds failures. Not part of scripts/test.sh yet (issue 13, item 5:
# it joins the suite once it reports none).
#   scripts/schemathesis.sh [extra st arguments]   e.g. --max-examples 50
set -euo pipefail
cd "$(dirname "$0")/.."

command -v st >/dev/null || pip install --quiet schemathesis
cargo build --quiet --bin demiurge
target="${CARGO_TARGET_DIR:-target}/debug/demiurge"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
data=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; cp "$data/server.log" "${ST_SERVER_LOG:-/dev/null}" 2>/dev/null || true; rm -rf "$data"' EXIT
DEMIURGE_SERVER__DATA_DIR="$data" DEMIURGE_EDGE__HTTP="127.0.0.1:$port" DEMIURGE_EDGE__HTTPS= \
  DEMIURGE_DNS__LISTEN= DEMIURGE_VPN__LISTEN= DEMIURGE_LOG__LEVEL=${ST_LOG_LEVEL:-warn} \
  DEMIURGE_AUTH__LOGIN_RATE=100000/1s DEMIURGE_AUTH__SIGNUP_RATE=100000/1s \
  "$target" serve >"$data/server.log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done

# The first account is the instance admin; its token authenticates every operation.
curl -sf -c "$data/cookies" -H "Origin: $base" -H 'Content-Type: application/json' \
  -d '{"username":"schemathesis","email":"st@example.test","password":"correct horse battery"}' \
  "$base/api/v1/auth/signup" >/dev/null
token=$(curl -sf -b "$data/cookies" -H "Origin: $base" -H 'Content-Type: application/json' \
  -d '{"name":"schemathesis"}' "$base/api/v1/me/tokens" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

st run "$base/api/v1/openapi.json" --checks all -H "Authorization: Bearer $token" \
  --max-examples 20 --seed 1 --workers 2 --phases examples,coverage,fuzzing --no-color "$@"
