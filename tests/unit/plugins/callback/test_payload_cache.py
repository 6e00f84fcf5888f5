"""payload_cache: which payloads are kept, under which fingerprint, and only in a private directory.
A real ansible-playbook run that reuses them: tests/integration/test_payload_cache.py."""
from __future__ import annotations

import os
import shutil
import stat

import pytest

from ansible_collections.taylordash.rollback.plugins.callback import payload_cache as cache

OURS = "ansible_collections.taylordash.rollback.plugins.modules.rollback_lock-ZIP_STORED-none"
CORE = "ansible.modules.command-ZIP_DEFLATED-none"


@pytest.mark.parametrize("name,kept", [
    (OURS, True),
    (CORE, True),
    # another collection's module: its sources are not in the fingerprint
    ("ansible_collections.community.docker.plugins.modules.docker_compose_v2-ZIP_STORED-none", False),
    # built with the debugger or coverage extension
    ("ansible.modules.ping-ZIP_STORED-debugger", False),
    (OURS + ".lock", False),
    ("." + OURS + ".x1y2", False),
    ("../" + OURS, False),
])
def test_only_this_collections_and_core_payloads_are_kept(name, kept):
    assert bool(cache.PAYLOAD_NAME.match(name)) is kept


def _collection(tmp_path):
    root = tmp_path / "collection"
    for sub in ("modules", "module_utils"):
        (root / "plugins" / sub).mkdir(parents=True)
    (root / "plugins" / "modules" / "one.py").write_text("print(1)\n")
    (root / "plugins" / "module_utils" / "_util.py").write_text("X = 1\n")
    return root


def test_the_fingerprint_follows_every_module_and_module_util(tmp_path):
    root = _collection(tmp_path)
    first = cache.fingerprint(str(root))
    assert first == cache.fingerprint(str(root)) and len(first) == 24
    (root / "plugins" / "module_utils" / "_util.py").write_text("X = 2\n")
    second = cache.fingerprint(str(root))
    assert second != first
    (root / "plugins" / "modules" / "two.py").write_text("")
    third = cache.fingerprint(str(root))
    assert third not in (first, second)
    # files that are not Python source are not part of any payload
    (root / "plugins" / "modules" / "README.md").write_text("x")
    assert cache.fingerprint(str(root)) == third
    assert cache.fingerprint(str(root), core_version="2.19.99") != third


def test_a_private_directory_is_trusted_and_nothing_else(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    assert cache.private_problem(str(private), True) is None
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o775)
    assert "writable by group or others (mode 0775)" in cache.private_problem(str(shared), True)
    link = tmp_path / "link"
    link.symlink_to(private)
    assert cache.private_problem(str(link), True) == "not a directory"
    assert "cannot read it" in cache.private_problem(str(tmp_path / "missing"), True)
    payload = private / OURS
    payload.write_bytes(b"x")
    payload.chmod(0o666)
    assert "writable by group or others" in cache.private_problem(str(payload), False)


def test_kept_then_put_back(tmp_path):
    run_cache = tmp_path / "run1" / "ansiballz_cache"
    run_cache.mkdir(parents=True)
    (run_cache / OURS).write_bytes(b"payload-1")
    (run_cache / CORE).write_bytes(b"payload-2")
    (run_cache / (OURS + ".lock")).write_bytes(b"")
    (run_cache / "ansible_collections.other.x.plugins.modules.y-ZIP_STORED-none").write_bytes(b"no")
    base = tmp_path / "kept"
    store = base / ("a" * 24)
    assert cache.save(str(run_cache), str(base), str(store)) == 2
    assert sorted(os.listdir(store)) == sorted([OURS, CORE])
    assert stat.S_IMODE(os.stat(base).st_mode) == 0o700 and stat.S_IMODE(os.stat(store).st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(store / name).st_mode) == 0o600 for name in os.listdir(store))
    # a second save of the same run keeps nothing new
    assert cache.save(str(run_cache), str(base), str(store)) == 0

    next_run = tmp_path / "run2" / "ansiballz_cache"
    assert cache.restore(str(store), str(next_run)) == 2
    assert (next_run / OURS).read_bytes() == b"payload-1"
    # one the run already built is left as it is
    (next_run / CORE).write_bytes(b"built-by-this-run")
    (next_run / OURS).unlink()
    assert cache.restore(str(store), str(next_run)) == 1
    assert (next_run / CORE).read_bytes() == b"built-by-this-run"


def test_a_store_that_is_not_private_is_not_read(tmp_path):
    store = tmp_path / ("b" * 24)
    store.mkdir(mode=0o700)
    (store / OURS).write_bytes(b"payload")
    (store / OURS).chmod(0o600)
    (store / CORE).write_bytes(b"planted")
    (store / CORE).chmod(0o622)
    run_cache = tmp_path / "run" / "ansiballz_cache"
    assert cache.restore(str(store), str(run_cache)) == 1
    assert os.listdir(run_cache) == [OURS]
    store.chmod(0o777)
    shutil.rmtree(run_cache)
    assert cache.restore(str(store), str(run_cache)) == 0
    store.chmod(0o700)


def test_saving_into_a_shared_directory_is_refused(tmp_path):
    run_cache = tmp_path / "run"
    run_cache.mkdir()
    (run_cache / OURS).write_bytes(b"payload")
    base = tmp_path / "shared"
    base.mkdir()
    base.chmod(0o777)
    with pytest.raises(OSError, match="writable by group or others"):
        cache.save(str(run_cache), str(base), str(base / ("c" * 24)))
    assert not (base / ("c" * 24) / OURS).exists()


def test_only_the_newest_fingerprints_are_kept(tmp_path):
    base = tmp_path / "kept"
    base.mkdir()
    names = ["%024x" % n for n in range(8)]
    for age, name in enumerate(names):
        (base / name).mkdir()
        os.utime(base / name, (1000 + age, 1000 + age))
    (base / "not-a-fingerprint").mkdir()
    cache.prune(str(base), keep=names[0])
    left = sorted(os.listdir(base))
    assert left == sorted(names[3:] + [names[0], "not-a-fingerprint"]), left
