"""Real publishers and players for end-to-end tests (FFmpeg, GStreamer).

Publishers generate media live with lavfi / videotestsrc, so no fixture files
are needed; every process is bounded in time and killed at teardown."""
import json
import os
import shlex
import shutil
import signal
import subprocess
import time

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
FFPROBE = shutil.which("ffprobe") or "ffprobe"
GST = shutil.which("gst-launch-1.0") or "gst-launch-1.0"


def ffmpeg_publish(url, seconds=30, size="640x360", rate=30, gop=30, vbitrate="800k", bframes=0,
                   extra_in=(), audio=True, video=True, realtime=True, log=None):
    """Starts `ffmpeg -re ... -f flv URL` and returns the Popen."""
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin"]
    if realtime:
        cmd += ["-re"]
    if video:
        cmd += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    cmd += list(extra_in)
    cmd += ["-t", str(seconds)]
    if video:
        cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency" if bframes == 0 else "film",
                "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-b:v", vbitrate,
                "-bf", str(bframes), "-pix_fmt", "yuv420p"]
    if audio:
        cmd += ["-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2"]
    cmd += ["-f", "flv", url]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log or subprocess.PIPE)


def gst_publish(url, sink="rtmpsink", seconds=30, log=None):
    """GStreamer publisher: rtmpsink (librtmp, the OBS client family) or rtmp2sink."""
    buffers = seconds * 30
    pipeline = (
        f"videotestsrc is-live=true num-buffers={buffers} ! video/x-raw,width=640,height=360,framerate=30/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=800 ! h264parse "
        f"! flvmux name=mux streamable=true ! {sink} location=\"{url}\" "
        f"audiotestsrc is-live=true num-buffers={seconds * 47} ! audioconvert ! audioresample "
        f"! audio/x-raw,rate=48000,channels=2 ! voaacenc bitrate=96000 ! aacparse ! mux."
    )
    return subprocess.Popen([GST, "-q", *shlex.split(pipeline)],
                            stdout=subprocess.DEVNULL, stderr=log or subprocess.PIPE)


def stop(proc, timeout=10):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ffprobe_json(url, *args, timeout=60):
    r = subprocess.run([FFPROBE, "-v", "error", "-print_format", "json", *args, url],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"ffprobe failed for {url}: {r.stderr[-2000:]}"
    return json.loads(r.stdout)


def ffmpeg_decode(url, seconds=None, timeout=120):
    """Decodes url with ffmpeg as an HLS client; returns (returncode, stderr)."""
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-i", url]
    if seconds:
        cmd += ["-t", str(seconds)]
    cmd += ["-f", "null", "-"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stderr


def ffmpeg_probe_duration(url, timeout=120):
    """Duration in seconds of a VOD playlist as ffprobe sees it."""
    j = ffprobe_json(url, "-show_entries", "format=duration", timeout=timeout)
    return float(j["format"]["duration"])
