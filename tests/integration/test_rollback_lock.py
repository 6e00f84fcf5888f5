"""rollback_lock with real files and real processes: every module call is its own process, as
under Ansible; competing runs are concurrent processes; an owner that dies is a real process
this test started and ended."""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import run_module

pytestmark = pytest.mark.integration

HOLDER = "alice via AWX job 42"
REASON = "immediate rollback of backend"


@pytest.fixture
def lock_path(tmp_path):
    return str(tmp_path / ".rollback.lock")


def acquire(path, check_mode=False, **args):
    return run_module("rollback_lock", {"path": path, "holder": HOLDER, "reason": REASON, **args},
                      check_mode=check_mode, diff=True)


def release(path, check_mode=False, **args):
    return run_module("rollback_lock", {"path": path, "state": "absent", **args},
                      check_mode=check_mode, diff=True)


def content(path):
    with open(path, "rb") as f:
        return f.read()


def write_lock(path, **fields):
    """A lock as a run that crashed long ago would have left it."""
    data = dict(holder="old run", reason="left behind", started_at="2000-01-01T00:00:00Z",
                started_epoch=time.time() - 7200, host=os.uname().nodename, owner_pid=None,
                owner_pid_starttime=None, token="old-token")
    data.update(fields)
    with open(path, "w") as f:
        json.dump(data, f)
    return data


def test_acquire_then_release(lock_path):
    got = acquire(lock_path)
    assert got["failed"] is False, got["msg"]
    assert got["changed"] is True and got["acquired"] is True
    token = got["lock"]["token"]
    assert len(token) == 32
    on_disk = json.loads(content(lock_path))
    assert on_disk["holder"] == HOLDER and on_disk["reason"] == REASON and on_disk["token"] == token
    assert on_disk["host"] == os.uname().nodename
    assert abs(on_disk["started_epoch"] - time.time()) < 5
    assert on_disk["started_at"].endswith("Z")
    assert got["diff"]["before"] == {} and got["diff"]["after"]["holder"] == HOLDER
    assert "token" not in got["diff"]["after"]

    # acquiring what you already hold is a no-op
    again = acquire(lock_path, token=token)
    assert again["changed"] is False and again["acquired"] is True
    assert again["lock"]["token"] == token

    gone = release(lock_path, token=token)
    assert gone["failed"] is False, gone["msg"]
    assert gone["changed"] is True and gone["released"] is True
    assert gone["lock"]["holder"] == HOLDER
    assert not os.path.exists(lock_path)

    absent = release(lock_path, token=token)
    assert absent["failed"] is False
    assert absent["changed"] is False and absent["released"] is False


def test_check_real_check_idempotent_with_a_chosen_token(lock_path):
    args = dict(token="awx-job-42")
    check = acquire(lock_path, check_mode=True, **args)
    assert check["changed"] is True and check["acquired"] is True
    assert not os.path.exists(lock_path)
    real = acquire(lock_path, **args)
    assert real["changed"] is True and real["lock"]["token"] == "awx-job-42"
    assert check["diff"]["after"]["holder"] == real["diff"]["after"]["holder"]
    raw = content(lock_path)
    again = acquire(lock_path, check_mode=True, **args)
    assert again["changed"] is False
    idem = acquire(lock_path, **args)
    assert idem["changed"] is False
    assert content(lock_path) == raw

    check = release(lock_path, check_mode=True, **args)
    assert check["changed"] is True and check["released"] is True
    assert content(lock_path) == raw
    assert release(lock_path, **args)["changed"] is True
    assert release(lock_path, check_mode=True, **args)["changed"] is False
    assert release(lock_path, **args)["changed"] is False


def test_second_acquirer_waits_then_fails_naming_the_holder(lock_path):
    first = acquire(lock_path)
    raw = content(lock_path)
    started = time.monotonic()
    second = run_module("rollback_lock", {"path": lock_path, "holder": "bob via CLI",
                                          "wait_timeout": 0.6})
    assert second["failed"] is True
    assert second["acquired"] is False and second["changed"] is False
    assert 0.6 <= second["waited"] < 1.5
    # waited (above) is the module's own measure; the wall clock adds process start-up, seconds on a
    # loaded CI machine: bound loosely, to catch a wait that ignores wait_timeout
    assert time.monotonic() - started < 10
    assert HOLDER in second["msg"] and REASON in second["msg"] and " s ago" in second["msg"]
    assert second["stale"] is False
    # the holder's token is not shown to others
    assert second["lock"]["holder"] == HOLDER and "token" not in second["lock"]
    assert first["lock"]["token"] not in json.dumps(second)
    assert content(lock_path) == raw


