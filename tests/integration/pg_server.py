"""A throwaway PostgreSQL server for integration tests.

``PgServer`` runs ``initdb`` into a temporary directory (password-authenticated superuser,
scram-sha-256 for every connection), starts it with ``pg_ctl -w`` on 127.0.0.1 and a random free
port, with its unix socket inside the same temporary directory, and removes everything again on
``stop()``.  The PostgreSQL 15 binaries are looked up in the Debian location first, then on PATH.

initdb refuses to run as root: when the tests run as root, the server commands run as the
``postgres`` system user (``runuser -u postgres --``) and the temporary directory is handed to
that user. Client commands (``psql``, ``pg_dump``) run as the current user over TCP.

Use it through the ``pg_server`` fixture (module scope)::

    from .pg_server import pg_server  # noqa: F401  (pytest fixture)

    def test_something(pg_server):
        pg_server.psql("CREATE DATABASE x")
"""
from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

SERVER_USER = "postgres"
START_TIMEOUT_S = 30


def find_pg_bin_dir(major: str | None = None) -> Path | None:
    """Directory holding initdb/pg_ctl: /usr/lib/postgresql/<major>/bin (newest first), else the
    directory of ``initdb`` on PATH."""
    pattern = "/usr/lib/postgresql/%s/bin" % (major or "*")
    candidates = sorted(glob.glob(pattern), key=lambda p: int(Path(p).parent.name)
                        if Path(p).parent.name.isdigit() else 0, reverse=True)
    for cand in candidates:
        if os.access(os.path.join(cand, "initdb"), os.X_OK):
            return Path(cand)
    initdb = shutil.which("initdb")
    return Path(os.path.realpath(initdb)).parent if initdb else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgServer:
    """One PostgreSQL cluster in a temporary directory. Not started until ``start()``."""

    def __init__(self, bin_dir: Path, user: str = "rbtest_admin"):
        self.bin_dir = Path(bin_dir)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.user = user
        self.password = "pw-" + secrets.token_hex(12)
        self.as_root = os.geteuid() == 0
        self.tmp = Path(tempfile.mkdtemp(prefix="rbtest-pg-"))
        self.datadir = self.tmp / "data"
        self.socket_dir = self.tmp / "sock"
        self.logfile = self.tmp / "server.log"
        self._initialized = False
        self._started = False
        if self.as_root:
            # The server runs as the postgres system user: hand it the whole temp dir.
            pw = pwd.getpwnam(SERVER_USER)
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
        self.socket_dir.mkdir()
        if self.as_root:
            os.chown(self.socket_dir, pw.pw_uid, pw.pw_gid)

    # -- server side ----------------------------------------------------------------------
    def _server_cmd(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        if self.as_root:
            argv = ["runuser", "-u", SERVER_USER, "--"] + argv
        env = dict(os.environ, LC_ALL="C")
        env.pop("PGPASSWORD", None)
        return subprocess.run(argv, capture_output=True, text=True, env=env, check=False,
                              cwd=str(self.tmp), **kwargs)

    def init(self) -> None:
        pwfile = self.tmp / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.as_root:
            pw = pwd.getpwnam(SERVER_USER)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        pwfile.chmod(0o600)
        try:
            proc = self._server_cmd([
                str(self.bin_dir / "initdb"), "-D", str(self.datadir), "-U", self.user,
                "--pwfile", str(pwfile), "--auth=scram-sha-256", "--encoding=UTF8",
                "--locale=C", "--no-sync",
            ], timeout=120)
        finally:
            pwfile.unlink()
        if proc.returncode != 0:
            raise RuntimeError("initdb failed (rc=%s):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
        conf = self.datadir / "postgresql.conf"
        with conf.open("a") as fh:
            # Throwaway cluster: durability is not wanted, speed is.
            fh.write(
                "\n# rbtest\n"
                "listen_addresses = '127.0.0.1'\n"
                "port = %d\n"
                "unix_socket_directories = '%s'\n"
                "fsync = off\nfull_page_writes = off\nsynchronous_commit = off\n"
                "max_connections = 30\nshared_buffers = 32MB\n"
                % (self.port, self.socket_dir)
            )
        self._initialized = True

    def start(self) -> None:
        if not self._initialized:
            self.init()
        for _attempt in range(3):
            proc = self._server_cmd([
                str(self.bin_dir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile),
                "-w", "-t", str(START_TIMEOUT_S), "start",
            ], timeout=START_TIMEOUT_S + 10)
            if proc.returncode == 0:
                self._started = True
                return
            # Most likely the random port was taken meanwhile: pick another one.
            log = self.logfile.read_text() if self.logfile.exists() else ""
            if "could not bind" not in log and "Address already in use" not in log:
                break
            self.port = free_port()
            with (self.datadir / "postgresql.conf").open("a") as fh:
                fh.write("port = %d\n" % self.port)
        raise RuntimeError("pg_ctl start failed (rc=%s):\n%s\n%s\nlog:\n%s" % (
            proc.returncode, proc.stdout, proc.stderr,
            self.logfile.read_text() if self.logfile.exists() else ""))

    def stop(self) -> None:
        """Stop the server, keep the data directory (``start()`` brings it back)."""
        if self._started:
            self._server_cmd([str(self.bin_dir / "pg_ctl"), "-D", str(self.datadir),
                              "-m", "fast", "-w", "stop"], timeout=60)
            self._started = False

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._started

    # -- client side ----------------------------------------------------------------------
    def client_env(self) -> dict:
        env = dict(os.environ, LC_ALL="C", PGPASSWORD=self.password, PGCONNECT_TIMEOUT="10")
        for var in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGPASSFILE"):
            env.pop(var, None)
        return env

    def client_bin(self, name: str) -> str:
        path = self.bin_dir / name
        return str(path) if path.exists() else name

    def conn_argv(self, dbname: str = "postgres") -> list[str]:
        return ["-h", self.host, "-p", str(self.port), "-U", self.user, "-d", dbname, "-w"]

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL (ON_ERROR_STOP), return unaligned tuples-only output, stripped."""
        proc = subprocess.run(
            [self.client_bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
            + self.conn_argv(dbname) + ["-c", sql],
            capture_output=True, text=True, env=self.client_env(), check=False, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError("psql failed (rc=%s): %s\n%s" % (proc.returncode, sql, proc.stderr))
        return proc.stdout.strip()

    def psql_file(self, path: str | Path, dbname: str = "postgres") -> None:
        proc = subprocess.run(
            [self.client_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1"]
            + self.conn_argv(dbname) + ["-f", str(path)],
            capture_output=True, text=True, env=self.client_env(), check=False, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError("psql -f %s failed: %s" % (path, proc.stderr))

    def pg_dump(self, dbname: str, out: str | Path, fmt: str = "p", extra: list[str] | None = None) -> Path:
        """Run the real pg_dump (format p, c, t or d) into ``out``."""
        proc = subprocess.run(
            [self.client_bin("pg_dump"), "-F", fmt, "-f", str(out)] + (extra or [])
            + self.conn_argv(dbname),
            capture_output=True, text=True, env=self.client_env(), check=False, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError("pg_dump failed: %s" % proc.stderr)
        return Path(out)

    def databases(self) -> list[str]:
        return self.psql("SELECT datname FROM pg_database ORDER BY 1").splitlines()

    def module_args(self, **extra) -> dict:
        """Connection options for taylordash.rollback modules (community.postgresql names)."""
        args = {"login_host": self.host, "login_port": self.port, "login_user": self.user,
                "login_password": self.password, "login_db": "postgres"}
        args.update(extra)
        return args


def start_pg_server(major: str | None = None) -> PgServer:
    bin_dir = find_pg_bin_dir(major)
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
    server = PgServer(bin_dir)
    try:
        server.start()
    except Exception:
        server.destroy()
        raise
    return server


@pytest.fixture(scope="module")
def pg_server():
    """A running throwaway PostgreSQL (15 when installed) for the tests of one module."""
    server = start_pg_server("15") if find_pg_bin_dir("15") else start_pg_server()
    try:
        yield server
    finally:
        server.destroy()
