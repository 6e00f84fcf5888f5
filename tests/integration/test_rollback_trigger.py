"""rollback_trigger against the reference stack: each fault of v2 fires its trigger, a good
stack does not, and no secret reaches the result. One stack for the module (the faults are
deployed one after another, and v1 put back between them)."""
from __future__ import annotations

import json

import pytest

from conftest import run_module


@pytest.fixture(scope="module")
def stack(module_stack_factory):
    return module_stack_factory("trg")


def targets(stack, login=True):
    env = stack.env
    out = [
        {"name": "backend_health", "url": stack.url("backend", "/health/ready"), "kind": "health"},
        {"name": "api_projects", "url": stack.url("backend", "/api/v1/projects"), "use_api_key": True},
        {"name": "frontend", "url": stack.url("frontend", "/")},
    ]
    if login:
        out.append({"name": "auth_login", "url": stack.url("backend", "/api/v1/auth/login"),
                    "headers": {"Content-Type": "application/json"},
                    "body": json.dumps({"username": env["TD_ADMIN_USERNAME"], "password": env["TD_ADMIN_PASSWORD"]})})
    return out


def trigger(stack, **args):
    payload = {"targets": targets(stack), "api_key": stack.env["TD_API_KEY"], "window": 4}
    payload.update(args)
    return run_module("rollback_trigger", payload, check_mode=True)


def no_secret(stack, result):
    text = json.dumps(result)
    env = stack.env
    assert env["TD_API_KEY"] not in text
    assert env["TD_ADMIN_PASSWORD"] not in text


def good(stack):
    stack.deploy("v1", "none", "--no-backup", "--wait", "60")


def test_good_stack_does_not_trigger(stack):
    result = trigger(stack)
    assert not result["failed"], result["msg"]
    assert result["changed"] is False
    assert result["rollback"] is False, result["reasons"]
    figures = result["figures"]
    assert figures["targets"]["api_projects"]["requests"] > 5
    assert figures["targets"]["api_projects"]["errors"] == 0
    assert figures["targets"]["backend_health"]["requests"] >= 3
    assert figures["sampled_s"] >= 3.5
    assert any("p95_degradation" in line for line in result["skipped"])
    no_secret(stack, result)


def test_faults_trigger(stack):
    """Each bad build of v2, one after the other, then v1 back."""
    try:
        for fault, extra, trig in (("unhealthy", (), "unavailable"),
                                   ("errors", ("--error-rate", "0.3"), "error_rate"),
                                   ("crash", (), "unavailable")):
            stack.deploy("v2", fault, "--no-backup", *extra)
            # The bad build answers (crash: it has had its start) before the sampling begins.
            if fault != "crash":
                stack.wait_answering("backend", "/health/live")
            result = trigger(stack, window=15)
            assert not result["failed"], result["msg"]
            assert result["rollback"] is True, (fault, result)
            assert trig in [r["trigger"] for r in result["reasons"]], (fault, result["reasons"])
            # Detection is fast: the sampling stopped as soon as the verdict was sure.
            assert result["figures"]["stopped_early"] is True, fault
            assert result["decided_after_s"] < 10, fault
            no_secret(stack, result)
    finally:
        good(stack)


def test_slow_against_baseline(stack, tmp_path):
    """A baseline recorded at the same speed does not fire; one of a fast build (the slow build's
    p95 is more than twice it) fires p95_degradation."""
    stack.deploy("v2", "slow", "--no-backup", "--delay", "0.3")
    stack.wait_answering("backend", "/health/live", timeout=60)
    try:
        slow_targets = targets(stack, login=False)
        first = trigger(stack, targets=slow_targets, window=8)
        same = {"version": 1, "recorded_at": "2026-01-01T00:00:00+00:00", "images": {},
                "targets": {name: {"p50_ms": fig["p50_ms"], "p95_ms": fig["p95_ms"], "error_rate": fig["error_rate"]}
                            for name, fig in first["figures"]["targets"].items() if fig["kind"] == "request"}}
        fast = json.loads(json.dumps(same))
        fast["targets"]["api_projects"].update(p50_ms=10.0, p95_ms=same["targets"]["api_projects"]["p50_ms"] / 2.5)
        (tmp_path / "fast.json").write_text(json.dumps(fast))
        (tmp_path / "same.json").write_text(json.dumps(same))
        result = trigger(stack, targets=slow_targets, baseline=str(tmp_path / "same.json"), window=8)
        assert [r for r in result["reasons"] if r["trigger"] == "p95_degradation"] == [], result["reasons"]
        assert result["baseline"]["path"] == str(tmp_path / "same.json")
        result = trigger(stack, targets=slow_targets, baseline=str(tmp_path / "fast.json"), window=8)
        assert result["rollback"] is True, result
        assert "api_projects" in [r["target"] for r in result["reasons"] if r["trigger"] == "p95_degradation"]
    finally:
        good(stack)


def test_bad_arguments_fail_before_sampling(stack, tmp_path):
    result = run_module("rollback_trigger", {"targets": [{"name": "x", "url": "ftp://h/"}], "window": 0,
                                             "baseline": str(tmp_path / "missing.json")})
    assert result["failed"]
    assert "window" in result["msg"] and "targets[0] (x)" in result["msg"]
    result = run_module("rollback_trigger", {"targets": targets(stack)[:1], "baseline": str(tmp_path / "missing.json")})
    assert result["failed"] and "baseline" in result["msg"] and "playbooks/baseline.yml" in result["msg"]
