#!/usr/bin/env python3
"""Tests of bench/latency_probe.py: playlist parsing, the blocking reload it
asks for next, the join with the send log, and a black-box run of the probe
against a local LL-HLS server that holds blocking reloads.

  python3 bench/test_latency_probe.py      (stdlib unittest)
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import latency_probe as lp  # noqa: E402
import unittest_tally  # noqa: E402

LL_PLAYLIST = """#EXTM3U
#EXT-X-TARGETDURATION:2
#EXT-X-VERSION:9
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5
#EXT-X-PART-INF:PART-TARGET=0.5
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-MAP:URI="init.mp4"
#EXT-X-PROGRAM-DATE-TIME:2024-01-02T03:04:05.250Z
#EXTINF:2.00000,
7.m4s
#EXT-X-PART:DURATION=0.50000,URI="8.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.50000,URI="8.1.m4s"
#EXT-X-PART:DURATION=0.50000,URI="8.2.m4s"
#EXT-X-PART:DURATION=0.50000,URI="8.3.m4s"
#EXT-X-PROGRAM-DATE-TIME:2024-01-02T03:04:07.250Z
#EXTINF:2.00000,
8.m4s
#EXT-X-PART:DURATION=0.50000,URI="9.0.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="9.1.m4s"
"""

NGINX_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-TARGETDURATION:2
#EXT-X-DISCONTINUITY
#EXTINF:2.000,
k-0.ts
#EXTINF:1.987,
k-180000.ts
"""


class ParseTests(unittest.TestCase):
    def test_ll_hls_playlist_assigns_parts_to_their_segments(self):
        pl = lp.parse_media_playlist(LL_PLAYLIST)
        self.assertTrue(pl["can_block"])
        self.assertEqual(pl["part_target"], 0.5)
        self.assertEqual([s[0] for s in pl["segments"]], [7, 8])
        self.assertEqual(len(pl["segments"][1][4]), 4)
        self.assertTrue(pl["segments"][1][4][0][2])  # INDEPENDENT=YES
        self.assertEqual(pl["next_msn"], 9)
        self.assertEqual([p[1] for p in pl["tail_parts"]], ["9.0.m4s"])

    def test_blocking_reload_asks_for_the_part_after_the_last_listed(self):
        pl = lp.parse_media_playlist(LL_PLAYLIST)
        self.assertEqual(lp.next_reload_query(pl), {"_HLS_msn": 9, "_HLS_part": 1})

    def test_blocking_reload_without_parts_asks_for_the_next_segment(self):
        text = LL_PLAYLIST.replace("#EXT-X-PART-INF:PART-TARGET=0.5\n", "")
        text = "\n".join(l for l in text.splitlines() if not l.startswith("#EXT-X-PART:")) + "\n"
        pl = lp.parse_media_playlist(text)
        self.assertEqual(lp.next_reload_query(pl), {"_HLS_msn": 9})

    def test_delta_update_skip_counts_skipped_segments(self):
        text = LL_PLAYLIST.replace("#EXT-X-MAP:URI=\"init.mp4\"\n", "#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n")
        pl = lp.parse_media_playlist(text)
        self.assertEqual([s[0] for s in pl["segments"]], [10, 11])

    def test_program_date_time_parses_to_epoch(self):
        self.assertAlmostEqual(lp.pdt_epoch("2024-01-02T03:04:05.250Z"), 1704164645.25, places=3)
        self.assertAlmostEqual(lp.pdt_epoch("2024-01-02T04:04:05.250+01:00"), 1704164645.25, places=3)
        self.assertIsNone(lp.pdt_epoch("yesterday"))

    def test_non_playlist_is_rejected(self):
        with self.assertRaises(ValueError):
            lp.parse_media_playlist("<html>404</html>")

    def test_plain_playlist_cannot_block(self):
        pl = lp.parse_media_playlist(NGINX_PLAYLIST)
        self.assertFalse(pl["can_block"])
        self.assertEqual([s[2] for s in pl["segments"]], ["k-0.ts", "k-180000.ts"])


