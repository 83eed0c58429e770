#!/bin/sh
# bench/gen_media.sh — generated test media for the benchmarks (ARCHITECTURE §5).
#
#   sh bench/gen_media.sh            both files
#   sh bench/gen_media.sh 720p30     only bench/out/media/720p30.flv
#   sh bench/gen_media.sh 1080p60    only bench/out/media/1080p60.flv
#
# Prints the path of each file it made or found. Idempotent: a file that is
# already present is kept (delete it to regenerate). Deterministic: the
# pictures and tone come from lavfi generators, the encoders run with fixed
# settings and bitexact flags, so the same FFmpeg build makes the same bytes.
# x264 runs single-threaded: with frame threads and VBV its output changes
# from run to run (its rate control reads other threads' progress).
#
# The shape matches a typical OBS stream: H.264 High, closed 2 s GOP
# (keyframe every 2 s, no scene-cut keyframes, so every HLS segment is one
# GOP), CBR-ish rate control, AAC-LC 128k stereo 48 kHz, in FLV (the form
# RTMP carries, so the load publisher can send its tags as they are).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
OUT=${BENCH_OUT:-$here/out}
DURATION=${MEDIA_SECONDS:-60}
mkdir -p "$OUT/media"

command -v ffmpeg >/dev/null 2>&1 || { echo "gen_media: ffmpeg not found (apt-get install ffmpeg)" >&2; exit 1; }

# gen NAME WIDTH HEIGHT FPS KBPS
gen() {
	name=$1 w=$2 h=$3 fps=$4 kbps=$5
	dst="$OUT/media/$name.flv"
	if [ -s "$dst" ]; then
		echo "$dst"
		return 0
	fi
	gop=$((fps * 2))
	tmp="$dst.tmp.$$"
	echo "gen_media: encoding $name (${w}x${h}@${fps}, ${kbps}k, ${DURATION}s)" >&2
	ffmpeg -nostdin -hide_banner -loglevel error -y \
		-f lavfi -i "testsrc2=size=${w}x${h}:rate=${fps}:duration=${DURATION}" \
		-f lavfi -i "sine=frequency=440:beep_factor=4:sample_rate=48000:duration=${DURATION}" \
		-map 0:v -map 1:a \
		-c:v libx264 -threads 1 -preset veryfast -profile:v high -pix_fmt yuv420p \
		-b:v "${kbps}k" -maxrate "${kbps}k" -bufsize "$((kbps * 2))k" \
		-g "$gop" -keyint_min "$gop" -sc_threshold 0 -x264-params "open-gop=0" \
		-c:a aac -b:a 128k -ac 2 -ar 48000 \
		-fflags +bitexact -flags:v +bitexact -flags:a +bitexact -map_metadata -1 \
		-f flv "$tmp"
	mv "$tmp" "$dst"
	echo "$dst"
}

want=${*:-720p30 1080p60}
for m in $want; do
	case $m in
	720p30) gen 720p30 1280 720 30 2500 ;;
	1080p60) gen 1080p60 1920 1080 60 6000 ;;
	*) echo "gen_media: unknown media '$m' (720p30, 1080p60)" >&2; exit 2 ;;
	esac
done
