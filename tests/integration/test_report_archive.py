"""report_archive with real files: the archive directory, documents, the .env copy (mode 0600,
content never in the result), the history line; every bad input fails before anything is
written; check mode writes nothing."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import threading

import pytest

from conftest import run_module

pytestmark = pytest.mark.integration

SECRET = "TD_API_KEY=s3cr3t-report-archive-key"


@pytest.fixture
def env_file(tmp_path):
    path = tmp_path / "stack" / ".env"
    path.parent.mkdir()
    path.write_text(SECRET + "\nTD_VERSION=v1\n")
    return path


def archive_args(tmp_path, env_file, **over):
    args = {
        "archive_dir": str(tmp_path / "stack" / "rollbacks" / "20261125_141801"),
        "documents": [
            {"name": "rollback_report_20261125_141801.md", "content": "# Rollback report\n\nbody\n"},
            {"name": "rollback_report_20261125_141801.json", "content": '{"outcome": "SUCCEEDED"}\n'},
        ],
        "copies": [{"src": str(env_file), "name": "env_post_rollback", "mode": "0600"}],
        "log_path": str(tmp_path / "stack" / "rollback_history.log"),
        "log_line": "2026-11-25T14:18:01Z ROLL-20261125-1418 type=immediate outcome=SUCCEEDED",
    }
    args.update(over)
    return args


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_the_archive_copy_and_log(tmp_path, env_file):
    args = archive_args(tmp_path, env_file)
    got = run_module("report_archive", args)
    assert got["failed"] is False, got.get("msg")
    assert got["changed"] is True
    archive = args["archive_dir"]
    assert mode_of(archive) == 0o750
    md = os.path.join(archive, "rollback_report_20261125_141801.md")
    with open(md) as f:
        assert f.read() == "# Rollback report\n\nbody\n"
    assert mode_of(md) == 0o644
    copy = os.path.join(archive, "env_post_rollback")
    assert mode_of(copy) == 0o600
    with open(copy) as f:
        assert f.read() == env_file.read_text()
    files = {f["path"]: f for f in got["files"]}
    assert files[copy]["sha256"] == hashlib.sha256(env_file.read_bytes()).hexdigest()
    assert files[md]["size"] == len("# Rollback report\n\nbody\n")
    with open(args["log_path"]) as f:
        assert f.read() == args["log_line"] + "\n"
    assert SECRET not in json.dumps(got)
    # No temporary files are left beside the documents.
    assert sorted(os.listdir(archive)) == ["env_post_rollback", "rollback_report_20261125_141801.json",
                                           "rollback_report_20261125_141801.md"]


def test_second_run_with_the_same_archive_fails_and_writes_nothing(tmp_path, env_file):
    args = archive_args(tmp_path, env_file)
    assert run_module("report_archive", args)["failed"] is False
    with open(args["log_path"]) as f:
        before = f.read()
    again = run_module("report_archive", dict(args, documents=[{"name": "other.md", "content": "x"}]))
    assert again["failed"] is True
    assert "exists already" in again["msg"] and "Nothing was written" in again["msg"]
    assert again["archive_exists"] is True  # the role chooses another name and tries again
    assert not os.path.exists(os.path.join(args["archive_dir"], "other.md"))
    with open(args["log_path"]) as f:
        assert f.read() == before


def test_history_log_keeps_earlier_lines_and_appends(tmp_path, env_file):
    log = tmp_path / "stack" / "rollback_history.log"
    log.write_text("earlier line\n")
    args = archive_args(tmp_path, env_file)
    assert run_module("report_archive", args)["failed"] is False
    assert log.read_text() == "earlier line\n" + args["log_line"] + "\n"


def test_concurrent_appends_lose_no_line(tmp_path, env_file):
    results = []

    def one(i):
        args = archive_args(tmp_path, env_file, archive_dir=str(tmp_path / "stack" / "rollbacks" / str(i)),
                            log_line="line %d" % i)
        results.append(run_module("report_archive", args))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r["failed"] is False for r in results)
    lines = (tmp_path / "stack" / "rollback_history.log").read_text().splitlines()
    assert sorted(lines) == sorted("line %d" % i for i in range(6))


def test_check_mode_writes_nothing(tmp_path, env_file):
    args = archive_args(tmp_path, env_file)
    got = run_module("report_archive", args, check_mode=True)
    assert got["failed"] is False and got["changed"] is True
    assert not os.path.exists(args["archive_dir"])
    assert not os.path.exists(args["log_path"])
    assert [os.path.basename(f["path"]) for f in got["files"]] == [
        "rollback_report_20261125_141801.md", "rollback_report_20261125_141801.json", "env_post_rollback"]


def test_missing_env_is_skipped_or_fails_when_required(tmp_path, env_file):
    missing = str(tmp_path / "nope" / ".env")
    args = archive_args(tmp_path, env_file, copies=[{"src": missing, "name": "env_post_rollback"}])
    got = run_module("report_archive", args)
    assert got["failed"] is False and got["missing_sources"] == [missing]
    assert not os.path.exists(os.path.join(args["archive_dir"], "env_post_rollback"))

    args = archive_args(tmp_path, env_file, archive_dir=str(tmp_path / "other"),
                        copies=[{"src": missing, "name": "env_post_rollback", "missing_ok": False}])
    got = run_module("report_archive", args)
    assert got["failed"] is True and "does not exist" in got["msg"]
    assert not os.path.exists(str(tmp_path / "other"))


@pytest.mark.parametrize("over, message", [
    ({"documents": [{"name": "../escape.md", "content": "x"}]}, "not a plain file name"),
    ({"documents": [{"name": "a.md", "content": "x"}, {"name": "a.md", "content": "y"}]}, "written twice"),
    ({"documents": [{"name": "a.md", "content": "x", "mode": "rw-r"}]}, "not an octal file mode"),
    ({"dir_mode": "99999"}, "mode"),
    ({"log_line": "two\nlines"}, "one line"),
    ({"log_line": None}, "log_line is required"),
])
def test_bad_input_fails_before_writing(tmp_path, env_file, over, message):
    args = archive_args(tmp_path, env_file, **over)
    got = run_module("report_archive", args)
    assert got["failed"] is True, got
    assert message in got["msg"] and "Nothing was written" in got["msg"]
    assert got["archive_exists"] is False
    assert not os.path.exists(args["archive_dir"])
    assert not os.path.exists(args["log_path"])


def test_parent_that_is_a_file_fails_clearly(tmp_path, env_file):
    blocker = tmp_path / "stack" / "rollbacks"
    blocker.write_text("not a directory")
    args = archive_args(tmp_path, env_file)
    got = run_module("report_archive", args)
    assert got["failed"] is True
    assert "cannot create the archive directory" in got["msg"] and "Nothing was written" in got["msg"]
    assert blocker.read_text() == "not a directory"
    assert not os.path.exists(args["log_path"])
