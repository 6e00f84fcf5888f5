"""The payload_cache callback with a real ansible-playbook: the second run reuses the payloads the
first one built (with their bytecode), and a cache directory that is not private is not used."""
from __future__ import annotations

import base64
import io
import os
import pickle
import stat
import subprocess
import textwrap
import zipfile

import pytest

from conftest import VENV_BIN, ansible_env

pytestmark = pytest.mark.integration

PLAY = textwrap.dedent("""\
    - hosts: localhost
      gather_facts: false
      tasks:
        - name: A module of ansible-core
          ansible.builtin.ping:
        - name: A module of this collection
          taylordash.rollback.watchdog_state:
            path: "{{ state_file }}"
            state: read
    """)


def _run(tmp_path, cache_dir):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-vvv", "-i", "localhost,", "-c", "local", str(playbook),
         "-e", f"state_file={tmp_path / 'none.json'}"],
        capture_output=True, text=True, timeout=120, check=False,
        env=ansible_env({"TAYLORDASH_PAYLOAD_CACHE": str(cache_dir)}))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_the_second_run_reuses_the_payloads_of_the_first(tmp_path):
    cache_dir = tmp_path / "payloads"
    first = _run(tmp_path, cache_dir)
    assert "payload_cache: 0 payloads reused from" in first
    assert "payload_cache: 2 new payloads kept in" in first
    [store] = list(cache_dir.iterdir())
    assert stat.S_IMODE(os.stat(cache_dir).st_mode) == 0o700 and stat.S_IMODE(os.stat(store).st_mode) == 0o700
    names = sorted(os.listdir(store))
    assert [name.split("-")[0] for name in names] == [
        "ansible.modules.ping", "ansible_collections.taylordash.rollback.plugins.modules.watchdog_state"]
    assert all(stat.S_IMODE(os.stat(store / name).st_mode) == 0o600 for name in names)
    # each kept payload carries the bytecode of every Python file in it
    for name in names:
        with open(store / name, "rb") as kept:
            files = zipfile.ZipFile(io.BytesIO(base64.b64decode(pickle.load(kept).zip_data))).namelist()
        sources = [f for f in files if f.endswith(".py") and f != "sitecustomize.py"]
        assert sources and sorted(f + "c" for f in sources) == sorted(f for f in files if f.endswith(".pyc")), name

    second = _run(tmp_path, cache_dir)
    assert "payload_cache: 2 payloads reused from" in second
    assert "payload_cache: 0 new payloads kept in" in second


def test_a_cache_directory_others_may_write_is_not_used(tmp_path):
    cache_dir = tmp_path / "shared"
    cache_dir.mkdir()
    cache_dir.chmod(0o777)
    out = _run(tmp_path, cache_dir)
    assert "payload_cache: not using" in out and "writable by group or others (mode 0777)" in out
    assert os.listdir(cache_dir) == []
