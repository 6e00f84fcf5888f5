"""playbooks/emergency_recovery.yml on reference stacks (issue 14): check mode changes nothing; a
real recovery restores service from the emergency set (row counts equal the emergency backup's)
and keeps the database volume unless a reset is allowed and the backup verified; the cleanup
touches this project only; the lock held by a rollback makes it wait, then fail naming the holder;
a stack without an emergency set is recovered with each missing piece skipped and said why; and
end to end, a rollback that fails is escalated to real receivers, then the recovery restores
service."""
from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
import time
import urllib.request

import pytest

from conftest import run_module
try:  # tests/integration as a package, or as a plain directory on sys.path
    from .receivers import HTTPReceiver, SMTPReceiver
    from .rollback_env import PlaybookStack
except ImportError:
    from receivers import HTTPReceiver, SMTPReceiver
    from rollback_env import PlaybookStack

pytestmark = pytest.mark.integration

PLAYBOOK = "emergency_recovery.yml"
# The validation and the report are tested in their own files: a short sample keeps these fast,
# and response-time targets a loaded CI machine can meet keep them about the recovery.
FAST = {"emergency_perf_samples": 3, "validate_perf_warmup": 0, "validate_perf_api_target": 5,
        "validate_perf_auth_target": 5, "validate_perf_frontend_target": 5}


def summary(proc) -> list:
    block = proc.stdout.split("Summarise the emergency recovery", 1)[1].split("TASK [", 1)[0]
    return re.findall(r'^\s+"(.*)",?$', block, re.M)


def health(stack):
    try:
        with urllib.request.urlopen(stack.url("backend", "/health/ready"), timeout=3) as resp:
            return resp.status, json.load(resp)
    except Exception as exc:  # noqa: BLE001 - any failure means not healthy
        return None, str(exc)


def psql(stack, sql: str, db: str | None = None) -> str:
    args = ["exec", "-T", "postgres", "psql", "-X", "-tA", "-c", sql]
    if db:
        args[4:4] = ["-d", db]
    return stack.compose(*args).stdout.strip()


def row_counts(stack) -> dict:
    return {table: int(psql(stack, f"SELECT count(*) FROM {table}")) for table in ("users", "projects")}


def has_marker(stack) -> bool:
    return psql(stack, "SELECT count(*) FROM pg_database WHERE datname = 'tdmarker'") == "1"


