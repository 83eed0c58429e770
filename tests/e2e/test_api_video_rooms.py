"""SPEC API-4 / API-5 and §2.2: video rooms and the broadcast flow over HTTP."""
from apiutil import (ISO_US, assert_error, member_key, new_member, new_room, psql, psql1,
                     simulate_preview, simulate_publisher_gone)

SEED_FIELDS = ["id", "state", "videoRoomState", "type", "format", "app", "member", "creatorType",
               "creatorId", "accessLevel", "title", "description", "scheduledAt", "streamKey",
               "liveUrl", "chat", "stats", "createdAt", "lastModifiedAt", "createdBy", "lastModifiedBy"]
EXTRA_FIELDS = ["externalId", "startedAt", "endedAt", "settings", "metadata"]


def test_create_room_has_the_seed_shape(castgate):
    app = castgate.create_app("Foo App")
    m = new_member(castgate, "1", "foobar")
    room = new_room(castgate, "1")
    for f in SEED_FIELDS + EXTRA_FIELDS:
        assert f in room, f
    assert room["state"] == "ACTIVE" and room["videoRoomState"] == "SCHEDULED"
    assert room["type"] == "BROADCAST_RTMP" and room["format"] == "CMAF"
    assert room["app"] == {"id": app["appId"], "state": "ACTIVE", "name": "Foo App"}
    assert room["member"]["id"] == m["id"] and room["member"]["appUserId"] == "1"
    assert room["creatorType"] == "APP" and room["creatorId"] == app["appId"]
    assert room["accessLevel"] == "PUBLIC" and room["title"] == "Foo Video Room"
    assert room["description"] == "Foo Video Room Description"
    assert room["scheduledAt"] == "2022-10-19T23:59:59.999000Z"
    assert room["streamKey"] is None and room["liveUrl"] is None
    assert room["chat"]["videoKey"] == str(room["id"]) and room["chat"]["channelKey"]
    assert room["stats"] == {"totalMemberWhitelistCount": 0}
    assert room["createdBy"] == {"id": app["appId"], "state": "ACTIVE", "username": "Foo App", "email": None}
    assert room["lastModifiedBy"] == room["createdBy"]
    assert ISO_US.match(room["createdAt"]) and ISO_US.match(room["lastModifiedAt"])
    assert room["startedAt"] is None and room["endedAt"] is None and room["externalId"] is None
    assert room["settings"] == {"recording": True, "autoStartRecording": True, "autoStart": False,
                                "autoEndAfterSec": None, "maxDurationSec": None, "maxParticipants": None,
                                "dvrWindowSec": None}
    assert room["metadata"] == {}
    got = castgate.api("GET", f"/v2/apps/me/video-rooms/{room['id']}").json()
    assert got == room
    assert castgate.api("GET", f"/v2/apps/me/video-rooms/{room['id']}").json()["chat"] == room["chat"]


def test_create_errors_in_seed_order(castgate):
    castgate.create_app("rooms-errors")
    new_member(castgate, "1")
    url = "/v2/apps/me/video-rooms"
    assert_error(castgate.api("POST", url, {"type": "BROADCAST_RTMP"}), 400, "EMPTY_VIDEO_ROOM_APP_USER_ID")
    assert_error(castgate.api("POST", url, {"appUserId": ""}), 400, "EMPTY_VIDEO_ROOM_APP_USER_ID")
    assert_error(castgate.api("POST", url, {"appUserId": "1"}), 400, "EMPTY_VIDEO_ROOM_TYPE")
    assert_error(castgate.api("POST", url, {"appUserId": "1", "type": "BROADCAST_RTMP"}), 400,
                 "EMPTY_VIDEO_ROOM_SCHEDULED_AT")
    assert_error(castgate.api("POST", url, {"appUserId": "1", "type": "BROADCAST_RTMP", "scheduledAt": "soon"}),
                 400, "INVALID_PARAMETER", "scheduledAt")
    assert_error(castgate.api("POST", url, {"appUserId": "1", "type": "TELEPATHY"}), 400,
                 "INVALID_PARAMETER", "type")
    assert_error(castgate.api("POST", url, {"appUserId": "nobody", "type": "BROADCAST_RTMP",
                                            "scheduledAt": "2030-01-01T00:00:00Z"}), 404, "MEMBER_NOT_FOUND")
    deep = {"appUserId": "1", "type": "WEBINAR", "metadata": {"a": {"b": {"c": 1}}}}
    assert_error(castgate.api("POST", url, deep), 400, "INVALID_PARAMETER", "metadata")
    bad_setting = {"appUserId": "1", "type": "WEBINAR", "settings": {"maxDurationSec": "1h"}}
    assert_error(castgate.api("POST", url, bad_setting), 400, "INVALID_PARAMETER", "settings.maxDurationSec")
    # other types may be stored without scheduledAt
    r = castgate.api("POST", url, {"appUserId": "1", "type": "WEBINAR"})
    assert r.status == 201 and r.json()["scheduledAt"] is None


