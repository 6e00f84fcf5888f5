"""Helpers for the playbook tests of the validate and report roles.

``PlaybookStack`` runs the collection's playbooks against a ``ReferenceStack`` the way
tests/conftest.py does (``run_playbook`` with ``write_inventory``, ``stack.stack_vars()`` and the
stack's secrets in a 0600 file passed with ``-e @file``), and can read the facts a run set from the
``ansible.posix.json`` callback's output.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import REPO, run_playbook, write_inventory

PLAYBOOKS = REPO / "playbooks"


class PlaybookStack:
    def __init__(self, stack, workdir: Path):
        self.stack = stack
        self.dir = stack.dir
        self.work = Path(workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.inventory = write_inventory(self.work)
        self.secrets_file = stack.secrets_file(self.work)

    @property
    def secrets(self) -> list:
        env = self.stack.env
        return [env["TD_API_KEY"], env["TD_ADMIN_PASSWORD"]]

    def run(self, playbook: str, extra_vars: dict | None = None, check: bool = False, verbosity: int = 0,
            json_output: bool = False, timeout: float = 300):
        env = {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"} if json_output else None
        return run_playbook(PLAYBOOKS / playbook, extra_vars=self.stack.stack_vars(**(extra_vars or {})),
                            check=check, inventory=self.inventory, vars_files=[self.secrets_file],
                            verbosity=verbosity, env=env, timeout=timeout)

    def tree(self) -> dict:
        """Every path under the stack directory with its size, mtime and mode, to prove nothing was written."""
        out = {}
        for path in sorted(self.dir.rglob("*")):
            st = path.lstat()
            out[str(path.relative_to(self.dir))] = (st.st_size, st.st_mtime_ns, st.st_mode)
        return out

    def wait_backend(self, predicate, deadline: float = 30.0):
        """Poll /health/ready until predicate(status, body) holds (bounded, no fixed sleep)."""
        url = self.stack.url("backend", "/health/ready")
        end = time.monotonic() + deadline
        last = None
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    last = (resp.status, json.load(resp))
            except urllib.error.HTTPError as exc:
                last = (exc.code, json.loads(exc.read() or b"{}"))
            except (OSError, ValueError):
                last = None
            if last and predicate(*last):
                return last
            time.sleep(0.1)
        raise AssertionError(f"backend never reached the wanted state; last answer {last}")


def task_results(json_stdout: str) -> list:
    """(task name, host result) pairs from the ansible.posix.json callback's output, in order."""
    data = json.loads(json_stdout[json_stdout.index("{"):])
    out = []
    for play in data["plays"]:
        for task in play["tasks"]:
            for _host, result in task["hosts"].items():
                out.append((task["task"]["name"], result))
    return out


def fact(json_stdout: str, name: str):
    """The last value set_fact gave ``name`` during the run."""
    value = None
    found = False
    for _task, result in task_results(json_stdout):
        facts = result.get("ansible_facts") or {}
        if name in facts:
            value, found = facts[name], True
    if not found:
        raise AssertionError(f"no task set the fact {name}")
    return value


def result_of(json_stdout: str, task_name: str) -> dict:
    """The result of the last task of that name (with or without its role prefix)."""
    found = [result for name, result in task_results(json_stdout)
             if name == task_name or name.endswith(" : " + task_name)]
    if not found:
        raise AssertionError(f"no task named {task_name!r} ran")
    return found[-1]
