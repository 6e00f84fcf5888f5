"""taylordash.rollback.backup_verify against a real, throwaway PostgreSQL 15 server, with dumps
written by the real pg_dump from a seeded source database. Direct-connection mode; the
compose-exec mode runs the same code with another argv (unit-tested) and is exercised against the
reference stack.

After every test the source database must be unchanged (row counts and an md5 of the users
table) and no scratch database may be left; the login password must appear in no result."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from conftest import COLLECTIONS_ROOT, REPO, run_module
try:  # tests/integration as a package, or as a plain directory on sys.path
    from .pg_server import pg_server  # noqa: F401 pytest fixture  pylint: disable=unused-import
except ImportError:
    from pg_server import pg_server  # noqa: F401  pylint: disable=unused-import
from ansible_collections.taylordash.rollback.plugins.modules import backup_verify as module_source

pytestmark = pytest.mark.integration

USERS = 3000
PROJECTS = 5000
EXPECTED = {"public.users": USERS, "public.projects": PROJECTS, "audit.Event Log": 2}

SEED_SQL = """
CREATE TABLE users (id serial PRIMARY KEY, username text NOT NULL UNIQUE, email text,
                    created_at timestamptz NOT NULL DEFAULT '2024-05-18 10:00:00+00');
CREATE TABLE projects (id serial PRIMARY KEY, owner_id int NOT NULL REFERENCES users(id),
                       name text NOT NULL, status text NOT NULL DEFAULT 'active');
CREATE INDEX projects_owner_idx ON projects (owner_id);
CREATE SCHEMA audit;
CREATE TABLE audit."Event Log" (id bigserial PRIMARY KEY, msg text);
CREATE VIEW active_projects AS SELECT * FROM projects WHERE status = 'active';
INSERT INTO users (username, email)
    SELECT 'user' || g, 'user' || g || '@example.test' FROM generate_series(1, %(users)d) g;
INSERT INTO projects (owner_id, name, status)
    SELECT 1 + (g %% %(users)d), 'project ' || g || E'\\twith tab', CASE WHEN g %% 7 = 0 THEN 'archived' ELSE 'active' END
    FROM generate_series(1, %(projects)d) g;
