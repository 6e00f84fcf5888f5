"""config_restore on real files: a reference-stack project (``stackctl init``, no containers
needed) validated by the real ``docker compose config``, nginx configs checked by a real
``nginx -t`` (in the stack's tdref_nginx image, and with a local nginx when one is installed),
and certificates made with the cryptography library (matching, mismatched key, expired, not
issued by the CA).

Cases that change something follow the check -> real -> check -> idempotent rhythm; every bad
input must fail with a clear msg and leave the files as they were.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import run_module
try:
    from .config_certs import CertSet
except ImportError:  # run as a top-level module (rootdir on sys.path)
    from config_certs import CertSet

pytestmark = pytest.mark.integration

SET_TS = "20261125_101010"
NEWER_TS = "20261126_090000"
KEPT_RE = re.compile(r"\.rollback-\d{8}T\d{6}Z(-\d+)?$")


@pytest.fixture(scope="module")
def project(module_stack_factory):
    """A stack's project directory (files only: compose config needs no running container)."""
    return module_stack_factory("cr", version=None)


def tree(directory: Path) -> dict:
    """{name: (sha256, mode)} of the files directly in directory (and certs/)."""
    out = {}
    for path in sorted(list(directory.iterdir()) + list((directory / "certs").glob("*"))):
        if path.is_file():
            out[str(path.relative_to(directory))] = (hashlib.sha256(path.read_bytes()).hexdigest(),
                                                     stat.S_IMODE(path.stat().st_mode))
    return out


def cleanup(directory: Path, *patterns: str) -> None:
    for pattern in patterns:
        for path in directory.glob(pattern):
            path.unlink()


def secret_values(stack) -> list[str]:
    env = stack.env
    return [env[k] for k in ("TD_DB_PASSWORD", "TD_API_KEY", "TD_ADMIN_PASSWORD")]


def assert_no_secrets(result: dict, secrets: list[str]) -> None:
    text = json.dumps(result)
    for value in secrets:
        assert value not in text


def test_env_and_compose_backup_set_rhythm(project):
    d = project.dir
    original_env = (d / ".env").read_text()
    original_compose = (d / "docker-compose.yml").read_text()
    # The deploy being rolled back changed TD_FAULT and the frontend's environment; the backups
    # of the deploy before it are the set SET_TS. A later .env backup without a compose partner
    # is newer but not in the set.
    (d / f".env.backup.{SET_TS}").write_text(original_env.replace("TD_FAULT=none", "TD_FAULT=none") + "TD_EXTRA=1\n")
    (d / f"docker-compose.backup.{SET_TS}").write_text(original_compose)
    (d / f".env.backup.{NEWER_TS}").write_text(original_env)
    live_compose = original_compose.replace("TD_FRONTEND_PORT: ${TD_FRONTEND_PORT}",
                                            "TD_FRONTEND_PORT: ${TD_FRONTEND_PORT}\n      TD_BANNER: bad", 1)
    (d / "docker-compose.yml").write_text(live_compose)
    args = {"project_dir": str(d), "backup_set": True, "items": [
        {"dest": str(d / ".env"), "pattern": ".env.backup.*"},
        {"dest": str(d / "docker-compose.yml"), "pattern": "docker-compose.backup.*"}]}
    try:
        before = tree(d)
        check = run_module("config_restore", args, check_mode=True, diff=True)
        assert not check["failed"], check["msg"]
        assert check["changed"] and check["backup_set"] == SET_TS
        assert tree(d) == before, "check mode changed a file"
        assert [i["src"] for i in check["items"]] == [str(d / f".env.backup.{SET_TS}"),
                                                      str(d / f"docker-compose.backup.{SET_TS}")]
        env_item = check["items"][0]
        assert env_item["keys_added"] == ["TD_EXTRA"] and env_item["keys_changed"] == []
        assert "docker compose config" in env_item["validated_by"]
        assert check["services_changed"] == ["frontend"]
        assert "TD_EXTRA=<hidden>" in check["diff"][0]["after"]
        assert_no_secrets(check, secret_values(project))

        real = run_module("config_restore", args, diff=True)
        assert not real["failed"], real["msg"]
        assert real["changed"] and real["services_changed"] == check["services_changed"]
        assert len(real["kept"]) == 2 and all(KEPT_RE.search(k) for k in real["kept"])
        assert Path(real["kept"][1]).read_text() == live_compose
        assert (d / "docker-compose.yml").read_text() == original_compose
        assert stat.S_IMODE((d / ".env").stat().st_mode) == 0o600
        assert stat.S_IMODE(Path(real["kept"][0]).stat().st_mode) == 0o600
        assert_no_secrets(real, secret_values(project))

        again_check = run_module("config_restore", args, check_mode=True)
        again = run_module("config_restore", args)
        assert not again_check["changed"] and not again["changed"] and again["kept"] == []
    finally:
        (d / ".env").write_text(original_env)
        (d / ".env").chmod(0o600)
        (d / "docker-compose.yml").write_text(original_compose)
        cleanup(d, ".env.backup.*", "docker-compose.backup.*", "*.rollback-*")


