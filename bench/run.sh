#!/bin/sh
# bench/run.sh — `make bench` (ARCHITECTURE §5): N RTMP publishers against
# nginx-rtmp and castgate, server CPU per stream-second, RSS per stream,
# publisher CPU, ingest-to-playlist latency percentiles, delivery req/s.
#
#   BUILD=build sh bench/run.sh [--target nginx|castgate|both] [--streams N]
#                               [--duration SEC] [--probe-streams K] ...
#
# Environment: TARGET (both), STREAMS (20), DURATION (60), RAMP_MS (100),
# PROBE_STREAMS (5), WRK_SECONDS (3), MEDIA (720p30 | 1080p60), BUILD (build),
# BENCH_OUT (bench/out).
# Makes the media and the load publisher when missing, then hands over to
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
if [ ! -x "$BUILD/bench/loadpub" ]; then
	make --no-print-directory "$BUILD/bench/loadpub" >&2
fi
exec python3 "$here/run.py" "$@"