def run_analyze(events, sendlog_lines, *extra):
    with tempfile.TemporaryDirectory() as d:
        ev, sl = os.path.join(d, "ev"), os.path.join(d, "sl")
        with open(ev, "w") as f:
            f.write(json.dumps({"meta": {"poll_ms": 50, "blocking": True}}) + "\n")
            for e in events:
                f.write(json.dumps(e) + "\n")
        with open(sl, "w") as f:
            f.write("# header\n" + "".join(l + "\n" for l in sendlog_lines))
        out = subprocess.run([sys.executable, os.path.join(HERE, "latency_probe.py"), "analyze",
                              "--events", ev, "--sendlog", sl] + list(extra),
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout)


def seg(stream, msn, dur, uri, seen_ms, kind="segment", part=None):
    return {"stream": stream, "kind": kind, "msn": msn, "part": part, "dur_s": dur, "uri": uri,
            "pdt": None, "seen_us": int(seen_ms * 1000)}


# Frames every 100 ms of media time, sent at wall = 1e6 ms + media time.
T0 = 1_000_000.0
FRAMES = ["0 k %d %d %d" % (ts, 1 if ts % 2000 == 0 else 0, int((T0 + ts) * 1000)) for ts in range(0, 6001, 100)]


class AnalyzeTests(unittest.TestCase):
    def test_nginx_timestamp_names_join_exactly(self):
        # k-180000.ts starts at 2000 ms; it appears 30 ms after the frame
        # at 4000 ms (the one that closes it) was sent.
        r = run_analyze([seg("k", 0, 2.0, "k-0.ts", T0 + 2000 + 25),
                         seg("k", 1, 2.0, "k-180000.ts", T0 + 4000 + 30)], FRAMES)
        self.assertEqual(r["join"], "name")
        self.assertEqual(r["segments"]["since_end_ms"]["max"], 30.0)
        self.assertEqual(r["segments"]["since_first_frame_ms"]["max"], 2030.0)
        self.assertEqual(r["segments"]["late"], 0)

    def test_order_join_uses_cumulative_durations_and_counts_late(self):
        r = run_analyze([seg("k", 5, 2.0, "a.m4s", T0 + 2000 + 10),
                         seg("k", 6, 2.0, "b.m4s", T0 + 4000 + 1500)], FRAMES, "--late-ms", "1000")
        self.assertEqual(r["join"], "order")
        self.assertEqual(r["segments"]["since_end_ms"]["p50"], 10.0)
        self.assertEqual(r["segments"]["since_end_ms"]["max"], 1500.0)
        self.assertEqual(r["segments"]["late"], 1)

    def test_pdt_join_places_a_playlist_that_began_mid_stream(self):
        # A room playlist that starts at the keyframe of 4000 ms: its first
        # segment's PDT is that frame's arrival (sent + 3 ms). By order it
        # would be taken for media time 0 and look 4 s late.
        pdt = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((T0 + 4000 + 3) / 1000.0))
        pdt += ".%03dZ" % int((T0 + 4000 + 3) % 1000)
        first = seg("k", 7, 2.0, "r7.m4s", T0 + 6000 + 12)
        first["pdt"] = pdt
        r = run_analyze([first], FRAMES + ["0 k 6100 0 %d" % int((T0 + 6100) * 1000)])
        self.assertEqual(r["join"], "pdt")
        self.assertEqual(r["segments"]["since_end_ms"]["max"], 12.0)
        self.assertEqual(r["segments"]["late"], 0)
        # A PDT far from every keyframe does not join; order is the fallback.
        first["pdt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 / 1000.0 - 3600))
        r = run_analyze([first], FRAMES, "--late-ms", "1000")
        self.assertEqual(r["join"], "order")

    def test_parts_start_after_the_earlier_parts_of_their_segment(self):
        r = run_analyze([seg("k", 0, 0.5, "0.0", T0 + 500 + 5, "part", 0),
                         seg("k", 0, 0.5, "0.1", T0 + 1000 + 7, "part", 1),
                         seg("k", 0, 2.0, "0.m4s", T0 + 2000 + 9)], FRAMES)
        self.assertEqual(r["parts"]["since_end_ms"]["count"], 2)
        self.assertEqual(r["parts"]["since_end_ms"]["max"], 7.0)
        self.assertEqual(r["parts"]["since_first_frame_ms"]["max"], 507.0)

    def test_first_playlist_counts_from_the_first_frame_sent(self):
        # The first thing listed (a part, 505 ms after the first frame) is
        # when the stream became playable; the second stream has no events.
        r = run_analyze([seg("k", 0, 0.5, "0.0", T0 + 505, "part", 0),
                         seg("k", 0, 2.0, "0.m4s", T0 + 2009)],
                        FRAMES + ["0 j 0 1 %d" % int((T0 + 50) * 1000)])
        self.assertEqual(r["first_playlist_ms"]["count"], 1)
        self.assertEqual(r["first_playlist_ms"]["max"], 505.0)

    def test_segment_closed_by_the_end_of_stream_has_no_end_latency(self):
        r = run_analyze([seg("k", 0, 2.0, "k-540000.ts", T0 + 8000)], FRAMES)
        self.assertEqual(r["segments"]["since_first_frame_ms"]["count"], 1)
        self.assertEqual(r["segments"]["since_end_ms"]["count"], 0)


class LLServer:
    """An LL-HLS media playlist whose parts the test adds; blocking reloads
    (_HLS_msn/_HLS_part) are held until that part exists."""

    def __init__(self):
        self.cond = threading.Condition()
        self.parts = []  # (msn, part)
        self.requests = []
        owner = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                q = parse_qs(urlsplit(self.path).query)
                with owner.cond:
                    owner.requests.append(q)
                    owner.cond.notify_all()
                    if "_HLS_msn" in q:
                        want = (int(q["_HLS_msn"][0]), int(q.get("_HLS_part", ["0"])[0]))
                        owner.cond.wait_for(lambda: owner.parts and owner.parts[-1] >= want, timeout=5)
                    body = owner.render().encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def render(self):
        out = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES",
               "#EXT-X-PART-INF:PART-TARGET=0.5", "#EXT-X-MEDIA-SEQUENCE:0"]
        for msn, part in self.parts:
            out.append('#EXT-X-PART:DURATION=0.5,URI="%d.%d.m4s"' % (msn, part))
            if part == 3:
                out += ["#EXTINF:2.0,", "%d.m4s" % msn]
        return "\n".join(out) + "\n"

    def wait_request(self, msn, part, timeout=5):
        """Until a blocking reload for (msn, part) has arrived."""
        want = {"_HLS_msn": [str(msn)], "_HLS_part": [str(part)]}
        with self.cond:
            return self.cond.wait_for(lambda: want in self.requests, timeout=timeout)

    def add(self, msn, part):
        with self.cond:
            self.parts.append((msn, part))
            self.cond.notify_all()


