# -*- coding: utf-8 -*-
# Copyright: (c) 2025, TaylorDash operations team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""taylordash.rollback.validate_p1 against real scripts, run the way Ansible runs the module.

Each test writes its own scripts into its own temporary directory; nothing is shared.
"""
from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from conftest import run_module

pytestmark = pytest.mark.integration


def write_script(directory: Path, body: str, name: str = "ops/validate_p1.sh", mode: int = 0o755) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(mode)
    return path


def warnings_of(result: dict) -> list:
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def alive(pid: int) -> bool:
    """A process counts as alive unless it is gone or a zombie waiting for its reaper."""
    try:
        data = Path("/proc/%d/stat" % pid).read_bytes()
    except FileNotFoundError:
        return False
    return data.rsplit(b")", 1)[-1].split()[0] not in (b"Z", b"X")


def wait_until_dead(pids, limit=5.0) -> list:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        living = [pid for pid in pids if alive(pid)]
        if not living:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def read_pid(path: Path, limit=5.0) -> int:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        text = path.read_text().strip() if path.exists() else ""
        if text:
            return int(text)
        time.sleep(0.02)
    raise AssertionError("%s was never written" % path)


ALL_PASS = r"""#!/bin/bash
echo "=== TaylorDash P1 validation ==="
echo
for check in backend_health api_projects api_auth_login frontend database; do
  printf '\033[32m[PASS]\033[0m %s - ok (0.00%ds)\n' "$check" 1
