"""Fault matrix, image rollback path (playbooks/rollback_immediate.yml) on the shared reference
stack. Each test's docstring is its row of the matrix: ``Fault: ... -> Outcome: ...``
(``python tests/faults/table.py`` prints them). Every case asserts that nothing is lost (the
stack's image IDs still tagged, its files unchanged), that the lock is free afterwards, and that
the report names the first cause."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import VENV_BIN, ansible_env, run_module

from .conftest import (PLAYBOOKS, assert_images_kept, assert_lock_free, assert_report_names_first_cause,
                       report_of)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PLAYBOOK = "rollback_immediate.yml"
RECREATE_TASK = "TASK [taylordash.rollback.immediate : Point each service's current tag back"  # the retag and the recreate: one task


def kept_tags(tags: dict) -> dict:
    return {ref: image for ref, image in tags.items() if re.search(r":rollback-", ref)}


def test_previous_image_missing(fault_stack):
    """Fault: previous image missing (no :previous tag) -> Outcome: fails in the preflight before
    any change (tags, containers and files as before); lock free; report FAILED naming the missing
    image."""
    fs = fault_stack
    fs.reset(running="v1", previous=None)
    before = fs.snapshot()
    case = fs.case_dir("previous-missing")
    proc = fs.run(PLAYBOOK, case)
    assert proc.returncode != 0
    assert fs.snapshot() == before
    assert_lock_free(fs)
    data = assert_report_names_first_cause(case, r"not found locally")
    assert f"{fs.prefix}_backend:previous" in data["failure"]
    assert data["changes"] == []


def _failed_recreate_case(fs, fault: str, name: str):
    """:latest is the good v1 (running), :previous the bad v2 with `fault`: the rollback moves the
    tags, recreates, and the health step fails."""
    fs.reset(running="v1", previous="v2", fault=fault)
    before = fs.snapshot()
    case = fs.case_dir(name)
    started = time.monotonic()
    proc = fs.run(PLAYBOOK, case, immediate_health_timeout=3)
    elapsed = time.monotonic() - started
    assert proc.returncode != 0
    assert elapsed < 90, elapsed
    after = fs.snapshot()
    assert_images_kept(before["tags"], after["tags"])
    assert after["files"] == before["files"]
    kept = kept_tags(after["tags"])
    # the good build that ran before the rollback is kept under its rollback-<ts> tag
    assert sorted(ref.split(":")[0] for ref in kept) == [f"{fs.prefix}_backend", f"{fs.prefix}_frontend"]
    assert before["tags"][f"{fs.prefix}_backend:latest"] in kept.values()
    assert_lock_free(fs)
    return case, kept


def _assert_changes_name_the_kept_tag(case, kept: dict):
    """A failed run's report lists what it did: the retag, and the tag that holds the image from
    before the rollback (the way to roll forward)."""
    data, md = report_of(case)
    assert data["changes"], "the report of a failed run that moved tags lists no changes"
    text = json.dumps(data["changes"])
    for ref in kept:
        assert ref.split(":", 1)[1] in text, f"{ref} (the pre-rollback image) is not named in the changes"
        assert ref.split(":", 1)[1] in md


def test_previous_image_broken(fault_stack):
    """Fault: previous image broken (a bad build deployed as :previous; it crashes at start) ->
    Outcome: fails at the health step after the retag and recreate; the pre-rollback image is kept
    under rollback-<ts>, nothing lost; lock free; report FAILED naming the health failure first and
    listing the retag and the kept tag."""
    fs = fault_stack
    case, kept = _failed_recreate_case(fs, "crash", "previous-broken")
    assert_report_names_first_cause(case, r"(?i)health", later=("Release the rollback lock",))
    _assert_changes_name_the_kept_tag(case, kept)


def test_health_never_recovers(fault_stack):
    """Fault: health never recovers (the rolled-back build answers 503 forever) -> Outcome: fails
    when immediate_health_timeout (3 s) ends, not later; the pre-rollback image kept under
    rollback-<ts>, nothing lost; lock free; report FAILED naming the health failure first and
    listing the retag and the kept tag."""
    fs = fault_stack
    case, kept = _failed_recreate_case(fs, "unhealthy", "health-never-recovers")
    assert_report_names_first_cause(case, r"(?i)health|503", later=("Release the rollback lock",))
    _assert_changes_name_the_kept_tag(case, kept)


def test_concurrent_rollback_lock_held(fault_stack):
    """Fault: concurrent rollback (another holder has the lock) -> Outcome: fails after
    stack_lock_wait (1 s) before any change; the other holder's lock stays, no lock of this run
    is left, the lock is free once that holder releases it; report FAILED naming the holder."""
    fs = fault_stack
    fs.reset(running="v2", previous="v1", fault="errors")
    held = run_module("rollback_lock", {"path": str(fs.lock), "state": "present",
                                        "holder": "alice via AWX job 7", "reason": "first rollback"})
    assert held["acquired"], held
    try:
        before = fs.snapshot()
        case = fs.case_dir("lock-held")
        proc = fs.run(PLAYBOOK, case, stack_lock_wait=1)
        assert proc.returncode != 0
        assert fs.snapshot() == before
        assert json.loads(fs.lock.read_text())["holder"] == "alice via AWX job 7"
        data = assert_report_names_first_cause(case, r"alice via AWX job 7")
        assert data["changes"] == []
    finally:
        run_module("rollback_lock", {"path": str(fs.lock), "state": "absent", "token": held["lock"]["token"]})
    assert_lock_free(fs)


def test_docker_engine_unreachable(fault_stack, tmp_path):
    """Fault: Docker engine unreachable (DOCKER_HOST at a dead unix socket for the run; the real
    engine keeps running) -> Outcome: fails in the preflight before any change; lock free; report
    (written although the after-snapshot cannot be taken) FAILED naming the engine first."""
    fs = fault_stack
    fs.reset(running="v2", previous="v1", fault="errors")
    before = fs.snapshot()
    dead = tmp_path / "dead-docker.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(dead))  # a socket file nobody listens on: connection refused
    sock.close()
    case = fs.case_dir("docker-unreachable")
    proc = fs.run(PLAYBOOK, case, env={"DOCKER_HOST": f"unix://{dead}"})
    assert proc.returncode != 0
    assert fs.snapshot() == before
    assert_lock_free(fs)
    data = assert_report_names_first_cause(case, r"(?i)docker (engine|daemon)")
    assert data["changes"] == []


def test_killed_run_then_second_run(fault_stack):
    """Fault: killed run (kill -9 of ansible-playbook while it recreates the services) -> Outcome:
    the lock it left names a holder that is provably gone, so a second run with
    stack_lock_break_stale=true takes it over at once (no wait for the TTL) and completes the
    rollback; nothing lost (both builds still tagged); lock free; second report SUCCEEDED."""
    fs = fault_stack
    fs.reset(running="v2", previous="v1", fault="errors")
    before = fs.snapshot()
    v1 = fs.stack.image_id("tdref_backend:v1")
    case = fs.case_dir("killed-run")
    log = case / "first-run.log"
    argv = [str(VENV_BIN / "ansible-playbook"), str(PLAYBOOKS / PLAYBOOK), "-i", str(fs.inventory),
            "-e", json.dumps(fs.extra_vars(case / "first")), "-e", f"@{fs.secrets}"]
    with log.open("w") as out:
        first = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=ansible_env(),
                                 start_new_session=True)
    workers: set = set()
    try:
        deadline = time.monotonic() + 120
        while RECREATE_TASK not in log.read_text():
            assert first.poll() is None, "the first run ended before the recreate:\n" + log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the first run never reached the recreate"
            time.sleep(0.05)
        # ansible-playbook forks a worker per task, which calls setsid(): the recreate runs in the
        # worker's own session. Wait until it is there, then kill ansible-playbook itself.
        while not (workers := _children(first.pid)):
            assert time.monotonic() < deadline, "no worker for the recreate"
            time.sleep(0.02)
        time.sleep(0.3)  # the recreate's module is running now
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        # The orphaned worker finishes the task it had (as after a real kill -9). Let it end
        # before the second run, so that the two do not recreate the same containers at once;
        # then make sure nothing of the killed run is left.
        sessions = {first.pid} | workers
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _alive_in(sessions):
            time.sleep(0.2)
        if first.poll() is None:
            first.kill()
        for sid in _alive_in(sessions):
            os.killpg(sid, signal.SIGKILL)
    assert fs.lock.exists(), "the killed run left no lock (it was killed before taking it?)"
    # The lock names the process that held it, and that process is gone: stale at once.
    left = json.loads(fs.lock.read_text())
    assert left.get("owner_pid"), f"the killed run's lock records no owner_pid: {left}"
    assert not Path(f"/proc/{left['owner_pid']}").exists() or _zombie(left["owner_pid"]), left
    started = time.monotonic()
    proc = fs.run(PLAYBOOK, case / "second", stack_lock_break_stale=True, stack_lock_wait=1)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert elapsed < 120, elapsed
    after = fs.snapshot()
    assert_images_kept(before["tags"], after["tags"])
    assert after["files"] == before["files"]
    assert fs.containers()["backend"][1] == v1
    fs.wait_version("v1")
    assert_lock_free(fs)
    data, _md = report_of(case / "second")
    assert data["outcome"] == "SUCCEEDED", data


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def _procs():
    """(pid, ppid, pgrp, session, state) of every process."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        yield int(stat.parent.name), int(fields[1]), int(fields[2]), int(fields[3]), fields[0]


def _children(pid: int) -> set:
    return {child for child, ppid, _pgrp, _sid, state in _procs() if ppid == pid and state not in ("Z", "X")}


def _alive_in(sessions: set) -> set:
    """The sessions (or process groups) of `sessions` that still have a live process."""
    return {sid for _pid, _ppid, pgrp, sid, state in _procs()
            if state not in ("Z", "X") and (sid in sessions or pgrp in sessions)} & sessions
