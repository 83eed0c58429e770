"""End-to-end harness: the real castgate binary against a real PostgreSQL.

`make test` exports DATABASE_URL (a local cluster under var/test started by
scripts/pg.sh) and CASTGATE_BIN. Each `castgate` fixture starts `castgate
serve` on free ports with its own data_dir and waits for its `ready` log line
(poll with a deadline, no fixed sleeps), then stops it with SIGTERM and checks
it exited cleanly (under SAN=1 that also means: no leaks, no UB reports).
"""
import base64
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, os.environ.get("CASTGATE_BIN", "build/castgate"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(pred, timeout=10.0, interval=0.02, what="condition"):
    """Polls pred() until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last={last!r})")


def run_cli(*args, env=None, timeout=60):
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=e, timeout=timeout)


class HttpResponse:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


def http(method, url, body=None, headers=None, timeout=30):
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return HttpResponse(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return HttpResponse(e.code, e.headers, e.read())


class Castgate:
    """One running `castgate serve`."""

    def __init__(self, tmp, extra_env=None, args=()):
        self.data_dir = os.path.join(tmp, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.http_port = free_port()
        self.rtmp_port = free_port()
        self.http_base = f"http://127.0.0.1:{self.http_port}"
        self.rtmp_base = f"rtmp://127.0.0.1:{self.rtmp_port}/live"
        self.log_path = os.path.join(tmp, "castgate.log")
        self.env = dict(os.environ)
        self.env.update({
            "CASTGATE_HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
            "CASTGATE_RTMP_LISTEN": f"127.0.0.1:{self.rtmp_port}",
            "CASTGATE_DATA_DIR": self.data_dir,
            "CASTGATE_PUBLIC_URL": self.http_base,
            "CASTGATE_RTMP_PUBLIC_URL": self.rtmp_base,
            "CASTGATE_LOG_LEVEL": "info",
        })
        if extra_env:
            self.env.update(extra_env)
        self.args = list(args)
        self.proc = None
        self.app = None

    def start(self, timeout=20):
        self.log = open(self.log_path, "ab")
        offset = self.log.tell()  # a restart appends: wait for a new ready line
        self.proc = subprocess.Popen([BIN, "serve", *self.args], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=self.env)
        wait_until(lambda: self.proc.poll() is not None or "ready rtmp=" in self.log_text()[offset:],
                   timeout=timeout, what="castgate ready line")
        if self.proc.poll() is not None:
            raise AssertionError(f"castgate exited {self.proc.returncode}:\n{self.log_text()[-3000:]}")
        return self

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("latin1")

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError(f"castgate did not stop on {sig}:\n{self.log_text()[-3000:]}")
        self.log.close()
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    # -- API helpers -----------------------------------------------------
    def create_app(self, name="e2e"):
        r = run_cli("app", "create", name, "--json", env=self.env)
        assert r.returncode == 0, r.stderr
        self.app = json.loads(r.stdout)
        return self.app

    def auth_header(self, app=None):
        app = app or self.app
        tok = base64.b64encode(f"{app['appApiKey']}:{app['appApiSecret']}".encode()).decode()
        return {"Authorization": "Basic " + tok}

    def api(self, method, path, body=None, app=None, headers=None):
        h = dict(headers or {})
        if app is not False:
            if self.app is None and app is None:
                self.create_app()
            h.update(self.auth_header(app))
        return http(method, self.http_base + path, body, h)

    def get(self, path, headers=None):
        return http("GET", self.http_base + path, headers=headers)


@pytest.fixture
def castgate_factory(tmp_path):
    started = []

    def make(extra_env=None, args=(), start=True):
        d = tempfile.mkdtemp(dir=tmp_path)
        cg = Castgate(d, extra_env, args)
        started.append(cg)
        return cg.start() if start else cg

    yield make
    failures = []
    for cg in started:
        if cg.proc and cg.proc.poll() is None:
            rc = cg.stop()
            if rc != 0:
                failures.append(f"castgate exited {rc} at shutdown:\n{cg.log_text()[-4000:]}")
    if failures:
        pytest.fail("\n".join(failures))


@pytest.fixture
def castgate(castgate_factory):
    return castgate_factory()


def pytest_report_header(config):
    return [f"castgate binary: {BIN}", f"DATABASE_URL set: {bool(os.environ.get('DATABASE_URL'))}"]


__all__ = ["free_port", "wait_until", "run_cli", "http", "Castgate", "ROOT", "BIN"]
