"""The watchdog_timer role through playbooks/watchdog_timer.yml: the systemd service and timer that
run the watchdog playbook, rendered into a redirected unit directory. Check mode writes nothing and
shows the units; a real run writes units that systemd accepts (``systemd-analyze verify`` where it
is installed, a parser of systemd's quoting always); a second run changes nothing; broken settings
fail naming each variable before anything is written; ``absent`` removes the units. systemd is
reloaded only where it is the init system: elsewhere the run says so in one line."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, VENV_BIN, run_playbook

pytestmark = pytest.mark.integration

PLAYBOOK = REPO / "playbooks" / "watchdog_timer.yml"
SYSTEMD_BOOTED = Path("/run/systemd/system").is_dir()


def recap_changed(stdout: str) -> int:
    match = re.search(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)", stdout)
    assert match, stdout
    return int(match.group(1))


def systemd_words(line: str) -> list:
    """Split a systemd command line the way systemd does for ExecStart (double quotes with C escapes),
    then undo the unit-file escapes of specifiers (%%) and variables ($$)."""
    words, i = [], 0
    while i < len(line):
        if line[i] == " ":
            i += 1
            continue
        assert line[i] == '"', f"unquoted word at {i}: {line}"
        i += 1
        word = ""
        while line[i] != '"':
            if line[i] == "\\":
                i += 1
            word += line[i]
            i += 1
        i += 1
        words.append(word.replace("%%", "%").replace("$$", "$"))
    return words


def unit_values(path: Path) -> dict:
    """{section: {key: [values]}} of a unit file (keys may repeat, as Environment= does)."""
    out: dict = {}
    section = None
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = out.setdefault(line.strip("[]"), {})
            continue
        key, value = line.split("=", 1)
        section.setdefault(key, []).append(value)
    return out


@pytest.fixture
def timer_env(tmp_path):
    units = tmp_path / "units"
    units.mkdir()
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("taylordash:\n  hosts:\n    localhost: {ansible_connection: local}\n")
    base = {
        "watchdog_timer_unit_dir": str(units),
        "watchdog_timer_inventory": str(inventory),
        "watchdog_timer_name": "tdtest-watchdog",
        "watchdog_timer_interval": 30,
        # Never touch the systemd of a machine that runs one: these units live in a temp dir.
        **({"watchdog_timer_manage_systemd": False} if SYSTEMD_BOOTED else {}),
    }
    return units, inventory, base


def test_check_mode_shows_the_units_and_writes_nothing_then_install_is_valid_and_idempotent(timer_env, tmp_path):
    units, inventory, base = timer_env
    settings = dict(base, watchdog_timer_extra_args=["-e", '@/srv/ops/watch vars.yml', "-e", 'note="100% $HOME"'],
                    watchdog_timer_environment={"ANSIBLE_COLLECTIONS_PATH": "/srv/ops/collections"},
                    watchdog_timer_project_dir=str(tmp_path))

    check = run_playbook(PLAYBOOK, extra_vars=settings, check=True, diff=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert list(units.iterdir()) == []
    assert "+OnUnitInactiveSec=30s" in check.stdout
    assert "+ExecStart=" in check.stdout and "taylordash.rollback.watchdog" in check.stdout
    assert recap_changed(check.stdout) == 1

    real = run_playbook(PLAYBOOK, extra_vars=settings)
    assert real.returncode == 0, real.stdout + real.stderr
    service, timer = units / "tdtest-watchdog.service", units / "tdtest-watchdog.timer"
    assert sorted(p.name for p in units.iterdir()) == [service.name, timer.name]
    assert oct(service.stat().st_mode & 0o777) == "0o644"
    if not SYSTEMD_BOOTED:
        assert "systemd: skipped, systemd is not the init system on localhost (no /run/systemd/system); unit files only" in real.stdout

    svc = unit_values(service)
    assert svc["Service"]["Type"] == ["oneshot"]
    assert systemd_words(svc["Service"]["ExecStart"][0]) == [
        str(VENV_BIN / "ansible-playbook"), "-i", str(inventory),
        "-e", "@/srv/ops/watch vars.yml", "-e", 'note="100% $HOME"', "taylordash.rollback.watchdog"]
    assert svc["Service"]["WorkingDirectory"] == [str(tmp_path)]
    assert svc["Service"]["Environment"] == ['"ANSIBLE_COLLECTIONS_PATH=/srv/ops/collections"']
    assert svc["Service"]["TimeoutStartSec"] == ["900"]
    tmr = unit_values(timer)
    assert tmr["Timer"] == {"OnActiveSec": ["30s"], "OnUnitInactiveSec": ["30s"], "AccuracySec": ["1s"],
                            "Unit": ["tdtest-watchdog.service"]}
    assert tmr["Install"]["WantedBy"] == ["timers.target"]

    analyze = shutil.which("systemd-analyze")
    if analyze:
        proc = subprocess.run([analyze, "verify", str(service), str(timer)], capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    before = {p.name: (p.stat().st_mtime_ns, p.read_text()) for p in units.iterdir()}
    again = run_playbook(PLAYBOOK, extra_vars=settings)
    assert again.returncode == 0 and recap_changed(again.stdout) == 0, again.stdout
    check_again = run_playbook(PLAYBOOK, extra_vars=settings, check=True, diff=True)
    assert check_again.returncode == 0 and recap_changed(check_again.stdout) == 0, check_again.stdout
    assert {p.name: (p.stat().st_mtime_ns, p.read_text()) for p in units.iterdir()} == before

    # Removal: check mode predicts it and removes nothing; then it removes both; then nothing to do.
    absent = dict(settings, watchdog_timer_state="absent")
    check_absent = run_playbook(PLAYBOOK, extra_vars=absent, check=True)
    assert check_absent.returncode == 0 and recap_changed(check_absent.stdout) == 1, check_absent.stdout
    assert sorted(p.name for p in units.iterdir()) == [service.name, timer.name]
    removed = run_playbook(PLAYBOOK, extra_vars=absent)
    assert removed.returncode == 0 and recap_changed(removed.stdout) == 1, removed.stdout
    assert list(units.iterdir()) == []


def test_broken_settings_fail_naming_each_variable_before_anything_is_written(timer_env):
    units, _inventory, base = timer_env
    settings = dict(base, watchdog_timer_interval=0, watchdog_timer_name="bad name", watchdog_timer_inventory=None,
                    watchdog_timer_environment={"1BAD": "x"}, watchdog_timer_ansible_playbook="ansible-playbook")
    if not SYSTEMD_BOOTED:
        settings["watchdog_timer_manage_systemd"] = True
    proc = run_playbook(PLAYBOOK, extra_vars=settings)
    assert proc.returncode != 0
    out = proc.stdout
    assert "Invalid watchdog timer settings, nothing was changed" in out
    expected = ["watchdog_timer_interval=0 - must be a whole number from 1 to 86400",
                "watchdog_timer_name=bad name - must be letters, digits and _ . : -",
                "watchdog_timer_inventory=null - must be set",
                "watchdog_timer_environment=1BAD - names must be",
                "watchdog_timer_ansible_playbook=ansible-playbook - must be an absolute path"]
    if not SYSTEMD_BOOTED:
        expected.append("watchdog_timer_manage_systemd=true - systemd is not the init system on localhost")
    for text in expected:
        assert text in out, out
    assert list(units.iterdir()) == []


def test_missing_paths_are_named_together(timer_env, tmp_path):
    units, _inventory, base = timer_env
    proc = run_playbook(PLAYBOOK, extra_vars=dict(base, watchdog_timer_inventory=str(tmp_path / "nope.yml"),
                                                  watchdog_timer_unit_dir=str(tmp_path / "none"),
                                                  watchdog_timer_ansible_playbook=str(tmp_path / "no-ansible-playbook")))
    assert proc.returncode != 0
    for text in (f"watchdog_timer_inventory={tmp_path / 'nope.yml'} - does not exist on localhost",
                 f"watchdog_timer_unit_dir={tmp_path / 'none'} - is not a directory on localhost",
                 f"watchdog_timer_ansible_playbook={tmp_path / 'no-ansible-playbook'} - does not exist on localhost"):
        assert text in proc.stdout, proc.stdout
    assert list(units.iterdir()) == []
