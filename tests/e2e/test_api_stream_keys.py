"""SPEC API-3: stream keys — shape, lookups, reissue, force-terminate."""
from apiutil import (ISO_US, assert_error, member_key, new_member, new_room, psql, psql1,
                     simulate_preview)

KEY_FIELDS = ["id", "state", "streamKeyState", "app", "member", "videoRoom", "streamKey", "ingestUrl",
              "liveUrl", "profile", "error", "createdAt", "lastModifiedAt"]


def test_member_stream_key_shape(castgate):
    app = castgate.create_app("keys-app")
    m = new_member(castgate, "1", "foobar")
    k = member_key(castgate, "1")
    assert list(k.keys()) == KEY_FIELDS
    assert k["state"] == "ACTIVE" and k["streamKeyState"] == "INACTIVE"
    assert k["app"] == {"id": app["appId"], "state": "ACTIVE", "name": "keys-app"}
    assert k["member"] == {"id": m["id"], "state": "ACTIVE", "appUserId": "1", "appUserName": "foobar",
                           "appUserProfileImgUrl": "https://img.example.com/u.jpg"}
    assert k["videoRoom"] is None and k["liveUrl"] is None and k["error"] is None
    assert k["ingestUrl"] == castgate.rtmp_base
    assert k["profile"]["segmentDuration"] == 2.0 and k["profile"]["partDuration"] == 0.5
    assert k["profile"]["format"] == "CMAF"
    assert ISO_US.match(k["createdAt"]) and ISO_US.match(k["lastModifiedAt"])
    assert castgate.api("GET", f"/v2/apps/me/stream-keys/{k['id']}").json() == k
    assert_error(castgate.api("GET", "/v2/apps/me/members/nobody/stream-key"), 404, "MEMBER_NOT_FOUND")


def test_stream_key_ids_that_are_not_ours_are_404(castgate):
    castgate.create_app("keys-a")
    new_member(castgate, "x")
    kid = member_key(castgate, "x")["id"]
    castgate.create_app("keys-b")
    for path in (f"/v2/apps/me/stream-keys/{kid}", "/v2/apps/me/stream-keys/abc",
                 "/v2/apps/me/stream-keys/0", "/v2/apps/me/stream-keys/-3",
                 "/v2/apps/me/stream-keys/99999999999999999999", "/v2/apps/me/stream-keys/1e3"):
        assert_error(castgate.api("GET", path), 404, "STREAM_KEY_NOT_FOUND")
    for action in ("reissue", "force-terminate"):
        assert_error(castgate.api("POST", f"/v2/apps/me/stream-keys/{kid}/{action}"), 404,
                     "STREAM_KEY_NOT_FOUND")


def test_list_filters(castgate):
    castgate.create_app("keys-list")
    a = new_member(castgate, "a", "Alice")
    new_member(castgate, "b", "Bob")
    new_member(castgate, "c", "Bob")
    page = castgate.api("GET", "/v2/apps/me/stream-keys?sortBy=APP_USER_ID_ASC").json()
    assert [k["member"]["appUserId"] for k in page["content"]] == ["a", "b", "c"]
    assert page["totalElements"] == 3
    assert castgate.api("GET", f"/v2/apps/me/stream-keys?memberId={a['id']}").json()["totalElements"] == 1
    assert castgate.api("GET", "/v2/apps/me/stream-keys?appUserId=b").json()["content"][0]["member"][
        "appUserId"] == "b"
    assert castgate.api("GET", "/v2/apps/me/stream-keys?appUserName=Bob").json()["totalElements"] == 2
    assert castgate.api("GET", "/v2/apps/me/stream-keys?videoRoomId=1").json()["totalElements"] == 0
    assert_error(castgate.api("GET", "/v2/apps/me/stream-keys?memberId=x"), 400, "INVALID_PARAMETER", "memberId")
    assert_error(castgate.api("GET", "/v2/apps/me/stream-keys?videoRoomId=-1"), 400, "INVALID_PARAMETER",
                 "videoRoomId")


def test_reissue_only_when_inactive(castgate):
    castgate.create_app("keys-reissue")
    new_member(castgate, "r")
    k = member_key(castgate, "r")
    r = castgate.api("POST", f"/v2/apps/me/stream-keys/{k['id']}/reissue")
    assert r.status == 200, r.body
    k2 = r.json()
    assert k2["id"] == k["id"] and k2["streamKey"] != k["streamKey"]
    assert len(k2["streamKey"]) >= 32 and k2["streamKey"].isalnum()
    assert psql1(f"SELECT key_prefix FROM stream_keys WHERE id = {k['id']}") == k2["streamKey"][:12]
    simulate_preview(k["id"])
    assert_error(castgate.api("POST", f"/v2/apps/me/stream-keys/{k['id']}/reissue"), 400,
                 "STREAM_KEY_STATE_NOT_INACTIVE")
    # preview URL while ACTIVE
    live = member_key(castgate, "r")
    assert live["streamKeyState"] == "ACTIVE"
    assert live["liveUrl"] == f"{castgate.http_base}/hls/keys/{k['id']}/index.m3u8"


def test_force_terminate_ends_live_room_and_discards_its_recording(castgate):
    app = castgate.create_app("keys-force")
    new_member(castgate, "f")
    k = member_key(castgate, "f")
    room = new_room(castgate, "f")
    simulate_preview(k["id"])
    r = castgate.api("POST", f"/v2/apps/me/video-rooms/{room['id']}/rtmp-broadcast/state/live")
    assert r.status == 200, r.body
    live = member_key(castgate, "f")
    assert live["streamKeyState"] == "ACTIVE_LIVE"
    assert live["videoRoom"] == {"id": room["id"], "state": "ACTIVE", "videoRoomState": "LIVE"}
    assert live["liveUrl"] == f"{castgate.http_base}/hls/rooms/{room['id']}/index.m3u8"
    psql(f"INSERT INTO recordings (app_id, video_room_id, node_id, filename, path)"
         f" VALUES ({app['appId']}, {room['id']}, 'sim-node', 'r.mp4', 'r/r.mp4')")
    r = castgate.api("POST", f"/v2/apps/me/stream-keys/{k['id']}/force-terminate")
    assert r.status == 204 and r.body == b""
    after = member_key(castgate, "f")
    assert after["streamKeyState"] == "INACTIVE" and after["streamKey"] != k["streamKey"]
    assert after["videoRoom"] is None and after["liveUrl"] is None
    rm = castgate.api("GET", f"/v2/apps/me/video-rooms/{room['id']}").json()
    assert rm["videoRoomState"] == "ENDED" and rm["streamKey"] is None and rm["liveUrl"] is None
    assert rm["endedAt"] is not None
    assert psql(f"SELECT status, failure_reason FROM recordings WHERE video_room_id = {room['id']}") == [
        ["FAILED", "discarded by force-terminate"]]
    assert psql1(f"SELECT count(*) FROM events WHERE stream_key_id = {k['id']} AND type = 'stream_key_state'"
                 f" AND to_state = 'INACTIVE' AND actor = 'api:app:{app['appId']}'") == "1"
    # force-terminating an idle key still reissues it
    r = castgate.api("POST", f"/v2/apps/me/stream-keys/{k['id']}/force-terminate")
    assert r.status == 204
    assert member_key(castgate, "f")["streamKey"] != after["streamKey"]
