"""The reference stack behaves like the TaylorDash deployment the runbook was written for:
every endpoint, the API key and login rules, validate_p1.sh's output, the deploy pipeline's
tags and backup files, and each fault mode of the bad version, against the real engine."""
from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.integration

SUMMARY = re.compile(r"^Summary: (\d+)/(\d+) checks passed \(([\d.]+)%\)$")
CHECK = re.compile(r"^\[(PASS|FAIL)\] (\S+) - (.*)$")


def request(url, method="GET", headers=None, body=None, timeout=5):
    """One HTTP request: (status, parsed JSON or text, elapsed seconds)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            status, raw = resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read().decode()
    elapsed = time.monotonic() - started
    try:
        return status, json.loads(raw), elapsed
    except ValueError:
        return status, raw, elapsed


def wait_for(predicate, deadline=30.0, interval=0.1):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met within %ss" % deadline)


def validate(stack):
    proc = subprocess.run(["./ops/validate_p1.sh"], cwd=stack.dir, capture_output=True, text=True,
                          timeout=60, check=False)
    lines = proc.stdout.splitlines()
    checks = {m.group(2): m.group(1) for m in map(CHECK.match, lines) if m}
    summary = SUMMARY.match(lines[-1])
    assert summary, proc.stdout
    return proc.returncode, checks, summary.groups(), proc.stdout


@pytest.fixture(scope="module")
def good_stack(module_stack_factory):
    return module_stack_factory("good")


def test_health_names_version_and_schema(good_stack):
    status, body, _elapsed = request(good_stack.url("backend", "/health/ready"))
    assert status == 200
    assert body == {"status": "ready", "version": "v1", "database": "ok", "schema_revision": "0003"}


def test_projects_require_the_api_key(good_stack):
    key = good_stack.env["TD_API_KEY"]
    assert request(good_stack.url("backend", "/api/v1/projects"))[0] == 401
    assert request(good_stack.url("backend", "/api/v1/projects"), headers={"X-API-Key": key + "x"})[0] == 401
    status, body, _elapsed = request(good_stack.url("backend", "/api/v1/projects"), headers={"X-API-Key": key})
    assert status == 200
    assert [p["name"] for p in body] == ["Apollo", "Borealis", "Cassini"]


def test_login_issues_a_session_token(good_stack):
    env = good_stack.env
    url = good_stack.url("backend", "/api/v1/auth/login")
    status, body, _elapsed = request(url, "POST", body={"username": "admin", "password": env["TD_ADMIN_PASSWORD"]})
    assert status == 200
    assert re.fullmatch(r"[0-9a-f]{64}", body["session_token"])
    assert body["expires_in"] == 3600
    assert request(url, "POST", body={"username": "admin", "password": "wrong"})[0] == 401
    assert request(url, "POST", body={"username": "nobody", "password": "x"})[0] == 401
    assert request(url, "POST", body={"password": "x"})[0] == 400


def test_login_reads_the_auth_config_file_in_the_container(good_stack):
    """The seed's auth rollback copies /app/backup/auth_config.py over /app/auth_config.py."""
    env = good_stack.env
    url = good_stack.url("backend", "/api/v1/auth/login")
    creds = {"username": "admin", "password": env["TD_ADMIN_PASSWORD"]}
    good_stack.compose("exec", "-T", "backend", "sh", "-c",
                       "echo 'LOGIN_ENABLED = False' >> /app/auth_config.py")
    try:
        assert request(url, "POST", body=creds)[0] == 503
    finally:
        good_stack.compose("exec", "-T", "backend", "cp", "/app/backup/auth_config.py", "/app/auth_config.py")
    assert request(url, "POST", body=creds)[0] == 200


