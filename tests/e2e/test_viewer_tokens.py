"""Viewer tokens (SPEC API-8): creation, listing with lastUsage, revocation
(effective within 10 s on every node), Bearer use within the token's role."""
import base64
import json
import time
from datetime import datetime, timezone

from helpers import http, wait_until
from viewer_helpers import make_room, make_token, sql


def claims(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def parse_iso(s):
    assert s.endswith("Z") and len(s) == 27, s  # 2026-01-02T03:04:05.123456Z
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def test_token_create_returns_signed_token_and_urls(castgate):
    rid = make_room(castgate, access_level="PRIVATE")
    r = castgate.api("POST", f"/v2/apps/me/video-rooms/{rid}/tokens",
                     {"role": "STUDENT", "uid": "student-456", "name": "Jane Smith",
                      "photoURL": "https://example.com/jane.jpg"})
    assert r.status == 201, r.body
    body = r.json()
    assert body["success"] is True
    d = body["data"]
    tok = d["token"]
    assert tok.count(".") == 2
    assert d["playUrl"] == f"{castgate.http_base}/hls/rooms/{rid}/index.m3u8?token={tok}"
    assert d["iframeUrl"] == f"{castgate.http_base}/play/{rid}?token={tok}"
    assert d["role"] == "STUDENT" and d["uid"] == "student-456" and d["name"] == "Jane Smith"
    assert d["photoURL"] == "https://example.com/jane.jpg"
    c = claims(tok)
    assert c["room"] == rid and c["app"] == castgate.app["appId"] and c["role"] == "STUDENT"
    assert c["uid"] == "student-456" and c["tid"] == d["id"]
    # default expiry: one hour
    left = (parse_iso(d["expiresAt"]) - datetime.now(timezone.utc)).total_seconds()
    assert 3590 <= left <= 3601, left
    assert c["exp"] == int(parse_iso(d["expiresAt"]).timestamp())
    # the secret never appears in the token
    assert castgate.app["appApiSecret"] not in tok


def test_token_expiry_is_chosen_within_bounds(castgate):
    rid = make_room(castgate)
    d = make_token(castgate, rid, role="TEACHER", expiresInSec=120)
    left = (parse_iso(d["expiresAt"]) - datetime.now(timezone.utc)).total_seconds()
    assert 110 <= left <= 121
    for bad in (0, 59, 7 * 24 * 3600 + 1, "600", 1.5, -5):
        r = castgate.api("POST", f"/v2/apps/me/video-rooms/{rid}/tokens", {"role": "STUDENT", "expiresInSec": bad})
        assert r.status == 400, (bad, r.body)
        assert r.json()["errorCode"] == "INVALID_PARAMETER"
        assert "expiresInSec" in r.json()["message"]


def test_token_create_validates_role_and_fields(castgate):
    rid = make_room(castgate)
    cases = [
        ({}, "role"),
        ({"role": "OWNER"}, "role"),
        ({"role": "student"}, "role"),
        ({"role": 3}, "role"),
        ({"role": "STUDENT", "uid": 12}, "uid"),
        ({"role": "STUDENT", "uid": "u" * 129}, "uid"),
        ({"role": "STUDENT", "name": ["x"]}, "name"),
    ]
    for body, field in cases:
        r = castgate.api("POST", f"/v2/apps/me/video-rooms/{rid}/tokens", body)
        assert r.status == 400, (body, r.body)
        assert r.json()["errorCode"] == "INVALID_PARAMETER" and field in r.json()["message"], r.body
        assert r.json()["field"] == field, r.body
    r = castgate.api("POST", f"/v2/apps/me/video-rooms/{rid}/tokens", "not json")
    assert r.status == 400
    # unknown fields are ignored
    assert castgate.api("POST", f"/v2/apps/me/video-rooms/{rid}/tokens",
                        {"role": "ADMIN", "color": "blue"}).status == 201


def test_tokens_need_app_credentials_and_stay_in_the_app(castgate):
    rid = make_room(castgate)
    path = f"/v2/apps/me/video-rooms/{rid}/tokens"
    r = http("POST", castgate.http_base + path, {"role": "STUDENT"})
    assert r.status == 401 and r.json()["errorCode"] == "UNAUTHORIZED"
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    bad = dict(castgate.app, appApiSecret="wrong")
    assert castgate.api("POST", path, {"role": "STUDENT"}, app=bad).status == 401
    other = castgate.create_app("other")  # now the default app
    r = castgate.api("POST", path, {"role": "STUDENT"}, app=other)
    assert r.status == 404 and r.json()["errorCode"] == "VIDEO_ROOM_NOT_FOUND"
    assert castgate.api("GET", path, app=other).status == 404
    assert castgate.api("POST", "/v2/apps/me/video-rooms/abc/tokens", {"role": "STUDENT"}).status == 404


def test_token_list_is_paged_and_shows_status(castgate):
    rid = make_room(castgate, access_level="PRIVATE")
    made = [make_token(castgate, rid, role=r) for r in ("STUDENT", "MODERATOR", "TEACHER")]
    r = castgate.api("GET", f"/v2/apps/me/video-rooms/{rid}/tokens?pageSize=2")
    assert r.status == 200, r.body
    page = r.json()
    assert page["totalElements"] == 3 and page["totalPages"] == 2 and page["numberOfElements"] == 2
    assert page["first"] is True and page["last"] is False
    assert [t["id"] for t in page["content"]] == [made[2]["id"], made[1]["id"]]  # newest first
    r = castgate.api("GET", f"/v2/apps/me/video-rooms/{rid}/tokens?page=1&pageSize=2&sortBy=CREATED_AT_DESC")
    assert [t["id"] for t in r.json()["content"]] == [made[0]["id"]]
    r = castgate.api("GET", f"/v2/apps/me/video-rooms/{rid}/tokens?sortBy=CREATED_AT_ASC")
    listed = r.json()["content"]
    assert [t["id"] for t in listed] == [m["id"] for m in made]
    assert all(t["status"] == "ACTIVE" and t["revokedAt"] is None and t["lastUsage"] is None for t in listed)
    assert listed[0]["token"] == made[0]["token"]
    for bad in ("sortBy=NAME", "page=-1", "pageSize=0", "pageSize=101", "page=x"):
        r = castgate.api("GET", f"/v2/apps/me/video-rooms/{rid}/tokens?{bad}")
        assert r.status == 400 and r.json()["errorCode"] == "INVALID_PARAMETER", bad


def test_revoked_token_is_refused_and_recorded(castgate):
    rid = make_room(castgate, access_level="PRIVATE")
    d = make_token(castgate, rid, uid="s-1", name="Sam")
    feed = f"{castgate.http_base}/v2/rooms/{rid}/events?token={d['token']}"
    assert http("GET", feed).status == 200
    r = castgate.api("DELETE", f"/v2/apps/me/video-rooms/{rid}/tokens/{d['id']}")
    assert r.status == 204
    # the node that revoked refuses at once
    r = http("GET", feed)
    assert r.status == 403 and r.json()["errorCode"] == "TOKEN_REVOKED"
    listed = castgate.api("GET", f"/v2/apps/me/video-rooms/{rid}/tokens").json()["content"][0]
    assert listed["status"] == "REVOKED" and listed["revokedAt"] is not None
    # idempotent; unknown ids and other rooms' tokens are 404
    assert castgate.api("DELETE", f"/v2/apps/me/video-rooms/{rid}/tokens/{d['id']}").status == 204
    r = castgate.api("DELETE", f"/v2/apps/me/video-rooms/{rid}/tokens/999999")
    assert r.status == 404 and r.json()["errorCode"] == "TOKEN_NOT_FOUND"
    other = make_room(castgate)
    assert castgate.api("DELETE", f"/v2/apps/me/video-rooms/{other}/tokens/{d['id']}").status == 404
    # the removal is an event (API-10)
    rows = sql(f"SELECT type, actor, data->>'tokenId', data->>'uid' FROM events WHERE video_room_id = {rid}")
    assert rows == [["participant_removed", f"api:app:{castgate.app['appId']}", str(d["id"]), "s-1"]]


def test_revocation_reaches_another_node_within_ten_seconds(castgate_factory):
    a = castgate_factory()
    b = castgate_factory()
    a.create_app()
    b.app = a.app
    rid = make_room(a, access_level="PRIVATE")
    d = make_token(a, rid)
    feed = f"/v2/rooms/{rid}/events?token={d['token']}"
    # the key is shared through the database: node B accepts A's token
    assert b.get(feed).status == 200
    assert a.api("DELETE", f"/v2/apps/me/video-rooms/{rid}/tokens/{d['id']}").status == 204
    t0 = time.monotonic()
    wait_until(lambda: b.get(feed).status == 403, timeout=10, what="node B refuses the revoked token")
    assert time.monotonic() - t0 < 10
    assert b.get(feed).json()["errorCode"] == "TOKEN_REVOKED"


def test_bearer_token_works_within_its_role_and_room(castgate):
    rid = make_room(castgate, access_level="PRIVATE")
    other = make_room(castgate, access_level="PRIVATE")
    admin = make_token(castgate, rid, role="ADMIN")["token"]
    student = make_token(castgate, rid, role="STUDENT")["token"]
    moderator = make_token(castgate, rid, role="MODERATOR")["token"]
    path = f"{castgate.http_base}/v2/apps/me/video-rooms/{rid}/tokens"
    r = http("GET", path, headers={"Authorization": "Bearer " + admin})
    assert r.status == 200 and r.json()["totalElements"] == 3
    r = http("POST", path, {"role": "STUDENT"}, headers={"Authorization": "Bearer " + admin})
    assert r.status == 201
    r = http("GET", path, headers={"Authorization": "Bearer " + student})
    assert r.status == 403 and r.json()["errorCode"] == "INSUFFICIENT_ROLE"
    r = http("GET", f"{castgate.http_base}/v2/apps/me/video-rooms/{other}/tokens",
             headers={"Authorization": "Bearer " + admin})
    assert r.status == 403 and r.json()["errorCode"] == "TOKEN_ROOM_MISMATCH"
    r = http("GET", path, headers={"Authorization": "Bearer " + admin[:-2] + "xx"})
    assert r.status == 401 and r.json()["errorCode"] == "TOKEN_INVALID"
    # events: MODERATOR and up
    ev = f"{castgate.http_base}/v2/apps/me/video-rooms/{rid}/events"
    assert http("GET", ev, headers={"Authorization": "Bearer " + moderator}).status == 200
    assert http("GET", ev, headers={"Authorization": "Bearer " + student}).status == 403


def test_last_usage_is_recorded_in_batches(castgate):
    rid = make_room(castgate, access_level="PRIVATE")
    d = make_token(castgate, rid)
    feed = f"/v2/rooms/{rid}/events?token={d['token']}"
    for _ in range(5):
        assert castgate.get(feed).status == 200

    def last_usage():
        t = castgate.api("GET", f"/v2/apps/me/video-rooms/{rid}/tokens").json()["content"][0]
        return t["lastUsage"]

    first = wait_until(last_usage, timeout=12, what="lastUsage written")
    used = parse_iso(first)
    assert abs((datetime.now(timezone.utc) - used).total_seconds()) < 15
    # within 30 s more uses do not rewrite it
    assert castgate.get(feed).status == 200
    time.sleep(6)  # past one flush period: proves the second use was not written
    assert last_usage() == first
