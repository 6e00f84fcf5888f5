"""TaylorDash backend stand-in: the HTTP API the rollback collection is exercised against.

Endpoints (all on 127.0.0.1:$TD_BACKEND_PORT):
  GET    /health/ready          database reachable? body names version and schema revision
  GET    /api/v1/projects       needs X-API-Key; projects from PostgreSQL
  POST   /api/v1/auth/login     JSON {username, password} -> {session_token, expires_in}
  GET    /api/v1/plugins        needs X-API-Key; plugins_config.json
  GET    /api/v1/plugins/NAME   needs X-API-Key
  DELETE /api/v1/plugins/NAME   needs X-API-Key; removes the plugin from plugins_config.json

A "bad" build (TD_FAULTS_ENABLED=1, baked into the v2 image) misbehaves as TD_FAULT says:
  unhealthy  /health/ready answers 503
  errors     a TD_FAULT_ERROR_RATE share of all requests answer 500 (evenly spread)
  slow       every answer is delayed by TD_FAULT_DELAY seconds
  crash      the process exits at start (the restart policy turns it into a crash loop)
A good build ignores TD_FAULT, so rolling the image back cures the fault whatever .env says.
"""
import hashlib
import hmac
import json
import os
import secrets
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

VERSION = os.environ.get("TD_VERSION", "unknown")
FAULTS_ENABLED = os.environ.get("TD_FAULTS_ENABLED") == "1"
FAULT = os.environ.get("TD_FAULT", "none") if FAULTS_ENABLED else "none"
ERROR_RATE = float(os.environ.get("TD_FAULT_ERROR_RATE", "0.5") or 0.5)
DELAY = float(os.environ.get("TD_FAULT_DELAY", "2") or 2)
PORT = int(os.environ.get("TD_BACKEND_PORT", "3000"))
API_KEY = os.environ.get("TD_API_KEY", "")
AUTH_CONFIG = os.environ.get("TD_AUTH_CONFIG", "/app/auth_config.py")
PLUGINS_CONFIG = os.environ.get("TD_PLUGINS_CONFIG", "/srv/project/plugins_config.json")

DB = dict(
    host=os.environ.get("TD_DB_HOST", "127.0.0.1"),
    port=int(os.environ.get("TD_DB_PORT", "5432")),
    dbname=os.environ.get("TD_DB_NAME", "taylordash"),
    user=os.environ.get("TD_DB_USER", "taylordash"),
    password=os.environ.get("TD_DB_PASSWORD", ""),
    connect_timeout=2,
    application_name="taylordash-backend",
)

SESSIONS = {}
_request_counter = 0
_counter_lock = threading.Lock()
_plugins_lock = threading.Lock()


def log(message):
    sys.stderr.write("%s backend[%s] %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), VERSION, message))
    sys.stderr.flush()


def hash_password(password, salt=None, iterations=10000):
    salt = salt or secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations).hex()
    return "pbkdf2_sha256$%d$%s$%s" % (iterations, salt, digest)


def check_password(password, stored):
    try:
        _algo, iterations, salt, _digest = stored.split("$")
    except ValueError:
        return False
    return hmac.compare_digest(hash_password(password, salt, int(iterations)), stored)


def db_connect():
    return psycopg2.connect(**DB)


def load_auth_config():
    """The auth configuration is a Python file inside the container (the seed restores it with
    `cp /app/backup/auth_config.py /app/auth_config.py`); it is read on every login so a
    restored file takes effect at the next request as well as after a restart."""
    namespace = {}
    with open(AUTH_CONFIG) as handle:
        exec(compile(handle.read(), AUTH_CONFIG, "exec"), namespace)  # noqa: S102 - our own file
    return namespace


def ensure_seed_data():
    """Create the admin user and sample projects once, so a fresh stack has data to show."""
    username = os.environ.get("TD_ADMIN_USERNAME", "admin")
    password = os.environ.get("TD_ADMIN_PASSWORD", "")
    with db_connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM users WHERE username = %s", (username,))
        row = cur.fetchone()
        if row is None:
            cur.execute("INSERT INTO users (username, password_hash) VALUES (%s, %s) RETURNING id",
                        (username, hash_password(password)))
            row = cur.fetchone()
        cur.execute("SELECT count(*) FROM projects")
        if cur.fetchone()[0] == 0:
            for name in ("Apollo", "Borealis", "Cassini"):
                cur.execute("INSERT INTO projects (name, owner_id) VALUES (%s, %s)", (name, row[0]))
    conn.close()


def schema_revision(cur):
    try:
        cur.execute("SELECT version_num FROM alembic_version")
        row = cur.fetchone()
        return row[0] if row else None
    except psycopg2.Error:
        return None


def read_plugins():
    with open(PLUGINS_CONFIG) as handle:
        data = json.load(handle)
    return data.get("plugins", [])


def write_plugins(plugins):
    tmp = "%s.tmp.%d" % (PLUGINS_CONFIG, os.getpid())
    with open(tmp, "w") as handle:
        json.dump({"plugins": plugins}, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, PLUGINS_CONFIG)


def should_fail_now():
    """Spread failures evenly: request n fails when floor((n+1)*rate) > floor(n*rate), so any
    window of requests sees the configured share, which keeps tests deterministic."""
    global _request_counter
    with _counter_lock:
        n = _request_counter
        _request_counter += 1
    return int((n + 1) * ERROR_RATE) > int(n * ERROR_RATE)


