# -*- coding: utf-8 -*-
# Copyright: (c) 2025, TaylorDash operations team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""module_utils/_process: real short-lived processes (sh, sleep), no fakes."""
from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.taylordash.rollback.plugins.module_utils._process import (
    BoundedBuffer,
    run_streaming,
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


# --- run_streaming (moved from test_postgres.py with the code), on real child processes ---

def test_capture_is_bounded():
    cap = BoundedBuffer(10, 10)
    for _i in range(100):
        cap.add(b"0123456789")
    value = cap.value()
    assert value.startswith(b"0123456789\n[... 980 bytes not kept ...]\n")
    assert value.endswith(b"0123456789")


def test_run_streaming_feeds_stdin_and_captures():
    script = "import sys, hashlib; d = sys.stdin.buffer.read(); print(len(d), hashlib.sha256(d).hexdigest())"
    chunks = [b"x" * 100000 for _i in range(30)]
    res = run_streaming([sys.executable, "-c", script], feed=iter(chunks))
    assert res.rc == 0
    assert res.stdout_text.split() == ["3000000", hashlib.sha256(b"".join(chunks)).hexdigest()]


def test_run_streaming_child_exits_early_is_not_an_error():
    # Like psql stopping at the first error: the rest of the feed hits a closed pipe.
    script = "import sys; sys.stdin.buffer.read(10); sys.stderr.write('ERROR: stop\\n'); sys.exit(3)"
    res = run_streaming([sys.executable, "-c", script], feed=(b"y" * 65536 for _i in range(200)))
    assert res.rc == 3
    assert res.feed_error is None
    assert res.stderr_text == "ERROR: stop\n"


def test_run_streaming_feed_error_kills_child():
    def feed():
        yield b"abc"
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")
    res = run_streaming([sys.executable, "-c", "import sys, time; sys.stdin.read(); time.sleep(30)"],
                        feed=feed())
    assert isinstance(res.feed_error, EOFError)
    assert res.rc != 0
    assert res.duration < 20


def test_run_streaming_env_and_bounded_stdout():
    res = run_streaming(
        [sys.executable, "-c", "import os; print(os.environ['RB_TEST'] * 50000)"],
        env_update={"RB_TEST": "ab"}, stdout_limit=1000)
    assert res.rc == 0
    assert b"bytes not kept" in res.stdout
    assert len(res.stdout) < 1200
