"""playbooks/drill.yml against one shared reference stack: a drill of each rollback type passes
and leaves the stack as it was (images, tags, containers, files, data) with the recovery time
(RTO) and the data loss (RPO) in the report and the drill history; a drill whose rollback cannot
work (no previous image) fails, says so in its report, escalates, and still puts the stack back;
a stack marked production is refused; a database drill of a stack without a database fails in
preflight; --check changes nothing.

Every test leaves the shared stack as it found it (that is what a drill must do), so one stack
serves them all."""
from __future__ import annotations

import json
import re

import pytest

from conftest import REPO, run_playbook, write_inventory

try:
    from .blue_green_env import BlueGreen
except ImportError:  # run from tests/integration
    from blue_green_env import BlueGreen

pytestmark = pytest.mark.integration

PLAYBOOK = REPO / "playbooks" / "drill.yml"
# The validation has its own tests; response times on a loaded CI machine are its business.
QUICK = {"validate_perf_enabled": False}
# What the rollbacks and drills write on purpose (documentation), outside the stack's own files.
DOCS = ("rollbacks", "rollback_history.log", "drill_history.log", "emergency.log", ".escalation")


def drill(stack, tmp_path, check=False, **overrides):
    return run_playbook(PLAYBOOK, extra_vars=stack.stack_vars(**dict(QUICK, **overrides)), check=check,
                        diff=check, inventory=write_inventory(tmp_path), vars_files=[stack.secrets_file(tmp_path)])


def files(stack) -> dict:
    """Content and mode of the stack's files, except the drills' documentation."""
    out = {}
    for path in sorted(stack.dir.rglob("*")):
        rel = path.relative_to(stack.dir)
        if path.is_file() and not rel.parts[0].startswith(DOCS):
            out[str(rel)] = (path.read_bytes(), path.stat().st_mode)
    return out


def rows(stack) -> str:
    sql = ("SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables "
           "WHERE table_schema = 'public'")
    tables = stack.compose("exec", "-T", "postgres", "psql", "-U", "taylordash", "-d", "taylordash", "-At",
                           "-c", sql).stdout.strip()
    counts = stack.compose("exec", "-T", "postgres", "psql", "-U", "taylordash", "-d", "taylordash", "-At", "-c",
                           "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM projects)").stdout.strip()
    # A database restore swaps in a verified copy and keeps the data before it aside: the drill's
    # cleanup drops that copy of its test data, so the list of databases is as before.
    databases = stack.compose("exec", "-T", "postgres", "psql", "-U", "taylordash", "-d", "postgres", "-At", "-c",
                              "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database").stdout.strip()
    return tables + " " + counts + " " + databases


def state(stack) -> dict:
    containers = {name: (image, status) for name, (_cid, image, status) in stack.containers().items()}
    return {"tags": stack.tags(), "containers": containers, "files": files(stack), "rows": rows(stack)}


def last_report(stack) -> dict:
    reports = sorted(stack.dir.glob("rollbacks/*/rollback_report_*.json"))
    assert reports, "no report written"
    return json.loads(reports[-1].read_text())


def drill_result(report) -> dict:
    found = [c for c in report["changes"] if c.get("component") == "drill result"]
    assert found, report["changes"]
    return found[0]


@pytest.fixture(scope="module")
def shared(module_stack_factory):
    stack = module_stack_factory("drl")
    # A deploy history like a real stack's: v1 then v3 (good), so :previous exists and differs.
    stack.deploy("v3")
    return stack


def test_check_mode_changes_nothing(shared, tmp_path):
    before = state(shared)
    proc = drill(shared, tmp_path, check=True, drill_type="immediate")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Check mode: a immediate drill would" in proc.stdout or "Check mode: an immediate drill would" in proc.stdout
    assert state(shared) == before
    assert not (shared.dir / ".rollback.lock").exists()


