"""The main flow of SPEC §1 with a real publisher and real players:
member → room (SCHEDULED) → publish (key ACTIVE) → start (LIVE / ACTIVE_LIVE)
→ liveUrl plays → publisher killed (LIVE_INACTIVE / INACTIVE_LIVE) → publish
again (ACTIVE_LIVE_PREP → LIVE, discontinuity, media sequence kept) → stop →
end (ENDED / INACTIVE, ENDLIST) → vod.m3u8 plays the whole broadcast."""
import re
import secrets
import signal
import time
from datetime import datetime, timedelta, timezone

from helpers import wait_until
from media import ffmpeg_decode, ffmpeg_probe_duration, ffmpeg_publish, stop


def iso(dt):
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def setup_room(cg, **settings):
    uid = "teacher-" + secrets.token_hex(4)
    assert cg.api("POST", "/v2/apps/me/members", {"appUserId": uid}).status == 201
    key = cg.api("GET", f"/v2/apps/me/members/{uid}/stream-key").json()
    body = {"appUserId": uid, "type": "BROADCAST_RTMP", "title": "Algebra I",
            "scheduledAt": iso(datetime.now(timezone.utc) + timedelta(minutes=5))}
    if settings:
        body["settings"] = settings
    r = cg.api("POST", "/v2/apps/me/video-rooms", body)
    assert r.status == 201, r.body
    return key, r.json()


def room(cg, rid):
    return cg.api("GET", f"/v2/apps/me/video-rooms/{rid}").json()


def key_state(cg, kid):
    return cg.api("GET", f"/v2/apps/me/stream-keys/{kid}").json()["streamKeyState"]


