"""Foundation: CLI, configuration errors, migrations, /healthz, clean shutdown."""
import json
import os
import re
import signal
import subprocess

from helpers import BIN, http, run_cli, wait_until


def test_version_and_help_exit_zero():
    r = run_cli("version")
    assert r.returncode == 0
    assert re.match(r"castgate \d+\.\d+\.\d+", r.stdout)
    for args in (["--help"], ["serve", "--help"], ["migrate", "--help"], ["app", "--help"]):
        r = run_cli(*args)
        assert r.returncode == 0, (args, r.stderr)
        assert "usage" in r.stdout.lower()


def test_unknown_subcommand_is_one_line_error():
    r = run_cli("frobnicate")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "unknown subcommand" in r.stderr and "frobnicate" in r.stderr


def test_unknown_flag_is_one_line_error():
    r = run_cli("serve", "--no-such-flag")
    assert r.returncode == 2
    assert "--no-such-flag" in r.stderr and r.stderr.strip().count("\n") == 0


def test_bad_setting_value_names_the_setting():
    r = run_cli("serve", "--segment_duration_ms", "fast")
    assert r.returncode == 2
    assert "segment_duration_ms" in r.stderr
    r = run_cli("serve", env={"CASTGATE_HTTP_LISTEN": "nowhere"})
    assert r.returncode == 2
    assert "http_listen" in r.stderr and "CASTGATE_HTTP_LISTEN" in r.stderr


def test_malformed_config_line_names_file_and_line(tmp_path):
    cfg = tmp_path / "castgate.conf"
    cfg.write_text("http_listen = 127.0.0.1:0\nthis is not a setting line\n")
    r = run_cli("serve", "--config", str(cfg))
    assert r.returncode == 2
    assert str(cfg) in r.stderr and ":2" in r.stderr


def test_unreachable_database_is_one_line_error(tmp_path):
    r = run_cli("migrate", env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"})
    assert r.returncode == 1
    assert "database_url" in r.stderr
    assert r.stderr.strip().count("\n") == 0
    r = run_cli("serve", "--data_dir", str(tmp_path),
                env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"})
    assert r.returncode == 1
    assert "cannot connect" in r.stderr


def test_migrate_is_idempotent():
    r1 = run_cli("migrate")
    assert r1.returncode == 0, r1.stderr
    r2 = run_cli("migrate")
    assert r2.returncode == 0, r2.stderr
    assert "migrations applied: 0" in r2.stdout


def test_concurrent_migrations_apply_once():
    procs = [subprocess.Popen([BIN, "migrate"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs


def test_app_create_json_prints_one_object():
    r = run_cli("app", "create", "e2e-foundation", "--json")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert set(obj) == {"appId", "appApiKey", "appApiSecret", "orgId"}
    assert isinstance(obj["appId"], int) and obj["appId"] > 0
    assert len(obj["appApiSecret"]) >= 32
    r2 = json.loads(run_cli("app", "create", "e2e-foundation", "--json").stdout)
    assert r2["appApiKey"] != obj["appApiKey"] and r2["appApiSecret"] != obj["appApiSecret"]


def test_app_create_requires_name():
    r = run_cli("app", "create")
    assert r.returncode == 2
    assert "NAME" in r.stderr


def test_app_secret_is_not_stored_in_clear():
    obj = json.loads(run_cli("app", "create", "e2e-hash", "--json").stdout)
    out = subprocess.run(["psql", os.environ["DATABASE_URL"], "-tAc",
                          f"SELECT api_secret_sha256 FROM apps WHERE id = {int(obj['appId'])}"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    stored = out.stdout.strip()
    assert stored and obj["appApiSecret"] not in stored and len(stored) == 64


def test_serve_logs_ready_and_healthz_ok(castgate):
    log = castgate.log_text()
    m = re.search(r"ready rtmp=(\S+) http=(\S+)", log)
    assert m, log
    assert m.group(2).endswith(f":{castgate.http_port}")
    r = castgate.get("/healthz")
    assert r.status == 200
    body = r.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["dataDir"] == "ok"


def test_healthz_reports_unwritable_data_dir(castgate):
    if os.geteuid() == 0:
        # root ignores permissions: make the path a file's child instead
        os.rename(castgate.data_dir, castgate.data_dir + ".moved")
        open(castgate.data_dir, "w").close()
    else:
        os.chmod(castgate.data_dir, 0o500)
    try:
        r = castgate.get("/healthz")
        assert r.status == 503
        assert r.json()["dataDir"] != "ok"
    finally:
        if os.geteuid() == 0:
            os.remove(castgate.data_dir)
            os.rename(castgate.data_dir + ".moved", castgate.data_dir)
        else:
            os.chmod(castgate.data_dir, 0o700)


def test_unknown_path_is_json_404(castgate):
    r = castgate.get("/no/such/thing")
    assert r.status == 404
    assert r.json()["errorCode"] == "NOT_FOUND"


def test_wrong_method_is_405_with_allow(castgate):
    r = http("POST", castgate.http_base + "/healthz", body={})
    assert r.status == 405
    assert "GET" in r.headers["Allow"]


def test_cors_preflight_answered(castgate):
    r = http("OPTIONS", castgate.http_base + "/v2/apps/me/video-rooms",
             headers={"Origin": "https://example.com", "Access-Control-Request-Method": "POST"})
    assert r.status == 204
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]


def test_sigint_and_sigterm_shut_down_cleanly(castgate_factory):
    for sig in (signal.SIGINT, signal.SIGTERM):
        cg = castgate_factory()
        assert cg.get("/healthz").status == 200
        assert cg.stop(sig) == 0
        assert "serve: stopped" in cg.log_text()


def test_port_in_use_is_a_clear_error(castgate, castgate_factory):
    cg = castgate_factory(start=False)
    cg.env["CASTGATE_HTTP_LISTEN"] = f"127.0.0.1:{castgate.http_port}"
    r = subprocess.run([BIN, "serve"], env=cg.env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "cannot listen" in r.stderr


def test_metrics_prometheus_text(castgate):
    castgate.get("/healthz")
    r = castgate.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.body.decode()
    for name in ("castgate_live_streams", "castgate_segments_written_total", "castgate_sweeper_runs_total",
                 "castgate_db_up 1", "castgate_viewers ", 'castgate_recordings{state="READY"}', "castgate_db_latency_seconds"):
        assert name in text, name
    assert 'castgate_http_requests_total{code="200"}' in text


def test_ready_line_is_logged_at_any_log_level(castgate_factory):
    cg = castgate_factory(extra_env={"CASTGATE_LOG_LEVEL": "error"})
    assert "ready rtmp=" in cg.log_text()
    assert " info migrate" not in cg.log_text()
