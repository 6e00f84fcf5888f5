"""playbooks/rollback_immediate.yml against real reference stacks after a bad deploy, in the
check -> real -> check -> idempotent rhythm, and the failure cases of the issue: target image
missing, health that never recovers, a second rollback while one runs, a container that fails
to start."""
from __future__ import annotations

import json
import re
import threading
import time
import urllib.request

import pytest

from conftest import REPO, run_module, run_playbook, write_inventory

pytestmark = pytest.mark.integration

PLAYBOOK = REPO / "playbooks" / "rollback_immediate.yml"
RECAP = re.compile(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


def recap(proc):
    match = RECAP.search(proc.stdout)
    assert match, proc.stdout[-3000:]
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


def summary(proc):
    """The lines of the 'Summarise the immediate rollback' task."""
    block = proc.stdout.split("Summarise the immediate rollback", 1)[1]
    return re.findall(r'^\s+"(Immediate rollback: .*|backend: .*|frontend: .*|Steps: .*)",?$', block, re.M)


def health(stack):
    try:
        with urllib.request.urlopen(stack.url("backend", "/health/ready"), timeout=3) as resp:
            return resp.status, json.load(resp)
    except Exception as exc:  # noqa: BLE001 - any failure means not healthy
        return None, str(exc)


def rollback(stack, tmp_path, check=False, **overrides):
    # The validation and the report are tested in their own files; a short latency sample keeps
    # these rollback tests fast.
    overrides = dict({"validate_perf_samples": 3, "validate_perf_warmup": 0}, **overrides)
    return run_playbook(PLAYBOOK, extra_vars=stack.stack_vars(**overrides), check=check, diff=check,
                        inventory=write_inventory(tmp_path), vars_files=[stack.secrets_file(tmp_path)])


@pytest.fixture
def bad_deploy(stack_factory):
    """A stack at v1 after a bad v2 deploy (5xx on half of the requests)."""
    stack = stack_factory("imm")
    stack.deploy("v2", "errors", "--error-rate", "0.5")
    return stack


def test_check_real_check_idempotent(bad_deploy, tmp_path):
    stack = bad_deploy
    prefix = stack.env["TD_IMAGE_PREFIX"]
    v1, v2 = stack.image_id("tdref_backend:v1"), stack.image_id("tdref_backend:v2")
    fv1 = stack.image_id("tdref_frontend:v1")
    tags_before, containers_before = stack.tags(), stack.containers()

    # 1. check mode: runs to the end, changes nothing, says what would move and be recreated
    proc = rollback(stack, tmp_path, check=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert stack.tags() == tags_before and stack.containers() == containers_before
    assert recap(proc)["changed"] >= 1  # the retag task would move both tags
    assert f"{prefix}_backend:previous {v1[7:19]}" in proc.stdout
    assert "would be recreated" in proc.stdout
    assert v1 in proc.stdout and v2 in proc.stdout  # the diff names the image IDs
    assert not (stack.dir / ".rollback.lock").exists()

    # 2. for real
    started = time.monotonic()
    proc = rollback(stack, tmp_path)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-4000:]
    tags = stack.tags()
    assert tags[f"{prefix}_backend:latest"] == v1 and tags[f"{prefix}_frontend:latest"] == fv1
    kept = [ref for ref in tags if re.search(r":rollback-\d{8}T\d{6}Z$", ref)]
    assert sorted(ref.split(":")[0] for ref in kept) == [f"{prefix}_backend", f"{prefix}_frontend"]
    assert tags[[r for r in kept if "backend" in r][0]] == v2  # the bad build is kept
    containers = stack.containers()
    assert containers["backend"][1] == v1 and containers["frontend"][1] == fv1
    assert containers["postgres"] == containers_before["postgres"]  # dependencies untouched
    status, body = health(stack)
    assert status == 200 and body["version"] == "v1"
    lines = summary(proc)
    assert lines[0] == "Immediate rollback: succeeded"
    assert any(line.startswith(f"backend: {prefix}_backend {v2[7:19]} -> {v1[7:19]}, bad build kept as ") and
               "recreated, healthy after" in line for line in lines), lines
    assert re.match(r"Steps: retag images [\d.]+ s, recreate containers [\d.]+ s, poll health [\d.]+ s", lines[-1])
    assert not (stack.dir / ".rollback.lock").exists()
    print(f"real rollback: {elapsed:.2f}s")

    # 3. check mode again: nothing would change
    proc = rollback(stack, tmp_path, check=True)
    assert proc.returncode == 0 and stack.tags() == tags
    assert "(already the target)" in proc.stdout

    # 4. again for real: idempotent
    proc = rollback(stack, tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert recap(proc)["changed"] == 0, proc.stdout[-4000:]
    assert stack.tags() == tags and stack.containers() == containers


def test_single_service_to_a_release_tag(bad_deploy, tmp_path):
    stack = bad_deploy
    prefix = stack.env["TD_IMAGE_PREFIX"]
    fv2 = stack.image_id("tdref_frontend:v2")
    frontend_before = stack.containers()["frontend"]
    proc = rollback(stack, tmp_path, stack_target_services=["backend"], stack_target_tag="v1",
                    immediate_keep_as="")
    assert proc.returncode == 0, proc.stdout[-4000:]
    tags = stack.tags()
    assert tags[f"{prefix}_backend:latest"] == stack.image_id("tdref_backend:v1")
    assert tags[f"{prefix}_frontend:latest"] == fv2  # untouched
    assert stack.containers()["frontend"] == frontend_before
    assert not [ref for ref in tags if ":rollback-" in ref]  # keep_as "" keeps nothing
    assert health(stack)[1]["version"] == "v1"


def test_missing_previous_image_fails_before_touching_anything(stack_factory, tmp_path):
    stack = stack_factory("nop")  # up at v1, never deployed: there is no :previous
    tags, containers = stack.tags(), stack.containers()
    proc = rollback(stack, tmp_path)
    assert proc.returncode != 0
    assert "Rollback target image(s) not found locally" in proc.stdout
    assert f"{stack.name}_backend:previous" in proc.stdout and "available tags" in proc.stdout
    assert stack.tags() == tags and stack.containers() == containers
    assert not (stack.dir / ".rollback.lock").exists()
    assert "Immediate rollback: FAILED" in proc.stdout


def _previous_is_bad(stack_factory, fault):
    """A stack whose :previous is the bad v2 build (with `fault`) and :latest the good v1."""
    stack = stack_factory("prv", version=None)
    stack.ctl("up", "--dir", str(stack.dir), "--version", "v2", "--wait", "0")
    stack.ctl("fault", "--dir", str(stack.dir), fault)
    stack.deploy("v1", fault)  # .env keeps the fault; the good build ignores it
    return stack


def test_health_never_recovers(stack_factory, tmp_path):
    stack = _previous_is_bad(stack_factory, "unhealthy")
    started = time.monotonic()
    proc = rollback(stack, tmp_path, immediate_health_timeout=3)
    assert time.monotonic() - started < 30
    assert proc.returncode != 0
    assert "Immediate rollback: FAILED" in proc.stdout
    assert "did not become healthy" in proc.stdout or "503" in proc.stdout
    assert not (stack.dir / ".rollback.lock").exists()
    assert "Release the rollback lock" in proc.stdout


def test_container_that_fails_to_start(stack_factory, tmp_path):
    stack = _previous_is_bad(stack_factory, "crash")
    proc = rollback(stack, tmp_path, immediate_health_timeout=3)
    assert proc.returncode != 0
    assert "Immediate rollback: FAILED" in proc.stdout
    assert not (stack.dir / ".rollback.lock").exists()


def test_second_rollback_while_one_runs(bad_deploy, tmp_path):
    stack = bad_deploy
    lock_path = str(stack.dir / ".rollback.lock")
    held = run_module("rollback_lock", {"path": lock_path, "state": "present",
                                        "holder": "alice via AWX job 7", "reason": "first rollback"})
    assert held["acquired"], held
    tags, containers = stack.tags(), stack.containers()
    try:
        started = time.monotonic()
        proc = rollback(stack, tmp_path, stack_lock_wait=2)
        waited = time.monotonic() - started
        assert proc.returncode != 0
        assert "alice via AWX job 7" in proc.stdout and "first rollback" in proc.stdout
        assert waited >= 2
        assert stack.tags() == tags and stack.containers() == containers
        # the first holder's lock is still there: the second run released only its own
        assert json.loads(open(lock_path).read())["holder"] == "alice via AWX job 7"
    finally:
        run_module("rollback_lock", {"path": lock_path, "state": "absent", "token": held["lock"]["token"]})

    # once the first rollback releases during the wait, the second goes ahead
    held = run_module("rollback_lock", {"path": lock_path, "state": "present", "holder": "bob", "reason": "r"})
    releaser = threading.Timer(1.0, run_module, args=("rollback_lock", {
        "path": lock_path, "state": "absent", "token": held["lock"]["token"]}))
    releaser.start()
    proc = rollback(stack, tmp_path, stack_lock_wait=20)
    releaser.join()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert health(stack)[1]["version"] == "v1"


def stack_files(stack) -> dict:
    """The stack's files with size and mtime, except the rollback's own documentation (report
    archive, history log and emergency.log, written for a failed run too)."""
    out = {}
    for path in sorted(stack.dir.rglob("*")):
        rel = path.relative_to(stack.dir)
        if path.is_file() and rel.parts[0] not in ("rollbacks", "rollback_history.log", "emergency.log"):
            out[str(rel)] = (path.stat().st_size, path.stat().st_mtime_ns)
    return out


def test_bad_settings_change_nothing(bad_deploy, tmp_path):
    """Issue 10: every role checks all its settings before its first change; the message names
    only the broken settings, each with its value."""
    stack = bad_deploy
    tags, containers = stack.tags(), stack.containers()
    files = stack_files(stack)

    # the immediate role: its first change would be the retag
    proc = rollback(stack, tmp_path, immediate_health_timeout=-1, immediate_health_successes=0)
    assert proc.returncode != 0
    assert "immediate_health_timeout=-1" in proc.stdout and "immediate_health_successes=0" in proc.stdout
    assert "immediate_health_interval" not in proc.stdout.split("Bad immediate rollback settings", 1)[1].split("\n", 1)[0]
    assert "nothing was changed" in proc.stdout
    assert "Point each service's current tag back" not in proc.stdout
    assert stack.tags() == tags and stack.containers() == containers
    assert not (stack.dir / ".rollback.lock").exists()

    # NaN and infinity are numbers to the argument spec, not to the rollback
    proc = rollback(stack, tmp_path, immediate_health_timeout="nan")
    assert proc.returncode != 0 and "immediate_health_timeout=nan" in proc.stdout
    assert stack.tags() == tags and stack.containers() == containers

    # the stack role: before the lock and the snapshot
    proc = rollback(stack, tmp_path, stack_lock_ttl=0, stack_current_tag="../x")
    assert proc.returncode != 0
    assert "Bad stack settings" in proc.stdout
    assert "stack_lock_ttl=0" in proc.stdout and "stack_current_tag=../x" in proc.stdout
    assert "Take the rollback lock" not in proc.stdout
    assert stack.tags() == tags and stack.containers() == containers
    assert stack_files(stack) == files


def test_a_failed_health_step_still_reports_the_retag(stack_factory, tmp_path):
    """Issue 10 item 7: after the retag and a failed health step, the changes name the moved tag
    and the tag that keeps the replaced image, so the operator can roll forward."""
    stack = _previous_is_bad(stack_factory, "unhealthy")
    prefix = stack.env["TD_IMAGE_PREFIX"]
    good = stack.image_id(f"{prefix}_backend:latest")
    proc = rollback(stack, tmp_path, immediate_health_timeout=3, immediate_keep_as="before-rollback")
    assert proc.returncode != 0
    assert stack.image_id(f"{prefix}_backend:before-rollback") == good
    lines = summary(proc)
    assert lines[0].startswith("Immediate rollback: FAILED")
    backend = [line for line in lines if line.startswith("backend: ")]
    assert backend and f"bad build kept as {prefix}_backend:before-rollback" in backend[0], lines
    # the steps that were done; the failed health step is named in the failure
    assert re.match(r"Steps: retag images [\d.]+ s, recreate containers [\d.]+ s$", lines[-1]), lines
    reports = sorted(stack.dir.glob("rollbacks/*/rollback_report_*.json"))
    assert reports
    report = json.loads(reports[-1].read_text())
    assert "before-rollback" in json.dumps(report)
