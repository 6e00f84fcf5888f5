"""playbooks/rollback_complete.yml against real reference stacks after a bad deploy that changed
the images, .env and the compose file: the check -> real -> check -> idempotent rhythm, the opt-in
database restore before the images move, each bad input (nothing changed, lock free), a .env
backup that breaks the backend (the play fails, the report names the kept copies, the previous
files are still on disk), and a grep of every output, report and archive for the secrets.

One stack is shared by the tests that leave it healthy (module_stack_factory); the test that
breaks its stack has its own."""
from __future__ import annotations

import json
import re
import stat
import subprocess

import pytest

from conftest import REPO, run_playbook, write_inventory

pytestmark = pytest.mark.integration

PLAYBOOK = REPO / "playbooks" / "rollback_complete.yml"
RECAP = re.compile(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")
# The validation and the report have their own tests.
# Response times under a loaded CI machine are the validate role's business (its own tests).
QUICK = {"validate_perf_enabled": False}
# What the bad deploy adds to the backend's compose definition (the compose rollback removes it).
BAD_COMPOSE_LINE = '      TD_NEW_FEATURE: "on"\n'

OUTPUTS: list = []  # every playbook output of this module, for the secrets grep


def recap(proc) -> dict:
    match = RECAP.search(proc.stdout)
    assert match, proc.stdout[-3000:]
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


def summary(proc) -> list:
    """The lines of the 'Summarise the complete rollback' task."""
    assert "Summarise the complete rollback" in proc.stdout, proc.stdout[-3000:]
    block = proc.stdout.split("Summarise the complete rollback", 1)[1].split("TASK [", 1)[0]
    return re.findall(r'^\s+"(.*)",?$', block, re.M)


def rollback(stack, tmp_path, check=False, **overrides):
    proc = run_playbook(PLAYBOOK, extra_vars=stack.stack_vars(**dict(QUICK, **overrides)), check=check,
                        diff=check, inventory=write_inventory(tmp_path), vars_files=[stack.secrets_file(tmp_path)])
    OUTPUTS.append(proc.stdout + proc.stderr)
    return proc


def files(stack) -> dict:
    """Content and mode of the stack's files, except the rollback's own documentation (report
    archive, history log), which a failed run writes too."""
    out = {}
    for path in sorted(stack.dir.rglob("*")):
        rel = path.relative_to(stack.dir)
        if path.is_file() and rel.parts[0] not in ("rollbacks", "rollback_history.log"):
            out[str(rel)] = (path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
    return out


def backup_set(stack) -> str:
    """The timestamp of the newest .env backup (the set the last deploy wrote)."""
    return sorted(p.name[len(".env.backup."):] for p in stack.dir.glob(".env.backup.*"))[-1]


def bad_deploy(stack) -> str:
    """Deploy the bad v2 (5xx on half the requests) the way the pipeline does - it keeps
    .env.backup.<ts> and docker-compose.backup.<ts> - and let it change the compose file too."""
    stack.deploy("v2", "errors", "--error-rate", "0.5")
    compose = stack.dir / "docker-compose.yml"
    text = compose.read_text()
    anchor = "      TD_PLUGINS_CONFIG: /srv/project/plugins_config.json\n"
    assert anchor in text
    if BAD_COMPOSE_LINE not in text:
        compose.write_text(text.replace(anchor, anchor + BAD_COMPOSE_LINE))
    stack.compose("up", "-d", "--pull", "never", "backend")
    return backup_set(stack)


def backend_env_names(stack) -> list:
    cid = stack.compose("ps", "-q", "backend").stdout.strip()
    out = subprocess.run(["docker", "inspect", "-f", '{{range .Config.Env}}{{index (split . "=") 0}} {{end}}', cid],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def health(stack):
    import urllib.request
    try:
        with urllib.request.urlopen(stack.url("backend", "/health/ready"), timeout=3) as resp:
            return resp.status, json.load(resp)
    except Exception as exc:  # noqa: BLE001 - any failure means not healthy
        return None, str(exc)


@pytest.fixture(scope="module")
def shared(module_stack_factory):
    return module_stack_factory("cmp")


def test_check_real_check_idempotent(shared, tmp_path):
    stack = shared
    prefix = stack.env["TD_IMAGE_PREFIX"]
    v1, fv1 = stack.image_id("tdref_backend:v1"), stack.image_id("tdref_frontend:v1")
    ts = bad_deploy(stack)
    env_backup = (stack.dir / f".env.backup.{ts}").read_bytes()
    compose_backup = (stack.dir / f"docker-compose.backup.{ts}").read_bytes()
    bad_env, bad_compose = (stack.dir / ".env").read_bytes(), (stack.dir / "docker-compose.yml").read_bytes()
    assert "TD_NEW_FEATURE" in backend_env_names(stack)
    tags, containers, before = stack.tags(), stack.containers(), files(stack)

    # 1. check mode: runs to the end, changes nothing, shows the set, the keys and the tags
    proc = rollback(stack, tmp_path, check=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert stack.tags() == tags and stack.containers() == containers and files(stack) == before
    lines = summary(proc)
    assert lines[0] == "Complete rollback: check mode, nothing changed", lines
    assert f"configuration: backup set {ts}" in lines
    assert f".env: would be restored from .env.backup.{ts}" in "\n".join(lines)
    assert f"docker-compose.yml: would be restored from docker-compose.backup.{ts}" in "\n".join(lines)
    assert "TD_FAULT" in proc.stdout  # the key the deploy changed, in the diff
    assert "would be recreated" in proc.stdout
    assert not (stack.dir / ".rollback.lock").exists()

    # 2. for real
    proc = rollback(stack, tmp_path)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert (stack.dir / ".env").read_bytes() == env_backup
    assert (stack.dir / "docker-compose.yml").read_bytes() == compose_backup
    assert stat.S_IMODE((stack.dir / ".env").stat().st_mode) == 0o600
    kept_env = list(stack.dir.glob(".env.rollback-*"))
    kept_compose = list(stack.dir.glob("docker-compose.yml.rollback-*"))
    assert len(kept_env) == 1 and kept_env[0].read_bytes() == bad_env
    assert stat.S_IMODE(kept_env[0].stat().st_mode) == 0o600
    assert len(kept_compose) == 1 and kept_compose[0].read_bytes() == bad_compose
    tags_after = stack.tags()
    assert tags_after[f"{prefix}_backend:latest"] == v1 and tags_after[f"{prefix}_frontend:latest"] == fv1
    after = stack.containers()
    assert after["backend"][1] == v1 and after["frontend"][1] == fv1
    # only what changed was recreated: the database and nginx kept their containers
    assert after["postgres"] == containers["postgres"] and after["nginx"] == containers["nginx"]
    assert "TD_NEW_FEATURE" not in backend_env_names(stack)
    status, body = health(stack)
    assert status == 200 and body["version"] == "v1"
    lines = summary(proc)
    assert lines[0] == "Complete rollback: succeeded", lines
    text = "\n".join(lines)
    assert f".env: restored from .env.backup.{ts}, previous file kept as {kept_env[0]}" in text
    assert "bad build kept as" in text
    assert re.search(r"Steps: restore configuration files [\d.]+ s, retag images [\d.]+ s", lines[-1]), lines
    report = json.loads(sorted(stack.dir.glob("rollbacks/*/rollback_report_*.json"))[-1].read_text())
    assert report["type"] == "complete" and report["outcome"] != "FAILED"
    assert str(kept_env[0]) in json.dumps(report["changes"])
    assert not (stack.dir / ".rollback.lock").exists()

    # 3. check mode again: nothing would change
    tags, containers, before = stack.tags(), stack.containers(), files(stack)
    proc = rollback(stack, tmp_path, check=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert f".env: already equal to .env.backup.{ts}" in "\n".join(summary(proc))
    assert "(already the target)" in proc.stdout
    assert stack.tags() == tags and files(stack) == before

    # 4. again for real: idempotent
    proc = rollback(stack, tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert recap(proc)["changed"] == 0, proc.stdout[-5000:]
    assert stack.tags() == tags and stack.containers() == containers
    assert len(list(stack.dir.glob(".env.rollback-*"))) == 1  # nothing kept when nothing was replaced


def psql(stack, sql: str) -> str:
    return stack.compose("exec", "-T", "postgres", "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1",
                         "-c", sql).stdout.strip()


def test_database_restore_before_the_images(shared, tmp_path):
    stack = shared
    stack.ctl("backup", "--dir", str(stack.dir))
    rows = psql(stack, "SELECT count(*) FROM projects")
    psql(stack, "INSERT INTO projects (name) SELECT 'after backup ' || g FROM generate_series(1, 7) g")
    ts = bad_deploy(stack)
    proc = rollback(stack, tmp_path, complete_database_restore=True)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert psql(stack, "SELECT count(*) FROM projects") == rows
    # the data before the restore is kept: the previous database, renamed aside by the swap
    kept = psql(stack, "SELECT datname FROM pg_database WHERE datname LIKE '%\\_before\\_%'").split()
    assert len(kept) == 1, kept
    out = proc.stdout
    # the database went first, while the bad build still ran; then the files; then the images
    assert out.index("Restore the data from a verified backup") < out.index("Restore .env and the compose files") \
        < out.index("Point each service's current tag back")
    text = "\n".join(summary(proc))
    assert "database: restored from " in text and f"backup set {ts}" in text
    assert f"the data before it kept as database {kept[0]}" in text
    assert health(stack)[1]["version"] == "v1"


def test_bad_settings_change_nothing(shared, tmp_path):
    stack = shared
    bad_deploy(stack)
    tags, containers, before = stack.tags(), stack.containers(), files(stack)
    proc = rollback(stack, tmp_path, complete_up_timeout=0,
                    complete_files=[{"dest": ".env", "src": ".env.backup.x", "pattern": ".env.backup.*"}])
    assert proc.returncode != 0
    assert "Bad complete rollback settings (nothing was changed)" in proc.stdout
    assert "complete_up_timeout=0" in proc.stdout and "complete_files[0]=" in proc.stdout
    assert "give exactly one of src" in proc.stdout
    assert "Take the rollback lock" not in proc.stdout
    # a choice the argument spec knows
    proc = rollback(stack, tmp_path, complete_files=[{"dest": ".env", "pattern": ".env.backup.*", "validate": "yaml"}])
    assert proc.returncode != 0 and "validate" in proc.stdout and "yaml" in proc.stdout
    assert stack.tags() == tags and stack.containers() == containers and files(stack) == before
    assert not (stack.dir / ".rollback.lock").exists()


# A compose backup that `docker compose config` rejects is the fault matrix's case
# (tests/faults/test_faults_complete.py::test_complete_compose_backup_rejected, with the same
# assertions and more): not run twice.
@pytest.mark.parametrize("case", ["no-match", "no-common-timestamp", "empty-backup"])
def test_bad_backups_fail_before_any_change(shared, tmp_path, case):
    """Each bad input of the backup set fails before anything changes: no file replaced, no tag
    moved, no container recreated, the lock free, the report FAILED naming why."""
    stack = shared
    ts = bad_deploy(stack)
    made = []
    extra = {}
    if case == "no-match":
        extra["complete_files"] = [{"dest": ".env", "pattern": ".env.backup.*"},
                                   {"dest": "docker-compose.yml", "pattern": "compose-nothing.backup.*"}]
        expect = r"compose-nothing\.backup\.\*"
    elif case == "no-common-timestamp":
        made.append(stack.dir / ".env.backup.20991231_235959")
        made[-1].write_bytes((stack.dir / f".env.backup.{ts}").read_bytes())
        extra["complete_files"] = [{"dest": ".env", "pattern": ".env.backup.2099*"},
                                   {"dest": "docker-compose.yml", "pattern": f"docker-compose.backup.{ts}*"}]
        expect = r"(?i)common|timestamp"
    else:
        newer = "20991231_235959"
        made += [stack.dir / f".env.backup.{newer}", stack.dir / f"docker-compose.backup.{newer}"]
        made[0].write_bytes(b"")
        made[1].write_bytes((stack.dir / f"docker-compose.backup.{ts}").read_bytes())
        expect = r"(?i)empty"
    try:
        tags, containers, before = stack.tags(), stack.containers(), files(stack)
        proc = rollback(stack, tmp_path, report_dir=str(tmp_path), **extra)
        assert proc.returncode != 0, proc.stdout[-3000:]
        assert stack.tags() == tags and stack.containers() == containers and files(stack) == before
        assert not (stack.dir / ".rollback.lock").exists()
        report = json.loads(sorted(tmp_path.glob("rollbacks/*/rollback_report_*.json"))[-1].read_text())
        assert report["outcome"] == "FAILED"
        assert re.search(expect, report["failure"]), report["failure"]
        assert "Complete rollback: FAILED" in proc.stdout
    finally:
        for path in made:
            path.unlink(missing_ok=True)


def test_stack_without_backups_skips_the_files(stack_factory, tmp_path):
    """A stack whose deploys kept no copy of .env or the compose file: the images are rolled
    back and the configuration step is skipped with a one-line reason."""
    stack = stack_factory("cnb")
    stack.deploy("v2", "errors", "--error-rate", "0.5", "--no-backup")
    proc = rollback(stack, tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Configuration not restored (skipped): no backup of .env, docker-compose.yml in" in proc.stdout
    assert "set complete_files to name the backups" in proc.stdout
    assert health(stack)[1]["version"] == "v1"


def test_env_backup_that_breaks_the_backend(stack_factory, tmp_path):
    """A .env backup that lacks a variable the backend needs: the backend fails its health, the
    play fails, the report names the kept copies, and the previous files are still on disk."""
    stack = stack_factory("cbr")
    ts = bad_deploy(stack)
    backup = stack.dir / f".env.backup.{ts}"
    backup.write_text("".join(line + "\n" for line in backup.read_text().splitlines()
                              if not line.startswith("TD_DB_PASSWORD=")))
    bad_env = (stack.dir / ".env").read_bytes()
    bad_compose = (stack.dir / "docker-compose.yml").read_bytes()
    proc = rollback(stack, tmp_path, immediate_health_timeout=5, complete_up_timeout=10)
    assert proc.returncode != 0
    assert "Complete rollback: FAILED" in proc.stdout
    kept_env = list(stack.dir.glob(".env.rollback-*"))
    kept_compose = list(stack.dir.glob("docker-compose.yml.rollback-*"))
    assert len(kept_env) == 1 and kept_env[0].read_bytes() == bad_env
    assert len(kept_compose) == 1 and kept_compose[0].read_bytes() == bad_compose
    report = json.loads(sorted(stack.dir.glob("rollbacks/*/rollback_report_*.json"))[-1].read_text())
    assert report["outcome"] == "FAILED"
    text = json.dumps(report["changes"])
    assert str(kept_env[0]) in text and str(kept_compose[0]) in text
    assert not (stack.dir / ".rollback.lock").exists()


def test_no_secret_in_any_output_report_or_archive(shared):
    """The .env secrets, the API key and the admin password appear in no playbook output, report
    or history line of this module's runs (the archive's env_post_rollback and the kept .env
    copies are .env files: they hold them by design, at mode 0600)."""
    env = shared.env
    secrets = [env["TD_DB_PASSWORD"], env["TD_API_KEY"], env["TD_ADMIN_PASSWORD"]]
    assert OUTPUTS, "no playbook ran"
    texts = list(OUTPUTS)
    documents = [p for p in shared.dir.rglob("*") if p.is_file() and (
        p.parts[-3:-2] == ("rollbacks",) or p.name == "rollback_history.log") and p.name != "env_post_rollback"]
    assert documents
    texts += [p.read_text(errors="replace") for p in documents]
    for p in shared.dir.glob("rollbacks/*/env_post_rollback"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    for secret in secrets:
        assert len(secret) >= 8
        for text in texts:
            assert secret not in text
