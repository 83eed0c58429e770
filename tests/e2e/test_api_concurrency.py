"""SPEC §2.2: concurrent API calls on one room never produce an impossible
state, and every successful transition has exactly one events row."""
from concurrent.futures import ThreadPoolExecutor

from apiutil import member_key, new_member, new_room, psql, psql1, simulate_preview, simulate_publisher_gone


def fire(castgate, calls):
    """Runs (method, path) calls all at once; returns [(path, status, errorCode)]."""
    def one(call):
        method, path = call
        r = castgate.api(method, path)
        code = r.json().get("errorCode") if r.body and r.status >= 400 else None
        return path, r.status, code
    with ThreadPoolExecutor(max_workers=len(calls)) as ex:
        return list(ex.map(one, calls))


def test_fifty_parallel_starts_ends_and_reissues(castgate):
    app = castgate.create_app("race")
    actor = f"api:app:{app['appId']}"
    new_member(castgate, "1")
    key = member_key(castgate, "1")
    room = new_room(castgate, "1")
    rid, kid = room["id"], key["id"]
    base = f"/v2/apps/me/video-rooms/{rid}/rtmp-broadcast/state"
    simulate_preview(kid)

    calls = [("POST", base + "/live")] * 20 + [("POST", base + "/ended")] * 20 + \
            [("POST", f"/v2/apps/me/stream-keys/{kid}/reissue")] * 10
    res = fire(castgate, calls)
    assert all(status < 500 for _, status, _ in res), res
    starts = [r for r in res if r[0].endswith("/live") and r[1] == 200]
    assert len(starts) == 1
    assert {c for p, s, c in res if p.endswith("/live") and s != 200} == {"VIDEO_ROOM_STATE_NOT_SCHEDULED"}
    assert {c for p, s, c in res if p.endswith("/ended")} == {"VIDEO_ROOM_STATE_NOT_LIVE_INACTIVE"}
    assert {c for p, s, c in res if p.endswith("/reissue")} == {"STREAM_KEY_STATE_NOT_INACTIVE"}
    assert psql1(f"SELECT video_room_state FROM video_rooms WHERE id = {rid}") == "LIVE"
    assert psql1(f"SELECT stream_key_state FROM stream_keys WHERE id = {kid}") == "ACTIVE_LIVE"

    simulate_publisher_gone(kid, rid)
    res = fire(castgate, [("POST", base + "/ended")] * 25 + [("POST", base + "/live")] * 25)
    assert all(status < 500 for _, status, _ in res), res
    assert len([r for r in res if r[0].endswith("/ended") and r[1] == 200]) == 1
    assert {c for p, s, c in res if p.endswith("/ended") and s != 200} == {"VIDEO_ROOM_STATE_NOT_LIVE_INACTIVE"}
    assert {c for p, s, c in res if p.endswith("/live")} == {"VIDEO_ROOM_STATE_NOT_SCHEDULED"}
    assert psql(f"SELECT video_room_state, COALESCE(stream_key_id, 0) FROM video_rooms WHERE id = {rid}") == [
        ["ENDED", "0"]]
    assert psql(f"SELECT stream_key_state, COALESCE(video_room_id, 0) FROM stream_keys WHERE id = {kid}") == [
        ["INACTIVE", "0"]]
    # exactly one row per successful API transition
    assert psql(f"SELECT COALESCE(from_state, ''), to_state FROM events WHERE video_room_id = {rid}"
                f" AND type = 'video_room_state' AND actor = '{actor}' ORDER BY id") == [
        ["", "SCHEDULED"], ["SCHEDULED", "LIVE"], ["LIVE_INACTIVE", "ENDED"]]
    assert psql(f"SELECT from_state, to_state FROM events WHERE stream_key_id = {kid}"
                f" AND type = 'stream_key_state' AND actor = '{actor}' ORDER BY id") == [
        ["ACTIVE", "ACTIVE_LIVE"], ["INACTIVE_LIVE", "INACTIVE"]]


def test_parallel_start_and_force_terminate_stay_consistent(castgate):
    app = castgate.create_app("race-force")
    actor = f"api:app:{app['appId']}"
    new_member(castgate, "1")
    kid = member_key(castgate, "1")["id"]
    rid = new_room(castgate, "1")["id"]
    simulate_preview(kid)
    calls = []
    for i in range(50):
        calls.append(("POST", f"/v2/apps/me/video-rooms/{rid}/rtmp-broadcast/state/live") if i % 2 == 0
                     else ("POST", f"/v2/apps/me/stream-keys/{kid}/force-terminate"))
    res = fire(castgate, calls)
    assert all(status < 500 for _, status, _ in res), res
    started = [r for r in res if r[0].endswith("/live") and r[1] == 200]
    forced = [r for r in res if r[0].endswith("/force-terminate")]
    assert all(s == 204 for _, s, _ in forced)
    assert len(started) <= 1
    key_state = psql1(f"SELECT stream_key_state FROM stream_keys WHERE id = {kid}")
    room_state = psql1(f"SELECT video_room_state FROM video_rooms WHERE id = {rid}")
    assert key_state == "INACTIVE"  # force-terminate always wins last
    assert room_state == ("ENDED" if started else "SCHEDULED")
    assert int(psql1(f"SELECT count(*) FROM events WHERE video_room_id = {rid} AND type = 'video_room_state'"
                     f" AND to_state = 'LIVE' AND actor = '{actor}'")) == len(started)
    # every force-terminate appended exactly one key event; plus the start's
    assert int(psql1(f"SELECT count(*) FROM events WHERE stream_key_id = {kid} AND type = 'stream_key_state'"
                     f" AND actor = '{actor}'")) == len(forced) + len(started)
    assert int(psql1(f"SELECT count(DISTINCT stream_key) FROM stream_keys WHERE id = {kid}")) == 1
