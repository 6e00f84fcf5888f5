"""nginx_switch against a real nginx: the lb of the reference stack (stackctl lb), once on this
host (its own prefix and PID file) and once in a compose service (image tdref_nginx). The blue
and green "stacks" are two HTTP servers run by the test, so no database is needed; the module
runs in its own process, as Ansible runs it.

Each lb is shared by the tests of its class and put back on green before each test.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import STACKCTL, run_module
try:
    from .blue_green_env import http_get
except ImportError:  # run from tests/integration
    from blue_green_env import http_get

pytestmark = pytest.mark.integration

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


class Backend:
    """A color's backend: answers 200 on every path (or ``status``)."""

    def __init__(self, color):
        self.color = color
        self.status = 200
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                body = json.dumps({"status": "ready", "color": backend.color}).encode()
                self.send_response(backend.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Lb:
    def __init__(self, root: Path, compose: bool):
        self.root = root
        self.compose = compose
        self.backends = {}
        for color in ("blue", "green"):
            self.backends[color] = Backend(color)
            d = root / color
            d.mkdir()
            (d / ".env").write_text(f"TD_BACKEND_PORT={self.backends[color].port}\n")
        self.dir = root / "lb"
        argv = [sys.executable, str(STACKCTL), "lb", "up", "--dir", str(self.dir), "--blue", str(root / "blue"),
                "--green", str(root / "green"), "--active", "green"]
        if compose:
            argv += ["--compose", "--project", "tdtnsw" + os.urandom(3).hex()]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        self.port = json.loads(proc.stdout)["port"]
        self.site = self.dir / "sites-available" / "taylordash"
        self.url = f"http://127.0.0.1:{self.port}/health/ready"

    def close(self):
        subprocess.run([sys.executable, str(STACKCTL), "lb", "down", "--dir", str(self.dir)], capture_output=True,
                       timeout=60, check=False)
        for backend in self.backends.values():
            backend.close()

    def args(self, color, **extra):
        args = {"path": str(self.site), "src": str(self.dir / f"nginx.{color}.conf"),
                "nginx_prefix": str(self.dir), "nginx_conf": str(self.dir / "nginx.conf"),
                "verify_url": self.url, "verify_headers": {"Host": "taylordash.local"},
                "verify_header": "X-TaylorDash-Env", "verify_value": color, "verify_successes": 5,
                "verify_timeout": 5, "reload_timeout": 10}
        if self.compose:
            args.update(nginx="compose", project_dir=str(self.dir), service="nginx")
        else:
            args.update(nginx="host", pid_file=str(self.dir / "nginx.pid"))
        args.update(extra)
        return args

    def served(self, n=5):
        out = []
        for _request in range(n):
            status, headers, _body = http_get(self.url)
            out.append(headers.get("x-taylordash-env") if status == 200 else status)
        return out

    def backups(self):
        return sorted(p.name for p in self.site.parent.glob("taylordash.*.bak"))


def make_lb(tmp_path_factory, compose):
    if NGINX is None and not compose:
        pytest.skip("nginx is not installed on this host (apt-get install nginx-light)")
    return Lb(tmp_path_factory.mktemp("nginx-switch-compose" if compose else "nginx-switch-host"), compose)


@pytest.fixture(scope="module", params=["host", "compose"])
def lb(request, tmp_path_factory):
    lb = make_lb(tmp_path_factory, request.param == "compose")
    yield lb
    lb.close()


@pytest.fixture
def green(lb):
    """The lb on green, both backends answering, before each test."""
    for backend in lb.backends.values():
        backend.status = 200
    result = run_module("nginx_switch", lb.args("green"))
    assert not result["failed"], result["msg"]
    assert lb.served() == ["green"] * 5
    return lb


def test_switch_and_switch_back(green):
    lb = green
    before = lb.site.read_bytes()
    check = run_module("nginx_switch", lb.args("blue"), check_mode=True, diff=True)
    assert check["changed"] and not check["failed"]
    assert "X-TaylorDash-Env green" in check["diff"]["before"] and "X-TaylorDash-Env blue" in check["diff"]["after"]
    assert lb.site.read_bytes() == before and lb.served() == ["green"] * 5

    result = run_module("nginx_switch", lb.args("blue"), diff=True)
    assert result["changed"] and not result["failed"] and not result["reverted"], result["msg"]
    assert result["verify"]["successes"] == 5
    assert set(result["workers"]) - set(result["workers_before"]), result
    assert Path(result["backup_file"]).read_bytes() == before
    assert lb.site.read_bytes() == (lb.dir / "nginx.blue.conf").read_bytes()
    assert lb.served() == ["blue"] * 5

    again = run_module("nginx_switch", lb.args("blue"))
    assert not again["changed"] and not again["failed"], again["msg"]
    check_again = run_module("nginx_switch", lb.args("blue"), check_mode=True)
    assert not check_again["changed"]

    back = run_module("nginx_switch", lb.args("green"))
    assert back["changed"] and not back["failed"], back["msg"]
    assert lb.served() == ["green"] * 5


def test_broken_candidate_changes_nothing(green, tmp_path):
    lb = green
    bad = tmp_path / "nginx.broken.conf"
    bad.write_text((lb.dir / "nginx.blue.conf").read_text().replace("proxy_pass", "proxy_passs"))
    before, backups = lb.site.read_bytes(), lb.backups()
    result = run_module("nginx_switch", lb.args("blue", src=str(bad)))
    assert result["failed"] and not result["changed"]
    assert "nginx -t failed" in result["msg"] and "proxy_passs" in result["msg"]
    assert "still serves the old config" in result["msg"]
    assert lb.site.read_bytes() == before and lb.backups() == backups
    assert lb.served() == ["green"] * 5


def test_missing_candidate_changes_nothing(green, tmp_path):
    lb = green
    before = lb.site.read_bytes()
    result = run_module("nginx_switch", lb.args("blue", src=str(tmp_path / "absent.conf")))
    assert result["failed"] and not result["changed"]
    assert "Cannot read the candidate config" in result["msg"]
    assert lb.site.read_bytes() == before and lb.served() == ["green"] * 5


def test_target_failing_after_the_reload_is_reverted(green):
    lb = green
    lb.backends["blue"].status = 500
    before = lb.site.read_bytes()
    result = run_module("nginx_switch", lb.args("blue", verify_timeout=2))
    assert result["failed"] and result["reverted"]
    assert "reverted" in result["msg"] and "status 500" in result["msg"]
    assert lb.site.read_bytes() == before
    assert lb.served() == ["green"] * 5


def test_reload_not_taking_effect_is_reverted(green):
    """A config that passes nginx -t but cannot be loaded by the master (a port taken by someone
    else): the master keeps its workers, the deadline passes, the old file goes back."""
    lb = green
    import socket
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    taken = blocker.getsockname()[1]
    try:
        candidate = lb.dir / "nginx.taken.conf"
        candidate.write_text((lb.dir / "nginx.blue.conf").read_text().replace(
            "listen 127.0.0.1:%d;" % lb.port, "listen 127.0.0.1:%d;\n    listen 127.0.0.1:%d;" % (lb.port, taken)))
        before = lb.site.read_bytes()
        result = run_module("nginx_switch", lb.args("blue", src=str(candidate), reload_timeout=2))
    finally:
        blocker.close()
    if not lb.compose:  # nginx -t binds nothing; the master's reload fails on the taken port
        assert result["failed"], result
        assert "did not take effect" in result["msg"] or "reverted" in result["msg"], result["msg"]
        assert lb.site.read_bytes() == before
    assert lb.served() == ["green"] * 5


def test_nginx_not_running(tmp_path, lb):
    if lb.compose:
        args = lb.args("blue", project_dir=str(tmp_path))
        (tmp_path / "docker-compose.yml").write_text("services:\n  nginx:\n    image: tdref_nginx:latest\n")
        (tmp_path / ".env").write_text("COMPOSE_PROJECT_NAME=tdtnswnone%s\n" % os.urandom(3).hex())
    else:
        pid_file = tmp_path / "nginx.pid"
        pid_file.write_text("999999999\n")
        args = lb.args("blue", pid_file=str(pid_file))
    before = lb.site.read_bytes()
    result = run_module("nginx_switch", args)
    assert result["failed"] and not result["changed"]
    assert result["msg"].startswith("nginx is not running"), result["msg"]
    assert lb.site.read_bytes() == before and lb.backups() == lb.backups()


def test_check_mode_is_inert(green):
    lb = green
    listing = sorted(os.listdir(lb.site.parent))
    before = lb.site.read_bytes()
    result = run_module("nginx_switch", lb.args("blue"), check_mode=True)
    assert result["changed"] and "Would switch" in result["msg"]
    assert sorted(os.listdir(lb.site.parent)) == listing and lb.site.read_bytes() == before
    assert lb.served() == ["green"] * 5
