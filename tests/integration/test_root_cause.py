"""The first failure of a rollback is its cause (issue 10, item 5): a later failure - here the
report that cannot be written - is added after it, never instead of it. Needs Docker (the stack
role asks it about a compose project that does not exist) but no reference stack."""
from __future__ import annotations

import json
import re

import pytest

from conftest import REPO, run_playbook, write_inventory

pytestmark = pytest.mark.integration

FATAL = re.compile(r'^fatal: \[(\S+)\]: FAILED! => (\{.*\})$', re.M)


@pytest.mark.parametrize("playbook, extra", [("rollback_immediate.yml", {}),
                                             ("rollback_database.yml", {"database_action": "restore"})])
def test_a_later_failure_is_added_after_the_cause(tmp_path, playbook, extra):
    project = tmp_path / "project"
    project.mkdir()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("the report cannot be written under a file\n")
    stack = {"stack_project_dir": str(project), "stack_compose_project": "tdcause",
             "stack_services": [{"name": svc, "image": "tdcause_" + svc, "health_url": "http://127.0.0.1:9/"}
                                for svc in ("backend", "frontend")],
             "report_dir": str(blocker), "report_archive_env": False}
    proc = run_playbook(REPO / "playbooks" / playbook, extra_vars=dict(stack, **extra),
                        inventory=write_inventory(tmp_path), timeout=300)
    assert proc.returncode != 0
    final = [json.loads(m.group(2))["msg"] for m in FATAL.finditer(proc.stdout)]
    final = [m for m in final if m.startswith("Rollback failed: ")]
    assert len(final) == 1, proc.stdout[-4000:]
    cause, *later = final[0][len("Rollback failed: "):].split("; then: ")
    # The cause: the stack role found no compose project to roll back.
    # (the lock and the snapshot are one module run: the failed snapshot released the lock it took)
    assert cause.startswith("Take the rollback lock, check Docker and the compose project, and snapshot "
                            "the current state: snapshot: Compose file "), final[0]
    assert "was released again" in cause, final[0]
    # Then: the report could not be written.
    assert len(later) == 1 and "Write the incident report" in later[0], final[0]
    assert not (project / ".rollback.lock").exists()
