"""Issue 10 item 4: a rollback killed with `kill -9` must not block the next one for an hour.

The stack role records the PID of the ansible-playbook process as the lock's owner (the target
is the controller itself), so a second run with stack_lock_break_stale=true sees at once that the
holder is gone and takes the lock over. Needs rollback_lock to treat a lock whose owner PID has
ended on the same host and boot as stale (issue 10, module side)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import REPO, VENV_BIN, ansible_env, run_module, write_inventory

from .test_rollback_immediate import health, rollback

pytestmark = pytest.mark.integration

PLAYBOOK = REPO / "playbooks" / "rollback_immediate.yml"
RECREATE = "TASK [taylordash.rollback.immediate : Point each service's current tag back"  # the retag and the recreate: one task


def test_killed_run_then_second_run_with_break_stale(stack_factory, tmp_path):
    stack = stack_factory("kil")
    stack.deploy("v2", "errors", "--error-rate", "0.5")
    lock_path = stack.dir / ".rollback.lock"
    argv = [str(VENV_BIN / "ansible-playbook"), str(PLAYBOOK), "-i", str(write_inventory(tmp_path)),
            "-e", json.dumps(stack.stack_vars(validate_perf_samples=3, validate_perf_warmup=0)),
            "-e", "@%s" % stack.secrets_file(tmp_path)]
    out = tmp_path / "first.log"
    with open(out, "w") as log:
        first = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=ansible_env())
    try:
        deadline = time.monotonic() + 120
        while RECREATE not in out.read_text():
            assert first.poll() is None, out.read_text()[-3000:]
            assert time.monotonic() < deadline, out.read_text()[-3000:]
            time.sleep(0.05)
        lock = json.loads(lock_path.read_text())
        assert lock["owner_pid"] == first.pid, lock  # the playbook process, not a worker
        os.kill(first.pid, signal.SIGKILL)  # the playbook process only, as an operator's kill -9
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    assert lock_path.exists()  # the killed run could not release it

    started = time.monotonic()
    proc = rollback(stack, tmp_path, stack_lock_break_stale=True, stack_lock_wait=5)
    waited = time.monotonic() - started
    # stack_lock_ttl is an hour and stack_lock_wait 5 s: only a lock seen as stale at once lets it run
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert health(stack)[1]["version"] == "v1"
    assert not lock_path.exists()
    print("second run after kill -9: %.1fs" % waited)


def test_without_break_stale_the_dead_holder_is_named(stack_factory, tmp_path):
    """Without stack_lock_break_stale the second run still refuses, and says who held the lock."""
    stack = stack_factory("kl2")
    lock_path = stack.dir / ".rollback.lock"
    owner = subprocess.Popen(["sleep", "60"])
    try:
        held = run_module("rollback_lock", {"path": str(lock_path), "state": "present", "holder": "carol (ansible-playbook)",
                                            "reason": "killed", "owner_pid": owner.pid})
        assert held["acquired"], held
    finally:
        owner.kill()
        owner.wait()
    proc = rollback(stack, tmp_path, stack_lock_wait=1)
    assert proc.returncode != 0
    assert "carol (ansible-playbook)" in proc.stdout
    assert lock_path.exists()
