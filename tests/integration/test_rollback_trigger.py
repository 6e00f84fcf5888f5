"""rollback_trigger against the reference stack: each fault of v2 fires its trigger, a good
stack does not, and no secret reaches the result. One stack for the module (the faults are
deployed one after another, and v1 put back between them)."""
from __future__ import annotations

import json
import os

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


def _overloaded():
    return os.getloadavg()[0] > (os.cpu_count() or 1)


def _warm(stack, slow_targets):
    """A few seconds of requests, not judged: a build just started answers its first requests slower
    (a cold process), which is not the build's speed."""
    trigger(stack, targets=slow_targets, window=3, stop_early=False)


@pytest.mark.latency
def test_slow_2x_fires_and_1_2x_does_not(stack, tmp_path):
    """Issue 15: a baseline recorded on the good v1, then the bad v2 ``--fault slow`` with a delay of
    the baseline p95 of the API (answers twice as slow) fires p95_degradation on the API; a delay of a
    fifth of it (1.2x) fires no p95 trigger. The noise guard scales with the baseline, so this holds on
    a fast stack (a p95 of a few tens of ms) as on a slow one."""
    slow_targets = targets(stack, login=False)
    _warm(stack, slow_targets)
    first = trigger(stack, targets=slow_targets, window=10, stop_early=False)
    if first["rollback"] and _overloaded():
        pytest.skip("host overloaded (load average %s above the core count): the good v1 itself fired %s"
                    % (os.getloadavg(), [r["detail"] for r in first["reasons"]]))
    assert first["rollback"] is False, first["reasons"]
    base = {"version": 1, "recorded_at": "2026-01-01T00:00:00+00:00", "images": {},
            "targets": {name: {"p50_ms": fig["p50_ms"], "p95_ms": fig["p95_ms"], "error_rate": fig["error_rate"]}
                        for name, fig in first["figures"]["targets"].items() if fig["kind"] == "request"}}
    (tmp_path / "baseline.json").write_text(json.dumps(base))
    api_p95 = base["targets"]["api_projects"]["p95_ms"]
    seen = {}
    try:
        for label, factor in (("2x", 1.0), ("1.2x", 0.2)):
            stack.deploy("v2", "slow", "--no-backup", "--delay", "%.3f" % (api_p95 * factor / 1000.0))
            stack.wait_answering("backend", "/health/live", timeout=60)
            _warm(stack, slow_targets)
            result = trigger(stack, targets=slow_targets, baseline=str(tmp_path / "baseline.json"), window=10, stop_early=False)
            assert not result["failed"], result["msg"]
            seen[label] = (result["figures"]["targets"]["api_projects"], [r for r in result["reasons"] if r["trigger"].startswith("p95")])
    finally:
        good(stack)
    fired_2x = "api_projects" in [r["target"] for r in seen["2x"][1] if r["trigger"] == "p95_degradation"]
    quiet_1_2x = seen["1.2x"][1] == []
    figures = {"baseline": base["targets"]["api_projects"], "2x": seen["2x"], "1.2x": seen["1.2x"], "load": os.getloadavg()}
    if not (fired_2x and quiet_1_2x) and _overloaded():
        # A latency comparison needs the CPU the stack answers with: on an overloaded host every wake-up
        # of the slow build's sleep waits for a core, and the shift measured is the host's, not the build's.
        pytest.skip("host overloaded (load average above the core count): latency comparison not judged: %s" % figures)
    assert fired_2x, figures
    assert quiet_1_2x, figures


def test_bad_arguments_fail_before_sampling(stack, tmp_path):
    result = run_module("rollback_trigger", {"targets": [{"name": "x", "url": "ftp://h/"}], "window": 0,
                                             "baseline": str(tmp_path / "missing.json")})
    assert result["failed"]
    assert "window" in result["msg"] and "targets[0] (x)" in result["msg"]
    result = run_module("rollback_trigger", {"targets": targets(stack)[:1], "baseline": str(tmp_path / "missing.json")})
    assert result["failed"] and "baseline" in result["msg"] and "playbooks/baseline.yml" in result["msg"]