def test_scheduled_at_with_offset_is_stored_in_utc(castgate):
    castgate.create_app("rooms-time")
    new_member(castgate, "1")
    room = new_room(castgate, "1", scheduledAt="2022-10-20T08:59:59.5+09:00")
    assert room["scheduledAt"] == "2022-10-19T23:59:59.500000Z"


def test_external_id_unique_per_app(castgate):
    a = castgate.create_app("ext-a")
    new_member(castgate, "1", app=a)
    room = new_room(castgate, "1", app=a, externalId="math-101")
    assert room["externalId"] == "math-101"
    r = castgate.api("POST", "/v2/apps/me/video-rooms",
                     {"appUserId": "1", "type": "WEBINAR", "externalId": "math-101"}, app=a)
    assert_error(r, 409, "VIDEO_ROOM_ALREADY_EXISTS")
    other = new_room(castgate, "1", app=a, externalId="math-102")
    assert_error(castgate.api("PATCH", f"/v2/apps/me/video-rooms/{other['id']}", {"externalId": "math-101"}, app=a),
                 409, "VIDEO_ROOM_ALREADY_EXISTS")
    b = castgate.create_app("ext-b")
    new_member(castgate, "1", app=b)
    assert new_room(castgate, "1", app=b, externalId="math-101")["externalId"] == "math-101"
    # a deleted room frees its externalId
    assert castgate.api("DELETE", f"/v2/apps/me/video-rooms/{room['id']}", app=a).status == 204
    assert new_room(castgate, "1", app=a, externalId="math-101")["externalId"] == "math-101"


