"""Unit tests of backup_verify: option checks, the choice of the newest backup, how the way to the
server is built, and every failure that happens before a server is contacted (run as Ansible
runs the module, one process per call; no server is needed for these). Restores against a real
PostgreSQL are in tests/integration/test_backup_verify.py."""
from __future__ import annotations

import bz2
import gzip
import json
import os
import time
from pathlib import Path

import pytest
import yaml

from conftest import run_module
from ansible_collections.taylordash.rollback.plugins.modules import backup_verify as mod
from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_verify as pg_verify
from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_connection as pg_connection

FIXTURES = Path(__file__).parents[1] / "module_utils" / "fixtures" / "postgres"
PLAIN = (FIXTURES / "pg_dump_plain_tiny.sql").read_bytes()
# Nothing listens there: a test that reached the server would fail with "connection refused".
NO_SERVER = {"login_host": "127.0.0.1", "login_port": 1, "login_user": "nobody", "login_password": "not-used-pw"}
DOCUMENTED = set(yaml.safe_load(mod.RETURN)) | {"failed", "changed", "invocation"}


def params(**kwargs):
    base = dict(jobs=2, max_age=None, connect_timeout=10, min_rows={})
    base.update(kwargs)
    return base


def verify(**args):
    result = run_module("backup_verify", dict(NO_SERVER, **args))
    assert set(result) <= DOCUMENTED, set(result) - DOCUMENTED
    assert "not-used-pw" not in json.dumps(result)
    return result


def write(path: Path, content: bytes, age: float = 0) -> Path:
    path.write_bytes(content)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


# --- pure helpers ----------------------------------------------------------------------------

def test_validate_params_defaults():
    assert mod.validate_params(params()) == []
    assert mod.validate_params(params(min_rows={"users": 1, "public.projects": "10"})) == []


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(jobs=0), "jobs must be 1 or more"),
    (dict(max_age=-1), "max_age must be 0 or more"),
    (dict(connect_timeout=0), "connect_timeout must be 1 or more"),
    (dict(min_rows={"users": "many"}), "min_rows[users] must be a whole number"),
    (dict(min_rows={"users": -3}), "min_rows[users] must be a whole number of 0 or more"),
    (dict(min_rows={"users": 1.5}), "min_rows[users] must be a whole number"),
])
def test_validate_params_problems(kwargs, fragment):
    problems = mod.validate_params(params(**kwargs))
    assert len(problems) == 1 and fragment in problems[0]


def test_choose_backup_newest_by_mtime(tmp_path):
    write(tmp_path / "backup_1.sql", b"x", age=300)
    write(tmp_path / "backup_2.sql.gz", b"x", age=10)
    write(tmp_path / "backup_3.sql", b"x", age=200)
    write(tmp_path / "other.sql", b"x", age=0)
    (tmp_path / "backup_4.sql").mkdir()
    assert pg_verify.choose_backup(str(tmp_path), "backup_*.sql*") == str(tmp_path / "backup_2.sql.gz")
    assert pg_verify.choose_backup(str(tmp_path), "backup_*.sql") == str(tmp_path / "backup_3.sql")
    assert pg_verify.choose_backup(str(tmp_path), "nothing_*") is None


def test_choose_backup_same_mtime_takes_the_later_name(tmp_path):
    stamp = time.time() - 5
    for name in ("backup_a.sql", "backup_b.sql"):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (stamp, stamp))
    assert pg_verify.choose_backup(str(tmp_path), "backup_*.sql") == str(tmp_path / "backup_b.sql")


def test_choose_backup_dir_with_glob_characters(tmp_path):
    odd = tmp_path / "dumps[1]"
    odd.mkdir()
    write(odd / "backup_x.sql", b"x")
    assert pg_verify.choose_backup(str(odd), "backup_*.sql*") == str(odd / "backup_x.sql")


class FakeModule:
    def __init__(self, **kwargs):
        self.params = dict(project_dir=None, docker_cli=None, db_service="postgres", db_user="taylordash",
                           compose_files=None, project_name=None, login_password=None, connect_timeout=10,
                           login_host=None, login_port=5432, login_user="postgres")
        self.params.update(kwargs)

    def fail_json(self, **kwargs):
        raise AssertionError(kwargs["msg"])


def test_build_connection_compose(tmp_path):
    conn = pg_connection.build_connection(FakeModule(project_dir=str(tmp_path), docker_cli="/usr/bin/docker",
                                                     compose_files=["docker-compose.yml"], project_name="taylordash",
                                                     login_password="pw"))
    assert isinstance(conn, pg_connection.ComposeConnection)
    assert conn.psql_argv("postgres", ["-c", "SELECT 1"]) == [
        "/usr/bin/docker", "compose", "--project-directory", str(tmp_path), "--project-name", "taylordash",
        "--file", str(tmp_path / "docker-compose.yml"), "exec", "-T", "-e", "LC_ALL=C", "-e", "PGCONNECT_TIMEOUT=10",
        "-e", "PGCLIENTENCODING=UTF8", "-e", "PGPASSWORD", "postgres",
        "psql", "-X", "-U", "taylordash", "-d", "postgres", "-w", "-c", "SELECT 1"]
    assert conn.user_option == "db_user"


