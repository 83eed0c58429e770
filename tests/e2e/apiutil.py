"""Helpers for the admin API end-to-end tests (tests/e2e/test_api_*.py).

The RTMP ingest is not part of these tests: where a test needs a key that a
publisher is streaming on, it sets the rows the way the ingest's
bc_ingest_* functions would (tests/unit/test_state_machine.c drives those
functions for real). Everything else goes through the HTTP API.
"""
import os
import re
import subprocess
import urllib.parse

ISO_US = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def psql(query):
    """Runs SQL against the test database; returns stdout rows as lists."""
    r = subprocess.run(["psql", os.environ["DATABASE_URL"], "-tAqX", "-v", "ON_ERROR_STOP=1",
                        "-F", "\t", "-c", query], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return [line.split("\t") for line in r.stdout.splitlines() if line]


def psql1(query):
    rows = psql(query)
    return rows[0][0] if rows else None


def q(s):
    """A path segment, percent-encoded."""
    return urllib.parse.quote(s, safe="")


def new_member(cg, user_id="teacher-1", name="Teacher", app=None):
    r = cg.api("POST", "/v2/apps/me/members",
               {"appUserId": user_id, "appUserName": name,
                "appUserProfileImgUrl": "https://img.example.com/u.jpg"}, app=app)
    assert r.status == 201, r.body
    return r.json()


def member_key(cg, user_id, app=None):
    r = cg.api("GET", f"/v2/apps/me/members/{q(user_id)}/stream-key", app=app)
    assert r.status == 200, r.body
    return r.json()


def new_room(cg, user_id="teacher-1", app=None, **extra):
    body = {"appUserId": user_id, "type": "BROADCAST_RTMP", "title": "Foo Video Room",
            "description": "Foo Video Room Description", "accessLevel": "PUBLIC",
            "scheduledAt": "2022-10-19T23:59:59.999Z"}
    body.update(extra)
    r = cg.api("POST", "/v2/apps/me/video-rooms", body, app=app)
    assert r.status == 201, r.body
    return r.json()


def simulate_preview(key_id, node="sim-node"):
    """As bc_ingest_publish + bc_ingest_first_segment: the key is ACTIVE."""
    psql(f"UPDATE stream_keys SET stream_key_state = 'ACTIVE', node_id = '{node}',"
         f" lease_until = now() + interval '1 minute', last_media_at = now() WHERE id = {int(key_id)}")


def simulate_publisher_gone(key_id, room_id):
    """As bc_ingest_closed while live: key INACTIVE_LIVE, room LIVE_INACTIVE."""
    psql(f"UPDATE stream_keys SET stream_key_state = 'INACTIVE_LIVE', node_id = NULL,"
         f" lease_until = NULL WHERE id = {int(key_id)}")
    psql(f"UPDATE video_rooms SET video_room_state = 'LIVE_INACTIVE', inactive_since = now()"
         f" WHERE id = {int(room_id)}")


def assert_error(r, status, code, field=None):
    assert r.status == status, (r.status, r.body)
    body = r.json()
    assert body["errorCode"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    if field:
        assert body.get("field") == field, body
        assert field in body["message"], body
    return body
