"""health_poll against real HTTP(S) servers on 127.0.0.1, run by the test in threads
(http.server on port 0); the module runs in its own process as Ansible runs it."""
from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import run_module

pytestmark = pytest.mark.integration


class Server:
    """``behave(n, since_first, headers, body)`` -> (status, body) for the n-th request (from 0)."""

    def __init__(self, behave, tls_context=None):
        self.behave = behave
        self.requests = []
        self.first = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                now = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if server.first is None:
                    server.first = now
                n = len(server.requests)
                server.requests.append((now, self.command, {k.lower(): v for k, v in self.headers.items()}, body))
                status, text = server.behave(n, now - server.first, self.headers, body)
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls_context is not None:
            self.httpd.socket = tls_context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}/health/ready"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def serve():
    servers = []

    def start(behave, tls_context=None):
        server = Server(behave, tls_context)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def ready(n, since_first, headers, body):
    return 200, '{"status": "ready"}'


def poll(url, check_mode=False, **args):
    return run_module("health_poll", {"url": url, **args}, check_mode=check_mode)


def test_healthy_at_once(serve):
    server = serve(ready)
    result = poll(server.url, timeout=10)
    assert result["failed"] is False, result["msg"]
    assert result["changed"] is False
    assert result["healthy"] is True
    assert result["attempts"] == 2 == len(server.requests)  # default success_threshold 2
    assert result["consecutive_successes"] == 2
    assert result["last_status"] == 200 and result["last_error"] is None
    assert 0.25 <= result["elapsed"] < 0.6  # the second request 0.25 s later, plus slack
    latency = result["latency"]
    assert latency["count"] == 2
    assert 0 < latency["min"] <= latency["p50"] <= latency["p95"] <= latency["max"] < 0.25
    assert result["msg"].startswith(server.url + " healthy after ")


def test_becomes_healthy_after_half_a_second(serve):
    server = serve(lambda n, t, h, b: (200, "ready") if t >= 0.5 else (503, "starting"))
    result = poll(server.url, timeout=10, interval=0.1, success_threshold=1)
    assert result["healthy"] is True, result["msg"]
    # close to 0.5 s, not rounded up to a coarse step: at most one interval (0.1 s) late,
    # plus some slack for a loaded machine
    assert 0.5 <= result["elapsed"] <= 0.5 + 0.1 + 0.3, result["elapsed"]
    assert result["first_success_elapsed"] == pytest.approx(result["elapsed"], abs=0.01)
    assert 5 <= result["attempts"] <= 8
    assert len(server.requests) == result["attempts"]


def test_never_healthy_fails_by_the_deadline(serve):
    server = serve(lambda n, t, h, b: (503, "starting"))
    started = time.monotonic()
    result = poll(server.url, timeout=1.0, interval=0.1)
    wall = time.monotonic() - started
    assert result["failed"] is True
    assert result["healthy"] is False
    assert result["elapsed"] <= 1.05
    # The deadline is measured by the module itself (elapsed, above). The wall clock adds the
    # module's process start-up, which on a loaded CI machine (two test workers on two cores)
    # has taken 2.7 s: bound it only loosely, to catch a poll that ignores its deadline.
    assert wall < 1.0 + 9.0
    assert result["last_status"] == 503
    assert server.url in result["msg"]
    assert "deadline of 1.0 s" in result["msg"]
    assert "last status 503" in result["msg"]
    assert result["latency"]["count"] == 0 and result["latency"]["p95"] is None


def test_wrong_body(serve):
    server = serve(lambda n, t, h, b: (200, '{"status": "degraded"}'))
    result = poll(server.url, timeout=0.6, interval=0.1, body_regex='"status": "ready"')
    assert result["failed"] is True
    assert result["last_status"] == 200
    assert "body does not match" in result["last_error"]
    assert "body does not match" in result["msg"]


def test_body_regex_matches(serve):
    server = serve(ready)
    result = poll(server.url, timeout=5, interval=0.05, body_regex=r'"status":\s*"ready"')
    assert result["healthy"] is True, result["msg"]


def test_server_errors(serve):
    server = serve(lambda n, t, h, b: (500, "Internal Server Error"))
    result = poll(server.url, timeout=0.5, interval=0.1)
    assert result["failed"] is True
    assert result["last_status"] == 500
    assert result["last_error"] == "status 500 not in [200]"
    assert "last status 500" in result["msg"]
    assert result["attempts"] == len(server.requests) >= 4


def test_other_status_codes_count_as_success(serve):
    server = serve(lambda n, t, h, b: (204, ""))
    result = poll(server.url, timeout=5, interval=0.05, status_codes=[200, 204])
    assert result["healthy"] is True, result["msg"]


