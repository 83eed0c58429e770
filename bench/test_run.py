#!/usr/bin/env python3
"""Tests of the pure helpers of bench/run.py: the median wrk run, ratios,
the static nginx location block, per-thread CPU ticks and the judgement of
the issue #7 targets.

  /usr/bin/python3 -m pytest -q bench/test_run.py
"""
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402
import unittest_tally  # noqa: E402


def wrk(rps, mb=None):
    return {"url": "u", "requests_per_s": rps, "mb_per_s": mb, "non_2xx": 1}


class WrkTests(unittest.TestCase):
    def test_median_run_is_the_middle_one_and_keeps_every_run(self):
        r = run.median_run([wrk(300.0, 3.0), wrk(100.0, 1.0), wrk(200.0, 2.0)])
        self.assertEqual(r["requests_per_s"], 200.0)
        self.assertEqual(r["mb_per_s"], 2.0)
        self.assertEqual(r["runs_requests_per_s"], [300.0, 100.0, 200.0])
        self.assertEqual(r["non_2xx"], 3)

    def test_median_run_skips_failed_runs(self):
        r = run.median_run([{"url": "u", "error": "wrk timed out"}, wrk(50.0), wrk(70.0)])
        self.assertEqual(r["requests_per_s"], 70.0)
        only_failed = run.median_run([{"url": "u", "error": "x"}])
        self.assertEqual(only_failed["error"], "x")

    def test_ratio(self):
        self.assertEqual(run.ratio(wrk(80.0), wrk(100.0), "requests_per_s"), 0.8)
        self.assertIsNone(run.ratio(wrk(80.0), wrk(0.0), "requests_per_s"))
        self.assertIsNone(run.ratio({"skipped": "no wrk"}, wrk(1.0), "requests_per_s"))


class NginxLocationTests(unittest.TestCase):
    def test_location_carries_the_headers(self):
        loc = run.nginx_location("/hls/rooms/1/2.m4s", {"Content-Type": "video/mp4",
                                                        "Cache-Control": "public, max-age=31536000, immutable"})
        self.assertIn("location = /hls/rooms/1/2.m4s {", loc)
        self.assertIn('default_type "video/mp4";', loc)
        self.assertIn('add_header Cache-Control "public, max-age=31536000, immutable";', loc)
        self.assertNotIn("Access-Control", loc)

    def test_odd_paths_are_refused(self):
        for p in ("/a b", "/../etc/passwd", "relative", "/x;y", "/a/../b"):
            with self.assertRaises(ValueError, msg=p):
                run.nginx_location(p, {})


class ThreadTicksTests(unittest.TestCase):
    def test_counts_only_the_named_threads_cpu(self):
        with open("/proc/self/comm") as f:
            me = f.read().strip()
        before = run.thread_ticks([os.getpid()], [me, "no-such-thread"])
        t = time.process_time()
        while time.process_time() - t < 0.3:
            pass
        after = run.thread_ticks([os.getpid()], [me, "no-such-thread"])
        self.assertGreaterEqual(after[me] - before[me], 0.2 * run.CLK_TCK)
        self.assertEqual(after["no-such-thread"], 0)


def result(streams=20, rooms=True, cg=None, ng=None):
    castgate = {
        "publisher": {"streams_requested": streams, "streams_connected": streams},
        "server": {"cpu_s_per_stream_second": 0.004, "cpu_s_per_stream_second_incl_finalizer": 0.005,
                   "rss_per_stream_kb": 3000.0},
        "errors": {"late_segments": 0},
        "latency": {"streams": 5, "segments": {"cadence_late": 0},
                    "parts": {"since_end_ms_after_first_segment": {"p99": 3.0}, "since_end_ms": {"p99": 1500.0}}},
        "delivery": {"same_bytes": {"segment": {"ratio_requests_per_s": 0.9, "ratio_mb_per_s": 0.9},
                                    "playlist": {"ratio_requests_per_s": 0.7, "ratio_mb_per_s": 0.6}}},
    }
    castgate.update(cg or {})
    nginx = {"server": {"cpu_s_per_stream_second": 0.01}}
    nginx.update(ng or {})
    return {"config": {"rooms_recording": rooms, "streams": streams},
            "targets": {"castgate": castgate, "nginx": nginx}}