def test_get_patch_delete_and_not_found(castgate):
    castgate.create_app("rooms-crud")
    new_member(castgate, "1")
    room = new_room(castgate, "1", settings={"recording": False, "autoEndAfterSec": 60},
                    metadata={"course": "math", "tags": ["a", "b"], "ids": {"crm": 456}})
    rid = room["id"]
    assert room["settings"]["recording"] is False and room["settings"]["autoEndAfterSec"] == 60
    r = castgate.api("PATCH", f"/v2/apps/me/video-rooms/{rid}",
                     {"title": "New", "settings": {"maxDurationSec": 7200, "autoStart": True},
                      "metadata": {"only": "this"}, "type": "WEBINAR", "ignored": True})
    assert r.status == 200, r.body
    p = r.json()
    assert p["title"] == "New" and p["description"] == room["description"] and p["type"] == "BROADCAST_RTMP"
    assert p["settings"] == {"recording": False, "autoStartRecording": True, "autoStart": True,
                             "autoEndAfterSec": 60, "maxDurationSec": 7200, "maxParticipants": None,
                             "dvrWindowSec": None}
    assert p["metadata"] == {"only": "this"}
    p = castgate.api("PATCH", f"/v2/apps/me/video-rooms/{rid}",
                     {"description": None, "settings": {"autoEndAfterSec": None}, "metadata": None}).json()
    assert p["description"] is None and p["settings"]["autoEndAfterSec"] is None
    assert p["settings"]["maxDurationSec"] == 7200 and p["metadata"] == {}
    assert_error(castgate.api("PATCH", f"/v2/apps/me/video-rooms/{rid}", {"scheduledAt": None}), 400,
                 "INVALID_PARAMETER", "scheduledAt")
    assert_error(castgate.api("PATCH", f"/v2/apps/me/video-rooms/{rid}", {"settings": {"recording": None}}),
                 400, "INVALID_PARAMETER", "settings.recording")
    assert_error(castgate.api("PATCH", f"/v2/apps/me/video-rooms/{rid}", {"metadata": {"x": [[1]]}}), 400,
                 "INVALID_PARAMETER", "metadata")
    for bad in ("abc", "0", "-1", "99999999999999999999", str(rid + 1000000), "1.5"):
        assert_error(castgate.api("GET", f"/v2/apps/me/video-rooms/{bad}"), 404, "VIDEO_ROOM_NOT_FOUND")
        assert_error(castgate.api("PATCH", f"/v2/apps/me/video-rooms/{bad}", {"title": "x"}), 404,
                     "VIDEO_ROOM_NOT_FOUND")
        assert_error(castgate.api("DELETE", f"/v2/apps/me/video-rooms/{bad}"), 404, "VIDEO_ROOM_NOT_FOUND")
    r = castgate.api("DELETE", f"/v2/apps/me/video-rooms/{rid}")
    assert r.status == 204 and r.body == b""
    assert_error(castgate.api("GET", f"/v2/apps/me/video-rooms/{rid}"), 404, "VIDEO_ROOM_NOT_FOUND")
    assert psql1(f"SELECT state FROM video_rooms WHERE id = {rid}") == "DELETED"
    assert_error(castgate.api("DELETE", f"/v2/apps/me/video-rooms/{rid}"), 404, "VIDEO_ROOM_NOT_FOUND")


def test_other_apps_rooms_are_404(castgate):
    a = castgate.create_app("iso-a")
    new_member(castgate, "1", app=a)
    room = new_room(castgate, "1", app=a)
    b = castgate.create_app("iso-b")
    base = f"/v2/apps/me/video-rooms/{room['id']}"
    assert_error(castgate.api("GET", base, app=b), 404, "VIDEO_ROOM_NOT_FOUND")
    assert_error(castgate.api("PATCH", base, {"title": "mine"}, app=b), 404, "VIDEO_ROOM_NOT_FOUND")
    assert_error(castgate.api("DELETE", base, app=b), 404, "VIDEO_ROOM_NOT_FOUND")
    assert_error(castgate.api("POST", base + "/rtmp-broadcast/state/live", app=b), 404, "VIDEO_ROOM_NOT_FOUND")
    assert_error(castgate.api("POST", base + "/rtmp-broadcast/state/ended", app=b), 404, "VIDEO_ROOM_NOT_FOUND")
    assert castgate.api("GET", "/v2/apps/me/video-rooms", app=b).json()["totalElements"] == 0
    assert castgate.api("GET", base, app=a).json()["title"] == "Foo Video Room"


