"""The pure parts of the swap (issue 17): the SQL of the checks and of the swap, the parsing of
tagged psql lines, the comparison of row counts, the pruning plan and the option checks."""
from __future__ import annotations

from hypothesis import given, strategies as st

from ansible_collections.taylordash.rollback.plugins.module_utils._pg_sql import (
    count_differences, database_taken_sql, parse_tagged_lines, previous_databases_sql, prune_plan, swap_back_sql,
    swap_problems_sql, swap_sql, tagged_values)
from ansible_collections.taylordash.rollback.plugins.module_utils._pg_task import database_name_problems
from ansible_collections.taylordash.rollback.plugins.modules import backup_restore, backup_verify


def test_swap_is_one_transaction_with_quoted_names():
    sql = swap_sql('td"x', "td'kept", "td_before_1")
    assert sql[0] == "BEGIN" and sql[-1] == "COMMIT"
    assert 'ALTER DATABASE "td""x" RENAME TO "td_before_1"' in sql
    assert 'ALTER DATABASE "td\'kept" RENAME TO "td""x"' in sql
    # the sessions of both databases end first; the new database gets the owner of the old one
    assert "pg_terminate_backend" in sql[1] and "'td''kept'" in sql[1]
    assert sql.index('ALTER DATABASE "td""x" RENAME TO "td_before_1"') < sql.index('ALTER DATABASE "td\'kept" RENAME TO "td""x"')
    assert "OWNER TO" in sql[4] and "'td_before_1'" in sql[4]
    back = swap_back_sql("td", "td_kept", "td_before_1")
    assert back[0] == "BEGIN" and back[-1] == "COMMIT"
    assert back[2:4] == ['ALTER DATABASE "td" RENAME TO "td_kept"', 'ALTER DATABASE "td_before_1" RENAME TO "td"']


def test_swap_problems_names_every_reason_and_quotes():
    sql = swap_problems_sql("it's")
    assert sql.startswith("SELECT 'swap:' || concat_ws('; ', ")
    assert "'it''s'" in sql
    for reason in ("does not exist", "maintenance database", "CREATEDB", "does not own", "privileges of its own",
                   "settings of its own", "connection limit", "is a template", "encoding or locale"):
        assert reason in sql
    assert database_taken_sql("a'b", "kept") == (
        "SELECT 'kept:' || CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = 'a''b') "
        "THEN 'yes' ELSE 'no' END")


def test_parse_tagged_lines():
    out = "150018 15.18 (Debian 15.18-1.pgdg120+1)\nswap:\ntaken:no\nkept:yes\nprevious:no\n"
    assert parse_tagged_lines(out) == {"swap": "", "taken": "no", "kept": "yes", "previous": "no"}
    assert parse_tagged_lines(b"swap:role x does not own database td; database td has a connection limit\n") == {
        "swap": "role x does not own database td; database td has a connection limit"}
    # other lines, unknown tags and later repeats are left out
    assert parse_tagged_lines("other:1\nswap:first\nswap:second\n") == {"swap": "first"}
    assert parse_tagged_lines("") == {}


@given(st.text())
def test_parse_tagged_lines_never_raises(text):
    tags = parse_tagged_lines(text)
    assert set(tags) <= {"swap", "taken", "kept", "previous"}


def test_count_differences():
    tables = [{"name": "public.users", "rows": 3}, {"name": "audit.log", "rows": 2}]
    assert count_differences({"users": 3, "audit.log": 2}, tables) == []
    assert count_differences({"users": 4, "public.projects": 1}, tables) == [
        "audit.log has 2 rows but is not in the verified backup",
        "public.projects is missing (the verified backup has 1 rows)",
        "public.users has 3 rows, the verified backup 4"]


@given(st.lists(st.text(min_size=1, max_size=5), unique=True), st.integers(0, 10))
def test_prune_plan_keeps_the_newest(names, keep):
    kept, dropped = prune_plan(names, keep)
    assert sorted(kept + dropped) == sorted(names)
    assert len(kept) == min(keep, len(names))
    assert all(k > d for k in kept for d in dropped)


