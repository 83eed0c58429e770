#!/bin/sh
# run.sh — `make run`: a local PostgreSQL under ./var (unless DATABASE_URL is
# set), migrations, a demo app (credentials printed once, kept in
# var/demo-app.json), a demo member and room, then `castgate serve` in the
# foreground until Ctrl-C, which also stops the local PostgreSQL.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN="$BUILD/castgate"
DATA=${CASTGATE_DATA_DIR:-./var}
mkdir -p "$DATA"

started_pg=0
if [ -z "${DATABASE_URL:-}" ]; then
    DATABASE_URL=$(sh scripts/pg.sh start "$DATA" | tail -n 1)
    started_pg=1
    echo "run: local PostgreSQL under $DATA/pg"
fi
export DATABASE_URL

pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    if [ $started_pg -eq 1 ]; then
        sh scripts/pg.sh stop "$DATA"
        echo "run: local PostgreSQL stopped"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BIN" migrate

demo="$DATA/demo-app.json"
if [ ! -s "$demo" ]; then
    "$BIN" app create demo --json >"$demo.tmp" && mv "$demo.tmp" "$demo"
    echo "run: demo app created (credentials shown once, also kept in $demo):"
    cat "$demo"
fi

"$BIN" serve "$@" &
pid=$!

http=${CASTGATE_HTTP_LISTEN:-0.0.0.0:8080}
port=${http##*:}
base="http://127.0.0.1:$port"
i=0
until curl -fsS "$base/healthz" >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
        echo "run: castgate did not become healthy" >&2
        exit 1
    fi
    sleep 0.1
done

key=$(sed -n 's/.*"appApiKey":"\([^"]*\)".*/\1/p' "$demo")
secret=$(sed -n 's/.*"appApiSecret":"\([^"]*\)".*/\1/p' "$demo")
if [ -n "$key" ] && python3 scripts/demo_setup.py "$base" "$key" "$secret"; then
    :
else
    echo "run: castgate is serving on $base (API demo set-up not available)"
fi
wait "$pid"
