"""Unit tests of rollback_lock's pure helpers and of the lock file primitives on a temp dir.
Concurrency with real processes: tests/integration/test_rollback_lock.py."""
from __future__ import annotations

import json
import os

import pytest

from ansible_collections.taylordash.rollback.plugins.modules import rollback_lock as mod

NOW = 1716027300.0  # 2024-05-18T10:15:00Z

# /proc/<pid>/stat of a process whose name has a space and a parenthesis in it.
STAT = ("4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 120 0 0 0 1 2 0 0 20 0 1 0 "
        "987654 10000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")


def lock(**kwargs):
    base = mod.make_lock("alice via AWX job 42", "backend rollback", "web-1", None, None, "t0k", NOW)
    base.update(kwargs)
    return base


def alive(pid, starttime):
    return True, None


def dead(pid, starttime):
    return False, "owner process %s on web-1 has ended" % pid


def test_make_lock_content():
    data = mod.make_lock("alice", "why", "web-1", 4242, 987654, "tok", NOW)
    assert data == dict(holder="alice", reason="why", started_at="2024-05-18T10:15:00Z",
                        started_epoch=NOW, host="web-1", owner_pid=4242,
                        owner_pid_starttime=987654, token="tok")


def test_parse_lock_roundtrip_and_errors():
    raw = json.dumps(lock()).encode()
    assert mod.parse_lock(raw)["holder"] == "alice via AWX job 42"
    with pytest.raises(ValueError, match="not JSON"):
        mod.parse_lock(b"")
    with pytest.raises(ValueError, match="not a lock"):
        mod.parse_lock(b'{"foo": 1}')
    with pytest.raises(ValueError, match="not a lock"):
        mod.parse_lock(b"[1, 2]")


def test_proc_stat_parsing():
    assert mod.parse_proc_starttime(STAT) == 987654
    assert mod.parse_proc_state(STAT) == "S"
    assert mod.parse_proc_state(STAT.replace(") S ", ") Z ")) == "Z"


def test_proc_stat_of_this_process():
    with open("/proc/self/stat") as f:
        text = f.read()
    assert mod.parse_proc_starttime(text) > 0
    assert mod.proc_starttime(os.getpid()) == mod.parse_proc_starttime(text)


def test_process_alive_for_self_and_for_a_reused_pid():
    me = os.getpid()
    assert mod.process_alive(me) == (True, None)
    assert mod.process_alive(me, mod.proc_starttime(me)) == (True, None)
    ok, why = mod.process_alive(me, mod.proc_starttime(me) - 1)
    assert not ok and "belongs to another process" in why


def test_stale_by_ttl():
    assert mod.stale_reason(lock(), NOW + 3599, 3600, "web-1", alive) is None
    assert mod.stale_reason(lock(), NOW + 4000, 3600, "web-1", alive) == \
        "lock is 4000 s old, older than ttl 3600 s"
    assert mod.stale_reason(lock(), NOW + 10 ** 6, 0, "web-1", alive) is None  # ttl 0: never


def test_stale_by_owner_pid_only_on_the_same_host():
    owned = lock(owner_pid=4242, owner_pid_starttime=1)
    assert mod.stale_reason(owned, NOW + 1, 3600, "web-1", dead) == "owner process 4242 on web-1 has ended"
    assert mod.stale_reason(owned, NOW + 1, 3600, "web-1", alive) is None
    # another host's PID means nothing here
    assert mod.stale_reason(owned, NOW + 1, 3600, "web-2", dead) is None
    assert mod.stale_reason(lock(), NOW + 1, 3600, "web-1", dead) is None  # no owner_pid


def test_public_lock_hides_the_token_and_own_lock_shows_it():
    shown = mod.public_lock(lock(), NOW + 12.5)
    assert "token" not in shown
    assert shown["age"] == 12.5
    assert mod.own_lock(lock(), NOW)["token"] == "t0k"
    assert mod.public_lock(None) is None


def test_describe_names_holder_reason_and_age():
    text = mod.describe(lock(owner_pid=7), NOW + 125)
    assert text == ("'alice via AWX job 42' (reason: backend rollback, since 2024-05-18T10:15:00Z, "
                    "125 s ago, on host web-1, owner pid 7)")
    assert "(none given)" in mod.describe(lock(reason=""), NOW)


def test_lock_file_create_is_exclusive(tmp_path):
    f = mod.LockFile(str(tmp_path / "x.lock"))
    assert f.read() == (None, None, None, None)
    assert f.create(lock()) is True
    assert f.create(lock(holder="bob")) is False
    raw, data, problem, mtime = f.read()
    assert data["holder"] == "alice via AWX job 42" and problem is None and mtime > 0
    assert oct(os.stat(f.path).st_mode & 0o777) == "0o644"


def test_lock_file_remove_only_if_unchanged(tmp_path):
    f = mod.LockFile(str(tmp_path / "x.lock"))
    f.create(lock())
    raw = f.read()[0]
    assert f.remove_if_unchanged(raw + b" ") is False
    assert os.path.exists(f.path)
    assert f.remove_if_unchanged(raw) is True
    assert not os.path.exists(f.path)
    assert f.remove_if_unchanged(raw) is False


def test_lock_file_invalid_content(tmp_path):
    path = tmp_path / "x.lock"
    path.write_bytes(b"")
    raw, data, problem, dummy = mod.LockFile(str(path)).read()
    assert raw == b"" and data is None and "not JSON" in problem


# --------------------------------------------------------------------------- issue 10