def test_connection_refused():
    with socket.socket() as s:  # a port nobody listens on any more
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/health/ready"
    result = poll(url, timeout=0.5, interval=0.1)
    assert result["failed"] is True
    assert result["last_status"] is None
    assert "Connection refused" in result["last_error"]
    assert "no answer" in result["msg"] and "Connection refused" in result["msg"]
    assert url in result["msg"]


def test_consecutive_count_resets_on_a_failure(serve):
    pattern = [200, 200, 500, 200, 200, 200]
    server = serve(lambda n, t, h, b: (pattern[min(n, len(pattern) - 1)], "x"))
    result = poll(server.url, timeout=5, interval=0.02, success_threshold=3)
    assert result["healthy"] is True, result["msg"]
    assert result["attempts"] == 6
    assert result["consecutive_successes"] == 3
    assert result["latency"]["count"] == 5


def test_secret_header_is_sent_but_never_returned(serve):
    secret = "s3cr3t-" + "k" * 20

    def needs_key(n, t, headers, body):
        if headers.get("X-API-Key") != secret:
            return 401, "missing key"
        return 200, "hello " + secret  # a careless server echoing the key

    server = serve(needs_key)
    ok = poll(server.url, timeout=5, interval=0.05, headers={"X-API-Key": secret})
    assert ok["healthy"] is True, ok["msg"]
    assert ok["request_headers"] == ["X-API-Key"]
    assert all(r[2].get("x-api-key") == secret for r in server.requests)
    bad = poll(server.url, timeout=0.3, interval=0.05, headers={"X-API-Key": secret + "-wrong"})
    assert bad["failed"] is True and bad["last_status"] == 401
    for result in (ok, bad):
        assert secret not in json.dumps(result)


def test_post_with_body(serve):
    server = serve(lambda n, t, h, b: (200, "ok") if b == b'{"ping": 1}' else (400, "bad"))
    result = poll(server.url, method="POST", body='{"ping": 1}', timeout=5, interval=0.05,
                  headers={"Content-Type": "application/json"})
    assert result["healthy"] is True, result["msg"]
    assert server.requests[0][1] == "POST"


def test_check_mode_still_polls(serve):
    server = serve(ready)
    result = poll(server.url, check_mode=True, timeout=5, interval=0.05)
    assert result["failed"] is False
    assert result["changed"] is False
    assert result["healthy"] is True
    assert len(server.requests) == result["attempts"] == 2


def test_bad_options_fail_before_polling():
    result = poll("ftp://127.0.0.1/", timeout=0, success_threshold=0, body_regex="(")
    assert result["failed"] is True
    for fragment in ("not an http:// or https:// URL", "timeout must be more than 0",
                     "success_threshold must be at least 1", "body_regex '(' is not a valid"):
        assert fragment in result["msg"]


@pytest.fixture
def tls_files(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    return cert, key


def test_https_certificate_checks(serve, tls_files):
    cert, key = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server = serve(ready, tls_context=context)
    assert server.url.startswith("https://")

    untrusted = poll(server.url, timeout=0.3, interval=0.1)
    assert untrusted["failed"] is True
    assert "TLS error" in untrusted["last_error"] and "CERTIFICATE_VERIFY_FAILED" in untrusted["last_error"]

    assert poll(server.url, timeout=5, interval=0.05, validate_certs=False)["healthy"] is True
    assert poll(server.url, timeout=5, interval=0.05, ca_path=str(cert))["healthy"] is True


def test_urls_polled_side_by_side(serve):
    """urls: two services, each healthy only after 0.6 s, polled at the same time in one module
    run - done in about 0.6 s, not 1.2 s; one result per URL in the order given."""
    slow = [serve(lambda n, t, h, b: (200, "ready") if t >= 0.6 else (503, "starting")) for _i in range(2)]
    result = run_module("health_poll", {"urls": [s.url for s in slow], "timeout": 10, "interval": 0.05,
                                        "success_threshold": 1})
    assert result["failed"] is False and result["healthy"] is True, result["msg"]
    assert [r["url"] for r in result["results"]] == [s.url for s in slow]
    assert all(r["healthy"] and r["elapsed"] >= 0.6 for r in result["results"])
    starts = [s.requests[0][0] for s in slow]
    assert abs(starts[0] - starts[1]) < 0.3, "the URLs were not polled side by side"
    assert result["elapsed"] == max(r["elapsed"] for r in result["results"]) < 1.1


def test_urls_one_unhealthy_fails_naming_it(serve):
    good, bad = serve(ready), serve(lambda n, t, h, b: (503, "starting"))
    result = run_module("health_poll", {"urls": [good.url, bad.url], "timeout": 1.0, "interval": 0.1})
    assert result["failed"] is True and result["healthy"] is False
    assert [r["healthy"] for r in result["results"]] == [True, False]
    assert result["msg"].startswith("1 of 2 URLs not healthy: " + bad.url), result["msg"]
    assert good.url + " healthy" not in result["msg"]