def by_name(targets):
    return {t["target"].split()[0] + " " + t["target"].split()[1]: t for t in targets}


class TargetTests(unittest.TestCase):
    def test_each_target_against_its_threshold(self):
        t = by_name(run.judge_targets(result()))
        cpu = t["castgate CPU"]
        self.assertEqual((cpu["measured"], cpu["verdict"]), (0.4, "PASS"))
        self.assertIn("0.500 x", cpu["note"])  # with the finalizer
        self.assertEqual(t["RSS per"]["measured"], 2.93)
        self.assertEqual(t["RSS per"]["verdict"], "PASS")
        self.assertEqual(t["part availability"]["verdict"], "PASS")
        self.assertIn("1500.0", t["part availability"]["note"])
        self.assertEqual(t["segment delivery"]["verdict"], "PASS")
        self.assertEqual(t["playlist delivery"]["verdict"], "MISS")
        # 20 streams: the 300-stream target is not judged, the late count shown
        self.assertEqual(t[">= 300"]["verdict"], "not measured")
        self.assertIn("late segments 0", t[">= 300"]["note"])

    def test_misses(self):
        r = result(cg={"server": {"cpu_s_per_stream_second": 0.006, "rss_per_stream_kb": 4200.0}})
        r["targets"]["castgate"]["latency"]["parts"]["since_end_ms_after_first_segment"]["p99"] = 5.1
        t = by_name(run.judge_targets(r))
        self.assertEqual(t["castgate CPU"]["verdict"], "MISS")
        self.assertEqual(t["RSS per"]["verdict"], "MISS")
        self.assertEqual(t["part availability"]["verdict"], "MISS")

    def test_300_streams_judged_from_late_segments_and_connections(self):
        t = by_name(run.judge_targets(result(streams=300)))
        self.assertEqual(t[">= 300"]["verdict"], "PASS")
        r = result(streams=300, cg={"errors": {"late_segments": 2}})
        self.assertEqual(by_name(run.judge_targets(r))[">= 300"]["verdict"], "MISS")
        r = result(streams=300)
        r["targets"]["castgate"]["publisher"]["streams_connected"] = 299
        self.assertEqual(by_name(run.judge_targets(r))[">= 300"]["verdict"], "MISS")

    def test_not_measured_without_nginx_or_recording(self):
        r = result()
        r["targets"]["nginx"] = {"skipped": "nginx not installed"}
        self.assertEqual(by_name(run.judge_targets(r))["castgate CPU"]["verdict"], "not measured")
        t = by_name(run.judge_targets(result(rooms=False)))
        self.assertEqual(t["castgate CPU"]["verdict"], "not measured")
        self.assertIn("ROOMS=0", t["castgate CPU"]["note"])
        # the others are judged, but flagged as not the configuration
        self.assertEqual(t["RSS per"]["verdict"], "PASS")
        self.assertIn("recording off", t["RSS per"]["note"])
        self.assertNotIn("recording off", by_name(run.judge_targets(result()))["RSS per"]["note"])
        r = result()
        del r["targets"]["castgate"]["delivery"]
        self.assertEqual(by_name(run.judge_targets(r))["segment delivery"]["verdict"], "not measured")

    def test_other_media_are_flagged_not_judged_silently(self):
        r = result()
        r["config"]["media"] = "1080p60.flv"
        notes = [t["note"] for t in run.judge_targets(r) if t["verdict"] != "not measured"]
        self.assertTrue(notes)
        self.assertTrue(all("the targets are set for 720p30" in n for n in notes))
        r["config"]["media"] = "720p30.flv"
        self.assertFalse(any("720p30" in t["note"] for t in run.judge_targets(r)))

    def test_table_lists_every_target(self):
        text = run.targets_table(run.judge_targets(result()))
        self.assertEqual(text.count("PASS") + text.count("MISS") + text.count("not measured"), 6)


if __name__ == "__main__":
    unittest_tally.main(__name__)
