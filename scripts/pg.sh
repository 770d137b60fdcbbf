#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests and prints the URL to use.
#   eval "$(scripts/pg.sh start)"   exports DEMIURGE_TEST_DATABASE_URL and DEMIURGE_TEST_PG_DIR
#   scripts/pg.sh stop DIR          stops it and removes DIR
# PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.
set -euo pipefail

find_bin() {
  local name=$1
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
  local c
  for c in /usr/lib/postgresql/*/bin/"$name"; do
    [ -x "$c" ] && { echo "$c"; return; }
  done
  echo "pg.sh: $name not found; run scripts/install-deps.sh --test" >&2
  exit 1
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

case "${1:-}" in
  start)
    initdb=$(find_bin initdb); pg_ctl=$(find_bin pg_ctl)
    dir=$(mktemp -d /tmp/demiurge-pg-XXXXXX)
    chmod 755 "$dir"
    if [ "$(id -u)" = 0 ]; then
      id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
      chown postgres "$dir"
    fi
    pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    printf '%s\n' "$pw" > "$dir/pwfile"
    [ "$(id -u)" = 0 ] && chown postgres "$dir/pwfile"
    as_pg "$initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      --pwfile="$dir/pwfile" -E UTF8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    port=$(free_port)
    as_pg "$pg_ctl" -D "$dir/data" -l "$dir/pg.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >/dev/null \
      || { cat "$dir/pg.log" >&2; exit 1; }
    url="postgresql://postgres:${pw}@127.0.0.1:${port}/postgres"
    echo "export DEMIURGE_TEST_DATABASE_URL='$url'"
    echo "export DEMIURGE_TEST_PG_DIR='$dir'"
    ;;
  stop)
    dir=${2:?usage: pg.sh stop DIR}
    pg_ctl=$(find_bin pg_ctl)
    as_pg "$pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: scripts/pg.sh start | stop DIR" >&2
    exit 2
    ;;
esac