done
echo "curl: (7) noise on stderr" >&2
echo "Summary: 5/5 checks passed (100.0%)"
"""

BELOW = r"""#!/bin/bash
echo "[PASS] backend_health - HTTP 200 version=v1 (0.004s)"
echo "[FAIL] api_projects - HTTP 500 (0.003s)"
echo "[FAIL] frontend - HTTP 502 (0.002s)" >&2
for i in 1 2 3 4 5 6; do echo "[PASS] check_$i"; done
echo "Summary: 7/9 checks passed (77.8%)"
exit 1
"""


def test_all_pass_in_check_mode_and_for_real(tmp_path):
    write_script(tmp_path, ALL_PASS)
    args = {"chdir": str(tmp_path)}
    results = [run_module("validate_p1", args, check_mode=check) for check in (True, False, False)]
    for result in results:
        assert result["failed"] is False, result["msg"]
        assert result["changed"] is False
        assert result["msg"] == "5/5 checks passed (100%), minimum 89%"
        assert (result["passed"], result["total"], result["pass_rate"], result["rc"]) == (5, 5, 100.0, 0)
        assert result["checks"][0] == {"name": "backend_health", "status": "PASS", "detail": "ok (0.001s)"}
        assert result["stdout_lines"][2] == "[PASS] backend_health - ok (0.001s)"  # colour codes removed
        assert result["stderr_lines"] == ["curl: (7) noise on stderr"]
        assert result["script"] == str(tmp_path / "ops" / "validate_p1.sh")
        assert result["duration"] < 5
        assert warnings_of(result) == []


def test_below_threshold_names_failures(tmp_path):
    write_script(tmp_path, BELOW)
    result = run_module("validate_p1", {"chdir": str(tmp_path)})
    assert result["failed"] is True
    assert result["msg"] == ("pass rate below the minimum 89%: 7/9 checks passed (77.8%); "
                             "failed: api_projects, frontend")
    assert sorted(result["failed_checks"]) == ["api_projects", "frontend"]
    assert result["rc"] == 1 and result["failed_count"] == 2
    # The same output meets a lower threshold; the script's exit status 1 is then only a warning.
    result = run_module("validate_p1", {"chdir": str(tmp_path), "min_pass_rate": 75})
    assert result["failed"] is False, result["msg"]
    assert result["rc"] == 1
    assert any("exited with rc 1" in w for w in warnings_of(result))
    result = run_module("validate_p1", {"chdir": str(tmp_path), "min_pass_rate": 75, "fail_on_rc": True})
    assert result["failed"] is True and "fail_on_rc is true" in result["msg"]


def test_script_missing_names_resolved_path(tmp_path):
    result = run_module("validate_p1", {"chdir": str(tmp_path), "script": "ops/absent.sh"})
    assert result["failed"] is True
    assert result["msg"].startswith("validation script not found: %s" % (tmp_path / "ops" / "absent.sh"))


def test_script_not_executable(tmp_path):
    path = write_script(tmp_path, ALL_PASS, mode=0o644)
    result = run_module("validate_p1", {"chdir": str(tmp_path)})
    assert result["failed"] is True
    assert "is not executable" in result["msg"] and "chmod +x %s" % path in result["msg"]
    assert not stat.S_IMODE(path.stat().st_mode) & 0o111  # the module changed nothing


def test_script_without_interpreter_line(tmp_path):
    write_script(tmp_path, "echo '[PASS] a'\n")
    result = run_module("validate_p1", {"chdir": str(tmp_path)})
    assert result["failed"] is True
    assert "start it with a #! line" in result["msg"]


HANGING = r"""#!/bin/bash
echo $$ > "$PID_DIR/script.pid"
echo "[PASS] backend_health - HTTP 200"
echo "[FAIL] api_projects - HTTP 500"
sleep 1000 &
echo $! > "$PID_DIR/child.pid"
echo "[PASS] frontend - waiting for the slow check..."
wait
echo "[PASS] never_printed"
"""


def test_hanging_script_and_its_child_are_killed(tmp_path):
    write_script(tmp_path, HANGING)
    started = time.monotonic()
    result = run_module("validate_p1", {"chdir": str(tmp_path), "timeout": 1, "env": {"PID_DIR": str(tmp_path)}})
    elapsed = time.monotonic() - started
    script_pid, child_pid = read_pid(tmp_path / "script.pid"), read_pid(tmp_path / "child.pid")
    try:
        assert result["failed"] is True
        assert "timed out after 1 s and its process group was stopped with SIGTERM" in result["msg"]
        assert "checks seen so far: backend_health PASS, api_projects FAIL, frontend PASS" in result["msg"]
        assert result["timed_out"] is True and result["rc"] == -15
        assert [c["name"] for c in result["checks"]] == ["backend_health", "api_projects", "frontend"]
        assert 1 <= result["duration"] < 4 and elapsed < 8
        assert wait_until_dead([script_pid, child_pid]) == []
    finally:
        for pid in (script_pid, child_pid):
            if alive(pid):
                os.kill(pid, 9)


IGNORES_TERM = r"""#!/bin/bash
trap '' TERM
echo $$ > "$PID_DIR/script.pid"
sleep 1000 &
echo $! > "$PID_DIR/child.pid"
echo "[PASS] backend_health"
wait
"""


def test_term_ignoring_group_gets_sigkill(tmp_path):
    write_script(tmp_path, IGNORES_TERM)
    result = run_module("validate_p1", {"chdir": str(tmp_path), "timeout": 0.5, "kill_grace": 0.3,
                                        "env": {"PID_DIR": str(tmp_path)}})
    script_pid, child_pid = read_pid(tmp_path / "script.pid"), read_pid(tmp_path / "child.pid")
    try:
        assert result["failed"] is True
        assert "timed out after 0.5 s and its process group was stopped with SIGKILL" in result["msg"]
        assert result["rc"] == -9
        assert result["duration"] < 3
        assert wait_until_dead([script_pid, child_pid]) == []
    finally:
        for pid in (script_pid, child_pid):
            if alive(pid):
                os.kill(pid, 9)


LEAVES_CHILD = r"""#!/bin/bash
sleep 1000 &
echo $! > "$PID_DIR/child.pid"
echo "[PASS] backend_health"
echo "Summary: 1/1 checks passed (100%)"
exit 0
"""


def test_child_holding_output_open_is_killed(tmp_path):
    write_script(tmp_path, LEAVES_CHILD)
    result = run_module("validate_p1", {"chdir": str(tmp_path), "timeout": 1, "env": {"PID_DIR": str(tmp_path)}})
    child_pid = read_pid(tmp_path / "child.pid")
    try:
        assert result["failed"] is True
        assert "timed out after 1 s" in result["msg"]
        assert "The script itself had exited; processes it started kept its output open." in result["msg"]
        assert result["rc"] == 0
        assert wait_until_dead([child_pid]) == []
    finally:
        if alive(child_pid):
            os.kill(child_pid, 9)


def test_output_with_no_results(tmp_path):
    write_script(tmp_path, "#!/bin/sh\necho 'Usage: validate_p1.sh [--quick]'\necho 'unknown option' >&2\nexit 2\n")
    result = run_module("validate_p1", {"chdir": str(tmp_path)})
    assert result["failed"] is True
    assert "no check results found" in result["msg"] and "(rc=2)" in result["msg"]
    assert "First lines of output: Usage: validate_p1.sh [--quick] | unknown option" in result["msg"]
    assert result["pass_rate"] is None


def test_contradictory_summary(tmp_path):
    write_script(tmp_path, "#!/bin/sh\necho '[PASS] backend_health'\necho '[FAIL] api_projects'\n"
                           "echo '[FAIL] frontend'\necho 'Summary: 3/3 checks passed (100%)'\n")
    result = run_module("validate_p1", {"chdir": str(tmp_path), "min_pass_rate": 0})
    assert result["failed"] is True
    assert "summary says 3/3 but the check lines show 1/3; 2 checks printed FAIL: api_projects, frontend" \
        in result["msg"]


ENV = r"""#!/bin/sh
if [ "$VP1_API_KEY" = "$VP1_EXPECTED" ]; then echo "[PASS] api_key - key is $VP1_API_KEY"
else echo "[FAIL] api_key - got '$VP1_API_KEY'"; fi
echo "[PASS] locale - $LC_ALL"
"""


def test_env_passed_through_and_never_returned(tmp_path):
    write_script(tmp_path, ENV)
    secret = "tdk-%s" % os.urandom(6).hex()
    result = run_module("validate_p1", {"chdir": str(tmp_path),
                                        "env": {"VP1_API_KEY": secret, "VP1_EXPECTED": secret}})
    assert result["failed"] is False, result["msg"]
    assert result["checks"][0]["status"] == "PASS"
    assert result["checks"][1]["detail"] == "C"
    assert secret not in json.dumps(result)


ARGS = r"""#!/bin/bash
echo "[PASS] argc - $#"
i=1
for arg in "$@"; do echo "[PASS] arg$i - $arg"; i=$((i+1)); done
"""


def test_args_passed_through_without_a_shell(tmp_path):
    write_script(tmp_path, ARGS)
    args = ["--quick", "two words", "$(touch pwned)", "*"]
    result = run_module("validate_p1", {"chdir": str(tmp_path), "args": args})
    assert result["failed"] is False, result["msg"]
    assert [c["detail"] for c in result["checks"]] == ["4"] + args
    assert result["cmd"] == [str(tmp_path / "ops" / "validate_p1.sh")] + args
    assert not (tmp_path / "pwned").exists()


def test_chdir_honoured(tmp_path):
    project = tmp_path / "project"
    write_script(project, '#!/bin/sh\necho "[PASS] cwd - $(pwd -P)"\n', name="tools/v.sh")
    result = run_module("validate_p1", {"chdir": str(project), "script": "tools/v.sh"})
    assert result["failed"] is False, result["msg"]
    assert result["checks"][0]["detail"] == str(project.resolve())
    assert result["script"] == str(project / "tools" / "v.sh")


EMOJI = r"""#!/bin/bash
echo "🔍 TaylorDash P1 validation"
echo "✅ Backend health"
echo "✅ API projects - 12 projects"
echo "❌ Frontend - HTTP 502" >&2
echo "⚠️ Auth response time - 0.7s"
echo "⏭️ Plugins - disabled"
echo "✅ Database"
echo "✅ Migrations"
echo "✅ TLS certificate"
echo "✅ Login"
echo "📊 Pass rate: 87.5% (7/8)"
"""


def test_emoji_output_with_custom_patterns(tmp_path):
    write_script(tmp_path, EMOJI)
    args = {
        "chdir": str(tmp_path), "min_pass_rate": 87.5,
        "check_pattern": r"^\s*(?P<status>✅|❌|⚠️?|⏭️?)\s*(?P<name>.+?)(?:\s+-\s+(?P<detail>.*))?\s*$",
        "pass_values": ["✅"], "fail_values": ["❌"], "warn_values": ["⚠️"], "skip_values": ["⏭️"],
        "summary_pattern": r"Pass rate:\s*(?P<rate>[\d.]+)%\s*\((?P<passed>\d+)/(?P<total>\d+)\)",
    }
    result = run_module("validate_p1", args)
    assert result["failed"] is False, result["msg"]
    assert (result["passed"], result["total"], result["skipped_count"], result["warning_count"]) == (7, 8, 1, 1)
    assert result["failed_checks"] == ["Frontend"] and result["warning_checks"] == ["Auth response time"]
    assert result["summary"]["line"] == "📊 Pass rate: 87.5% (7/8)"
    # With the default threshold the same output fails, naming the failed check.
    args["min_pass_rate"] = 89
    result = run_module("validate_p1", args)
    assert result["failed"] is True and result["msg"].endswith("failed: Frontend")


def test_crlf_and_colour_output(tmp_path):
    write_script(tmp_path, "#!/bin/bash\nprintf '\\033[1;32m[PASS]\\033[0m a\\r\\n[\\033[31mFAIL\\033[0m] b - x\\r\\n"
                           "Summary: 1/2 checks passed (50%%)\\r\\n'\n")
    result = run_module("validate_p1", {"chdir": str(tmp_path), "min_pass_rate": 50})
    assert result["failed"] is False, result["msg"]
    assert result["checks"] == [{"name": "a", "status": "PASS", "detail": None},
                                {"name": "b", "status": "FAIL", "detail": "x"}]
    assert result["stdout_lines"] == ["[PASS] a", "[FAIL] b - x", "Summary: 1/2 checks passed (50%)"]


def test_script_inherits_the_module_environment(tmp_path, monkeypatch):
    # What the task keyword "environment" does: non-secret settings reach the script unmasked.
    write_script(tmp_path, '#!/bin/sh\necho "[PASS] level - level=$VP1_LEVEL"\n')
    monkeypatch.setenv("VP1_LEVEL", "1")
    result = run_module("validate_p1", {"chdir": str(tmp_path)})
    assert result["failed"] is False, result["msg"]
    assert result["checks"][0]["detail"] == "level=1"
    assert result["msg"] == "1/1 checks passed (100%), minimum 89%"
