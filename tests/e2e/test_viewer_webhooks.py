"""Webhooks (SPEC API-10): the app's webhook URL is set through
PATCH /v2/apps/me; every new event of the app is POSTed there, signed with
HMAC-SHA256, and retried with backoff when the receiver fails."""
import hashlib
import hmac
import json

from helpers import http, wait_until
from viewer_helpers import WebhookReceiver, add_event, make_room, sql


def test_app_me_shows_and_sets_the_webhook(castgate):
    castgate.create_app("hooked")
    r = castgate.api("GET", "/v2/apps/me")
    assert r.status == 200
    me = r.json()
    assert me["id"] == castgate.app["appId"] and me["orgId"] == castgate.app["orgId"]
    assert me["name"] == "hooked" and me["state"] == "ACTIVE" and me["webhookUrl"] is None
    r = castgate.api("PATCH", "/v2/apps/me", {"webhookUrl": "http://127.0.0.1:9/hook"})
    assert r.status == 200, r.body
    generated = r.json()["webhookSecret"]
    assert len(generated) >= 32
    assert r.json()["webhookUrl"] == "http://127.0.0.1:9/hook"
    me = castgate.api("GET", "/v2/apps/me").json()
    assert me["webhookUrl"] == "http://127.0.0.1:9/hook" and "webhookSecret" not in me
    # a second PATCH keeps the secret (none generated again); an explicit one replaces it
    r = castgate.api("PATCH", "/v2/apps/me", {"webhookUrl": "http://127.0.0.1:9/other"})
    assert "webhookSecret" not in r.json()
    assert sql(f"SELECT webhook_secret FROM apps WHERE id = {me['id']}")[0][0] == generated
    r = castgate.api("PATCH", "/v2/apps/me", {"webhookSecret": "my-own-secret-0123456789"})
    assert r.status == 200 and "webhookSecret" not in r.json()
    assert sql(f"SELECT webhook_secret FROM apps WHERE id = {me['id']}")[0][0] == "my-own-secret-0123456789"
    for body in ({"webhookUrl": "https://example.com/h"}, {"webhookUrl": "ftp://x/"},
                 {"webhookUrl": "not a url"}, {"webhookUrl": 5}, {"webhookSecret": "short"}):
        r = castgate.api("PATCH", "/v2/apps/me", body)
        assert r.status == 400 and r.json()["errorCode"] == "INVALID_PARAMETER", body
    assert castgate.api("PATCH", "/v2/apps/me", {"webhookUrl": None}).json()["webhookUrl"] is None
    assert http("GET", castgate.http_base + "/v2/apps/me").status == 401


def test_events_are_posted_signed_to_the_webhook(castgate):
    recv = WebhookReceiver()
    try:
        rid = make_room(castgate)
        before = add_event(castgate, rid, "recording_started")  # before the webhook: never sent
        r = castgate.api("PATCH", "/v2/apps/me", {"webhookUrl": recv.url + "?src=castgate"})
        secret = r.json()["webhookSecret"]
        ids = [add_event(castgate, rid, t, {"k": i}) for i, t in
               enumerate(("quality_changed", "recording_stopped"))]
        wait_until(lambda: len(recv.delivered()) >= 2, timeout=10, what="two webhook posts")
        got = sorted(recv.delivered(), key=lambda x: json.loads(x["body"])["id"])
        assert [json.loads(x["body"])["id"] for x in got] == ids
        for x, t in zip(got, ("quality_changed", "recording_stopped")):
            assert x["path"] == "/hook?src=castgate"
            assert x["headers"]["Content-Type"] == "application/json"
            assert x["headers"]["X-Castgate-Event"] == t
            want = "sha256=" + hmac.new(secret.encode(), x["body"], hashlib.sha256).hexdigest()
            assert x["headers"]["X-Castgate-Signature"] == want
            ev = json.loads(x["body"])
            assert ev["type"] == t and ev["roomId"] == rid and "createdAt" in ev
        assert before not in [json.loads(x["body"])["id"] for x in recv.requests]
        rows = sql(f"SELECT count(*) FROM webhook_deliveries WHERE event_id IN ({ids[0]}, {ids[1]})"
                   " AND delivered_at IS NOT NULL")
        assert rows == [["2"]]
    finally:
        recv.close()


def test_failed_deliveries_are_retried_with_backoff(castgate):
    recv = WebhookReceiver(fail_first=2)
    try:
        rid = make_room(castgate)
        castgate.api("PATCH", "/v2/apps/me", {"webhookUrl": recv.url})
        eid = add_event(castgate, rid, "recording_started")
        wait_until(lambda: recv.delivered(), timeout=15, what="delivery after two failures")
        tries = [x for x in recv.requests if json.loads(x["body"])["id"] == eid]
        assert [x["failed"] for x in tries] == [True, True, False]
        # backoff: the second retry waited longer than the first (1 s, then 2 s)
        gap1 = tries[1]["t"] - tries[0]["t"]
        gap2 = tries[2]["t"] - tries[1]["t"]
        assert gap1 >= 0.9 and gap2 >= 1.9, (gap1, gap2)
        assert tries[0]["headers"]["X-Castgate-Delivery"] == tries[2]["headers"]["X-Castgate-Delivery"]
        rows = sql(f"SELECT attempts, delivered_at IS NOT NULL FROM webhook_deliveries WHERE event_id = {eid}")
        assert rows == [["3", "t"]]
    finally:
        recv.close()


def test_unreachable_receiver_does_not_block_the_api(castgate):
    # a port nothing listens on: connection refused, retried in the background
    castgate.create_app()
    castgate.api("PATCH", "/v2/apps/me", {"webhookUrl": "http://127.0.0.1:1/hook"})
    rid = make_room(castgate)
    eid = add_event(castgate, rid, "recording_started")
    wait_until(lambda: sql(f"SELECT last_error FROM webhook_deliveries WHERE event_id = {eid}")
               and sql(f"SELECT last_error FROM webhook_deliveries WHERE event_id = {eid}")[0][0],
               timeout=10, what="a recorded delivery error")
    err = sql(f"SELECT last_error, attempts FROM webhook_deliveries WHERE event_id = {eid}")[0]
    assert "connect" in err[0] and int(err[1]) >= 1
    assert castgate.api("GET", "/v2/apps/me").status == 200
