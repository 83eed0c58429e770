#!/usr/bin/env python3
"""latency_probe.py — ingest-to-playlist latency of HLS segments and parts.

Part of `make bench` (ARCHITECTURE §5). Two steps, so the probe can run while
the load publisher is still writing its send log:

  probe    watch media playlists and record, for every new segment and part,
           the wall-clock time it first appeared (JSON lines).
             latency_probe.py probe --targets FILE --events OUT [--duration S]
           FILE has one "LABEL URL" per line: LABEL is the stream key as the
           load publisher logs it, URL the media playlist.
           * A playlist that says CAN-BLOCK-RELOAD=YES (LL-HLS, RFC 8216bis
             §6.2.5.2) is watched with blocking reloads: _HLS_msn/_HLS_part
             ask for the next part (or the next segment when there are no
             parts); the answer arrives the moment it exists.
           * Any other playlist (nginx-rtmp) is polled every --poll-ms (50).
           Stops after --duration seconds or on SIGTERM/SIGINT.

  analyze  join the events with loadpub's send log (INDEX KEY FLV_TS_MS
           KEYFRAME WALL_US per video frame) by media time and print JSON:
             latency_probe.py analyze --events FILE --sendlog FILE [--late-ms 1000]
           Media time of a segment:
           * from its URI when it carries the stream timestamp (nginx-rtmp's
             `hls_fragment_naming timestamp`: NAME-<90 kHz ts>.ts);
           * else by PROGRAM-DATE-TIME (castgate: the arrival time of the
             segment's first frame): the first segment starts at the
             keyframe sent nearest that time (within --pdt-tol-ms), which
             also joins a room playlist that began mid-stream; each next
             segment starts where the previous ended (EXTINF);
           * else by order: the first segment of the stream is media time 0
             and each next one starts where the previous ended (EXTINF);
             a part starts at its segment's start plus the earlier parts.
           For each segment/part two latencies are reported:
             since_first_frame = appeared - publisher send time of its first frame
             since_end         = appeared - send time of the frame after its last
                                 one (the frame that lets a packager close it):
                                 the packaging + publication delay.
           With EXT-X-PROGRAM-DATE-TIME, appeared - PDT is reported as well.
           A segment is late when since_end > --late-ms.
           first_playlist = the first playlist that lists anything (a segment
           or a part) - send time of the stream's first frame: publish to
           first playable playlist (nginx: polled, so up to --poll-ms more).

Python standard library only.
"""

import argparse
import bisect
import http.client
import json
import re
import signal
import sys
import threading
import time
import urllib.parse

# ---------------------------------------------------------------- playlist