def test_plugins_read_and_delete_plugins_config(good_stack):
    key = {"X-API-Key": good_stack.env["TD_API_KEY"]}
    base = good_stack.url("backend", "/api/v1/plugins")
    assert request(base)[0] == 401
    status, body, _elapsed = request(base, headers=key)
    assert status == 200 and [p["name"] for p in body] == ["analytics", "notifications", "export-csv"]
    assert request(base + "/analytics", headers=key)[1]["version"] == "1.2.0"
    assert request(base + "/missing", headers=key)[0] == 404
    assert request(base + "/export-csv", "DELETE", headers=key)[0] == 200
    on_disk = json.loads((good_stack.dir / "plugins_config.json").read_text())
    assert [p["name"] for p in on_disk["plugins"]] == ["analytics", "notifications"]
    assert request(base + "/export-csv", "DELETE", headers=key)[0] == 404
    # the seed's plugin rollback: copy the backup over the live file; the backend sees it at once
    (good_stack.dir / "plugins_config.json").write_text((good_stack.dir / "plugins_config.backup.json").read_text())
    assert len(request(base, headers=key)[1]) == 3


def test_frontend_and_tls_front(good_stack):
    status, body, _elapsed = request(good_stack.url("frontend", "/"))
    assert status == 200 and 'data-version="v1"' in body
    assert request(good_stack.url("frontend", "/app.css"))[0] == 200
    status, body, _elapsed = request(good_stack.url("nginx", "/health/ready"))
    assert status == 200 and body["version"] == "v1"
    assert "TaylorDash" in request(good_stack.url("nginx", "/"))[1]
    cert = (good_stack.dir / "certs" / "taylordash.crt").read_text()
    out = subprocess.run(["openssl", "x509", "-noout", "-subject", "-issuer"], input=cert,
                         capture_output=True, text=True, check=True).stdout
    assert out.count("CN = taylordash.local") == 2  # self-signed: subject == issuer
    assert oct((good_stack.dir / "certs" / "taylordash.key").stat().st_mode & 0o777) == "0o600"


def test_database_and_migrations(good_stack):
    out = good_stack.compose("exec", "-T", "postgres", "psql", "-U", "taylordash", "-d", "taylordash",
                             "-Atc", "SELECT count(*) FROM users; SELECT version_num FROM alembic_version").stdout
    assert out.split() == ["1", "0003"]
    assert good_stack.compose("exec", "-T", "backend", "alembic", "-c", "/app/alembic.ini",
                              "current").stdout.split()[0] == "0003"
    good_stack.compose("exec", "-T", "backend", "alembic", "-c", "/app/alembic.ini", "downgrade", "-1")
    assert request(good_stack.url("backend", "/health/ready"))[1]["schema_revision"] == "0002"
    sql = good_stack.compose("exec", "-T", "backend", "alembic", "-c", "/app/alembic.ini", "upgrade",
                             "0002:0003", "--sql").stdout
    assert "ALTER TABLE projects ADD COLUMN status" in sql
    good_stack.compose("exec", "-T", "backend", "alembic", "-c", "/app/alembic.ini", "upgrade", "head")
    assert request(good_stack.url("backend", "/health/ready"))[1]["schema_revision"] == "0003"


def test_database_password_is_the_stacks_own(good_stack):
    """A stackctl stack's cluster is a copy of the one the image was built with: the password set in it
    at the first start is this stack's, and no other is let in over TCP."""
    env = good_stack.env

    def login(password):
        return good_stack.compose("exec", "-T", "-e", "PGPASSWORD=" + password, "postgres", "psql", "-X", "-h",
                                  "127.0.0.1", "-U", env["TD_DB_USER"], "-d", env["TD_DB_NAME"], "-Atc",
                                  "SELECT current_user", check=False)

    assert login(env["TD_DB_PASSWORD"]).stdout.strip() == env["TD_DB_USER"]
    wrong = login("not-" + env["TD_DB_PASSWORD"])
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr


