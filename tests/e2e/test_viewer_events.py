"""Events (SPEC API-10): the JSON list, the live text/event-stream (admin and
viewer feeds), and the stream's end when the viewer's token is revoked."""
import json

from helpers import http, wait_until
from viewer_helpers import SSE, add_event, make_room, make_token


def events_path(rid):
    return f"/v2/apps/me/video-rooms/{rid}/events"


def test_event_list_is_paged_filtered_and_ordered(castgate):
    rid = make_room(castgate)
    other = make_room(castgate)
    ids = [add_event(castgate, rid, "quality_changed" if i % 2 else "recording_started", {"n": i})
           for i in range(25)]
    add_event(castgate, other, "recording_started")
    assert castgate.api("GET", events_path(rid)).json()["size"] == 10  # the default page size
    page = castgate.api("GET", events_path(rid) + "?pageSize=20").json()
    assert page["totalElements"] == 25 and page["size"] == 20 and page["numberOfElements"] == 20
    assert [e["id"] for e in page["content"]] == ids[:20]  # oldest first
    e = page["content"][0]
    assert set(e) == {"id", "type", "roomId", "streamKeyId", "fromState", "toState", "actor", "data", "createdAt"}
    assert e["roomId"] == rid and e["type"] == "recording_started" and e["data"] == {"n": 0}
    assert e["createdAt"].endswith("Z") and len(e["createdAt"]) == 27
    page2 = castgate.api("GET", events_path(rid) + "?page=1&pageSize=20").json()
    assert [e["id"] for e in page2["content"]] == ids[20:] and page2["last"] is True
    after = castgate.api("GET", events_path(rid) + f"?afterId={ids[22]}").json()
    assert [e["id"] for e in after["content"]] == ids[23:]
    typed = castgate.api("GET", events_path(rid) + "?type=quality_changed&pageSize=100").json()
    assert [e["id"] for e in typed["content"]] == ids[1::2]
    desc = castgate.api("GET", events_path(rid) + "?sortBy=CREATED_AT_DESC&pageSize=3").json()
    assert [e["id"] for e in desc["content"]] == ids[::-1][:3]
    for bad in ("type=nope", "afterId=-1", "afterId=x", "sortBy=ID", "pageSize=500"):
        r = castgate.api("GET", events_path(rid) + "?" + bad)
        assert r.status == 400 and r.json()["errorCode"] == "INVALID_PARAMETER", bad
        assert r.json()["field"] == bad.split("=")[0], r.body
    assert http("GET", castgate.http_base + events_path(rid)).status == 401


def test_admin_stream_delivers_new_events_live(castgate):
    rid = make_room(castgate)
    other = make_room(castgate)
    old = add_event(castgate, rid, "recording_started")
    s = SSE(castgate.http_base, events_path(rid), headers={"Authorization": castgate.auth_header()["Authorization"]})
    try:
        assert s.status == 200
        assert s.headers["content-type"].startswith("text/event-stream")
        add_event(castgate, other, "recording_started")  # another room: not on this stream
        new = add_event(castgate, rid, "quality_changed", {"width": 1280})
        ev = s.next_event(timeout=5)
        assert ev["event"] == "quality_changed" and int(ev["id"]) == new and int(ev["id"]) > old
        body = json.loads(ev["data"])
        assert body["id"] == new and body["data"] == {"width": 1280} and body["actor"] == "test"
        ids = [add_event(castgate, rid, "recording_stopped") for _ in range(3)]
        got = [int(s.next_event(timeout=5)["id"]) for _ in range(3)]
        assert got == ids
    finally:
        s.close()


def test_stream_resumes_after_last_event_id(castgate):
    rid = make_room(castgate)
    ids = [add_event(castgate, rid, "recording_started") for _ in range(4)]
    s = SSE(castgate.http_base, events_path(rid),
            headers={"Authorization": castgate.auth_header()["Authorization"], "Last-Event-ID": str(ids[1])})
    try:
        assert [int(s.next_event(timeout=5)["id"]) for _ in range(2)] == ids[2:]
        live = add_event(castgate, rid, "recording_stopped")
        assert int(s.next_event(timeout=5)["id"]) == live
    finally:
        s.close()


def test_viewer_feed_follows_room_access_and_hides_personal_data(castgate):
    pub = make_room(castgate, access_level="PUBLIC")
    priv = make_room(castgate, access_level="PRIVATE")
    base = castgate.http_base
    add_event(castgate, pub, "participant_joined", {"uid": "someone", "sessionId": "abc", "participantCount": 3},
              actor="token:9")
    r = http("GET", f"{base}/v2/rooms/{pub}/events")
    assert r.status == 200
    e = r.json()["content"][0]
    assert "actor" not in e and e["data"] == {"participantCount": 3}
    r = http("GET", f"{base}/v2/rooms/{priv}/events")
    assert r.status == 401 and r.json()["errorCode"] == "TOKEN_REQUIRED"
    tok = make_token(castgate, priv)["token"]
    assert http("GET", f"{base}/v2/rooms/{priv}/events?token={tok}").status == 200
    assert http("GET", f"{base}/v2/rooms/{priv}/events", headers={"Authorization": "Bearer " + tok}).status == 200
    r = http("GET", f"{base}/v2/rooms/{pub}/events?token={tok}")  # a token for another room
    assert r.status == 403 and r.json()["errorCode"] == "TOKEN_ROOM_MISMATCH"
    assert http("GET", f"{base}/v2/rooms/424242/events").status == 404


def test_viewer_stream_ends_with_kicked_when_its_token_is_revoked(castgate):
    rid = make_room(castgate, access_level="PRIVATE")
    d = make_token(castgate, rid, uid="kid")
    s = SSE(castgate.http_base, f"/v2/rooms/{rid}/events?token={d['token']}")
    try:
        assert s.status == 200
        assert castgate.api("DELETE", f"/v2/apps/me/video-rooms/{rid}/tokens/{d['id']}").status == 204
        ev = s.next_event(timeout=5)
        assert ev["event"] == "participant_removed"
        assert json.loads(ev["data"])["data"]["tokenId"] == d["id"]
        ev = s.next_event(timeout=5)
        assert ev["event"] == "kicked" and json.loads(ev["data"])["reason"] == "TOKEN_REVOKED"
        assert s.next_event(timeout=5) is None  # the server closed the stream
    finally:
        s.close()


def test_stream_refusals_are_plain_json(castgate):
    rid = make_room(castgate, access_level="PRIVATE")
    s = SSE(castgate.http_base, f"/v2/rooms/{rid}/events")
    try:
        assert s.status == 401
        assert json.loads(s.body())["errorCode"] == "TOKEN_REQUIRED"
    finally:
        s.close()


def test_many_streams_opened_and_dropped_leave_the_server_healthy(castgate):
    rid = make_room(castgate)
    for _ in range(3):
        streams = [SSE(castgate.http_base, f"/v2/rooms/{rid}/events") for _ in range(20)]
        assert all(s.status == 200 for s in streams)
        for s in streams:
            s.close()
    # the poll keeps running for whoever is still listening
    s = SSE(castgate.http_base, f"/v2/rooms/{rid}/events")
    try:
        new = add_event(castgate, rid, "recording_started")
        assert int(s.next_event(timeout=5)["id"]) == new
    finally:
        s.close()
    wait_until(lambda: castgate.get("/healthz").status == 200, timeout=5, what="healthz")
