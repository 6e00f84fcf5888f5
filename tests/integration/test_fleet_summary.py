"""The fleet_summary callback on its own, with a small play of the rollback playbooks' shape (a
failure caught by a rescue, re-raised by the last task) on four local hosts, no stack: what it
prints and writes, and that ansible-runner (AWX) finds it in the stats event's artifact data even
though the run ended early (max_fail_percentage exceeded)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import VENV_BIN, ansible_env, run_playbook

pytestmark = pytest.mark.integration

PLAY = """
- name: A rollback of the playbooks' shape
  hosts: taylordash
  gather_facts: false
  serial: "{{ rollback_serial | default(1) }}"
  max_fail_percentage: "{{ rollback_max_fail_percentage | default(0) }}"
  tasks:
    - name: Roll back, and always report
      block:
        - name: Roll back
          ansible.builtin.fail:
            msg: "the target image td_backend:previous does not exist"
          when: inventory_hostname == 'h2'
      rescue:
        - name: Record why the rollback failed
          ansible.builtin.set_fact:
            rollback_failure: "{{ ansible_failed_result.msg }}"
      always:
        - name: Report
          ansible.builtin.set_fact:
            report_path: "/srv/{{ inventory_hostname }}/rollback_report.md"
    - name: Fail the play when the rollback failed
      ansible.builtin.fail:
        msg: "Rollback failed: {{ rollback_failure }}"
      when: rollback_failure is defined
"""
HOSTS = ["h1", "h2", "h3", "h4"]
CALLBACK = {"ANSIBLE_CALLBACKS_ENABLED": "taylordash.rollback.fleet_summary"}


@pytest.fixture
def project(tmp_path):
    (tmp_path / "play.yml").write_text(PLAY)
    inventory = {"taylordash": {"hosts": {h: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
                                          for h in HOSTS}}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    return tmp_path


@pytest.mark.parametrize("serial, max_fail, rolled_back, not_started", [
    (1, 0, ["h1"], ["h3", "h4"]),
    (2, 50, ["h1", "h3", "h4"], []),
    (4, 0, ["h1", "h3", "h4"], []),  # one batch: every host runs to its end before the run stops
])
def test_summary(project, serial, max_fail, rolled_back, not_started):
    out = project / "fleet.json"
    proc = run_playbook(project / "play.yml", inventory=project / "inventory.json",
                        extra_vars={"rollback_serial": serial, "rollback_max_fail_percentage": max_fail},
                        env=dict(CALLBACK, TAYLORDASH_FLEET_SUMMARY=str(out)))
    assert proc.returncode != 0
    summary = json.loads(out.read_text())
    assert summary["rolled_back"] == rolled_back and summary["not_started"] == not_started, summary
    assert summary["failed"] == {"h2": "Fail the play when the rollback failed: Rollback failed: "
                                       "the target image td_backend:previous does not exist"}
    assert summary["stopped_early"] is bool(not_started) and summary["complete"] is False
    assert summary["hosts"]["h1"] == {"outcome": "rolled_back", "changed": False, "report_path": "/srv/h1/rollback_report.md"}
    assert (out.stat().st_mode & 0o777) == 0o600
    assert "FLEET SUMMARY (4 hosts)" in proc.stdout and "rolled back: " + ", ".join(rolled_back) in proc.stdout
    if not_started:
        assert "not started (the run stopped first): " + ", ".join(not_started) in proc.stdout


def test_ansible_runner_sees_the_summary(project):
    """AWX reads set_stats data from the playbook_on_stats event's artifact_data, which the stdout
    callback (awx_display) builds before any other callback sees the end of the run."""
    pdd = project / "pdd"
    (pdd / "project").mkdir(parents=True)
    (pdd / "project" / "play.yml").write_text(PLAY)
    (pdd / "inventory").mkdir()
    (pdd / "inventory" / "hosts.json").write_text((project / "inventory.json").read_text())
    (pdd / "env").mkdir()
    env = ansible_env(CALLBACK)
    (pdd / "env" / "envvars").write_text(json.dumps({k: env[k] for k in (
        "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_PYTHON_INTERPRETER", "ANSIBLE_CALLBACKS_ENABLED")}))
    proc = subprocess.run([str(VENV_BIN / "ansible-runner"), "run", str(pdd), "-p", "play.yml", "--ident", "fleet"],
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode != 0, proc.stdout[-3000:]
    events = [json.loads(p.read_text()) for p in (pdd / "artifacts" / "fleet" / "job_events").glob("*.json")]
    stats = [e for e in events if e.get("event") == "playbook_on_stats"]
    assert stats, proc.stdout[-3000:]
    fleet = stats[0]["event_data"]["artifact_data"]["rollback_fleet"]
    assert fleet["rolled_back"] == ["h1"] and fleet["not_started"] == ["h3", "h4"], fleet
    assert list(fleet["failed"]) == ["h2"]
