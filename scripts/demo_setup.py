"""demo_setup.py BASE_URL APP_KEY APP_SECRET — `make run`'s demo: a member
"demo-teacher" with its stream key and a BROADCAST_RTMP room that starts by
itself when OBS starts streaming (autoStart) and ends 60 s after OBS stops
(autoEndAfterSec). Idempotent: reuses them on later runs. Prints what to type
into OBS and where to watch. Python standard library only."""
import base64
import json
import sys
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone


def call(base, auth, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Authorization": auth, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def main():
    base, key, secret = sys.argv[1:4]
    auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
    uid = "demo-teacher"
    st, _ = call(base, auth, "POST", "/v2/apps/me/members", {"appUserId": uid, "appUserName": "Demo Teacher"})
    if st not in (201, 409):
        raise SystemExit(f"demo: creating the member failed ({st})")
    st, sk = call(base, auth, "GET", f"/v2/apps/me/members/{uid}/stream-key")
    if st != 200:
        raise SystemExit(f"demo: reading the stream key failed ({st})")
    st, rooms = call(base, auth, "GET", "/v2/apps/me/video-rooms?keyword=Demo%20classroom&videoRoomState=SCHEDULED")
    room = rooms["content"][0] if st == 200 and rooms.get("content") else None
    if room is None:
        when = (datetime.now(timezone.utc) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        st, room = call(base, auth, "POST", "/v2/apps/me/video-rooms", {
            "appUserId": uid, "type": "BROADCAST_RTMP", "title": "Demo classroom",
            "scheduledAt": when, "accessLevel": "PUBLIC",
            "settings": {"autoStart": True, "autoEndAfterSec": 60}})
        if st != 201:
            raise SystemExit(f"demo: creating the room failed ({st}): {room}")
    ingest = sk["ingestUrl"]
    rid = room["id"]
    print(f"""
castgate is running.

  OBS  Settings → Stream → Service: Custom…
       Server:     {ingest}
       Stream Key: {sk['streamKey']}

  Preview (before the room goes live):  {base}/hls/keys/{sk['id']}/index.m3u8
  Room {rid} "Demo classroom" starts when OBS starts streaming (autoStart):
       HLS:    {base}/hls/rooms/{rid}/index.m3u8
       Player: {base}/play/{rid}
       DVR:    {base}/hls/rooms/{rid}/vod.m3u8
  Admin API: Basic {key}:<secret from var/demo-app.json>   (docs: {base}/v2/openapi.yaml)

Ctrl-C stops castgate and the local PostgreSQL.
""")


if __name__ == "__main__":
    main()
