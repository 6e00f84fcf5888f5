"""Unit tests of backup_restore: the SQL that frames a restore (commit guard, schema cleaning, row
check), the checks of a pg_dump script's end, the restore stream (plain and gzip sources, early
ends), how psql's errors are turned into messages (on stderr captured from real restores), and
every failure that happens before a server is contacted (run as Ansible runs the module, one
process per call). Restores against the reference stack's PostgreSQL are in
tests/integration/test_rollback_database.py."""
from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from conftest import run_module
from ansible_collections.taylordash.rollback.plugins.modules import backup_restore as mod
from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_restore as pg_restore
from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_restore_stream as pg_restore_stream
from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_sql as pg_sql
from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_dump_format as dump_format
from ansible_collections.taylordash.rollback.plugins.module_utils import _pg_connection as pg_connection

FIXTURES = Path(__file__).parent / "fixtures" / "backup_restore"
PG_FIXTURES = Path(__file__).parents[1] / "module_utils" / "fixtures" / "postgres"
PLAIN = (PG_FIXTURES / "pg_dump_plain_tiny.sql").read_bytes()
CUSTOM_HEAD = (PG_FIXTURES / "pg_dump_custom_tiny.dump").read_bytes()[:512]
NO_SERVER = {"login_host": "127.0.0.1", "login_port": 1, "login_user": "nobody", "login_password": "not-used-pw"}
DOCUMENTED = set(yaml.safe_load(mod.RETURN)) | {"failed", "changed", "invocation", "diff"}


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def params(**kwargs):
    base = dict(state="restored", lock_timeout=30, connect_timeout=10, sha256=None, clean_schemas=["public"],
                expect_rows=None, keep_previous=1, path="backup.sql")
    base.update(kwargs)
    return base


def restore(**args):
    result = run_module("backup_restore", dict(NO_SERVER, **args))
    assert set(result) <= DOCUMENTED, set(result) - DOCUMENTED
    assert "not-used-pw" not in json.dumps(result)
    return result


# --- the SQL around the dump --------------------------------------------------------------------

def test_prelude_guards_then_cleans_the_schemas():
    sql = pg_sql.restore_prelude(["public", 'odd"name'], 12).decode()
    lines = sql.splitlines()
    # The guard comes first, so even a failure in DROP SCHEMA is covered by it.
    assert lines[1].startswith("CREATE TEMPORARY TABLE taylordash_restore_guard")
    assert "DEFERRABLE INITIALLY DEFERRED" in sql and "INSERT INTO pg_temp.taylordash_restore_guard VALUES (false);" in sql
    assert "SET lock_timeout = '12s';" in lines
    assert lines.index('DROP SCHEMA IF EXISTS "public" CASCADE;') < lines.index('CREATE SCHEMA "public";')
    assert 'DROP SCHEMA IF EXISTS "odd""name" CASCADE;' in lines
    assert lines[-1] == "RESET lock_timeout;"
    assert pg_sql.sql_lines(pg_sql.restore_prelude(["public"], 30)) == 9


def test_epilogue_without_expectations_only_marks_the_stream_complete():
    assert pg_sql.restore_epilogue(None, ["public"]) == b"\nUPDATE pg_temp.taylordash_restore_guard SET done = true;\n"


def test_epilogue_checks_every_expected_table_before_marking():
    sql = pg_sql.restore_epilogue({"users": 3, "public.projects": "5", "audit.Event Log": 2}, ["public", "audit"]).decode()
    expected = json.loads(re.search(r"expected pg_catalog.jsonb := '(.*)'::pg_catalog.jsonb;", sql).group(1))
    assert expected == {"public.users": 3, "public.projects": 5, "audit.Event Log": 2}
    assert "cleaned pg_catalog.text[] := '{\"public\",\"audit\"}'::pg_catalog.text[];" in sql
    # pg_dump empties search_path: every name the check uses is schema-qualified.
    assert "FROM pg_class" not in sql and "pg_catalog.pg_class" in sql
    assert sql.index("DO $check$") < sql.index("UPDATE pg_temp.taylordash_restore_guard SET done = true;")
    assert pg_sql.CHECK_MESSAGE in sql


def test_epilogue_quotes_names_with_quotes():
    sql = pg_sql.restore_epilogue({"it's": 1}, ["public"]).decode()
    assert "'{\"public.it''s\": 1}'::pg_catalog.jsonb" in sql


def test_quote_literal():
    assert pg_sql.quote_literal("a'b") == "'a''b'"


# --- the end of a pg_dump script ------------------------------------------------------------------

