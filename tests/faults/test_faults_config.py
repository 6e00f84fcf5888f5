"""Fault matrix, configuration rollback path (playbooks/rollback_config.yml) on the shared
reference stack. Each test's docstring is its row of the matrix: ``Fault: ... -> Outcome: ...``
(``python tests/faults/table.py`` prints them). Every case asserts that the lock is free
afterwards, that the report names the first cause and that the files and containers are as
before (every case here fails before acting; the failure after acting - a .env the backend
cannot run with - is in tests/integration/test_rollback_config.py, with a compose backup that
docker compose rejects). Each case puts the project's files back when it ends."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import assert_lock_free, assert_report_names_first_cause

try:
    from tests.integration.config_certs import CertSet
except ImportError:  # tests/ not a package on sys.path
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
    from config_certs import CertSet

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PLAYBOOK = "rollback_config.yml"
TS = "20261125_101010"


class Files:
    """The project's .env, compose file and certificate as the case found them; put back (and the
    stack brought to them) at the end, backups and kept copies removed."""

    def __init__(self, fs):
        self.fs = fs
        self.saved = {name: (fs.dir / name).read_bytes()
                      for name in (".env", "docker-compose.yml", "certs/taylordash.crt", "certs/taylordash.key")}

    def restore(self):
        for name, data in self.saved.items():
            (self.fs.dir / name).write_bytes(data)
        (self.fs.dir / ".env").chmod(0o600)
        (self.fs.dir / "certs/taylordash.key").chmod(0o600)
        for pattern in (".env.backup.*", "docker-compose.backup.*", "*.rollback-*", "certs/*.backup.*",
                        "certs/*.rollback-*"):
            for path in self.fs.dir.glob(pattern):
                path.unlink()
        self.fs.stack.compose("up", "-d", "--wait", "--pull", "never", timeout=180)


def _before(fs):
    fs.reset(running="v1", previous="v1")
    return Files(fs)


def test_empty_env_backup(fault_stack):
    """Fault: the newest .env backup is empty (a copy that failed half-way) -> Outcome: fails
    before any change (files and containers as before), naming the empty backup; report FAILED
    naming it; lock free."""
    fs = fault_stack
    files = _before(fs)
    try:
        (fs.dir / f".env.backup.{TS}").write_text("")
        before = fs.snapshot()
        case = fs.case_dir("config-empty-env-backup")
        proc = fs.run(PLAYBOOK, case, config_actions=["env"])
        assert proc.returncode != 0
        assert fs.snapshot() == before
        assert_lock_free(fs)
        assert_report_names_first_cause(case, r"is empty")
    finally:
        files.restore()


def test_certificate_backup_with_a_key_that_does_not_match(fault_stack, tmp_path):
    """Fault: the certificate backup and the key backup do not belong together -> Outcome: fails
    before any change (nginx keeps serving the certificate it served); report FAILED naming the
    mismatch; lock free."""
    fs = fault_stack
    files = _before(fs)
    try:
        certs = CertSet(tmp_path / "pki")
        shutil.copy(certs.crt, fs.dir / "certs" / f"taylordash.crt.backup.{TS}")
        shutil.copy(certs.other_key_file, fs.dir / "certs" / f"taylordash.key.backup.{TS}")
        before = fs.snapshot()
        case = fs.case_dir("config-key-mismatch")
        proc = fs.run(PLAYBOOK, case, config_actions=["certificate"])
        assert proc.returncode != 0
        assert fs.snapshot() == before
        assert_lock_free(fs)
        assert_report_names_first_cause(case, r"do not belong together")
    finally:
        files.restore()


def test_expired_certificate_backup(fault_stack, tmp_path):
    """Fault: the certificate backup has expired -> Outcome: fails before any change (nginx keeps
    serving the certificate it served); report FAILED naming the expiry; lock free."""
    fs = fault_stack
    files = _before(fs)
    try:
        certs = CertSet(tmp_path / "pki")
        shutil.copy(certs.expired, fs.dir / "certs" / f"taylordash.crt.backup.{TS}")
        shutil.copy(certs.key_file, fs.dir / "certs" / f"taylordash.key.backup.{TS}")
        before = fs.snapshot()
        case = fs.case_dir("config-expired-certificate")
        proc = fs.run(PLAYBOOK, case, config_actions=["certificate"])
        assert proc.returncode != 0
        assert fs.snapshot() == before
        assert_lock_free(fs)
        assert_report_names_first_cause(case, r"expired")
    finally:
        files.restore()


def test_no_backup_set_common_to_env_and_compose(fault_stack):
    """Fault: .env and compose backups from different deploys (no timestamp common to both) ->
    Outcome: fails before any change, naming each file's timestamps; report FAILED; lock free."""
    fs = fault_stack
    files = _before(fs)
    try:
        (fs.dir / f".env.backup.{TS}").write_bytes(files.saved[".env"])
        (fs.dir / "docker-compose.backup.20261120_080000").write_bytes(files.saved["docker-compose.yml"])
        before = fs.snapshot()
        case = fs.case_dir("config-no-common-set")
        proc = fs.run(PLAYBOOK, case, config_actions=["env", "compose"])
        assert proc.returncode != 0
        assert fs.snapshot() == before
        assert_lock_free(fs)
        assert_report_names_first_cause(case, r"no timestamp common")
    finally:
        files.restore()
