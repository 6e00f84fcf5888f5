"""The swap path of the data restoration (issue 17): backup_verify keeps its verified scratch
database (keep_as, keep_for) and backup_restore state=swapped renames it in for the live
database, keeping the old one. Against a real, throwaway PostgreSQL 15 server (direct mode),
one server and one seeded database for the whole module."""
from __future__ import annotations

import contextlib
import json
import secrets
import subprocess

import pytest
import yaml

from conftest import run_module
try:  # tests/integration as a package, or as a plain directory on sys.path
    from .pg_server import pg_server  # noqa: F401 pytest fixture  pylint: disable=unused-import
except ImportError:
    from pg_server import pg_server  # noqa: F401  pylint: disable=unused-import
from ansible_collections.taylordash.rollback.plugins.modules import backup_restore as restore_source
from ansible_collections.taylordash.rollback.plugins.modules import backup_verify as verify_source

pytestmark = pytest.mark.integration

SEED_SQL = """
CREATE TABLE users (id serial PRIMARY KEY, username text NOT NULL UNIQUE);
CREATE TABLE projects (id serial PRIMARY KEY, owner_id int NOT NULL REFERENCES users(id), name text NOT NULL);
INSERT INTO users (username) SELECT 'user' || g FROM generate_series(1, 300) g;
INSERT INTO projects (owner_id, name) SELECT 1 + (g % 300), 'project ' || g FROM generate_series(1, 500) g;
"""
BACKUP_ROWS = {"public.users": 300, "public.projects": 500}
VERIFY_DOCUMENTED = set(yaml.safe_load(verify_source.RETURN)) | {"failed", "changed", "invocation"}
RESTORE_DOCUMENTED = set(yaml.safe_load(restore_source.RETURN)) | {"failed", "changed", "invocation", "diff", "warnings"}


def run(pg_server, name, documented, check_mode=False, **args):
    full = pg_server.module_args(**args)
    result = run_module(name, full, check_mode=check_mode, diff=True, timeout=120)
    assert full["login_password"] not in json.dumps(result)
    assert set(result) <= documented, "undocumented return keys: %s" % (set(result) - documented)
    return result


def verify(pg_server, **args):
    return run(pg_server, "backup_verify", VERIFY_DOCUMENTED, **args)


def swap(pg_server, **args):
    return run(pg_server, "backup_restore", RESTORE_DOCUMENTED, state="swapped", **args)


