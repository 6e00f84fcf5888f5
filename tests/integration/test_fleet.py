"""A fleet rollback: four reference stacks as four inventory hosts (each its own project dir,
compose project and ports on 127.0.0.1), rolled back by playbooks/rollback_immediate.yml with
rollback_serial / rollback_max_fail_percentage, and the fleet_summary callback's summary.

One stack is broken so that its rollback fails: its :previous images are gone (the target of the
rollback is missing). The four stacks are made once, in parallel, and shared by both cases; the
good ones are put back on the bad version between the cases."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import REPO, SPEED_CALLBACKS, run_playbook

pytestmark = pytest.mark.integration

PLAYBOOK = REPO / "playbooks" / "rollback_immediate.yml"
HOSTS = ["td1", "td2", "td3", "td4"]
BROKEN = "td2"
# The validation is tested in its own files: not the P1 script nor the response times here.
QUICK_VALIDATE = {"validate_script_enabled": False, "validate_perf_enabled": False}


def _bad_deploy(stack):
    stack.deploy("v2", "unhealthy")
    return stack


@pytest.fixture(scope="module")
def fleet(module_stack_factory, tmp_path_factory):
    """{host: ReferenceStack} on the bad v2, the broken one without its :previous images, and an
    inventory naming the four of them with their stack model and secrets as host vars."""
    with ThreadPoolExecutor(len(HOSTS)) as pool:
        stacks = list(pool.map(lambda tag: _bad_deploy(module_stack_factory("flt" + tag[-1])), HOSTS))
    fleet = dict(zip(HOSTS, stacks))
    broken = fleet[BROKEN]
    prefix = broken.env["TD_IMAGE_PREFIX"]
    for service in ("backend", "frontend"):
        proc = subprocess.run(["docker", "image", "rm", f"{prefix}_{service}:previous"],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
    work = tmp_path_factory.mktemp("fleet")
    hosts = {}
    for name, stack in fleet.items():
        env = stack.env
        hosts[name] = dict(stack.stack_vars(), ansible_connection="local", ansible_python_interpreter=sys.executable,
                           stack_api_key=env["TD_API_KEY"], stack_admin_password=env["TD_ADMIN_PASSWORD"])
    inventory = work / "inventory.json"
    inventory.write_text(json.dumps({"taylordash": {"hosts": hosts}}))
    inventory.chmod(0o600)
    return fleet, inventory, work


def rollback(inventory, work, **extra):
    summary = work / "fleet_summary.json"
    if summary.exists():
        summary.unlink()
    proc = run_playbook(PLAYBOOK, inventory=inventory,
                        extra_vars=dict(QUICK_VALIDATE, **extra),
                        env={"ANSIBLE_CALLBACKS_ENABLED": "taylordash.rollback.fleet_summary," + SPEED_CALLBACKS,
                             "TAYLORDASH_FLEET_SUMMARY": str(summary),
                             "ANSIBLE_SHOW_CUSTOM_STATS": "True"})
    assert summary.exists(), proc.stdout[-4000:]
    return proc, json.loads(summary.read_text())


def state(stack):
    return stack.tags(), {service: info[:2] for service, info in stack.containers().items()}


def test_serial_one_stops_at_the_broken_host_then_max_fail_50_rolls_back_the_rest(fleet):
    stacks, inventory, work = fleet
    v1 = stacks["td1"].image_id("tdref_backend:v1")
    before = {name: state(stack) for name, stack in stacks.items()}

    # 1. the defaults (one host at a time, stop at the first failure), said explicitly
    proc, summary = rollback(inventory, work, rollback_serial=1, rollback_max_fail_percentage=0)
    out = proc.stdout
    assert proc.returncode != 0, out[-4000:]
    assert summary["rolled_back"] == ["td1"], summary
    assert list(summary["failed"]) == [BROKEN] and "previous" in summary["failed"][BROKEN], summary
    assert summary["not_started"] == ["td3", "td4"] and summary["stopped_early"], summary
    assert summary["hosts"]["td1"]["report_path"].startswith(str(stacks["td1"].dir))
    assert summary["hosts"][BROKEN]["report_path"].startswith(str(stacks[BROKEN].dir))  # a failed run is reported too
    assert stacks["td1"].container_image_id("backend") == v1
    for name in (BROKEN, "td3", "td4"):  # the broken host changed nothing; the hosts after it were never touched
        assert state(stacks[name]) == before[name], name
    for name in ("td3", "td4"):
        assert not (stacks[name].dir / "rollback_history.log").exists()
        assert re.search(rf"^{name}\s+:", out, re.M) is None  # not even in the recap
    assert "FLEET SUMMARY (4 hosts)" in out and "not started (the run stopped first): td3, td4" in out
    assert '"rollback_fleet"' in out  # published with the custom stats, where AWX reads set_stats data

    # 2. td1 back on the bad version; batches of two, half of a batch may fail
    _bad_deploy(stacks["td1"])
    proc, summary = rollback(inventory, work, rollback_serial=2, rollback_max_fail_percentage=50)
    out = proc.stdout
    assert proc.returncode != 0, out[-4000:]  # td2 still failed
    assert summary["rolled_back"] == ["td1", "td3", "td4"], summary
    assert list(summary["failed"]) == [BROKEN] and not summary["not_started"], summary
    for name in ("td1", "td3", "td4"):
        stack = stacks[name]
        prefix = stack.env["TD_IMAGE_PREFIX"]
        assert stack.tags()[f"{prefix}_backend:latest"] == v1 and stack.container_image_id("backend") == v1, name
        assert summary["hosts"][name]["changed"] is True
    assert state(stacks[BROKEN]) == before[BROKEN]
    assert "rolled back: td1, td3, td4" in out