def test_list_filters_keyword_and_paging(castgate):
    castgate.create_app("rooms-list")
    m1 = new_member(castgate, "1")
    new_member(castgate, "2")
    new_room(castgate, "1", title="Calculus 100%_off")
    new_room(castgate, "1", title="Calculus II", accessLevel="PRIVATE")
    new_room(castgate, "2", title="Biology")
    r = castgate.api("POST", "/v2/apps/me/video-rooms", {"appUserId": "2", "type": "WEBINAR", "title": "Web"})
    assert r.status == 201
    get = lambda qs: castgate.api("GET", "/v2/apps/me/video-rooms?" + qs)  # noqa: E731
    assert get("keyword=calc").json()["totalElements"] == 2
    assert [x["title"] for x in get("keyword=100%25_").json()["content"]] == ["Calculus 100%_off"]
    assert get("keyword=%25").json()["totalElements"] == 1  # a literal %, not a wildcard
    assert get(f"memberId={m1['id']}").json()["totalElements"] == 2
    assert get("type=WEBINAR").json()["content"][0]["title"] == "Web"
    assert get("accessLevel=PRIVATE").json()["content"][0]["title"] == "Calculus II"
    assert get("videoRoomState=SCHEDULED").json()["totalElements"] == 4
    assert get("videoRoomState=LIVE").json()["totalElements"] == 0
    p = get("sortBy=CREATED_AT_ASC&pageSize=3&page=1").json()
    assert [x["title"] for x in p["content"]] == ["Web"] and p["totalPages"] == 2 and p["last"] is True
    assert [x["title"] for x in get("sortBy=CREATED_AT_DESC&pageSize=1").json()["content"]] == ["Web"]
    assert get("sortBy=LAST_MODIFIED_AT_DESC").status == 200
    for qs, field in (("sortBy=APP_USER_ID_ASC", "sortBy"), ("videoRoomState=PAUSED", "videoRoomState"),
                      ("type=RADIO", "type"), ("accessLevel=SECRET", "accessLevel"),
                      ("memberId=abc", "memberId"), ("pageSize=1000", "pageSize")):
        assert_error(get(qs), 400, "INVALID_PARAMETER", field)


def events(room_id, actor):
    return psql(f"SELECT from_state, to_state FROM events WHERE video_room_id = {room_id}"
                f" AND type = 'video_room_state' AND actor = '{actor}' ORDER BY id")


def test_broadcast_flow_start_and_end(castgate):
    app = castgate.create_app("flow")
    actor = f"api:app:{app['appId']}"
    new_member(castgate, "1")
    key = member_key(castgate, "1")
    room = new_room(castgate, "1")
    rid, kid = room["id"], key["id"]
    live = f"/v2/apps/me/video-rooms/{rid}/rtmp-broadcast/state/live"
    ended = f"/v2/apps/me/video-rooms/{rid}/rtmp-broadcast/state/ended"
    assert_error(castgate.api("POST", live), 400, "STREAM_KEY_STATE_NOT_ACTIVE")
    assert_error(castgate.api("POST", ended), 400, "VIDEO_ROOM_STATE_NOT_LIVE_INACTIVE")
    simulate_preview(kid)
    r = castgate.api("POST", live)
    assert r.status == 200, r.body
    body = r.json()
    assert body["videoRoomState"] == "LIVE"
    assert body["streamKey"] == {"id": kid, "state": "ACTIVE", "streamKeyState": "ACTIVE_LIVE"}
    assert body["liveUrl"] == f"{castgate.http_base}/hls/rooms/{rid}/index.m3u8"
    assert ISO_US.match(body["startedAt"]) and body["endedAt"] is None
    assert body["isRecording"] is True
    assert_error(castgate.api("POST", live), 400, "VIDEO_ROOM_STATE_NOT_SCHEDULED")
    assert_error(castgate.api("POST", ended), 400, "VIDEO_ROOM_STATE_NOT_LIVE_INACTIVE")
    assert_error(castgate.api("DELETE", f"/v2/apps/me/video-rooms/{rid}"), 400, "VIDEO_ROOM_IS_LIVE")
    listed = castgate.api("GET", "/v2/apps/me/video-rooms?videoRoomState=LIVE").json()
    assert [x["id"] for x in listed["content"]] == [rid]
    assert castgate.api("GET", f"/v2/apps/me/stream-keys?videoRoomId={rid}").json()["content"][0]["id"] == kid

    simulate_publisher_gone(kid, rid)
    assert castgate.api("GET", f"/v2/apps/me/video-rooms/{rid}").json()["liveUrl"].endswith("/index.m3u8")
    assert_error(castgate.api("DELETE", f"/v2/apps/me/video-rooms/{rid}"), 400, "VIDEO_ROOM_IS_LIVE")
    r = castgate.api("POST", ended)
    assert r.status == 200, r.body
    body = r.json()
    assert body["videoRoomState"] == "ENDED" and body["streamKey"] is None and body["liveUrl"] is None
    assert ISO_US.match(body["endedAt"]) and body["isRecording"] is False
    k = member_key(castgate, "1")
    assert k["streamKeyState"] == "INACTIVE" and k["videoRoom"] is None
    assert_error(castgate.api("POST", ended), 400, "VIDEO_ROOM_STATE_NOT_LIVE_INACTIVE")
    assert_error(castgate.api("POST", live), 400, "VIDEO_ROOM_STATE_NOT_SCHEDULED")
    # one event per API transition (creation included), with the caller as actor
    assert events(rid, actor) == [["", "SCHEDULED"], ["SCHEDULED", "LIVE"], ["LIVE_INACTIVE", "ENDED"]]
    assert psql1(f"SELECT count(*) FROM events WHERE video_room_id = {rid} AND type = 'class_ended'") == "1"
    assert castgate.api("DELETE", f"/v2/apps/me/video-rooms/{rid}").status == 204