def docker(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {proc.stderr}")
    return proc.stdout.strip()


def make_emergency_set(stack) -> dict:
    """What an operator keeps for a bad day: a backup of the good database and copies of the good
    .env and compose file. Returns the row counts of the backup."""
    proc = stack.ctl("backup", "--dir", str(stack.dir))
    backup = proc.stdout.strip().splitlines()[-1]
    shutil.copy(backup, stack.dir / "emergency_backup.sql")
    shutil.copy(stack.dir / ".env", stack.dir / ".env.emergency")
    shutil.copy(stack.dir / "docker-compose.yml", stack.dir / "docker-compose.emergency.yml")
    return row_counts(stack)


@pytest.fixture(scope="module")
def broken(module_stack_factory, tmp_path_factory):
    """A stack whose emergency set was taken at v1, then a bad v2 deploy (unhealthy), rows written
    after the backup, a marker database in the same volume, and litter of this project (a stopped
    one-off container, a dangling image) beside litter of another project."""
    stack = module_stack_factory("emr")
    counts = make_emergency_set(stack)
    stack.deploy("v2", "unhealthy", "--no-backup")
    stack.ctl("seed-rows", "--dir", str(stack.dir), "--rows", "25")
    psql(stack, "CREATE DATABASE tdmarker")
    label = f"com.docker.compose.project={stack.name}"
    other = f"{stack.name}x"
    made = {"containers": [], "images": [f"{stack.name}_junk:tmp"]}
    for build in ("1", "2"):  # the second build leaves the first untagged: a dangling image of the project
        subprocess.run(["docker", "build", "-q", "-t", f"{stack.name}_junk:tmp", "-"], check=True, capture_output=True,
                       input=f"FROM tdref_frontend:v1\nLABEL {label} td.build={build}\n", text=True)
    dangling = docker("image", "ls", "-q", "--no-trunc", "--filter", "dangling=true", "--filter", f"label={label}").split()
    made["images"] += dangling
    made["containers"].append(docker("create", "--label", label, "--label", "com.docker.compose.oneoff=True",
                                     "tdref_frontend:v1", "true"))
    made["containers"].append(docker("create", "--label", f"com.docker.compose.project={other}", "tdref_frontend:v1", "true"))
    yield {"stack": stack, "counts": counts, "dangling": dangling, "made": made,
           "work": PlaybookStack(stack, tmp_path_factory.mktemp("emr-work"))}
    for cid in made["containers"]:
        docker("rm", "-f", cid, check=False)
    for ref in made["images"]:
        docker("image", "rm", ref, check=False)


def test_check_mode_then_recovery_then_reset(broken):
    stack, work = broken["stack"], broken["work"]
    prefix = stack.env["TD_IMAGE_PREFIX"]
    v1 = stack.image_id("tdref_backend:v1")
    label = f"com.docker.compose.project={stack.name}"
    before = {"tree": work.tree(), "tags": stack.tags(), "containers": stack.containers(),
              "rows": row_counts(stack), "litter": docker("ps", "-aq", "--no-trunc", "--filter", f"label={label}")}
    assert before["rows"] != broken["counts"]  # rows written after the emergency backup

    # 1. check mode: every step shown, nothing changed
    proc = work.run(PLAYBOOK, dict(FAST, emergency_image_tag="v1"), check=True)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert work.tree() == before["tree"]
    assert stack.tags() == before["tags"] and stack.containers() == before["containers"]
    assert row_counts(stack) == before["rows"] and has_marker(stack)
    assert docker("ps", "-aq", "--no-trunc", "--filter", f"label={label}") == before["litter"]
    for step in ("1. stop: ", "2. cleanup: ", "   volumes: ", "3. database: restore ", "   configuration: ",
                 "   images: ", "4. start: ", "5. report"):
        assert step in proc.stdout, step
    assert "Check mode: would stop and remove the containers of" in proc.stdout
    assert "kept: emergency_reset_volumes is false" in proc.stdout
    assert "Emergency recovery: check mode, nothing changed" in proc.stdout

    # 2. for real: service back, rows as in the emergency backup, the volume kept; the stale lock
    # a killed rollback left is taken over because the operator says so
    volume = f"{stack.name}_pgdata"
    stale = run_module("rollback_lock", {"path": str(stack.dir / ".rollback.lock"), "state": "present",
                                         "holder": "dave (killed)", "reason": "rollback_immediate"})
    assert stale["acquired"], stale
    proc = work.run(PLAYBOOK, dict(FAST, emergency_image_tag="v1", stack_lock_ttl=1, stack_lock_break_stale=True))
    assert proc.returncode == 0, proc.stdout[-6000:]
    status, body = health(stack)
    assert status == 200 and body["version"] == "v1", body
    assert row_counts(stack) == broken["counts"]
    assert has_marker(stack), "the database volume was replaced"
    assert docker("volume", "ls", "-q", "--filter", f"name={volume}") == volume
    tags = stack.tags()
    assert tags[f"{prefix}_backend:latest"] == v1
    kept = [ref for ref in tags if re.search(r"_backend:rollback-\d{8}T\d{6}Z$", ref)]
    assert kept and tags[kept[0]] == before["tags"][f"{prefix}_backend:latest"]  # the bad build kept
    assert tags[f"{prefix}_backend:previous"] == before["tags"][f"{prefix}_backend:previous"]
    assert "TD_FAULT=none" in (stack.dir / ".env").read_text()
    assert list(stack.dir.glob(".env.rollback-*")), "the replaced .env was not kept"
    # the replaced data is kept: the restore swapped the verified copy in and renamed the database
    # it replaced aside (database_restore_method auto -> swap), instead of a safety dump
    kept_db = psql(stack, "SELECT datname FROM pg_database WHERE datname LIKE '%\\_before\\_%'").split()
    assert len(kept_db) == 1, "the replaced data was not kept: %s" % kept_db
    # the cleanup: this project's stopped container and dangling image are gone, nothing else
    made = broken["made"]
    assert docker("ps", "-aq", "--no-trunc", "--filter", f"id={made['containers'][0]}") == ""
    assert docker("ps", "-aq", "--no-trunc", "--filter", f"id={made['containers'][1]}") == made["containers"][1]
    for image in broken["dangling"]:
        assert docker("image", "inspect", image, check=False) == "[]" or not stack.image_id(image)
    assert stack.image_id(f"{stack.name}_junk:tmp")  # tagged: never removed
    lines = summary(proc)
    assert lines[0] == "Emergency recovery: succeeded", lines
    assert any(line.startswith("volumes: kept: " + volume + " - emergency_reset_volumes is false") for line in lines), lines
    assert any(line.startswith("database: restored from ") for line in lines), lines
    assert re.search(r"Steps: .*stop stack \(volumes kept\) [\d.]+ s.*restore database [\d.]+ s.*poll health [\d.]+ s", lines[-1])
    reports = sorted(stack.dir.glob("rollbacks/*/rollback_report_*.json"))
    assert reports and json.loads(reports[-1].read_text())["type"] == "emergency"
    assert " type=emergency outcome=SUCCEEDED " in (stack.dir / "rollback_history.log").read_text()
    assert not (stack.dir / ".rollback.lock").exists()

    # 3. a reset, allowed: the backup verified and the data dumped first, then a fresh volume
    dumps_before = set(stack.dir.glob("safety_*_before_reset.sql"))
    stack.ctl("seed-rows", "--dir", str(stack.dir), "--rows", "5")
    proc = work.run(PLAYBOOK, dict(FAST, emergency_reset_volumes=True))
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert health(stack)[0] == 200
    assert row_counts(stack) == broken["counts"]
    assert not has_marker(stack), "the volume was not reset"
    assert set(stack.dir.glob("safety_*_before_reset.sql")) - dumps_before, "no dump before the reset"
    lines = summary(proc)
    assert any(line.startswith(f"volumes: reset: {volume}") and "data before the reset in" in line for line in lines), lines
    assert any(line.startswith("images: skipped - emergency_image_tag is not set") for line in lines), lines


def test_waits_for_the_lock_of_a_rollback_then_names_it(broken):
    stack, work = broken["stack"], broken["work"]
    lock_path = str(stack.dir / ".rollback.lock")
    held = run_module("rollback_lock", {"path": lock_path, "state": "present",
                                        "holder": "carol via AWX job 42", "reason": "rollback_immediate"})
    assert held["acquired"], held
    tags, containers = stack.tags(), stack.containers()
    try:
        started = time.monotonic()
        proc = work.run(PLAYBOOK, dict(FAST, stack_lock_wait=2))
        waited = time.monotonic() - started
        assert proc.returncode != 0
        assert "carol via AWX job 42" in proc.stdout and "rollback_immediate" in proc.stdout
        assert waited >= 2
        assert "Stop every service" not in proc.stdout
        assert stack.tags() == tags and stack.containers() == containers
        assert json.loads(open(lock_path).read())["holder"] == "carol via AWX job 42"
    finally:
        run_module("rollback_lock", {"path": lock_path, "state": "absent", "token": held["lock"]["token"]})

    # A stale lock (older than stack_lock_ttl: the preflights before the lock take longer than
    # its 1 s) is named and not taken over unless asked to (test_check_mode_then_recovery_then_reset
    # takes one over).
    stale = run_module("rollback_lock", {"path": lock_path, "state": "present", "holder": "dave (killed)",
                                         "reason": "rollback_immediate"})
    assert stale["acquired"], stale
    try:
        proc = work.run(PLAYBOOK, dict(FAST, stack_lock_wait=1, stack_lock_ttl=1), check=True)
        assert proc.returncode != 0 and "dave (killed)" in proc.stdout
        assert stack.tags() == tags and stack.containers() == containers
    finally:
        pathlib.Path(lock_path).unlink(missing_ok=True)


def test_missing_pieces_are_skipped(stack_factory, tmp_path):
    """A stack without an emergency set, nothing asked for by name: the recovery restarts the
    stack and says what it skipped and why. (Asked for by name, a missing piece fails before
    anything changes, naming the variable: tests/faults/test_faults_emergency.py,
    test_emergency_release_tag_missing.)"""
    stack = stack_factory("ems")  # up at v1, never backed up, no emergency files
    work = PlaybookStack(stack, tmp_path)
    proc = work.run(PLAYBOOK, FAST)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert health(stack)[0] == 200
    lines = summary(proc)
    assert any(line.startswith("database: skipped - no emergency_backup.sql in ") for line in lines), lines
    assert any(line.startswith("configuration: skipped - no .env.emergency and no docker-compose.emergency.yml") for line in lines)
    assert any(line.startswith("images: skipped - emergency_image_tag is not set") for line in lines), lines


def test_failed_rollback_escalated_then_recovered(stack_factory, tmp_path):
    """End to end: the rollback goes back to a build that is itself broken and fails; the escalation
    reaches a real SMTP server and a real webhook receiver; the emergency recovery then restores
    service from the emergency set, and keeps the volume."""
    stack = stack_factory("eme")
    counts = make_emergency_set(stack)
    psql(stack, "CREATE DATABASE tdmarker")
    stack.deploy("v2", "unhealthy", "--no-backup")  # the bad build becomes :previous ...
    stack.deploy("v1", "unhealthy", "--no-backup")  # ... when the next deploy (good, fault ignored) follows
    stack.ctl("seed-rows", "--dir", str(stack.dir), "--rows", "10")
    work = PlaybookStack(stack, tmp_path)
    with SMTPReceiver() as smtp, HTTPReceiver() as hook:
        escalate = {"escalate_mail_to": ["oncall@example.test"], "escalate_mail_host": "127.0.0.1",
                    "escalate_mail_port": smtp.port, "escalate_mail_secure": "none",
                    "escalate_webhook_url": hook.url, "escalate_dedup_window": 0}
        proc = work.run("rollback_immediate.yml", dict(escalate, immediate_health_timeout=3,
                                                       validate_perf_samples=3, validate_perf_warmup=0))
        assert proc.returncode != 0 and "Immediate rollback: FAILED" in proc.stdout
        mail = smtp.wait_for(1)[0]
        assert "EMERGENCY: Rollback Failed" in mail["Subject"]
        incident = hook.wait_for(1)[0]["json"]
        assert incident["severity"] == "critical" and incident["type"] == "immediate"
        assert health(stack)[0] != 200  # the rollback left the bad build running

        proc = work.run(PLAYBOOK, dict(FAST, **escalate, emergency_image_tag="v1"))
        assert proc.returncode == 0, proc.stdout[-6000:]
    status, body = health(stack)
    assert status == 200 and body["version"] == "v1"
    assert row_counts(stack) == counts
    assert has_marker(stack), "the database volume was not kept"
    assert summary(proc)[0] == "Emergency recovery: succeeded"
    assert len(smtp.messages) == 1  # a recovery that succeeded pages nobody
