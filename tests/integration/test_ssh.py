"""The immediate, database and report paths over a real SSH connection: an sshd of the test's own
on 127.0.0.1 (a random port, its own host key, a user key), a non-root user in the docker group,
pipelining on, the target's own Python (/usr/bin/python3, none of the controller's packages).

What it proves: the modules run on the target as that user (every file the runs write - the
report, the history log, the archive, the safety dump - is owned by it and lies in the stack's
directory), and nothing reads the controller's files: the controller's home, where its Python,
collections and ~/.ansible live, is closed to that user.

The sshd is started by the test and ended by its PID; the machine's own sshd configuration is
not touched. The user (tdssh) is created when missing, idempotently."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO, ReferenceStack, run_playbook

pytestmark = pytest.mark.integration

USER = "tdssh"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
TARGET_PYTHON = "/usr/bin/python3"
QUICK_VALIDATE = {"validate_script_enabled": False, "validate_perf_enabled": False}


def sh(*argv, check=True):
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed: %s" % (" ".join(argv), proc.stderr))
    return proc


def ensure_user():
    """tdssh in the docker group, with a home of its own and an unlocked (password-less) account."""
    if subprocess.run(["id", USER], capture_output=True, check=False).returncode != 0:
        sh("useradd", "--create-home", "--shell", "/bin/sh", "--groups", "docker", USER)
    sh("usermod", "--append", "--groups", "docker", USER)
    # '*': no password can log in, but the account is not locked ('!'), which sshd refuses.
    sh("usermod", "--password", "*", USER)
    return pwd.getpwnam(USER)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not os.path.exists(SSHD):
        pytest.skip("sshd not installed (scripts/setup.sh installs openssh-server)")
    if os.geteuid() != 0:
        pytest.skip("needs root to create the target user and start an sshd")
    user = ensure_user()
    work = tmp_path_factory.mktemp("sshd")
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "host_key"))
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "user_key"))
    # Read by sshd as the user: a directory of its own, readable by it.
    keys = Path(tempfile.mkdtemp(prefix="tdssh-keys-"))
    keys.chmod(0o755)
    shutil.copy(work / "user_key.pub", keys / "authorized_keys")
    (keys / "authorized_keys").chmod(0o644)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    for _attempt in range(5):
        port = free_port()
        config = work / "sshd_config"
        config.write_text("\n".join([
            f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {work / 'host_key'}", f"PidFile {work / 'sshd.pid'}",
            f"AuthorizedKeysFile {keys / 'authorized_keys'}", f"AllowUsers {USER}", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PermitRootLogin no", "UsePAM no", "StrictModes no", "PrintMotd no",
            "Subsystem sftp internal-sftp", ""]))
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                                stderr=open(work / "sshd.log", "w"))  # noqa: SIM115 - closed with the process
        deadline = time.monotonic() + 15
        up = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    up = conn.recv(4).startswith(b"SSH-")
                    break
            except OSError:
                time.sleep(0.05)
        if up:
            break
        proc.kill()
        proc.wait()
    else:
        raise AssertionError("sshd did not start: %s" % (work / "sshd.log").read_text())
    host_key = (work / "host_key.pub").read_text().split()
    (work / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    (work / "user_key").chmod(0o600)
    try:
        yield {
            "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": port,
            "ansible_user": USER, "ansible_ssh_private_key_file": str(work / "user_key"),
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={work / 'known_hosts'} -o StrictHostKeyChecking=yes "
                                       "-o ControlMaster=no",
            "ansible_ssh_pipelining": True, "ansible_python_interpreter": TARGET_PYTHON,
            "uid": user.pw_uid, "home": user.pw_dir, "log": work / "sshd.log",
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(keys, ignore_errors=True)


@pytest.fixture(scope="module")
def ssh_stack(sshd):
    """A reference stack on the bad v2, with a backup, in a directory the target user owns."""
    base = Path(tempfile.mkdtemp(prefix="tdssh-stack-"))
    base.chmod(0o755)
    import secrets as token
    stack = ReferenceStack(f"tdtssh{token.token_hex(3)}", base / "stack")
    try:
        stack.init()
        stack.up("v1")
        stack.backup = Path(stack.ctl("backup", "--dir", str(stack.dir)).stdout.strip())
        stack.deploy("v2", "unhealthy")
        sh("chown", "-R", f"{USER}:{USER}", str(stack.dir))
        yield stack
    finally:
        stack.down()
        shutil.rmtree(base, ignore_errors=True)


def run(sshd, stack, playbook, tmp_path, **extra):
    env = stack.env
    host = {key: value for key, value in sshd.items() if key.startswith("ansible_")}
    host.update(stack.stack_vars(), stack_api_key=env["TD_API_KEY"], stack_admin_password=env["TD_ADMIN_PASSWORD"])
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"taylordash": {"hosts": {"sshtarget": host}}}))
    inventory.chmod(0o600)
    local_tmp = tmp_path / "controller-tmp"
    local_tmp.mkdir(exist_ok=True)
    logins = sshd["log"].read_text().count("Accepted publickey for %s" % USER)
    control = tmp_path / "cp"
    try:
        proc = run_playbook(REPO / "playbooks" / playbook, inventory=inventory, extra_vars=extra,
                            env={"ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_LOCAL_TEMP": str(local_tmp),
                                 "ANSIBLE_PIPELINING": "True", "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control)})
    finally:
        # The SSH master this run left behind (ControlPersist), ended through its control socket.
        for sock in control.glob("*"):
            subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "127.0.0.1"], capture_output=True,
                           check=False, timeout=10)
    # The modules ran through the test's sshd, as the target user.
    assert sshd["log"].read_text().count("Accepted publickey for %s" % USER) > logins, proc.stdout[-3000:]
    return proc


def written_since(directory: Path, since: float) -> dict:
    return {str(p.relative_to(directory)): p.lstat().st_uid for p in directory.rglob("*")
            if p.lstat().st_mtime >= since and not p.is_dir()}


def test_the_target_user_cannot_read_the_controller(sshd):
    """The controller's Python, collections and ~/.ansible are under a home the target user cannot open."""
    home = Path(os.path.expanduser("~"))
    proc = subprocess.run(["su", "-s", "/bin/sh", USER, "-c", f"ls {home}"], capture_output=True, text=True,
                          check=False)
    if proc.returncode == 0:
        pytest.skip(f"{home} is readable by {USER}: this machine cannot show it")
    assert "Permission denied" in proc.stderr