def test_start_and_end_refusals(castgate):
    castgate.create_app("refusals")
    new_member(castgate, "1")
    key = member_key(castgate, "1")
    web = castgate.api("POST", "/v2/apps/me/video-rooms", {"appUserId": "1", "type": "WEBINAR"}).json()
    for action in ("live", "ended"):
        assert_error(castgate.api("POST", f"/v2/apps/me/video-rooms/{web['id']}/rtmp-broadcast/state/{action}"),
                     400, "VIDEO_ROOM_TYPE_NOT_BROADCAST_RTMP")
    # end while the publisher is reconnecting (key not INACTIVE_LIVE)
    room = new_room(castgate, "1")
    simulate_preview(key["id"])
    assert castgate.api("POST", f"/v2/apps/me/video-rooms/{room['id']}/rtmp-broadcast/state/live").status == 200
    simulate_publisher_gone(key["id"], room["id"])
    psql(f"UPDATE stream_keys SET stream_key_state = 'ACTIVE_LIVE_PREP' WHERE id = {key['id']}")
    assert_error(castgate.api("POST", f"/v2/apps/me/video-rooms/{room['id']}/rtmp-broadcast/state/ended"),
                 400, "STREAM_KEY_STATE_NOT_INACTIVE_LIVE")
    # a room whose key is gone
    psql(f"UPDATE stream_keys SET state = 'DELETED' WHERE id = {key['id']}")
    assert_error(castgate.api("POST", f"/v2/apps/me/video-rooms/{room['id']}/rtmp-broadcast/state/ended"),
                 404, "STREAM_KEY_NOT_FOUND")
    # start for a member whose key was deleted with the member
    new_member(castgate, "2")
    r2 = new_room(castgate, "2")
    assert castgate.api("DELETE", "/v2/apps/me/members/2").status == 204
    assert_error(castgate.api("POST", f"/v2/apps/me/video-rooms/{r2['id']}/rtmp-broadcast/state/live"),
                 404, "STREAM_KEY_NOT_FOUND")


def test_member_delete_ends_its_live_room(castgate):
    castgate.create_app("delete-live")
    new_member(castgate, "1")
    key = member_key(castgate, "1")
    room = new_room(castgate, "1")
    simulate_preview(key["id"])
    assert castgate.api("POST", f"/v2/apps/me/video-rooms/{room['id']}/rtmp-broadcast/state/live").status == 200
    assert castgate.api("DELETE", "/v2/apps/me/members/1").status == 204
    assert castgate.api("GET", f"/v2/apps/me/video-rooms/{room['id']}").json()["videoRoomState"] == "ENDED"
    assert psql1(f"SELECT state || '/' || stream_key_state FROM stream_keys WHERE id = {key['id']}") \
        == "DELETED/INACTIVE"