INSERT INTO audit."Event Log" (msg) VALUES ('deployed'), (E'back\\\\slash');
""" % {"users": USERS, "projects": PROJECTS}

DOCUMENTED = set(yaml.safe_load(module_source.RETURN)) | {"failed", "changed", "invocation"}

FINGERPRINT_SQL = (
    "SELECT (SELECT count(*) FROM users) || ' ' || (SELECT count(*) FROM projects) || ' ' || "
    "(SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM users t)")


@pytest.fixture(scope="module")
def source(pg_server, tmp_path_factory):
    """A seeded source database and its dumps in every format, written by pg_dump."""
    db = "rbsrc_" + secrets.token_hex(4)
    pg_server.psql("CREATE DATABASE %s" % db)
    pg_server.psql(SEED_SQL, dbname=db)
    out = tmp_path_factory.mktemp("dumps")
    plain = pg_server.pg_dump(db, out / "backup_plain.sql", "p")
    gz = out / "backup_gzip.sql.gz"
    with open(plain, "rb") as src, gzip.open(gz, "wb") as dst:
        dst.write(src.read())
    dumps = SimpleNamespace(
        db=db, dir=out, plain=plain, gzip=gz,
        custom=pg_server.pg_dump(db, out / "backup_custom.dump", "c"),
        tar=pg_server.pg_dump(db, out / "backup_tar.tar", "t"),
        create=pg_server.pg_dump(db, out / "backup_create.sql", "p", ["--create", "--clean"]),
        noowner=pg_server.pg_dump(db, out / "backup_noowner.sql", "p", ["--no-owner", "--no-privileges"]),
    )
    dumps.fingerprint = lambda: pg_server.psql(FINGERPRINT_SQL, dbname=db)
    dumps.initial = dumps.fingerprint()
    assert dumps.initial.startswith("%d %d " % (USERS, PROJECTS))
    return dumps


def scratch_databases(pg_server):
    return [d for d in pg_server.databases() if d.startswith("rollback_verify_")]


@pytest.fixture(autouse=True)
def real_database_untouched(pg_server, source):
    yield
    assert pg_server.running, "a test left the server stopped"
    assert source.fingerprint() == source.initial, "the source database changed"
    assert scratch_databases(pg_server) == [], "a scratch database was left behind"


def verify(pg_server, check_mode=False, **args):
    """Run the module like Ansible does; the password must not leak into the result."""
    full = pg_server.module_args(**args)
    result = run_module("backup_verify", full, check_mode=check_mode, timeout=120)
    dumped = json.dumps(result)
    if full.get("login_password"):
        assert full["login_password"] not in dumped
    assert set(result) <= DOCUMENTED, "undocumented return keys: %s" % (set(result) - DOCUMENTED)
    return result


def variant(source, name: str, content: bytes, age: float | None = None) -> Path:
    path = source.dir / name
    path.write_bytes(content)
    if age is not None:
        stamp = time.time() - age
        os.utime(path, (stamp, stamp))
    return path


def counts(result) -> dict:
    return {t["name"]: t["rows"] for t in result["tables"]}


# --- valid backups -------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,extra", [
    ("plain", {}),
    ("gzip", {}),
    ("custom", {}),
    ("custom", {"jobs": 1}),
    ("tar", {}),
])
def test_valid_backup_verifies(pg_server, source, fmt, extra):
    path = getattr(source, fmt)
    result = verify(pg_server, path=str(path), expect_tables=["users", "projects", "audit.Event Log"],
                    min_rows={"users": USERS, "public.projects": 1}, **extra)
    assert result["failed"] is False, result["msg"]
    assert result["changed"] is False
    assert result["format"] == fmt
    assert counts(result) == EXPECTED
    assert result["total_rows"] == sum(EXPECTED.values())
    assert result["problems"] == []
    assert result["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert result["size"] == path.stat().st_size
    assert result["path"] == str(path)
    assert result["connection"] == "direct"
    assert result["server_version"].startswith("15.")
    assert result["scratch_db"].startswith("rollback_verify_")
    assert result["scratch_dropped"] is True
    assert set(result["phases"]) == {"integrity", "restore", "count", "drop"}
    assert result["duration"] >= result["phases"]["restore"]
    assert 0 <= result["age"] < 600
    assert "verified: 3 tables, %d rows" % sum(EXPECTED.values()) in result["msg"]
    if fmt in ("custom", "tar"):
        assert result["archive"]["format"] == fmt
        assert result["archive"]["dbname"] == source.db
        assert result["archive"]["table_data_entries"] == 3
    else:
        assert result["archive"] is None


def test_check_mode_runs_the_full_verification(pg_server, source):
    result = verify(pg_server, check_mode=True, path=str(source.gzip))
    assert result["failed"] is False, result["msg"]
    assert result["changed"] is False
    assert counts(result) == EXPECTED
    assert result["scratch_dropped"] is True


def test_newest_match_by_pattern(pg_server, source, tmp_path):
    plain = source.plain.read_bytes()
    for name, age in (("backup_20240518_09.sql", 7200), ("backup_20240518_10.sql.gz", 60),
                      ("backup_20240518_08.sql", 3600)):
        path = tmp_path / name
        path.write_bytes(gzip.compress(plain) if name.endswith(".gz") else plain)
        os.utime(path, (time.time() - age, time.time() - age))
    (tmp_path / "notes.txt").write_text("newer, but does not match the pattern\n")
    (tmp_path / "backup_dir.sql").mkdir()  # a directory matching the pattern is no candidate
    result = verify(pg_server, backup_dir=str(tmp_path), max_age=3600)
    assert result["failed"] is False, result["msg"]
    assert result["path"] == str(tmp_path / "backup_20240518_10.sql.gz")
    assert result["format"] == "gzip"
    assert 55 <= result["age"] < 600
    assert counts(result) == EXPECTED


def test_plain_dump_under_any_name_is_sniffed(pg_server, source, tmp_path):
    path = tmp_path / "backup_weird.bin"
    path.write_bytes(gzip.compress(source.noowner.read_bytes()))
    result = verify(pg_server, path=str(path))
    assert result["failed"] is False, result["msg"]
    assert result["format"] == "gzip"


# --- expectations ----------------------------------------------------------------------------

def test_expectations_not_met(pg_server, source):
    result = verify(pg_server, path=str(source.custom), expect_tables=["users", "sessions"],
                    min_rows={"users": USERS + 1, "alembic_version": 1})
    assert result["failed"] is True
    assert result["problems"] == [
        "expected tables missing from the restored backup: public.sessions",
        "table public.alembic_version (min_rows 1) is missing from the restored backup",
        "table public.users has %d rows, fewer than min_rows %d" % (USERS, USERS + 1),
    ]
    assert "does not hold what is expected" in result["msg"]
    assert "public.users (%d)" % USERS in result["msg"]
    assert counts(result) == EXPECTED
    assert result["scratch_dropped"] is True


# --- bad input -----------------------------------------------------------------------------

def test_no_backup_found(pg_server, tmp_path):
    (tmp_path / "dump.sql").write_text("SELECT 1;\n")
    result = verify(pg_server, backup_dir=str(tmp_path))
    assert result["failed"] is True
    assert "No backup found" in result["msg"]
    assert "'backup_*.sql*'" in result["msg"] and str(tmp_path) in result["msg"]
    assert "scratch_db" not in result


def test_too_old(pg_server, source):
    path = variant(source, "backup_old.sql", source.plain.read_bytes(), age=7200)
    result = verify(pg_server, path=str(path), max_age=3600)
    assert result["failed"] is True
    assert "too old" in result["msg"] and "max_age is 3600 s" in result["msg"]
    assert result["age"] >= 7200
    assert "scratch_db" not in result


def test_empty_file(pg_server, source):
    result = verify(pg_server, path=str(variant(source, "backup_empty.sql", b"")))
    assert result["failed"] is True
    assert "is empty (0 bytes)" in result["msg"]
    assert "scratch_db" not in result


def test_truncated_plain_mid_copy(pg_server, source):
    content = source.plain.read_bytes()
    cut = content[:content.index(b"COPY public.users") + 20000]  # inside the users data
    result = verify(pg_server, path=str(variant(source, "backup_cut_copy.sql", cut)))
    assert result["failed"] is True
    assert "ends inside the COPY data of public.users" in result["msg"]
    # The integrity pass ran while the scratch database was created; its verdict came before
    # any of the dump was restored, and the scratch database is gone again.
    assert result["scratch_dropped"] is True and "count" not in result["phases"]
    assert scratch_databases(pg_server) == []


def test_truncated_plain_mid_statement(pg_server, source):
    content = source.plain.read_bytes()
    cut = content[:content.index(b"ALTER TABLE ONLY public.projects") + 25]
    result = verify(pg_server, path=str(variant(source, "backup_cut_stmt.sql", cut)))
    assert result["failed"] is True
    assert "truncated" in result["msg"]


def test_truncated_gzip(pg_server, source):
    blob = source.gzip.read_bytes()
    result = verify(pg_server, path=str(variant(source, "backup_cut.sql.gz", blob[:len(blob) * 2 // 3])))
    assert result["failed"] is True
    assert "gzip stream is corrupt or truncated" in result["msg"]
    assert result["scratch_dropped"] is True and scratch_databases(pg_server) == []


def test_corrupt_gzip_crc(pg_server, source):
    blob = bytearray(source.gzip.read_bytes())
    blob[-6] ^= 0x55
    result = verify(pg_server, path=str(variant(source, "backup_crc.sql.gz", bytes(blob))))
    assert result["failed"] is True
    assert "CRC check failed" in result["msg"]


@pytest.mark.parametrize("fmt", ["custom", "tar"])
def test_truncated_archive(pg_server, source, fmt):
    blob = getattr(source, fmt).read_bytes()
    path = variant(source, "backup_cut." + fmt, blob[:len(blob) * 2 // 3])
    result = verify(pg_server, path=str(path))
    assert result["failed"] is True
    assert "failed to restore into a scratch database" in result["msg"]
    if fmt == "custom":
        assert "truncated or corrupt" in result["msg"]
    assert result["scratch_db"] not in pg_server.databases()
    assert result["scratch_dropped"] is True
    assert "was dropped; the real database was not touched" in result["msg"]


def test_sql_error_near_the_end(pg_server, source):
    content = source.plain.read_bytes()
    marker = b"--\n-- PostgreSQL database dump complete"
    broken = content.replace(marker, b"SELEKT bogus FROM nowhere;\n\n" + marker)
    line = broken[:broken.index(b"SELEKT")].count(b"\n") + 1
    result = verify(pg_server, path=str(variant(source, "backup_sql_error.sql", broken)))
    assert result["failed"] is True
    assert "SQL error at line %d of the dump" % line in result["msg"]
    assert 'syntax error at or near "SELEKT"' in result["msg"]
    assert result["rc"] == 3
    assert "--single-transaction" in result["cmd"]
    assert result["scratch_db"] not in pg_server.databases()
    assert result["scratch_dropped"] is True


def test_owner_role_missing_is_a_real_error(pg_server, source):
    content = source.plain.read_bytes().replace(
        b"OWNER TO %s;" % pg_server.user.encode(), b"OWNER TO rbtest_ghost;")
    result = verify(pg_server, path=str(variant(source, "backup_ghost.sql", content)))
    assert result["failed"] is True
    assert "refers to role rbtest_ghost" in result["msg"]
    assert "--no-owner --no-privileges" in result["msg"]


def test_create_dump_with_connect_is_refused(pg_server, source):
    # pg_dump --create --clean would DROP and re-create the real database through \connect.
    result = verify(pg_server, path=str(source.create))
    assert result["failed"] is True
    assert "psql meta-command \\connect" in result["msg"]
    # Refused before a byte of it ran: the scratch database created meanwhile is dropped again,
    # and the real database still exists.
    assert result["scratch_dropped"] is True and scratch_databases(pg_server) == []
    assert source.db in pg_server.databases()


def test_directory_format_is_refused(pg_server, source, tmp_path):
    out = tmp_path / "backup_dir_format"
    pg_server.pg_dump(source.db, out, "d")
    result = verify(pg_server, path=str(out))
    assert result["failed"] is True
    assert "directory-format dumps (pg_dump -Fd) are not supported" in result["msg"]


# --- the way to the server -------------------------------------------------------------------

def test_wrong_password(pg_server, source):
    result = verify(pg_server, path=str(source.plain), login_password="wrong-" + secrets.token_hex(6))
    assert result["failed"] is True
    assert "authentication failed for user %s" % pg_server.user in result["msg"]
    assert "check login_user/login_password" in result["msg"]
    assert "scratch_db" not in result


def test_role_without_createdb(pg_server, source):
    role, password = "rbtest_nocreate_" + secrets.token_hex(3), secrets.token_hex(12)
    pg_server.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (role, password))
    try:
        result = verify(pg_server, path=str(source.custom), login_user=role, login_password=password)
    finally:
        pg_server.psql("DROP ROLE %s" % role)
    assert result["failed"] is True
    assert "may not create databases" in result["msg"] and "CREATEDB" in result["msg"]
    assert password not in json.dumps(result)


def test_dump_by_another_role_restores_as_createdb_role(pg_server, source):
    """--no-owner/--no-privileges: a custom archive of objects owned by the admin restores as a
    plain CREATEDB role; the plain dump's ALTER ... OWNER TO the admin is a real error there."""
    role, password = "rbtest_verifier_" + secrets.token_hex(3), secrets.token_hex(12)
    pg_server.psql("CREATE ROLE %s LOGIN CREATEDB PASSWORD '%s'" % (role, password))
    try:
        ok = verify(pg_server, path=str(source.custom), login_user=role, login_password=password)
        plain = verify(pg_server, path=str(source.plain), login_user=role, login_password=password)
        noowner = verify(pg_server, path=str(source.noowner), login_user=role, login_password=password)
    finally:
        pg_server.psql("DROP ROLE %s" % role)
    assert ok["failed"] is False, ok["msg"]
    assert counts(ok) == EXPECTED
    assert plain["failed"] is True
    assert "must be member of role \"%s\"" % pg_server.user in plain["msg"]
    assert "--no-owner --no-privileges" in plain["msg"]
    assert noowner["failed"] is False, noowner["msg"]


