"""Property tests (Hypothesis, module_fuzz.py) of validate_p1's argument handling: every option,
values of its type and worse, one at a time; the module ends in exit_json or fail_json with a msg,
never a traceback or a hang. The script and chdir the module may run stay inside tmp_path: their
strategies generate relative paths that cannot climb out (no "..", "~", "$" or leading "/")."""
from __future__ import annotations

import os

import pytest
from hypothesis import strategies as st

from module_fuzz import HOSTILE_TEXT, ModuleFuzz

from ansible_collections.taylordash.rollback.plugins.modules import validate_p1

SCRIPT = "#!/bin/sh\necho '[PASS] a - ok'\necho '[PASS] b'\necho 'Summary: 2/2 checks passed (100%)'\n"


def stays_inside(path):
    """A relative path that resolves inside the working directory (tmp_path)."""
    if not path or path.startswith(("/", "~")) or "$" in path:
        return False
    return not os.path.normpath(path).startswith("..")


def inside_paths():
    hostile = [p for p in HOSTILE_TEXT if stays_inside(p)] + [
        "check.sh", "./check.sh", "sub/../check.sh", "missing.sh", "plain.txt", "noexec.sh", "sub", ".",
        "check.sh\x00", "\u00e9\u00fc.sh", "x" * 300]
    return st.one_of(st.sampled_from(hostile), st.text(max_size=30).filter(stays_inside), st.none())


@pytest.fixture
def scripts(tmp_path):
    (tmp_path / "check.sh").write_text(SCRIPT)
    (tmp_path / "check.sh").chmod(0o755)
    (tmp_path / "noexec.sh").write_text(SCRIPT)
    (tmp_path / "plain.txt").write_text("[PASS] a\n")
    (tmp_path / "plain.txt").chmod(0o755)  # no #! line: ENOEXEC
    (tmp_path / "sub").mkdir()
    return tmp_path


FUZZ = ModuleFuzz(
    validate_p1,
    base_args={"script": "check.sh", "timeout": 10, "kill_grace": 1},
    strategies={"script": inside_paths(), "chdir": inside_paths()},
    deadline=15,
)


@FUZZ.given_options(max_examples=80)
def test_validate_p1_any_option(option_and_value, scripts):
    name, value = option_and_value
    kind, result = FUZZ.check(option_and_value, cwd=scripts)
    if name == "env" and isinstance(value, dict) and kind == "exit":
        assert result["pass_rate"] == 100.0


SKIP_FUZZ = ModuleFuzz(
    validate_p1,
    base_args={"script": "check.sh", "timeout": 10, "kill_grace": 1, "missing": "skip"},
    strategies={"script": inside_paths(), "chdir": inside_paths()},
    deadline=15,
)


@SKIP_FUZZ.given_options(max_examples=40)
def test_validate_p1_missing_skip_any_option(option_and_value, scripts):
    """missing=skip: a script that is not there is a skipped task (found false, nothing ran);
    one that is there is judged as with missing=fail."""
    name, value = option_and_value
    kind, result = SKIP_FUZZ.check(option_and_value, cwd=scripts)
    if kind == "exit" and result.get("skipped"):
        assert result["found"] is False and "rc" not in result
        assert not os.path.lexists(os.path.join(str(scripts), result["script"]))
    elif kind == "exit":
        assert result["found"] is True