@contextlib.contextmanager
def session(pg_server, db):
    """A psql session connected to ``db`` for the time of the block (a DROP DATABASE of it fails)."""
    proc = subprocess.Popen([pg_server.client_bin("psql"), "-X", "-q", "-A", "-t"] + pg_server.conn_argv(db),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=pg_server.client_env())
    try:
        proc.stdin.write("SELECT 'connected';\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "connected"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def rows(pg_server, db) -> str:
    return pg_server.psql("SELECT (SELECT count(*) FROM users) || ' ' || (SELECT count(*) FROM projects)", dbname=db)


@pytest.fixture(scope="module")
def backup(pg_server, tmp_path_factory):
    """A plain dump of 300 users and 500 projects, written by pg_dump."""
    db = "swsrc_" + secrets.token_hex(4)
    pg_server.psql("CREATE DATABASE %s" % db)
    pg_server.psql(SEED_SQL, dbname=db)
    path = pg_server.pg_dump(db, tmp_path_factory.mktemp("swap") / "backup.sql", "p", ["--no-owner", "--no-privileges"])
    pg_server.psql("DROP DATABASE %s" % db)
    return path


@pytest.fixture()
def live(pg_server):
    """A live database whose data differs from the backup (one user, no projects)."""
    db = "swlive_" + secrets.token_hex(4)
    pg_server.psql("CREATE DATABASE %s" % db)
    pg_server.psql("CREATE TABLE users (id serial PRIMARY KEY, username text NOT NULL UNIQUE);"
                   "CREATE TABLE projects (id serial PRIMARY KEY, owner_id int, name text);"
                   "INSERT INTO users (username) VALUES ('only');", dbname=db)
    before = set(pg_server.databases())
    yield db
    for name in set(pg_server.databases()) - before | {db}:
        if name.startswith(db) or name.startswith("rollback_verify_"):
            pg_server.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def test_keep_then_swap_keeps_the_previous_database(pg_server, backup, live):
    kept, previous = live + "_rollback_1", live + "_before_1"
    result = verify(pg_server, path=str(backup), keep_as=kept, keep_for=live, expect_tables=["users"])
    assert result["failed"] is False, result["msg"]
    assert result["kept_db"] == kept and result["keep_problem"] is None and result["changed"] is True
    assert "kept as database %s" % kept in result["msg"]
    assert rows(pg_server, kept) == "300 500"

    expect = {t["name"]: t["rows"] for t in result["tables"]}
    checked = swap(pg_server, check_mode=True, db=live, swap_from=kept, previous_as=previous, expect_rows=expect)
    assert checked["failed"] is False and checked["changed"] is True, checked["msg"]
    assert "Would rename database %s to %s" % (live, previous) in checked["msg"]
    assert rows(pg_server, live) == "1 0" and previous not in pg_server.databases()

    done = swap(pg_server, db=live, swap_from=kept, previous_as=previous, expect_rows=expect)
    assert done["failed"] is False, done["msg"]
    assert done["committed"] is True and done["previous_db"] == previous
    assert {t["name"]: t["rows"] for t in done["rows_after"]} == BACKUP_ROWS
    assert rows(pg_server, live) == "300 500"
    assert rows(pg_server, previous) == "1 0", "the data from before the swap is kept"
    assert kept not in pg_server.databases()
    assert "The data from before is in database %s" % previous in done["msg"]


def test_swap_with_other_counts_is_undone(pg_server, backup, live):
    kept, previous = live + "_rollback_2", live + "_before_2"
    result = verify(pg_server, path=str(backup), keep_as=kept, keep_for=live)
    assert result["kept_db"] == kept, result["msg"]
    wrong = dict(BACKUP_ROWS, **{"public.users": 301})
    done = swap(pg_server, db=live, swap_from=kept, previous_as=previous, expect_rows=wrong)
    assert done["failed"] is True
    assert done["swapped_back"] is True and done["committed"] is False
    assert "public.users has 300 rows, the verified backup 301" in done["msg"]
    assert rows(pg_server, live) == "1 0", "the live database is the old one again"
    assert rows(pg_server, kept) == "300 500" and previous not in pg_server.databases()


def test_swap_refused_changes_nothing(pg_server, backup, live):
    # swap_from missing, previous_as taken: refused before anything changes, in check mode too.
    pg_server.psql("CREATE DATABASE %s_taken" % live)
    for check_mode in (True, False):
        done = swap(pg_server, check_mode=check_mode, db=live, swap_from=live + "_nosuch", previous_as=live + "_taken")
        assert done["failed"] is True and done["changed"] is False
        assert "database %s_nosuch (swap_from) does not exist" % live in done["msg"]
        assert "database %s_taken (previous_as) already exists" % live in done["msg"]
        assert "Nothing was changed" in done["msg"]
    assert rows(pg_server, live) == "1 0"


def test_keep_as_taken_fails_and_leaves_it(pg_server, backup, live):
    taken = live + "_rollback_3"
    pg_server.psql("CREATE DATABASE %s" % taken)
    for check_mode in (True, False):
        result = verify(pg_server, check_mode=check_mode, path=str(backup), keep_as=taken, keep_for=live)
        assert result["failed"] is True
        assert "a database of that name already exists" in result["msg"]
    assert taken in pg_server.databases(), "a database the module did not create is never dropped"
    assert pg_server.psql("SELECT count(*) FROM pg_class WHERE relname = 'users'", dbname=taken) == "0"
    assert [d for d in pg_server.databases() if d.startswith("rollback_verify_")] == []


def test_keep_refused_when_the_swap_could_not_be_faithful(pg_server, backup, live):
    pg_server.psql("ALTER DATABASE %s SET work_mem = '8MB'" % live)
    kept = live + "_rollback_4"
    result = verify(pg_server, path=str(backup), keep_as=kept, keep_for=live)
    assert result["failed"] is False, result["msg"]
    assert result["kept_db"] is None
    assert "has settings of its own" in result["keep_problem"]
    assert "not kept: " in result["msg"]
    assert kept not in pg_server.databases()


def test_check_mode_keeps_nothing(pg_server, backup, live):
    kept = live + "_rollback_5"
    result = verify(pg_server, check_mode=True, path=str(backup), keep_as=kept, keep_for=live)
    assert result["failed"] is False and result["changed"] is False, result["msg"]
    assert result["kept_db"] is None and "it would be kept as %s" % kept in result["msg"]
    assert kept not in pg_server.databases()


def test_failed_verification_keeps_nothing(pg_server, backup, live, tmp_path):
    bad = tmp_path / "bad.sql"
    bad.write_bytes(backup.read_bytes().replace(b"COPY public.users", b"COPY public.no_such_table", 1))
    kept = live + "_rollback_6"
    result = verify(pg_server, path=str(bad), keep_as=kept, keep_for=live)
    assert result["failed"] is True
    assert kept not in pg_server.databases()
    result = verify(pg_server, path=str(backup), keep_as=kept, keep_for=live, expect_tables=["sessions"])
    assert result["failed"] is True and "public.sessions" in result["msg"]
    assert kept not in pg_server.databases()


def test_prune_keeps_the_newest_previous_databases(pg_server, live):
    names = ["%s_before_2026010%d_120000" % (live, day) for day in (1, 2, 3)]
    for name in names + [live + "_before_manual"]:
        pg_server.psql('CREATE DATABASE "%s"' % name)
    checked = run(pg_server, "backup_restore", RESTORE_DOCUMENTED, check_mode=True, state="pruned", db=live, keep_previous=1)
    assert checked["failed"] is False and checked["changed"] is True, checked["msg"]
    assert checked["would_drop"] == [names[1], names[0]]
    assert set(names) <= set(pg_server.databases())
    done = run(pg_server, "backup_restore", RESTORE_DOCUMENTED, state="pruned", db=live, keep_previous=1)
    assert done["failed"] is False, done["msg"]
    assert done["dropped"] == [names[1], names[0]] and done["previous_dbs"] == [names[2]]
    left = pg_server.databases()
    assert names[2] in left and live + "_before_manual" in left, "only stamped names beyond the newest are dropped"
    assert names[0] not in left and names[1] not in left


def test_no_permission_to_create_databases(pg_server, backup, live):
    """A role without CREATEDB that does not own the live database: the verification cannot create its
    copy (clear message, nothing left), and a swap is refused before anything changes."""
    role, password = "swnocreate_" + secrets.token_hex(3), secrets.token_hex(12)
    pg_server.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (role, password))
    try:
        login = {"login_user": role, "login_password": password}
        kept = live + "_rollback_7"
        result = verify(pg_server, path=str(backup), keep_as=kept, keep_for=live, **login)
        assert result["failed"] is True
        assert "cannot create the scratch database %s" % kept in result["msg"], result["msg"]
        assert "permission denied to create database" in result["msg"], result["msg"]
        assert kept not in pg_server.databases()
        pg_server.psql("CREATE DATABASE %s" % kept)
        done = swap(pg_server, db=live, swap_from=kept, previous_as=live + "_before_7", **login)
        assert done["failed"] is True and done["changed"] is False
        assert "role %s may not create databases (CREATEDB)" % role in done["msg"], done["msg"]
        assert "role %s does not own database %s" % (role, live) in done["msg"], done["msg"]
        assert rows(pg_server, live) == "1 0" and kept in pg_server.databases()
    finally:
        pg_server.psql("DROP ROLE %s" % role)