def test_another_superuser_gets_initdb():
    """A superuser other than the one of the image's ready-made cluster: initdb on the first start, with
    the password given, as before the ready-made cluster existed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    name = "tdtest-pg-initdb-%d" % os.getpid()
    password = "pw-" + os.urandom(6).hex()
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network", "host", "-e", "TD_DB_USER=ops",
                    "-e", "TD_DB_NAME=opsdb", "-e", "TD_DB_PASSWORD=" + password, "-e", "TD_DB_PORT=%d" % port,
                    "tdref_postgres:latest"], check=True, capture_output=True, timeout=60)
    try:
        def sql(*args, pw=password):
            return subprocess.run(["docker", "exec", "-e", "PGPASSWORD=" + pw, name, "psql", "-X", "-h", "127.0.0.1",
                                   "-p", str(port), "-U", "ops", "-d", "opsdb", "-Atc", *args],
                                  capture_output=True, text=True, timeout=30, check=False)
        wait_for(lambda: sql("SELECT 1").returncode == 0, deadline=60, interval=0.2)
        assert sql("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user").stdout.strip() == "ops|t"
        assert "password authentication failed" in sql("SELECT 1", pw="wrong").stderr
        # Made by initdb for "ops": the ready-made cluster's superuser is not in it.
        assert sql("SELECT count(*) FROM pg_roles WHERE rolname = 'taylordash'").stdout.strip() == "0"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)


def test_validate_p1_all_pass(good_stack):
    rc, checks, (passed, total, rate), out = validate(good_stack)
    assert rc == 0, out
    assert set(checks.values()) == {"PASS"}
    assert list(checks) == ["backend_health", "auth_login", "auth_rejects_bad_password", "api_projects",
                            "api_key_required", "api_plugins", "frontend", "nginx_tls", "database"]
    assert (passed, total, rate) == ("9", "9", "100.0")
    env = good_stack.env
    assert env["TD_API_KEY"] not in out and env["TD_ADMIN_PASSWORD"] not in out


def test_pg_dump_backup_named_as_the_seed_expects(good_stack):
    path = good_stack.ctl("backup", "--dir", str(good_stack.dir)).stdout.strip()
    assert re.search(r"/backup_\d{8}_\d{6}\.sql$", path)
    text = open(path).read()
    assert "CREATE TABLE public.users" in text and "COPY public.projects" in text


def test_backend_stops_fast_on_sigterm(good_stack):
    started = time.monotonic()
    good_stack.compose("stop", "backend")
    assert time.monotonic() - started < 5
    good_stack.compose("start", "backend")
    wait_for(lambda: request(good_stack.url("backend", "/health/ready"))[0] == 200 if _answers(good_stack) else False)
    # The database is at this build's head: the start did not run alembic again.
    logs = good_stack.compose("logs", "--no-log-prefix", "backend").stdout
    assert "backend: database already at this build's head (0003)" in logs, logs[-2000:]


def _answers(stack):
    try:
        request(stack.url("backend", "/health/ready"), timeout=1)
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- the bad version

@pytest.fixture(scope="module")
def bad_stack(module_stack_factory):
    return module_stack_factory("bad")


def test_deploy_keeps_previous_and_backup_files(bad_stack):
    v1 = bad_stack.image_id("tdref_backend:v1")
    v2 = bad_stack.image_id("tdref_backend:v2")
    before_env = (bad_stack.dir / ".env").read_text()
    result = bad_stack.deploy("v2", "unhealthy")
    prefix = bad_stack.env["TD_IMAGE_PREFIX"]
    assert bad_stack.image_id(f"{prefix}_backend:previous") == v1
    assert bad_stack.image_id(f"{prefix}_backend:latest") == v2
    assert bad_stack.image_id(f"{prefix}_backend:v2") == v2
    env_backup, compose_backup = result["backups"]
    assert re.search(r"/\.env\.backup\.\d{8}_\d{6}$", env_backup)
    assert re.search(r"/docker-compose\.backup\.\d{8}_\d{6}$", compose_backup)
    assert open(env_backup).read() == before_env
    wait_for(lambda: bad_stack.container_image_id("backend") == v2)


def test_fault_unhealthy(bad_stack):
    bad_stack.ctl("fault", "--dir", str(bad_stack.dir), "unhealthy")
    status, body = wait_for(lambda: _status_body(bad_stack))
    assert status == 503 and body["version"] == "v2"
    rc, checks, (passed, total, _rate), _out = validate(bad_stack)
    assert rc == 1 and checks["backend_health"] == "FAIL" and int(passed) < int(total)


def test_fault_errors_share(bad_stack):
    bad_stack.ctl("fault", "--dir", str(bad_stack.dir), "errors", "--error-rate", "0.25")
    wait_for(lambda: _status_body(bad_stack))
    key = {"X-API-Key": bad_stack.env["TD_API_KEY"]}
    statuses = [request(bad_stack.url("backend", "/api/v1/projects"), headers=key)[0] for _i in range(40)]
    assert statuses.count(500) == 10 and statuses.count(200) == 30


def test_fault_slow(bad_stack):
    bad_stack.ctl("fault", "--dir", str(bad_stack.dir), "slow", "--delay", "0.4")
    wait_for(lambda: _status_body(bad_stack))
    times = [request(bad_stack.url("backend", "/health/ready"))[2] for _i in range(3)]
    assert min(times) >= 0.4 and max(times) < 2


def test_fault_crash_loop(bad_stack):
    bad_stack.ctl("fault", "--dir", str(bad_stack.dir), "crash")

    def restarting():
        cid = bad_stack.compose("ps", "-a", "-q", "backend").stdout.strip()
        out = subprocess.run(["docker", "inspect", "-f", "{{.RestartCount}} {{.State.Status}}", cid],
                             capture_output=True, text=True, check=False).stdout.split()
        return out and int(out[0]) >= 2
    wait_for(restarting, deadline=30)
    with pytest.raises(OSError):
        request(bad_stack.url("backend", "/health/ready"), timeout=1)


def test_good_image_ignores_fault_settings(bad_stack):
    """Rolling the image back must cure the fault even though .env still names it."""
    prefix = bad_stack.env["TD_IMAGE_PREFIX"]
    subprocess.run(["docker", "tag", f"{prefix}_backend:previous", f"{prefix}_backend:latest"], check=True)
    bad_stack.compose("up", "-d", "backend")
    status, body = wait_for(lambda: _status_body(bad_stack))
    assert status == 200 and body["version"] == "v1"
    assert bad_stack.env["TD_FAULT"] == "crash"


def _status_body(stack):
    try:
        status, body, _elapsed = request(stack.url("backend", "/health/ready"), timeout=3)
    except OSError:
        return None
    return (status, body) if isinstance(body, dict) and body.get("version") == "v2" or status == 200 else None


# --------------------------------------------------------------------------- blue / green

def test_blue_green_switch_with_host_nginx(stack_factory, tmp_path):
    blue = stack_factory("blue")
    green = stack_factory("green", version=None)
    green.ctl("up", "--dir", str(green.dir), "--version", "v3")
    lb_dir = tmp_path / "lb"
    out = json.loads(blue.ctl("lb", "up", "--dir", str(lb_dir), "--blue", str(blue.dir),
                              "--green", str(green.dir), "--active", "green").stdout)
    try:
        url = "http://127.0.0.1:%d/health/ready" % out["port"]
        req = urllib.request.Request(url, headers={"Host": "taylordash.local"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.headers["X-TaylorDash-Env"] == "green" and json.load(resp)["version"] == "v3"
        assert (lb_dir / "nginx.blue.conf").is_file() and (lb_dir / "sites-available" / "taylordash").is_file()
        blue.ctl("lb", "switch", "--dir", str(lb_dir), "blue")

        def env_is_blue():
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.headers["X-TaylorDash-Env"] == "blue" and json.load(resp)["version"] == "v1"
        wait_for(env_is_blue, deadline=10)
    finally:
        blue.ctl("lb", "down", "--dir", str(lb_dir))
    pid = int((lb_dir / "nginx.pid").read_text()) if (lb_dir / "nginx.pid").exists() else None
    if pid:
        with pytest.raises(ProcessLookupError):
            import os
            os.kill(pid, 0)
