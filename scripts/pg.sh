#!/bin/sh
# pg.sh start|stop|url [DIR] — a local PostgreSQL for development and tests.
#
# The cluster lives in DIR/pg (default: $CASTGATE_DATA_DIR or ./var), listens
# only on a Unix socket in DIR/pg/run (no TCP port to collide with), and has
# a trust-authenticated role and database "castgate". PostgreSQL refuses to
# run as root, so when we are root the server runs as the "postgres" user
# (created by Debian's postgresql package).
# `start` prints the DATABASE_URL to use on its last line.
set -eu
cmd=${1:-}
dir=${2:-${CASTGATE_DATA_DIR:-./var}}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pg="$dir/pg"
data="$pg/data"
run="$pg/run"

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$PGBIN" ]; then
    echo "pg.sh: PostgreSQL is not installed (run: sh scripts/bootstrap.sh)" >&2
    exit 1
fi

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

url() {
    echo "postgresql:///castgate?host=$run&user=castgate"
}

# CASTGATE_PG_FAST=1 (tests): no fsync; a crash of the test cluster loses nothing we keep.
fast=""
[ "${CASTGATE_PG_FAST:-0}" = 1 ] && fast="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"

case "$cmd" in
start)
    mkdir -p "$pg"
    if [ "$(id -u)" -eq 0 ]; then
        # The server user must be able to reach $pg: grant traverse (x) on the
        # parents that lack it.
        p="$pg"
        while [ "$p" != "/" ]; do
            p=$(dirname "$p")
            runuser -u postgres -- test -x "$p" 2>/dev/null || chmod o+x "$p"
        done
        chown postgres:postgres "$pg"
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        as_pg "$PGBIN/initdb" -D "$data" -U castgate -A trust -E UTF8 --no-sync >"$pg/initdb.log" 2>&1 || {
            echo "pg.sh: initdb failed, see $pg/initdb.log" >&2; tail -5 "$pg/initdb.log" >&2; exit 1; }
    fi
    as_pg mkdir -p "$run"
    if as_pg "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        :
    else
        as_pg "$PGBIN/pg_ctl" -D "$data" -l "$pg/server.log" -w -t 60 \
            -o "-k $run -c listen_addresses= -c max_connections=200 $fast" \
            start >/dev/null || { echo "pg.sh: server did not start, see $pg/server.log" >&2; tail -5 "$pg/server.log" >&2; exit 1; }
    fi
    if ! "$PGBIN/psql" -h "$run" -U castgate -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='castgate'" | grep -q 1; then
        "$PGBIN/createdb" -h "$run" -U castgate castgate
    fi
    url
    ;;
stop)
    if [ -f "$data/PG_VERSION" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
url)
    url
    ;;
*)
    echo "usage: pg.sh start|stop|url [DIR]" >&2
    exit 2
    ;;
esac
