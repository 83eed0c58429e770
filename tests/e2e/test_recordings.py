"""Recordings API, signed downloads, the sweeper CLI and restart recovery
(SPEC API-7, REC-2..REC-5, OPS-6) against the real binary and PostgreSQL.

Live recording from RTMP is wired by the gateway; here rows are inserted with
psql and files placed where the recorder would have put them. Times are set
in SQL (a room that ended 1h36m30s ago, 7 hours ago...), never waited for.
"""
import hashlib
import hmac
import os
import re
import subprocess
import time
import urllib.parse

import pytest

from helpers import http, run_cli, wait_until

SECRET = "e2e-download-secret-0123456789abcdef0123456789"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def psql(sql):
    r = subprocess.run(["psql", os.environ["DATABASE_URL"], "-q", "-v", "ON_ERROR_STOP=1", "-tAc", sql],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A 2 s faststart MP4 (a READY file) and a 3 s fragmented one (left by a crash)."""
    d = tmp_path_factory.mktemp("media")
    ready, frag = str(d / "ready.mp4"), str(d / "frag.mp4")
    src = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i",
           "sine=frequency=440:sample_rate=44100", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
           "-c:a", "aac", "-ac", "2"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *src, "-t", "2", "-movflags", "faststart", ready],
                   check=True, timeout=60)
    subprocess.run(["ffmpeg", "-v", "error", "-y", *src, "-t", "3", "-movflags",
                    "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4", frag], check=True, timeout=60)
    return {"ready": ready, "frag": frag}


def make_room(app_id, state="ENDED", ended_ago="1 hour", recording=True):
    member = psql(f"INSERT INTO members (app_id, app_user_id) VALUES ({app_id}, 'rec-{time.monotonic_ns()}') "
                  "RETURNING id")
    started = "NULL" if state == "SCHEDULED" else "now() - interval '3 hours'"
    ended = f"now() - interval '{ended_ago}'" if state in ("ENDED", "ARCHIVED") else "NULL"
    return int(psql("INSERT INTO video_rooms (app_id, member_id, type, scheduled_at, video_room_state, "
                    f"started_at, ended_at, recording) VALUES ({app_id}, {member}, 'BROADCAST_RTMP', now(), "
                    f"'{state}', {started}, {ended}, {'true' if recording else 'false'}) RETURNING id"))


def add_recording(cg, app_id, room_id, status="READY", src=None, node="e2e-node"):
    rid = int(psql("SELECT nextval(pg_get_serial_sequence('recordings', 'id'))"))
    rel = f"recordings/{app_id}/{room_id}/{rid}.mp4"
    name = f"room{room_id}-20250101T101500Z-{rid}.mp4"
    size = 0
    if src:
        path = os.path.join(cg.data_dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(src, "rb") as f, open(path, "wb") as g:
            data = f.read()
            g.write(data)
        size = len(data)
    ended = "NULL" if status == "RECORDING" else "now() - interval '2 hours'"
    reason = "'write x: No space left on device'" if status == "FAILED" else "NULL"
    psql("INSERT INTO recordings (id, app_id, video_room_id, node_id, status, failure_reason, filename, path, "
         f"size_bytes, duration_ms, started_at, ended_at) VALUES ({rid}, {app_id}, {room_id}, '{node}', "
         f"'{status}', {reason}, '{name}', '{rel}', {size}, 2000, now() - interval '3 hours', {ended})")
    return rid, name, rel


def sign(rid, name, expires, secret=SECRET):
    msg = f"/downloads/recordings/{rid}/{name}\n{expires}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def signed_path(rid, name, expires, secret=SECRET):
    return f"/downloads/recordings/{rid}/{name}?expires={expires}&sig={sign(rid, name, expires, secret)}"


@pytest.fixture
def cg(castgate_factory):
    c = castgate_factory(extra_env={"CASTGATE_TOKEN_SECRET": SECRET})
    c.create_app("e2e-recordings")
    return c


def list_recordings(cg, room_id, app=None):
    return cg.api("GET", f"/v2/apps/me/video-rooms/{room_id}/recordings", app=app)


def test_list_shows_files_signed_urls_and_expiry(cg, media):
    app = cg.app["appId"]
    room = make_room(app, "ENDED", ended_ago="1 hour 36 minutes 30 seconds")
    ready, name, _ = add_recording(cg, app, room, "READY", media["ready"])
    proc, _, _ = add_recording(cg, app, room, "PROCESSING", media["frag"])
    failed, _, _ = add_recording(cg, app, room, "FAILED")
    r = list_recordings(cg, room)
    assert r.status == 200, r.body
    body = r.json()
    assert body["success"] is True
    data = body["data"]
    assert data["roomId"] == room
    assert data["expiresIn"] == "4h 23m"  # 6 h TTL, ended 1h36m30s ago
    assert ISO.match(data["expiresAt"])
    files = {f["id"]: f for f in data["files"]}
    assert [f["id"] for f in data["files"]] == [ready, proc, failed]
    f = files[ready]
    assert f["filename"] == name and f["status"] == "READY"
    assert f["size"] == os.path.getsize(media["ready"]) and f["durationMs"] == 2000
    assert ISO.match(f["startedAt"]) and ISO.match(f["endedAt"])
    url = urllib.parse.urlparse(f["downloadUrl"])
    assert f["downloadUrl"].startswith(cg.http_base + f"/downloads/recordings/{ready}/{name}?")
    q = urllib.parse.parse_qs(url.query)
    # the URL lives as long as the recording: room endedAt + TTL
    assert abs(int(q["expires"][0]) - (time.time() + 4 * 3600 + 23 * 60 + 30)) < 60
    assert q["sig"][0] == sign(ready, name, q["expires"][0])
    assert files[proc]["downloadUrl"] is None and files[proc]["status"] == "PROCESSING"
    assert files[failed]["downloadUrl"] is None and files[failed]["failureReason"].startswith("write x")


def test_live_room_has_no_expiry_yet(cg, media):
    app = cg.app["appId"]
    room = make_room(app, "LIVE")
    rid, _, _ = add_recording(cg, app, room, "READY", media["ready"])
    data = list_recordings(cg, room).json()["data"]
    assert data["expiresAt"] is None and data["expiresIn"] is None
    # the download link of a file of a live room is good for recording_ttl_sec from now
    q = urllib.parse.parse_qs(urllib.parse.urlparse(data["files"][0]["downloadUrl"]).query)
    assert abs(int(q["expires"][0]) - (time.time() + 21600)) < 60
    assert http("GET", data["files"][0]["downloadUrl"]).status == 200


def test_list_needs_credentials_and_hides_other_apps(cg):
    room = make_room(cg.app["appId"], "ENDED")
    r = list_recordings(cg, room, app=False)
    assert r.status == 401 and r.json()["errorCode"] == "UNAUTHORIZED"
    wrong = dict(cg.app, appApiSecret="x" * 40)
    assert list_recordings(cg, room, app=wrong).status == 401
    other = run_cli("app", "create", "e2e-other", "--json", env=cg.env)
    import json
    other = json.loads(other.stdout)
    r = list_recordings(cg, room, app=other)
    assert r.status == 404 and r.json()["errorCode"] == "VIDEO_ROOM_NOT_FOUND"
    assert list_recordings(cg, "abc").status == 404
    assert list_recordings(cg, 999999999).status == 404
    r = list_recordings(cg, room)
    assert r.status == 200 and r.json()["data"]["files"] == []


def test_download_whole_range_head_and_disposition(cg, media):
    app = cg.app["appId"]
    room = make_room(app, "ENDED")
    rid, name, _ = add_recording(cg, app, room, "READY", media["ready"])
    content = open(media["ready"], "rb").read()
    size = len(content)
    url = list_recordings(cg, room).json()["data"]["files"][0]["downloadUrl"]

    r = http("GET", url)
    assert r.status == 200
    assert r.body == content
    assert r.headers["Content-Type"] == "video/mp4"
    assert r.headers["Content-Disposition"] == f'attachment; filename="{name}"'
    assert r.headers["Accept-Ranges"] == "bytes"
    assert int(r.headers["Content-Length"]) == size

    cases = [("bytes=10-99", 206, 10, 99), ("bytes=100-", 206, 100, size - 1), ("bytes=-50", 206, size - 50, size - 1),
             (f"bytes=0-{size + 1000}", 206, 0, size - 1), ("bytes=0-0", 206, 0, 0)]
    for rng, status, first, last in cases:
        r = http("GET", url, headers={"Range": rng})
        assert r.status == status, rng
        assert r.headers["Content-Range"] == f"bytes {first}-{last}/{size}", rng
        assert r.body == content[first:last + 1], rng
    for rng in (f"bytes={size}-", "bytes=-0"):
        r = http("GET", url, headers={"Range": rng})
        assert r.status == 416, rng
        assert r.headers["Content-Range"] == f"bytes */{size}"
    # several ranges, or nonsense: the whole file
    for rng in ("bytes=0-1,5-9", "lines=1-2", "bytes=9-2"):
        r = http("GET", url, headers={"Range": rng})
        assert r.status == 200 and r.body == content, rng

    r = http("HEAD", url)
    assert r.status == 200 and r.body == b""
    assert int(r.headers["Content-Length"]) == size
    assert r.headers["Content-Disposition"] == f'attachment; filename="{name}"'


def test_tampered_or_expired_download_urls_are_refused(cg, media):
    app = cg.app["appId"]
    room = make_room(app, "ENDED")
    rid, name, _ = add_recording(cg, app, room, "READY", media["ready"])
    future = int(time.time()) + 3600
    good = signed_path(rid, name, future)
    assert cg.get(good).status == 200
    sig = sign(rid, name, future)
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    tampered = [
        f"/downloads/recordings/{rid}/{name}?expires={future}&sig={flipped}",
        f"/downloads/recordings/{rid}/{name}?expires={future + 1}&sig={sig}",
        f"/downloads/recordings/{rid}/{name}?expires={future}",
        f"/downloads/recordings/{rid}/{name}",
        signed_path(rid, name, future, secret="some-other-secret-of-enough-length-000"),
    ]
    for path in tampered:
        r = cg.get(path)
        assert r.status == 403, path
        assert r.json()["errorCode"] == "INVALID_SIGNATURE", path
    # a valid signature over another id/name does not open this file
    other = add_recording(cg, app, room, "READY", media["ready"])
    r = cg.get(f"/downloads/recordings/{rid}/{name}?expires={future}&sig={sign(other[0], other[1], future)}")
    assert r.status == 403
    # a correctly signed link whose time is up
    r = cg.get(signed_path(rid, name, int(time.time()) - 5))
    assert r.status == 410 and r.json()["errorCode"] == "DOWNLOAD_URL_EXPIRED"
    # signed, but not a file we have / a name that is not its name
    assert cg.get(signed_path(rid, "other.mp4", future)).status == 404
    assert cg.get(signed_path(987654321012, name, future)).status == 404
    # no path from the request is ever opened
    r = cg.get(f"/downloads/recordings/{rid}/..%2F..%2Fetc%2Fpasswd?expires={future}&sig={sig}")
    assert r.status in (400, 404)


def test_processing_recording_is_not_ready(cg, media):
    app = cg.app["appId"]
    room = make_room(app, "LIVE")
    rid, name, _ = add_recording(cg, app, room, "PROCESSING", media["frag"])
    r = cg.get(signed_path(rid, name, int(time.time()) + 60))
    assert r.status == 409 and r.json()["errorCode"] == "RECORDING_NOT_READY"


def test_sweep_once_expires_recordings_archives_room_then_download_is_410(cg, media):
    app = cg.app["appId"]
    room = make_room(app, "ENDED", ended_ago="7 hours")  # 6 h TTL: expired an hour ago
    rid, name, rel = add_recording(cg, app, room, "READY", media["ready"])
    hls = os.path.join(cg.data_dir, "hls", "rooms", str(room), "1")
    os.makedirs(hls)
    open(os.path.join(hls, "0.m4s"), "wb").write(b"x")
    r = run_cli("sweep", "--once", env=cg.env)
    assert r.returncode == 0, r.stderr
    m = re.search(r"recordings_expired=(\d+) rooms_archived=(\d+)", r.stdout)
    assert m and int(m.group(1)) >= 1 and int(m.group(2)) >= 1, r.stdout
    assert not os.path.exists(os.path.join(cg.data_dir, rel))
    assert not os.path.exists(os.path.join(cg.data_dir, "hls", "rooms", str(room)))
    assert psql(f"SELECT status FROM recordings WHERE id = {rid}") == "EXPIRED"
    assert psql(f"SELECT video_room_state FROM video_rooms WHERE id = {room}") == "ARCHIVED"
    r = cg.get(signed_path(rid, name, int(time.time()) + 600))
    assert r.status == 410 and r.json()["errorCode"] == "RECORDING_EXPIRED"
    # once archived the room is still listed, its file marked EXPIRED without a link
    f = list_recordings(cg, room).json()["data"]["files"][0]
    assert f["status"] == "EXPIRED" and f["downloadUrl"] is None
    # running it again changes nothing of ours
    r = run_cli("sweep", "--once", env=cg.env)
    assert r.returncode == 0
    assert psql(f"SELECT count(*) FROM events WHERE video_room_id = {room} AND to_state = 'ARCHIVED'") == "1"


def test_sweep_cli_help_and_bad_flag():
    r = run_cli("sweep", "--help")
    assert r.returncode == 0 and "usage" in r.stdout.lower() and "--once" in r.stdout
    r = run_cli("sweep", "--twice")
    assert r.returncode == 2 and "--twice" in r.stderr


def test_recording_start_stop(cg):
    app = cg.app["appId"]
    live = make_room(app, "LIVE")
    psql(f"UPDATE video_rooms SET is_recording = false WHERE id = {live}")
    r = cg.api("POST", f"/v2/apps/me/video-rooms/{live}/recording/start")
    assert r.status == 200, r.body
    assert r.json() == {"success": True, "data": {"isRecording": True}}
    assert psql(f"SELECT is_recording FROM video_rooms WHERE id = {live}") == "t"
    assert list_recordings(cg, live).json()["data"]["isRecording"] is True
    r = cg.api("POST", f"/v2/apps/me/video-rooms/{live}/recording/stop")
    assert r.status == 200 and r.json()["data"]["isRecording"] is False
    assert psql(f"SELECT is_recording FROM video_rooms WHERE id = {live}") == "f"

    sched = make_room(app, "SCHEDULED")
    r = cg.api("POST", f"/v2/apps/me/video-rooms/{sched}/recording/start")
    assert r.status == 400 and r.json()["errorCode"] == "VIDEO_ROOM_STATE_NOT_LIVE"
    off = make_room(app, "LIVE", recording=False)
    r = cg.api("POST", f"/v2/apps/me/video-rooms/{off}/recording/start")
    assert r.status == 400 and r.json()["errorCode"] == "RECORDING_DISABLED"
    r = cg.api("POST", "/v2/apps/me/video-rooms/999999999/recording/stop")
    assert r.status == 404 and r.json()["errorCode"] == "VIDEO_ROOM_NOT_FOUND"
    r = cg.api("POST", f"/v2/apps/me/video-rooms/{live}/recording/start", app=False)
    assert r.status == 401
    r = http("GET", cg.http_base + f"/v2/apps/me/video-rooms/{live}/recording/start", headers=cg.auth_header())
    assert r.status == 405


def test_download_secret_is_shared_through_the_database(castgate_factory, media, tmp_path):
    """Without token_secret, every node signs with the same per-database secret."""
    shared = str(tmp_path / "shared-data")
    os.makedirs(shared)
    env = {"CASTGATE_TOKEN_SECRET": "", "CASTGATE_DATA_DIR": shared}
    a = castgate_factory(extra_env=env)
    b = castgate_factory(extra_env=env)
    a.data_dir = b.data_dir = shared
    a.create_app("e2e-shared-secret")
    room = make_room(a.app["appId"], "ENDED")
    rid, name, _ = add_recording(a, a.app["appId"], room, "READY", media["ready"])
    url = list_recordings(a, room).json()["data"]["files"][0]["downloadUrl"]
    path = url[len(a.http_base):]
    assert a.get(path).status == 200
    assert b.get(path).status == 200  # a link made by node a works on node b
    assert psql("SELECT count(*) FROM cluster_secrets WHERE name = 'download_url'") == "1"
    assert b.get(path.replace("sig=", "sig=0")[:-1]).status == 403


def test_restart_finalizes_recordings_left_by_this_node(castgate_factory, media):
    """OPS-6: RECORDING/PROCESSING rows of this node are finalized at start-up."""
    node = f"e2e-restart-{os.getpid()}-{time.monotonic_ns()}"
    cg = castgate_factory(extra_env={"CASTGATE_NODE_ID": node, "CASTGATE_TOKEN_SECRET": SECRET}, start=False)
    cg.create_app("e2e-restart")
    app = cg.app["appId"]
    room = make_room(app, "LIVE")
    rid, name, rel = add_recording(cg, app, room, "RECORDING", media["frag"], node=node)
    gone, _, _ = add_recording(cg, app, room, "PROCESSING", None, node=node)
    other, _, other_rel = add_recording(cg, app, room, "RECORDING", media["frag"], node="someone-else")
    cg.start()
    wait_until(lambda: psql(f"SELECT status FROM recordings WHERE id = {rid}") == "READY", timeout=30,
               what="recovered recording READY")
    wait_until(lambda: psql(f"SELECT status FROM recordings WHERE id = {gone}") == "FAILED", timeout=30,
               what="missing file FAILED")
    assert psql(f"SELECT status FROM recordings WHERE id = {other}") == "RECORDING"
    data = open(os.path.join(cg.data_dir, rel), "rb").read()
    assert data.find(b"moov") < data.find(b"mdat")  # faststart
    assert b"moof" not in data
    assert int(psql(f"SELECT size_bytes FROM recordings WHERE id = {rid}")) == len(data)
    dur = int(psql(f"SELECT duration_ms FROM recordings WHERE id = {rid}"))
    assert 2900 <= dur <= 3200
    r = cg.get(signed_path(rid, name, int(time.time()) + 60))
    assert r.status == 200 and r.body == data
    assert os.path.exists(os.path.join(cg.data_dir, other_rel))
