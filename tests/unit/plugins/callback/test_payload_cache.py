"""payload_cache: which payloads are kept, under which fingerprint, and only in a private directory.
A real ansible-playbook run that reuses them: tests/integration/test_payload_cache.py."""
from __future__ import annotations

import base64
import io
import os
import pickle
import shutil
import stat
import subprocess
import sys
import zipfile

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


# ----------------------------------------------------------------- bytecode in the kept payloads

def _payload_zip(files):
    """A payload-like zip (stored, as examples/project builds them) of {name: source}."""
    output = io.BytesIO()
    with zipfile.ZipFile(output, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for name, source in files.items():
            archive.writestr(name, source)
    return output.getvalue()


def _import_from(archive, module):
    """Import ``module`` from the zip file ``archive`` in a new Python; the file name its code
    was compiled under (relative: from the kept .pyc; the zip's own path: compiled from source)."""
    out = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import %s as m; print(m.where(), m.VALUE)" % module,
         str(archive)], capture_output=True, text=True, check=True).stdout.split()
    return out[0], out[1]


SOURCES = {
    "pkg/__init__.py": "",
    "pkg/mod.py": "import sys\nVALUE = 'one'\ndef where():\n    return sys._getframe().f_code.co_filename\n",
}


def test_every_source_of_a_payload_gets_its_bytecode_and_python_runs_it(tmp_path):
    compiled = zipfile.ZipFile(io.BytesIO(cache.zip_with_bytecode(_payload_zip(SOURCES))))
    assert sorted(compiled.namelist()) == ["pkg/__init__.py", "pkg/__init__.pyc", "pkg/mod.py", "pkg/mod.pyc"]
    assert compiled.read("pkg/mod.py").decode() == SOURCES["pkg/mod.py"]
    archive = tmp_path / "payload.zip"
    archive.write_bytes(compiled.fp.getvalue())
    # the bytecode ran: its code carries the name it was compiled under, the path inside the zip
    assert _import_from(archive, "pkg.mod") == ("pkg/mod.py", "one")


def test_bytecode_that_does_not_match_its_source_or_python_is_not_run(tmp_path):
    stale = zipfile.ZipFile(io.BytesIO(cache.zip_with_bytecode(_payload_zip(SOURCES))))
    changed = dict(SOURCES, **{"pkg/mod.py": SOURCES["pkg/mod.py"].replace("'one'", "'two'")})
    # the .pyc of the first source beside a changed source: its hash no longer matches
    mixed = {name: stale.read(name) for name in stale.namelist()}
    mixed["pkg/mod.py"] = changed["pkg/mod.py"].encode()
    archive = tmp_path / "stale.zip"
    archive.write_bytes(_payload_zip(mixed))
    where, value = _import_from(archive, "pkg.mod")
    assert value == "two" and where == str(archive / "pkg" / "mod.py")
    # bytecode of another Python (another magic number) is left for the source
    other = dict(mixed, **{"pkg/mod.pyc": b"\x00\x00\r\n" + stale.read("pkg/mod.pyc")[4:]})
    other["pkg/mod.py"] = SOURCES["pkg/mod.py"].encode()
    archive.write_bytes(_payload_zip(other))
    assert _import_from(archive, "pkg.mod") == (str(archive / "pkg" / "mod.py"), "one")


def test_a_payload_of_ansible_core_is_kept_with_its_bytecode(tmp_path):
    module_common = pytest.importorskip("ansible.executor.module_common")
    built = module_common._CachedModule(zip_data=base64.b64encode(_payload_zip(SOURCES)), metadata=None,
                                        source_mapping={"/controller/pkg/mod.py": "pkg/mod.py"})
    path = tmp_path / "payload"
    built.dump(str(path))
    kept = pickle.loads(cache.payload_with_bytecode(str(path)))
    assert isinstance(kept, module_common._CachedModule) and kept.source_mapping == built.source_mapping
    names = zipfile.ZipFile(io.BytesIO(base64.b64decode(kept.zip_data))).namelist()
    assert "pkg/mod.pyc" in names and "pkg/__init__.pyc" in names
    # anything else is kept as ansible-core wrote it (save() copies the file unchanged)
    path.write_bytes(b"not a pickle")
    assert cache.payload_with_bytecode(str(path)) is None
    path.write_bytes(pickle.dumps({"zip_data": b"x"}))
    assert cache.payload_with_bytecode(str(path)) is None