def test_complete_pg_dump_script_passes():
    assert dump_format.pg_dump_tail_problem(PLAIN[:512], PLAIN[-4096:]) is None


@pytest.mark.parametrize("tail,fragment", [
    (PLAIN[:-200], "truncated"),
    (PLAIN + b"SELECT bogus_function();\n", "something was appended"),
    (PLAIN + b"\nDROP TABLE users;\n-- a comment\n", "something was appended"),
])
def test_pg_dump_script_cut_short_or_extended(tail, fragment):
    assert fragment in dump_format.pg_dump_tail_problem(PLAIN[:512], tail[-4096:])


def test_hand_written_sql_is_not_held_to_pg_dump_rules():
    assert dump_format.pg_dump_tail_problem(b"CREATE TABLE t (id int);\n", b"INSERT INTO t VALUES (1);\n") is None


@pytest.mark.parametrize("fmt,head,tail,size,fragment", [
    ("plain", b"", b"", 0, "pg_dump wrote nothing"),
    ("plain", PLAIN[:512], PLAIN[-4096:], len(PLAIN), None),
    ("plain", b"SET x = 1;\n", PLAIN[-4096:], 100, "header"),
    ("plain", PLAIN[:512], PLAIN[:-300][-4096:], 100, "truncated"),
    ("custom", CUSTOM_HEAD, b"", 4000, None),
    ("custom", b"garbage", b"", 7, "PGDMP"),
])
def test_dump_file_problem(fmt, head, tail, size, fragment):
    problem = dump_format.dump_file_problem(fmt, head, tail, size)
    if fragment is None:
        assert problem is None
    else:
        assert fragment in problem


def test_stream_lines_map_back_to_the_dump():
    assert pg_restore_stream.stream_line_to_dump_line(7, 9, 219) == ("prelude", 7)
    assert pg_restore_stream.stream_line_to_dump_line(229, 9, 220) == ("dump", 220)
    assert pg_restore_stream.stream_line_to_dump_line(263, 9, 219) == ("check", 35)


# --- option checks --------------------------------------------------------------------------------

def test_validate_params_defaults():
    assert mod.validate_params(params()) == []
    assert mod.validate_params(params(expect_rows={"users": 1, "projects": "3"}, sha256="a" * 64)) == []


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(lock_timeout=0), "lock_timeout must be 1 or more"),
    (dict(connect_timeout=0), "connect_timeout must be 1 or more"),
    (dict(sha256="abc"), "sha256 must be 64 hexadecimal digits"),
    (dict(clean_schemas=[]), "clean_schemas must name at least one schema"),
    (dict(expect_rows={"users": "many"}), "expect_rows[users] must be a whole number"),
    (dict(expect_rows={"users": -1}), "expect_rows[users] must be a whole number of 0 or more"),
])
def test_validate_params_problems(kwargs, fragment):
    assert any(fragment in p for p in mod.validate_params(params(**kwargs)))


# --- the restore stream ---------------------------------------------------------------------------

def stream_of(tmp_path, content: bytes, fmt="plain", sha=None, expect=None):
    path = tmp_path / ("dump.sql.gz" if fmt == "gzip" else "dump.sql")
    path.write_bytes(content)
    stream = pg_restore_stream.RestoreStream(b"PRELUDE;\n", b"\nEPILOGUE;\n", sha)
    source = stream.gzip_source(str(path)) if fmt == "gzip" else stream.plain_source(str(path))
    return stream, b"".join(stream.generate(source, fmt))


def test_plain_stream_is_prelude_dump_epilogue(tmp_path):
    stream, data = stream_of(tmp_path, PLAIN)
    assert data == b"PRELUDE;\n" + PLAIN + b"\nEPILOGUE;\n"
    assert stream.complete and stream.failure is None
    assert stream.sha256 == hashlib.sha256(PLAIN).hexdigest()
    assert stream.dump_lines == PLAIN.count(b"\n")


