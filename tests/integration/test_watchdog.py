"""playbooks/watchdog.yml and playbooks/baseline.yml against one reference stack shared by the
module's tests (each test sets the state it needs): a good stack does not trigger; a bad deploy
is rolled back (--check first: nothing changes), then the cooldown holds; a held lock is respected;
the baseline is recorded (--check writes nothing)."""
from __future__ import annotations

import json
import urllib.request

import pytest

from conftest import run_module

try:
    from .rollback_env import PlaybookStack
except ImportError:
    from rollback_env import PlaybookStack

pytestmark = pytest.mark.integration

# The validation's response-time targets are not what these tests are about; a busy CI host must
# not fail them.
FAST = {"validate_perf_samples": 3, "validate_perf_warmup": 0, "validate_perf_api_target": 10,
        "validate_perf_auth_target": 10, "validate_perf_frontend_target": 10, "watchdog_window": 5}
VERDICT = {"rollback": True, "figures": {"sampled_s": 2.0},
           "reasons": [{"trigger": "unavailable", "target": "backend_health", "value": 3, "threshold": 3,
                        "detail": "backend_health failed 3 consecutive health checks (HTTP 503)"}]}


@pytest.fixture(scope="module")
def pstack(module_stack_factory, tmp_path_factory):
    stack = module_stack_factory("wdg")
    return PlaybookStack(stack, tmp_path_factory.mktemp("wdg"))


def bad_deploy(ps, fault="unhealthy"):
    ps.stack.deploy("v2", fault, "--no-backup")
    ps.stack.wait_answering("backend", "/health/live")


def good_deploy(ps):
    ps.stack.deploy("v1", "none", "--no-backup", "--wait", "60")
    (ps.dir / ".watchdog_state.json").unlink(missing_ok=True)


def run(ps, tmp_path, check=False, **extra):
    return ps.run("watchdog.yml", dict(FAST, report_dir=str(tmp_path), **extra), check=check)


def version(ps):
    with urllib.request.urlopen(ps.stack.url("backend", "/health/ready"), timeout=3) as resp:
        return json.load(resp)["version"]


def test_baseline_and_good_stack(pstack, tmp_path):
    ps = pstack
    baseline = ps.dir / ".rollback_baseline.json"
    before = ps.tree()
    proc = ps.run("baseline.yml", {"baseline_window": 3}, check=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "would write" in proc.stdout and ps.tree() == before
    proc = ps.run("baseline.yml", {"baseline_window": 3})
    assert proc.returncode == 0, proc.stdout[-3000:]
    data = json.loads(baseline.read_text())
    assert data["version"] == 1 and set(data["targets"]) == {"auth_login", "api_projects", "frontend"}
    assert data["targets"]["api_projects"]["p95_ms"] > 0
    assert data["images"]["backend"] == ps.stack.container_image_id("backend")
    for secret in ps.secrets:
        assert secret not in baseline.read_text() and secret not in proc.stdout

    tags = ps.stack.tags()
    proc = run(ps, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Watchdog (sampled): no trigger fired" in proc.stdout
    assert ps.stack.tags() == tags and not (ps.dir / ".watchdog_state.json").exists()


def test_bad_deploy_check_then_rollback_then_cooldown(pstack, tmp_path):
    ps = pstack
    bad_deploy(ps)
    try:
        tags, before = ps.stack.tags(), ps.tree()
        proc = run(ps, tmp_path / "check", check=True)
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert "rolling back to the previous images (check mode: nothing changes)" in proc.stdout
        assert ps.stack.tags() == tags and ps.tree() == before

        proc = run(ps, tmp_path / "real")
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert "trigger fired (backend_health failed 3 consecutive health checks (HTTP 503)" in proc.stdout
        assert version(ps) == "v1"
        state = json.loads((ps.dir / ".watchdog_state.json").read_text())
        assert state["outcome"] == "succeeded" and state["reasons"][0]["trigger"] == "unavailable"
        report = next((tmp_path / "real").glob("rollbacks/*/rollback_report_*.json"))
        text = report.read_text()
        assert "Automatic rollback by the watchdog" in text and "backend_health failed 3 consecutive" in text
        for secret in ps.secrets:
            assert secret not in text and secret not in proc.stdout

        # The same bad build again at once: the cooldown holds, nothing changes, and it says so.
        bad_deploy(ps)
        tags = ps.stack.tags()
        proc = run(ps, tmp_path / "again")
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert "within watchdog_cooldown=1800 s" in proc.stdout and "doing nothing" in proc.stdout
        assert ps.stack.tags() == tags and version_or_none(ps) != "v1"
    finally:
        good_deploy(ps)


def version_or_none(ps):
    try:
        return version(ps)
    except (OSError, ValueError):
        return None


def test_held_lock_is_respected(pstack, tmp_path):
    """An EDA verdict (no sampling) while another rollback holds the lock: nothing changes, it says so."""
    ps = pstack
    bad_deploy(ps, "errors")
    lock = ps.dir / ".rollback.lock"
    try:
        taken = run_module("rollback_lock", {"path": str(lock), "holder": "alice (AWX job 7)", "reason": "manual rollback"})
        assert taken["acquired"], taken
        tags, before = ps.stack.tags(), ps.tree()
        proc = run(ps, tmp_path, watchdog_verdict=VERDICT)
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert "Watchdog (handed over (watchdog_verdict))" in proc.stdout
        assert "is held by alice (AWX job 7) (manual rollback" in proc.stdout and "doing nothing" in proc.stdout
        assert ps.stack.tags() == tags and ps.tree() == before
    finally:
        lock.unlink(missing_ok=True)
        good_deploy(ps)


def test_bad_settings_fail_before_sampling(pstack, tmp_path):
    ps = pstack
    proc = run(ps, tmp_path, watchdog_window=0, watchdog_verdict=None, watchdog_baseline_file=str(tmp_path / "none.json"))
    assert proc.returncode != 0
    assert "watchdog_window=0" in proc.stdout
    proc = run(ps, tmp_path, watchdog_verdict={"reasons": "x"})
    assert proc.returncode != 0 and "watchdog_verdict - must be a dict" in proc.stdout
