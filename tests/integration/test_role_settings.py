"""Settings are checked before the first change (issue 10, item 3), and incident IDs are unique
per run (item 6). These runs need no reference stack: a bad setting must stop every playbook before
it touches Docker, the lock or a file, so a scratch project directory is enough."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import REPO, VENV_BIN, ansible_env, run_playbook, write_inventory

pytestmark = pytest.mark.integration

PLAYBOOKS = REPO / "playbooks"
FATAL = re.compile(r'^fatal: \[(\S+)\]: FAILED! => (\{.*\})$', re.M)


def fatal_msgs(proc) -> list:
    return [json.loads(m.group(2)).get("msg", "") for m in FATAL.finditer(proc.stdout)]


def tree(path):
    return sorted((str(p.relative_to(path)), p.stat().st_mtime_ns) for p in path.rglob("*"))


@pytest.fixture
def project(tmp_path):
    """A scratch project: a stack model whose services nobody runs, and a file that must stay as it is."""
    directory = tmp_path / "project"
    directory.mkdir()
    (directory / ".env").write_text("TD_SECRET=unchanged\n")
    inventory = write_inventory(tmp_path)
    stack = {"stack_project_dir": str(directory), "stack_compose_project": "tdsettings",
             "stack_services": [{"name": "backend", "image": "tdsettings_backend", "health_url": "http://127.0.0.1:9/"},
                                {"name": "frontend", "image": "tdsettings_frontend", "health_url": "http://127.0.0.1:9/"}]}
    return directory, inventory, stack


@pytest.mark.parametrize("playbook", ["rollback_immediate.yml", "rollback_database.yml"])
@pytest.mark.parametrize("bad, names", [
    ({"validate_min_pass_rate": 150}, ["validate_min_pass_rate=150 - must be a finite number from 0 to 100"]),
    ({"validate_perf_samples": 0, "validate_script_timeout": "nan"},
     ["validate_script_timeout=nan - must be a finite number more than 0 and at most 86400",
      "validate_perf_samples=0 - must be a whole number from 1 to 10000"]),
    ({"report_started_at": "yesterday"}, ["report_started_at=yesterday - must be empty, or an ISO 8601 time"]),
    # A choice the argument spec knows: refused by the preflight too, before the rollback starts.
    ({"report_severity": "Apocalyptic"}, ["report_severity"]),
])
def test_a_bad_setting_stops_the_rollback_before_anything_changes(project, playbook, bad, names):
    directory, inventory, stack = project
    before = tree(directory)
    proc = run_playbook(PLAYBOOKS / playbook, extra_vars=dict(stack, database_action="restore", **bad),
                        inventory=inventory, timeout=300)
    assert proc.returncode != 0
    final = [m for m in fatal_msgs(proc) if m.startswith("Rollback failed: ")]
    assert len(final) == 1, proc.stdout[-4000:]
    for name in names:
        assert name in final[0], final[0]
    # Only the broken rules: no rule that holds is named.
    assert final[0].count(" must be ") <= len(names), final[0]
    assert tree(directory) == before  # no lock, no report, no history line, no safety dump
    assert "Take the rollback lock" not in proc.stdout and "rollback_lock" not in proc.stdout


def test_validation_with_a_bad_setting_runs_nothing(project):
    directory, inventory, stack = project
    marker = directory / "ran"
    script = directory / "validate.sh"
    script.write_text("#!/bin/sh\ntouch %s\necho '[PASS] x - ok'\n" % marker)
    script.chmod(0o755)
    before = tree(directory)
    proc = run_playbook(PLAYBOOKS / "validate.yml", inventory=inventory, timeout=300, extra_vars=dict(
        stack, validate_script=str(script), validate_request_timeout=-1, validate_frontend_service="web"))
    assert proc.returncode != 0
    (msg,) = [m for m in fatal_msgs(proc) if m.startswith("Invalid validation settings: ")]
    assert msg == ("Invalid validation settings: validate_request_timeout=-1 - must be a finite number more than 0 "
                   "and at most 3600; validate_frontend_service=web - no service named web in stack_services "
                   "(backend, frontend); set validate_frontend_service to one of them.")
    assert not marker.exists() and tree(directory) == before


def _report_play(tmp_path, hosts=1):
    play = tmp_path / "report.yml"
    play.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n"
                    "    - ansible.builtin.import_role:\n        name: taylordash.rollback.report\n")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("".join(f"h{i} ansible_connection=local ansible_python_interpreter={VENV_BIN / 'python'}\n"
                                 for i in range(hosts)))
    return play, inventory


def _run(play, inventory, extra):
    return subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(play), "-e", json.dumps(extra)],
                          capture_output=True, text=True, env=ansible_env(), timeout=300, check=False)


@pytest.mark.parametrize("bad, message", [
    ({"report_incident_id": "INC 42\nforged line"}, "- must be empty, or letters, digits"),
    ({"report_steps": [{"step": "retag", "seconds": "inf"}]}, "report_steps[0].seconds=inf - must be a finite number"),
    ({"report_type": "im mediate"}, "report_type=im mediate - must be a word"),
    ({"report_dir": ""}, "report_dir= - must not be empty"),
])
def test_a_bad_report_setting_writes_nothing(tmp_path, bad, message):
    play, inventory = _report_play(tmp_path)
    report_dir = tmp_path / "reports"
    report_dir.mkdir()
    extra = {"report_type": "immediate", "report_dir": str(report_dir), "stack_project_dir": str(tmp_path),
             "stack_compose_project": "tdbad", "report_state_after": {"services": []}, **bad}
    proc = _run(play, inventory, extra)
    assert proc.returncode != 0
    (msg,) = [m for m in fatal_msgs(proc) if m.startswith("Invalid report settings: ")]
    assert message in msg and msg.count(" must be ") + msg.count(" must not be ") == 1, msg
    assert list(report_dir.iterdir()) == []
    assert not (tmp_path / "rollbacks").exists() and not (tmp_path / "rollback_history.log").exists()


def test_runs_of_one_minute_get_distinct_incident_ids(tmp_path):
    """Five runs in one minute (the runbook's ROLL-YYYYmmdd-HHMM gave them all one ID), two of
    them with two hosts reporting in the same second: every incident ID differs."""
    play, inventory = _report_play(tmp_path, hosts=2)
    report_dir = tmp_path / "reports"
    report_dir.mkdir()
    extra = {"report_type": "immediate", "report_dir": str(report_dir), "report_archive_env": False,
             "stack_project_dir": str(tmp_path), "stack_compose_project": "tdids", "report_state_after": {"services": []}}
    for dummy in range(3):
        proc = _run(play, inventory, extra)
        assert proc.returncode == 0, proc.stdout[-3000:]
    lines = (report_dir / "rollback_history.log").read_text().splitlines()
    ids = [line.split()[1] for line in lines]
    assert len(ids) == 6 and len(set(ids)) == 6, ids
    for line, incident in zip(lines, ids):
        stamp = line.split()[0]  # 2026-11-25T22:15:03Z
        assert re.fullmatch(r"ROLL-\d{8}-\d{6}-[0-9a-f]{4}", incident)
        assert incident[5:20] == stamp[0:4] + stamp[5:7] + stamp[8:10] + "-" + stamp[11:13] + stamp[14:16] + stamp[17:19]
