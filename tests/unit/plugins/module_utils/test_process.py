# -*- coding: utf-8 -*-
# Copyright: (c) 2025, TaylorDash operations team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""module_utils/_process: real short-lived processes (sh, sleep), no fakes."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ansible_collections.taylordash.rollback.plugins.module_utils._process import (
    group_alive,
    run_process,
)


def _alive(pid: int) -> bool:
    try:
        data = Path("/proc/%d/stat" % pid).read_bytes()
    except FileNotFoundError:
        return False
    return data.rsplit(b")", 1)[-1].split()[0] not in (b"Z", b"X")


def test_group_alive():
    assert group_alive(os.getpgrp()) is True
    # PIDs above pid_max cannot exist, so neither can a group with that id.
    assert group_alive(2 ** 22 + 12345) is False


def test_output_order_rc_and_env(tmp_path):
    out = run_process(["/bin/sh", "-c", 'echo one; echo two >&2; echo "three $X"; printf tail; exit 3'],
                      cwd=str(tmp_path), env={"X": "x", "PATH": "/usr/bin:/bin"}, timeout=10)
    assert out.rc == 3 and not out.timed_out and out.stop_signal is None
    assert out.stdout_lines == ["one", "three x", "tail"]
    assert out.stderr_lines == ["two"]
    assert sorted(out.lines) == sorted(out.stdout_lines + out.stderr_lines)
    assert out.duration < 5


def test_argv_is_not_a_shell(tmp_path):
    out = run_process(["/bin/echo", "$(touch pwned)", "*"], cwd=str(tmp_path), timeout=10)
    assert out.stdout_lines == ["$(touch pwned) *"]
    assert not (tmp_path / "pwned").exists()


def test_timeout_stops_the_whole_group(tmp_path):
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    out = run_process(["/bin/sh", "-c", 'sleep 1000 & echo $! > "%s"; echo started; wait' % pid_file],
                      timeout=0.5, kill_grace=2)
    child = int(pid_file.read_text())
    try:
        assert out.timed_out and out.stop_signal == "SIGTERM" and out.rc == -15
        assert out.stdout_lines == ["started"]
        assert time.monotonic() - started < 4
        deadline = time.monotonic() + 3
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        if _alive(child):
            os.kill(child, 9)


def test_term_ignored_gets_sigkill_after_grace():
    started = time.monotonic()
    out = run_process(["/bin/sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.05; done"],
                      timeout=0.3, kill_grace=0.3)
    assert out.timed_out and out.stop_signal == "SIGKILL" and out.rc == -9
    assert time.monotonic() - started < 3


def test_start_failure_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        run_process([str(tmp_path / "absent")], timeout=1)