def test_full_broadcast_flow(castgate):
    key, rm = setup_room(castgate)
    rid = rm["id"]
    assert rm["videoRoomState"] == "SCHEDULED" and rm["liveUrl"] is None

    # start before the broadcaster streams: refused, nothing changes
    r = castgate.api("POST", f"/v2/apps/me/video-rooms/{rid}/rtmp-broadcast/state/live")
    assert r.status == 400 and r.json()["errorCode"] == "STREAM_KEY_STATE_NOT_ACTIVE"

    pub = ffmpeg_publish(f"{castgate.rtmp_base}/{key['streamKey']}", seconds=60)
    try:
        wait_until(lambda: key_state(castgate, key["id"]) == "ACTIVE", timeout=15, what="key ACTIVE")
        r = castgate.api("POST", f"/v2/apps/me/video-rooms/{rid}/rtmp-broadcast/state/live")
        assert r.status == 200, r.body
        live = r.json()
        assert live["videoRoomState"] == "LIVE"
        assert live["streamKey"]["streamKeyState"] == "ACTIVE_LIVE"
        assert live["liveUrl"] == f"{castgate.http_base}/hls/rooms/{rid}/index.m3u8"
        wait_until(lambda: castgate.get(f"/hls/rooms/{rid}/media.m3u8").status == 200
                   and "#EXTINF" in castgate.get(f"/hls/rooms/{rid}/media.m3u8").body.decode(),
                   timeout=10, what="room playlist has a segment")
        rc, err = ffmpeg_decode(live["liveUrl"], seconds=3)
        assert rc == 0, err
        status = castgate.api("GET", f"/v2/apps/me/video-rooms/{rid}/status").json()["data"]
        assert status["exists"] and status["isActive"] and status["hasTeacher"]
    finally:
        pub.send_signal(signal.SIGKILL)
        pub.wait()

    wait_until(lambda: room(castgate, rid)["videoRoomState"] == "LIVE_INACTIVE", timeout=15,
               what="room LIVE_INACTIVE after the publisher died")
    assert key_state(castgate, key["id"]) == "INACTIVE_LIVE"
    before = castgate.get(f"/hls/rooms/{rid}/media.m3u8").body.decode()
    seq_before = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", before).group(1))
    last_msn_before = max(int(m) for m in re.findall(r"^(\d+)\.m4s", before, re.M))

    # end while the key is not INACTIVE_LIVE is refused later; first reconnect
    pub = ffmpeg_publish(f"{castgate.rtmp_base}/{key['streamKey']}", seconds=60)
    try:
        wait_until(lambda: room(castgate, rid)["videoRoomState"] == "LIVE", timeout=15, what="LIVE again")
        assert key_state(castgate, key["id"]) == "ACTIVE_LIVE"
        r = castgate.api("POST", f"/v2/apps/me/video-rooms/{rid}/rtmp-broadcast/state/ended")
        assert r.status == 400 and r.json()["errorCode"] == "VIDEO_ROOM_STATE_NOT_LIVE_INACTIVE"
        wait_until(lambda: "#EXT-X-DISCONTINUITY\n" in castgate.get(f"/hls/rooms/{rid}/media.m3u8").body.decode(),
                   timeout=10, what="discontinuity after reconnect")
        after = castgate.get(f"/hls/rooms/{rid}/media.m3u8").body.decode()
        msns = [int(m) for m in re.findall(r"^(\d+)\.m4s", after, re.M)]
        assert int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", after).group(1)) >= seq_before
        assert max(msns) > last_msn_before, "numbering continues across the reconnect"
        time.sleep(0)  # no fixed waits: the next step polls
        wait_until(lambda: len(re.findall(r"^(\d+)\.m4s", castgate.get(f"/hls/rooms/{rid}/media.m3u8").body.decode(), re.M)) >= 2,
                   timeout=10, what="segments after reconnect")
    finally:
        stop(pub)

    wait_until(lambda: room(castgate, rid)["videoRoomState"] == "LIVE_INACTIVE", timeout=5,
               what="LIVE_INACTIVE at once on a clean close")
    r = castgate.api("POST", f"/v2/apps/me/video-rooms/{rid}/rtmp-broadcast/state/ended")
    assert r.status == 200, r.body
    assert r.json()["videoRoomState"] == "ENDED"
    assert key_state(castgate, key["id"]) == "INACTIVE"
    wait_until(lambda: castgate.get(f"/hls/rooms/{rid}/media.m3u8").body.decode().rstrip().endswith("#EXT-X-ENDLIST"),
               timeout=5, what="ENDLIST")
    vod = castgate.get(f"/hls/rooms/{rid}/vod.m3u8").body.decode()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod and vod.rstrip().endswith("#EXT-X-ENDLIST")
    total = sum(float(x) for x in re.findall(r"#EXTINF:([\d.]+)", vod))
    assert total > 4
    rc, err = ffmpeg_decode(f"{castgate.http_base}/hls/rooms/{rid}/vod.m3u8")
    assert rc == 0, err
    dur = ffmpeg_probe_duration(f"{castgate.http_base}/hls/rooms/{rid}/vod.m3u8")
    assert abs(dur - total) < 0.5, (dur, total)


def test_force_terminate_disconnects_and_reissues(castgate):
    key, rm = setup_room(castgate)
    pub = ffmpeg_publish(f"{castgate.rtmp_base}/{key['streamKey']}", seconds=60)
    try:
        wait_until(lambda: key_state(castgate, key["id"]) == "ACTIVE", timeout=15, what="ACTIVE")
        assert castgate.api("POST", f"/v2/apps/me/video-rooms/{rm['id']}/rtmp-broadcast/state/live").status == 200
        r = castgate.api("POST", f"/v2/apps/me/stream-keys/{key['id']}/force-terminate")
        assert r.status == 204
        assert pub.wait(timeout=10) is not None, "publisher disconnected"
    finally:
        stop(pub)
    k = castgate.api("GET", f"/v2/apps/me/stream-keys/{key['id']}").json()
    assert k["streamKeyState"] == "INACTIVE" and k["streamKey"] != key["streamKey"]
    assert room(castgate, rm["id"])["videoRoomState"] == "ENDED"
    # the old key string no longer publishes
    old = ffmpeg_publish(f"{castgate.rtmp_base}/{key['streamKey']}", seconds=10)
    assert old.wait(timeout=15) != 0


