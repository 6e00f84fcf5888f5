"""The role taylordash.rollback.validate (through playbooks/validate.yml) against real reference
stacks: a good one at v1, and a bad one at v2 whose fault each test sets itself."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

try:  # tests/integration as a package, or as a plain directory on sys.path
    from .rollback_env import PlaybookStack, fact, result_of
except ImportError:
    from rollback_env import PlaybookStack, fact, result_of

pytestmark = pytest.mark.integration

PLAYBOOK = "validate.yml"
# Fewer samples keep the tests quick; the figures are still real measurements.
QUICK = {"validate_perf_samples": 3, "validate_perf_warmup": 0}
CHECKLIST = ["auth_login", "api_projects", "frontend", "database"]
P1_CHECKS = ["backend_health", "auth_login", "auth_rejects_bad_password", "api_projects", "api_key_required",
             "api_plugins", "frontend", "nginx_tls", "database"]


@pytest.fixture(scope="module")
def good(module_stack_factory, tmp_path_factory):
    stack = module_stack_factory("val")
    return PlaybookStack(stack, tmp_path_factory.mktemp("validate-good"))


@pytest.fixture(scope="module")
def bad(module_stack_factory, tmp_path_factory):
    stack = module_stack_factory("vbad")
    stack.deploy("v2", "unhealthy")
    return PlaybookStack(stack, tmp_path_factory.mktemp("validate-bad"))


def set_fault(target: PlaybookStack, fault: str, *extra: str) -> None:
    target.stack.ctl("fault", "--dir", str(target.dir), fault, *extra)
    # The backend is recreated with the new fault: wait until the v2 build answers again.
    target.wait_backend(lambda status, body: body.get("version") == "v2" and status in (200, 503))


def assert_no_secret(target: PlaybookStack, *texts: str) -> None:
    for secret in target.secrets:
        for text in texts:
            assert secret not in text


def test_all_checks_pass_on_v1(good):
    proc = good.run(PLAYBOOK, QUICK, json_output=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    results = fact(proc.stdout, "validate_results")
    assert results["passed"] is True and results["failures"] == []
    assert (results["pass_rate"], results["checks_passed"], results["checks_total"]) == (100.0, 9, 9)
    assert results["failed_checks"] == [] and results["min_pass_rate"] == 89.0
    assert [c["name"] for c in results["script"]["checks"]] == P1_CHECKS
    assert results["script"]["path"] == str(good.dir / "ops" / "validate_p1.sh")
    assert [c["name"] for c in results["checklist"]] == CHECKLIST
    assert all(c["passed"] for c in results["checklist"]), results["checklist"]
    details = {c["name"]: c["detail"] for c in results["checklist"]}
    assert details["auth_login"].startswith("HTTP 200, session token issued")
    assert details["api_projects"].startswith("HTTP 200, 3 projects")
    assert details["database"] == "accepting connections"
    assert (results["health_passed"], results["checklist_passed"], results["auth_passed"],
            results["performance_passed"]) == (True, True, True, True)
    perf = {p["endpoint"]: p for p in results["performance"]}
    assert sorted(perf) == ["api_projects", "auth_login", "frontend"]
    for name, target in (("api_projects", 0.5), ("auth_login", 0.5), ("frontend", 1.0)):
        assert perf[name]["passed"] and perf[name]["samples"] == 3 and perf[name]["target"] == target
        assert 0 < perf[name]["p50"] <= perf[name]["p95"] < target
    assert_no_secret(good, proc.stdout, proc.stderr)


def test_check_mode_reads_only(good):
    before = good.tree()
    proc = good.run(PLAYBOOK, dict(QUICK, validate_perf_samples=1), check=True, json_output=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert fact(proc.stdout, "validate_results")["pass_rate"] == 100.0
    assert good.tree() == before


def test_missing_script_set_explicitly_fails_before_any_check(good):
    """Issue 11: a script the operator named must exist; the default one is skipped when absent
    (tests/integration/test_other_stack.py)."""
    script = good.dir / "ops" / "absent.sh"
    proc = good.run(PLAYBOOK, dict(QUICK, validate_script=str(script), validate_perf_enabled=False), json_output=True)
    assert proc.returncode != 0
    assert result_of(proc.stdout, "Check the validation settings")["msg"] == (
        "Invalid validation settings: validate_script=%s - no such file on the target host; set validate_script "
        "to the validation script, or validate_script_enabled to false." % script)
    with pytest.raises(AssertionError):
        fact(proc.stdout, "validate_results")


def test_default_script_absent_and_services_given_skip_without_looking(good):
    """Issue 15: no stat of the default script (validate_p1 with missing: skip looks for it) and no
    `docker compose config --services` when validate_compose_services is given; the results say
    exactly what the plan always said."""
    script = good.dir / "ops" / "validate_p1.sh"
    aside = script.with_name("validate_p1.sh.aside")
    script.rename(aside)
    try:
        proc = good.run(PLAYBOOK, dict(QUICK, validate_perf_enabled=False, validate_compose_services=["backend", "frontend"]),
                        json_output=True)
    finally:
        aside.rename(script)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    results = fact(proc.stdout, "validate_results")
    line = "P1 script: skipped, no %s; set validate_script to run a validation script" % script
    assert results["script"] == {"enabled": False, "path": None, "passed": None, "msg": line, "rc": None,
                                 "timed_out": False, "checks": [], "duration": None}
    assert (results["pass_rate"], results["checks_total"], results["health_passed"]) == (None, None, None)
    assert results["skipped"][0] == line
    assert "database: skipped, no service named postgres in the compose project; set stack_db_service" in results["skipped"]
    assert [c["name"] for c in results["checklist"]] == ["auth_login", "api_projects", "frontend"]
    assert results["passed"] is True and results["failures"] == []
    assert result_of(proc.stdout, "Look for the P1 validation script").get("skipped") is True
    p1 = result_of(proc.stdout, "Run the P1 validation script and gate on its pass rate")
    assert p1.get("skipped") is True and p1["found"] is False
    listing = result_of(proc.stdout, "List the services of the compose project (is there a database to ask?)")
    assert listing.get("skipped") is True


def test_database_check_runs_through_compose_exec(good):
    """Issue 15: pg_isready runs through one `docker compose exec -T` (ansible.builtin.command)."""
    proc = good.run(PLAYBOOK, dict(QUICK, validate_script_enabled=False, validate_perf_enabled=False,
                                   validate_compose_services=["postgres"]), json_output=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    db = result_of(proc.stdout, "Check that the database accepts connections")
    assert db["rc"] == 0 and db["cmd"][0] == "docker" and "exec" in db["cmd"] and "-T" in db["cmd"]
    assert db["cmd"][db["cmd"].index("exec"):][:4] == ["exec", "-T", "postgres", "pg_isready"]
    assert db.get("changed") is False
    results = fact(proc.stdout, "validate_results")
    assert [(c["name"], c["passed"], c["detail"]) for c in results["checklist"] if c["name"] == "database"] == [
        ("database", True, "accepting connections")]


HANGING = """#!/bin/bash
echo "[PASS] backend_health - HTTP 200"
sleep 1000 &
echo $! > "$(dirname "$0")/hang.child.pid"
wait
"""


def test_hanging_script_is_stopped_at_the_timeout(good):
    script = good.dir / "ops" / "hang.sh"
    pid_file = good.dir / "ops" / "hang.child.pid"
    script.write_text(HANGING)
    script.chmod(0o755)
    child = None
    try:
        started = time.monotonic()
        proc = good.run(PLAYBOOK, {"validate_script": str(script), "validate_script_timeout": 1,
                                   "validate_script_kill_grace": 0.5, "validate_checklist_enabled": False,
                                   "validate_perf_enabled": False}, json_output=True)
        elapsed = time.monotonic() - started
        assert proc.returncode != 0
        results = fact(proc.stdout, "validate_results")
        assert results["script"]["timed_out"] is True and results["script"]["rc"] == -15
        assert results["failures"][0].startswith(
            "validate_p1: %s timed out after 1 s and its process group was stopped with SIGTERM; "
            "checks seen so far: backend_health PASS." % script)
        assert "Validation failed: validate_p1: %s timed out after 1 s" % script in \
            result_of(proc.stdout, "Fail when the validation failed")["msg"]
        assert elapsed < 30
        child = int(pid_file.read_text())
        assert not Path("/proc/%d" % child).exists() or \
            Path("/proc/%d/stat" % child).read_text().rsplit(")", 1)[-1].split()[0] in ("Z", "X")
    finally:
        if child and Path("/proc/%d" % child).exists():
            os.kill(child, 9)
        script.unlink()
        pid_file.unlink(missing_ok=True)


def test_pass_rate_below_threshold_on_the_bad_version(bad):
    set_fault(bad, "unhealthy")
    proc = bad.run(PLAYBOOK, dict(QUICK, validate_perf_enabled=False), json_output=True)
    assert proc.returncode != 0
    results = fact(proc.stdout, "validate_results")
    assert results["passed"] is False and results["pass_rate"] < 89
    assert {"backend_health", "nginx_tls"} <= set(results["failed_checks"])
    msg = result_of(proc.stdout, "Fail when the validation failed")["msg"]
    assert re.search(r"^Validation failed: validate_p1: pass rate below the minimum 89%: \d/9 checks passed "
                     r"\([\d.]+%\); failed: .*backend_health", msg), msg
    assert_no_secret(bad, proc.stdout)


def test_slow_version_fails_the_response_time_targets(bad):
    set_fault(bad, "slow", "--delay", "0.7")
    proc = bad.run(PLAYBOOK, {"validate_script_enabled": False, "validate_checklist_enabled": False,
                              "validate_perf_samples": 3, "validate_perf_warmup": 0, "validate_perf_timeout": 30},
                   json_output=True)
    assert proc.returncode != 0
    results = fact(proc.stdout, "validate_results")
    perf = {p["endpoint"]: p for p in results["performance"]}
    assert perf["frontend"]["passed"] is True
    msg = result_of(proc.stdout, "Fail when the validation failed")["msg"]
    for name in ("auth_login", "api_projects"):
        assert perf[name]["passed"] is False and perf[name]["p50"] >= 0.7 and perf[name]["p95"] >= perf[name]["p50"]
        figures = "%s: p50 %.3f s, p95 %.3f s over 3 samples (target 0.5 s): p50 and p95 over the target" % (
            name, perf[name]["p50"], perf[name]["p95"])
        assert "performance " + figures in msg, msg
    assert results["performance_passed"] is False and len(results["failures"]) == 2
