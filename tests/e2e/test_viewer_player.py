"""The player page (SPEC §7) as HTTP: title escaping, what a private room
shows without a token, security headers, and the static files whitelist."""
import json
import os
import re

from helpers import ROOT
from viewer_helpers import make_room, make_token


def config_of(html):
    m = re.search(r'<script id="castgate-config" type="application/json">(.*?)</script>', html, re.S)
    assert m, html[:500]
    return json.loads(m.group(1))


def test_player_page_shows_the_escaped_title_of_a_public_room(castgate):
    rid = make_room(castgate, title='Math <b>101</b> & "friends"')
    r = castgate.get(f"/play/{rid}")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/html")
    html = r.body.decode()
    assert "<title>Math &lt;b&gt;101&lt;/b&gt; &amp; &quot;friends&quot;</title>" in html
    assert "<b>101</b>" not in html
    cfg = config_of(html)
    assert cfg["roomId"] == rid and cfg["title"] == 'Math <b>101</b> & "friends"'
    assert cfg["needsToken"] is False and cfg["roomState"] == "SCHEDULED"
    assert cfg["hlsUrl"] == f"../hls/rooms/{rid}/index.m3u8"
    assert cfg["eventsUrl"] == f"../v2/rooms/{rid}/events"
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors *" in csp and "'unsafe-inline'" not in csp
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert '<script src="../static/hls.js/dist/hls.min.js"' in html


def test_private_room_title_needs_a_valid_token(castgate):
    rid = make_room(castgate, access_level="PRIVATE", title="Board meeting")
    html = castgate.get(f"/play/{rid}").body.decode()
    assert "Board meeting" not in html
    cfg = config_of(html)
    assert cfg["needsToken"] is True and cfg["tokenError"] is None
    tok = make_token(castgate, rid)
    html = castgate.get(f"/play/{rid}?token={tok['token']}").body.decode()
    assert "<title>Board meeting</title>" in html and config_of(html)["tokenError"] is None
    other = make_room(castgate, access_level="PRIVATE", title="Other")
    html = castgate.get(f"/play/{other}?token={tok['token']}").body.decode()
    assert "Other" not in html and config_of(html)["tokenError"] == "TOKEN_ROOM_MISMATCH"
    castgate.api("DELETE", f"/v2/apps/me/video-rooms/{rid}/tokens/{tok['id']}")
    html = castgate.get(f"/play/{rid}?token={tok['token']}").body.decode()
    assert config_of(html)["tokenError"] == "TOKEN_REVOKED"


def test_unknown_room_page_is_404(castgate):
    castgate.create_app()
    assert castgate.get("/play/987654321").status == 404
    assert castgate.get("/play/abc").status == 404


def test_static_files_are_served_from_a_whitelist(castgate):
    r = castgate.get("/static/player.js")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/javascript")
    with open(os.path.join(ROOT, "web", "player.js"), "rb") as f:
        assert r.body == f.read()
    etag = r.headers["ETag"]
    assert castgate.get("/static/player.js", headers={"If-None-Match": etag}).status == 304
    assert castgate.get("/static/player.css").status == 200
    hls = castgate.get("/static/hls.js/dist/hls.min.js")
    if os.path.exists(os.path.join(ROOT, "node_modules", "hls.js", "dist", "hls.min.js")):
        assert hls.status == 200 and len(hls.body) > 100000
    for path in ("/static/player.html", "/static/..%2fMakefile", "/static/hls.js/dist/..%2f..%2fpackage.json",
                 "/static/hls.js/package.json", "/static/%2e%2e/%2e%2e/etc/passwd", "/static/"):
        assert castgate.get(path).status in (400, 404), path