def test_auto_start_and_auto_end(castgate):
    key, rm = setup_room(castgate, autoStart=True, autoEndAfterSec=2)
    pub = ffmpeg_publish(f"{castgate.rtmp_base}/{key['streamKey']}", seconds=60)
    try:
        wait_until(lambda: room(castgate, rm["id"])["videoRoomState"] == "LIVE", timeout=15,
                   what="auto-start when the key becomes ACTIVE")
        assert key_state(castgate, key["id"]) == "ACTIVE_LIVE"
    finally:
        stop(pub)
    wait_until(lambda: room(castgate, rm["id"])["videoRoomState"] == "ENDED", timeout=15,
               what="auto-end after autoEndAfterSec")
    assert key_state(castgate, key["id"]) == "INACTIVE"


def test_max_duration_ends_room_and_disconnects(castgate):
    key, rm = setup_room(castgate, maxDurationSec=3)
    pub = ffmpeg_publish(f"{castgate.rtmp_base}/{key['streamKey']}", seconds=60)
    try:
        wait_until(lambda: key_state(castgate, key["id"]) == "ACTIVE", timeout=15, what="ACTIVE")
        assert castgate.api("POST", f"/v2/apps/me/video-rooms/{rm['id']}/rtmp-broadcast/state/live").status == 200
        wait_until(lambda: room(castgate, rm["id"])["videoRoomState"] == "ENDED", timeout=15,
                   what="ENDED by maxDurationSec")
        assert pub.wait(timeout=10) is not None
    finally:
        stop(pub)
    assert castgate.get(f"/hls/rooms/{rm['id']}/media.m3u8").body.decode().rstrip().endswith("#EXT-X-ENDLIST")


def test_gstreamer_playbin_plays_live_and_vod(castgate):
    """GStreamer's HLS demuxer (hlsdemux2, in playbin3: legacy playbin autoplugs
    it without the streams-aware context it needs and may hang) decodes the live
    room for a few seconds, then the ended broadcast's vod.m3u8 to EOS."""
    import shutil
    import subprocess
    gst = shutil.which("gst-launch-1.0")
    key, rm = setup_room(castgate)
    rid = rm["id"]
    pub = ffmpeg_publish(f"{castgate.rtmp_base}/{key['streamKey']}", seconds=60)
    try:
        wait_until(lambda: key_state(castgate, key["id"]) == "ACTIVE", timeout=15, what="ACTIVE")
        live = castgate.api("POST", f"/v2/apps/me/video-rooms/{rid}/rtmp-broadcast/state/live").json()
        wait_until(lambda: castgate.get(f"/hls/rooms/{rid}/media.m3u8").body.count(b"#EXTINF") >= 2,
                   timeout=15, what="segments")
        p = subprocess.run(["timeout", "-s", "INT", "8", gst, "-m", "playbin3", f"uri={live['liveUrl']}",
                            "video-sink=fakesink sync=true", "audio-sink=fakesink sync=true"],
                           capture_output=True, text=True, timeout=30)
        out = p.stdout + p.stderr
        assert "ERROR" not in out, out[-3000:]
        assert "new-state=(GstState)GST_STATE_PLAYING" in out or "to PLAYING" in out, out[-3000:]
    finally:
        stop(pub)
    wait_until(lambda: room(castgate, rid)["videoRoomState"] == "LIVE_INACTIVE", timeout=10, what="LIVE_INACTIVE")
    assert castgate.api("POST", f"/v2/apps/me/video-rooms/{rid}/rtmp-broadcast/state/ended").status == 200
    # the end reaches the packager through NOTIFY: wait for the VOD to be final
    wait_until(lambda: castgate.get(f"/hls/rooms/{rid}/vod.m3u8").body.rstrip().endswith(b"#EXT-X-ENDLIST"),
               timeout=5, what="vod.m3u8 ENDLIST")
    p = subprocess.run([gst, "-q", "playbin3", f"uri={castgate.http_base}/hls/rooms/{rid}/vod.m3u8",
                        "video-sink=fakesink", "audio-sink=fakesink"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
