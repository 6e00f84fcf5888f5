"""Property-based tests (Hypothesis, issue 10) of backup_verify's and backup_restore's argument
handling: every option, one at a time, with generated values of its type. Each run ends in
exit_json or in fail_json with a clear msg - never an exception, never past the deadline.

No server is needed: the direct-mode runs point at 127.0.0.1:1, where nothing listens (a run
that gets that far fails with "connection refused" within a second); the compose-mode runs use a
stand-in docker in the test's directory that fails like a stopped engine. Every path option is
relative, so the modules (which run with the test's tmp_path as their working directory) never
read or write outside it, and PATH holds no docker."""
from __future__ import annotations

import gzip
import stat
from pathlib import Path

from hypothesis import strategies as st

from ansible_collections.taylordash.rollback.plugins.modules import backup_restore, backup_verify

from module_fuzz import HOSTILE_TEXT, ModuleFuzz

FIXTURES = Path(__file__).parents[1] / "module_utils" / "fixtures" / "postgres"
PLAIN = (FIXTURES / "pg_dump_plain_tiny.sql").read_bytes()
DIRECT = {"login_host": "127.0.0.1", "login_port": 1, "login_user": "nobody", "login_password": "not-used-pw"}
COMPOSE = {"project_dir": "project", "docker_cli": "fake-docker", "login_password": "not-used-pw"}
FAKE_DOCKER = "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///nonexistent.sock.' >&2\nexit 1\n"

# File names inside the test's directory: no "/", no "..", nothing the path type expands (~, $).
NAME_CHARS = st.characters(blacklist_characters="/~$\\", blacklist_categories=("Cs",))
LOCAL_NAMES = st.one_of(
    st.sampled_from(["backup.sql", "backup.sql.gz", "backup.bz2", "empty.sql", "missing.sql", "project", ".",
                     "", " ", "a\x00b", "x" * 300, "é ü 漢字", "-rf", "--help", "fake-docker"]),
    st.text(NAME_CHARS, max_size=24).filter(lambda s: s not in ("..",)),
)
SAFE_TEXT = st.one_of(st.sampled_from([t for t in HOSTILE_TEXT if not t.startswith(("/", "~", "$", "../"))]),
                      st.text(NAME_CHARS, max_size=40))
PATH_OPTIONS = {
    "path": LOCAL_NAMES, "backup_dir": LOCAL_NAMES, "project_dir": LOCAL_NAMES, "docker_cli": LOCAL_NAMES,
    "compose_files": st.lists(LOCAL_NAMES, max_size=3),
    "pattern": st.one_of(LOCAL_NAMES, st.sampled_from(["*", "backup_*", "[", "**", "*.sql*"])),
}


def prepare(tmp_path: Path):
    """The files the runs may name (written again for every example: a run may not change them)."""
    (tmp_path / "backup.sql").write_bytes(PLAIN)
    (tmp_path / "backup.sql.gz").write_bytes(gzip.compress(PLAIN))
    (tmp_path / "backup.bz2").write_bytes(b"BZh91AY&SY" + b"\x00" * 40)
    (tmp_path / "empty.sql").write_bytes(b"")
    (tmp_path / "project").mkdir(exist_ok=True)
    docker = tmp_path / "fake-docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(docker.stat().st_mode | stat.S_IXUSR)


def fuzz(module, base, skip=()):
    return ModuleFuzz(module, base_args=base, strategies=dict(PATH_OPTIONS, login_host=SAFE_TEXT), skip=skip,
                      deadline=15)


VERIFY_DIRECT = fuzz(backup_verify, dict(DIRECT, path="backup.sql"))
VERIFY_COMPOSE = fuzz(backup_verify, dict(COMPOSE, path="backup.sql"))
RESTORE_DIRECT = fuzz(backup_restore, dict(DIRECT, path="backup.sql", db="taylordash"))
RESTORE_COMPOSE = fuzz(backup_restore, dict(COMPOSE, path="backup.sql", db="taylordash"))


def check(fuzzer, option_and_value, tmp_path, check_mode=True):
    prepare(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    kind, result = fuzzer.check(option_and_value, cwd=tmp_path, check_mode=check_mode)
    assert "not-used-pw" not in repr(result)
    # Check mode, or a run that cannot reach a server: nothing was written.
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    return kind, result


@VERIFY_DIRECT.given_options(max_examples=60)
def test_backup_verify_direct_any_option(option_and_value, tmp_path):
    check(VERIFY_DIRECT, option_and_value, tmp_path)


@VERIFY_COMPOSE.given_options(max_examples=40)
def test_backup_verify_compose_any_option(option_and_value, tmp_path):
    check(VERIFY_COMPOSE, option_and_value, tmp_path)


@RESTORE_DIRECT.given_options(max_examples=60)
def test_backup_restore_direct_any_option(option_and_value, tmp_path):
    check(RESTORE_DIRECT, option_and_value, tmp_path)


@RESTORE_COMPOSE.given_options(max_examples=40)
def test_backup_restore_compose_any_option(option_and_value, tmp_path):
    check(RESTORE_COMPOSE, option_and_value, tmp_path)


@RESTORE_DIRECT.given_options(max_examples=40)
def test_backup_restore_for_real_any_option(option_and_value, tmp_path):
    # Outside check mode the run gets as far as the server, which does not answer.
    check(RESTORE_DIRECT, option_and_value, tmp_path, check_mode=False)


def test_not_finite_whole_numbers_fail_cleanly(tmp_path):
    # Found by the property tests: ansible-core's int check raised OverflowError for "inf".
    prepare(tmp_path)
    for value in ("inf", "-Infinity", "nan", float("inf")):
        kind, result = VERIFY_DIRECT.run({"connect_timeout": value}, check_mode=True, cwd=tmp_path)
        assert kind == "fail" and "connect_timeout" in result["msg"] and "not a finite number" in result["msg"]
        kind, result = RESTORE_DIRECT.run({"lock_timeout": value}, check_mode=True, cwd=tmp_path)
        assert kind == "fail" and "lock_timeout" in result["msg"] and "not a finite number" in result["msg"]


# issue 17: the swap and the pruning of the previous databases
RESTORE_SWAP = fuzz(backup_restore, dict(DIRECT, state="swapped", db="taylordash", swap_from="taylordash_rollback_1",
                                         previous_as="taylordash_before_1"))
RESTORE_PRUNE = fuzz(backup_restore, dict(DIRECT, state="pruned", db="taylordash", keep_previous=1))


@RESTORE_SWAP.given_options(max_examples=30)
def test_backup_restore_swap_any_option(option_and_value, tmp_path):
    check(RESTORE_SWAP, option_and_value, tmp_path, check_mode=False)


@RESTORE_PRUNE.given_options(max_examples=20)
def test_backup_restore_prune_any_option(option_and_value, tmp_path):
    check(RESTORE_PRUNE, option_and_value, tmp_path)