def test_server_not_running(pg_server, source):
    pg_server.stop()
    try:
        result = verify(pg_server, path=str(source.custom))
    finally:
        pg_server.start()
    assert result["failed"] is True
    assert ("the PostgreSQL server at 127.0.0.1:%d is not accepting connections (connection refused)"
            % pg_server.port) in result["msg"]
    assert "scratch_db" not in result


def test_sigterm_drops_the_scratch_database(pg_server, source):
    """A task timeout sends SIGTERM: the module ends the restore and drops its scratch database."""
    content = source.noowner.read_bytes()
    marker = b"--\n-- PostgreSQL database dump complete"
    slow = variant(source, "backup_slow.sql", content.replace(marker, b"SELECT pg_sleep(30);\n\n" + marker))
    payload = pg_server.module_args(path=str(slow))
    payload.update(_ansible_check_mode=False, _ansible_diff=False)
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS_ROOT))
    proc = subprocess.Popen([sys.executable, str(REPO / "plugins" / "modules" / "backup_verify.py")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        proc.stdin.write(json.dumps({"ANSIBLE_MODULE_ARGS": payload}).encode())
        proc.stdin.close()
        deadline = time.time() + 20
        sleeping = []
        while time.time() < deadline and not sleeping:
            sleeping = pg_server.psql("SELECT datname FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%' "
                                      "AND datname LIKE 'rollback_verify_%'").splitlines()
            if not sleeping:
                time.sleep(0.1)
        assert sleeping, "the restore never reached the pg_sleep"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        stdout = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result = json.loads(stdout)
    assert result["failed"] is True
    assert "Interrupted by SIGTERM; the scratch database %s was dropped" % sleeping[0] in result["msg"]
    assert sleeping[0] not in pg_server.databases()
