"""execution-environment.yml: `ansible-builder create` makes a build context (nothing is built or
pulled: that needs a registry) with this collection's tarball, its collection dependencies
(galaxy.yml), the Python packages and the system packages the roles call."""
from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from conftest import REPO, VENV_BIN, ansible_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    if not (VENV_BIN / "ansible-builder").exists():
        pytest.fail("ansible-builder is not installed: pip install -r requirements.txt")
    work = tmp_path_factory.mktemp("ee")
    shutil.copy(REPO / "execution-environment.yml", work)
    shutil.copytree(REPO / "execution-environment", work / "execution-environment")
    subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", str(REPO), "--output-path", str(work)],
                   check=True, capture_output=True, text=True, env=ansible_env(), timeout=120)
    proc = subprocess.run([str(VENV_BIN / "ansible-builder"), "create", "-f", "execution-environment.yml",
                           "-c", "context", "--output-filename", "Containerfile"],
                          cwd=work, capture_output=True, text=True, env=ansible_env(), timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work / "context"


def test_containerfile(context):
    text = (context / "Containerfile").read_text()
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core>=2.19,<2.20 ansible-runner==2.4.3"' in text
    # The collection from its tarball, after the dependencies, and checked in the final image.
    galaxy = text.index("-r requirements.yml --collections-path")
    assert text.index("collection install --no-deps -p /usr/share/ansible/collections /build/collection/") > galaxy
    assert "docker compose version && psql --version" in text
    assert "ARG DOCKER_CE_REPO" in text
    assert "install-from-bindep" in text


def test_the_collection_and_its_dependencies(context):
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    assert (context / "_build" / "collection" / f"taylordash-rollback-{version}.tar.gz").is_file()
    wanted = yaml.safe_load((REPO / "galaxy.yml").read_text())["dependencies"]
    listed = {c["name"]: c["version"] for c in yaml.safe_load((context / "_build" / "requirements.yml").read_text())["collections"]}
    assert listed == wanted, "execution-environment/requirements.yml must list galaxy.yml's dependencies"


def test_python_and_system_packages(context):
    python = (context / "_build" / "requirements.txt").read_text()
    for package in ("psycopg2-binary", "cryptography", "PyYAML"):
        assert package in python
    bindep = (context / "_build" / "bindep.txt").read_text()
    for package in ("docker-ce-cli", "docker-compose-plugin", "postgresql"):
        assert f"\n{package} [platform:rpm]" in "\n" + bindep
