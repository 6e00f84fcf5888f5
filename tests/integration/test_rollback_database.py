"""playbooks/rollback_database.yml and plugins/modules/backup_restore.py against real reference
stacks (their PostgreSQL 15, their backend and its alembic migrations).

Data restoration: from plain, gzip and custom dumps; check mode changes nothing; every bad input
of backup_verify fails before anything changes; a restore that fails after the writers were
stopped leaves the data as it was and starts them again; a dump that fails near its end, and a
module stopped by SIGTERM in the middle of a restore, leave the data as it was (backup_restore
directly). Schema migration: the --sql preview in check mode (alembic through `docker compose
run` when the backend does not run), the downgrade followed by an image rollback, and a second
run that changes nothing. Every run must release the lock.

Cases that do not disturb each other run side by side, one ansible-playbook run per case, each
with its own inventory host, lock file and report directory: that keeps this file near three
minutes."""
from __future__ import annotations

import concurrent.futures
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from conftest import COLLECTIONS_ROOT, REPO, run_module, run_playbook
from ansible_collections.taylordash.rollback.plugins.modules import backup_restore as module_source

pytestmark = pytest.mark.integration

PLAYBOOK = REPO / "playbooks" / "rollback_database.yml"
DOCUMENTED = set(yaml.safe_load(module_source.RETURN)) | {"failed", "changed", "invocation", "diff"}
SEED_ROWS = 2000
STATE_SQL = (
    "SELECT (SELECT count(*) FROM users) || ' ' || (SELECT count(*) FROM projects) || ' ' || "
    "(SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM projects t) || ' ' || "
    "(SELECT coalesce(max(version_num), 'none') FROM alembic_version)")
# Faster runs: the P1 script and the response-time measurement are exercised once (migration).
QUICK_VALIDATE = {"validate_script_enabled": False, "validate_perf_enabled": False}


# --------------------------------------------------------------------------- helpers

def psql(stack, sql: str, db: str = "taylordash") -> str:
    return stack.compose("exec", "-T", "postgres", "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", db,
                         "-c", sql).stdout.strip()


def db_state(stack) -> str:
    """Row counts, an md5 of every row of projects, and the schema revision."""
    return psql(stack, STATE_SQL)


def backend(stack) -> tuple:
    """(container ID, start time, running) of the backend: a stop/start changes the start time."""
    cid = stack.compose("ps", "-a", "-q", "backend").stdout.strip()
    out = subprocess.run(["docker", "inspect", "-f", "{{.Id}} {{.State.StartedAt}} {{.State.Running}}", cid],
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0], out[1], out[2] == "true"


def health(stack):
    try:
        with urllib.request.urlopen(stack.url("backend", "/health/ready"), timeout=3) as resp:
            return resp.status, json.load(resp)
    except Exception as exc:  # noqa: BLE001 - any failure means not healthy
        return None, str(exc)


def listing(directory: Path) -> dict:
    """Every file under directory with its size and mtime (what check mode must leave alone)."""
    out = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(directory))] = (st.st_size, st.st_mtime_ns)
    return out


def databases(stack) -> list:
    """The databases of the stack's server, but the templates."""
    return sorted(psql(stack, "SELECT datname FROM pg_database WHERE NOT datistemplate", db="postgres").split())


def safety_dumps(stack) -> list:
    return sorted(stack.dir.glob("safety_*"))


def locks(stack) -> list:
    return sorted(stack.dir.glob(".rollback*.lock"))


def host_vars(stack, **extra) -> dict:
    env = stack.env
    values = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
              "stack_api_key": env["TD_API_KEY"], "stack_admin_password": env["TD_ADMIN_PASSWORD"]}
    values.update(stack.stack_vars())
    values.update(extra)
    return values


CHECKS_SKIPPED = "database checks through community.postgresql: skipped, set database_check_login_host to run them"


def check_login(stack, password=None) -> dict:
    """The settings of the read-only checks through community.postgresql (issue 9): the
    reference stack's PostgreSQL listens on 127.0.0.1 (host network). They go into the 0600
    inventory, never on the command line."""
    env = stack.env
    return {"database_check_login_host": "127.0.0.1", "database_check_login_port": int(env["TD_DB_PORT"]),
            "database_check_login_password": env["TD_DB_PASSWORD"] if password is None else password}


def inventory(directory: Path, name: str, values: dict) -> Path:
    """An inventory with one host in group taylordash (0600: it holds the stack's secrets)."""
    path = directory / ("inventory-%s.json" % name)
    path.write_text(json.dumps({"taylordash": {"hosts": {name: values}}}))
    path.chmod(0o600)
    return path