def test_gzip_stream_inflates_every_member_and_hashes_the_file(tmp_path):
    content = gzip.compress(PLAIN[:1000]) + gzip.compress(PLAIN[1000:]) + b"\x00" * 64
    stream, data = stream_of(tmp_path, content, "gzip")
    assert data == b"PRELUDE;\n" + PLAIN + b"\nEPILOGUE;\n"
    assert stream.complete and stream.sha256 == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize("content,fmt,fragment", [
    (PLAIN[:-150], "plain", "does not end with pg_dump's closing line"),
    (gzip.compress(PLAIN)[:-40], "gzip", "the gzip stream ends inside a member"),
    (gzip.compress(PLAIN)[:200] + b"X" * 50 + gzip.compress(PLAIN)[250:], "gzip", "reading the dump failed"),
    (gzip.compress(PLAIN) + b"trailing garbage", "gzip", "reading the dump failed"),
])
def test_a_bad_source_ends_the_stream_without_the_epilogue(tmp_path, content, fmt, fragment):
    stream, data = stream_of(tmp_path, content, fmt)
    assert not stream.complete and fragment in stream.failure
    assert data.startswith(b"PRELUDE;\n") and not data.endswith(b"EPILOGUE;\n")


def test_a_changed_file_ends_the_stream_without_the_epilogue(tmp_path):
    stream, data = stream_of(tmp_path, PLAIN, sha="0" * 64)
    assert not stream.complete and "the file changed since it was verified" in stream.failure
    assert not data.endswith(b"EPILOGUE;\n")
    stream, data = stream_of(tmp_path, PLAIN, sha=hashlib.sha256(PLAIN).hexdigest().upper())
    assert stream.complete


def test_a_stop_request_ends_the_stream_without_the_epilogue(tmp_path):
    path = tmp_path / "dump.sql"
    path.write_bytes(PLAIN * 3)
    stream = pg_restore_stream.RestoreStream(b"P\n", b"E\n")
    chunks = []
    for chunk in stream.generate((PLAIN[i:i + 100] for i in range(0, len(PLAIN), 100)), "plain"):
        chunks.append(chunk)
        if len(chunks) == 3:
            stream.stop_requested = True  # what the SIGTERM handler does
    assert not stream.complete and "SIGTERM" in stream.failure
    assert chunks[-1] != b"E\n"


def test_a_failing_finish_ends_the_stream_without_the_epilogue():
    stream = pg_restore_stream.RestoreStream(b"P\n", b"E\n")
    data = b"".join(stream.generate(iter([b"SET x = 1;\n"]), "custom",
                                    finish=lambda: ("pg_restore could not convert the archive", None)))
    assert data == b"P\nSET x = 1;\n" and not stream.complete
    assert stream.failure == "pg_restore could not convert the archive"


# --- messages from real psql/pg_restore output ----------------------------------------------------

def restorer(fmt="plain", lock_timeout=30):
    module = SimpleNamespace(params=dict(params(lock_timeout=lock_timeout), db="taylordash"), check_mode=False)
    conn = pg_connection.ComposeConnection("docker", "/opt/taylordash", "postgres", "taylordash")
    worker = pg_restore.BackupRestore(module, conn, "C")
    worker.result["format"] = fmt
    return worker


def finished_stream(dump_lines, failure=None):
    stream = pg_restore_stream.RestoreStream(pg_sql.restore_prelude(["public"], 30), b"")
    stream.dump_lines = dump_lines
    stream.failure = failure
    return stream


def result(stderr, rc=3):
    return SimpleNamespace(stderr_text=stderr, rc=rc)


def test_sql_error_names_the_line_of_the_dump():
    reason = restorer().failure_reason(finished_stream(220), result(fixture("psql_sql_error_line229.stderr")))
    assert reason.startswith("SQL error at line 220 of the dump: psql:<stdin>:220: ERROR:  function bogus_function() does not exist")


def test_sql_error_in_an_archive_counts_the_converted_sql():
    reason = restorer("custom").failure_reason(finished_stream(220), result(fixture("psql_sql_error_line229.stderr")))
    assert "line 220 of the dump" in reason and "pg_restore -f -" in reason


def test_row_check_failure_names_the_tables():
    reason = restorer().failure_reason(finished_stream(219), result(fixture("psql_row_check.stderr")))
    assert reason == ("the restored row counts differ from the verified backup (public.projects has 3 rows, the "
                      "verified backup 4; audit.x is missing (the verified backup has 3 rows))")


def test_lock_timeout_says_to_stop_the_writers():
    reason = restorer(lock_timeout=2).failure_reason(finished_stream(0), result(fixture("psql_lock_timeout.stderr")))
    assert "another session holds a lock" in reason and "waited 2 s" in reason


def test_the_guard_error_gives_way_to_the_reason_the_stream_ended():
    stream = finished_stream(57, "the dump does not end with pg_dump's closing line: it is truncated")
    reason = restorer().failure_reason(stream, result(fixture("psql_guard_rollback.stderr")))
    assert reason == "the dump does not end with pg_dump's closing line: it is truncated"


