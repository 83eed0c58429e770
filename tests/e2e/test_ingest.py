"""Ingest with real clients (SPEC §3, issue: RTMP ingest): FFmpeg, GStreamer
rtmpsink (librtmp, OBS's client family) and rtmp2sink publish to castgate; the
key is checked in PostgreSQL; the preview playlist plays in ffmpeg."""
import os
import re
import secrets
import socket
import subprocess
import time

import pytest

from helpers import http, wait_until
from media import ffmpeg_decode, ffmpeg_publish, gst_publish, stop


def psql(sql, *params):
    """Runs one statement with psql variables (no string interpolation of values)."""
    args = ["psql", os.environ["DATABASE_URL"], "-v", "ON_ERROR_STOP=1", "-tAq"]
    for i, p in enumerate(params):
        args += ["-v", f"p{i}={p}"]
    r = subprocess.run(args, input=sql, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def new_key(cg):
    """A member with its stream key, created through the admin API."""
    uid = "ingest-" + secrets.token_hex(4)
    r = cg.api("POST", "/v2/apps/me/members", {"appUserId": uid, "appUserName": "Teacher"})
    assert r.status == 201, r.body
    r = cg.api("GET", f"/v2/apps/me/members/{uid}/stream-key")
    assert r.status == 200, r.body
    return r.json()


def key_state(cg, key_id):
    return cg.api("GET", f"/v2/apps/me/stream-keys/{key_id}").json()["streamKeyState"]


def test_ffmpeg_publish_goes_active_and_preview_plays(castgate):
    key = new_key(castgate)
    assert key["streamKeyState"] == "INACTIVE"
    pub = ffmpeg_publish(f"{castgate.rtmp_base}/{key['streamKey']}", seconds=30)
    try:
        wait_until(lambda: key_state(castgate, key["id"]) == "ACTIVE", timeout=15, what="key ACTIVE")
        url = f"{castgate.http_base}/hls/keys/{key['id']}/index.m3u8"
        mv = castgate.get(f"/hls/keys/{key['id']}/index.m3u8")
        assert mv.status == 200
        assert mv.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        text = mv.body.decode()
        assert 'CODECS="avc1.' in text and "mp4a.40.2" in text
        assert "RESOLUTION=640x360" in text
        rc, err = ffmpeg_decode(url, seconds=4)
        assert rc == 0 and not err.strip(), err
    finally:
        stop(pub)
    wait_until(lambda: key_state(castgate, key["id"]) == "INACTIVE", timeout=5, what="key INACTIVE on clean close")


def test_obs_form_server_url_and_key_with_query(castgate):
    key = new_key(castgate)
    # OBS: Server rtmp://host:port/live, Stream Key "KEY?x=1": librtmp sends publish("KEY?x=1")
    pub = gst_publish(f"{castgate.rtmp_base}/{key['streamKey']}?obs=1 live=1", sink="rtmpsink", seconds=30)
    try:
        wait_until(lambda: key_state(castgate, key["id"]) == "ACTIVE", timeout=20, what="key ACTIVE via rtmpsink")
    finally:
        stop(pub)


@pytest.mark.parametrize("sink", ["rtmpsink", "rtmp2sink"])
def test_gstreamer_publishers(castgate, sink):
    key = new_key(castgate)
    pub = gst_publish(f"{castgate.rtmp_base}/{key['streamKey']}", sink=sink, seconds=30)
    try:
        wait_until(lambda: key_state(castgate, key["id"]) == "ACTIVE", timeout=20, what=f"key ACTIVE via {sink}")
        rc, err = ffmpeg_decode(f"{castgate.http_base}/hls/keys/{key['id']}/index.m3u8", seconds=2)
        assert rc == 0, err
    finally:
        stop(pub)
    wait_until(lambda: key_state(castgate, key["id"]) == "INACTIVE", timeout=15, what="key INACTIVE")


def test_unknown_key_is_refused_quickly_and_writes_nothing(castgate):
    t0 = time.monotonic()
    pub = ffmpeg_publish(f"{castgate.rtmp_base}/no-such-key-{secrets.token_hex(16)}", seconds=20)
    rc = pub.wait(timeout=15)
    elapsed = time.monotonic() - t0
    err = pub.stderr.read().decode(errors="replace")
    assert rc != 0
    assert elapsed < 5, elapsed
    assert "publish refused: unknown key" in castgate.log_text()
    assert not os.path.exists(os.path.join(castgate.data_dir, "hls", "keys"))
    # the secret never reaches the log
    assert "no-such-key" not in castgate.log_text()


def test_deleted_key_is_refused(castgate):
    key = new_key(castgate)
    uid = key["member"]["appUserId"]
    assert castgate.api("DELETE", f"/v2/apps/me/members/{uid}").status == 204
    pub = ffmpeg_publish(f"{castgate.rtmp_base}/{key['streamKey']}", seconds=20)
    assert pub.wait(timeout=15) != 0


def test_other_app_name_is_refused(castgate):
    key = new_key(castgate)
    url = castgate.rtmp_base.rsplit("/", 1)[0] + "/otherapp/" + key["streamKey"]
    pub = ffmpeg_publish(url, seconds=20)
    assert pub.wait(timeout=15) != 0
    assert key_state(castgate, key["id"]) == "INACTIVE"


def test_duplicate_publisher_refused_while_first_streams(castgate):
    key = new_key(castgate)
    first = ffmpeg_publish(f"{castgate.rtmp_base}/{key['streamKey']}", seconds=30)
    try:
        wait_until(lambda: key_state(castgate, key["id"]) == "ACTIVE", timeout=15, what="first publisher ACTIVE")
        second = ffmpeg_publish(f"{castgate.rtmp_base}/{key['streamKey']}", seconds=10)
        assert second.wait(timeout=15) != 0
        assert first.poll() is None, "the first publisher must keep streaming"
        assert "key busy" in castgate.log_text()
    finally:
        stop(first)


def test_garbage_bytes_do_not_disturb_a_live_stream(castgate):
    key = new_key(castgate)
    pub = ffmpeg_publish(f"{castgate.rtmp_base}/{key['streamKey']}", seconds=30)
    try:
        wait_until(lambda: key_state(castgate, key["id"]) == "ACTIVE", timeout=15, what="ACTIVE")
        for payload in (b"\x03" + os.urandom(3000), b"GET / HTTP/1.1\r\n\r\n", b"\x06" * 1537, b""):
            s = socket.create_connection(("127.0.0.1", castgate.rtmp_port), timeout=5)
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(12)
            try:
                while s.recv(65536):
                    pass
            except (ConnectionResetError, socket.timeout):
                pass
            s.close()
        assert pub.poll() is None
        before = castgate.get(f"/hls/keys/{key['id']}/media.m3u8").body.decode()
        msn = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", before).group(1))
        wait_until(lambda: castgate.get(f"/hls/keys/{key['id']}/media.m3u8").body.decode() != before,
                   timeout=5, what="playlist keeps advancing")
        assert msn >= 0
        assert castgate.get("/healthz").status == 200
    finally:
        stop(pub)
