"""Fault matrix, automatic rollback (playbooks/watchdog.yml) on the shared reference stack. Each
test's docstring is its row of the matrix: ``Fault: ... -> Outcome: ...`` (``python
tests/faults/table.py`` prints them). The verdict is handed over the way the Event-Driven Ansible
rule does (``watchdog_verdict``), so no case waits for a sampling; every case asserts what changed
(nothing, or the failed rollback's report and escalation) and that the lock is free afterwards."""
from __future__ import annotations

import json
import re
import socket
import time

import pytest

from conftest import run_module

from .conftest import assert_lock_free, assert_report_names_first_cause

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PLAYBOOK = "watchdog.yml"
VERDICT = {"rollback": True, "figures": {"sampled_s": 2.0},
           "reasons": [{"trigger": "unavailable", "target": "backend_health", "value": 3, "threshold": 3,
                        "detail": "backend_health failed 3 consecutive health checks (HTTP 503)"}]}


def _state(fs):
    return fs.dir / ".watchdog_state.json"


def test_trigger_while_a_rollback_holds_the_lock(fault_stack):
    """Fault: a trigger fires while another rollback holds the lock -> Outcome: nothing changes
    (tags, containers, files); the run succeeds and names the holder; no cooldown is started; the
    other rollback's lock is left alone."""
    fs = fault_stack
    fs.reset(running="v2", previous="v1", fault="unhealthy")
    _state(fs).unlink(missing_ok=True)
    taken = run_module("rollback_lock", {"path": str(fs.lock), "holder": "bob (AWX job 12)", "reason": "manual rollback"})
    assert taken["acquired"], taken
    try:
        before = fs.snapshot()
        case = fs.case_dir("watchdog-lock-held")
        proc = fs.run(PLAYBOOK, case, watchdog_verdict=VERDICT)
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert "is held by bob (AWX job 12)" in proc.stdout and "doing nothing" in proc.stdout
        assert fs.snapshot() == before
        assert not _state(fs).exists()
        assert json.loads(fs.lock.read_text())["holder"] == "bob (AWX job 12)"
    finally:
        fs.lock.unlink(missing_ok=True)


def test_trigger_on_a_stack_that_already_runs_its_previous_images(fault_stack):
    """Fault: a trigger fires on a stack that already runs its previous images (rolled back by hand
    or by another watchdog) -> Outcome: nothing changes (tags, containers, files); the run succeeds
    and says there is nothing to roll back to; no cooldown is started, no report; lock free."""
    fs = fault_stack
    fs.reset(running="v1", previous="v1")
    _state(fs).unlink(missing_ok=True)
    before = fs.snapshot()
    case = fs.case_dir("watchdog-already-previous")
    proc = fs.run(PLAYBOOK, case, watchdog_verdict=VERDICT)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert re.search(r"the stack already runs its previous images \(backend, frontend\): nothing to roll back to; "
                     r"doing nothing", proc.stdout), proc.stdout[-3000:]
    assert fs.snapshot() == before
    assert not _state(fs).exists()
    assert not list(case.glob("rollbacks/*"))
    assert_lock_free(fs)


def test_trigger_without_a_previous_image(fault_stack):
    """Fault: a trigger fires on a stack with no previous image -> Outcome: the rollback fails in
    the preflight before any change; lock free; report FAILED naming the missing image; escalated
    (emergency.log); the cooldown is not started by a rollback that never began."""
    fs = fault_stack
    fs.reset(running="v2", previous=None, fault="unhealthy")
    _state(fs).unlink(missing_ok=True)
    before = fs.snapshot()
    case = fs.case_dir("watchdog-no-previous")
    proc = fs.run(PLAYBOOK, case, watchdog_verdict=VERDICT)
    assert proc.returncode != 0
    assert fs.snapshot()["tags"] == before["tags"] and fs.snapshot()["containers"] == before["containers"]
    assert_lock_free(fs)
    data = assert_report_names_first_cause(case, r"not found locally")
    assert "Automatic rollback by the watchdog" in json.dumps(data)
    assert (case / "emergency.log").exists()


def test_trigger_again_within_the_cooldown(fault_stack):
    """Fault: a trigger fires again right after an automatic rollback (a flapping service, or the
    rollback's own restart) -> Outcome: no second rollback (no rollback of the rollback); nothing
    changes; the run says when the last one ran and that watchdog_cooldown holds."""
    fs = fault_stack
    fs.reset(running="v2", previous="v1", fault="unhealthy")
    _state(fs).write_text(json.dumps({"last_rollback_at": "just now", "last_rollback_epoch": time.time() - 5,
                                      "reasons": VERDICT["reasons"], "outcome": "succeeded"}))
    try:
        before = fs.snapshot()
        case = fs.case_dir("watchdog-cooldown")
        proc = fs.run(PLAYBOOK, case, watchdog_verdict=VERDICT)
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert "within watchdog_cooldown=1800 s" in proc.stdout and "doing nothing" in proc.stdout
        after = fs.snapshot()
        assert after["tags"] == before["tags"] and after["containers"] == before["containers"]
    finally:
        _state(fs).unlink(missing_ok=True)


