# -*- coding: utf-8 -*-
# Copyright: (c) 2025, TaylorDash operations team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""taylordash.rollback.validate_p1: documentation, argument handling and decisions.

The script runner is replaced by a fake that returns captured output, so these tests start no
process; tests/integration/test_validate_p1_module.py runs real scripts.
"""
from __future__ import annotations

import errno
import json
import os
import re

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from ansible_collections.taylordash.rollback.plugins.module_utils._process import RunOutput
from ansible_collections.taylordash.rollback.plugins.module_utils._validate_output import (
    build_patterns,
    parse_output,
    split_output,
)
from merged_doc import merged_documentation

from ansible_collections.taylordash.rollback.plugins.modules import validate_p1 as mod

# Keys every Ansible result may carry besides the module's own.
STANDARD_KEYS = {"changed", "failed", "invocation", "warnings", "deprecations", "msg"}

DOC = merged_documentation(mod)
RETURN = yaml.safe_load(mod.RETURN)
EXAMPLES = yaml.safe_load(mod.EXAMPLES)


def _warnings(result):
    out = []
    for item in result.get("warnings", []):
        out.append(item["event"]["msg"] if isinstance(item, dict) else item)
    return out


def fake_run(text="", stderr="", rc=0, timed_out=False, exited=False, stop_signal=None, duration=0.25):
    out_lines, err_lines = split_output(text), split_output(stderr)
    return RunOutput(rc, out_lines, err_lines, out_lines + err_lines, duration, timed_out, exited, stop_signal)


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "ops" / "validate_p1.sh"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def runner(monkeypatch, capsys):
    """call(args, run) runs main() in-process with run_script faked; returns (result, calls)."""

    def call(args, run=None, raises=None):
        calls = []

        def fake(argv, cwd, env, timeout, kill_grace):
            calls.append(dict(argv=argv, cwd=cwd, env=env, timeout=timeout, kill_grace=kill_grace))
            if raises is not None:
                raise raises
            if run is None:
                raise AssertionError("run_script must not be called")
            return run

        monkeypatch.setattr(mod, "run_script", fake)
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                mod.main()
        result = json.loads(capsys.readouterr().out)
        result.setdefault("failed", False)
        return result, calls

    return call


ALL_PASS = """\
== TaylorDash P1 ==
[PASS] backend_health - HTTP 200 version=v1 (0.004s)
[PASS] api_projects - HTTP 200 (0.010s)
[PASS] frontend
Summary: 3/3 checks passed (100.0%)
"""

ONE_FAIL = """\
[PASS] backend_health - HTTP 200 version=v1 (0.004s)
[FAIL] api_projects - HTTP 500 (0.003s)
[PASS] frontend
[PASS] a
[PASS] b
[PASS] c
[PASS] d
[PASS] e
[PASS] f
Summary: 8/9 checks passed (88.9%)
"""


# ---------------------------------------------------------------- documentation ----

def _captured_spec(monkeypatch):
    captured = {}

    class Stop(Exception):
        pass

    def fake_module(argument_spec, **kwargs):
        captured.update(kwargs, argument_spec=argument_spec)
        raise Stop()

    monkeypatch.setattr(mod, "build_module", fake_module)
    with pytest.raises(Stop):
        mod.main()
    return captured


def test_documented_options_match_argument_spec(monkeypatch):
    captured = _captured_spec(monkeypatch)
    spec = captured["argument_spec"]
    options = DOC["options"]
    assert set(spec) == set(options)
    for name, entry in spec.items():
        doc = options[name]
        assert doc["type"] == entry["type"], name
        assert doc.get("default") == entry.get("default"), name
        assert doc.get("elements") == entry.get("elements"), name
        assert doc.get("required", False) == entry.get("required", False), name
        assert doc["description"], name
    assert spec["env"]["no_log"] is True
    assert captured["supports_check_mode"] is True


def test_documentation_header():
    assert DOC["module"] == "validate_p1"
    assert DOC["author"] == "TaylorDash operations team (@taylordash)"
    assert DOC["attributes"]["check_mode"]["support"] == "full"
    assert DOC["attributes"]["diff_mode"]["support"] == "none"
    with open(mod.__file__, encoding="utf-8") as handle:
        head = handle.read(400)
    assert head.startswith("#!/usr/bin/python\n# -*- coding: utf-8 -*-\n")
    assert "GPL-3.0-or-later" in head
    assert "from __future__ import (absolute_import, division, print_function)\n__metaclass__ = type" in head


def test_examples_use_fqcn_and_valid_patterns():
    for task in EXAMPLES:
        modules = [key for key in task if "." in key]
        assert modules, task["name"]
        args = task.get("taylordash.rollback.validate_p1")
        if args:
            build_patterns(**{k: v for k, v in args.items() if k.endswith(("_pattern", "_values"))})


def _example_and_output(marker):
    """The example task whose name contains marker, and the output printed in its comment."""
    blocks = mod.EXAMPLES.split("\n- name: ")
    for index, block in enumerate(blocks):
        if marker in block.split("\n", 1)[0]:
            comment = [line[4:] for line in blocks[index - 1].splitlines() if line.startswith("#   ")]
            task = next(t for t in EXAMPLES if marker in t["name"])
            return task["taylordash.rollback.validate_p1"], "\n".join(comment) + "\n"
    raise AssertionError(marker)


@pytest.mark.parametrize("marker, expected", [
    ("emoji", dict(passed=2, failed=1, skipped=1, warnings=1, total=3, failed_checks=["Frontend"],
                   warning_checks=["Auth response time"], skipped_checks=["Plugins"], problems=[],
                   unrecognized=[])),
    ("PASS/FAIL and a colon", dict(passed=1, failed=1, total=2, failed_checks=["frontend"], problems=[],
                                   summary={"passed": 1, "total": 2, "rate": None,
                                            "line": "1 of 2 checks passed"})),
])
def test_documented_pattern_examples_parse_their_sample_output(marker, expected):
    args, output = _example_and_output(marker)
    assert output.strip(), "the example shows no sample output"
    patterns = build_patterns(**{k: v for k, v in args.items() if k.endswith(("_pattern", "_values"))})
    result = parse_output(output, patterns).as_dict()
    for key, value in expected.items():
        assert result[key] == value, key


def _documented_keys():
    return set(RETURN)


@pytest.mark.parametrize("case", ["success", "below", "no_results", "timeout", "missing", "missing_skip"])
def test_every_returned_key_is_documented(case, runner, script, tmp_path):
    if case == "missing":
        result, dummy = runner({"script": str(tmp_path / "nope.sh")})
    elif case == "missing_skip":
        result, dummy = runner({"script": str(tmp_path / "nope.sh"), "missing": "skip"})
        result.pop("skipped")
    else:
        run = {
            "success": fake_run(ALL_PASS),
            "below": fake_run(ONE_FAIL, rc=1),
            "no_results": fake_run("hello\n"),
            "timeout": fake_run("[PASS] a\n", rc=-15, timed_out=True, stop_signal="SIGTERM"),
        }[case]
        result, dummy = runner({"script": str(script)}, run)
    undocumented = set(result) - _documented_keys() - STANDARD_KEYS
    assert not undocumented
    always = {k for k, v in RETURN.items() if v["returned"] == "always"}
    assert always <= set(result)
    if not case.startswith("missing"):
        ran = {k for k, v in RETURN.items() if v["returned"] == "when the script ran"}
        assert ran <= set(result), ran - set(result)


def test_reserved_result_keys_are_not_counts(runner, script):
    result, dummy = runner({"script": str(script)}, fake_run(ALL_PASS))
    assert result["failed"] is False
    assert "skipped" not in result
    for item in result.get("warnings", []):
        assert not isinstance(item, int)


# ------------------------------------------------------------------- helpers ----

@pytest.mark.parametrize("script, chdir, cwd, expected", [
    ("./ops/validate_p1.sh", "/opt/taylordash", "/home/x", "/opt/taylordash/ops/validate_p1.sh"),
    ("ops/validate_p1.sh", None, "/home/x", "/home/x/ops/validate_p1.sh"),
    ("/usr/local/bin/v.sh", "/opt/taylordash", "/home/x", "/usr/local/bin/v.sh"),
    ("../shared/v.sh", "/opt/taylordash/", "/", "/opt/shared/v.sh"),
    ("v.sh", "/opt/taylordash", "/", "/opt/taylordash/v.sh"),
])
def test_resolve_script(script, chdir, cwd, expected):
    assert mod.resolve_script(script, chdir, cwd) == expected


def test_script_option_expands_home(runner, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    result, calls = runner({"script": "~/absent.sh", "chdir": "/"})
    assert result["script"] == str(tmp_path / "absent.sh")
    assert "resolved against" not in result["msg"]


def test_build_env_sets_locale_and_lets_env_override():
    env = mod.build_env({"PATH": "/bin", "LANG": "de_DE.UTF-8"}, {"API_KEY": "k", "N": 3, "E": None})
    assert env == {"PATH": "/bin", "LANG": "C", "LC_ALL": "C", "API_KEY": "k", "N": "3", "E": ""}
    assert mod.build_env({}, {"LC_ALL": "C.UTF-8"})["LC_ALL"] == "C.UTF-8"
    assert mod.build_env({"A": "1"}, None) == {"A": "1", "LC_ALL": "C", "LANG": "C"}


def test_module_starts_no_process_itself():
    # ansible-test validate-modules (use-run-command-not-popen): the runner is in module_utils/_process.py.
    source = open(mod.__file__, encoding="utf-8").read()
    assert "subprocess" not in source and "Popen" not in source


# ----------------------------------------------------------------- decisions ----

def test_all_pass(runner, script, tmp_path):
    result, calls = runner({"chdir": str(tmp_path), "args": ["--quick", "a b"], "timeout": 30},
                           fake_run(ALL_PASS, duration=0.1234))
    assert result["failed"] is False and result["changed"] is False
    assert result["msg"] == "3/3 checks passed (100%), minimum 89%"
    assert (result["passed"], result["failed_count"], result["total"], result["pass_rate"]) == (3, 0, 3, 100.0)
    assert result["summary"] == {"passed": 3, "total": 3, "rate": 100.0, "line": "Summary: 3/3 checks passed (100.0%)"}
    assert result["script"] == str(script)
    assert result["cmd"] == [str(script), "--quick", "a b"]
    assert result["duration"] == 0.123
    assert result["rc"] == 0 and result["timed_out"] is False
    assert result["stdout_lines"][0] == "== TaylorDash P1 =="
    assert calls[0]["argv"] == [str(script), "--quick", "a b"]
    assert calls[0]["cwd"] == str(tmp_path)
    assert calls[0]["timeout"] == 30 and calls[0]["kill_grace"] == 5
    assert calls[0]["env"]["LC_ALL"] == "C"
    assert _warnings(result) == []


def test_runs_in_check_mode(runner, script):
    result, calls = runner({"script": str(script), "_ansible_check_mode": True}, fake_run(ALL_PASS))
    assert calls and result["failed"] is False and result["changed"] is False


def test_below_threshold_names_failed_checks(runner, script):
    result, dummy = runner({"script": str(script)}, fake_run(ONE_FAIL, rc=1))
    assert result["failed"] is True
    assert result["msg"] == "pass rate below the minimum 89%: 8/9 checks passed (88.9%); failed: api_projects"
    assert result["failed_checks"] == ["api_projects"] and result["pass_rate"] == 88.9
    assert result["min_pass_rate"] == 89


def test_threshold_is_inclusive_and_configurable(runner, script):
    result, dummy = runner({"script": str(script), "min_pass_rate": 88.8}, fake_run(ONE_FAIL, rc=1))
    assert result["failed"] is False
    assert result["msg"] == "8/9 checks passed (88.9%), minimum 88.8%; failed: api_projects"
    assert any("exited with rc 1" in w and "fail_on_rc" in w for w in _warnings(result))
    exact = "[PASS] a\n[FAIL] b\n"
    result, dummy = runner({"script": str(script), "min_pass_rate": 50}, fake_run(exact))
    assert result["failed"] is False and result["pass_rate"] == 50.0


def test_fail_on_rc(runner, script):
    result, dummy = runner({"script": str(script), "fail_on_rc": True}, fake_run(ALL_PASS, rc=2))
    assert result["failed"] is True
    assert "exited with rc 2 and fail_on_rc is true, although 3/3 checks passed (100%)" in result["msg"]
    result, dummy = runner({"script": str(script), "fail_on_rc": True}, fake_run(ALL_PASS, rc=0))
    assert result["failed"] is False


def test_nonzero_rc_alone_does_not_fail(runner, script):
    result, dummy = runner({"script": str(script)}, fake_run(ALL_PASS, rc=1))
    assert result["failed"] is False and result["rc"] == 1


def test_killed_by_signal_fails(runner, script):
    result, dummy = runner({"script": str(script)}, fake_run(ALL_PASS, rc=-9))
    assert result["failed"] is True
    assert "killed by signal 9 before it finished" in result["msg"]


def test_contradiction_shows_both_counts(runner, script):
    output = "[PASS] a\n[FAIL] api_projects\n[FAIL] frontend\nSummary: 9/9 checks passed (100%)\n"
    result, dummy = runner({"script": str(script)}, fake_run(output))
    assert result["failed"] is True
    assert "summary says 9/9 but the check lines show 1/3; 2 checks printed FAIL: api_projects, frontend" \
        in result["msg"]
    assert result["summary"]["passed"] == 9 and result["passed"] == 1


def test_summary_without_check_lines_shows_output(runner, script):
    result, dummy = runner({"script": str(script)}, fake_run("banner\nSummary: 9/9 checks passed\n"))
    assert result["failed"] is True
    assert "no check line was recognised" in result["msg"]
    assert "First lines of output: banner | Summary: 9/9 checks passed" in result["msg"]


def test_no_results_is_an_error_with_first_lines(runner, script):
    output = "".join("line %d\n" % i for i in range(30))
    result, dummy = runner({"script": str(script)}, fake_run(output, stderr="oops\n", rc=3))
    assert result["failed"] is True
    assert result["msg"].startswith("no check results found in the output of %s (rc=3)" % script)
    assert "First lines of output: line 0 | line 1" in result["msg"]
    assert "line 9" in result["msg"] and "line 10" not in result["msg"]
    assert result["pass_rate"] is None and result["total"] == 0


def test_no_output_at_all(runner, script):
    result, dummy = runner({"script": str(script)}, fake_run(""))
    assert result["failed"] is True
    assert "The script printed nothing." in result["msg"]


def test_zero_of_zero_summary_is_an_error(runner, script):
    result, dummy = runner({"script": str(script)}, fake_run("Summary: 0/0 checks passed (0%)\n"))
    assert result["failed"] is True
    assert "reported 0 checks ('Summary: 0/0 checks passed (0%)'); nothing was validated" in result["msg"]


def test_all_skipped_is_an_error(runner, script):
    result, dummy = runner({"script": str(script)}, fake_run("[SKIP] a\n[SKIP] b - disabled\n"))
    assert result["failed"] is True
    assert result["msg"] == "all 2 checks were skipped (a, b); nothing was validated"


def test_unknown_status_fails(runner, script):
    output = "[PASS] a\n[ERROR] database - refused\n"
    result, dummy = runner({"script": str(script)}, fake_run(output))
    assert result["failed"] is True
    assert "1 result line(s) have a status that is in none of pass_values" in result["msg"]
    assert "'[ERROR] database - refused' (line 2)" in result["msg"]
    result, dummy = runner({"script": str(script), "fail_values": ["FAIL", "ERROR"]}, fake_run(output))
    assert result["failed"] is True and result["failed_checks"] == ["database"]
    assert result["msg"].startswith("pass rate below the minimum 89%: 1/2 checks passed (50%)")


def test_warnings_and_duplicates_are_reported(runner, script):
    output = "[PASS] a\n[WARN] slow - 0.8s\n[PASS] a\n[SKIP] b\nSummary: 3/3 checks passed\n"
    result, dummy = runner({"script": str(script)}, fake_run(output))
    assert result["failed"] is False
    assert (result["passed"], result["warning_count"], result["skipped_count"], result["total"]) == (3, 1, 1, 3)
    assert result["warning_checks"] == ["slow"] and result["skipped_checks"] == ["b"]
    warnings = _warnings(result)
    assert "checks passed with a warning: slow" in warnings
    assert "check names printed more than once (each line was counted): a" in warnings


def test_timeout_message_lists_checks_seen(runner, script):
    run = fake_run("[PASS] backend_health\n[FAIL] api_projects\n", rc=-15, timed_out=True, stop_signal="SIGTERM")
    result, dummy = runner({"script": str(script), "timeout": 2.5}, run)
    assert result["failed"] is True and result["timed_out"] is True
    assert result["msg"] == (
        "%s timed out after 2.5 s and its process group was stopped with SIGTERM; checks seen so far: "
        "backend_health PASS, api_projects FAIL. Raise timeout or find the check that hangs." % script)


def test_timeout_without_checks_and_exited_script(runner, script):
    run = fake_run("", rc=0, timed_out=True, exited=True, stop_signal="SIGKILL")
    result, dummy = runner({"script": str(script), "timeout": 120}, run)
    assert "timed out after 120 s and its process group was stopped with SIGKILL" in result["msg"]
    assert "no check result was printed before that" in result["msg"]
    assert "processes it started kept its output open" in result["msg"]


def test_custom_emoji_patterns(runner, script):
    output = "\u2705 Backend health\n\u274c Frontend - HTTP 502\n\u2705 Database\n\U0001F4CA Pass rate: 66.7% (2/3)\n"
    args = {
        "script": str(script), "min_pass_rate": 60,
        "check_pattern": r"^\s*(?P<status>\u2705|\u274c)\s*(?P<name>.+?)(?:\s+-\s+(?P<detail>.*))?$",
        "pass_values": ["\u2705"], "fail_values": ["\u274c"],
        "summary_pattern": r"Pass rate:\s*(?P<rate>[\d.]+)%\s*\((?P<passed>\d+)/(?P<total>\d+)\)",
    }
    result, dummy = runner(args, fake_run(output))
    assert result["failed"] is False
    assert result["checks"][1] == {"name": "Frontend", "status": "FAIL", "detail": "HTTP 502"}
    assert result["summary"]["rate"] == 66.7


def test_env_values_never_returned(runner, script):
    secret = "s3cr3t-api-key-0042"
    output = "[PASS] api_key - using key %s\nSummary: 1/1 checks passed\n" % secret
    result, calls = runner({"script": str(script), "env": {"TAYLORDASH_API_KEY": secret}}, fake_run(output))
    assert calls[0]["env"]["TAYLORDASH_API_KEY"] == secret
    assert result["failed"] is False
    assert secret not in json.dumps(result)


# ---------------------------------------------------------------- preflight ----

def test_missing_script_names_resolved_path(runner, tmp_path):
    result, calls = runner({"chdir": str(tmp_path)})
    expected = os.path.join(str(tmp_path), "ops", "validate_p1.sh")
    assert result["failed"] is True and not calls
    assert result["msg"].startswith("validation script not found: %s" % expected)
    assert "(script './ops/validate_p1.sh' resolved against %s)" % tmp_path in result["msg"]
    assert result["script"] == expected and result["cmd"] == [expected]


def test_missing_script_fails_by_default_and_says_not_found(runner, tmp_path):
    result, calls = runner({"script": str(tmp_path / "nope.sh"), "missing": "fail"})
    assert result["failed"] is True and not calls
    assert result["found"] is False
    assert "skipped" not in result


def test_missing_skip_reports_a_skipped_task(runner, tmp_path):
    expected = os.path.join(str(tmp_path), "ops", "validate_p1.sh")
    result, calls = runner({"chdir": str(tmp_path), "missing": "skip"})
    assert not calls
    assert result["failed"] is False and result["changed"] is False
    assert result["skipped"] is True and result["found"] is False
    assert result["msg"] == ("no validation script at %s; skipped (missing=skip). Put the script there, or set "
                             "script to where it is" % expected)
    assert result["script"] == expected and result["cmd"] == [expected]
    for key in ("pass_rate", "passed", "total", "rc", "checks"):
        assert key not in result


def test_missing_skip_runs_in_check_mode(runner, tmp_path):
    result, calls = runner({"chdir": str(tmp_path), "missing": "skip", "_ansible_check_mode": True})
    assert not calls and result["skipped"] is True and result["found"] is False


def test_missing_skip_runs_a_script_that_exists(runner, script):
    result, calls = runner({"script": str(script), "missing": "skip"}, fake_run(ALL_PASS))
    assert len(calls) == 1
    assert result["found"] is True and "skipped" not in result
    assert result["pass_rate"] == 100.0


def test_missing_skip_still_checks_the_other_options_first(runner, tmp_path):
    result, calls = runner({"chdir": str(tmp_path), "missing": "skip", "min_pass_rate": 101})
    assert result["failed"] is True and not calls
    assert "skipped" not in result
    assert result["msg"].startswith("min_pass_rate must be between 0 and 100")


@pytest.mark.parametrize("broken", ["directory", "not_executable", "dangling_link"])
def test_missing_skip_still_fails_a_script_that_is_there_but_broken(broken, runner, script, tmp_path):
    target = str(script)
    if broken == "directory":
        target = str(tmp_path)
    elif broken == "not_executable":
        script.chmod(0o644)
    else:
        target = str(tmp_path / "link.sh")
        os.symlink(str(tmp_path / "gone.sh"), target)
    result, calls = runner({"script": target, "missing": "skip"})
    assert result["failed"] is True and not calls
    assert "skipped" not in result


def test_missing_option_is_checked(runner, tmp_path):
    result, calls = runner({"chdir": str(tmp_path), "missing": "ignore"})
    assert result["failed"] is True and not calls
    assert "missing" in result["msg"]


def test_not_executable_says_how_to_fix(runner, script):
    script.chmod(0o644)
    result, calls = runner({"script": str(script)})
    assert result["failed"] is True and not calls
    assert result["msg"] == ("validation script %s is not executable; make it executable with chmod +x %s"
                             % (script, script))


def test_script_is_a_directory(runner, tmp_path):
    result, calls = runner({"script": str(tmp_path)})
    assert result["failed"] is True and not calls
    assert "is a directory" in result["msg"]


def test_missing_chdir(runner, tmp_path):
    result, calls = runner({"chdir": str(tmp_path / "absent")})
    assert result["failed"] is True and not calls
    assert result["msg"].startswith("chdir %s does not exist" % (tmp_path / "absent"))


@pytest.mark.parametrize("args, message", [
    ({"min_pass_rate": 101}, "min_pass_rate must be between 0 and 100, got 101"),
    ({"min_pass_rate": -1}, "min_pass_rate must be between 0 and 100"),
    ({"timeout": 0}, "timeout must be a positive number of seconds, got 0"),
    ({"kill_grace": -1}, "kill_grace must not be negative"),
    ({"check_pattern": "[PASS"}, "check_pattern is not a valid regular expression"),
    ({"check_pattern": r"(?P<status>\w+)"}, "check_pattern must define the named group(s) name"),
    ({"summary_pattern": r"(?P<total>\d+)"}, "summary_pattern must define the named group(s) passed"),
    ({"pass_values": ["OK"], "fail_values": ["ok"]}, "listed in both pass_values and fail_values"),
])
def test_bad_options_fail_before_running(runner, script, args, message):
    args = dict(args, script=str(script))
    result, calls = runner(args)
    assert result["failed"] is True and not calls
    assert message in result["msg"]


@pytest.mark.parametrize("err, message", [
    (OSError(errno.ENOEXEC, "Exec format error"), "start it with a #! line such as #!/bin/bash"),
    (OSError(errno.ENOENT, "No such file or directory"), "the interpreter named in its #! line was not found"),
    (OSError(errno.EACCES, "Permission denied"), "mounted noexec"),
    (OSError(errno.E2BIG, "Argument list too long"), "Argument list too long"),
])
def test_start_failures_are_explained(runner, script, err, message):
    result, calls = runner({"script": str(script)}, raises=err)
    assert result["failed"] is True and len(calls) == 1
    assert result["msg"].startswith("could not start %s: " % script)
    assert message in result["msg"]


def test_messages_have_no_markup():
    # Messages are read in a terminal: no O()/V() doc markup may leak into them.
    source = open(mod.__file__, encoding="utf-8").read().split("import errno", 1)[1]
    assert not re.search(r"\b(?:O|V|RV|C)\(", source)


def test_short_env_values_are_warned_about(runner, script):
    result, calls = runner({"script": str(script), "env": {"DEBUG": "1", "FLAG": True, "API_KEY": "long-enough"}},
                           fake_run(ALL_PASS))
    assert calls[0]["env"]["DEBUG"] == "1" and calls[0]["env"]["FLAG"] == "True"
    warnings = [w for w in _warnings(result) if w.startswith("env:")]
    assert len(warnings) == 1
    assert "the value of DEBUG is shorter than 4 characters" in warnings[0]
    assert "task keyword environment" in warnings[0]


# ------------------------------------------------------------ hardening (issue 10) ----

@pytest.mark.parametrize("value", [1, 0, 10, 1.0, "1", "00"])
def test_short_or_numeric_env_values_never_mask_the_summary(runner, script, value):
    result, calls = runner({"script": str(script), "env": {"N": value}}, fake_run(ALL_PASS))
    assert result["failed"] is False
    assert result["msg"] == "3/3 checks passed (100%), minimum 89%"
    assert "********" not in json.dumps({k: v for k, v in result.items() if k != "invocation"})
    assert calls[0]["env"]["N"] == str(value)
    # never returned, short or not
    assert result["invocation"]["module_args"]["env"] == {"N": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}


def test_numeric_secret_is_converted_and_still_masked(runner, script):
    output = "[PASS] key - using 987654321\nSummary: 1/1 checks passed (100%)\n"
    result, calls = runner({"script": str(script), "env": {"PIN": 987654321}}, fake_run(output))
    assert calls[0]["env"]["PIN"] == "987654321"
    assert "987654321" not in json.dumps(result)


@pytest.mark.parametrize("env, message", [
    ({"L": [1, 2]}, "env: the value of L is a list; give a string"),
    ({"D": {"a": 1}}, "env: the value of D is a dictionary; give a string"),
    ({"A=B": "long-value"}, "env: 'A=B' is not a valid environment variable name"),
    ({"": "long-value"}, "env: '' is not a valid environment variable name"),
    ({"K": "long\x00value"}, "env: the value of K contains a NUL character"),
])
def test_unusable_env_is_refused_before_running(runner, script, env, message):
    result, calls = runner({"script": str(script), "env": env})
    assert result["failed"] is True and not calls
    assert message in result["msg"]
    assert "long\x00value" not in json.dumps(result)


@pytest.mark.parametrize("args, message", [
    ({"timeout": 1e308}, "timeout must be at most 86400 seconds, got 1e+308"),
    ({"timeout": "inf"}, "timeout must be a finite number of seconds, got inf"),
    ({"timeout": "nan"}, "timeout must be a finite number of seconds, got nan"),
    ({"kill_grace": "nan"}, "kill_grace must be a finite number of seconds, got nan"),
    ({"kill_grace": 1e308}, "kill_grace must be at most 86400 seconds"),
    ({"min_pass_rate": "nan"}, "min_pass_rate must be between 0 and 100, got nan"),
    ({"args": ["a\x00b"]}, "args: argument 1 contains a NUL character"),
])
def test_numbers_and_text_checked_before_running(runner, script, args, message):
    result, calls = runner(dict(args, script=str(script)))
    assert result["failed"] is True and not calls
    assert message in result["msg"]
    assert result["min_pass_rate"] is None or result["min_pass_rate"] == result["min_pass_rate"]


def test_nul_in_script_path_is_refused(runner, tmp_path):
    result, calls = runner({"script": str(tmp_path / "v\x00.sh")})
    assert result["failed"] is True and not calls
    assert result["msg"].startswith("script contains a NUL character")


@pytest.mark.parametrize("error, message", [
    (UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed"), "cannot be encoded as UTF-8"),
    (OverflowError("cannot convert Infinity to integer"), "An argument is out of range: cannot convert Infinity"),
])
def test_ansible_core_argument_errors_fail_cleanly(runner, script, monkeypatch, error, message):
    # Found by the property test: ansible-core's own argument handling raised (its invocation
    # logging encodes text as strict UTF-8; its int check overflows on infinity). Whether a
    # surrogate even reaches the module depends on ansible-core's JSON decoding, so the error is
    # raised here directly.
    from ansible_collections.taylordash.rollback.plugins.module_utils import _safe_module
    real = _safe_module.RollbackModule
    calls = []

    def first_raises(*args, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(_safe_module, "RollbackModule", first_raises)
    result, ran = runner({"script": str(script), "env": {"API_KEY": "s3cr3t-value"}})
    assert result["failed"] is True and not ran
    assert message in result["msg"]
    assert "s3cr3t-value" not in json.dumps(result)


# -------------------------------------------------------- result formats (issue 11) ----

FORMATS = {
    "brackets": ("[PASS] backend - HTTP 200\n[PASS] api\n[PASS] db\nSummary: 3/3 checks passed (100%)\n",
                 "[PASS] backend\n[FAIL] api - HTTP 500\n[PASS] db\nSummary: 2/3\n"),
    "colon": ("PASS: backend (0.004s)\nPASS: api\nOK: db\n3 of 3 checks passed\n",
              "PASS: backend\nFAIL: api HTTP 500\nERROR: db\n1 of 3 checks passed\n"),
    "emoji": ("\u2705 Backend health\n\u2705 API\n\u26a0\ufe0f DB - slow\n\u23ed\ufe0f Plugins\nPass rate: 100%\n",
              "\u2705 Backend health\n\u274c API - HTTP 502\n\u274c DB\nPass rate: 33.3% (1/3)\n"),
    "tap": ("1..4\nok 1 - backend\nok 2 - api\nok 3 - db\nok 4 - plugins # SKIP disabled\n",
            "TAP version 13\n1..3\nok 1 - backend\nnot ok 2 - api\n# diagnostics\nnot ok 3 - db\n"),
    "dots": ("test_backend (t.T.test_backend) ... ok\ntest_api ... ok\ntest_db ... skipped 'no db'\n"
             "Summary: 2/2\n",
             "test_backend ... ok\ntest_api ... FAILED\ntest_db ... ERROR\n"),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_format_recognised_passing(runner, script, name):
    result, dummy = runner({"script": str(script)}, fake_run(FORMATS[name][0]))
    assert result["failed"] is False, result["msg"]
    assert result["format"] == name
    assert result["pass_rate"] == 100.0 and result["failed_checks"] == []


@pytest.mark.parametrize("name, failed", [
    ("brackets", ["api"]), ("colon", ["api", "db"]), ("emoji", ["API", "DB"]), ("tap", ["api", "db"]),
    ("dots", ["test_api", "test_db"]),
])
def test_format_recognised_failing(runner, script, name, failed):
    result, dummy = runner({"script": str(script)}, fake_run(FORMATS[name][1], rc=1))
    assert result["failed"] is True
    assert result["format"] == name
    assert result["failed_checks"] == failed
    assert result["msg"].startswith("pass rate below the minimum 89%: ")


def test_tap_details():
    from ansible_collections.taylordash.rollback.plugins.module_utils._validate_output import detect_and_parse
    detection = detect_and_parse(split_output("1..3\nok 1\nnot ok 2 - b # TODO later\nok 3 - c # skip slow\n"))
    assert detection.name == "tap"
    checks = detection.result.as_dict()["checks"]
    assert checks == [{"name": "test 1", "status": "PASS", "detail": None},
                      {"name": "b", "status": "SKIP", "detail": "later"},
                      {"name": "c", "status": "SKIP", "detail": "slow"}]


def test_tap_plan_must_match_the_test_lines(runner, script):
    result, dummy = runner({"script": str(script)}, fake_run("1..9\nok 1 - a\nok 2 - b\n"))
    assert result["failed"] is True and result["format"] == "tap"
    assert "the TAP plan '1..9' announces 9 tests but 2 test lines were seen" in result["msg"]


def test_rate_alone_must_match_the_check_lines(runner, script):
    result, dummy = runner({"script": str(script)}, fake_run("PASS: a\nFAIL: b\nPass rate: 78%\n"))
    assert result["failed"] is True and result["format"] == "colon"
    assert "summary says a pass rate of 78% ('Pass rate: 78%') but the check lines show 1/2 (50%)" in result["msg"]
    assert result["summary"] == {"passed": None, "total": None, "rate": 78.0, "line": "Pass rate: 78%"}


@pytest.mark.parametrize("output, fragment", [
    ("[PASS] a\nok 1 - b\n", "brackets (1 line, e.g. '[PASS] a'), tap (1 line, e.g. 'ok 1 - b')"),
    ("\u2705 a\nFAIL: b\n", "colon (1 line, e.g. 'FAIL: b'), emoji (1 line, e.g. '\u2705 a')"),
])
def test_mixed_formats_fail_clearly(runner, script, output, fragment):
    result, dummy = runner({"script": str(script)}, fake_run(output))
    assert result["failed"] is True and result["format"] is None
    assert result["msg"] == ("the output of %s mixes result formats: %s. Print one format, or set check_pattern "
                             "(and summary_pattern) to the one to count." % (script, fragment))
    assert result["stdout_lines"] == output.splitlines()


def test_no_recognised_format_fails_as_before(runner, script):
    result, dummy = runner({"script": str(script)}, fake_run("all good\n"))
    assert result["failed"] is True and result["format"] == "brackets"
    assert result["msg"].startswith("no check results found in the output of")


def test_patterns_override_detection(runner, script):
    # a TAP-looking output read with the user's pattern: detection is off
    args = {"script": str(script), "check_pattern": r"^(?P<status>ok|not ok) \d+ - (?P<name>\S+)",
            "pass_values": ["ok"], "fail_values": ["not ok"], "min_pass_rate": 50}
    result, dummy = runner(args, fake_run("ok 1 - a\nnot ok 2 - b\n[PASS] c\n"))
    assert result["failed"] is False and result["format"] == "custom"
    assert result["passed"] == 1 and result["failed_checks"] == ["b"]


def test_user_status_values_apply_to_the_bracket_format(runner, script):
    args = {"script": str(script), "pass_values": ["OK"], "fail_values": ["KO"]}
    result, dummy = runner(args, fake_run("[OK] a\n[KO] b\n"))
    assert result["format"] == "brackets" and result["failed_checks"] == ["b"]
