"""stack_info without a Docker engine: option checks before anything is read (issue 10), the
snapshot assembled from a stub docker CLI, and a property test of every option.
The real engine: tests/integration/test_stack_info.py."""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

import pytest
from hypothesis import strategies as st

from ansible_collections.taylordash.rollback.plugins.modules import stack_info as mod

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from docker_stub import IMAGE, PREVIOUS, write_stub  # noqa: E402
from module_fuzz import ModuleFuzz, no_docker_on_path  # noqa: E402

# The stub lives as long as the test session; its path is part of the strategies below.
STUB_DIR = tempfile.mkdtemp(prefix="stack-info-docker-stub-")
atexit.register(shutil.rmtree, STUB_DIR, True)
STUB = write_stub(STUB_DIR)

SERVICES = [{"name": "backend", "image": "fuzz_backend"}, {"name": "frontend", "image": "fuzz_frontend"}]


def make_project(root):
    project = os.path.join(str(root), "proj")
    os.makedirs(os.path.join(project, "certs"), exist_ok=True)
    with open(os.path.join(project, "docker-compose.yml"), "w") as f:
        f.write("services: {}\n")
    with open(os.path.join(project, ".env"), "w") as f:
        f.write("TD_API_KEY=secret\n")
    return project


def base_args(project):
    return {"project_dir": project, "services": SERVICES, "docker_cli": STUB, "target_tag": "previous"}


FUZZ = ModuleFuzz(
    mod, base_args={"project_dir": "proj", "services": SERVICES, "docker_cli": STUB},
    strategies={
        # Relative to the test's tmp_path (the harness runs main() there), or clearly absent.
        "project_dir": st.sampled_from(["proj", ".", "", "missing", "proj/certs", "a\x00b", "/nonexistent/x"]),
        "certificate": st.sampled_from(["proj/docker-compose.yml", "proj/.env", "missing.pem", "proj", "",
                                        "a\x00b", "/nonexistent/c.pem", None]),
        # Never None: that would look docker up on PATH, and PATH holds the real one.
        "docker_cli": st.sampled_from([STUB, "/nonexistent/docker", os.path.join(STUB_DIR, "calls.log")]),
    },
    deadline=15)


# 40: each example runs the stub docker (a Python process) several times; ~20 s on a busy machine.
@FUZZ.given_options(max_examples=40)
def test_any_option_value_ends_cleanly(option_and_value, tmp_path):
    make_project(tmp_path)
    with no_docker_on_path(tmp_path):
        FUZZ.check(option_and_value, cwd=tmp_path)


def run(tmp_path, **overrides):
    args = base_args(make_project(tmp_path))
    args.update(overrides)
    with no_docker_on_path(tmp_path):
        return FUZZ.run(args, check_mode=True, cwd=tmp_path)


def test_snapshot_from_the_stub(tmp_path):
    kind, result = run(tmp_path, migration_service="backend")
    assert kind == "exit", result
    backend = result["services"][0]
    assert (backend["current_image_id"], backend["target_image_id"]) == (IMAGE, PREVIOUS)
    assert backend["running_image_ids"] == [IMAGE] and backend["runs_target"] is False
    assert result["files"][".env"]["exists"] is True and len(result["files"][".env"]["sha256"]) == 64
    assert result["migration"]["revision"] == "0003"
    assert set(result["timing"]) == {"start", "end", "seconds"}
    assert "secret" not in str(result)


@pytest.mark.parametrize("overrides,fragment", [
    ({"current_tag": "../x"}, "current_tag '../x' is not a valid Docker tag"),
    ({"current_tag": ""}, "current_tag '' is not a valid Docker tag"),
    ({"target_tag": "a b"}, "target_tag 'a b' is neither a valid Docker tag"),
    ({"services": [{"name": "backend", "image": "Bad/Repo:tag"}]}, "image 'Bad/Repo:tag' of service 'backend'"),
    ({"files": ["../../etc/shadow"]}, "files: '../../etc/shadow' is not read: it resolves to "),
    ({"files": ["/etc/passwd"]}, "files: '/etc/passwd' is not read"),
])
def test_bad_options_fail_before_docker_is_asked(tmp_path, overrides, fragment):
    """Before: current_tag ../x was accepted, and files outside the project were hashed."""
    open(os.path.join(STUB_DIR, "calls.log"), "w").close()
    kind, result = run(tmp_path, **overrides)
    assert kind == "fail" and fragment in result["msg"], result
    assert "Nothing was read" in result["msg"]
    assert open(os.path.join(STUB_DIR, "calls.log")).read() == ""  # docker was never run


def test_a_symlink_out_of_the_project_is_refused(tmp_path):
    project = make_project(tmp_path)
    (tmp_path / "outside").write_text("not the project's\n")
    os.symlink(str(tmp_path / "outside"), os.path.join(project, "link"))
    os.symlink("certs", os.path.join(project, "inner"))
    kind, result = run(tmp_path, files=["link"])
    assert kind == "fail" and "files: 'link' is not read: it resolves to %s" % (tmp_path / "outside") in result["msg"]
    kind, result = run(tmp_path, files=["inner/../.env", "certs/none", ".env"])
    assert kind == "exit", result
    assert result["files"]["certs/none"] == {"path": os.path.join(project, "certs/none"), "exists": False}


def test_a_compose_file_outside_the_project_is_still_snapshotted(tmp_path):
    shared = tmp_path / "shared.yml"
    shared.write_text("services: {}\n")
    kind, result = run(tmp_path, compose_files=["docker-compose.yml", str(shared)])
    assert kind == "exit", result
    assert result["files"][str(shared)]["exists"] is True


def test_a_nul_byte_in_a_compose_file_is_refused(tmp_path):
    """Found by the property test: ValueError (embedded null byte) escaped from realpath."""
    kind, result = run(tmp_path, compose_files=["\x00"])
    assert kind == "fail" and "must not contain a NUL byte" in result["msg"]
