"""Event-Driven Ansible end to end: ansible-rulebook (a subprocess, bounded by a deadline, ended by
its PID) runs the collection's rulebook taylordash.rollback.rollback with the collection's event
source against a reference stack. A bad v2 (health 503) is deployed the way the team's pipeline
does; the rule fires once, its run_playbook action runs the watchdog playbook with the verdict, and
the stack ends on its previous images, healthy."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import VENV_BIN, ansible_env

pytestmark = pytest.mark.integration

KEY_ENV = "TD_EDA_TEST_API_KEY"


def rulebook_binary() -> str:
    found = VENV_BIN / "ansible-rulebook"
    if found.exists():
        return str(found)
    found = shutil.which("ansible-rulebook")
    if not found:
        pytest.fail("ansible-rulebook is not installed: scripts/setup.sh installs it (requirements.txt) with a Java 17 runtime")
    return found


def healthy_on(stack, image_id: str) -> bool:
    if stack.container_image_id("backend") != image_id:
        return False
    try:
        with urllib.request.urlopen(stack.url("backend", "/health/ready"), timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def wait_for(predicate, deadline: float, what: str, log: Path):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {deadline} s; ansible-rulebook said:\n{log.read_text()[-6000:]}")


def stop(proc: subprocess.Popen) -> None:
    """End ansible-rulebook and what it started: it leads its own process group (start_new_session)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)


@pytest.fixture
def eda_project(stack_factory, tmp_path):
    """A stack at v1 and what ansible-rulebook needs to watch it: the watchdog playbook's inventory
    (the stack model and its secrets, 0600) and the rulebook's variables."""
    stack = stack_factory("eda")
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"taylordash": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    env = stack.env
    group_vars = dict(stack.stack_vars(), stack_api_key=env["TD_API_KEY"], stack_admin_password=env["TD_ADMIN_PASSWORD"],
                      # Response times on a loaded CI machine are not what this test is about.
                      validate_perf_enabled=False)
    secrets = inventory / "group_vars" / "taylordash.yml"
    secrets.write_text(yaml.safe_dump(group_vars))
    secrets.chmod(0o600)
    variables = tmp_path / "rollback-trigger.yml"
    variables.write_text(yaml.safe_dump({
        "rollback_trigger_stack": stack.name,
        "rollback_trigger_health_urls": {"backend": stack.url("backend", "/health/ready"),
                                         "frontend": stack.url("frontend", "/")},
        # Health only: the API's error rate and response times (unit-tested against a real server) are
        # noise here - the deploy's restart and a loaded CI machine make them fire on their own.
        "rollback_trigger_api_url": None,
        "rollback_trigger_api_key_env": KEY_ENV,
        # A deploy recreates the services: the few seconds they refuse connections while it does are not
        # a bad deploy (the seed's 3 x 1 s would roll back a deploy in progress on a loaded machine).
        "rollback_trigger_failures": 8,
        "rollback_trigger_window": 10,
        "rollback_trigger_pause": 0.2,
    }))
    return stack, inventory, variables


def test_a_bad_deploy_fires_the_rule_once_and_the_stack_is_rolled_back(eda_project, tmp_path):
    stack, inventory, variables = eda_project
    v1 = stack.image_id("tdref_backend:v1")
    key = stack.env["TD_API_KEY"]
    log = tmp_path / "ansible-rulebook.log"
    argv = [rulebook_binary(), "-r", "taylordash.rollback.rollback", "-i", str(inventory), "--vars", str(variables), "-v"]
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=ansible_env({KEY_ENV: key, "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default"}))
    try:
        # The source runs and finds the good stack good.
        wait_for(lambda: "window 1: no trigger fired" in log.read_text() or proc.poll() is not None, 90,
                 "no first verdict", log)
        assert proc.poll() is None, log.read_text()
        assert "rollback:" not in log.read_text()

        stack.deploy("v2", "unhealthy")
        assert stack.container_image_id("backend") == stack.image_id("tdref_backend:v2")

        # The rule fires, the watchdog playbook rolls back: v1 again, healthy, and its run over.
        wait_for(lambda: healthy_on(stack, v1) and "PLAY RECAP" in log.read_text() or proc.poll() is not None, 240,
                 "the stack was not rolled back to v1", log)
        assert proc.poll() is None, log.read_text()
    finally:
        stop(proc)
    text = log.read_text()
    assert healthy_on(stack, v1)
    assert stack.image_id(f"{stack.env['TD_IMAGE_PREFIX']}_backend:latest") == v1
    # One bad deploy, one rollback: the throttle let one event through.
    assert "failed=0" in text.split("PLAY RECAP", 1)[1][:400], text[-6000:]
    assert text.count("PLAY RECAP") == 1, text[-6000:]
    assert key not in text
    reports = sorted(stack.dir.glob("rollbacks/*/*.json"))
    assert len(reports) == 1, reports
    report = json.loads(reports[0].read_text())
    assert "unavailable" in json.dumps(report), report
