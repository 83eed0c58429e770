"""Recording a live broadcast (SPEC §5, issue: MP4 recordings): a real
publisher, a LIVE room, files per ingest session, stop/start pairs, finalize
to faststart, signed download, and a kill -9 of castgate mid-broadcast."""
import json
import os
import re
import signal
import subprocess

from helpers import http, wait_until
from media import FFPROBE, ffmpeg_publish, stop
from test_broadcast_flow import key_state, room, setup_room


def recordings(cg, rid):
    r = cg.api("GET", f"/v2/apps/me/video-rooms/{rid}/recordings")
    assert r.status == 200, r.body
    return r.json()["data"]


def go_live(cg, key, rid, seconds=60):
    pub = ffmpeg_publish(f"{cg.rtmp_base}/{key['streamKey']}", seconds=seconds)
    wait_until(lambda: key_state(cg, key["id"]) == "ACTIVE", timeout=15, what="key ACTIVE")
    r = cg.api("POST", f"/v2/apps/me/video-rooms/{rid}/rtmp-broadcast/state/live")
    assert r.status == 200, r.body
    return pub


def probe_duration(path):
    r = subprocess.run([FFPROBE, "-v", "error", "-show_entries", "format=duration", "-of", "json", path],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return float(json.loads(r.stdout)["format"]["duration"])


def top_boxes(path):
    """Top-level MP4 box types in order."""
    out = []
    with open(path, "rb") as f:
        while True:
            hdr = f.read(8)
            if len(hdr) < 8:
                break
            size = int.from_bytes(hdr[:4], "big")
            typ = hdr[4:8].decode("latin1")
            if size == 1:
                size = int.from_bytes(f.read(8), "big")
                f.seek(size - 16, 1)
            else:
                f.seek(size - 8, 1)
            out.append(typ)
            if size == 0:
                break
    return out


def test_live_room_is_recorded_finalized_and_downloadable(castgate, tmp_path):
    key, rm = setup_room(castgate)
    rid = rm["id"]
    pub = go_live(castgate, key, rid)
    try:
        wait_until(lambda: any(f["status"] == "RECORDING" for f in recordings(castgate, rid)["files"]),
                   timeout=10, what="a RECORDING file")
        st = castgate.api("GET", f"/v2/apps/me/video-rooms/{rid}/status").json()["data"]
        assert st["isRecording"] is True
        # stop/start pair makes a second file (REC-2)
        wait_until(lambda: castgate.get(f"/hls/rooms/{rid}/media.m3u8").body.count(b"#EXTINF") >= 2,
                   timeout=15, what="a few seconds of media")
        assert castgate.api("POST", f"/v2/apps/me/video-rooms/{rid}/recording/stop").status == 200
        wait_until(lambda: any(f["status"] in ("PROCESSING", "READY") for f in recordings(castgate, rid)["files"]),
                   timeout=10, what="first file closed")
        assert castgate.api("POST", f"/v2/apps/me/video-rooms/{rid}/recording/start").status == 200
        wait_until(lambda: len(recordings(castgate, rid)["files"]) == 2, timeout=10, what="second file")
        wait_until(lambda: castgate.get(f"/hls/rooms/{rid}/media.m3u8").body.count(b"#EXTINF") >= 4,
                   timeout=15, what="more media")
    finally:
        stop(pub)
    wait_until(lambda: room(castgate, rid)["videoRoomState"] == "LIVE_INACTIVE", timeout=10, what="LIVE_INACTIVE")
    assert castgate.api("POST", f"/v2/apps/me/video-rooms/{rid}/rtmp-broadcast/state/ended").status == 200
    wait_until(lambda: all(f["status"] == "READY" for f in recordings(castgate, rid)["files"]), timeout=30,
               what="both files READY")
    data = recordings(castgate, rid)
    assert len(data["files"]) == 2
    assert data["expiresAt"]
    m = re.fullmatch(r"(\d+)h (\d+)m", data["expiresIn"])
    assert m and (int(m.group(1)), int(m.group(2))) in ((5, 59), (6, 0)), data["expiresIn"]
    for f in data["files"]:
        assert f["size"] > 10000 and f["durationMs"] > 1000
        r = http("GET", f["downloadUrl"])
        assert r.status == 200
        assert "attachment" in r.headers["Content-Disposition"]
        path = tmp_path / f"rec-{f['id']}.mp4"
        path.write_bytes(r.body)
        boxes = top_boxes(str(path))
        assert boxes.index("moov") < boxes.index("mdat"), boxes   # faststart
        assert abs(probe_duration(str(path)) * 1000 - f["durationMs"]) < 1000


def test_kill9_mid_broadcast_leaves_a_playable_recording(castgate_factory, tmp_path):
    cg = castgate_factory()
    key, rm = setup_room(cg)
    rid = rm["id"]
    pub = go_live(cg, key, rid)
    try:
        wait_until(lambda: any(f["status"] == "RECORDING" for f in recordings(cg, rid)["files"]),
                   timeout=10, what="RECORDING")
        wait_until(lambda: cg.get(f"/hls/rooms/{rid}/media.m3u8").body.count(b"#EXTINF") >= 3,
                   timeout=20, what="~6 s of media")
        rec_dir = os.path.join(cg.data_dir, "recordings")
        cg.kill9()
    finally:
        stop(pub)
    files = [os.path.join(d, f) for d, _, fs in os.walk(rec_dir) for f in fs if f.endswith(".mp4")]
    assert len(files) == 1
    # the fragmented file plays up to (almost) the kill
    dur = probe_duration(files[0])
    assert dur > 3.0, dur
    # restart: the session is closed (OPS-6) and the file finalized + listed
    cg2 = cg.start()  # same data_dir, ports and database
    wait_until(lambda: room(cg2, rid)["videoRoomState"] == "LIVE_INACTIVE", timeout=10, what="room LIVE_INACTIVE after restart")
    wait_until(lambda: all(f["status"] == "READY" for f in recordings(cg2, rid)["files"]), timeout=30,
               what="recording finalized after restart")
    f = recordings(cg2, rid)["files"][0]
    assert f["durationMs"] > 3000


def test_disk_full_fails_the_recording_not_the_stream(castgate_factory):
    """Recordings on a 1 MiB tmpfs: the recording becomes FAILED with the
    reason, the live HLS keeps advancing, castgate keeps running."""
    import pytest
    cg = castgate_factory(start=False)
    rec_dir = os.path.join(cg.data_dir, "recordings")
    os.makedirs(rec_dir, exist_ok=True)
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", rec_dir], capture_output=True, text=True)
    if m.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {m.stderr.strip()}")
    try:
        cg.start()
        key, rm = setup_room(cg)
        rid = rm["id"]
        pub = go_live(cg, key, rid)
        try:
            wait_until(lambda: any(f["status"] == "FAILED" for f in recordings(cg, rid)["files"]),
                       timeout=40, what="recording FAILED when the disk is full")
            f = recordings(cg, rid)["files"][0]
            assert f["status"] == "FAILED"
            r = cg.api("GET", f"/v2/apps/me/video-rooms/{rid}")
            assert r.status == 200
            before = cg.get(f"/hls/rooms/{rid}/media.m3u8").body
            wait_until(lambda: cg.get(f"/hls/rooms/{rid}/media.m3u8").body != before, timeout=10,
                       what="live playlist still advancing")
            assert pub.poll() is None, "the publisher is still connected"
            assert "No space left" in cg.log_text() or "ENOSPC" in cg.log_text() or "space" in cg.log_text()
            assert cg.get("/healthz").status in (200, 503)
        finally:
            stop(pub)
        assert cg.stop() == 0
    finally:
        subprocess.run(["umount", "-l", rec_dir], capture_output=True)


def test_auto_start_keeps_the_first_seconds(castgate, tmp_path):
    """Auto-start (SPEC 2.3) fires when the first segment is published; the
    room's playlist and its recording still begin at the broadcaster's first
    frame (OBS-only workflow: start streaming = live), nothing is cut."""
    key, rm = setup_room(castgate, autoStart=True, autoEndAfterSec=1)
    rid = rm["id"]
    seconds = 8
    pub = ffmpeg_publish(f"{castgate.rtmp_base}/{key['streamKey']}", seconds=seconds, gop=30)
    try:
        wait_until(lambda: room(castgate, rid)["videoRoomState"] == "LIVE", timeout=15, what="auto-start")
        assert pub.wait(timeout=30) == 0, pub.stderr.read()
    finally:
        stop(pub)
    wait_until(lambda: room(castgate, rid)["videoRoomState"] == "ENDED", timeout=15, what="auto-end")
    pl = castgate.get(f"/hls/rooms/{rid}/vod.m3u8").body.decode()
    assert pl.rstrip().endswith("#EXT-X-ENDLIST"), pl
    assert re.search(r"^0\.m4s", pl, re.M), pl  # the room's first segment is the session's first
    listed = sum(float(x) for x in re.findall(r"^#EXTINF:([\d.]+)", pl, re.M))
    assert listed >= seconds - 0.5, (listed, pl)
    wait_until(lambda: [f["status"] for f in recordings(castgate, rid)["files"]] == ["READY"], timeout=30,
               what="recording READY")
    f = recordings(castgate, rid)["files"][0]
    assert f["durationMs"] >= (seconds - 0.5) * 1000, f
    path = tmp_path / "rec.mp4"
    path.write_bytes(http("GET", f["downloadUrl"]).body)
    assert probe_duration(str(path)) >= seconds - 0.5
