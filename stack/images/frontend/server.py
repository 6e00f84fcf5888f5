"""TaylorDash frontend stand-in: static files on 127.0.0.1:$TD_FRONTEND_PORT.

index.html carries {{VERSION}}, filled from the image's TD_VERSION, so a check can tell which
build answers.
"""
import os
import signal
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("TD_VERSION", "unknown")
PORT = int(os.environ.get("TD_FRONTEND_PORT", "5174"))
ROOT = "/srv/frontend"


class Handler(SimpleHTTPRequestHandler):
    server_version = "TaylorDashFrontend/" + VERSION

    def log_message(self, fmt, *args):
        sys.stderr.write("frontend[%s] %s\n" % (VERSION, fmt % args))

    def send_head(self):
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            with open(os.path.join(ROOT, "index.html"), encoding="utf-8") as handle:
                body = handle.read().replace("{{VERSION}}", VERSION).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-TaylorDash-Version", VERSION)
            self.end_headers()
            import io
            return io.BytesIO(body)
        return super().send_head()


def main():
    server = ThreadingHTTPServer(("127.0.0.1", PORT), partial(Handler, directory=ROOT))
    server.daemon_threads = True

    def stop(_signum, _frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.1)
    server.server_close()


if __name__ == "__main__":
    main()