def test_build_connection_direct_finds_clients():
    conn = pg_connection.build_connection(FakeModule(login_host="db.example.test", login_port=5433, login_user="rb"))
    assert isinstance(conn, pg_connection.DirectConnection)
    assert os.path.basename(conn.psql) == "psql"
    assert conn.psql_argv("postgres", [])[2:9] == ["-h", "db.example.test", "-p", "5433", "-U", "rb", "-d"]


# --- option errors (AnsibleModule) -----------------------------------------------------------

@pytest.mark.parametrize("args,fragment", [
    ({}, "one of the following is required: path, backup_dir"),
    ({"path": "/x", "backup_dir": "/y"}, "parameters are mutually exclusive: path|backup_dir"),
    ({"path": "/x", "project_dir": "/y"}, "parameters are mutually exclusive: project_dir|login_host"),
    ({"path": "/x", "compose_files": ["a.yml"], "login_host": None}, "missing parameter(s) required by 'compose_files'"),
    ({"path": "/x", "jobs": 0}, "jobs must be 1 or more"),
])
def test_option_errors(args, fragment):
    result = run_module("backup_verify", dict(NO_SERVER, **args))
    assert result["failed"] is True
    assert fragment in result["msg"]


def test_compose_project_dir_must_exist(tmp_path):
    result = run_module("backup_verify", {"path": "/x", "project_dir": str(tmp_path / "nope"),
                                          "docker_cli": "/bin/true"})
    assert result["failed"] is True
    assert "project_dir" in result["msg"] and "does not exist" in result["msg"]


# --- failures before any server is contacted -------------------------------------------------

def test_no_backup_found_names_dir_and_pattern(tmp_path):
    result = verify(backup_dir=str(tmp_path), pattern="backup_*.dump")
    assert result["failed"] is True
    assert result["msg"].startswith("No backup found: no regular file matching 'backup_*.dump' in %s" % tmp_path)


def test_backup_dir_missing(tmp_path):
    result = verify(backup_dir=str(tmp_path / "nope"))
    assert result["failed"] is True
    assert "does not exist" in result["msg"]


def test_backup_file_missing(tmp_path):
    result = verify(path=str(tmp_path / "backup_x.sql"))
    assert result["failed"] is True
    assert "does not exist" in result["msg"]


def test_empty_file(tmp_path):
    result = verify(path=str(write(tmp_path / "backup.sql", b"")))
    assert result["failed"] is True
    assert "is empty (0 bytes)" in result["msg"]
    assert result["size"] == 0


def test_too_old(tmp_path):
    result = verify(path=str(write(tmp_path / "backup.sql", PLAIN, age=4000)), max_age=3600)
    assert result["failed"] is True
    assert "too old: 4000 s" in result["msg"] or "too old: 4001 s" in result["msg"]
    assert "max_age is 3600 s" in result["msg"]


def test_symlink_is_resolved(tmp_path):
    target = write(tmp_path / "backup_real.sql", b"")
    link = tmp_path / "backup_latest.sql"
    link.symlink_to(target)
    result = verify(path=str(link))
    assert result["path"] == str(target)
    assert result["state"] == "file"


@pytest.mark.parametrize("name,content,fragment", [
    ("backup.sql.bz2", bz2.compress(PLAIN), "bzip2-compressed"),
    ("backup.dump.gz", gzip.compress((FIXTURES / "pg_dump_custom_tiny.dump").read_bytes()),
     "gzip-compressed pg_dump custom archive"),
    ("backup.sql.gz", gzip.compress(PLAIN)[:300], "gzip stream is corrupt or truncated"),
    ("backup.sql", PLAIN[:PLAIN.index(b"COPY public.users") + 60], "ends inside the COPY data of public.users"),
    ("backup.sql", PLAIN[:PLAIN.index(b"-- PostgreSQL database dump complete")], "closing line"),
    ("backup.sql", (FIXTURES / "pg_dump_plain_create.sql").read_bytes(), "psql meta-command \\connect"),
    ("backup.sql", (FIXTURES / "pg_dumpall_roles.sql").read_bytes(), "pg_dumpall cluster dump"),
    ("backup.sql", b"-- only a comment\n", "holds no SQL statements"),
])
def test_unusable_backup_is_reported_as_such_and_never_restored(tmp_path, name, content, fragment):
    """The integrity pass runs while the scratch database is created; its verdict comes first,
    whatever the server said (here: nothing listens), and nothing of the dump is restored."""
    result = verify(path=str(write(tmp_path / name, content)))
    assert result["failed"] is True
    assert fragment in result["msg"]
    assert "scratch_db" not in result
    assert "connection refused" not in result["msg"]
    assert set(result["phases"]) <= {"integrity", "restore"}  # no restore of the dump, no count
    assert "sql_lines" not in result and "tables" not in result


def test_directory_is_refused(tmp_path):
    result = verify(path=str(tmp_path))
    assert result["failed"] is True
    assert "directory-format dumps (pg_dump -Fd) are not supported" in result["msg"]


def test_valid_file_reaches_the_server_and_reports_it_down(tmp_path):
    result = verify(path=str(write(tmp_path / "backup.sql", PLAIN)))
    assert result["failed"] is True
    assert "the PostgreSQL server at 127.0.0.1:1 is not accepting connections" in result["msg"]
    assert result["format"] == "plain"
    assert len(result["sha256"]) == 64
    assert "scratch_db" not in result
