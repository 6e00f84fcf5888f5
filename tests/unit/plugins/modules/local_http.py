"""What the HTTP modules' unit tests may talk to: one HTTP server on 127.0.0.1 (port 0), and a
guard that refuses, and records, any connection to another host.

The property tests generate URLs; their strategy keeps every host on 127.0.0.1 or makes it invalid
(refused by the module before any request). ``no_traffic_elsewhere`` is the second line: name
resolution of any other host fails inside the test and is recorded, so a generated URL that
slipped through fails the test instead of reaching the network. Proxy variables are cleared, so a
request to 127.0.0.1 cannot go to a proxy either.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost")


class _Handler(BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length < 1 << 20:
            self.rfile.read(length)
        payload = b'{"status": "ready", "session_token": "t0k3n-0123456789"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _answer

    def log_message(self, *args):
        pass


class LocalServer:
    """A healthy endpoint on 127.0.0.1; ``url`` is its base URL."""

    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d/health" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@contextlib.contextmanager
def no_traffic_elsewhere():
    """Name resolution only for 127.0.0.1/::1/localhost; yields the list of refused hosts."""
    refused = []
    original = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in LOCAL_HOSTS:
            refused.append(name)
            raise socket.gaierror(socket.EAI_NONAME, "refused by the test: %r is not 127.0.0.1" % (name,))
        return original(host, *args, **kwargs)

    saved = {key: os.environ.pop(key) for key in list(os.environ) if key.lower().endswith("_proxy")}
    socket.getaddrinfo = guarded
    try:
        yield refused
    finally:
        socket.getaddrinfo = original
        os.environ.update(saved)