def parse_attrs(s):
    """Attribute list of an HLS tag (RFC 8216bis §4.2) -> dict."""
    out = {}
    for m in re.finditer(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', s):
        v = m.group(2)
        out[m.group(1)] = v[1:-1] if v.startswith('"') else v
    return out


def parse_media_playlist(text):
    """Returns a dict: msn0, segments [(msn, dur_s, uri, pdt, parts)],
    tail_parts (parts of the segment in progress, msn = next), flags.
    A part is (dur_s, uri, independent)."""
    pl = {"msn0": 0, "segments": [], "tail_parts": [], "can_block": False,
          "endlist": False, "part_target": None, "target": None}
    lines = text.splitlines()
    if not lines or not lines[0].startswith("#EXTM3U"):
        raise ValueError("not a playlist")
    skipped = 0
    pending_dur = None
    pdt = None
    parts = []
    segs = []
    for line in lines[1:]:
        line = line.strip()
        if not line:
            continue
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            pl["msn0"] = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            pl["target"] = float(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-SERVER-CONTROL:"):
            a = parse_attrs(line.split(":", 1)[1])
            pl["can_block"] = a.get("CAN-BLOCK-RELOAD") == "YES"
        elif line.startswith("#EXT-X-PART-INF:"):
            a = parse_attrs(line.split(":", 1)[1])
            pl["part_target"] = float(a.get("PART-TARGET", "0") or 0)
        elif line.startswith("#EXT-X-SKIP:"):
            a = parse_attrs(line.split(":", 1)[1])
            skipped += int(a.get("SKIPPED-SEGMENTS", "0"))
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pdt = line.split(":", 1)[1]
        elif line.startswith("#EXT-X-PART:"):
            a = parse_attrs(line.split(":", 1)[1])
            parts.append((float(a.get("DURATION", "0")), a.get("URI", ""),
                          a.get("INDEPENDENT") == "YES"))
        elif line.startswith("#EXTINF:"):
            pending_dur = float(line.split(":", 1)[1].split(",")[0])
        elif line.startswith("#EXT-X-ENDLIST"):
            pl["endlist"] = True
        elif not line.startswith("#"):
            msn = pl["msn0"] + skipped + len(segs)
            segs.append((msn, pending_dur or 0.0, line, pdt, parts))
            pending_dur, pdt, parts = None, None, []
    pl["segments"] = segs
    pl["tail_parts"] = parts
    pl["next_msn"] = pl["msn0"] + skipped + len(segs)
    return pl


def next_reload_query(pl):
    """The blocking reload that asks for what comes next (RFC 8216bis
    §6.2.5.2): the part after the last one listed, or, without parts, the
    next segment. Parts of a segment in progress belong to next_msn."""
    if pl["part_target"]:
        return {"_HLS_msn": pl["next_msn"], "_HLS_part": len(pl["tail_parts"])}
    return {"_HLS_msn": pl["next_msn"]}


def pdt_epoch(pdt):
    """ISO-8601 EXT-X-PROGRAM-DATE-TIME -> epoch seconds (or None)."""
    if not pdt:
        return None
    s = pdt.strip().replace("Z", "+00:00")
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?([+-]\d\d:?\d\d)?$", s)
    if not m:
        return None
    import datetime
    base = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    frac = float(m.group(2) or 0)
    tz = m.group(3) or "+00:00"
    sign = 1 if tz[0] == "+" else -1
    tzd = tz[1:].replace(":", "")
    off = sign * (int(tzd[:2]) * 3600 + int(tzd[2:]) * 60)
    epoch = (base - datetime.datetime(1970, 1, 1)).total_seconds()
    return epoch + frac - off


NGINX_TS_NAME = re.compile(r"-(\d+)\.ts$")

# ---------------------------------------------------------------- probe


class Watcher(threading.Thread):
    """Watches one media playlist; appends events to a shared list."""

    def __init__(self, label, url, args, sink, stop):
        super().__init__(daemon=True)
        self.label, self.url, self.args = label, url, args
        self.sink, self.stop = sink, stop
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.path = u.path + ("?" + u.query if u.query else "")
        self.conn = None
        self.seen_segs = set()
        self.seen_parts = set()
        self.requests = 0
        self.errors = 0
        self.not_found = 0

    def fetch(self, query=None, timeout=10.0):
        path = self.path
        if query:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(query)
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
                self.conn.timeout = timeout
                if self.conn.sock is not None:
                    self.conn.sock.settimeout(timeout)
                self.conn.request("GET", path)
                r = self.conn.getresponse()
                body = r.read()
                self.requests += 1
                return r.status, body.decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 1:
                    self.errors += 1
                    return None, None
        return None, None

    def emit(self, now, kind, msn, part, dur, uri, pdt, independent=None):
        self.sink.append({"stream": self.label, "kind": kind, "msn": msn, "part": part,
                          "dur_s": dur, "uri": uri, "pdt": pdt, "independent": independent,
                          "seen_us": int(now * 1e6)})

    def record(self, pl, now):
        for msn, dur, uri, pdt, parts in pl["segments"]:
            for i, (pd, puri, ind) in enumerate(parts):
                if (msn, i) not in self.seen_parts:
                    self.seen_parts.add((msn, i))
                    self.emit(now, "part", msn, i, pd, puri, None, ind)
            if msn not in self.seen_segs:
                self.seen_segs.add(msn)
                self.emit(now, "segment", msn, None, dur, uri, pdt)
        msn = pl["next_msn"]
        for i, (pd, puri, ind) in enumerate(pl["tail_parts"]):
            if (msn, i) not in self.seen_parts:
                self.seen_parts.add((msn, i))
                self.emit(now, "part", msn, i, pd, puri, None, ind)

    def run(self):
        poll = self.args.poll_ms / 1000.0
        blocking = None
        nxt = time.monotonic()
        while not self.stop.is_set():
            query = None
            if blocking:
                query = blocking
            status, body = self.fetch(query, timeout=10.0 if blocking else 2.0)
            now = time.time()
            pl = None
            if status == 200:
                try:
                    pl = parse_media_playlist(body)
                except ValueError:
                    self.errors += 1
            elif status == 404:
                self.not_found += 1
            elif status is not None:
                self.errors += 1
            if pl is not None:
                self.record(pl, now)
                if pl["endlist"]:
                    break
                if pl["can_block"] and self.args.blocking:
                    blocking = next_reload_query(pl)
                    continue
            blocking = None
            nxt += poll
            delay = nxt - time.monotonic()
            if delay < 0:
                nxt = time.monotonic()
                delay = 0
            self.stop.wait(delay)
        if self.conn is not None:
            self.conn.close()


def cmd_probe(args):
    targets = []
    with open(args.targets) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                label, url = line.split(None, 1)
                targets.append((label, url.strip()))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sink = []
    watchers = [Watcher(label, url, args, sink, stop) for label, url in targets]
    t0 = time.monotonic()
    for w in watchers:
        w.start()
    while not stop.is_set() and time.monotonic() - t0 < args.duration:
        if not any(w.is_alive() for w in watchers):
            break
        stop.wait(0.2)
    stop.set()
    # A watcher may sit in a blocking reload for seconds; the events so far
    # are what counts, so do not wait for it long (threads are daemons).
    deadline = time.monotonic() + 1.0
    for w in watchers:
        w.join(timeout=max(0.0, deadline - time.monotonic()))
    sink = list(sink)
    with open(args.events, "w") as f:
        f.write(json.dumps({"meta": {"poll_ms": args.poll_ms, "blocking": bool(args.blocking),
                                     "streams": len(targets),
                                     "requests": sum(w.requests for w in watchers),
                                     "errors": sum(w.errors for w in watchers),
                                     "not_found": sum(w.not_found for w in watchers)}}) + "\n")
        for e in sink:
            f.write(json.dumps(e) + "\n")
    return 0

# ---------------------------------------------------------------- analyze


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-q * len(v) // 1)) - 1))
    return round(v[k], 1)


def summary(values):
    return {"count": len(values), "p50": pct(values, 0.50), "p95": pct(values, 0.95),
            "p99": pct(values, 0.99), "max": round(max(values), 1) if values else None}


def load_sendlog(path):
    """KEY -> (sorted FLV timestamps in ms, wall µs of each)."""
    frames = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                continue
            p = line.split()
            if len(p) != 5:
                continue
            frames.setdefault(p[1], []).append((int(p[2]), int(p[4]), p[3] == "1"))
    out = {}
    for k, v in frames.items():
        v.sort()
        out[k] = ([x[0] for x in v], [x[1] for x in v], [x[0] for x in v if x[2]], [x[1] for x in v if x[2]])
    return out


def keyframe_at_wall(frames, wall_us, tol_ms):
    """FLV timestamp of the keyframe sent nearest the wall time wall_us
    (within tol_ms), or None: the media time of a segment whose
    PROGRAM-DATE-TIME is the arrival time of its first frame."""
    if not frames or len(frames) < 4 or not frames[2]:
        return None
    kts, kwall = frames[2], frames[3]
    i = bisect.bisect_left(kwall, wall_us)
    best = min((j for j in (i - 1, i) if 0 <= j < len(kwall)), key=lambda j: abs(kwall[j] - wall_us))
    return kts[best] if abs(kwall[best] - wall_us) <= tol_ms * 1000.0 else None


def nearest_send(frames, media_ms, tol_ms):
    """Wall µs at which the frame nearest media_ms (within tol) was sent."""
    if not frames:
        return None
    ts, wall = frames[0], frames[1]
    i = bisect.bisect_left(ts, media_ms - tol_ms)
    best = None
    while i < len(ts) and ts[i] <= media_ms + tol_ms:
        if best is None or abs(ts[i] - media_ms) < abs(ts[best] - media_ms):
            best = i
        i += 1
    return None if best is None else wall[best]


def next_send(frames, media_ms, slack_ms):
    """Wall µs of the first frame at or after media_ms (less slack_ms for
    rounding): the frame that closes a segment or part ending at media_ms.
    None when the stream ended before it, or when that frame is the last one
    sent: then what closes the segment or part is the publisher leaving (the
    server cannot know the frame's duration before), not a frame."""
    if not frames:
        return None
    ts, wall = frames[0], frames[1]
    i = bisect.bisect_left(ts, media_ms - slack_ms)
    return wall[i] if i < len(ts) - 1 else None


def cmd_analyze(args):
    meta = {}
    events = []
    with open(args.events) as f:
        for line in f:
            o = json.loads(line)
            if "meta" in o:
                meta = o["meta"]
            else:
                events.append(o)
    sendlog = load_sendlog(args.sendlog)

    by_stream = {}
    for e in events:
        by_stream.setdefault(e["stream"], []).append(e)

    out = {"segments": {}, "parts": {}}
    seg_first, seg_end, part_first, part_end, pdt_lat = [], [], [], [], []
    # Without the stream's first segment: until it exists there is no
    # playlist (404, polled), so it and its parts show the start-up, not the
    # steady state.
    seg_end_steady, part_end_steady = [], []
    late = 0
    unmatched = 0
    gaps = []
    first_playlist = []
    join_modes = set()
    for label, evs in by_stream.items():
        frames = sendlog.get(label)
        if frames and frames[1] and evs:
            first_playlist.append((min(e["seen_us"] for e in evs) - min(frames[1])) / 1000.0)
        segs = sorted((e for e in evs if e["kind"] == "segment"), key=lambda e: e["msn"])
        parts = sorted((e for e in evs if e["kind"] == "part"), key=lambda e: (e["msn"], e["part"]))
        # Media start of each segment.
        start = {}
        for e in segs:
            m = NGINX_TS_NAME.search(e["uri"] or "")
            if m and args.join in ("auto", "name"):
                start[e["msn"]] = int(m.group(1)) / 90.0
                join_modes.add("name")
        acc = None
        if not start and segs and args.join in ("auto", "pdt"):
            # A stream that joined mid-way (a room that went LIVE after the
            # key did) starts at a keyframe: the one sent when its first
            # segment's PROGRAM-DATE-TIME says that segment began.
            p0 = pdt_epoch(segs[0].get("pdt"))
            if p0 is not None:
                acc = keyframe_at_wall(frames, p0 * 1e6, args.pdt_tol_ms)
                if acc is not None:
                    join_modes.add("pdt")
        if not start and segs and acc is None and args.join in ("auto", "order"):
            join_modes.add("order")
            acc = 0.0
        if not start and segs and acc is not None:
            acc = float(acc)
            first = segs[0]["msn"]
            durs = {e["msn"]: e["dur_s"] for e in segs}
            for msn in range(first, segs[-1]["msn"] + 2):
                start[msn] = acc
                acc += durs.get(msn, 0.0) * 1000.0
        prev_seen = None
        for e in segs:
            m0 = start.get(e["msn"])
            if m0 is None:
                unmatched += 1
                continue
            t_first = nearest_send(frames, m0, args.tol_ms)
            t_end = next_send(frames, m0 + e["dur_s"] * 1000.0, args.slack_ms)
            if t_first is None:
                unmatched += 1
                continue
            seg_first.append((e["seen_us"] - t_first) / 1000.0)
            if t_end is not None:
                d = (e["seen_us"] - t_end) / 1000.0
                seg_end.append(d)
                if e["msn"] != segs[0]["msn"]:
                    seg_end_steady.append(d)
                if d > args.late_ms:
                    late += 1
            p = pdt_epoch(e.get("pdt"))
            if p is not None:
                pdt_lat.append(e["seen_us"] / 1000.0 - p * 1000.0)
            if prev_seen is not None:
                gaps.append((e["seen_us"] - prev_seen) / 1000.0)
            prev_seen = e["seen_us"]
        # Parts: segment start + earlier parts of the same segment.
        acc_by_msn = {}
        for e in parts:
            m0 = start.get(e["msn"])
            if m0 is None:
                continue
            off = acc_by_msn.get(e["msn"], 0.0)
            acc_by_msn[e["msn"]] = off + e["dur_s"] * 1000.0
            t_first = nearest_send(frames, m0 + off, args.tol_ms)
            t_end = next_send(frames, m0 + off + e["dur_s"] * 1000.0, args.slack_ms)
            if t_first is not None:
                part_first.append((e["seen_us"] - t_first) / 1000.0)
            if t_end is not None:
                part_end.append((e["seen_us"] - t_end) / 1000.0)
                if segs and e["msn"] != segs[0]["msn"]:
                    part_end_steady.append((e["seen_us"] - t_end) / 1000.0)

    out["streams"] = len(by_stream)
    out["join"] = "+".join(sorted(join_modes)) or None
    out["poll_ms"] = None if meta.get("blocking") and part_first else meta.get("poll_ms")
    out["probe"] = meta
    # Cadence: a playlist update that came more than half a segment later
    # than the usual interval (nginx-rtmp's "late vs. expected cadence").
    typical = pct(gaps, 0.5)
    cadence_late = sum(1 for g in gaps if typical and g > 1.5 * typical)
    out["segments"] = {"since_first_frame_ms": summary(seg_first), "since_end_ms": summary(seg_end),
                       "late": late, "late_threshold_ms": args.late_ms, "unmatched": unmatched,
                       "interarrival_ms": summary(gaps), "cadence_late": cadence_late}
    out["segments"]["since_end_ms_after_first"] = summary(seg_end_steady)
    out["parts"] = {"since_first_frame_ms": summary(part_first), "since_end_ms": summary(part_end),
                    "since_end_ms_after_first_segment": summary(part_end_steady)}
    out["first_playlist_ms"] = summary(first_playlist)
    if pdt_lat:
        out["segments"]["since_pdt_ms"] = summary(pdt_lat)
    text = json.dumps(out, indent=2)
    if args.json and args.json != "-":
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--targets", required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--duration", type=float, default=120.0)
    p.add_argument("--poll-ms", type=float, default=50.0)
    p.add_argument("--no-blocking", dest="blocking", action="store_false")
    a = sub.add_parser("analyze")
    a.add_argument("--events", required=True)
    a.add_argument("--sendlog", required=True)
    a.add_argument("--json", default="-")
    a.add_argument("--late-ms", type=float, default=1000.0)
    a.add_argument("--tol-ms", type=float, default=100.0,
                   help="how far the first frame may be from the media time it is matched to")
    a.add_argument("--slack-ms", type=float, default=10.0,
                   help="rounding allowance when finding the frame that closes a segment")
    a.add_argument("--pdt-tol-ms", type=float, default=500.0,
                   help="how far a segment's PROGRAM-DATE-TIME may be from the send time of the keyframe it is joined to")
    a.add_argument("--join", choices=("auto", "name", "pdt", "order"), default="auto")
    args = ap.parse_args()
    return cmd_probe(args) if args.cmd == "probe" else cmd_analyze(args)


if __name__ == "__main__":
    sys.exit(main())
