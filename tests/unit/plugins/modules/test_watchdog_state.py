"""watchdog_state: the watchdog's record of its last automatic rollback, and its look at the
rollback lock. The module runs in its own process (run_module) on real files in tmp_path; the lock
files are written by the real rollback_lock module."""
from __future__ import annotations

import json
import os
import stat
import time

import pytest
from hypothesis import strategies as st

from conftest import run_module
from module_fuzz import ModuleFuzz

from ansible_collections.taylordash.rollback.plugins.modules import watchdog_state as mod

RECORD = {"last_rollback_at": "2026-11-26T10:00:00+00:00", "last_rollback_epoch": 1795600800.0,
          "reasons": [{"trigger": "unavailable", "detail": "backend_health failed 3 consecutive health checks"}],
          "outcome": "started"}


@pytest.mark.parametrize("raw, record, problem", [
    (b'{"a": 1}', {"a": 1}, None),
    (b"[1, 2]", None, "not a JSON object"),
    (b"", None, "not JSON"),
    (b"\xff\xfe", None, "not JSON"),
    (b"{truncated", None, "not JSON"),
])
def test_parse_record(raw, record, problem):
    parsed, why = mod.parse_record(raw)
    assert parsed == record
    assert (why or "").startswith(problem or "")


@pytest.mark.parametrize("record, expected", [
    ({"last_rollback_epoch": 100.0}, 50.0),
    ({"last_rollback_epoch": "100"}, 50.0),
    ({"last_rollback_epoch": "soon"}, None),
    ({"last_rollback_epoch": float("nan")}, None),
    ({"last_rollback_epoch": None}, None),
    ({}, None),
    (None, None),
])
def test_since_last(record, expected):
    assert mod.since_last(record, 150.0) == expected


def test_describe_lock_never_shows_the_token():
    raw = json.dumps({"holder": "alice", "reason": "manual", "started_at": "t", "token": "s3cr3t-token"}).encode()
    shown = mod.describe_lock(raw, None)
    assert shown == {"held": True, "holder": "alice", "reason": "manual", "started_at": "t", "problem": None}
    assert mod.describe_lock(None, None)["held"] is False
    assert mod.describe_lock(b"garbage", None)["problem"].startswith("not a lock: not JSON")
    assert mod.describe_lock(None, "Permission denied") == {
        "held": True, "holder": None, "reason": None, "started_at": None, "problem": "Permission denied"}


def test_read_without_a_record_or_a_lock(tmp_path):
    result = run_module("watchdog_state", {"path": str(tmp_path / ".watchdog_state.json"),
                                           "lock_path": str(tmp_path / ".rollback.lock")})
    assert not result["failed"] and not result["changed"], result
    assert result["record"] is None and result["since_last_s"] is None
    assert result["lock"]["held"] is False
    assert result["timing"]["seconds"] >= 0


def test_read_the_record_and_the_lock_taken_by_rollback_lock(tmp_path):
    state = tmp_path / ".watchdog_state.json"
    state.write_text(json.dumps(dict(RECORD, last_rollback_epoch=time.time() - 30)))
    lock = tmp_path / ".rollback.lock"
    taken = run_module("rollback_lock", {"path": str(lock), "holder": "alice (AWX job 7)", "reason": "manual rollback"})
    assert taken["acquired"], taken
    result = run_module("watchdog_state", {"path": str(state), "lock_path": str(lock)})
    assert result["record"]["outcome"] == "started" and 29 <= result["since_last_s"] < 60
    assert result["lock"]["held"] and result["lock"]["holder"] == "alice (AWX job 7)"
    assert result["lock"]["reason"] == "manual rollback" and result["lock"]["started_at"]
    assert taken["lock"]["token"] not in json.dumps(result)


def test_an_unreadable_lock_counts_as_held(tmp_path):
    (tmp_path / "lockdir").mkdir()
    result = run_module("watchdog_state", {"path": str(tmp_path / "s.json"), "lock_path": str(tmp_path / "lockdir")})
    assert result["lock"]["held"] is True and "directory" in result["lock"]["problem"].lower()


def test_a_state_file_that_is_not_a_record_reads_as_none(tmp_path):
    state = tmp_path / "s.json"
    state.write_text("[]")
    result = run_module("watchdog_state", {"path": str(state)})
    assert not result["failed"] and result["record"] is None and result["record_problem"] == "not a JSON object"
    assert result["lock"] is None


def test_write_check_diff_and_idempotence(tmp_path):
    state = tmp_path / ".watchdog_state.json"
    args = {"path": str(state), "state": "present", "record": RECORD}
    checked = run_module("watchdog_state", args, check_mode=True, diff=True)
    assert checked["changed"] and not state.exists(), checked
    assert checked["diff"]["before"] == "" and json.loads(checked["diff"]["after"]) == RECORD

    written = run_module("watchdog_state", args, diff=True)
    assert written["changed"] and json.loads(state.read_text()) == RECORD
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [".watchdog_state.json"]  # no temporary file left

    again = run_module("watchdog_state", args)
    assert not again["changed"], again

    finished = run_module("watchdog_state", dict(args, record=dict(RECORD, outcome="succeeded")), diff=True)
    assert finished["changed"] and json.loads(finished["diff"]["before"])["outcome"] == "started"
    assert json.loads(state.read_text())["outcome"] == "succeeded"

    chmod = run_module("watchdog_state", dict(args, record=dict(RECORD, outcome="succeeded"), mode="0640"))
    assert chmod["changed"] and stat.S_IMODE(state.stat().st_mode) == 0o640


@pytest.mark.parametrize("case, fragment", [
    ("directory", "is a directory; give the path of the watchdog state file"),
    ("no_parent", "of the watchdog state file does not exist"),
    ("no_record", "state is present but all of the following are missing: record"),
    ("lock_with_present", "lock_path is read only with state=read"),
    ("bad_mode", "mode must be an octal mode such as 0600"),
])
def test_bad_input_fails_and_changes_nothing(tmp_path, case, fragment):
    state = tmp_path / ".watchdog_state.json"
    state.write_text(json.dumps(RECORD))
    args = {"path": str(state), "state": "present", "record": dict(RECORD, outcome="succeeded")}
    if case == "directory":
        args["path"] = str(tmp_path)
    elif case == "no_parent":
        args["path"] = str(tmp_path / "missing" / "s.json")
    elif case == "no_record":
        del args["record"]
    elif case == "lock_with_present":
        args["lock_path"] = str(tmp_path / ".rollback.lock")
    elif case == "bad_mode":
        args["mode"] = "rw-------"
    result = run_module("watchdog_state", args)
    assert result["failed"] and fragment in result["msg"], result
    assert json.loads(state.read_text()) == RECORD
    assert sorted(os.listdir(tmp_path)) == [".watchdog_state.json"]


FUZZ = ModuleFuzz(
    mod,
    base_args={"path": "state.json"},
    strategies={"path": st.sampled_from(["state.json", "", "\x00", "../x", "missing/s.json", "."]),
                "lock_path": st.sampled_from(["lock", "", "\x00", "../x", ".", None])},
    deadline=10,
)


@FUZZ.given_options(max_examples=60)
def test_watchdog_state_any_option(option_and_value, tmp_path):
    FUZZ.check(option_and_value, cwd=tmp_path)