def test_swap_drops_the_older_previous_databases_after_its_rows_matched(pg_server, backup, live):
    """keep_previous with state=swapped (issue 17): the older <db>_before_<stamp> databases beyond
    keep_previous are dropped in the same module run, only after the swap committed and its rows
    matched; the swap's own previous database is always kept and counts as one."""
    older = ["%s_before_2026010%d_120000" % (live, day) for day in (1, 2, 3)]
    for name in older + [live + "_before_manual"]:
        pg_server.psql('CREATE DATABASE "%s"' % name)
    kept, previous = live + "_rollback_8", live + "_before_20260104_120000"
    result = verify(pg_server, path=str(backup), keep_as=kept, keep_for=live)
    assert result["kept_db"] == kept, result["msg"]
    expect = {t["name"]: t["rows"] for t in result["tables"]}

    checked = swap(pg_server, check_mode=True, db=live, swap_from=kept, previous_as=previous, expect_rows=expect,
                   keep_previous=2)
    assert checked["failed"] is False, checked["msg"]
    assert checked["would_drop"] == [older[1], older[0]] and checked["previous_dbs"] == [previous, older[2]]
    assert "then would drop the older previous database(s) %s, %s" % (older[1], older[0]) in checked["msg"]
    assert set(older) <= set(pg_server.databases()) and rows(pg_server, live) == "1 0"

    # Counts that differ: the swap is undone and nothing is dropped.
    wrong = dict(expect, **{"public.users": 301})
    undone = swap(pg_server, db=live, swap_from=kept, previous_as=previous, expect_rows=wrong, keep_previous=1)
    assert undone["failed"] is True and undone["swapped_back"] is True
    assert undone["dropped"] == [] and "previous_dbs" not in undone and set(older) <= set(pg_server.databases())

    done = swap(pg_server, db=live, swap_from=kept, previous_as=previous, expect_rows=expect, keep_previous=2)
    assert done["failed"] is False and done["committed"] is True, done["msg"]
    assert done["dropped"] == [older[1], older[0]] and done["previous_dbs"] == [previous, older[2]]
    assert "drop_problem" not in done and "would_drop" not in done
    assert "Dropped the older previous database(s) %s, %s (keep_previous=2)" % (older[1], older[0]) in done["msg"]
    assert done["phases"]["drop"] >= 0
    left = pg_server.databases()
    assert previous in left and older[2] in left and live + "_before_manual" in left
    assert older[0] not in left and older[1] not in left
    assert rows(pg_server, live) == "300 500" and rows(pg_server, previous) == "1 0"
    assert live + "_before_manual\n" not in done["diff"]["before"]


