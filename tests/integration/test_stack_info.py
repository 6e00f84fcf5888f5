"""stack_info against a real reference stack: the snapshot is right, and every precondition
that does not hold fails with a clear message before anything is touched."""
from __future__ import annotations

import hashlib
import subprocess

import pytest

from conftest import run_module

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(module_stack_factory):
    stack = module_stack_factory("info")
    stack.deploy("v2", "unhealthy")
    return stack


def args(stack, **overrides):
    prefix = stack.env["TD_IMAGE_PREFIX"]
    values = {"project_dir": str(stack.dir), "project_name": stack.name,
              "services": [{"name": "backend", "image": f"{prefix}_backend"},
                           {"name": "frontend", "image": f"{prefix}_frontend"}],
              "target_tag": "previous"}
    values.update(overrides)
    return values


def test_snapshot(stack):
    result = run_module("stack_info", args(stack, certificate=str(stack.dir / "certs" / "taylordash.crt"),
                                           migration_service="backend"))
    assert not result["failed"] and result["changed"] is False
    backend = result["services"][0]
    v1, v2 = stack.image_id("tdref_backend:v1"), stack.image_id("tdref_backend:v2")
    assert (backend["current_image_id"], backend["target_image_id"]) == (v2, v1)
    assert backend["running_image_ids"] == [v2] == [stack.container_image_id("backend")]
    assert backend["runs_target"] is False and backend["in_target"] is True
    assert result["compose"] == {"project": stack.name, "services": ["backend", "frontend", "nginx", "postgres"]}
    env_sha = hashlib.sha256((stack.dir / ".env").read_bytes()).hexdigest()
    assert result["files"][".env"]["sha256"] == env_sha and result["files"][".env"]["mode"] == "0600"
    fingerprint = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in",
                                  str(stack.dir / "certs" / "taylordash.crt")],
                                 capture_output=True, text=True, check=True).stdout.split("=", 1)[1].strip()
    assert result["certificate"]["sha256_fingerprint"] == fingerprint
    assert result["migration"]["revision"] == "0003"
    assert stack.env["TD_API_KEY"] not in str(result)


def test_target_by_image_id_and_subset(stack):
    v1 = stack.image_id("tdref_backend:v1")
    result = run_module("stack_info", args(stack, target_tag=v1[7:19], target_services=["backend"]))
    assert result["services"][0]["target_image_id"] == v1
    assert result["services"][1]["in_target"] is False


@pytest.mark.parametrize("overrides,message", [
    ({"target_tag": "v9"}, "Rollback target image(s) not found locally: {p}_backend:v9 (available tags of {p}_backend: "),
    ({"services": [{"name": "backend", "image": "x"}, {"name": "worker", "image": "y"}]},
     "Service(s) worker not defined in the compose project"),
    ({"target_services": ["worker"]}, "Service(s) worker not defined"),
    ({"project_dir": "/nonexistent/taylordash"}, "Project directory /nonexistent/taylordash does not exist"),
    ({"compose_files": ["missing.yml"]}, "missing.yml does not exist"),
    ({"services": []}, "services is empty"),
    # issue 10: a tag that is not one, and a file outside the project, fail before anything is read
    ({"current_tag": "../x"}, "current_tag '../x' is not a valid Docker tag"),
    ({"files": ["../../etc/shadow"]}, "files: '../../etc/shadow' is not read: it resolves to"),
    ({"docker_cli": "/nonexistent/docker"}, "docker CLI at /nonexistent/docker cannot be run (no such file)"),
])
def test_preconditions(stack, overrides, message):
    tags = stack.tags()
    result = run_module("stack_info", args(stack, **overrides))
    assert result["failed"], result
    assert message.format(p=stack.env["TD_IMAGE_PREFIX"]) in result["msg"]
    assert stack.tags() == tags


def test_invalid_compose_file(stack, tmp_path):
    (tmp_path / "docker-compose.yml").write_text("services:\n  backend: [not, a, mapping\n")
    result = run_module("stack_info", args(stack, project_dir=str(tmp_path)))
    assert result["failed"] and "docker compose rejects the project" in result["msg"]