def test_previous_databases_only_stamped_names():
    sql = previous_databases_sql("td'x")
    assert "'td''x_before_'" in sql and "left(datname, 12)" in sql and "substr(datname, 13)" in sql
    assert "'^[0-9]{8}_[0-9]{6}$'" in sql and sql.endswith("ORDER BY datname DESC")
    # tagged, to share the swap's check call
    tagged = previous_databases_sql("td", tag="older")
    assert tagged.startswith("SELECT 'older:' || datname FROM") and tagged.replace("'older:' || ", "") == previous_databases_sql("td")


def test_tagged_values():
    out = "swap:\nolder:td_before_20260102_000000\nkept:yes\nolder:td_before_20260101_000000\nolder:\n"
    assert tagged_values(out, "older") == ["td_before_20260102_000000", "td_before_20260101_000000"]
    assert tagged_values(out.encode(), "older") == tagged_values(out, "older")
    assert tagged_values("", "older") == [] and tagged_values("older_x:1\n", "older") == []


@given(st.text())
def test_tagged_values_never_raises(text):
    assert all(isinstance(value, str) and value for value in tagged_values(text, "older"))


def test_database_name_problems():
    assert database_name_problems("keep_as", None) == []
    assert database_name_problems("keep_as", "td_rollback_20260101_000000") == []
    assert database_name_problems("keep_as", " ") == ["keep_as must name a database, got an empty name"]
    assert "NUL" in database_name_problems("keep_as", "a\x00b")[0]
    assert "63 bytes" in database_name_problems("keep_as", "x" * 64)[0]


def verify_params(**extra):
    params = dict(jobs=2, max_age=None, connect_timeout=10, min_rows={}, keep_as=None, keep_for=None,
                  login_db="postgres")
    params.update(extra)
    return params


def test_backup_verify_keep_options():
    assert backup_verify.validate_params(verify_params(keep_as="td_rollback_1", keep_for="td")) == []
    assert backup_verify.validate_params(verify_params(keep_as="td", keep_for="td")) == [
        "keep_as must name a new database, not keep_for or login_db (td)"]
    assert backup_verify.validate_params(verify_params(keep_as="postgres")) == [
        "keep_as must name a new database, not keep_for or login_db (postgres)"]


def restore_params(**extra):
    params = dict(state="swapped", lock_timeout=30, connect_timeout=10, keep_previous=1, sha256=None,
                  clean_schemas=["public"], expect_rows=None, db="td", swap_from="td_rollback_1",
                  previous_as="td_before_1", login_db="postgres", dump_format="plain", verify_rows=False)
    params.update(extra)
    return params


def test_backup_restore_swap_options():
    assert backup_restore.validate_params(restore_params()) == []
    assert backup_restore.validate_params(restore_params(previous_as="td")) == [
        "db, swap_from, previous_as and login_db must name four different databases"]
    assert backup_restore.validate_params(restore_params(state="pruned", keep_previous=-1)) == [
        "keep_previous must be 0 or more, got -1"]
    assert "keep_previous must be at most 1000" in backup_restore.validate_params(restore_params(keep_previous=1001))[0]
    # unset: state=pruned keeps 1, state=swapped drops nothing
    assert backup_restore.validate_params(restore_params(keep_previous=None)) == []
    assert backup_restore.validate_params(restore_params(state="pruned", keep_previous=None)) == []
    assert backup_restore.validate_params(restore_params(state="pruned", keep_previous=0)) == []
    # a swap never drops its own previous database: that waits for a verified dump (state=pruned)
    assert backup_restore.validate_params(restore_params(keep_previous=0)) == [
        "keep_previous=0 with state=swapped would drop the database the swap keeps (previous_as); "
        "keep 1 or more here, and drop it with state=pruned once its dump is verified"]