def test_no_wait_fails_at_once(lock_path):
    acquire(lock_path)
    second = run_module("rollback_lock", {"path": lock_path, "holder": "bob"})
    assert second["failed"] is True and second["waited"] < 0.5


def test_second_acquirer_gets_the_lock_when_the_first_releases(lock_path):
    first = acquire(lock_path)
    token = first["lock"]["token"]
    released = {}

    def release_later():
        released.update(release(lock_path, token=token))

    # Another process releases 0.5 s into the second acquirer's wait of up to 10 s.
    timer = threading.Timer(0.5, release_later)
    timer.start()
    try:
        second = run_module("rollback_lock", {"path": lock_path, "holder": "bob via CLI",
                                              "wait_timeout": 10})
    finally:
        timer.join()
    assert released["changed"] is True
    assert second["failed"] is False, second["msg"]
    assert second["acquired"] is True and second["changed"] is True
    assert 0.1 < second["waited"] < 5
    assert json.loads(content(lock_path))["holder"] == "bob via CLI"


def test_only_one_of_many_concurrent_acquirers_wins(lock_path):
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(
            lambda i: run_module("rollback_lock", {"path": lock_path, "holder": f"run {i}"}),
            range(6)))
    winners = [r for r in results if r["acquired"]]
    assert len(winners) == 1
    assert all(r["failed"] for r in results if not r["acquired"])
    assert json.loads(content(lock_path))["holder"] == winners[0]["lock"]["holder"]


def test_stale_by_ttl_is_reported_and_only_broken_on_request(lock_path):
    old = write_lock(lock_path)
    raw = content(lock_path)
    refused = acquire(lock_path)
    assert refused["failed"] is True
    assert refused["stale"] is True
    assert "older than ttl 3600 s" in refused["stale_reason"]
    assert "break_stale" in refused["msg"] and "old run" in refused["msg"]
    assert content(lock_path) == raw

    check = acquire(lock_path, check_mode=True, break_stale=True)
    assert check["changed"] is True and check["acquired"] is True and check["stale"] is True
    assert content(lock_path) == raw

    taken = acquire(lock_path, break_stale=True)
    assert taken["failed"] is False, taken["msg"]
    assert taken["changed"] is True and taken["acquired"] is True
    assert taken["stale"] is True and "older than ttl" in taken["stale_reason"]
    assert taken["replaced_lock"]["holder"] == old["holder"]
    assert "token" not in taken["replaced_lock"]
    assert json.loads(content(lock_path))["token"] == taken["lock"]["token"]


def test_ttl_zero_never_stale_by_age(lock_path):
    write_lock(lock_path)
    result = acquire(lock_path, ttl=0)
    assert result["failed"] is True and result["stale"] is False


def test_stale_by_owner_pid(lock_path):
    owner = subprocess.Popen(["sleep", "30"])
    try:
        first = acquire(lock_path, owner_pid=owner.pid)
        assert first["failed"] is False, first["msg"]
        assert first["lock"]["owner_pid"] == owner.pid
        assert first["lock"]["owner_pid_starttime"] > 0
        while_alive = acquire(lock_path)
        assert while_alive["failed"] is True and while_alive["stale"] is False
    finally:
        owner.terminate()
        owner.wait(timeout=10)

    refused = acquire(lock_path)
    assert refused["failed"] is True
    assert refused["stale"] is True
    assert refused["stale_reason"] == "owner process %d on %s has ended" % (owner.pid, os.uname().nodename)

    taken = acquire(lock_path, break_stale=True)
    assert taken["changed"] is True and taken["acquired"] is True
    assert taken["replaced_lock"]["owner_pid"] == owner.pid


def test_owner_pid_must_be_running(lock_path):
    gone = subprocess.Popen(["sleep", "0"])
    gone.wait(timeout=10)
    result = acquire(lock_path, owner_pid=gone.pid)
    assert result["failed"] is True
    assert "owner_pid %d is not running" % gone.pid in result["msg"]
    assert not os.path.exists(lock_path)


def test_unreadable_lock_is_stale_once_old(lock_path):
    with open(lock_path, "w"):
        pass
    fresh = acquire(lock_path, break_stale=True)  # may be a lock being written: wait, not break
    assert fresh["failed"] is True and fresh["stale"] is False
    old = time.time() - 60
    os.utime(lock_path, (old, old))
    taken = acquire(lock_path, break_stale=True)
    assert taken["failed"] is False, taken["msg"]
    assert "not JSON" in taken["stale_reason"]


