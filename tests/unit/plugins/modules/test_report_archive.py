"""Unit tests of report_archive's input checks. Writing real files, the history lock and check
mode: tests/integration/test_report_archive.py."""
from __future__ import annotations

import pytest

from ansible_collections.taylordash.rollback.plugins.modules import report_archive as mod


def params(tmp_path, **over):
    base = {"archive_dir": str(tmp_path / "rollbacks" / "20261125_141801"), "dir_mode": "0750",
            "documents": [{"name": "r.md", "content": "x", "mode": "0644"}],
            "copies": [], "log_path": None, "log_line": None}
    base.update(over)
    return base


@pytest.mark.parametrize("value, mode", [("0644", 0o644), ("644", 0o644), (0o600, 0o600), (420, 0o644),
                                         ("0750", 0o750), (" 0600 ", 0o600)])
def test_parse_mode_accepts_octal_forms(value, mode):
    assert mod.parse_mode(value, "m") == (mode, None)


@pytest.mark.parametrize("value", ["rw-r--r--", "0o644x", "8", "", "77777"])
def test_parse_mode_refuses_the_rest(value):
    parsed, err = mod.parse_mode(value, "documents[0].mode")
    assert parsed is None and err.startswith("documents[0].mode: mode ")


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", "x\0y"])
def test_names_must_be_plain(name):
    assert "is not a plain file name" in mod.check_name(name, "documents[0].name")


def test_valid_input_has_no_problems(tmp_path):
    problems, modes = mod.validate(params(tmp_path))
    assert problems == [] and modes == {"dir": 0o750, "documents[0]": 0o644}


def test_every_problem_is_listed_at_once(tmp_path):
    directory = tmp_path / "a-directory"
    directory.mkdir()
    problems, dummy_modes = mod.validate(params(
        tmp_path,
        documents=[{"name": "r.md", "content": "x", "mode": "0644"}, {"name": "r.md", "content": "y", "mode": "x"}],
        copies=[{"src": str(directory), "name": "env", "mode": "0600", "missing_ok": True},
                {"src": str(tmp_path / "missing"), "name": "env2", "mode": "0600", "missing_ok": False}],
        log_path=str(tmp_path / "log"), log_line=None))
    text = "; ".join(problems)
    assert "documents[1].name: 'r.md' is written twice" in text
    assert "documents[1].mode: mode 'x' is not an octal file mode" in text
    assert "copies[0].src: %s is not a regular file" % directory in text
    assert "copies[1].src: %s does not exist" % (tmp_path / "missing") in text
    assert "log_line is required with log_path" in text


def test_existing_archive_is_refused(tmp_path):
    archive = tmp_path / "rollbacks" / "20261125_141801"
    archive.mkdir(parents=True)
    problems, dummy_modes = mod.validate(params(tmp_path))
    assert len(problems) == 1 and "exists already" in problems[0]


def test_copy_name_may_not_repeat_a_document(tmp_path):
    env = tmp_path / ".env"
    env.write_text("A=1\n")
    copies = [{"src": str(env), "name": "r.md", "mode": "0600", "missing_ok": True}]
    problems, dummy_modes = mod.validate(params(tmp_path, copies=copies))
    assert problems == ["copies[0].name: 'r.md' is written twice"]
