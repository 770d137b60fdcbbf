#!/usr/bin/env bash
# Runs the whole test suite with its real peers: installs what is missing (scripts/install-deps.sh),
# starts a throwaway PostgreSQL server unless DEMIURGE_TEST_DATABASE_URL is already set, then
# `cargo test` for the workspace. Extra arguments go to cargo test (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --test

if [ -z "${DEMIURGE_TEST_DATABASE_URL:-}" ]; then
  eval "$(scripts/pg.sh start)"
  trap 'scripts/pg.sh stop "$DEMIURGE_TEST_PG_DIR"' EXIT
fi

cargo test --workspace --all-targets "$@"

# The API as a contract, from outside: Schemathesis over every operation, on both backends.
# Skipped only when the run was narrowed to some tests (extra arguments).
if [ $# -eq 0 ]; then
  echo "== schemathesis (sqlite)"
  scripts/schemathesis.sh sqlite
  echo "== schemathesis (postgres)"
  scripts/schemathesis.sh postgres
fi
