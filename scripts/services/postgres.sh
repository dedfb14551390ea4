#!/usr/bin/env bash
# Throw-away PostgreSQL 15 cluster for tests and development.
#
# Usage: postgres.sh {start|stop|restart|status} DIR PORT
#   DIR   folder that holds the cluster (created on start; DIR/data, DIR/log, DIR/sock)
#   PORT  TCP port on 127.0.0.1 (the server listens on loopback only)
#
# start   initdb on first use (superuser "bits", password "bits", database "bits"),
#         start the server and wait until it accepts connections; prints the URL:
#           BITS_TEST_PG_URL=postgres://bits:bits@127.0.0.1:PORT/bits
# stop    fast shutdown, waits until the server is gone (no-op when not running)
# restart stop then start
# status  exit 0 when the server accepts connections, 1 otherwise
#
# Runs the server as the "postgres" system user when invoked as root (PostgreSQL
# refuses to run as root); parents of DIR are made traversable for that user.
# Env: PG_BIN (default /usr/lib/postgresql/15/bin), PG_READY_TIMEOUT_S (default 30).
set -euo pipefail

cmd="${1:-}"; dir="${2:-}"; port="${3:-}"
if [[ -z "$cmd" || -z "$dir" || -z "$port" ]]; then
  echo "usage: $0 {start|stop|restart|status} DIR PORT" >&2; exit 2
fi
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
if [[ ! -x "$PG_BIN/initdb" ]]; then
  for v in 17 16 15 14 13; do
    if [[ -x "/usr/lib/postgresql/$v/bin/initdb" ]]; then PG_BIN="/usr/lib/postgresql/$v/bin"; break; fi
  done
fi
[[ -x "$PG_BIN/initdb" ]] || { echo "postgres.sh: initdb not found (PG_BIN=$PG_BIN); run scripts/services/install.sh" >&2; exit 3; }
timeout_s="${PG_READY_TIMEOUT_S:-30}"
data="$dir/data"; log="$dir/postgres.log"; sock="$dir/sock"

as_pg() {
  if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ready() { as_pg "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -d bits -U bits -t 2 >/dev/null 2>&1; }

do_init() {
  mkdir -p "$dir" "$sock"
  if [[ "$(id -u)" == 0 ]]; then
    # every parent must be traversable by the postgres user
    p="$(cd "$dir" && pwd)"
    while [[ "$p" != "/" ]]; do chmod o+x "$p" 2>/dev/null || true; p="$(dirname "$p")"; done
    chown postgres: "$dir" "$sock"
  fi
  if [[ ! -s "$data/PG_VERSION" ]]; then
    pwfile="$dir/.pw"; echo bits > "$pwfile"; [[ "$(id -u)" == 0 ]] && chown postgres: "$pwfile"
    as_pg "$PG_BIN/initdb" -D "$data" -U bits --pwfile="$pwfile" -A scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || as_pg "$PG_BIN/initdb" -D "$data" -U bits --pwfile="$pwfile" -A scram-sha-256 -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
      || { echo "postgres.sh: initdb failed, see $dir/initdb.log" >&2; tail -20 "$dir/initdb.log" >&2; exit 4; }
    rm -f "$pwfile"
    cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 128MB
log_min_messages = warning
CONF
    echo "host all all 127.0.0.1/32 scram-sha-256" > "$data/pg_hba.conf"
    echo "local all all scram-sha-256" >> "$data/pg_hba.conf"
  fi
}

do_start() {
  do_init
  if ready; then echo "BITS_TEST_PG_URL=postgres://bits:bits@127.0.0.1:$port/bits"; return 0; fi
  # the port may have changed between runs of the same DIR
  sed -i "s/^port = .*/port = $port/" "$data/postgresql.conf"
  [[ "$(id -u)" == 0 ]] && touch "$log" && chown postgres: "$log"
  as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$log" -o "-p $port" -w -t "$timeout_s" start >/dev/null \
    || { echo "postgres.sh: server did not start within ${timeout_s}s, log $log:" >&2; tail -20 "$log" >&2; exit 5; }
  local i=0
  until ready; do
    i=$((i+1)); if (( i > timeout_s * 5 )); then echo "postgres.sh: not ready after ${timeout_s}s on port $port" >&2; exit 5; fi
    sleep 0.2
  done
  # initdb makes only the postgres and template databases
  if ! PGPASSWORD=bits "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U bits -d postgres -tAc "select 1 from pg_database where datname='bits'" | grep -q 1; then
    PGPASSWORD=bits "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U bits bits
  fi
  echo "BITS_TEST_PG_URL=postgres://bits:bits@127.0.0.1:$port/bits"
}

do_stop() {
  [[ -s "$data/postmaster.pid" ]] || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t "$timeout_s" stop >/dev/null 2>&1 \
    || as_pg "$PG_BIN/pg_ctl" -D "$data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
  if [[ -s "$data/postmaster.pid" ]]; then
    pid="$(head -1 "$data/postmaster.pid")"
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$data/postmaster.pid"
  fi
}

case "$cmd" in
  start) do_start ;;
  stop) do_stop ;;
  restart) do_stop; do_start ;;
  status) ready ;;
  *) echo "usage: $0 {start|stop|restart|status} DIR PORT" >&2; exit 2 ;;
esac
