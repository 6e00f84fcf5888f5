"""Fault matrix, complete and partial rollback paths (playbooks/rollback_complete.yml,
playbooks/rollback_partial.yml) on the shared reference stack. Each test's docstring is its row
of the matrix: ``Fault: ... -> Outcome: ...``. Every case asserts that nothing is lost (tags,
containers and files as before), that the lock is free afterwards, and that the report names
the first cause. Each case removes the files it planted, leaving the stack as it found it."""
from __future__ import annotations

import json

import pytest

from .conftest import assert_lock_free, assert_report_names_first_cause

pytestmark = [pytest.mark.integration, pytest.mark.faults]

NEWER = "20991231_235959"  # newer than any backup set a deploy writes, so the set chooses it


def _planted(fs, files: dict):
    paths = []
    for name, content in files.items():
        path = fs.dir / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        paths.append(path)
    return paths


def test_complete_compose_backup_rejected(fault_stack):
    """Fault: complete rollback whose newest backup set holds a compose file that `docker compose
    config` rejects -> Outcome: fails before any change (no file replaced, no tag moved, no
    container recreated); lock free; report FAILED naming the compose validation."""
    fs = fault_stack
    fs.reset(running="v1", previous="v1")
    planted = _planted(fs, {f".env.backup.{NEWER}": (fs.dir / ".env").read_bytes(),
                            f"docker-compose.backup.{NEWER}": "services:\n  backend:\n    image: [1, 2]\n"})
    try:
        before = fs.snapshot()
        case = fs.case_dir("complete-compose-rejected")
        proc = fs.run("rollback_complete.yml", case)
        assert proc.returncode != 0
        assert "Complete rollback: FAILED" in proc.stdout
        assert fs.snapshot() == before
        assert not list(fs.dir.glob("*.rollback-*")) and not list(fs.dir.glob(".env.rollback-*"))
        assert_lock_free(fs)
        data = assert_report_names_first_cause(case, r"(?i)compose")
        assert data["type"] == "complete"
    finally:
        for path in planted:
            path.unlink(missing_ok=True)


def test_partial_plugins_backup_not_json(fault_stack):
    """Fault: partial rollback whose plugins_config backup is not JSON -> Outcome: fails before any
    change (no plugin disabled through the API, plugins_config.json as before, the backend not
    restarted); lock free; report FAILED naming the JSON validation."""
    fs = fault_stack
    fs.reset(running="v1", previous="v1")
    live = fs.dir / "plugins_config.json"
    original = live.read_bytes()
    config = json.loads(original)
    config["plugins"].append({"name": "problematic-plugin", "version": "0.1.0", "enabled": True})
    live.write_text(json.dumps(config, indent=2) + "\n")
    planted = _planted(fs, {"plugins_config.broken.json": "{\"plugins\": [\n"})
    try:
        before = fs.snapshot()
        case = fs.case_dir("partial-backup-not-json")
        proc = fs.run("rollback_partial.yml", case, partial_actions=["plugins"],
                      partial_plugins_disable=["problematic-plugin"], partial_plugins_backup="plugins_config.broken.json")
        assert proc.returncode != 0
        assert fs.snapshot() == before
        assert "problematic-plugin" in live.read_text()
        assert_lock_free(fs)
        data = assert_report_names_first_cause(case, r"(?i)json")
        assert data["type"] == "partial"
    finally:
        for path in planted:
            path.unlink(missing_ok=True)
        live.write_bytes(original)