def test_malformed_verdict(fault_stack):
    """Fault: the Event-Driven Ansible rule hands over a malformed verdict -> Outcome: fails in the
    preflight naming watchdog_verdict; nothing changes; no lock taken."""
    fs = fault_stack
    fs.reset(running="v2", previous="v1", fault="unhealthy")
    before = fs.snapshot()
    case = fs.case_dir("watchdog-bad-verdict")
    proc = fs.run(PLAYBOOK, case, watchdog_verdict={"rollback": "maybe", "reasons": "x"})
    assert proc.returncode != 0
    assert "watchdog_verdict - must be a dict with rollback" in proc.stdout
    assert fs.snapshot() == before
    assert not fs.lock.exists()


# ---------------------------------------------------------------- the baseline and the timer

def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_baseline_with_no_stack_answering(fault_stack):
    """Fault: the baseline is recorded while nothing answers (the stack is down, or the URLs point
    nowhere) -> Outcome: the run fails naming the unavailable targets and that a broken stack is not
    recorded as the norm; no baseline file is written; nothing changes."""
    fs = fault_stack
    fs.reset()
    dead = "http://127.0.0.1:%d" % _closed_port()
    before = fs.snapshot()
    case = fs.case_dir("baseline-nothing-answers")
    proc = fs.run("baseline.yml", case, baseline_window=4, stack_api_url=dead,
                  stack_services=[dict(service, health_url=dead + "/health/ready") for service in fs.stack.stack_vars()["stack_services"]])
    assert proc.returncode != 0
    assert re.search(r"Not recording a baseline: the stack is not healthy - .*failed \d+ consecutive health checks", proc.stdout), \
        proc.stdout[-3000:]
    assert "baseline_force" in proc.stdout
    assert not (fs.dir / ".rollback_baseline.json").exists()
    assert fs.snapshot() == before


def test_baseline_into_a_directory_that_cannot_hold_it(fault_stack):
    """Fault: the baseline's directory is not a directory (a file in its place, or a path that does
    not exist) -> Outcome: fails in the preflight before any sampling, naming baseline_file and the
    directory; nothing is written; nothing changes. (An unwritable directory is named the same way;
    not tested here: the tests run as root, who writes anywhere.)"""
    fs = fault_stack
    fs.reset()
    before = fs.snapshot()
    case = fs.case_dir("baseline-bad-dir")
    proc = fs.run("baseline.yml", case, baseline_file=str(fs.dir / ".env" / "baseline.json"))
    assert proc.returncode != 0
    assert "baseline_file=%s - its directory %s is not a directory" % (fs.dir / ".env" / "baseline.json", fs.dir / ".env") in proc.stdout, \
        proc.stdout[-3000:]
    assert "Sample the stack" not in proc.stdout
    proc = fs.run("baseline.yml", case, baseline_file=str(case / "nosuch" / "baseline.json"))
    assert proc.returncode != 0 and "does not exist" in proc.stdout
    assert fs.snapshot() == before


def _timer_vars(fs, case, **more):
    units = case / "units"
    units.mkdir(exist_ok=True)
    return dict(dict(watchdog_timer_unit_dir=str(units), watchdog_timer_inventory=str(fs.inventory),
                     watchdog_timer_name="tdflt-watchdog", watchdog_timer_manage_systemd=False), **more)


def test_timer_with_a_bad_interval(fault_stack):
    """Fault: the watchdog timer is installed with an interval of 0 (or not a number) -> Outcome:
    fails in the preflight naming watchdog_timer_interval and its value; no unit is written."""
    fs = fault_stack
    for bad, said in ((0, "watchdog_timer_interval=0"), ("soon", "watchdog_timer_interval")):
        case = fs.case_dir("timer-bad-interval")
        proc = fs.run("watchdog_timer.yml", case, **_timer_vars(fs, case, watchdog_timer_interval=bad))
        assert proc.returncode != 0
        assert said in proc.stdout, proc.stdout[-3000:]
        assert list((case / "units").iterdir()) == []


def test_timer_with_an_unknown_playbook(fault_stack):
    """Fault: the watchdog timer names a playbook that does not exist (not in this collection, or no
    such file) -> Outcome: fails in the preflight naming watchdog_timer_playbook (and this
    collection's playbooks); no unit is written, so systemd never starts a run that fails every
    interval."""
    fs = fault_stack
    case = fs.case_dir("timer-unknown-playbook")
    proc = fs.run("watchdog_timer.yml", case, **_timer_vars(fs, case, watchdog_timer_playbook="taylordash.rollback.nosuch"))
    assert proc.returncode != 0
    assert "watchdog_timer_playbook=taylordash.rollback.nosuch - this collection has no such playbook (it has: " in proc.stdout, \
        proc.stdout[-3000:]
    assert "watchdog, watchdog_timer" in proc.stdout
    assert list((case / "units").iterdir()) == []
    proc = fs.run("watchdog_timer.yml", case, **_timer_vars(fs, case, watchdog_timer_playbook=str(case / "nosuch.yml")))
    assert proc.returncode != 0
    assert "watchdog_timer_playbook=%s - %s does not exist on localhost" % (case / "nosuch.yml", case / "nosuch.yml") in proc.stdout
    assert list((case / "units").iterdir()) == []
    # the same settings with the installed playbook pass the preflight and write both units
    case = fs.case_dir("timer-known-playbook")
    proc = fs.run("watchdog_timer.yml", case, **_timer_vars(fs, case))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert sorted(p.name for p in (case / "units").iterdir()) == ["tdflt-watchdog.service", "tdflt-watchdog.timer"]
