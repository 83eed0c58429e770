"""Real players in a real browser (issue: CMAF LL-HLS, item 5): a live
castgate room fed by FFmpeg, played by hls.js (npm) in headless Chromium
(Debian, driven by playwright-core) in low-latency and in plain mode, and
through the embeddable player page with a viewer token. The browser test
itself (tests/browser/player_playback.test.mjs) asserts that currentTime
advances and decoded frames grow."""
import os
import shutil
import subprocess

import pytest

from helpers import ROOT, wait_until
from media import ffmpeg_publish, stop
from test_broadcast_flow import key_state, setup_room

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    not NODE or not os.path.exists(os.path.join(ROOT, "node_modules", "playwright-core"))
    or not os.path.exists("/usr/bin/chromium"),
    reason="needs node, npm packages (scripts/bootstrap.sh) and Debian chromium")


@pytest.fixture
def live_room(castgate):
    key, rm = setup_room(castgate)
    pub = ffmpeg_publish(f"{castgate.rtmp_base}/{key['streamKey']}", seconds=90)
    try:
        wait_until(lambda: key_state(castgate, key["id"]) == "ACTIVE", timeout=15, what="key ACTIVE")
        r = castgate.api("POST", f"/v2/apps/me/video-rooms/{rm['id']}/rtmp-broadcast/state/live")
        assert r.status == 200, r.body
        wait_until(lambda: castgate.get(f"/hls/rooms/{rm['id']}/media.m3u8").body.count(b"#EXTINF") >= 2,
                   timeout=15, what="two segments in the room playlist")
        yield castgate, rm, r.json()["liveUrl"]
    finally:
        stop(pub)


def run_browser_test(env_extra):
    env = dict(os.environ)
    env.update(env_extra)
    r = subprocess.run([NODE, "--test", "tests/browser/player_playback.test.mjs"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "# skipped 0" in out or "skipped 1" in out, out[-2000:]
    return out


@pytest.mark.parametrize("low_latency", ["1", "0"])
def test_hlsjs_plays_live_room(live_room, low_latency):
    cg, rm, live_url = live_room
    out = run_browser_test({"CASTGATE_TEST_HLS_URL": live_url, "CASTGATE_TEST_LOW_LATENCY": low_latency})
    assert "played " in out and f"lowLatency={'true' if low_latency == '1' else 'false'}" in out, out[-2000:]


def test_player_page_plays_with_token(live_room):
    cg, rm, _ = live_room
    r = cg.api("POST", f"/v2/apps/me/video-rooms/{rm['id']}/tokens", {"role": "STUDENT", "uid": "s-1"})
    assert r.status in (200, 201), r.body
    iframe = r.json()["data"]["iframeUrl"]
    out = run_browser_test({"CASTGATE_TEST_PLAY_URL": iframe})
    assert "player page: connected" in out, out[-2000:]
    # the page's playlist fetches count as one viewer (PKG-8)
    st = cg.api("GET", f"/v2/apps/me/video-rooms/{rm['id']}/status").json()["data"]
    assert st["participantCount"] >= 1
