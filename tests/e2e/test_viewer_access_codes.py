"""Access codes (SPEC API-9): chosen or generated codes per room, their
listing and deletion, and the public exchange of a code for a viewer token,
rate-limited per client address."""
import json
import base64

from helpers import http
from viewer_helpers import make_room, sql


def claims(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def codes_path(rid):
    return f"/v2/apps/me/video-rooms/{rid}/access-codes"


def test_codes_are_chosen_or_generated_and_unique_per_room(castgate):
    rid = make_room(castgate, access_level="PRIVATE")
    r = castgate.api("POST", codes_path(rid), {"code": "math-101", "role": "MODERATOR",
                                               "expiresAt": "2099-01-01T00:00:00Z"})
    assert r.status == 201, r.body
    c = r.json()["data"]
    assert c["code"] == "math-101" and c["role"] == "MODERATOR" and c["roomId"] == rid
    assert c["expiresAt"] == "2099-01-01T00:00:00.000000Z" and c["lastUsage"] is None
    assert c["status"] == "ACTIVE"
    r = castgate.api("POST", codes_path(rid), {"code": "math-101"})
    assert r.status == 409 and r.json()["errorCode"] == "ACCESS_CODE_ALREADY_EXISTS"
    other = make_room(castgate)
    assert castgate.api("POST", codes_path(other), {"code": "math-101"}).status == 201  # per room
    gen = castgate.api("POST", codes_path(rid), {}).json()["data"]
    assert len(gen["code"]) == 10 and gen["code"].isalnum() and gen["role"] == "STUDENT"
    assert gen["expiresAt"] is None
    for body, field in (({"code": "abc"}, "code"), ({"code": "a b c d"}, "code"),
                        ({"code": 1234}, "code"), ({"role": "GUEST"}, "role"),
                        ({"expiresAt": "tomorrow"}, "expiresAt"), ({"expiresAt": "2030-13-01T00:00:00Z"}, "expiresAt"),
                        ({"expiresAt": 1700000000}, "expiresAt")):
        r = castgate.api("POST", codes_path(rid), body)
        assert r.status == 400 and r.json()["errorCode"] == "INVALID_PARAMETER", (body, r.body)
        assert field in r.json()["message"], r.body


def test_codes_list_and_delete(castgate):
    rid = make_room(castgate)
    ids = [castgate.api("POST", codes_path(rid), {"code": f"code-{i}"}).json()["data"]["id"] for i in range(3)]
    page = castgate.api("GET", codes_path(rid) + "?sortBy=CREATED_AT_ASC").json()
    assert [c["id"] for c in page["content"]] == ids and page["totalElements"] == 3
    assert castgate.api("DELETE", f"{codes_path(rid)}/{ids[1]}").status == 204
    r = castgate.api("DELETE", f"{codes_path(rid)}/{ids[1]}")
    assert r.status == 404 and r.json()["errorCode"] == "ACCESS_CODE_NOT_FOUND"
    assert [c["code"] for c in castgate.api("GET", codes_path(rid)).json()["content"]] == ["code-2", "code-0"]
    assert castgate.api("DELETE", codes_path(rid)).status == 204
    assert castgate.api("GET", codes_path(rid)).json()["totalElements"] == 0
    other = castgate.create_app("other")
    assert castgate.api("GET", codes_path(rid), app=other).status == 404
    assert http("GET", castgate.http_base + codes_path(rid)).status == 401


def test_join_exchanges_a_code_for_a_token_of_its_role(castgate):
    rid = make_room(castgate, access_level="PRIVATE", title="Secret class")
    code = castgate.api("POST", codes_path(rid), {"code": "4242", "role": "TEACHER"}).json()["data"]
    r = http("POST", f"{castgate.http_base}/v2/rooms/{rid}/join", {"code": "4242", "uid": "u-7", "name": "Ann"})
    assert r.status == 200, r.body
    d = r.json()["data"]
    assert r.json()["success"] is True
    assert d["role"] == "TEACHER" and d["uid"] == "u-7" and d["name"] == "Ann"
    c = claims(d["token"])
    assert c["room"] == rid and c["role"] == "TEACHER"
    assert d["iframeUrl"] == f"{castgate.http_base}/play/{rid}?token={d['token']}"
    # the token works for the room's viewer feed
    assert http("GET", f"{castgate.http_base}/v2/rooms/{rid}/events?token={d['token']}").status == 200
    # the code shows its use; the token shows where it came from
    listed = castgate.api("GET", codes_path(rid)).json()["content"][0]
    assert listed["lastUsage"] is not None
    tok = castgate.api("GET", f"/v2/apps/me/video-rooms/{rid}/tokens").json()["content"][0]
    assert tok["accessCodeId"] == code["id"]


def test_join_refuses_wrong_expired_and_foreign_codes(castgate):
    rid = make_room(castgate, access_level="PRIVATE")
    other = make_room(castgate, access_level="PRIVATE")
    castgate.api("POST", codes_path(rid), {"code": "right-code"})
    castgate.api("POST", codes_path(rid), {"code": "old-code", "expiresAt": "2001-01-01T00:00:00Z"})
    base = castgate.http_base
    for room, body in ((rid, {"code": "wrong-code"}), (rid, {"code": "old-code"}),
                       (other, {"code": "right-code"}), (rid, {"code": "RIGHT-CODE"})):
        r = http("POST", f"{base}/v2/rooms/{room}/join", body)
        assert r.status == 403 and r.json()["errorCode"] == "ACCESS_CODE_INVALID", (room, body, r.body)
    r = http("POST", f"{base}/v2/rooms/{rid}/join", {})
    assert r.status == 400 and "code" in r.json()["message"]
    r = http("POST", f"{base}/v2/rooms/{rid}/join", {"code": 5})
    assert r.status == 400
    r = http("POST", f"{base}/v2/rooms/99999999/join", {"code": "right-code"})
    assert r.status == 403
    # a deleted room refuses its codes
    sql(f"UPDATE video_rooms SET state = 'DELETED' WHERE id = {rid}")
    r = http("POST", f"{base}/v2/rooms/{rid}/join", {"code": "right-code"})
    assert r.status == 403


def test_join_is_rate_limited_per_client_address(castgate):
    rid = make_room(castgate, access_level="PRIVATE")
    castgate.api("POST", codes_path(rid), {"code": "good-code"})
    url = f"{castgate.http_base}/v2/rooms/{rid}/join"
    statuses = [http("POST", url, {"code": f"guess-{i}"}).status for i in range(10)]
    assert statuses == [403] * 10
    r = http("POST", url, {"code": "good-code"})  # the 11th attempt, even a right one
    assert r.status == 429 and r.json()["errorCode"] == "RATE_LIMITED"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    # the admin API is not affected
    assert castgate.api("GET", codes_path(rid)).status == 200