def rollback(tmp_path, hosts: dict, check=False, workers=4, **extra_vars):
    """One ansible-playbook run per case (host), side by side; returns the one process when a
    single case is given, else {case: process}. Separate runs rather than one run with several
    hosts: each case is a rollback of its own, as an operator would start it."""
    def one(name):
        return run_playbook(PLAYBOOK, extra_vars=extra_vars, check=check, diff=check,
                            inventory=inventory(tmp_path, name, hosts[name]))
    if len(hosts) == 1:
        return one(next(iter(hosts)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(hosts, pool.map(one, hosts)))


RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
FATAL = re.compile(r'^fatal: \[(\S+)\]: FAILED! => (\{.*\})$', re.M)


def recap(proc) -> dict:
    out = {m.group(1): dict(zip(("ok", "changed", "unreachable", "failed"), map(int, m.groups()[1:])))
           for m in RECAP.finditer(proc.stdout)}
    assert out, proc.stdout[-3000:]
    return out


def final_failures(proc) -> dict:
    """host -> msg of the play's final 'Rollback failed: ...'."""
    out = {}
    for match in FATAL.finditer(proc.stdout):
        msg = json.loads(match.group(2)).get("msg", "")
        if msg.startswith("Rollback failed: "):
            out[match.group(1)] = msg
    return out


def summaries(proc) -> dict:
    """host -> the lines of 'Summarise the database rollback'."""
    out = {}
    block = proc.stdout.split("TASK [taylordash.rollback.database : Summarise the database rollback]", 1)[1]
    block = block.split("\nTASK [", 1)[0]
    for match in re.finditer(r'^ok: \[(\S+)\] => \{\n\s+"msg": \[\n(.*?)\n\s+\]\n\}', block, re.M | re.S):
        out[match.group(1)] = [json.loads(line.strip().rstrip(",")) for line in match.group(2).splitlines()]
    return out


def wait_healthy(stack, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if health(stack)[0] == 200:
            return
        time.sleep(0.2)
    raise AssertionError("backend of %s not healthy: %s" % (stack.name, health(stack)))


# --------------------------------------------------------------------------- stacks

@pytest.fixture(scope="module")
def restore_stacks(module_stack_factory):
    """Three stacks at v1 with SEED_ROWS extra projects and one backup each: plain, gzip, custom."""
    stacks = {}
    for fmt in ("plain", "gzip", "custom"):
        stack = module_stack_factory("db" + fmt[0])
        stack.ctl("seed-rows", "--dir", str(stack.dir), "--rows", str(SEED_ROWS))
        stack.backup = Path(stack.ctl("backup", "--dir", str(stack.dir), "--format", fmt).stdout.strip())
        stack.at_backup = db_state(stack)
        stacks[fmt] = stack
    return stacks


def change_data(stack):
    """What happened after the backup: rows added, a project deleted."""
    psql(stack, "INSERT INTO projects (name) SELECT 'after backup ' || g FROM generate_series(1, 150) g; "
                "DELETE FROM projects WHERE name = 'Borealis'")
    state = db_state(stack)
    assert state != stack.at_backup
    return state


# --------------------------------------------------------------------------- data restoration

def test_check_mode_changes_nothing(restore_stacks, tmp_path):
    stack = restore_stacks["plain"]
    changed = change_data(stack)
    files, writer = listing(stack.dir), backend(stack)
    # issue 9: the read-only checks through community.postgresql run in check mode too
    proc = rollback(tmp_path, {"plain": host_vars(stack, **check_login(stack))}, check=True, database_action="restore",
                    **QUICK_VALIDATE)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "database checks through community.postgresql: PostgreSQL 15" in proc.stdout
    # nothing was restored: the counts compared are those of the database now
    assert "row counts after the restore match backup_restore's (" in proc.stdout, proc.stdout[-4000:]
    assert "public.projects: %s" % changed.split()[1] in proc.stdout
    assert stack.env["TD_DB_PASSWORD"] not in proc.stdout + proc.stderr
    assert db_state(stack) == changed
    assert listing(stack.dir) == files  # no safety dump, no report, no lock left
    assert backend(stack) == writer  # not stopped, not restarted
    lines = summaries(proc)["plain"]
    assert lines[0] == "Database rollback (restore): check mode, nothing changed"
    # issue 17: the default (auto) swaps on the reference stack; in check mode nothing is kept or renamed
    assert "method: swap - the verified copy of the backup renamed in place of the database" in lines, lines
    assert any(re.fullmatch(r"data before the rollback: would be database taylordash_before_\d{8}_\d{6}", line)
               for line in lines), lines
    assert databases(stack) == ["postgres", "taylordash"]
    # the diff: row counts now, and those of the verified backup the restore would bring back
    assert "\n-public.projects: %s\n+public.projects: %s\n" % (changed.split()[1], stack.at_backup.split()[1]) in proc.stdout


def test_restore_plain_gzip_custom(restore_stacks, tmp_path):
    hosts, before = {}, {}
    for fmt, stack in restore_stacks.items():
        state = db_state(stack)
        before[fmt] = (change_data(stack) if state == stack.at_backup else state, backend(stack), safety_dumps(stack))
        # issue 9: the plain case runs the checks through community.postgresql, the others skip them
        # issue 17: plain takes the default (auto: a swap here), gzip asks for the swap and keeps no previous
        # database (dumped, verified, then dropped), custom restores in place.
        method = {"plain": {}, "gzip": {"database_restore_method": "swap", "database_keep_previous": 0},
                  "custom": {"database_restore_method": "in_place"}}[fmt]
        hosts[fmt] = host_vars(stack, database_backup_path=str(stack.backup), **method,
                               **(check_login(stack) if fmt == "plain" else {}))
    # An older previous database (a rollback before): the plain swap drops it itself, in its module run,
    # after its rows matched (database_keep_previous=1 keeps only this rollback's).
    psql(restore_stacks["plain"], "CREATE DATABASE taylordash_before_20200101_000000", db="postgres")
    started = time.monotonic()
    procs = rollback(tmp_path, hosts, database_action="restore", **QUICK_VALIDATE)
    elapsed = time.monotonic() - started
    lines = {}
    for fmt, proc in procs.items():
        assert proc.returncode == 0, proc.stdout[-6000:]
        lines.update(summaries(proc))
    for fmt, stack in restore_stacks.items():
        assert db_state(stack) == stack.at_backup, fmt
        assert backend(stack)[1] != before[fmt][1][1] and backend(stack)[2]  # stopped, started again
        assert health(stack)[0] == 200
        assert not locks(stack)
        assert lines[fmt][0] == "Database rollback (restore): succeeded", lines[fmt]
        assert lines[fmt][1].startswith("backup: %s (%s, sha256 " % (stack.backup, fmt))
        # the downtime: from the stop of the writers to their start (issue 17)
        assert re.fullmatch(r"writers stopped and started again: backend \(stopped for [\d.]+ s\)", lines[fmt][-2]), lines[fmt]
        if fmt == "custom":
            dumps = [d for d in safety_dumps(stack) if d not in before[fmt][2]]
            assert len(dumps) == 1 and dumps[0].stat().st_mode & 0o777 == 0o600
            assert re.fullmatch(r"safety_\d{8}_\d{6}\.sql", dumps[0].name)
            assert lines[fmt][2] == "method: in place - database_restore_method=in_place", lines[fmt]
            assert lines[fmt][3] == "safety dump: %s (verified)" % dumps[0]
            assert re.match(r"Steps: verify backup [\d.]+ s, stop writers [\d.]+ s, safety dump and its verification "
                            r"[\d.]+ s, restore [\d.]+ s, start writers [\d.]+ s$", lines[fmt][-1]), lines[fmt]
            # the safety dump holds the data from before the restore
            check = run_module("backup_verify", {"path": str(dumps[0]), "project_dir": str(stack.dir)})
        else:
            # issue 17: swapped in; the data from before is in <db>_before_<stamp> (plain) or, when no previous
            # database is kept (gzip), in its verified dump
            assert safety_dumps(stack) == before[fmt][2], "a swap takes no safety dump"
            assert lines[fmt][2] == "method: swap - the verified copy of the backup renamed in place of the database"
            assert re.match(r"Steps: verify backup [\d.]+ s, stop writers [\d.]+ s, swap [\d.]+ s, start writers [\d.]+ s$",
                            lines[fmt][-1]), lines[fmt]
            previous = [d for d in databases(stack) if d.startswith("taylordash_before_")]
            if fmt == "plain":
                assert len(previous) == 1 and databases(stack) == sorted(["postgres", "taylordash"] + previous)
                assert lines[fmt][3] == "data before the rollback: database %s (kept)" % previous[0], lines[fmt]
                assert lines[fmt][4].startswith('to go back: Stop the writers, then in the maintenance database: ALTER DATABASE')
                assert psql(stack, "SELECT count(*) FROM projects", db=previous[0]) == before[fmt][0].split()[1]
                assert "previous databases dropped (database_keep_previous=1): taylordash_before_20200101_000000" in lines[fmt]
                check = None
            else:
                assert previous == [] and databases(stack) == ["postgres", "taylordash"]
                dump = sorted(stack.dir.glob("previous_*.sql"))
                assert len(dump) == 1 and dump[0].stat().st_mode & 0o777 == 0o600
                assert re.fullmatch(r"data before the rollback: not moved, dump %s \(verified\)" % re.escape(str(dump[0])),
                                    lines[fmt][3]) or "dump %s (verified)" % dump[0] in lines[fmt][3], lines[fmt]
                assert any(line.startswith("previous databases dropped (database_keep_previous=0): taylordash_before_")
                           for line in lines[fmt]), lines[fmt]
                check = run_module("backup_verify", {"path": str(dump[0]), "project_dir": str(stack.dir)})
        if check is not None:
            counts = {t["name"]: t["rows"] for t in check["tables"]}
            assert counts["public.projects"] == int(before[fmt][0].split()[1])
        report = sorted(stack.dir.glob("rollbacks/*/rollback_report_*.json"))
        assert report, "no incident report"
        output = procs[fmt].stdout + procs[fmt].stderr
        assert stack.env["TD_DB_PASSWORD"] not in output, fmt
        if fmt == "plain":
            assert CHECKS_SKIPPED not in output
            assert re.search(r"database checks through community\.postgresql: PostgreSQL 15[\d.]* answers at "
                             r"127\.0\.0\.1:%s as taylordash" % stack.env["TD_DB_PORT"], output), output[-6000:]
            counted = re.search(r"database checks through community\.postgresql: row counts after the restore match "
                                r"backup_restore's \(([^)]*)\)", output)
            assert counted, output[-6000:]
            assert "public.projects: %s" % stack.at_backup.split()[1] in counted.group(1), counted.group(1)
            assert "public.users: %s" % stack.at_backup.split()[0] in counted.group(1), counted.group(1)
            # the ping ran before the restore changed anything
            assert output.index("Ask PostgreSQL whether it answers") < output.index("Take a safety dump")
        else:
            assert CHECKS_SKIPPED in output, fmt
            assert "row counts after the restore match" not in output
    print("three restores side by side: %.1fs" % elapsed)


def bad_inputs(stack, tmp_path) -> tuple:
    """One case per bad input of backup_verify, each with its own lock file and report dir."""
    plain = stack.backup.read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty_dir").mkdir()

    def write(name, content, age=None):
        path = bad / name
        path.write_bytes(content)
        if age:
            os.utime(path, (time.time() - age, time.time() - age))
        return str(path)

    copy_at = plain.index(b"COPY public.projects")
    zipped = bytearray(gzip.compress(plain))
    zipped[len(zipped) // 2:len(zipped) // 2 + 32] = b"\x00" * 32
    trailer = plain.index(b"--\n-- PostgreSQL database dump complete")
    env = stack.env
    cases = {
        "no_backup": ({"database_backup_path": "", "stack_backup_dir": str(bad / "empty_dir")}, "No backup found"),
        "too_old": ({"database_backup_path": write("old.sql", plain, age=7200), "database_backup_max_age": 3600},
                    "is too old"),
        "empty": ({"database_backup_path": write("empty.sql", b"")}, "is empty (0 bytes)"),
        "truncated": ({"database_backup_path": write("cut.sql", plain[:copy_at + 3000])}, "truncated"),
        "corrupt": ({"database_backup_path": write("corrupt.sql.gz", bytes(zipped))}, "gzip stream is corrupt"),
        "sql_error": ({"database_backup_path": write("sqlerr.sql", b"".join(
            (plain[:trailer], b"SELECT no_such_function();\n", plain[trailer:])))}, "no_such_function"),
        "wrong_credentials": ({"database_backup_path": str(stack.backup), "database_login_host": "127.0.0.1",
                               "database_login_port": int(env["TD_DB_PORT"]),
                               "database_login_password": "not-the-password"}, "authentication failed"),
    }
    hosts = {}
    for name, (extra, _fragment) in cases.items():
        report_dir = tmp_path / ("report_" + name)
        report_dir.mkdir()
        # The cases run side by side on one database, each under its own lock (the shared lock
        # would run them one by one). With the swap method every run verifies into
        # <db>_rollback_<second>: two runs started in the same second would find that name
        # taken by the other. One case keeps the default method (its verification creates and
        # drops the kept name); the others verify into random scratch names (in place).
        if name != "sql_error":
            extra = dict(extra, database_restore_method="in_place")
        hosts[name] = host_vars(stack, stack_lock_path=str(stack.dir / (".rollback-%s.lock" % name)),
                                report_dir=str(report_dir), **extra)
    return hosts, {name: fragment for name, (_extra, fragment) in cases.items()}


def start_lock_holder(stack):
    """A session that was not stopped, holding a lock on projects (ACCESS SHARE: pg_dump can
    still read, DROP SCHEMA must wait)."""
    holder = subprocess.Popen(["docker", "compose", "--project-directory", str(stack.dir), "exec", "-T", "postgres",
                               "psql", "-X", "-c", "BEGIN; LOCK TABLE projects IN ACCESS SHARE MODE; SELECT pg_sleep(300);"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while "pg_sleep(300)" not in psql(stack, "SELECT coalesce(string_agg(query, ';'), '') FROM pg_stat_activity "
                                             "WHERE state = 'active' AND pid <> pg_backend_pid()"):
        assert time.monotonic() < deadline, "the lock holder did not start"
        time.sleep(0.1)
    return holder


def stop_lock_holder(stack, holder):
    psql(stack, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(300)%' "
                "AND pid <> pg_backend_pid()")
    holder.wait(timeout=30)


@pytest.fixture(scope="module")
def failure_runs(restore_stacks, tmp_path_factory):
    """Every failing data restoration, side by side: the bad backups on the plain stack, the
    database not running on the custom stack, a lock held by a session that was not stopped on
    the gzip stack (the restore fails after the writers were stopped and the safety dump taken)."""
    tmp = tmp_path_factory.mktemp("failures")
    plain, zipped, custom = restore_stacks["plain"], restore_stacks["gzip"], restore_stacks["custom"]
    hosts, expected = bad_inputs(plain, tmp)
    hosts["not_running"] = host_vars(custom, database_backup_path=str(custom.backup))
    # in place: a swap ends the sessions left on the database (that is its documented way), and would succeed
    hosts["lock_held"] = host_vars(zipped, database_backup_path=str(zipped.backup), database_lock_timeout=2,
                                   database_restore_method="in_place")
    # issue 9: postgresql_ping with a wrong password fails the role before anything changes
    (tmp / "report_check_password").mkdir()
    hosts["check_password"] = host_vars(plain, database_backup_path=str(plain.backup),
                                        stack_lock_path=str(plain.dir / ".rollback-check_password.lock"),
                                        report_dir=str(tmp / "report_check_password"),
                                        **check_login(plain, password="not-the-check-password"))
    before = {
        "plain": (db_state(plain), backend(plain), listing(plain.dir)),
        "custom": (db_state(custom), backend(custom), safety_dumps(custom)),
        "gzip": (change_data(zipped), backend(zipped), safety_dumps(zipped)),
    }
    holder = start_lock_holder(zipped)
    custom.compose("stop", "postgres")
    try:
        procs = rollback(tmp, hosts, workers=len(hosts), database_action="restore", **QUICK_VALIDATE)
    finally:
        stop_lock_holder(zipped, holder)
        custom.compose("start", "postgres")
        custom.compose("exec", "-T", "postgres", "sh", "-c",
                       "for i in $(seq 100); do pg_isready -q -h 127.0.0.1 -p $PGPORT && exit 0; sleep 0.2; done; exit 1")
    return SimpleNamespace(procs=procs, expected=expected, before=before)


def test_bad_backups_fail_before_anything_changes(restore_stacks, failure_runs):
    stack = restore_stacks["plain"]
    state, writer, files = failure_runs.before["plain"]
    for name, fragment in failure_runs.expected.items():
        proc = failure_runs.procs[name]
        assert proc.returncode != 0 and recap(proc)[name]["failed"] == 1, (name, proc.stdout[-3000:])
        msg = final_failures(proc)[name]
        assert "Verify the backup in a scratch database before anything changes" in msg, (name, msg)
        assert fragment in msg, (name, msg)
        assert msg.endswith("Nothing was changed. No safety dump was taken."), (name, msg)
        assert "not-the-password" not in proc.stdout
    assert db_state(stack) == state
    assert backend(stack) == writer  # the writers were never stopped
    assert listing(stack.dir) == files  # no safety dump, every lock released


def test_wrong_check_password_fails_before_anything_changes(restore_stacks, failure_runs):
    """postgresql_ping (issue 9) refuses the password: the role fails before the backup is even
    verified, names host, port and user, and shows no password."""
    stack = restore_stacks["plain"]
    state, writer, files = failure_runs.before["plain"]
    proc = failure_runs.procs["check_password"]
    assert proc.returncode != 0 and recap(proc)["check_password"]["failed"] == 1, proc.stdout[-3000:]
    msg = final_failures(proc)["check_password"]
    assert "Fail before anything changes when PostgreSQL does not answer" in msg, msg
    assert "PostgreSQL at 127.0.0.1:%s (user taylordash, database taylordash) does not answer" % stack.env["TD_DB_PORT"] in msg, msg
    assert "password authentication failed" in msg, msg
    assert msg.endswith("Nothing was changed. No safety dump was taken."), msg
    assert "Verify the backup in a scratch database" not in proc.stdout
    output = proc.stdout + proc.stderr
    assert "not-the-check-password" not in output and stack.env["TD_DB_PASSWORD"] not in output
    assert db_state(stack) == state
    assert backend(stack) == writer  # the writers were never stopped
    assert listing(stack.dir) == files  # no safety dump, the lock released


def test_database_not_running(restore_stacks, failure_runs):
    stack = restore_stacks["custom"]
    state, writer, dumps = failure_runs.before["custom"]
    proc = failure_runs.procs["not_running"]
    assert proc.returncode != 0
    msg = final_failures(proc)["not_running"]
    assert "postgres is not running" in msg and "Nothing was changed" in msg, msg
    assert db_state(stack) == state and backend(stack) == writer
    assert not locks(stack) and safety_dumps(stack) == dumps


def test_failed_restore_leaves_data_and_starts_the_writers(restore_stacks, failure_runs):
    """The restore times out on the lock after the writers were stopped and the safety dump was
    taken: the data is as it was, the backend runs again, the message names the safety dump."""
    stack = restore_stacks["gzip"]
    state, writer, earlier = failure_runs.before["gzip"]
    proc = failure_runs.procs["lock_held"]
    assert proc.returncode != 0
    msg = final_failures(proc)["lock_held"]
    dumps = [d for d in safety_dumps(stack) if d not in earlier]
    assert len(dumps) == 1
    assert "Restore the verified backup in one transaction" in msg and "another session holds a lock" in msg, msg
    assert "The database is as it was" in msg
    assert "Safety dump of the database before the rollback: %s (verified)." % dumps[0] in msg
    assert "The writers (backend) are started again." in msg
    assert db_state(stack) == state
    assert backend(stack)[2] and backend(stack)[1] != writer[1]
    wait_healthy(stack)
    assert not locks(stack)
    assert "Database rollback (restore): FAILED" in proc.stdout


def test_restore_failing_near_the_end_changes_nothing(restore_stacks, tmp_path):
    """backup_restore directly (backup_verify would refuse this dump): a valid dump, then a bogus
    statement where pg_dump's closing lines were."""
    stack = restore_stacks["custom"]
    state = db_state(stack)
    plain = Path(stack.ctl("backup", "--dir", str(stack.dir), "--output", str(tmp_path / "full.sql")).stdout.strip())
    content = plain.read_bytes()
    bad = tmp_path / "bogus_end.sql"
    bad.write_bytes(content[:content.index(b"--\n-- PostgreSQL database dump complete")] + b"SELECT bogus_function();\n")
    psql(stack, "INSERT INTO projects (name) VALUES ('after the dump')")
    state = db_state(stack)
    result = run_module("backup_restore", {"path": str(bad), "db": "taylordash", "project_dir": str(stack.dir)},
                        diff=True)
    assert set(result) <= DOCUMENTED, set(result) - DOCUMENTED
    assert result["failed"] and not result["changed"] and result["committed"] is False
    assert "bogus_function() does not exist" in result["msg"]
    assert "line %d of the dump" % (bad.read_bytes().count(b"\n")) in result["msg"]
    assert "the database is as it was" in result["msg"]
    assert result["rows_after"] == result["rows_before"]
    assert db_state(stack) == state


def test_backup_restore_direct_connection(restore_stacks, tmp_path):
    """The client programs of this host over TCP (password in their environment only): a custom
    archive converted by the host's pg_restore, and a safety dump by the host's pg_dump."""
    stack = restore_stacks["custom"]
    env = stack.env
    login = {"login_host": "127.0.0.1", "login_port": int(env["TD_DB_PORT"]), "login_user": env["TD_DB_USER"],
             "login_password": env["TD_DB_PASSWORD"]}
    psql(stack, "INSERT INTO projects (name) VALUES ('direct')")
    changed = db_state(stack)
    dumped = run_module("backup_restore", dict(login, state="dumped", path=str(tmp_path / "safety.dump"),
                                               dump_format="custom", db="taylordash"))
    assert dumped["changed"] and dumped["format"] == "custom", dumped["msg"]
    result = run_module("backup_restore", dict(login, path=str(stack.backup), db="taylordash"), diff=True)
    assert result["committed"] and result["connection"] == "direct", result["msg"]
    assert env["TD_DB_PASSWORD"] not in json.dumps(result) + json.dumps(dumped)
    assert db_state(stack) == stack.at_backup
    back = run_module("backup_restore", dict(login, path=str(tmp_path / "safety.dump"), db="taylordash"))
    assert back["committed"], back["msg"]
    assert db_state(stack) == changed  # the safety dump brings the data from before back


def test_restore_stopped_by_sigterm_changes_nothing(restore_stacks, tmp_path):
    """SIGTERM while the dump streams: the stream ends without its end marker, the commit guard
    rolls back. The dump is written by backup_restore itself (state=dumped)."""
    stack = restore_stacks["custom"]
    psql(stack, "CREATE DATABASE sigterm_test")
    try:
        psql(stack, "CREATE TABLE big (id int PRIMARY KEY, v text); INSERT INTO big SELECT g, md5(g::text) "
                    "FROM generate_series(1, 600000) g", db="sigterm_test")
        dump = tmp_path / "big.sql"
        made = run_module("backup_restore", {"state": "dumped", "path": str(dump), "db": "sigterm_test",
                                             "project_dir": str(stack.dir)})
        assert made["changed"] and made["mode"] == "0600" and made["size"] == dump.stat().st_size, made
        psql(stack, "DELETE FROM big WHERE id > 1000", db="sigterm_test")
        before = psql(stack, "SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM big t",
                      db="sigterm_test")
        payload = {"ANSIBLE_MODULE_ARGS": {"path": str(dump), "db": "sigterm_test", "project_dir": str(stack.dir)}}
        env = dict(os.environ, PYTHONPATH=str(COLLECTIONS_ROOT))
        proc = subprocess.Popen([sys.executable, str(REPO / "plugins" / "modules" / "backup_restore.py")],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        proc.stdin.write(json.dumps(payload))
        proc.stdin.close()
        deadline = time.monotonic() + 30
        while "COPY public.big" not in psql(stack, "SELECT coalesce(string_agg(query, ';'), '') FROM pg_stat_activity "
                                                   "WHERE datname = 'sigterm_test' AND state = 'active'"):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the restore did not start copying"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out = proc.stdout.read()
        proc.wait(timeout=60)
        result = json.loads(out)
        assert result["failed"] and result["committed"] is False, result["msg"]
        assert "SIGTERM" in result["msg"] and "the database is as it was" in result["msg"], result["msg"]
        assert psql(stack, "SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM big t",
                    db="sigterm_test") == before
    finally:
        psql(stack, "DROP DATABASE IF EXISTS sigterm_test WITH (FORCE)", db="postgres")


# --------------------------------------------------------------------------- schema migration

@pytest.fixture(scope="module")
def migration_stack(module_stack_factory):
    """v1, then v3 deployed the way the pipeline does: schema 0004, :previous is v1."""
    stack = module_stack_factory("dbm")
    stack.ctl("deploy", "--dir", str(stack.dir), "v3", "--wait", "60")
    assert db_state(stack).endswith(" 0004")
    return stack


def columns(stack) -> list:
    return psql(stack, "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns "
                       "WHERE table_name = 'projects'").split(",")


def test_migration_preview_in_check_mode_with_the_backend_stopped(migration_stack, tmp_path):
    """No running backend container: alembic runs in `docker compose run --rm` with the image the
    service would run. Check mode shows the SQL and changes nothing."""
    stack = migration_stack
    stack.compose("stop", "backend")
    try:
        state, files = db_state(stack), listing(stack.dir)
        containers = stack.compose("ps", "-a", "-q").stdout.split()
        proc = rollback(tmp_path, {"m": host_vars(stack)}, check=True, database_action="migration", **QUICK_VALIDATE)
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert db_state(stack) == state and "description" in columns(stack)
        assert listing(stack.dir) == files
        assert stack.compose("ps", "-a", "-q").stdout.split() == containers  # the run container is gone
        assert "Schema revision 0004 -> 0003 (1 step(s), alembic run): SQL that would run (check mode, nothing runs)" in proc.stdout
        assert "ALTER TABLE projects DROP COLUMN description;" in proc.stdout
        assert summaries(proc)["m"][:2] == [
            "Database rollback (migration): check mode, nothing changed",
            "schema revision: 0004 -> 0004 (would be 0003), alembic run"]
        assert not locks(stack)
    finally:
        stack.compose("start", "backend")
        wait_healthy(stack)


def test_migration_then_image_rollback(migration_stack, tmp_path):
    """The downgrade runs in the v3 container (it carries 0004), then the images go back to v1."""
    stack = migration_stack
    names = "SELECT count(*) || ' ' || md5(string_agg(id || ':' || name, ',' ORDER BY id)) FROM projects"
    rows = psql(stack, names)
    proc = rollback(tmp_path, {"m": host_vars(stack)}, database_action="migration", database_image_rollback=True)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert psql(stack, names) == rows  # the data survived the downgrade (only a column went)
    assert db_state(stack).endswith(" 0003")
    assert "description" not in columns(stack)
    status, body = health(stack)
    assert status == 200 and body["version"] == "v1" and body["schema_revision"] == "0003"
    lines = summaries(proc)["m"]
    assert lines[:2] == ["Database rollback (migration): succeeded", "schema revision: 0004 -> 0003, alembic exec"]
    assert re.match(r"Steps: read revision [\d.]+ s, render downgrade SQL [\d.]+ s, downgrade [\d.]+ s$", lines[2])
    # the order: the downgrade task ran before the first task of the image rollback
    assert proc.stdout.index("TASK [taylordash.rollback.database : Downgrade the schema]") < \
        proc.stdout.index("TASK [taylordash.rollback.immediate : Point each service's current tag back")
    assert "Immediate rollback: succeeded" in proc.stdout
    assert "Summary: 9/9 checks passed" in proc.stdout or "9/9" in proc.stdout
    assert not locks(stack)


@pytest.fixture(scope="module")
def migration_reruns(migration_stack, tmp_path_factory):
    """After the downgrade, side by side (own lock files): the same target again, the same with
    alembic on the host, a target above the current revision, and no database_action at all."""
    stack = migration_stack
    tmp = tmp_path_factory.mktemp("reruns")
    state, writer = db_state(stack), backend(stack)
    env = stack.env
    # alembic "on the host": a command run in a directory with an environment; here the command
    # is the v3 image run by the host's docker client, which passes the variables on by name.
    host_alembic = {
        "database_action": "migration", "database_migration_target": "0003", "database_migration_location": "host",
        "database_migration_chdir": str(tmp),
        "database_migration_command": ["docker", "run", "--rm", "--network", "host", "-e", "TD_DB_PORT", "-e",
                                       "TD_DB_PASSWORD", "--entrypoint", "alembic", "tdref_backend:v3"],
        "database_migration_environment": {"TD_DB_PORT": env["TD_DB_PORT"], "TD_DB_PASSWORD": env["TD_DB_PASSWORD"]},
    }
    cases = {"same": {"database_migration_target": "0003", "database_action": "migration"},
             "above": {"database_migration_target": "0004", "database_action": "migration"},
             "no_action": {},
             "host": host_alembic}
    hosts = {name: host_vars(stack, stack_lock_path=str(stack.dir / (".rollback-%s.lock" % name)),
                             report_dir=str(tmp), **extra) for name, extra in cases.items()}
    procs = rollback(tmp, hosts, workers=4, **QUICK_VALIDATE)
    return SimpleNamespace(procs=procs, state=state, writer=writer)


def test_migration_to_the_revision_it_is_at_changes_nothing(migration_stack, migration_reruns):
    stack, proc = migration_stack, migration_reruns.procs["same"]
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert summaries(proc)["same"][:2] == [
        "Database rollback (migration): succeeded, nothing to change", "schema revision: 0003 -> 0003, alembic exec"]
    assert re.search(r"TASK \[taylordash.rollback.database : Downgrade the schema\] \*+\nskipping", proc.stdout)
    assert db_state(stack) == migration_reruns.state and backend(stack) == migration_reruns.writer
    assert not locks(stack)


def test_migration_with_alembic_on_the_host(migration_stack, migration_reruns):
    proc = migration_reruns.procs["host"]
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert summaries(proc)["host"][:2] == [
        "Database rollback (migration): succeeded, nothing to change", "schema revision: 0003 -> 0003, alembic host"]
    assert migration_stack.env["TD_DB_PASSWORD"] not in proc.stdout


def test_migration_to_a_revision_above_fails_and_changes_nothing(migration_stack, migration_reruns):
    proc = migration_reruns.procs["above"]
    assert proc.returncode != 0
    msg = final_failures(proc)["above"]
    assert "alembic cannot downgrade from 0003 to 0004" in msg and "Nothing was changed" in msg, msg
    assert db_state(migration_stack) == migration_reruns.state and not locks(migration_stack)


def test_action_is_required(migration_stack, migration_reruns):
    proc = migration_reruns.procs["no_action"]
    assert proc.returncode != 0
    assert "database_action" in final_failures(proc)["no_action"]
    assert db_state(migration_stack) == migration_reruns.state and not locks(migration_stack)


def test_check_row_counts_that_differ_fail(restore_stacks, tmp_path):
    """The comparison after the restore (issue 9), given counts that differ from the database's:
    postgresql_query counts, the role fails and names the table with both counts; a table that
    is not there fails with the query's error. No password in the output."""
    stack = restore_stacks["custom"]
    users, projects = (int(n) for n in db_state(stack).split()[:2])
    playbook = tmp_path / "rows.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "taylordash", "gather_facts": False,
        "vars": {"stack_db_user": stack.env.get("TD_DB_USER", "taylordash"), "stack_db_name": "taylordash"},
        "tasks": [{"name": "Compare", "ansible.builtin.include_role": {
            "name": "taylordash.rollback.database", "tasks_from": "checks_rows"},
            "vars": {"database_restore": {"rows_after": "{{ rows_after }}"}}}]}]))
    cases = {
        "differ": [{"name": "public.users", "rows": users}, {"name": "public.projects", "rows": projects + 1}],
        "missing": [{"name": "public.users", "rows": users}, {"name": "public.no_such_table", "rows": 1}],
    }
    for name, rows_after in cases.items():
        proc = run_playbook(playbook, extra_vars={"rows_after": rows_after},
                            inventory=inventory(tmp_path, name, host_vars(stack, **check_login(stack))))
        assert proc.returncode != 0, proc.stdout[-3000:]
        output = proc.stdout + proc.stderr
        assert stack.env["TD_DB_PASSWORD"] not in output
        if name == "differ":
            assert ("differ from those backup_restore reported: public.projects counted %d, backup_restore "
                    "reported %d." % (projects, projects + 1)) in output, output[-3000:]
            assert "public.users counted" not in output
        else:
            assert "could not count the rows at 127.0.0.1:%s" % stack.env["TD_DB_PORT"] in output, output[-3000:]
            assert "no_such_table" in output


def test_bad_settings_change_nothing(restore_stacks, tmp_path):
    """Issue 10: the database role checks all its settings before its first change (the writers'
    stop, the safety dump); the message names only the broken ones, each with its value."""
    stack = restore_stacks["plain"]
    state, writer, files = db_state(stack), backend(stack), listing(stack.dir)
    proc = rollback(tmp_path, {"plain": host_vars(stack, database_lock_timeout=-1, database_health_timeout="nan",
                                                  database_login_port=70000, database_check_login_port=0)},
                    database_action="restore", **QUICK_VALIDATE)
    assert proc.returncode != 0
    msg = final_failures(proc)["plain"]
    assert "Bad database rollback settings" in msg, msg
    for part in ("database_lock_timeout=-1", "database_health_timeout=nan", "database_login_port=70000",
                 "database_check_login_port=0"):
        assert part in msg, msg
    assert "database_connect_timeout" not in msg and "database_verify_jobs" not in msg
    assert "Verify the backup in a scratch database" not in proc.stdout.split("Bad database rollback settings")[0]
    assert db_state(stack) == state
    assert backend(stack) == writer  # never stopped
    # The run's own documentation (report archive, history log, emergency.log) aside, nothing changed.
    documentation = ("rollback_history.log", "emergency.log")
    report_files = {k: v for k, v in listing(stack.dir).items() if not k.startswith("rollbacks/") and k not in documentation}
    assert report_files == {k: v for k, v in files.items() if not k.startswith("rollbacks/") and k not in documentation}
    assert not locks(stack)


# --------------------------------------------------------------------------- issue 17: the safety dump verified while written

def lossy_docker(directory: Path) -> Path:
    """A docker client that loses the first row of the projects COPY block of every pg_dump stream
    that passes through it (and passes everything else through): a stream damaged on its way to the
    file, which pg_dump itself never notices (its exit status stays 0)."""
    real = subprocess.run(["sh", "-c", "command -v docker"], capture_output=True, text=True, check=True).stdout.strip()
    path = directory / "docker"
    path.write_text("#!/bin/sh\n"
                    "case \"$*\" in\n"
                    "  *pg_dump*) \"%s\" \"$@\" | sed '/^COPY public.projects /{n;d;}' ;;\n"
                    "  *) exec \"%s\" \"$@\" ;;\n"
                    "esac\n" % (real, real))
    path.chmod(0o755)
    return path


def test_safety_dump_verified_while_written(restore_stacks, tmp_path):
    """backup_restore state=dumped verify_rows: every table's rows counted in the dump's own snapshot
    equal the rows of its COPY block; a stream that lost a row is refused and nothing is written."""
    stack = restore_stacks["custom"]
    live = {name: int(psql(stack, "SELECT count(*) FROM %s" % name)) for name in ("public.users", "public.projects")}
    good = tmp_path / "safety.sql"
    made = run_module("backup_restore", {"state": "dumped", "path": str(good), "db": "taylordash", "verify_rows": True,
                                         "project_dir": str(stack.dir)})
    assert made["changed"] and made["verified"] and made["mode"] == "0600", made["msg"]
    assert set(made) <= DOCUMENTED, set(made) - DOCUMENTED
    rows = {t["name"]: t["rows"] for t in made["rows"]}
    assert {name: rows[name] for name in live} == live
    assert "verified while written" in made["msg"] and set(made["phases"]) >= {"snapshot", "dump"}

    bad = tmp_path / "lossy.sql"
    lossy = run_module("backup_restore", {"state": "dumped", "path": str(bad), "db": "taylordash", "verify_rows": True,
                                          "project_dir": str(stack.dir), "docker_cli": str(lossy_docker(tmp_path))})
    assert lossy["failed"] and not lossy["changed"] and lossy["verified"] is False, lossy
    assert ("public.projects has %d rows in the database and %d in the dump"
            % (live["public.projects"], live["public.projects"] - 1)) in lossy["msg"], lossy["msg"]
    assert "Nothing was written" in lossy["msg"]
    assert not bad.exists() and not list(tmp_path.glob(".lossy.sql.*")), "a partial or refused dump was left"

    refused = run_module("backup_restore", {"state": "dumped", "path": str(tmp_path / "x.dump"), "db": "taylordash",
                                            "verify_rows": True, "dump_format": "custom", "project_dir": str(stack.dir)})
    assert refused["failed"] and "set dump_format=plain" in refused["msg"]


def test_lossy_safety_dump_stops_the_restore_before_anything_is_dropped(restore_stacks, tmp_path):
    """The role: a safety dump whose stream lost a row stops the data restoration after the writers
    stopped but before the restore starts - the data is as it was, no safety dump is kept, the writers
    run again, and the message names the table."""
    stack = restore_stacks["custom"]
    state = change_data(stack)
    dumps = safety_dumps(stack)
    wrapper = lossy_docker(tmp_path)
    proc = run_playbook(PLAYBOOK, extra_vars={"database_action": "restore", "database_backup_path": str(stack.backup),
                                              "validate_script_enabled": False, "validate_perf_enabled": False,
                                              "database_restore_method": "in_place"},
                        inventory=inventory(tmp_path, "lossy", host_vars(stack)),
                        env={"PATH": "%s:%s" % (wrapper.parent, os.environ["PATH"])})
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert db_state(stack) == state, "the data changed"
    assert safety_dumps(stack) == dumps, "a refused safety dump was kept"
    failure = final_failures(proc)["lossy"]
    assert "does not match the database it was taken from" in failure and "public.projects has" in failure, failure
    # The restore task (the one that drops the schema) never started.
    assert "TASK [taylordash.rollback.database : Restore the verified backup" not in proc.stdout, proc.stdout[-3000:]
    wait_healthy(stack)
    assert not locks(stack)
