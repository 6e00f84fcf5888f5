"""A snapshot reads files of the project directory only (issue 10: ../../etc/shadow was hashed)."""
from __future__ import annotations

import hashlib
import os

from ansible_collections.taylordash.rollback.plugins.module_utils._file_snapshot import (
    file_snapshot, outside_project)


def test_inside_and_outside(tmp_path):
    project = tmp_path / "proj"
    (project / "sub").mkdir(parents=True)
    (tmp_path / "secret").write_text("x")
    os.symlink(str(tmp_path / "secret"), str(project / "out"))
    os.symlink("sub", str(project / "in"))
    p = str(project)
    assert outside_project(p, ".env") is None
    assert outside_project(p, "sub/../.env") is None
    assert outside_project(p, "in/x") is None
    assert outside_project(p, str(project / ".env")) is None
    assert "outside the project directory" in outside_project(p, "../secret")
    assert "resolves to %s" % (tmp_path / "secret") in outside_project(p, "out")
    assert outside_project(p, "/etc/passwd") is not None
    assert outside_project(p + "x", "../proj/.env") is not None  # a sibling sharing the prefix
    assert outside_project(p, "a\x00b") == "the name contains a NUL byte"
    assert outside_project(p, "/etc/compose.yml", allowed=["/etc/compose.yml"]) is None


def test_file_snapshot(tmp_path):
    (tmp_path / ".env").write_bytes(b"A=1\n")
    os.chmod(tmp_path / ".env", 0o600)
    info = file_snapshot(str(tmp_path), ".env")
    assert info["sha256"] == hashlib.sha256(b"A=1\n").hexdigest()
    assert (info["exists"], info["size"], info["mode"]) == (True, 4, "0600")
    assert file_snapshot(str(tmp_path), "none") == {"path": str(tmp_path / "none"), "exists": False}