def test_engine_not_answering(stack, tmp_path):
    result = run_module("stack_info", args(stack), env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})
    assert result["failed"] and result["msg"].startswith("The Docker engine does not answer")


# rollback_lock's snapshot option: the same snapshot, taken under the lock in one module run
# (issue 17: the lock and the snapshot in as few module runs as the design allows).

def lock_args(stack, tmp_path, **snapshot):
    return {"path": str(tmp_path / ".rollback.lock"), "holder": "test via pytest", "reason": "lock then snapshot",
            "snapshot": args(stack, **snapshot)}


def test_lock_then_snapshot_in_one_run(stack, tmp_path):
    result = run_module("rollback_lock", lock_args(stack, tmp_path))
    assert not result["failed"], result["msg"]
    assert result["acquired"] is True and (tmp_path / ".rollback.lock").exists()
    alone = run_module("stack_info", args(stack))
    for key in ("docker", "compose", "services", "files", "certificate", "migration"):
        assert result["snapshot"][key] == alone[key], key
    assert result["msg"].endswith("Snapshot of %s taken under it." % stack.dir)
    released = run_module("rollback_lock", {"path": str(tmp_path / ".rollback.lock"), "state": "absent",
                                            "token": result["lock"]["token"]})
    assert released["released"] is True and not (tmp_path / ".rollback.lock").exists()


@pytest.mark.parametrize("overrides,message", [
    ({"target_tag": "v9"}, "Rollback target image(s) not found locally: {p}_backend:v9"),
    ({"target_services": ["worker"]}, "Service(s) worker not defined"),
    ({"project_dir": "/nonexistent/taylordash"}, "Project directory /nonexistent/taylordash does not exist"),
])
def test_a_failed_snapshot_releases_the_lock_it_took(stack, tmp_path, overrides, message):
    tags = stack.tags()
    result = run_module("rollback_lock", lock_args(stack, tmp_path, **overrides))
    assert result["failed"], result
    assert result["msg"].startswith("snapshot: ")
    assert message.format(p=stack.env["TD_IMAGE_PREFIX"]) in result["msg"]
    assert "The lock this run took at %s was released again." % (tmp_path / ".rollback.lock") in result["msg"]
    assert result["acquired"] is False and result["lock"] is None and result["snapshot"] is None
    assert not (tmp_path / ".rollback.lock").exists() and stack.tags() == tags


def test_a_failed_snapshot_keeps_a_lock_held_before_the_run(stack, tmp_path):
    first = run_module("rollback_lock", {"path": str(tmp_path / ".rollback.lock"), "holder": "test", "token": "t1"})
    assert first["acquired"] is True
    again = run_module("rollback_lock", dict(lock_args(stack, tmp_path, target_tag="v9"), token="t1"))
    assert again["failed"] and "could not be released" not in again["msg"] and "was released" not in again["msg"]
    assert (tmp_path / ".rollback.lock").exists()


@pytest.mark.parametrize("overrides,extra,message", [
    ({"current_tag": "../x"}, {}, "snapshot: current_tag '../x' is not a valid Docker tag"),
    ({"services": []}, {}, "snapshot: services is empty"),
    ({"docker_cli": "/nonexistent/docker"}, {}, "snapshot: the docker CLI at /nonexistent/docker cannot be run"),
    ({}, {"state": "absent"}, "snapshot is taken only with state=present"),
])
def test_bad_snapshot_options_fail_before_the_lock_is_taken(stack, tmp_path, overrides, extra, message):
    result = run_module("rollback_lock", dict(lock_args(stack, tmp_path, **overrides), **extra))
    assert result["failed"] and message in result["msg"], result["msg"]
    assert result["msg"].endswith("Nothing was changed.")
    assert not (tmp_path / ".rollback.lock").exists()


def test_check_mode_takes_no_lock_but_reads_the_snapshot(stack, tmp_path):
    result = run_module("rollback_lock", lock_args(stack, tmp_path), check_mode=True)
    assert not result["failed"] and result["acquired"] is True
    assert result["snapshot"]["services"][0]["target_ref"].endswith(":previous")
    assert not (tmp_path / ".rollback.lock").exists()