def test_release_with_a_wrong_token_is_refused(lock_path):
    got = acquire(lock_path)
    raw = content(lock_path)
    for args in ({"token": "not-the-token"}, {}):
        refused = release(lock_path, **args)
        assert refused["failed"] is True
        assert refused["released"] is False and refused["changed"] is False
        assert HOLDER in refused["msg"] and "force: true" in refused["msg"]
        assert got["lock"]["token"] not in json.dumps(refused)
        assert content(lock_path) == raw


def test_force_release(lock_path):
    acquire(lock_path)
    raw = content(lock_path)
    check = release(lock_path, check_mode=True, force=True)
    assert check["changed"] is True and content(lock_path) == raw
    forced = release(lock_path, force=True)
    assert forced["changed"] is True and forced["released"] is True
    assert forced["lock"]["holder"] == HOLDER and "token" not in forced["lock"]
    assert not os.path.exists(lock_path)


def test_missing_directory_fails(tmp_path):
    path = str(tmp_path / "nope" / ".rollback.lock")
    result = acquire(path)
    assert result["failed"] is True and "does not exist" in result["msg"]
    assert not os.path.exists(os.path.dirname(path))


def _boot_id():
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()


def test_a_killed_owner_makes_the_lock_stale_at_once(lock_path):
    """Issue 10: after kill -9 of the run that holds the lock, the next run can take it over at
    once (not after ttl), while a live owner's lock is never stale."""
    live = subprocess.Popen(["sleep", "60"])
    victim = subprocess.Popen(["sleep", "60"])
    other = lock_path + ".live"
    try:
        held = acquire(other, owner_pid=live.pid, ttl=3600)
        assert held["failed"] is False, held["msg"]
        assert held["lock"]["boot_id"] == _boot_id()
        first = acquire(lock_path, owner_pid=victim.pid, ttl=3600)
        assert first["failed"] is False, first["msg"]
        on_disk = json.loads(content(lock_path))
        assert on_disk["boot_id"] == _boot_id() and on_disk["owner_pid"] == victim.pid

        victim.kill()  # SIGKILL: the run had no chance to release
        victim.wait(timeout=10)
        refused = acquire(lock_path, ttl=3600)
        assert refused["failed"] is True and refused["stale"] is True
        assert refused["stale_reason"] == "owner process %d on %s has ended" % (victim.pid, os.uname().nodename)
        assert "break_stale: true" in refused["msg"]
        taken = acquire(lock_path, ttl=3600, break_stale=True)
        assert taken["failed"] is False and taken["acquired"] is True, taken["msg"]
        assert taken["replaced_lock"]["owner_pid"] == victim.pid

        # the live owner's lock: not stale, break_stale changes nothing
        before = content(other)
        kept = acquire(other, ttl=3600, break_stale=True)
        assert kept["failed"] is True and kept["stale"] is False
        assert content(other) == before
    finally:
        for proc in (live, victim):
            proc.kill()
            proc.wait(timeout=10)


def test_a_lock_from_an_earlier_boot_is_stale_at_once(lock_path):
    """The PID of a lock taken before a reboot may belong to anything now (here: a live process
    of ours); the boot ID says its owner cannot be alive."""
    live = subprocess.Popen(["sleep", "60"])
    try:
        write_lock(lock_path, started_epoch=time.time() - 5, owner_pid=live.pid,
                   owner_pid_starttime=None, boot_id="00000000-0000-0000-0000-000000000000")
        refused = acquire(lock_path, ttl=3600)
        assert refused["failed"] is True and refused["stale"] is True
        assert "the host has rebooted since the lock was taken" in refused["stale_reason"]
        taken = acquire(lock_path, ttl=3600, break_stale=True)
        assert taken["failed"] is False and taken["acquired"] is True, taken["msg"]

        # the same lock from this boot is live: only the ttl could end it
        os.unlink(lock_path)
        write_lock(lock_path, started_epoch=time.time() - 5, owner_pid=live.pid, boot_id=_boot_id())
        assert acquire(lock_path, ttl=3600, break_stale=True)["stale"] is False
        # from another host: cannot be checked, the ttl decides
        os.unlink(lock_path)
        write_lock(lock_path, started_epoch=time.time() - 5, owner_pid=999999, host="elsewhere",
                   boot_id="00000000-0000-0000-0000-000000000000")
        assert acquire(lock_path, ttl=3600, break_stale=True)["stale"] is False
    finally:
        live.kill()
        live.wait(timeout=10)