def test_a_lock_from_an_earlier_boot_of_this_host_is_stale_at_once():
    owned = lock(owner_pid=4242, owner_pid_starttime=1, boot_id="boot-a")
    # the PID may well be alive now (another process after the reboot): the boot decides
    why = mod.stale_reason(owned, NOW + 1, 3600, "web-1", alive, "boot-b")
    assert why.startswith("owner process 4242 on web-1 has ended: the host has rebooted")
    assert mod.stale_reason(owned, NOW + 1, 3600, "web-1", alive, "boot-a") is None
    assert mod.stale_reason(owned, NOW + 1, 3600, "web-1", dead, "boot-a") == \
        "owner process 4242 on web-1 has ended"
    # another host, or a boot that cannot be read here: only the ttl counts
    assert mod.stale_reason(owned, NOW + 1, 3600, "web-2", alive, "boot-b") is None
    assert mod.stale_reason(owned, NOW + 1, 3600, "web-1", alive, None) is None
    # without owner_pid nothing can be checked, whatever the boot
    assert mod.stale_reason(lock(boot_id="boot-a"), NOW + 1, 3600, "web-1", dead, "boot-b") is None


def test_make_lock_records_the_boot_id_when_known():
    assert mod.make_lock("a", "", "h", 1, 2, "t", NOW, "boot-a")["boot_id"] == "boot-a"
    assert "boot_id" not in mod.make_lock("a", "", "h", 1, 2, "t", NOW)
    assert mod.public_lock(lock(boot_id="boot-a"))["boot_id"] == "boot-a"


def test_read_boot_id(tmp_path):
    path = tmp_path / "boot_id"
    path.write_text("5d7c0b7e-8f1e-4a43-9a51-2f8f6d0c1e2a\n")
    assert mod.read_boot_id(str(path)) == "5d7c0b7e-8f1e-4a43-9a51-2f8f6d0c1e2a"
    assert mod.read_boot_id(str(tmp_path / "missing")) is None
    if os.path.exists(mod.BOOT_ID_PATH):
        assert mod.read_boot_id() == open(mod.BOOT_ID_PATH).read().strip()


@pytest.mark.parametrize("option,value,message", [
    ("owner_pid", 100000000000000000000, "owner_pid must be a positive PID, at most 4194304"),
    ("owner_pid", 0, "owner_pid must be a positive PID"),
    ("owner_pid", -5, "owner_pid must be a positive PID"),
    ("wait_timeout", float("nan"), "wait_timeout must be a number of seconds from 0 to 86400"),
    ("wait_timeout", float("inf"), "wait_timeout must be a number of seconds from 0 to 86400"),
    ("wait_timeout", 1e308, "wait_timeout must be a number of seconds from 0 to 86400"),
    ("wait_timeout", -1.0, "wait_timeout must be a number of seconds from 0 to 86400"),
    ("ttl", -1, "ttl must be a number of seconds from 0"),
    ("ttl", 10 ** 20, "ttl must be a number of seconds from 0"),
])
def test_out_of_range_options_fail_before_the_lock_is_touched(tmp_path, option, value, message):
    """Before: owner_pid 10**20 raised OverflowError, and wait_timeout nan/inf/1e308 on a held
    lock never returned."""
    path = tmp_path / ".rollback.lock"
    held = lock(host="elsewhere")
    path.write_text(json.dumps(held))
    before = path.read_bytes()
    kind, result = FUZZ.run({"path": str(path), option: value}, check_mode=False, cwd=tmp_path)
    assert kind == "fail" and message in result["msg"] and "Nothing was changed" in result["msg"]
    assert path.read_bytes() == before
    assert set(result["timing"]) == {"start", "end", "seconds"}


def test_wait_timeout_in_range_still_waits_and_fails(tmp_path):
    path = tmp_path / ".rollback.lock"
    path.write_text(json.dumps(lock(host="elsewhere", started_epoch=__import__("time").time())))
    kind, result = FUZZ.run({"path": str(path), "wait_timeout": 0.3}, check_mode=False, cwd=tmp_path)
    assert kind == "fail" and "is held by 'alice via AWX job 42'" in result["msg"]
    assert 0.3 <= result["waited"] < 5


# --------------------------------------------------------------------------- property test

import sys  # noqa: E402  (the harness sits beside this file; tests/unit has no packages)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from module_fuzz import ModuleFuzz  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _lock_paths():
    # Relative names: the harness runs main() in tmp_path, so every lock lands there.
    return st.sampled_from([".rollback.lock", "x.lock", "sub/x.lock", "..lock", "a\x00b", "",
                            "é.lock", "."])


FUZZ = ModuleFuzz(mod, base_args={"path": ".rollback.lock", "holder": "fuzz via pytest"},
                  strategies={"path": _lock_paths()},
                  deadline=10)


@pytest.mark.parametrize("option", ["owner_pid", "ttl"])
def test_int_option_given_inf_as_text(tmp_path, option):
    """Before: ansible-core's int check raised OverflowError for 'inf' (RollbackModule fixes it)."""
    kind, result = FUZZ.run({option: "inf"}, cwd=tmp_path)
    assert kind == "fail" and option in result["msg"]


@FUZZ.given_options(max_examples=80)
def test_any_option_value_ends_cleanly(option_and_value, tmp_path):
    # tmp_path is shared by the examples: start each without a lock, so a valid long
    # wait_timeout is not spent waiting for the previous example's lock.
    for entry in os.listdir(tmp_path):
        os.unlink(os.path.join(tmp_path, entry))
    FUZZ.check(option_and_value, cwd=tmp_path, check_mode=True)
    FUZZ.check(option_and_value, cwd=tmp_path, check_mode=False)
    # whatever happened, nothing was written outside tmp_path: the lock is the only file
    for entry in os.listdir(tmp_path):
        assert entry in (".rollback.lock", "x.lock", "..lock", "é.lock"), entry