def test_compose_backup_rejected_by_docker_compose(project):
    d = project.dir
    bad = (d / "docker-compose.yml").read_text().replace("restart: unless-stopped", "restart: [nope", 1)
    (d / f"docker-compose.backup.{SET_TS}").write_text(bad)
    try:
        before = tree(d)
        result = run_module("config_restore", {"items": [
            {"dest": str(d / "docker-compose.yml"), "pattern": "docker-compose.backup.*"}]})
        assert result["failed"]
        assert "fails docker compose config: yaml" in result["msg"] and "nothing was changed" in result["msg"]
        assert result["rc"] != 0 and result["stderr"]
        assert tree(d) == before
        assert_no_secrets(result, secret_values(project))
    finally:
        cleanup(d, "docker-compose.backup.*")


def test_env_backup_lacking_a_variable_is_flagged(project):
    d = project.dir
    lacking = "\n".join(line for line in (d / ".env").read_text().splitlines()
                        if not line.startswith("TD_DB_PASSWORD=")) + "\n"
    (d / f".env.backup.{SET_TS}").write_text(lacking)
    try:
        result = run_module("config_restore", {"items": [{"dest": str(d / ".env"), "pattern": ".env.backup.*"}]},
                            check_mode=True)
        assert not result["failed"], result["msg"]
        item = result["items"][0]
        assert item["keys_removed"] == ["TD_DB_PASSWORD"]
        assert item["unset_variables"] == ["TD_DB_PASSWORD"]
        assert any("TD_DB_PASSWORD" in json.dumps(w) for w in result.get("warnings", []))
        assert sorted(result["services_changed"]) == ["backend", "postgres"]
    finally:
        cleanup(d, ".env.backup.*")


def test_bad_inputs_change_nothing(project, tmp_path):
    d = project.dir
    (d / f".env.backup.{SET_TS}").write_text((d / ".env").read_text())
    (d / "docker-compose.backup.20261120_000000").write_text((d / "docker-compose.yml").read_text())
    (d / "empty.backup").write_text("")
    (d / f".env.backup.{NEWER_TS}").write_text("supersecretline-without-equals\n")
    cases = [
        ({"items": [{"dest": str(d / ".env"), "pattern": "nothing.*"}]}, "no backup matches"),
        ({"items": [{"dest": str(d / ".env"), "src": str(d / "empty.backup")}]}, "is empty"),
        ({"items": [{"dest": str(d / ".env"), "src": str(d / "missing")}]}, "does not exist"),
        ({"items": [{"dest": str(d / "nodir" / ".env"), "src": str(d / "empty.backup")}]}, "directory"),
        ({"backup_set": True, "items": [
            {"dest": str(d / ".env"), "pattern": ".env.backup.*"},
            {"dest": str(d / "docker-compose.yml"), "pattern": "docker-compose.backup.*"}]}, "no timestamp common"),
        ({"items": [{"dest": str(d / ".env"), "pattern": ".env.backup.*"}]}, "line 1 is not KEY=VALUE"),
    ]
    try:
        before = tree(d)
        for args, fragment in cases:
            result = run_module("config_restore", args)
            assert result["failed"], args
            assert fragment.lower() in result["msg"].lower(), result["msg"]
            assert "supersecretline" not in json.dumps(result)
            assert tree(d) == before
    finally:
        cleanup(d, ".env.backup.*", "docker-compose.backup.*", "empty.backup")


