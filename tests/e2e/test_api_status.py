"""SPEC API-6: room status (/v2) and the /v1 compatibility alias (seed 001)."""
from apiutil import ISO_US, member_key, new_member, new_room, simulate_preview, simulate_publisher_gone
from helpers import http

STATUS_KEYS = {"exists", "isActive", "roomId", "title", "participantCount", "hasTeacher", "isRecording",
               "createdAt", "startedAt"}


def test_v2_status_through_a_broadcast(castgate):
    castgate.create_app("status")
    new_member(castgate, "1")
    key = member_key(castgate, "1")
    room = new_room(castgate, "1", title="Calculus I - Morning Session")
    url = f"/v2/apps/me/video-rooms/{room['id']}/status"
    r = castgate.api("GET", url)
    assert r.status == 200
    s = r.json()
    assert s["success"] is True and s["message"] == "Room status retrieved"
    d = s["data"]
    assert STATUS_KEYS <= set(d)
    assert d["exists"] is True and d["isActive"] is False and d["roomId"] == room["id"]
    assert d["title"] == "Calculus I - Morning Session"
    assert d["participantCount"] == 0 and d["hasTeacher"] is False and d["isRecording"] is False
    assert ISO_US.match(d["createdAt"]) and d["startedAt"] is None
    simulate_preview(key["id"])
    assert castgate.api("GET", url).json()["data"]["hasTeacher"] is True  # previewing before start
    assert castgate.api("POST", f"/v2/apps/me/video-rooms/{room['id']}/rtmp-broadcast/state/live").status == 200
    d = castgate.api("GET", url).json()["data"]
    assert d["isActive"] is True and d["hasTeacher"] is True and d["isRecording"] is True
    assert ISO_US.match(d["startedAt"])
    simulate_publisher_gone(key["id"], room["id"])
    d = castgate.api("GET", url).json()["data"]
    assert d["isActive"] is True and d["hasTeacher"] is False
    assert castgate.api("POST", f"/v2/apps/me/video-rooms/{room['id']}/rtmp-broadcast/state/ended").status == 200
    d = castgate.api("GET", url).json()["data"]
    assert d["isActive"] is False and d["isRecording"] is False and d["exists"] is True


def test_v2_status_of_unknown_room_is_200_exists_false(castgate):
    castgate.create_app("status-unknown")
    for rid in ("987654321", "abc", "0"):
        r = castgate.api("GET", f"/v2/apps/me/video-rooms/{rid}/status")
        assert r.status == 200, r.body
        body = r.json()
        assert body["success"] is True and body["message"] == "Room not found"
        assert body["data"]["exists"] is False and body["data"]["isActive"] is False
    assert castgate.api("GET", "/v2/apps/me/video-rooms/1/status", app=False).status == 401


def test_v1_alias_by_external_id_or_id_with_org_or_basic(castgate):
    app = castgate.create_app("v1")
    new_member(castgate, "1")
    room = new_room(castgate, "1", externalId="math-101", title="Calculus I")
    org = {"VF-ORG-ID": app["orgId"]}
    r = http("GET", castgate.http_base + "/v1/room/math-101/status", headers=org)
    assert r.status == 200, r.body
    d = r.json()["data"]
    assert d["exists"] is True and d["roomId"] == "math-101" and d["title"] == "Calculus I"
    r = http("GET", castgate.http_base + f"/v1/room/{room['id']}/status", headers=org)
    assert r.json()["data"]["exists"] is True and r.json()["data"]["title"] == "Calculus I"
    r = castgate.api("GET", "/v1/room/math-101/status")  # Basic works too
    assert r.status == 200 and r.json()["data"]["exists"] is True
    r = http("GET", castgate.http_base + "/v1/room/math-999/status", headers=org)
    assert r.status == 200
    assert r.json() == {"success": True, "message": "Room not found",
                        "data": {"exists": False, "isActive": False, "roomId": "math-999"}}
    # another organization does not see it
    other = castgate.create_app("v1-other")
    r = http("GET", castgate.http_base + "/v1/room/math-101/status", headers={"VF-ORG-ID": other["orgId"]})
    assert r.status == 200 and r.json()["data"]["exists"] is False


def test_v1_errors_have_the_seed_shape(castgate):
    app = castgate.create_app("v1-errors")
    org = {"VF-ORG-ID": app["orgId"]}
    for headers in ({}, {"VF-ORG-ID": "org_nope"}, {"VF-ORG-ID": "  "}):
        r = http("GET", castgate.http_base + "/v1/room/math-101/status", headers=headers)
        assert r.status == 401, r.body
        assert r.json() == {"success": False, "message": "Unauthorized"}
    for path in ("/v1/room//status", "/v1/room/%20/status", "/v1/room/status"):
        r = http("GET", castgate.http_base + path, headers=org)
        assert r.status == 400, (path, r.body)
        assert r.json() == {"success": False, "message": "Missing roomId"}
    r = http("GET", castgate.http_base + "/v1/room/a/b/status", headers=org)
    assert r.status == 404