def test_a_psql_error_comes_before_the_stream_problem():
    stream = finished_stream(220, "something was appended")
    reason = restorer().failure_reason(stream, result(fixture("psql_sql_error_line229.stderr")))
    assert reason.index("bogus_function") < reason.index("something was appended")


def test_pg_restore_failure_is_classified():
    assert "truncated or corrupt" in restorer().classify(fixture("pg_restore_truncated.stderr"), 1)


# --- the module, before any server is contacted ---------------------------------------------------

def test_invalid_options_fail_before_anything(tmp_path):
    res = restore(path=str(tmp_path / "x.sql"), db="taylordash", lock_timeout=0, sha256="xyz")
    assert res["failed"] and "lock_timeout must be 1 or more" in res["msg"] and "sha256 must be" in res["msg"]


def test_missing_dump(tmp_path):
    res = restore(path=str(tmp_path / "nope.sql"), db="taylordash")
    assert res["failed"] and "Cannot read the dump" in res["msg"] and "Nothing was changed" in res["msg"]
    assert res["committed"] is False and not res["changed"]


def test_directory_is_refused(tmp_path):
    res = restore(path=str(tmp_path), db="taylordash")
    assert res["failed"] and "directory-format dumps" in res["msg"]


def test_unsupported_compression_is_refused(tmp_path):
    path = tmp_path / "backup.sql.bz2"
    path.write_bytes(bz2.compress(PLAIN))
    res = restore(path=str(path), db="taylordash")
    assert res["failed"] and "bzip2-compressed" in res["msg"] and "Nothing was changed" in res["msg"]


def test_server_not_answering_fails_before_restoring(tmp_path):
    path = tmp_path / "backup.sql"
    path.write_bytes(PLAIN)
    res = restore(path=str(path), db="taylordash")
    assert res["failed"] and "counting its rows failed" in res["msg"] and "connection refused" in res["msg"]
    assert "Nothing was changed" in res["msg"] and "PGPASSWORD" not in " ".join(res["cmd"])


def test_dump_refuses_to_replace_a_file(tmp_path):
    path = tmp_path / "safety_1.sql"
    path.write_bytes(b"keep me")
    res = restore(state="dumped", path=str(path), db="taylordash")
    assert res["failed"] and "exists already" in res["msg"] and not res["changed"]
    assert path.read_bytes() == b"keep me"


def test_dump_into_a_missing_directory(tmp_path):
    res = restore(state="dumped", path=str(tmp_path / "no" / "safety.sql"), db="taylordash")
    assert res["failed"] and "does not exist" in res["msg"]


def test_dump_in_check_mode_writes_nothing(tmp_path):
    res = run_module("backup_restore", dict(NO_SERVER, state="dumped", path=str(tmp_path / "s.sql"), db="taylordash"),
                     check_mode=True, diff=True)
    assert not res["failed"] and res["changed"] and "Would dump taylordash (plain)" in res["msg"]
    assert res["diff"]["before"]["state"] == "absent"
    assert list(tmp_path.iterdir()) == []


def test_failed_dump_leaves_no_file(tmp_path):
    res = restore(state="dumped", path=str(tmp_path / "s.sql"), db="taylordash")
    assert res["failed"] and "pg_dump of taylordash failed" in res["msg"] and "Nothing was written" in res["msg"]
    assert not res["changed"] and list(tmp_path.iterdir()) == []


# --- issue 10: clean_schemas with an empty name was accepted in check mode --------------------------

@pytest.mark.parametrize("schemas,fragment", [
    ([""], "clean_schemas holds an empty schema name"),
    (["public", " "], "clean_schemas holds an empty schema name"),
    (["a\x00b"], "NUL character"),
    (["x" * 64], "longer than 63 bytes"),
    (["public", "public"], "more than once"),
])
def test_bad_clean_schemas_fail_in_check_mode_before_anything(tmp_path, schemas, fragment):
    path = tmp_path / "backup.sql"
    path.write_bytes(PLAIN)
    res = run_module("backup_restore", dict(NO_SERVER, path=str(path), db="taylordash", clean_schemas=schemas),
                     check_mode=True)
    assert res["failed"] and fragment in res["msg"] and "Nothing was changed" in res["msg"]
    assert "Invalid options" in res["msg"] and not res["changed"]


def test_out_of_range_numbers_are_refused():
    assert any("lock_timeout must be at most 86400" in p for p in mod.validate_params(params(lock_timeout=10 ** 20)))
    assert any("expect_rows[users] must be below 2^63" in p for p in mod.validate_params(params(expect_rows={"users": 2 ** 63})))
