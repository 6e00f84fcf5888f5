"""Fault matrix, data restoration path (playbooks/rollback_database.yml, database_action=restore)
on the shared reference stack. The faults that must fail before anything changes run side by
side (one ansible-playbook run each, own lock file and report directory); the restore that fails
only in the real database runs on its own. Each test's docstring is its row of the matrix."""
from __future__ import annotations

import concurrent.futures
import os
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from .conftest import PLAYBOOKS, assert_lock_free, assert_report_names_first_cause, run_playbook

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PLAYBOOK = "rollback_database.yml"
QUICK_VALIDATE = {"validate_script_enabled": False, "validate_perf_enabled": False}
STATE_SQL = (
    "SELECT (SELECT count(*) FROM users) || ' ' || (SELECT count(*) FROM projects) || ' ' || "
    "(SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM projects t)")
NOTHING_CHANGED = "Nothing was changed"


def psql(fs, sql: str) -> str:
    return fs.stack.compose("exec", "-T", "postgres", "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1",
                            "-d", "taylordash", "-c", sql).stdout.strip()


def backend_started(fs) -> str:
    cid = fs.stack.compose("ps", "-a", "-q", "backend").stdout.strip()
    return subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}} {{.State.Running}}", cid],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def backup(fault_stack):
    """The stack at v1 with a plain pg_dump backup of its data, then data changed after it."""
    fs = fault_stack
    fs.reset(running="v1", previous="v1")
    path = Path(fs.stack.ctl("backup", "--dir", str(fs.dir)).stdout.strip())
    psql(fs, "INSERT INTO projects (name) SELECT 'after backup ' || g FROM generate_series(1, 40) g")
    return path


@pytest.fixture(scope="module")
def before_change_runs(fault_stack, backup, tmp_path_factory):
    """Every fault that must fail before anything changes, side by side."""
    fs = fault_stack
    bad = tmp_path_factory.mktemp("bad-backups")
    (bad / "empty_dir").mkdir()
    plain = backup.read_bytes()

    def write(name, content, age=None):
        path = bad / name
        path.write_bytes(content)
        if age:
            os.utime(path, (time.time() - age, time.time() - age))
        return str(path)

    trailer = plain.index(b"--\n-- PostgreSQL database dump complete")
    copy_at = plain.index(b"COPY public.projects")
    env = fs.stack.env
    cases = {
        "missing": {"database_backup_path": "", "stack_backup_dir": str(bad / "empty_dir")},
        "old": {"database_backup_path": write("old.sql", plain, age=7200), "database_backup_max_age": 3600},
        "empty": {"database_backup_path": write("empty.sql", b"")},
        "truncated": {"database_backup_path": write("cut.sql", plain[:copy_at + 200])},
        "sql_error": {"database_backup_path": write("sqlerr.sql", plain[:trailer] + b"SELECT no_such_function();\n"
                                                    + plain[trailer:])},
        "wrong_password": {"database_backup_path": str(backup), "database_login_host": "127.0.0.1",
                           "database_login_port": int(env["TD_DB_PORT"]),
                           "database_login_password": "not-the-password"},
    }
    state, writer, files = psql(fs, STATE_SQL), backend_started(fs), fs.files()

    def one(name):
        report_dir = fs.case_dir("db-" + name)
        lock = fs.dir / f".rollback-{name}.lock"
        # Side by side under their own locks: with the swap method two runs started in the
        # same second would both verify into <db>_rollback_<second>. One case keeps the swap.
        method = {} if name == "sql_error" else {"database_restore_method": "in_place"}
        proc = fs.run(PLAYBOOK, report_dir, database_action="restore", stack_lock_path=str(lock),
                      **QUICK_VALIDATE, **method, **cases[name])
        return name, SimpleNamespace(proc=proc, report_dir=report_dir, lock=lock)

    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        runs = dict(pool.map(one, cases))
    return SimpleNamespace(runs=runs, state=state, writer=writer, files=files,
                           after=(psql(fs, STATE_SQL), backend_started(fs), fs.files()))


def _fails_before_any_change(fs, runs, name, first_cause):
    run = runs.runs[name]
    assert run.proc.returncode != 0, run.proc.stdout[-3000:]
    state, writer, files = runs.after
    assert state == runs.state, "the data changed"
    assert writer == runs.writer, "the writers were stopped or restarted"
    assert files == runs.files, "files of the project directory changed (a safety dump?)"
    assert_lock_free(fs, run.lock)
    data = assert_report_names_first_cause(run.report_dir, first_cause)
    assert NOTHING_CHANGED in data["failure"], data["failure"]
    return data, run


def test_backup_missing(fault_stack, before_change_runs):
    """Fault: backup missing (no backup_*.sql in stack_backup_dir) -> Outcome: fails verifying the
    backup before any change (data, writers, files as before); lock free; report FAILED naming the
    missing backup."""
    _fails_before_any_change(fault_stack, before_change_runs, "missing", r"No backup found")


def test_backup_old(fault_stack, before_change_runs):
    """Fault: backup old (2 h, database_backup_max_age 1 h) -> Outcome: fails verifying the backup
    before any change; lock free; report FAILED naming its age."""
    _fails_before_any_change(fault_stack, before_change_runs, "old", r"is too old")