def test_swap_keeps_its_previous_database_even_when_it_is_not_the_newest(pg_server, backup, live):
    """keep_previous=1: every other stamped previous database goes, never previous_as - even when an
    older-looking name (or a newer stamp) sorts before it; a failed drop leaves the swap standing."""
    newer = live + "_before_20991231_235959"
    pg_server.psql('CREATE DATABASE "%s"' % newer)
    kept, previous = live + "_rollback_9", live + "_before_20000101_000000"
    result = verify(pg_server, path=str(backup), keep_as=kept, keep_for=live)
    expect = {t["name"]: t["rows"] for t in result["tables"]}
    # A session on the newer database makes its DROP fail: the swap stands, the problem is reported.
    with session(pg_server, newer):
        done = swap(pg_server, db=live, swap_from=kept, previous_as=previous, expect_rows=expect, keep_previous=1)
    assert done["failed"] is False and done["committed"] is True, done["msg"]
    assert done["dropped"] == [] and done["previous_dbs"] == [previous, newer]
    assert "Dropping the older previous database %s failed" % newer in done["drop_problem"]
    assert done["drop_problem"] in done["msg"]
    assert newer in pg_server.databases() and rows(pg_server, live) == "300 500" and rows(pg_server, previous) == "1 0"
    # Once nothing holds it, a swap back with keep_previous=1 drops it (and still keeps its own previous database).
    again = swap(pg_server, db=live, swap_from=previous, previous_as=live + "_before_20000101_000001",
                 expect_rows={"public.users": 1, "public.projects": 0}, keep_previous=1)
    assert again["failed"] is False, again["msg"]
    assert again["dropped"] == [newer] and newer not in pg_server.databases()
    assert rows(pg_server, live) == "1 0" and rows(pg_server, live + "_before_20000101_000001") == "300 500"


def test_swap_refuses_keep_previous_zero(pg_server, live):
    done = swap(pg_server, db=live, swap_from=live + "_rollback_10", previous_as=live + "_before_10", keep_previous=0)
    assert done["failed"] is True and done["changed"] is False
    assert "keep_previous=0 with state=swapped would drop the database the swap keeps (previous_as)" in done["msg"]
