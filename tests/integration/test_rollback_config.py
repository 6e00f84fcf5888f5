"""playbooks/rollback_config.yml against a real reference stack: .env and compose from one
backup set in the check -> real -> check -> idempotent rhythm (only the services whose
configuration changed are recreated), the certificate in the same rhythm (nginx reloaded, not
restarted; the served certificate checked against the CA), a certificate asked for on a stack
without one, a compose backup docker compose rejects, and a .env backup lacking a variable the backend needs (the
backend fails its health, the play fails, the report names the kept copies, the previous files
are still on disk). Every output, report and archive is grepped for the .env secret values.

One stack serves every test; each test leaves it as it found it (files and running containers).
"""
from __future__ import annotations

import hashlib
import re
import shutil
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from conftest import REPO, run_playbook, write_inventory

try:
    from .config_certs import CertSet
except ImportError:  # run as a top-level module (rootdir on sys.path)
    from config_certs import CertSet

pytestmark = pytest.mark.integration

PLAYBOOK = REPO / "playbooks" / "rollback_config.yml"
RECAP = re.compile(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")
TS = "20261125_101010"
KEPT_RE = re.compile(r"\.rollback-\d{8}T\d{6}Z(-\d+)?$")
OUTPUTS: list[str] = []


def recap(proc):
    match = RECAP.search(proc.stdout)
    assert match, proc.stdout[-3000:]
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


def summary(proc) -> list[str]:
    block = proc.stdout.split("Summarise the configuration rollback", 1)[1].split("TASK [", 1)[0]
    return re.findall(r'^\s+"(.*)",?$', block, re.M)


@pytest.fixture(scope="module")
def stack(module_stack_factory):
    return module_stack_factory("cfg")


def rollback(stack, tmp_path, check=False, **overrides):
    # The validation is tested in its own files: a short latency sample, and targets a loaded CI
    # machine meets (the response times are not what these tests are about).
    overrides = dict({"validate_perf_samples": 3, "validate_perf_warmup": 0, "validate_perf_auth_target": 10,
                      "validate_perf_api_target": 10, "validate_perf_frontend_target": 10}, **overrides)
    proc = run_playbook(PLAYBOOK, extra_vars=stack.stack_vars(**overrides), check=check, diff=check,
                        inventory=write_inventory(tmp_path), vars_files=[stack.secrets_file(tmp_path)])
    OUTPUTS.append(proc.stdout + proc.stderr)
    return proc


def files(stack) -> dict:
    """sha256 and mode of every file of the project directory and certs/ (not the reports)."""
    out = {}
    for path in sorted(list(stack.dir.iterdir()) + list((stack.dir / "certs").iterdir())):
        if path.is_file() and not path.name.startswith("rollback_") and path.name != "emergency.log":
            out[str(path.relative_to(stack.dir))] = (hashlib.sha256(path.read_bytes()).hexdigest(),
                                                     path.stat().st_mode & 0o7777)
    return out


def container_ids(stack) -> dict:
    return {service: info[0] for service, info in stack.containers().items()}


def served_fingerprint(stack) -> str:
    pem = ssl.get_server_certificate(("127.0.0.1", int(stack.env["TD_NGINX_PORT"])))
    cert = x509.load_pem_x509_certificate(pem.encode())
    return ":".join("%02X" % b for b in cert.fingerprint(hashes.SHA256()))


def file_fingerprint(path: Path) -> str:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return ":".join("%02X" % b for b in cert.fingerprint(hashes.SHA256()))


def reset(stack, env_text, compose_text, patterns=(".env.backup.*", "docker-compose.backup.*", "*.rollback-*",
                                                   "certs/*.backup.*", "certs/*.rollback-*")):
    """Put the project back as the test found it and bring the stack to that configuration."""
    (stack.dir / ".env").write_text(env_text)
    (stack.dir / ".env").chmod(0o600)
    (stack.dir / "docker-compose.yml").write_text(compose_text)
    for pattern in patterns:
        for path in stack.dir.glob(pattern):
            path.unlink()
    stack.compose("up", "-d", "--wait", timeout=180)


def test_env_and_compose_check_real_check_idempotent(stack, tmp_path):
    d = stack.dir
    good_env, good_compose = (d / ".env").read_text(), (d / "docker-compose.yml").read_text()
    # The pipeline backed the good files up, then deployed a change: the backend's fault delay in
    # .env and a banner variable in the frontend's environment.
    (d / f".env.backup.{TS}").write_text(good_env)
    (d / f"docker-compose.backup.{TS}").write_text(good_compose)
    bad_env = re.sub(r"^TD_FAULT_DELAY=.*$", "TD_FAULT_DELAY=3", good_env, flags=re.M)
    bad_compose = good_compose.replace("TD_FRONTEND_PORT: ${TD_FRONTEND_PORT}",
                                       "TD_FRONTEND_PORT: ${TD_FRONTEND_PORT}\n      TD_BANNER: bad", 1)
    (d / ".env").write_text(bad_env)
    (d / "docker-compose.yml").write_text(bad_compose)
    try:
        stack.compose("up", "-d", "--wait", timeout=180)
        before_files, before_ids = files(stack), container_ids(stack)

        # 1. check mode: runs to the end, changes nothing, says what would change (keys, not values)
        proc = rollback(stack, tmp_path, check=True)
        assert proc.returncode == 0, proc.stdout[-5000:]
        assert files(stack) == before_files and container_ids(stack) == before_ids
        assert "TD_FAULT_DELAY=<hidden> (changed)" in proc.stdout
        assert "would be restored" in proc.stdout
        assert "services to recreate: backend, frontend" in proc.stdout
        assert "certificate skipped: no backup matches" in proc.stdout  # the stack has no certificate backup
        assert not (d / ".rollback.lock").exists()

        # 2. for real: both files back, kept copies, only backend and frontend recreated
        proc = rollback(stack, tmp_path)
        assert proc.returncode == 0, proc.stdout[-5000:]
        assert (d / ".env").read_text() == good_env and (d / "docker-compose.yml").read_text() == good_compose
        assert (d / ".env").stat().st_mode & 0o777 == 0o600
        kept = sorted(p.name for p in d.glob("*.rollback-*"))
        assert len(kept) == 2 and all(KEPT_RE.search(k) for k in kept)
        assert (d / [k for k in kept if k.startswith(".env")][0]).read_text() == bad_env
        ids = container_ids(stack)
        assert ids["backend"] != before_ids["backend"] and ids["frontend"] != before_ids["frontend"]
        assert ids["postgres"] == before_ids["postgres"] and ids["nginx"] == before_ids["nginx"]
        lines = summary(proc)
        assert lines[0] == "Configuration rollback: succeeded", lines
        assert any(line.startswith(f"{d}/.env: restored from {d}/.env.backup.{TS}, kept ") for line in lines), lines
        assert any(line.startswith("backend: recreated, healthy after") for line in lines), lines
        assert re.match(r"Steps: restore files [\d.]+ s, recreate services [\d.]+ s, poll health [\d.]+ s", lines[-1])
        report = sorted(d.glob("rollbacks/*/*.md"))[-1].read_text()
        for name in kept:
            assert name in report, "the report names the kept copies"

        # 3. check mode again: nothing would change
        proc = rollback(stack, tmp_path, check=True)
        assert proc.returncode == 0, proc.stdout[-5000:]
        assert "already equal to" in proc.stdout and "services to recreate: none" in proc.stdout

        # 4. again for real: idempotent
        ids = container_ids(stack)
        proc = rollback(stack, tmp_path)
        assert proc.returncode == 0, proc.stdout[-5000:]
        assert recap(proc)["changed"] == 0, proc.stdout[-5000:]
        assert container_ids(stack) == ids
        assert sorted(p.name for p in d.glob("*.rollback-*")) == kept
    finally:
        reset(stack, good_env, good_compose)


def test_certificate_reloaded_and_served(stack, tmp_path):
    d = stack.dir
    certs = CertSet(tmp_path / "pki")
    live_crt, live_key = d / "certs" / "taylordash.crt", d / "certs" / "taylordash.key"
    old_crt, old_key = live_crt.read_bytes(), live_key.read_bytes()
    good_env, good_compose = (d / ".env").read_text(), (d / "docker-compose.yml").read_text()
    try:
        # (A key that does not match, an expired certificate: tests/faults/test_faults_config.py
        # and tests/integration/test_config_restore.py.)
        shutil.copy(certs.key_file, d / "certs" / f"taylordash.key.backup.{TS}")
        before_ids = container_ids(stack)
        # The good pair, verified against its CA: nginx reloads (same container) and serves it.
        shutil.copy(certs.crt, d / "certs" / f"taylordash.crt.backup.{TS}")
        ca = {"config_actions": ["certificate"], "config_certificate_ca_file": str(certs.ca)}
        before_files = files(stack)
        proc = rollback(stack, tmp_path, check=True, **ca)
        assert proc.returncode == 0, proc.stdout[-5000:]
        assert files(stack) == before_files and "sha256_fingerprint" in proc.stdout
        proc = rollback(stack, tmp_path, **ca)
        assert proc.returncode == 0, proc.stdout[-5000:]
        assert live_crt.read_bytes() == certs.crt.read_bytes()
        assert served_fingerprint(stack) == file_fingerprint(certs.crt)
        assert container_ids(stack)["nginx"] == before_ids["nginx"], "nginx reloaded, not recreated"
        assert "nginx: reloaded" in "\n".join(summary(proc))
        assert f"verified against {certs.ca}" in "\n".join(summary(proc))
        assert live_key.stat().st_mode & 0o777 == 0o600
        proc = rollback(stack, tmp_path, check=True, **ca)
        assert proc.returncode == 0 and "already equal to" in proc.stdout
        proc = rollback(stack, tmp_path, **ca)
        assert proc.returncode == 0 and recap(proc)["changed"] == 0, proc.stdout[-5000:]
    finally:
        live_crt.write_bytes(old_crt)
        live_key.write_bytes(old_key)
        live_key.chmod(0o600)
        stack.compose("exec", "-T", "nginx", "nginx", "-s", "reload", check=False)
        reset(stack, good_env, good_compose)


def test_certificate_asked_for_on_a_stack_without_one(stack, tmp_path):
    proc = rollback(stack, tmp_path, config_actions=["certificate"], config_certificate_file="")
    assert proc.returncode != 0
    assert "config_certificate_file" in proc.stdout and "Nothing was changed" in proc.stdout


def test_compose_backup_rejected(stack, tmp_path):
    d = stack.dir
    good_env, good_compose = (d / ".env").read_text(), (d / "docker-compose.yml").read_text()
    (d / f".env.backup.{TS}").write_text(good_env)
    (d / f"docker-compose.backup.{TS}").write_text(good_compose.replace("services:", "services: [broken", 1))
    try:
        before_files, before_ids = files(stack), container_ids(stack)
        proc = rollback(stack, tmp_path, config_actions=["env", "compose"])
        assert proc.returncode != 0
        assert "fails docker compose config" in proc.stdout
        assert files(stack) == before_files and container_ids(stack) == before_ids
    finally:
        reset(stack, good_env, good_compose)


def test_env_backup_lacking_a_variable(stack, tmp_path):
    d = stack.dir
    good_env, good_compose = (d / ".env").read_text(), (d / "docker-compose.yml").read_text()
    lacking = "\n".join(line for line in good_env.splitlines() if not line.startswith("TD_DB_PASSWORD=")) + "\n"
    (d / f".env.backup.{TS}").write_text(lacking)
    try:
        proc = rollback(stack, tmp_path, config_actions=["env"], config_health_timeout=8)
        assert proc.returncode != 0, proc.stdout[-5000:]
        assert "TD_DB_PASSWORD" in proc.stdout  # warned: compose leaves it unset
        kept = sorted(d.glob(".env.rollback-*"))
        assert len(kept) == 1 and kept[0].read_text() == good_env, "the previous .env is still on disk"
        report_dir = sorted(d.glob("rollbacks/*"))[-1]
        report = next(report_dir.glob("*.md")).read_text()
        assert kept[0].name in report
        assert "FAILED" in "\n".join(summary(proc))
    finally:
        reset(stack, good_env, good_compose)


def test_zz_no_secret_in_any_output_report_or_archive(stack):
    """Runs last in file order; with random order it still checks whatever ran before it."""
    env = stack.env
    secrets = [env[k] for k in ("TD_DB_PASSWORD", "TD_API_KEY", "TD_ADMIN_PASSWORD")]
    texts = list(OUTPUTS)
    for path in list(stack.dir.glob("rollbacks/**/*")) + [stack.dir / "rollback_history.log"]:
        # env_post_rollback is the archive's copy of .env itself (0600), kept by design.
        if path.is_file() and path.name != "env_post_rollback":
            texts.append(path.read_text(errors="replace"))
    assert texts
    for text in texts:
        for value in secrets:
            assert value not in text
