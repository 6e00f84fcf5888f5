"""Fault matrix, emergency recovery (playbooks/emergency_recovery.yml) on the shared reference
stack. Each test's docstring is its row of the matrix: ``Fault: ... -> Outcome: ...``. The
emergency set of each case lives in its own case directory (absolute paths), so the shared
project directory only changes where the recovery itself changes it; the escalation's
emergency.log goes to the case directory too. Every case leaves the stack running v1."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import assert_images_kept, assert_lock_free, assert_report_names_first_cause

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PLAYBOOK = "emergency_recovery.yml"


def run(fs, case: Path, **overrides):
    return fs.run(PLAYBOOK, case, escalate_emergency_log=str(case / "emergency.log"),
                  escalate_state_file=str(case / "escalate_state.json"), emergency_perf_samples=3,
                  validate_perf_api_target=5, validate_perf_auth_target=5, validate_perf_frontend_target=5, **overrides)


def good_set(fs, case: Path) -> dict:
    """A valid .env and compose file of the stack, copied into the case directory."""
    env, compose = case / "env.good", case / "compose.good.yml"
    env.write_text((fs.dir / ".env").read_text())
    compose.write_text((fs.dir / "docker-compose.yml").read_text())
    return {"emergency_env_file": str(env), "emergency_compose_file": str(compose)}


def assert_nothing_changed(fs, before: dict, case: Path) -> None:
    after = fs.snapshot()
    assert after["tags"] == before["tags"]
    assert after["containers"] == before["containers"], "a container was stopped or recreated"
    assert after["files"] == before["files"]
    assert_lock_free(fs)
    assert (case / "emergency.log").exists(), "the failure was not escalated"


def test_emergency_backup_not_restorable(fault_stack):
    """Fault: the emergency backup is not a restorable dump -> Outcome: fails verifying it in a
    scratch database before anything stops (containers, tags and files as before); lock free;
    report FAILED naming the backup verification; escalated."""
    fs = fault_stack
    fs.reset(running="v1", previous="v1")
    case = fs.case_dir("emergency-bad-backup")
    bad = case / "emergency_backup.sql"
    bad.write_text("CREATE TABLE users (id int);\nTHIS IS NOT SQL;\n")
    before = fs.snapshot()
    proc = run(fs, case, emergency_backup_path=str(bad), emergency_image_tag="v1", **good_set(fs, case))
    assert proc.returncode != 0
    assert "Stop every service of the stack" not in proc.stdout
    assert_nothing_changed(fs, before, case)
    assert_report_names_first_cause(case, r"Verify the backup in a scratch database before anything stops")


def test_emergency_compose_file_invalid(fault_stack):
    """Fault: the known-good compose file does not validate -> Outcome: config_restore (check mode)
    refuses it before anything stops; nothing changed; lock free; report FAILED naming the
    validation of the known-good files; escalated."""
    fs = fault_stack
    fs.reset(running="v1", previous="v1")
    case = fs.case_dir("emergency-bad-compose")
    files = good_set(fs, case)
    Path(files["emergency_compose_file"]).write_text("services:\n  backend: [not, a, mapping]\n")
    before = fs.snapshot()
    proc = run(fs, case, emergency_restore_database=False, **files)
    assert proc.returncode != 0
    assert_nothing_changed(fs, before, case)
    assert_report_names_first_cause(case, r"Validate the known-good \.env and compose file before anything stops")


def test_emergency_release_tag_missing(fault_stack):
    """Fault: emergency_image_tag names a release the image repositories lack, and
    emergency_backup_path a file that is not there -> Outcome: fails naming each variable (the
    missing images; the backup path resolved in the project directory) before anything changes;
    lock free; report FAILED naming it; escalated."""
    fs = fault_stack
    fs.reset(running="v1", previous="v1")
    case = fs.case_dir("emergency-no-release")
    before = fs.snapshot()
    # (was also the first half of tests/integration/test_emergency_recovery.py's
    # test_missing_pieces_are_skipped_or_named: the same failure, run once, here)
    proc = run(fs, case, emergency_image_tag="v9.9.9", emergency_restore_database=False,
               emergency_backup_path="nightly.sql")
    assert proc.returncode != 0
    assert f"emergency_image_tag=v9.9.9 - not found: {fs.prefix}_backend:v9.9.9" in proc.stdout
    assert f"emergency_backup_path={fs.dir}/nightly.sql - not found" in proc.stdout
    assert "nothing was changed" in proc.stdout
    assert_nothing_changed(fs, before, case)
    assert_report_names_first_cause(case, r"emergency_image_tag=v9\.9\.9")


def test_emergency_release_itself_broken(fault_stack):
    """Fault: the known-good release is itself broken (it answers 503) -> Outcome: the stack is
    started on it and the health poll fails by its deadline, naming the service; the replaced
    images kept under rollback-* (nothing untagged), the database volume and its data kept; lock
    free; report FAILED naming the health failure; escalated."""
    fs = fault_stack
    fs.reset(running="v1", previous="v1", fault="unhealthy")
    case = fs.case_dir("emergency-broken-release")
    for service in ("backend", "frontend"):
        fs.tag(service, f"tdref_{service}:v2", "broken")
    before = fs.snapshot()
    volume = f"{fs.stack.name}_pgdata"
    rows = fs.stack.compose("exec", "-T", "postgres", "psql", "-X", "-tAc", "SELECT count(*) FROM projects").stdout
    try:
        proc = run(fs, case, emergency_image_tag="broken", emergency_restore_database=False,
                   emergency_health_timeout=3)
        assert proc.returncode != 0
        after = fs.snapshot()
        assert_images_kept(before["tags"], after["tags"])
        assert any(":rollback-" in ref for ref in after["tags"])
        assert subprocess.run(["docker", "volume", "inspect", volume], capture_output=True, check=False).returncode == 0
        assert fs.stack.compose("exec", "-T", "postgres", "psql", "-X", "-tAc",
                                "SELECT count(*) FROM projects").stdout == rows
        assert_lock_free(fs)
        data = assert_report_names_first_cause(case, r"not healthy by the deadline of 3")
        assert data["type"] == "emergency"
        assert (case / "emergency.log").exists()
    finally:
        for service in ("backend", "frontend"):
            fs.untag(f"{fs.prefix}_{service}:broken")
        fs.reset(running="v1", previous="v1")
