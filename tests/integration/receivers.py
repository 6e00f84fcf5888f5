"""Real receivers for the escalation tests: an SMTP server (aiosmtpd), an HTTP server that records
what it is sent (http.server, threaded), and a listener that accepts connections and never answers.
All bind 127.0.0.1 on a free port, run in threads of the test process, and stop with ``stop()`` or
at the end of a ``with`` block.

    with SMTPReceiver() as smtp, HTTPReceiver() as hook:
        run the play with escalate_mail_port=smtp.port, escalate_webhook_url=hook.url
        mail = smtp.wait_for(1)[0]           # email.message.EmailMessage
        body = hook.wait_for(1)[0]["json"]

``free_port()`` gives a port nothing listens on (connection refused). ``task_seconds()`` measures
how long one task of a run took (ansible.posix.json callback output), for timeout bounds that do
not depend on how slow the rest of the run was.
"""
from __future__ import annotations

import datetime
import email
import email.policy
import errno
import json
import socket
import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def task_seconds(json_stdout: str, suffix: str) -> float:
    """How long the last task whose name ends with ``suffix`` ran, from the output of a run with
    ANSIBLE_STDOUT_CALLBACK=ansible.posix.json."""
    data = json.loads(json_stdout[json_stdout.index("{"):])
    found = None
    for play in data["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].endswith(suffix):
                found = task["task"]["duration"]
    if found is None:
        raise AssertionError(f"no task named ...{suffix}")
    start, end = (datetime.datetime.fromisoformat(found[k].replace("Z", "+00:00")) for k in ("start", "end"))
    return (end - start).total_seconds()


def _wait(items: list, count: int, deadline: float, what: str, lock: threading.Lock) -> list:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with lock:
            if len(items) >= count:
                return list(items)
        time.sleep(0.05)
    with lock:
        raise AssertionError(f"{what}: expected {count}, got {len(items)} within {deadline} s")


def self_signed_context(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1 (the mail module does
    not verify the server's certificate; what matters is that the session is encrypted)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
            .sign(key, hashes.SHA256()))
    directory = Path(directory)
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


class SMTPReceiver:
    """A real SMTP server (aiosmtpd) that keeps every message it accepts.

    ``login=(user, password)`` requires that login (AUTH PLAIN/LOGIN); ``starttls=True`` offers
    STARTTLS with a self-signed certificate and then requires it. ``messages`` holds the parsed
    mails, ``envelopes`` (sender, recipients) and ``logins`` the user names that logged in,
    ``tls`` whether each message came over an encrypted session.
    """

    def __init__(self, login: tuple | None = None, starttls: bool = False):
        self.login = login
        self.starttls = starttls
        self.port = free_port()
        self.host = HOST
        self.messages: list = []
        self.envelopes: list = []
        self.logins: list = []
        self.tls: list = []
        self.raw: list = []
        self._lock = threading.Lock()
        self._controller = None
        self._tmp = None

    def _handler(self):
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
                data = envelope.original_content or envelope.content
                if isinstance(data, str):
                    data = data.encode()
                with receiver._lock:
                    receiver.raw.append(data)
                    receiver.messages.append(email.message_from_bytes(data, policy=email.policy.default))
                    receiver.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                    receiver.tls.append(session.ssl is not None)
                return "250 Message accepted for delivery"

        return Handler()

    def _authenticator(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        if isinstance(auth_data, LoginPassword) and self.login is not None:
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if (user, password) == tuple(self.login):
                with self._lock:
                    self.logins.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> "SMTPReceiver":
        from aiosmtpd.controller import Controller

        kwargs = {}
        if self.login is not None:
            kwargs.update(authenticator=self._authenticator, auth_required=True,
                          auth_require_tls=self.starttls)
        if self.starttls:
            self._tmp = tempfile.TemporaryDirectory(prefix="smtp-tls-")
            kwargs.update(tls_context=self_signed_context(Path(self._tmp.name)), require_starttls=True)
        # free_port() only found a port free: something else may bind it before the server does.
        # Then another port, a few times (tests read .port after start()).
        for attempt in range(5):
            self._controller = Controller(self._handler(), hostname=self.host, port=self.port,
                                          ready_timeout=10, **kwargs)
            try:
                self._controller.start()
                return self
            except OSError as exc:
                self._controller = None
                if exc.errno != errno.EADDRINUSE or attempt == 4:
                    raise
                self.port = free_port()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def wait_for(self, count: int = 1, deadline: float = 10.0) -> list:
        """The messages, once at least ``count`` arrived (bounded poll)."""
        return _wait(self.messages, count, deadline, "mails received", self._lock)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class HTTPReceiver:
    """A threaded HTTP server that records every request: ``requests`` holds dicts with method,
    path, headers (lower-case names), body (bytes), json (or None) and time (monotonic).

    ``statuses`` are the answers in order (the last one repeats): ``[503, 503, 202]`` fails twice,
    then accepts. ``delay`` seconds pass before each answer (a slow receiver); ``stop()`` cuts a
    pending delay short.
    """

    def __init__(self, statuses: list | None = None, delay: float = 0.0, body: dict | None = None):
        self.statuses = list(statuses or [202])
        self.delay = delay
        self.answer = body if body is not None else {"status": "success", "message": "Event processed"}
        self.requests: list = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = None
        self._thread = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/api/incidents"

    def _handler_class(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep the test output clean
                pass

            def do_POST(self):  # noqa: N802 (http.server's hook name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    parsed = json.loads(body) if body else None
                except ValueError:
                    parsed = None
                with receiver._lock:
                    receiver.requests.append({
                        "method": "POST", "path": self.path, "body": body, "json": parsed, "time": time.monotonic(),
                        "headers": {k.lower(): v for k, v in self.headers.items()}})
                    index = len(receiver.requests) - 1
                status = receiver.statuses[min(index, len(receiver.statuses) - 1)]
                if receiver.delay and receiver._stopping.wait(receiver.delay):
                    return
                payload = json.dumps(receiver.answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (its timeout) before the answer
                    pass

            do_PUT = do_POST

        return Handler

    def start(self) -> "HTTPReceiver":
        self._server = ThreadingHTTPServer((HOST, 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int = 1, deadline: float = 10.0) -> list:
        """The requests, once at least ``count`` arrived (bounded poll)."""
        return _wait(self.requests, count, deadline, "webhook calls received", self._lock)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class SilentListener:
    """Accepts TCP connections on 127.0.0.1 and never says a word: an SMTP server or incident API
    that hangs. ``accepted`` counts the connections."""

    def __init__(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((HOST, 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.accepted = 0
        self._conns: list = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/api/incidents"

    def _run(self):
        while not self._stopping.is_set():
            try:
                conn, _peer = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted += 1
            self._conns.append(conn)

    def start(self) -> "SilentListener":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=2)
        for conn in self._conns:
            conn.close()
        self._sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