# --- nginx -t -------------------------------------------------------------------------------

GOOD_NGINX = "error_log stderr;\npid /tmp/config-restore-test.pid;\nevents {}\nhttp { server { listen 127.0.0.1:9; } }\n"
BAD_NGINX = "error_log stderr;\nevents {}\nhttp { server { listen 127.0.0.1:9; no_such_directive on; } }\n"


def nginx_case(tmp_path: Path, how: dict) -> None:
    site = tmp_path / "nginx"
    site.mkdir()
    live = site / "nginx.conf"
    live.write_text(GOOD_NGINX.replace("127.0.0.1:9", "127.0.0.1:10"))
    (site / "nginx.good.conf").write_text(GOOD_NGINX)
    (site / "nginx.bad.conf").write_text(BAD_NGINX)
    bad = run_module("config_restore", dict(how, items=[{"dest": str(live), "src": str(site / "nginx.bad.conf")}]))
    assert bad["failed"] and "fails nginx -t" in bad["msg"] and "no_such_directive" in bad["msg"]
    assert live.read_text() == GOOD_NGINX.replace("127.0.0.1:9", "127.0.0.1:10")
    args = dict(how, items=[{"dest": str(live), "src": str(site / "nginx.good.conf")}])
    check = run_module("config_restore", args, check_mode=True, diff=True)
    assert check["changed"] and "127.0.0.1:9" in check["diff"][0]["after"]
    real = run_module("config_restore", args)
    assert real["changed"] and live.read_text() == GOOD_NGINX
    assert not run_module("config_restore", args)["changed"]


def test_nginx_in_the_stack_image(tmp_path):
    if subprocess.run(["docker", "image", "inspect", "tdref_nginx:latest"], capture_output=True, check=False).returncode:
        pytest.skip("tdref_nginx:latest not built (stack/stackctl build)")
    nginx_case(tmp_path, {"nginx_image": "tdref_nginx:latest"})


def test_nginx_local_binary(tmp_path):
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not binary:
        pytest.skip("no local nginx")
    nginx_case(tmp_path, {"nginx_binary": binary})


# --- certificates ---------------------------------------------------------------------------

def test_certificates(tmp_path):
    certs = CertSet(tmp_path / "backup")
    live = tmp_path / "certs"
    live.mkdir()
    (live / "taylordash.crt").write_bytes(certs.self_signed.read_bytes())
    (live / "taylordash.key").write_bytes(certs.key_file.read_bytes())
    (live / "taylordash.key").chmod(0o600)
    before = tree_dir(live)

    def items(crt, key=None):
        out = [{"dest": str(live / "taylordash.crt"), "src": str(crt)}]
        if key:
            out.append({"dest": str(live / "taylordash.key"), "src": str(key)})
        return out

    for args, fragment in [
        ({"items": items(certs.crt, certs.other_key_file)}, "do not belong together"),
        ({"items": items(certs.expired)}, "expired"),
        ({"items": items(certs.self_signed), "ca_file": str(certs.ca)}, "does not verify against the CA"),
    ]:
        result = run_module("config_restore", args)
        assert result["failed"] and fragment in result["msg"], result["msg"]
        assert tree_dir(live) == before
        assert "PRIVATE KEY" not in json.dumps(result)

    args = {"items": items(certs.crt, certs.key_file), "ca_file": str(certs.ca)}
    check = run_module("config_restore", args, check_mode=True, diff=True)
    assert check["changed"] and tree_dir(live) == before
    assert [i["changed"] for i in check["items"]] == [True, False]
    assert "issued by ca_file" in check["items"][0]["validated_by"]
    assert "sha256_fingerprint" in check["diff"][0]["after"]
    real = run_module("config_restore", args)
    assert real["changed"] and (live / "taylordash.crt").read_bytes() == certs.crt.read_bytes()
    assert real["kept"] == [real["items"][0]["kept"]]
    assert Path(real["kept"][0]).read_bytes() == certs.self_signed.read_bytes()
    assert stat.S_IMODE((live / "taylordash.key").stat().st_mode) == 0o600
    assert not run_module("config_restore", args, check_mode=True)["changed"]
    assert not run_module("config_restore", args)["changed"]


def tree_dir(directory: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}
