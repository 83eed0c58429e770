"""Helpers for the viewer-side end-to-end tests (tokens, access codes,
events, webhooks, player page): rooms made straight in SQL so these tests do
not depend on the members / rooms API, an SSE reader and a webhook receiver."""
import http.server
import json
import os
import secrets
import socket
import subprocess
import threading
import time
import urllib.parse

from helpers import wait_until


def sql(query):
    """Runs SQL with psql against DATABASE_URL; returns rows as lists of text."""
    r = subprocess.run(["psql", os.environ["DATABASE_URL"], "-qAtX", "-v", "ON_ERROR_STOP=1",
                        "-F", "\t", "-c", query], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return [line.split("\t") for line in r.stdout.splitlines() if line]


def q(s):
    """SQL string literal."""
    return "'" + str(s).replace("'", "''") + "'"


def make_room(cg, access_level="PUBLIC", title="Algebra I", max_participants=None):
    """A member + a SCHEDULED BROADCAST_RTMP room of cg's app; returns the room id."""
    if cg.app is None:
        cg.create_app()
    app_id = cg.app["appId"]
    uid = "teacher-" + secrets.token_hex(4)
    member = sql(f"INSERT INTO members (app_id, app_user_id) VALUES ({app_id}, {q(uid)}) RETURNING id")[0][0]
    mp = "NULL" if max_participants is None else str(int(max_participants))
    rid = sql("INSERT INTO video_rooms (app_id, member_id, type, scheduled_at, title, access_level,"
              f" max_participants) VALUES ({app_id}, {member}, 'BROADCAST_RTMP', now() + interval '5 min',"
              f" {q(title)}, {q(access_level)}, {mp}) RETURNING id")[0][0]
    return int(rid)


def add_event(cg, room_id, type_="quality_changed", data=None, actor="test"):
    row = sql("INSERT INTO events (app_id, video_room_id, type, actor, data) VALUES"
              f" ({cg.app['appId']}, {room_id}, {q(type_)}, {q(actor)}, {q(json.dumps(data or {}))}::jsonb)"
              " RETURNING id")
    return int(row[0][0])


def make_token(cg, room_id, role="STUDENT", **extra):
    body = {"role": role}
    body.update(extra)
    r = cg.api("POST", f"/v2/apps/me/video-rooms/{room_id}/tokens", body)
    assert r.status == 201, r.body
    return r.json()["data"]


class SSE:
    """A raw text/event-stream reader: parses events as they arrive."""

    def __init__(self, base, path, headers=None, timeout=15):
        u = urllib.parse.urlsplit(base)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        hdrs = {"Host": f"{u.hostname}:{u.port}", "Accept": "text/event-stream"}
        hdrs.update(headers or {})
        req = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        self.sock.sendall(req.encode())
        self.buf = b""
        self.status = None
        self.headers = {}
        self.chunked = False
        self.raw = b""       # de-chunked body bytes not yet parsed into events
        self.closed = False
        self._read_head()

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
        self.buf += data
        return data

    def _read_head(self):
        while b"\r\n\r\n" not in self.buf:
            if not self._recv():
                raise AssertionError("connection closed before the response head")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"

    def _dechunk(self):
        if not self.chunked:
            self.raw += self.buf
            self.buf = b""
            return
        while True:
            if b"\r\n" not in self.buf:
                return
            size_line, rest = self.buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if len(rest) < size + 2:
                return
            if size == 0:
                self.closed = True
                self.buf = b""
                return
            self.raw += rest[:size]
            self.buf = rest[size + 2:]

    def body(self):
        """Whatever body text arrived (for error replies)."""
        self.sock.settimeout(2)
        try:
            while not self.closed:
                if not self._recv():
                    break
        except OSError:
            pass
        self._dechunk()
        return self.raw.decode(errors="replace")

    def next_event(self, timeout=10):
        """Returns {'id', 'event', 'data'} of the next event, skipping comments;
        None when the stream ended."""
        deadline = time.monotonic() + timeout
        while True:
            self._dechunk()
            while b"\n\n" in self.raw:
                block, self.raw = self.raw.split(b"\n\n", 1)
                ev = {"id": None, "event": "message", "data": ""}
                lines = block.decode().split("\n")
                if all(line.startswith(":") or line.startswith("retry:") for line in lines):
                    continue
                for line in lines:
                    if line.startswith(":"):
                        continue
                    k, _, v = line.partition(":")
                    v = v[1:] if v.startswith(" ") else v
                    if k == "data":
                        ev["data"] += v
                    elif k in ("id", "event"):
                        ev[k] = v
                return ev
            if self.closed:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no event within {timeout}s")
            self.sock.settimeout(left)
            try:
                self._recv()
            except socket.timeout:
                raise AssertionError(f"no event within {timeout}s")

    def close(self):
        self.sock.close()


class WebhookReceiver:
    """A tiny HTTP server recording every POST; `fail_first` answers that many
    requests with 500 first."""

    def __init__(self, fail_first=0):
        self.requests = []
        self.fail_left = fail_first
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(n)
                with outer.lock:
                    fail = outer.fail_left > 0
                    if fail:
                        outer.fail_left -= 1
                    outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                           "body": body, "failed": fail, "t": time.monotonic()})
                self.send_response(500 if fail else 204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self):
        with self.lock:
            return [r for r in self.requests if not r["failed"]]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


__all__ = ["sql", "q", "make_room", "add_event", "make_token", "SSE", "WebhookReceiver", "wait_until"]
