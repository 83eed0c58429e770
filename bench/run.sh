#!/bin/sh
# bench/run.sh — `make bench` (ARCHITECTURE §5): N RTMP publishers against
# nginx-rtmp and castgate, server CPU per stream-second, RSS per stream,
# publisher CPU, ingest-to-playlist latency percentiles, delivery req/s.
#
#   BUILD=build sh bench/run.sh [--target nginx|castgate|both] [--streams N]
#                               [--duration SEC] [--probe-streams K] ...
#
# Environment: TARGET (both), STREAMS (20), DURATION (45), RAMP_MS (100),
# PROBE_STREAMS (5), WRK_SECONDS (3), WRK_RUNS (3), WRK_OWN_RUNS (1),
# FINALIZE_TIMEOUT (60), ROOMS (1), MEDIA (720p30 | 1080p60), BUILD (build),
# BENCH_OUT (bench/out).
# Makes the media when missing, has make bring the load publisher and castgate
# up to date (castgate unless --target nginx), then hands over to
# bench/run.py, which writes bench/out/result-*.json and prints a table.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
BUILD=${BUILD:-build}
export BUILD

cd "$root"
for tool in python3 ffmpeg; do
	command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool not found" >&2; exit 1; }
done
MEDIA=${MEDIA:-720p30}
export MEDIA
sh "$here/gen_media.sh" "$MEDIA" >/dev/null
# The load publisher always, castgate unless only nginx is measured: make
# rebuilds what is stale and does nothing when all is up to date.
target=${TARGET:-both}
prev=
for a in "$@"; do
	case "$a" in
	--target=*) target=${a#--target=} ;;
	*) [ "$prev" = "--target" ] && target=$a ;;
	esac
	prev=$a
done
bins="$BUILD/bench/loadpub $BUILD/bench/pkg_cost"
[ "$target" = nginx ] || bins="$bins $BUILD/castgate"
if command -v make >/dev/null 2>&1 && [ -f "$root/Makefile" ]; then
	# shellcheck disable=SC2086
	make --no-print-directory -s BUILD="$BUILD" $bins >&2 || { echo "bench: build failed" >&2; exit 1; }
fi
exec python3 "$here/run.py" "$@"