class Handler(BaseHTTPRequestHandler):
    server_version = "TaylorDashBackend/" + VERSION
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # one line per request, without the client address
        log("%s %s" % (self.requestline, args[1] if len(args) > 1 else ""))

    def send_json(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-TaylorDash-Version", VERSION)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return None

    def api_key_ok(self):
        given = self.headers.get("X-API-Key", "")
        return bool(API_KEY) and hmac.compare_digest(given.encode(), API_KEY.encode())

    def dispatch(self):
        if FAULT == "slow":
            time.sleep(DELAY)
        if FAULT == "errors" and should_fail_now():
            return self.send_json(500, {"error": "internal server error (injected fault)"})
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        routes = {
            ("GET", "/health/ready"): self.health,
            ("HEAD", "/health/ready"): self.health,
            ("GET", "/health/live"): lambda: self.send_json(200, {"status": "alive", "version": VERSION}),
            ("GET", "/api/v1/projects"): self.projects,
            ("POST", "/api/v1/auth/login"): self.login,
            ("GET", "/api/v1/plugins"): self.plugins_list,
        }
        handler = routes.get((self.command, path))
        if handler:
            return handler()
        if path.startswith("/api/v1/plugins/"):
            name = path[len("/api/v1/plugins/"):]
            if self.command == "GET":
                return self.plugin_get(name)
            if self.command == "DELETE":
                return self.plugin_delete(name)
        return self.send_json(404, {"error": "not found", "path": path})

    do_GET = do_POST = do_DELETE = do_HEAD = lambda self: self.dispatch()

    def health(self):
        if FAULT == "unhealthy":
            return self.send_json(503, {"status": "unhealthy", "version": VERSION,
                                        "reason": "injected fault"})
        try:
            conn = db_connect()
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    revision = schema_revision(cur)
            finally:
                conn.close()
        except psycopg2.Error as exc:
            return self.send_json(503, {"status": "unhealthy", "version": VERSION,
                                        "database": "unreachable", "error": str(exc).strip()})
        return self.send_json(200, {"status": "ready", "version": VERSION, "database": "ok",
                                    "schema_revision": revision})

    def projects(self):
        if not self.api_key_ok():
            return self.send_json(401, {"error": "missing or invalid X-API-Key"})
        try:
            conn = db_connect()
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT p.id, p.name, u.username, p.created_at FROM projects p "
                                "LEFT JOIN users u ON u.id = p.owner_id ORDER BY p.id")
                    rows = cur.fetchall()
            finally:
                conn.close()
        except psycopg2.Error as exc:
            return self.send_json(503, {"error": "database unavailable", "detail": str(exc).strip()})
        return self.send_json(200, [
            {"id": r[0], "name": r[1], "owner": r[2], "created_at": r[3].isoformat()} for r in rows])

    def login(self):
        body = self.read_json()
        if not isinstance(body, dict) or not body.get("username") or "password" not in body:
            return self.send_json(400, {"error": "JSON body with username and password required"})
        try:
            config = load_auth_config()
        except Exception as exc:  # a broken auth config is exactly what the auth rollback fixes
            return self.send_json(500, {"error": "auth configuration unreadable", "detail": str(exc)})
        if not config.get("LOGIN_ENABLED", True):
            return self.send_json(503, {"error": "login disabled by auth configuration"})
        try:
            conn = db_connect()
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT id, password_hash FROM users WHERE username = %s",
                                (body["username"],))
                    row = cur.fetchone()
            finally:
                conn.close()
        except psycopg2.Error as exc:
            return self.send_json(503, {"error": "database unavailable", "detail": str(exc).strip()})
        if row is None or not check_password(str(body["password"]), row[1]):
            return self.send_json(401, {"error": "invalid username or password"})
        token = secrets.token_hex(int(config.get("TOKEN_BYTES", 32)))
        ttl = int(config.get("SESSION_TTL_SECONDS", 3600))
        SESSIONS[token] = (row[0], time.time() + ttl)
        return self.send_json(200, {"session_token": token, "expires_in": ttl,
                                    "auth_mode": config.get("AUTH_MODE", "password")})

    def plugins_list(self):
        if not self.api_key_ok():
            return self.send_json(401, {"error": "missing or invalid X-API-Key"})
        try:
            return self.send_json(200, read_plugins())
        except (OSError, ValueError) as exc:
            return self.send_json(500, {"error": "plugins configuration unreadable", "detail": str(exc)})

    def plugin_get(self, name):
        if not self.api_key_ok():
            return self.send_json(401, {"error": "missing or invalid X-API-Key"})
        for plugin in read_plugins():
            if plugin.get("name") == name:
                return self.send_json(200, plugin)
        return self.send_json(404, {"error": "no plugin named %s" % name})

    def plugin_delete(self, name):
        if not self.api_key_ok():
            return self.send_json(401, {"error": "missing or invalid X-API-Key"})
        with _plugins_lock:
            plugins = read_plugins()
            kept = [p for p in plugins if p.get("name") != name]
            if len(kept) == len(plugins):
                return self.send_json(404, {"error": "no plugin named %s" % name})
            write_plugins(kept)
        return self.send_json(200, {"deleted": name, "remaining": [p.get("name") for p in kept]})


def main():
    if FAULT == "crash":
        log("injected fault: crashing at start-up")
        sys.exit(3)
    ensure_seed_data()
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    server.daemon_threads = True

    def stop(signum, _frame):
        log("signal %d: shutting down" % signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log("listening on 127.0.0.1:%d (fault=%s)" % (PORT, FAULT))
    server.serve_forever(poll_interval=0.1)
    server.server_close()


if __name__ == "__main__":
    main()
