"""SPEC API-8: a viewer token sent as `Authorization: Bearer` may call the
room's control endpoints within its role: MODERATOR recording start/stop,
TEACHER (and ADMIN) also broadcast start/end; STUDENT none of them."""
from helpers import http
from test_broadcast_flow import setup_room


def token(cg, rid, role):
    r = cg.api("POST", f"/v2/apps/me/video-rooms/{rid}/tokens", {"role": role})
    assert r.status in (200, 201), r.body
    return r.json()["data"]["token"]


def post(cg, path, tok):
    return http("POST", cg.http_base + path, headers={"Authorization": "Bearer " + tok})


def test_roles_on_control_endpoints(castgate):
    _, rm = setup_room(castgate)
    rid = rm["id"]
    live = f"/v2/apps/me/video-rooms/{rid}/rtmp-broadcast/state/live"
    rec = f"/v2/apps/me/video-rooms/{rid}/recording/start"
    student, moderator, teacher = (token(castgate, rid, r) for r in ("STUDENT", "MODERATOR", "TEACHER"))

    assert post(castgate, live, student).status == 403
    assert post(castgate, live, moderator).status == 403
    # authorized: the room's own precondition answers (the key is not ACTIVE)
    r = post(castgate, live, teacher)
    assert r.status == 400 and r.json()["errorCode"] == "STREAM_KEY_STATE_NOT_ACTIVE"

    assert post(castgate, rec, student).status == 403
    r = post(castgate, rec, moderator)
    assert r.status == 400 and r.json()["errorCode"] == "VIDEO_ROOM_STATE_NOT_LIVE"


def test_bad_or_foreign_tokens_are_refused(castgate):
    _, a = setup_room(castgate)
    _, b = setup_room(castgate)
    teacher_b = token(castgate, b["id"], "TEACHER")
    live_a = f"/v2/apps/me/video-rooms/{a['id']}/rtmp-broadcast/state/live"
    assert post(castgate, live_a, teacher_b).status == 403          # another room's token
    assert post(castgate, live_a, teacher_b[:-3] + "AAA").status == 401  # tampered signature
    assert post(castgate, live_a, "not-a-token").status == 401
    # without any credentials: 401 as before
    assert http("POST", castgate.http_base + live_a).status == 401


def test_revoked_token_loses_control(castgate):
    _, rm = setup_room(castgate)
    rid = rm["id"]
    r = castgate.api("POST", f"/v2/apps/me/video-rooms/{rid}/tokens", {"role": "TEACHER"})
    data = r.json()["data"]
    tok = data["token"]
    listed = castgate.api("GET", f"/v2/apps/me/video-rooms/{rid}/tokens").json()
    items = listed.get("content") or listed.get("data") or []
    tid = data.get("id") or items[0]["id"]
    assert castgate.api("DELETE", f"/v2/apps/me/video-rooms/{rid}/tokens/{tid}").status == 204
    r = post(castgate, f"/v2/apps/me/video-rooms/{rid}/rtmp-broadcast/state/live", tok)
    assert r.status == 403
