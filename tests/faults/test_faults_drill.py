"""Fault matrix, rollback drill (playbooks/drill.yml) on the shared reference stack. Each test's
docstring is its row of the matrix: ``Fault: ... -> Outcome: ...``. Every case asserts that the
stack is as it was afterwards (tags, containers and files), that the lock is free, and, when a
report is written, that it names the first cause."""
from __future__ import annotations

import pytest

from .conftest import assert_lock_free, assert_report_names_first_cause

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def _state(fs) -> dict:
    """Tags, files, and each service's image and status: a drill recreates the containers it
    deploys its test images to, so their IDs change; what they run must not."""
    return {"tags": fs.tags(), "files": fs.files(),
            "containers": {name: (image, status) for name, (_cid, image, status) in fs.containers().items()}}


def test_drill_rollback_target_missing(fault_stack):
    """Fault: immediate drill whose rollback cannot work (the target tag it rolls back to does not
    exist) -> Outcome: the drill fails after its test deploy; the cleanup puts the original images,
    tags and the services on their original images back and removes the drill's tags and test backup; lock free; report FAILED
    naming the missing tag, the drill history says FAILED, the failure is escalated (emergency.log)."""
    fs = fault_stack
    fs.reset(running="v1", previous="v1")
    before = _state(fs)
    case = fs.case_dir("drill-target-missing")
    proc = fs.run("drill.yml", case, drill_type="immediate", stack_target_tag="nosuchtag",
                  stack_target_services=["backend"])
    assert proc.returncode != 0
    assert _state(fs) == before
    assert_lock_free(fs)
    data = assert_report_names_first_cause(case, r"nosuchtag")
    assert data["type"] == "drill_immediate"
    assert "outcome=FAILED" in (case / "drill_history.log").read_text()
    assert "drill" in (case / "emergency.log").read_text()


def test_drill_production_stack_refused(fault_stack):
    """Fault: drill of a stack whose .env says ENVIRONMENT=production, drill_allow_production not
    set -> Outcome: refused before the lock and before any change, the message names ENVIRONMENT
    and drill_allow_production; no report (nothing was done); lock free."""
    fs = fault_stack
    fs.reset(running="v1", previous="v1")
    env = fs.dir / ".env"
    original = env.read_bytes()
    env.write_bytes(original + b"ENVIRONMENT=Production\n")
    try:
        before = fs.snapshot()
        case = fs.case_dir("drill-production")
        proc = fs.run("drill.yml", case, drill_type="immediate")
        assert proc.returncode != 0
        assert "Refusing to drill a production stack" in proc.stdout
        assert "ENVIRONMENT in " in proc.stdout and "drill_allow_production" in proc.stdout
        assert fs.snapshot() == before
        assert not list(case.glob("rollbacks/*"))
        assert_lock_free(fs)
    finally:
        env.write_bytes(original)
