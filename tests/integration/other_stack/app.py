"""A tiny service of a stack that is not TaylorDash: GET /health answers 200 in v1 and 503 in v2
(the bad deploy). Port and version from the environment; binds 127.0.0.1 only."""
import http.server
import os
import signal
import sys

VERSION = os.environ.get("APP_VERSION", "v1")
PORT = int(os.environ["APP_PORT"])


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        bad = VERSION != "v1" and self.path.startswith("/health")
        body = (VERSION + (" broken" if bad else " ok") + "\n").encode()
        self.send_response(503 if bad else 200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
