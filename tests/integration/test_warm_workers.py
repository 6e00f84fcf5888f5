"""The warm_workers callback with a real ansible-playbook: the first run keeps the templates its
workers compiled, the second compiles none and prints the same; the run's secrets are in no kept
file; a directory that is not private keeps nothing, and the run works as usual."""
from __future__ import annotations

import os
import re
import stat
import subprocess
import textwrap

import pytest

from conftest import VENV_BIN, ansible_env

pytestmark = pytest.mark.integration

SECRET = "wwk-7c1f0e-not-for-files"
PLAY = textwrap.dedent("""\
    - hosts: localhost
      gather_facts: false
      vars:
        steps: [{name: retag, seconds: 1.5}, {name: health, seconds: 0.25}]
      tasks:
        - name: A filter of this collection, in a task's arguments and its condition
          ansible.builtin.debug:
            msg: "{{ ['first', 'second'] | taylordash.rollback.failure_chain }} / {{ steps | map(attribute='name') | join(',') }}"
          when: steps | length > 1 and api_key | length > 0
        - name: A conditional and a loop
          ansible.builtin.debug:
            msg: "{{ item.name | upper }} took {{ '%.2f' | format(item.seconds) }} s"
          loop: "{{ steps }}"
          when: item.seconds > 0.5
    """)


def _run(tmp_path, cache_dir, callbacks="taylordash.rollback.warm_workers"):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    secrets = tmp_path / "secrets.json"
    secrets.write_text('{"api_key": "%s"}' % SECRET)
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-vvv", "-i", "localhost,", "-c", "local", str(playbook),
         "-e", f"@{secrets}"],
        capture_output=True, text=True, timeout=120, check=False,
        env=ansible_env({"TAYLORDASH_TEMPLATE_CACHE": str(cache_dir), "ANSIBLE_CALLBACKS_ENABLED": callbacks}))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _messages(out):
    return [line.strip() for line in out.splitlines() if '"msg":' in line]


def test_the_second_run_compiles_nothing_and_prints_the_same(tmp_path):
    cache_dir = tmp_path / "templates"
    first = _run(tmp_path, cache_dir)
    assert re.search(r"warm_workers: [0-9]{2} filters loaded; 0 compiled templates in", first)
    kept = [line for line in first.splitlines() if "new compiled templates kept in" in line]
    assert kept and int(kept[0].split("warm_workers: ")[1].split()[0]) >= 5, kept
    [store] = list(cache_dir.iterdir())
    assert stat.S_IMODE(os.stat(cache_dir).st_mode) == 0o700 and stat.S_IMODE(os.stat(store).st_mode) == 0o700
    entries = os.listdir(store)
    assert all(stat.S_IMODE(os.stat(store / name).st_mode) == 0o600 for name in entries)
    # template sources and code only: never a value the run was given
    assert not [name for name in entries if SECRET.encode() in (store / name).read_bytes()]

    second = _run(tmp_path, cache_dir)
    assert "warm_workers: 0 new compiled templates kept in" in second
    assert sorted(os.listdir(store)) == sorted(entries)
    assert _messages(second) == _messages(first)
    assert '"msg": "first; then: second / retag,health"' in _messages(second)
    assert '"msg": "RETAG took 1.50 s"' in _messages(second)
    # and the same as without the callback
    assert _messages(_run(tmp_path, cache_dir, callbacks="ansible.posix.profile_tasks")) == _messages(first)


def test_a_directory_others_may_write_keeps_nothing(tmp_path):
    cache_dir = tmp_path / "shared"
    cache_dir.mkdir()
    cache_dir.chmod(0o777)
    out = _run(tmp_path, cache_dir)
    assert "warm_workers: not keeping compiled templates in" in out
    assert "writable by group or others (mode 0777)" in out
    assert "no compiled template kept" in out
    assert os.listdir(cache_dir) == []
    assert '"msg": "RETAG took 1.50 s"' in _messages(out)