def test_backup_empty(fault_stack, before_change_runs):
    """Fault: backup empty (0 bytes) -> Outcome: fails verifying the backup before any change;
    lock free; report FAILED naming the empty file."""
    _fails_before_any_change(fault_stack, before_change_runs, "empty", r"is empty \(0 bytes\)")


def test_backup_truncated(fault_stack, before_change_runs):
    """Fault: backup truncated (cut inside a COPY) -> Outcome: fails verifying the backup before
    any change; lock free; report FAILED naming the truncation."""
    _fails_before_any_change(fault_stack, before_change_runs, "truncated", r"truncated")


def test_backup_sql_error(fault_stack, before_change_runs):
    """Fault: backup with an SQL error (a call of a function that does not exist) -> Outcome:
    fails restoring it in the scratch database, before any change; lock free; report FAILED naming
    the SQL error."""
    _fails_before_any_change(fault_stack, before_change_runs, "sql_error", r"no_such_function")


def test_wrong_db_password(fault_stack, before_change_runs):
    """Fault: wrong DB password (direct TCP connection) -> Outcome: fails connecting, before any
    change; the password appears nowhere; lock free; report FAILED naming the authentication
    failure."""
    data, run = _fails_before_any_change(fault_stack, before_change_runs, "wrong_password",
                                         r"authentication failed")
    report_text = "".join(p.read_text() for p in run.report_dir.rglob("rollback_report_*"))
    assert "not-the-password" not in run.proc.stdout + run.proc.stderr + report_text


def test_backup_error_only_in_the_real_database(fault_stack, backup, before_change_runs):
    """Fault: backup whose restore fails only in the real database (division by zero after the
    users COPY; the scratch restore passes) -> Outcome: the restore transaction rolls back, data as
    before; a verified safety dump is taken; the writers are started again and answer healthy; lock
    free; report FAILED naming the division by zero first (not a later health or cleanup failure)."""
    fs = fault_stack
    plain = backup.read_bytes()
    users = plain.index(b"COPY public.users")
    end_of_copy = plain.index(b"\n\\.\n", users) + len(b"\n\\.\n")
    bomb = b"SELECT 1 / (current_database() LIKE 'rollback_verify_%')::int;\n"
    dump = fs.work / "real-db-only.sql"
    dump.write_bytes(plain[:end_of_copy] + bomb + plain[end_of_copy:])
    state = psql(fs, STATE_SQL)
    dumps = set(fs.dir.glob("safety_*"))
    report_dir = fs.case_dir("db-real-only")
    # issue 17: in place - a swap would have run the bomb in its kept copy, which is not named rollback_verify_*
    proc = fs.run(PLAYBOOK, report_dir, database_action="restore", database_backup_path=str(dump),
                  database_health_timeout=30, database_restore_method="in_place", **QUICK_VALIDATE)
    assert proc.returncode != 0
    assert psql(fs, STATE_SQL) == state, "the data changed"
    new = set(fs.dir.glob("safety_*")) - dumps
    assert len(new) == 1 and next(iter(new)).stat().st_mode & 0o777 == 0o600
    assert backend_started(fs).endswith("true")
    fs.wait_version("v1", timeout=30)
    assert_lock_free(fs)
    data = assert_report_names_first_cause(report_dir, r"division by zero",
                                           later=("did not answer healthy", "Start the writers"))
    assert "The database is as it was" in data["failure"], data["failure"]


def test_swap_refused_when_the_database_has_settings_of_its_own(fault_stack, backup, before_change_runs):
    """Fault: database_restore_method=swap on a database with settings of its own (ALTER DATABASE ... SET),
    which a copy would not carry -> Outcome: fails after the verification, before any change, naming the
    reason and database_restore_method; the verified copy is not kept; lock free. With auto (check mode)
    the role falls back to an in-place restore and says why in one line."""
    fs = fault_stack
    psql(fs, "ALTER DATABASE taylordash SET work_mem = '8MB'")
    try:
        state, writer, files = psql(fs, STATE_SQL), backend_started(fs), fs.files()
        report_dir = fs.case_dir("db-swap-refused")
        proc = fs.run(PLAYBOOK, report_dir, database_action="restore", database_backup_path=str(backup),
                      database_restore_method="swap", **QUICK_VALIDATE)
        assert proc.returncode != 0, proc.stdout[-3000:]
        assert (psql(fs, STATE_SQL), backend_started(fs), fs.files()) == (state, writer, files)
        assert_lock_free(fs)
        data = assert_report_names_first_cause(
            report_dir, r"database_restore_method=swap, but the swap cannot work: database taylordash has settings of its own")
        assert NOTHING_CHANGED in data["failure"], data["failure"]
        dbs = fs.stack.compose("exec", "-T", "postgres", "psql", "-X", "-At", "-d", "postgres", "-c",
                               "SELECT datname FROM pg_database WHERE datname LIKE 'taylordash_%'").stdout.split()
        assert dbs == [], "a verified copy was kept: %s" % dbs
        proc = run_playbook(PLAYBOOKS / PLAYBOOK, check=True, inventory=fs.inventory, vars_files=[fs.secrets],
                            extra_vars=fs.extra_vars(fs.case_dir("db-swap-auto"), database_action="restore",
                                                     database_backup_path=str(backup), **QUICK_VALIDATE))
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert "method: in place - database taylordash has settings of its own (ALTER DATABASE ... SET)" in proc.stdout
    finally:
        psql(fs, "ALTER DATABASE taylordash RESET work_mem")
