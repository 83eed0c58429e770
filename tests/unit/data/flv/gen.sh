#!/bin/sh
# Regenerates the FLV / codec-config fixtures used by tests/unit/test_flv.c.
# Needs ffmpeg (libx264, libx265, libaom-av1, libsvtav1, librav1e) and python3.
# Run from anywhere; writes next to this script. The fixture bytes are
# committed, so tests never need ffmpeg; re-running changes them (encoder
# versions), and the expected values in test_flv.c must then be re-checked
# against ffprobe.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
ff() { ffmpeg -v error -y "$@"; }
ff -f lavfi -i testsrc=size=1280x720:rate=30 -f lavfi -i sine=f=440:sample_rate=48000 -t 1 \
   -c:v libx264 -profile:v high -pix_fmt yuv420p -c:a aac -ac 2 -b:a 64k -f flv h264_720p.flv
ff -f lavfi -i testsrc=size=642x362:rate=30 -t 0.2 -c:v libx264 -profile:v baseline -pix_fmt yuv420p -f flv crop.flv
ff -f lavfi -i testsrc=size=320x240:rate=30 -t 0.2 -c:v libx264 -profile:v high444 -pix_fmt yuv444p \
   -x264-params cqm=jvt -f flv cqm.flv
ff -f lavfi -i testsrc=size=720x576:rate=25 -t 0.2 -c:v libx264 -pix_fmt yuv420p -flags +ildct+ilme \
   -x264-params tff=1 -f flv interlaced.flv
ff -f lavfi -i testsrc=size=1920x1080:rate=30 -t 0.2 -c:v libx264 -profile:v high -pix_fmt yuv420p -f flv 1080p.flv
ff -f lavfi -i sine=f=440:sample_rate=44100 -t 0.3 -c:a aac -ac 1 -f flv mono.flv
ff -f lavfi -i testsrc=size=1280x720:rate=30 -t 0.2 -pix_fmt yuv420p -c:v libx265 -x265-params log-level=error \
   -tag:v hvc1 -f mp4 hevc_main.mp4
ff -f lavfi -i testsrc=size=1280x720:rate=30 -t 0.2 -c:v libx265 -x265-params log-level=error \
   -tag:v hvc1 -f mp4 hevc_rext.mp4
ff -f lavfi -i testsrc=size=642x362:rate=30 -t 0.2 -c:v libx265 -pix_fmt yuv420p10le -x265-params log-level=error \
   -tag:v hvc1 -f mp4 hevc_main10.mp4
ff -f lavfi -i testsrc=size=640x360:rate=30 -t 0.2 -pix_fmt yuv420p -c:v libaom-av1 -cpu-used 8 -f mp4 av1_main.mp4
ff -f lavfi -i testsrc=size=640x360:rate=30 -t 0.2 -c:v libaom-av1 -cpu-used 8 -f mp4 av1_high.mp4
ff -f lavfi -i testsrc=size=642x362:rate=30 -t 0.2 -c:v libsvtav1 -pix_fmt yuv420p10le -f mp4 av1_main10.mp4 2>/dev/null
ff -f lavfi -i testsrc=size=1920x1080:rate=30 -t 0.1 -pix_fmt yuv420p -c:v librav1e -f mp4 av1_rav1e.mp4
PYTHONPATH="$here" python3 - "$here" <<'PY'
import sys
from extract import flv_tags, mp4_info
out = sys.argv[1]
def w(name, data):
    open(f"{out}/{name}", "wb").write(data)
def video_tags(f):
    return [b for t, ts, b in flv_tags(f) if t == 9]
def audio_tags(f):
    return [b for t, ts, b in flv_tags(f) if t == 8]
v = video_tags("h264_720p.flv")
w("avc_high_720p_seq.tag", v[0]); w("avc_high_720p_key.tag", v[1]); w("avc_high_720p_inter.tag", v[2])
a = audio_tags("h264_720p.flv")
w("aac_lc_48k_stereo_seq.tag", a[0]); w("aac_lc_48k_stereo_frame.tag", a[1])
w("avc_baseline_642x362.avcc", video_tags("crop.flv")[0][5:])
w("avc_high444_cqm_320x240.avcc", video_tags("cqm.flv")[0][5:])
w("avc_interlaced_720x576.avcc", video_tags("interlaced.flv")[0][5:])
w("avc_high_1080p.avcc", video_tags("1080p.flv")[0][5:])
w("aac_lc_44k_mono.asc", audio_tags("mono.flv")[0][2:])
for src, name in [("hevc_main.mp4", "hevc_main_720p"), ("hevc_rext.mp4", "hevc_rext444_720p"),
                  ("hevc_main10.mp4", "hevc_main10_642x362"), ("av1_main.mp4", "av1_main_640x360"),
                  ("av1_high.mp4", "av1_high444_640x360"), ("av1_main10.mp4", "av1_main10_642x362"),
                  ("av1_rav1e.mp4", "av1_main_1920x1080")]:
    entry, cfg, s0, s1 = mp4_info(src)
    w(f"{name}.{cfg[0].lower()}", cfg[1])
    if name in ("hevc_main_720p", "av1_main_640x360"):
        w(f"{name}_key.sample", s0)
        w(f"{name}_inter.sample", s1)
PY