def test_immediate_and_report_over_ssh(sshd, ssh_stack, tmp_path):
    stack = ssh_stack
    prefix = stack.env["TD_IMAGE_PREFIX"]
    v1 = stack.image_id("tdref_backend:v1")
    started = time.time() - 1
    proc = run(sshd, stack, "rollback_immediate.yml", tmp_path, validate_perf_samples=3, validate_perf_warmup=0)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert stack.tags()[f"{prefix}_backend:latest"] == v1 and stack.container_image_id("backend") == v1
    assert not (stack.dir / ".rollback.lock").exists()
    written = written_since(stack.dir, started)
    reports = [path for path in written if path.startswith("rollbacks/") or path.startswith("rollback_report")]
    assert reports and "rollback_history.log" in written, sorted(written)
    # Written by the modules on the target, as the target user, where the stack is.
    assert set(written.values()) == {sshd["uid"]}, written
    assert not any((tmp_path / "controller-tmp").rglob("rollback_*")), "a report landed on the controller side"


def test_database_restore_over_ssh(sshd, ssh_stack, tmp_path):
    stack = ssh_stack
    started = time.time() - 1
    proc = run(sshd, stack, "rollback_database.yml", tmp_path, database_action="restore",
               database_backup_path=str(stack.backup), **QUICK_VALIDATE)
    assert proc.returncode == 0, proc.stdout[-4000:]
    written = written_since(stack.dir, started)
    # the kept copy before the restore: the previous database, renamed aside by the swap on the target
    kept = stack.compose("exec", "-T", "postgres", "psql", "-X", "-At", "-c",
                         "SELECT datname FROM pg_database WHERE datname LIKE '%\\_before\\_%'").stdout.split()
    assert len(kept) == 1, kept
    assert f"database {kept[0]} (kept)" in proc.stdout
    assert "rollback_history.log" in written
    assert set(written.values()) == {sshd["uid"]}, written
    assert not list(stack.dir.glob(".rollback*.lock"))
