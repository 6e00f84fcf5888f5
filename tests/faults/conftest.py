"""The one reference stack the fault matrix shares (session scope: every file of tests/faults),
and the helpers each fault case uses: run a rollback playbook with its own report directory,
read the report it wrote, and prove that nothing was lost and the lock is free."""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, _stack_maker, run_module, run_playbook, write_inventory

PLAYBOOKS = REPO / "playbooks"
SERVICES = ("backend", "frontend")
# Validation is exercised by its own faults; elsewhere a short latency sample keeps runs quick.
QUICK = {"validate_perf_samples": 3, "validate_perf_warmup": 0}


class FaultStack:
    """A ReferenceStack plus what the fault cases do with it."""

    def __init__(self, stack, work: Path):
        self.stack = stack
        self.dir = stack.dir
        self.work = work
        self.prefix = stack.env["TD_IMAGE_PREFIX"]
        self.inventory = write_inventory(work)
        self.secrets = stack.secrets_file(work)
        self.lock = self.dir / ".rollback.lock"
        self.cases = 0

    # ------------------------------------------------------------------ running a rollback
    def case_dir(self, name: str) -> Path:
        self.cases += 1
        path = self.work / f"{self.cases:02d}-{name}"
        path.mkdir()
        return path

    def extra_vars(self, report_dir: Path, **overrides) -> dict:
        return self.stack.stack_vars(**dict(QUICK, report_dir=str(report_dir), **overrides))

    def run(self, playbook: str, report_dir: Path, env: dict | None = None, timeout: float = 300, **overrides):
        proc = run_playbook(PLAYBOOKS / playbook, extra_vars=self.extra_vars(report_dir, **overrides),
                            inventory=self.inventory, vars_files=[self.secrets], env=env, timeout=timeout)
        # Kept beside the report for a look after a failure (pytest's basetemp).
        (report_dir / "ansible-playbook.log").write_text(proc.stdout + proc.stderr)
        return proc

    # ------------------------------------------------------------------ state of the stack
    def tags(self) -> dict:
        return self.stack.tags()

    def containers(self) -> dict:
        return self.stack.containers()

    def files(self) -> dict:
        """sha256 of every file of the project directory (the lock file aside)."""
        out = {}
        for path in sorted(self.dir.rglob("*")):
            if path.is_file() and path != self.lock:
                out[str(path.relative_to(self.dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
        return out

    def health(self):
        try:
            with urllib.request.urlopen(self.stack.url("backend", "/health/ready"), timeout=3) as resp:
                return resp.status, json.load(resp)
        except Exception as exc:  # noqa: BLE001 - any failure means not healthy
            return None, str(exc)

    def wait_version(self, version: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self.health()
            if status == 200 and body.get("version") == version:
                return
            time.sleep(0.2)
        raise AssertionError(f"backend of {self.stack.name} not healthy at {version}: {self.health()}")

    # ------------------------------------------------------------------ setting a case up
    def tag(self, service: str, source: str, tag: str) -> None:
        subprocess.run(["docker", "tag", source, f"{self.prefix}_{service}:{tag}"], check=True,
                       capture_output=True)

    def untag(self, ref: str) -> None:
        subprocess.run(["docker", "image", "rm", "--no-prune", ref], check=True, capture_output=True)

    def reset(self, running: str = "v1", previous: str | None = "v1", fault: str = "none") -> None:
        """:latest = tdref_<service>:<running> (running), :previous = <previous> (None: no
        :previous), TD_FAULT=<fault>, no rollback-* tags, no lock. A bad build runs only when
        asked to (running="v2")."""
        for ref in self.tags():
            if ":rollback-" in ref or ref.endswith(":previous"):
                self.untag(ref)
        for service in SERVICES:
            self.tag(service, f"tdref_{service}:{running}", "latest")
            if previous:
                self.tag(service, f"tdref_{service}:{previous}", "previous")
        self.lock.unlink(missing_ok=True)
        # Writes TD_FAULT into .env and recreates the backend on its :latest.
        self.stack.ctl("fault", "--dir", str(self.dir), fault)
        self.stack.compose("up", "-d", "--pull", "never", "--no-deps", *SERVICES)
        if running != "v2":
            self.wait_version(running)

    def snapshot(self) -> dict:
        return {"tags": self.tags(), "containers": self.containers(), "files": self.files()}


@pytest.fixture(scope="session")
def fault_stack(tmp_path_factory):
    """One reference stack (v1) for the whole matrix; each case sets the state it needs with
    FaultStack.reset and leaves it to the next case's reset."""
    make, made = _stack_maker(tmp_path_factory)
    try:
        stack = make("flt")
        yield FaultStack(stack, tmp_path_factory.mktemp("faults"))
    finally:
        for stack in made:
            stack.down()


# ---------------------------------------------------------------------- assertions shared by cases

def report_of(report_dir: Path) -> tuple:
    """(JSON, Markdown) of the one report the run wrote into report_dir."""
    found = sorted(report_dir.glob("rollbacks/*/rollback_report_*.json"))
    assert len(found) == 1, f"expected one report in {report_dir}, found {found}"
    return json.loads(found[0].read_text()), found[0].with_suffix(".md").read_text()


def assert_report_names_first_cause(report_dir: Path, first_cause: str, later: tuple = ()) -> dict:
    """The report says FAILED and its failure names the first cause (a regular expression),
    before any later failure (cleanup, restart, ...) the run also met."""
    data, md = report_of(report_dir)
    assert data["outcome"] == "FAILED", data["outcome"]
    failure = data["failure"] or ""
    match = re.search(first_cause, failure)
    assert match, f"the report's failure does not name the first cause /{first_cause}/: {failure!r}"
    for fragment in later:
        if fragment in failure:
            assert failure.index(fragment) > match.start(), (
                f"a later failure ({fragment!r}) comes before the first cause in {failure!r}")
    assert failure in md, "the Markdown report does not carry the failure"
    return data


def assert_lock_free(fs: FaultStack, path: Path | None = None) -> None:
    """No lock file, and a new holder gets the lock at once."""
    path = path or fs.lock
    assert not path.exists(), f"lock left behind: {path.read_text() if path.exists() else ''}"
    taken = run_module("rollback_lock", {"path": str(path), "state": "present", "holder": "fault matrix",
                                         "reason": "is the lock free?", "wait_timeout": 0})
    assert taken.get("acquired"), taken
    run_module("rollback_lock", {"path": str(path), "state": "absent", "token": taken["lock"]["token"]})


def assert_images_kept(before: dict, after: dict) -> None:
    """Every image ID the stack's tags pointed at before is still tagged afterwards."""
    lost = set(before.values()) - set(after.values())
    assert not lost, f"images no longer tagged: {sorted(lost)} (before {before}, after {after})"
