"""playbooks/rollback_blue_green.yml against a real blue/green pair of reference stacks behind the
lb nginx on this host (stackctl lb): check mode inert; switch to blue, idempotent, and switch back
keeping the old color running; a target that fails the verification through nginx is reverted
with the old color still up. (A target color that is down is refused: the fault matrix,
tests/faults/test_faults_blue_green.py.)

One pair (two stacks and the lb) is shared by the tests of this module (module_stack_factory); the
``pair`` fixture puts it back on green with both colors healthy before each test, so the tests run
in any order. nginx in a compose service is tested with the module (test_nginx_switch.py).
"""
from __future__ import annotations

import re
import subprocess
import time

import pytest


try:
    from .blue_green_env import BlueGreen, http_get
    from .rollback_env import fact, result_of
except ImportError:  # run from tests/integration
    from blue_green_env import BlueGreen, http_get
    from rollback_env import fact, result_of

pytestmark = pytest.mark.integration

# The validation's response-time targets are for an idle host and have their own tests; on a CI
# host running other suites they fail now and then, which is not what these tests are about.
FAST = {"validate_perf_enabled": False}


def tree(path):
    out = {}
    for item in sorted(path.rglob("*")):
        if item.name in ("error.log",) or "tmp" in item.relative_to(path).parts:
            continue
        st = item.lstat()
        out[str(item.relative_to(path))] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def wait_healthy(stack, deadline=60.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if http_get(stack.url("backend", "/health/ready"), host=None)[0] == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"{stack.name} not healthy")


@pytest.fixture(scope="module")
def shared(module_stack_factory, tmp_path_factory):
    blue = module_stack_factory("bgb")
    green = module_stack_factory("bgg")
    pair = BlueGreen(blue, green, tmp_path_factory.mktemp("bg-lb"), tmp_path_factory.mktemp("bg-work"))
    pair.blue_broken = False
    yield pair
    pair.down()


@pytest.fixture
def pair(shared):
    """Both colors running and healthy (v1), the lb on green."""
    if shared.blue_broken:
        shared.stacks["blue"].ctl("deploy", "--dir", str(shared.stacks["blue"].dir), "v1", "--services", "backend",
                                  "--no-backup", "--wait", "60")
        shared.blue_broken = False
    for stack in shared.stacks.values():
        if any(status != "running" for status in shared.running(stack_color(shared, stack)).values()):
            stack.compose("start")
        wait_healthy(stack)
    shared.set_active("green")
    return shared


def stack_color(pair, stack):
    return "blue" if pair.stacks["blue"] is stack else "green"


def test_check_mode_is_inert(pair):
    lb_before, site_before = tree(pair.lb), pair.site.read_bytes()
    stacks_before = {color: tree(stack.dir) for color, stack in pair.stacks.items()}
    proc = pair.run("blue", check=True, **FAST)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Would switch" in proc.stdout
    assert tree(pair.lb) == lb_before and pair.site.read_bytes() == site_before
    assert {color: tree(stack.dir) for color, stack in pair.stacks.items()} == stacks_before
    assert pair.served() == ["green"] * 5
    assert set(pair.running("green").values()) == {"running"}


def test_switch_to_blue_idempotent_and_back_keeping_blue(pair):
    green = pair.stacks["green"]
    proc = pair.run("blue", **FAST)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert pair.served() == ["blue"] * 5
    assert "green: stopped, containers and volumes kept" in proc.stdout
    # stopped, not removed: the containers and the database volume are still there
    assert set(pair.running("green").values()) == {"exited"}
    volumes = subprocess.run(["docker", "volume", "ls", "-q", "--filter", f"name={green.name}_pgdata"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert volumes == [f"{green.name}_pgdata"]
    reports = sorted(pair.stacks["blue"].dir.glob("rollbacks/*/rollback_report_*.json"))
    assert reports, "no report written"

    again = pair.run("blue", json_output=True, **FAST)
    assert again.returncode == 0, again.stdout[-4000:]
    switched = result_of(again.stdout, "Switch nginx to the target color, prove it serves it, or put the old config back")
    assert switched["changed"] is False
    assert result_of(again.stdout, "Stop the old color, keeping its containers and volumes")["changed"] is False

    # Roll forward: start green again and switch back to it, keeping blue running.
    green.compose("start")
    wait_healthy(green)
    back = pair.run("green", json_output=True, blue_green_stop_old=False, **FAST)
    assert back.returncode == 0, back.stdout[-4000:]
    assert pair.served() == ["green"] * 5
    assert set(pair.running("blue").values()) == {"running"}
    changes = fact(back.stdout, "blue_green_changes")
    assert changes[0]["changed"] and changes[0]["to"] == "green" and changes[1]["kept_running"]


# A target whose backend is down is refused before the switch: the fault matrix's case
# (tests/faults/test_faults_blue_green.py::test_target_color_down, which also proves the lock free
# and the report naming it), not run twice.


def test_target_failing_after_switch_is_reverted(pair):
    blue = pair.stacks["blue"]
    # Every 10th request fails: healthy enough for the check before the switch, never 20 in a row.
    pair.blue_broken = True
    blue.deploy("v2", "errors", "--error-rate", "0.1", "--services", "backend", "--no-backup")
    wait_healthy(blue)
    site_before = pair.site.read_bytes()
    proc = pair.run("blue", blue_green_verify_timeout=3, **FAST)
    assert proc.returncode != 0
    assert re.search(r"reverted: the new config was not served within 3(\.0)? s: (status 500|timed out)", proc.stdout), proc.stdout[-4000:]
    assert pair.site.read_bytes() == site_before
    assert pair.served() == ["green"] * 5
    assert set(pair.running("green").values()) == {"running"}
