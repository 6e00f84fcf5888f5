"""Fault matrix, blue-green path (playbooks/rollback_blue_green.yml) on a blue/green pair of
reference stacks behind the lb nginx (shared by the cases of this file). Each test's docstring is
its row of the matrix: ``Fault: ... -> Outcome: ...``. Every case asserts where traffic goes
afterwards, which color still runs, that the lock is free, and that the report names the first
cause."""
from __future__ import annotations

import socket
import time

import pytest

from conftest import _stack_maker

from .conftest import QUICK, assert_lock_free, assert_report_names_first_cause

try:
    from ..integration.blue_green_env import BlueGreen, http_get
except ImportError:  # run from tests/faults
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
    from blue_green_env import BlueGreen, http_get

pytestmark = [pytest.mark.integration, pytest.mark.faults]


class Lock:
    """What assert_lock_free needs: the lock path of the pair."""

    def __init__(self, path):
        self.lock = path


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    make, made = _stack_maker(tmp_path_factory)
    pair = None
    try:
        blue, green = make("fbgb"), make("fbgg")
        pair = BlueGreen(blue, green, tmp_path_factory.mktemp("fbg-lb"), tmp_path_factory.mktemp("fbg-work"))
        yield pair
    finally:
        if pair is not None:
            pair.down()
        for stack in made:
            stack.down()


def wait_healthy(stack, deadline=60.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if http_get(stack.url("backend", "/health/ready"), host=None)[0] == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"{stack.name} not healthy")


@pytest.fixture
def pair(shared, tmp_path):
    """Both colors running and healthy, the lb on green; a report directory of the case."""
    for color, stack in shared.stacks.items():
        if any(status != "running" for status in shared.running(color).values()):
            stack.compose("start")
        wait_healthy(stack)
    shared.set_active("green")
    shared.case = tmp_path
    return shared


def run(pair, **overrides):
    proc = pair.run("blue", report_dir=str(pair.case), **dict(QUICK, **overrides))
    (pair.case / "ansible-playbook.log").write_text(proc.stdout + proc.stderr)
    return proc


def assert_green_serves_and_runs(pair, site_before):
    assert pair.site.read_bytes() == site_before
    assert pair.served() == ["green"] * 5
    assert set(pair.running("green").values()) == {"running"}
    assert_lock_free(Lock(pair.lb / ".rollback.lock"))


def test_target_color_down(pair):
    """Fault: the target color's backend is down -> Outcome: refused before the switch (site file
    unchanged, nginx serves the old color, which keeps running); lock free; report FAILED naming the
    unhealthy target."""
    pair.stacks["blue"].compose("stop", "backend")
    before = pair.site.read_bytes()
    proc = run(pair, blue_green_health_timeout=2)
    assert proc.returncode != 0
    assert "Refusing to switch traffic to blue" in proc.stdout
    assert_green_serves_and_runs(pair, before)
    assert_report_names_first_cause(pair.case, r"Refusing to switch traffic to blue")


def test_broken_candidate(pair, tmp_path):
    """Fault: the target's site file is broken (nginx -t fails) -> Outcome: the live file is put back,
    nginx is not reloaded and serves the old color, which keeps running; lock free; report FAILED
    naming nginx's message."""
    bad = tmp_path / "nginx.blue.conf"
    bad.write_text((pair.lb / "nginx.blue.conf").read_text().replace("proxy_pass", "proxy_pas"))
    before = pair.site.read_bytes()
    proc = run(pair, blue_green_candidate=str(bad))
    assert proc.returncode != 0
    assert_green_serves_and_runs(pair, before)
    assert_report_names_first_cause(pair.case, r"nginx -t failed: .*unknown directive \\?\"proxy_pas\\?\"")


def test_target_fails_verification(pair):
    """Fault: the target answers, but not what the verification through nginx wants (the color
    header names another color) -> Outcome: switched, then reverted within the window; nginx serves
    the old color, which keeps running; lock free; report FAILED naming the revert."""
    before = pair.site.read_bytes()
    proc = run(pair, blue_green_color_header="X-TaylorDash-Missing", blue_green_verify_timeout=2)
    assert proc.returncode != 0
    assert_green_serves_and_runs(pair, before)
    assert_report_names_first_cause(pair.case, r"reverted: the new config was not served within 2(\.0)? s")


def test_nginx_not_running(pair, tmp_path):
    """Fault: nginx is not running (its PID file names no process) -> Outcome: fails before any
    change; the old color keeps running; lock free; report FAILED naming nginx not running."""
    pid_file = tmp_path / "nginx.pid"
    pid_file.write_text("999999999\n")
    before = pair.site.read_bytes()
    proc = run(pair, blue_green_nginx_pid_file=str(pid_file))
    assert proc.returncode != 0
    assert_green_serves_and_runs(pair, before)
    assert_report_names_first_cause(pair.case, r"nginx is not running")


def test_old_color_never_drains(pair):
    """Fault: a client holds a connection to the old color open past the drain deadline -> Outcome:
    traffic stays on the target (switched and verified), the old color is NOT stopped; lock free;
    report FAILED naming the drain."""
    port = int(pair.stacks["green"].env["TD_BACKEND_PORT"])
    with socket.create_connection(("127.0.0.1", port)):
        proc = run(pair, blue_green_drain_timeout=2)
    assert proc.returncode != 0
    assert pair.served() == ["blue"] * 5
    assert set(pair.running("green").values()) == {"running"}
    assert_lock_free(Lock(pair.lb / ".rollback.lock"))
    assert_report_names_first_cause(pair.case, r"[Tt]imeout|drain|connections")