@pytest.mark.parametrize("drill_type", ["immediate", "config", "database", "complete"])
def test_drill_passes_and_leaves_the_stack_as_it_was(shared, tmp_path, drill_type):
    before = state(shared)
    proc = drill(shared, tmp_path, drill_type=drill_type)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert f"Rollback drill ({drill_type}): passed" in proc.stdout
    assert state(shared) == before, "the drill did not leave the stack as it was"
    report = last_report(shared)
    assert report["type"] == f"drill_{drill_type}" and report["outcome"] == "SUCCEEDED", report["outcome"]
    result = drill_result(report)
    assert result["rto_seconds"] > 0 and result["rpo_rows_lost"] == 0
    assert result["rows_before_change"] == result["rows_after_rollback"] > 0
    steps = [s["step"] for s in report["steps"]]
    assert steps[0] == "drill: verified test backup" and steps[-1] == "drill: cleanup", steps
    assert any(s.startswith("drill: recovery time (RTO)") for s in steps)
    assert len(steps) > 4  # the rollback role's own steps are there too
    line = (shared.dir / "drill_history.log").read_text().splitlines()[-1]
    assert f"type={drill_type} outcome=SUCCEEDED" in line and "rpo_rows_lost=0" in line
    assert re.search(r"rto_seconds=\d+\.\d+", line)
    assert "RTO" in report["description"] and "RPO 0 rows lost" in report["description"]


def test_drill_whose_rollback_cannot_work_fails_and_puts_the_stack_back(shared, tmp_path):
    before = state(shared)
    proc = drill(shared, tmp_path, drill_type="immediate", stack_target_tag="nosuchtag")
    assert proc.returncode != 0
    assert "Rollback drill (immediate): FAILED" in proc.stdout
    assert "nosuchtag" in proc.stdout
    report = last_report(shared)
    assert report["outcome"] == "FAILED" and "nosuchtag" in report["failure"], report["failure"]
    # The cleanup put the original images back although the rollback never ran.
    assert state(shared) == before
    assert "drill result" in json.dumps(report["changes"])
    assert "backend" in drill_result(report)["restored_by_cleanup"]
    line = (shared.dir / "drill_history.log").read_text().splitlines()[-1]
    assert "type=immediate outcome=FAILED" in line
    # A failed drill escalates like a failed rollback.
    assert "drill" in (shared.dir / "emergency.log").read_text()


def test_production_stack_is_refused(shared, tmp_path):
    env = shared.dir / ".env"
    original = env.read_bytes()
    env.write_bytes(original + b"TD_ENVIRONMENT=production\n")
    try:
        before = state(shared)
        proc = drill(shared, tmp_path, drill_type="config")
        assert proc.returncode != 0
        assert "Refusing to drill a production stack" in proc.stdout
        assert "TD_ENVIRONMENT" in proc.stdout and "drill_allow_production" in proc.stdout
        assert state(shared) == before
        assert not (shared.dir / ".rollback.lock").exists()
    finally:
        env.write_bytes(original)


def test_database_drill_needs_a_database(shared, tmp_path):
    before = state(shared)
    proc = drill(shared, tmp_path, drill_type="database", stack_db_service="nosuchdb")
    assert proc.returncode != 0
    assert "stack_db_service=nosuchdb is not a service of the compose project" in proc.stdout
    assert state(shared) == before


def test_blue_green_drill_switches_back(shared, module_stack_factory, tmp_path_factory):
    """The shared stack as blue behind the lb, one more stack as green: the drill moves traffic to
    green, the blue_green role switches it back, and the site file is as it was."""
    green = module_stack_factory("drg")
    work = tmp_path_factory.mktemp("drill-bg")
    pair = BlueGreen(shared, green, work / "lb", work, active="blue")
    try:
        site = pair.site.read_bytes()
        before = state(shared)
        extra = pair.role_vars("blue", **QUICK, drill_type="blue_green")
        proc = run_playbook(PLAYBOOK, extra_vars=extra, inventory=pair.inventory,
                            vars_files=[shared.secrets_file(work)])
        assert proc.returncode == 0, proc.stdout[-6000:]
        assert "Rollback drill (blue_green): passed" in proc.stdout
        assert pair.site.read_bytes() == site and pair.served(3) == ["blue"] * 3
        assert pair.running("green") and all(s == "running" for s in pair.running("green").values())
        assert state(shared) == before
        result = drill_result(last_report(shared))
        assert result["rto_seconds"] > 0 and result["rpo_rows_lost"] == 0
    finally:
        pair.down()
