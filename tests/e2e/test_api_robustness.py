"""SPEC §6 input rules: malformed and oversized bodies, wrong types, unknown
fields, odd ids, SQL metacharacters and Unicode — never a 500."""
import json
import socket

from apiutil import assert_error, new_member, new_room, psql1, q
from helpers import http

BODY_PATHS = ["/v2/apps/me/members", "/v2/apps/me/video-rooms"]


def test_malformed_json_is_400_invalid_json(castgate):
    castgate.create_app("robust-json")
    h = castgate.auth_header()
    for raw in (b"{", b"not json", b"[1,2]", b"\"str\"", b"42", b"null", b"", b"{\"a\":1,\"a\":2}",
                b"{\"appUserId\": \"\\u0000\"}", b"\xff\xfe{}", b"{\"appUserId\":\"\xc0\xaf\"}"):
        for path in BODY_PATHS:
            r = http("POST", castgate.http_base + path, body=raw,
                     headers={**h, "Content-Type": "application/json"})
            assert_error(r, 400, "INVALID_JSON")
    new_member(castgate, "1")
    r = http("PATCH", castgate.http_base + "/v2/apps/me/members/1", body=b"{oops", headers=h)
    assert_error(r, 400, "INVALID_JSON")


def test_body_over_64_kib_is_413(castgate):
    castgate.create_app("robust-size")
    big = json.dumps({"appUserId": "x", "appUserName": "y" * (70 * 1024)}).encode()
    r = http("POST", castgate.http_base + "/v2/apps/me/members", body=big,
             headers={**castgate.auth_header(), "Content-Type": "application/json"})
    assert r.status == 413
    # one byte over: our own JSON error (evhttp itself refuses anything larger)
    exact = b'{"appUserId":"x","pad":"' + b"p" * (64 * 1024 + 1 - 26) + b'"}'
    assert len(exact) == 64 * 1024 + 1
    r = http("POST", castgate.http_base + "/v2/apps/me/video-rooms", body=exact,
             headers={**castgate.auth_header(), "Content-Type": "application/json"})
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    # just under the limit is read (and then validated: the name is too long)
    ok = json.dumps({"appUserId": "x", "appUserName": "y" * (60 * 1024)}).encode()
    r = http("POST", castgate.http_base + "/v2/apps/me/members", body=ok,
             headers={**castgate.auth_header(), "Content-Type": "application/json"})
    assert_error(r, 400, "INVALID_PARAMETER", "appUserName")
    # the server is still fine
    assert castgate.api("GET", "/v2/apps/me/members").status == 200


def test_wrong_types_and_unknown_fields(castgate):
    castgate.create_app("robust-types")
    new_member(castgate, "1")
    url = "/v2/apps/me/video-rooms"
    base = {"appUserId": "1", "type": "BROADCAST_RTMP", "scheduledAt": "2030-01-01T00:00:00Z"}
    for patch, field in (({"title": 1}, "title"), ({"description": []}, "description"),
                         ({"accessLevel": True}, "accessLevel"), ({"externalId": 5}, "externalId"),
                         ({"settings": "x"}, "settings"), ({"settings": {"autoStart": "yes"}}, "settings.autoStart"),
                         ({"settings": {"maxParticipants": 0}}, "settings.maxParticipants"),
                         ({"metadata": "x"}, "metadata"), ({"scheduledAt": 1}, "scheduledAt"),
                         ({"title": "t" * 501}, "title")):
        assert_error(castgate.api("POST", url, {**base, **patch}), 400, "INVALID_PARAMETER", field)
    r = castgate.api("POST", url, {**base, "unknownField": {"deep": [1, {"x": 2}]}, "id": 999999, "state": "X"})
    assert r.status == 201
    assert r.json()["id"] != 999999 and r.json()["state"] == "ACTIVE"


def test_ids_that_are_not_numbers_or_overflow_are_404(castgate):
    castgate.create_app("robust-ids")
    for rid in ("abc", q("1;DROP TABLE video_rooms"), "9223372036854775808", "-0", "%F0%9F%8E%A5", "1%00"):
        r = castgate.api("GET", f"/v2/apps/me/video-rooms/{rid}")
        assert r.status in (400, 404), (rid, r.status)
        if r.status == 404:
            assert r.json()["errorCode"] == "VIDEO_ROOM_NOT_FOUND"
    assert_error(castgate.api("GET", "/v2/apps/me/video-rooms/9223372036854775807"), 404, "VIDEO_ROOM_NOT_FOUND")
    assert_error(castgate.api("GET", "/v2/apps/me/stream-keys/18446744073709551616"), 404, "STREAM_KEY_NOT_FOUND")
    assert_error(castgate.api("POST", "/v2/apps/me/video-rooms/x/rtmp-broadcast/state/live"), 404,
                 "VIDEO_ROOM_NOT_FOUND")
    # invalid UTF-8 in an appUserId path segment is simply not found
    assert_error(castgate.api("GET", "/v2/apps/me/members/%C0%AF"), 404, "MEMBER_NOT_FOUND")
    # invalid UTF-8 in a query string names the parameter
    assert_error(castgate.api("GET", "/v2/apps/me/video-rooms?keyword=%C0%AF"), 400, "INVALID_PARAMETER",
                 "keyword")


def test_sql_metacharacters_and_unicode_round_trip_in_rooms(castgate):
    castgate.create_app("robust-text")
    new_member(castgate, "1")
    title = "Robert'); DROP TABLE video_rooms;-- 100% _x_ \\ \"q\" — 日本語 🎥 \u00e9"
    meta = {"quote": "it's", "sql": "1; DELETE FROM apps", "emoji": "🎥", "nested": {"k": "ü"},
            "list": [1, "two", None, True, 2.5]}
    room = new_room(castgate, "1", title=title, description=title, externalId="ext-'\"%",
                    metadata=meta)
    got = castgate.api("GET", f"/v2/apps/me/video-rooms/{room['id']}").json()
    assert got["title"] == title and got["description"] == title
    assert got["externalId"] == "ext-'\"%"
    assert got["metadata"] == meta
    found = castgate.api("GET", "/v2/apps/me/video-rooms?keyword=" + q("DROP TABLE")).json()
    assert [x["id"] for x in found["content"]] == [room["id"]]
    r = castgate.api("GET", "/v1/room/" + q("ext-'\"%") + "/status")
    assert r.json()["data"]["exists"] is True
    assert int(psql1("SELECT count(*) FROM video_rooms")) >= 1


def test_unsupported_method_and_unknown_path(castgate):
    castgate.create_app("robust-methods")
    r = castgate.api("PUT", "/v2/apps/me/members")
    assert r.status == 405 and "GET" in r.headers.get("Allow", "")
    assert castgate.api("GET", "/v2/apps/me/nothing").status == 404


def test_cors_preflight_on_api_paths(castgate):
    r = http("OPTIONS", castgate.http_base + "/v2/apps/me/video-rooms",
             headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
                      "Access-Control-Request-Headers": "authorization, content-type"})
    assert r.status == 204
    assert r.headers.get("Access-Control-Allow-Origin") == "*"
    assert "POST" in r.headers.get("Access-Control-Allow-Methods", "")


def test_truncated_request_does_not_hurt_the_server(castgate):
    castgate.create_app("robust-trunc")
    s = socket.create_connection(("127.0.0.1", castgate.http_port))
    s.sendall(b"POST /v2/apps/me/members HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
              b"Content-Type: application/json\r\n\r\n{\"appUserId\":")
    s.close()
    assert castgate.api("GET", "/v2/apps/me/members").status == 200