class ProbeTests(unittest.TestCase):
    def test_blocking_reload_sees_each_part_without_polling_delay(self):
        srv = LLServer()
        srv.add(0, 0)
        with tempfile.TemporaryDirectory() as d:
            targets, events = os.path.join(d, "t"), os.path.join(d, "e")
            with open(targets, "w") as f:
                f.write("k http://127.0.0.1:%d/media.m3u8\n" % srv.port)
            # With polling every 2 s the probe would never ask for the next
            # part; blocking reloads must see each within a few ms.
            probe = subprocess.Popen([sys.executable, os.path.join(HERE, "latency_probe.py"), "probe",
                                      "--targets", targets, "--events", events, "--duration", "10",
                                      "--poll-ms", "2000"])
            added = {}
            for i in range(1, 8):
                msn, part = divmod(i, 4)
                # The probe must already be waiting on a blocking reload
                # for exactly the part we are about to add.
                self.assertTrue(srv.wait_request(msn, part), "no blocking reload for %d.%d" % (msn, part))
                added[(msn, part)] = time.time()
                srv.add(msn, part)
            self.assertTrue(srv.wait_request(2, 0))
            probe.terminate()
            probe.wait(timeout=10)
            seen = {}
            with open(events) as f:
                for line in f:
                    o = json.loads(line)
                    if o.get("kind") == "part":
                        seen[(o["msn"], o["part"])] = o["seen_us"] / 1e6
        srv.httpd.shutdown()
        self.assertEqual(set(added) - set(seen), set())
        worst = max(seen[k] - added[k] for k in added)
        self.assertLess(worst, 0.1)
        self.assertTrue(any("_HLS_part" in q for q in srv.requests))


if __name__ == "__main__":
    unittest_tally.main(__name__)
