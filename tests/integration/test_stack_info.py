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
