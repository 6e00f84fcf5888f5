"""Fault matrix, validation after a rollback (playbooks/rollback_immediate.yml with the
validation role at its end) on the shared reference stack. The stack is already at its
rollback target, so the rollback itself changes nothing and only the validation script is at
fault. Each test's docstring is its row of the matrix."""
from __future__ import annotations

import concurrent.futures
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from .conftest import assert_lock_free, assert_report_names_first_cause

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PLAYBOOK = "rollback_immediate.yml"
# The script is the one at fault: the checklist and the latency sample are left out.
ONLY_SCRIPT = {"validate_perf_enabled": False, "validate_checklist_enabled": False,
               "validate_script_timeout": 1, "validate_script_kill_grace": 0.5}

HANGING = """#!/bin/bash
echo "[PASS] backend_health - HTTP 200"
sleep 1000 &
echo $! > "$(dirname "$0")/hang.child.pid"
wait
"""
GARBAGE = """#!/bin/bash
printf 'Traceback (most recent call last):\\n  \\x00\\xff\\xfe garbage %%s\\n' "$RANDOM"
head -c 300 /dev/urandom | tr -d '\\n'
echo
"""


SCRIPTS = {"missing": None, "hanging": HANGING, "garbage": GARBAGE}


@pytest.fixture(scope="module")
def runs(fault_stack, tmp_path_factory):
    """The three cases side by side (each with its own lock file and report directory): the
    rollbacks change nothing, so they do not disturb each other."""
    fs = fault_stack
    fs.reset(running="v1", previous="v1")
    scripts = tmp_path_factory.mktemp("validation-scripts")
    paths = {}
    for name, text in SCRIPTS.items():
        paths[name] = scripts / f"{name}.sh"
        if text is not None:
            paths[name].write_text(text)
            paths[name].chmod(0o755)
    before = fs.snapshot()

    def one(name):
        case = fs.case_dir("script-" + name)
        lock = fs.dir / f".rollback-{name}.lock"
        started = time.monotonic()
        proc = fs.run(PLAYBOOK, case, validate_script=str(paths[name]), stack_lock_path=str(lock), **ONLY_SCRIPT)
        return name, SimpleNamespace(proc=proc, case=case, lock=lock, seconds=time.monotonic() - started)

    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        done = dict(pool.map(one, SCRIPTS))
    child_pid = scripts / "hang.child.pid"
    yield SimpleNamespace(runs=done, before=before, after=fs.snapshot(), scripts=paths, child_pid=child_pid)
    if child_pid.exists():
        child = int(child_pid.read_text())
        if Path(f"/proc/{child}").exists():
            os.kill(child, 9)


def _failed_and_changed_nothing(fs, runs, name):
    run = runs.runs[name]
    assert run.proc.returncode != 0, run.proc.stdout[-3000:]
    assert runs.after == runs.before, "tags, containers or files changed"
    assert_lock_free(fs, run.lock)
    return run


def test_validation_script_missing(fault_stack, runs):
    """Fault: validation script set (validate_script) but missing -> Outcome: the preflight fails
    before the rollback starts, naming validate_script (issue 11: a check asked for explicitly is
    required); tags, containers and files as before; lock free; no report (nothing started)."""
    run = _failed_and_changed_nothing(fault_stack, runs, "missing")
    out = run.proc.stdout + run.proc.stderr
    assert "Invalid validation settings: validate_script=%s - no such file on the target host" % runs.scripts["missing"] \
        in out, out[-3000:]
    assert not list(Path(run.case).rglob("rollback_report_*.json"))


def test_validation_script_hanging(fault_stack, runs):
    """Fault: validation script hanging (a child sleeps forever) -> Outcome: stopped at
    validate_script_timeout (1 s) with its whole process group, no process left; nothing else
    changes; lock free; report FAILED naming the timeout."""
    run = _failed_and_changed_nothing(fault_stack, runs, "hanging")
    assert_report_names_first_cause(run.case, r"timed out after 1 s")
    child = int(runs.child_pid.read_text())
    assert not Path(f"/proc/{child}").exists() or \
        Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[-1].split()[0] in ("Z", "X")


def test_validation_script_garbage(fault_stack, runs):
    """Fault: validation script printing garbage (no check lines, binary bytes, exit 0) ->
    Outcome: the validation fails (no check results found) instead of passing on the exit status;
    nothing else changes; lock free; report FAILED naming the unreadable output."""
    run = _failed_and_changed_nothing(fault_stack, runs, "garbage")
    assert_report_names_first_cause(run.case, r"no check results found")
