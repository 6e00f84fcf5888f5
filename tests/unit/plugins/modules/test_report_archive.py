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


# --- issue 10: every option fuzzed, paths kept inside tmp_path ------------------------------

import os  # noqa: E402
import sys  # noqa: E402

from hypothesis import strategies as st  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from module_fuzz import ModuleFuzz, strategy_for  # noqa: E402

# Relative names: the harness runs main() in the test's tmp_path, so nothing lands elsewhere.
_PLACES = st.sampled_from(["arch", "rollbacks/2026", "a/b/c/d", "", ".", "..arch", "a\x00b", "x" * 300,
                           "src.txt", "é/ü"])
_SOURCES = st.sampled_from(["src.txt", "missing.txt", "srcdir", "", "a\x00b", "x" * 300])
_COPY = st.fixed_dictionaries({"src": _SOURCES, "name": strategy_for({"type": "str"})},
                              optional={"mode": strategy_for({"type": "raw"}),
                                        "missing_ok": strategy_for({"type": "bool"})})

FUZZ = ModuleFuzz(mod, base_args={"archive_dir": "arch", "documents": [{"name": "r.md", "content": "x"}],
                                  "log_path": "history.log", "log_line": "fuzz"},
                  strategies={"archive_dir": _PLACES, "log_path": _PLACES,
                              "copies": st.one_of(st.lists(_COPY, max_size=3), st.none())},
                  deadline=10)


def _fresh(tmp_path):
    """tmp_path is shared by the examples: an empty one with a source file and a directory."""
    import shutil
    for entry in os.listdir(tmp_path):
        full = os.path.join(tmp_path, entry)
        shutil.rmtree(full) if os.path.isdir(full) and not os.path.islink(full) else os.unlink(full)
    (tmp_path / "src.txt").write_text("TD_API_KEY=s3cr3t-marker\n")
    (tmp_path / "srcdir").mkdir()


@FUZZ.given_options(max_examples=80)
def test_any_option_value_ends_cleanly(option_and_value, tmp_path):
    _fresh(tmp_path)
    FUZZ.check(option_and_value, cwd=tmp_path, check_mode=True)
    _fresh(tmp_path)
    kind, result = FUZZ.check(option_and_value, cwd=tmp_path, check_mode=False)
    assert "s3cr3t-marker" not in str(result)  # file contents never in the result


def test_a_nul_byte_in_a_path_is_refused_before_writing(tmp_path):
    """Before: ValueError (embedded null byte) escaped from os.makedirs/os.open."""
    _fresh(tmp_path)
    for option in ("archive_dir", "log_path"):
        kind, result = FUZZ.run({option: "a\x00b"}, cwd=tmp_path)
        assert kind == "fail" and "%s must not contain a NUL byte" % option in result["msg"]
    kind, result = FUZZ.run({"copies": [{"src": "a\x00b", "name": "c"}]}, cwd=tmp_path)
    assert kind == "fail" and "copies[0].src must not contain a NUL byte" in result["msg"]
    assert sorted(os.listdir(tmp_path)) == ["src.txt", "srcdir"]


def test_written_files_carry_the_same_checksums_and_timing(tmp_path):
    _fresh(tmp_path)
    kind, result = FUZZ.run({"copies": [{"src": "src.txt", "name": "env"}]}, cwd=tmp_path)
    assert kind == "exit", result
    import hashlib
    assert [f["sha256"] for f in result["files"]] == [hashlib.sha256(b"x").hexdigest(),
                                                      hashlib.sha256(b"TD_API_KEY=s3cr3t-marker\n").hexdigest()]
    assert set(result["timing"]) == {"start", "end", "seconds"}
