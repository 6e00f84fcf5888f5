"""playbooks/rollback_partial.yml against a real reference stack whose plugins and auth
configuration a bad change broke: a problematic plugin added and a plugin's version changed in
plugins_config.json, login disabled in the backend's /app/auth_config.py. The check -> real ->
check -> idempotent rhythm; the parts a stack lacks (skipped with a reason, or failing naming the
variable when asked for); each bad input (nothing changed, lock free); and a grep of every output
and report for the API key, the admin password and the database password.

One stack is shared by every test of the module (each test breaks what it needs)."""
from __future__ import annotations

import hashlib
import json
import re
import stat
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import REPO, run_playbook, write_inventory

pytestmark = pytest.mark.integration

PLAYBOOK = REPO / "playbooks" / "rollback_partial.yml"
RECAP = re.compile(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")
# Response times under a loaded CI machine are the validate role's business (its own tests).
QUICK = {"validate_perf_enabled": False}
GOOD_PLUGINS = ["analytics", "notifications", "export-csv"]
BROKEN_AUTH = ("# deployed with v2: login switched off by mistake\nAUTH_MODE = \"password\"\n"
               "LOGIN_ENABLED = False\nSESSION_TTL_SECONDS = 60\nTOKEN_BYTES = 32\n")

OUTPUTS: list = []


def recap(proc) -> dict:
    match = RECAP.search(proc.stdout)
    assert match, proc.stdout[-3000:]
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


def summary(proc) -> list:
    assert "Summarise the partial rollback" in proc.stdout, proc.stdout[-3000:]
    block = proc.stdout.split("Summarise the partial rollback", 1)[1].split("TASK [", 1)[0]
    return re.findall(r'^\s+"(.*)",?$', block, re.M)


def rollback(stack, tmp_path, check=False, secrets_file=None, verbosity=0, **overrides):
    proc = run_playbook(PLAYBOOK, extra_vars=stack.stack_vars(**dict(QUICK, **overrides)), check=check,
                        diff=check, inventory=write_inventory(tmp_path),
                        vars_files=[secrets_file or stack.secrets_file(tmp_path)], verbosity=verbosity)
    OUTPUTS.append(proc.stdout + proc.stderr)
    return proc


def api(stack, method, path, body=None, key=True):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["X-API-Key"] = stack.env["TD_API_KEY"]
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(stack.url("backend", path), data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def login(stack, password=None):
    return api(stack, "POST", "/api/v1/auth/login", {"username": "admin",
                                                     "password": password or stack.env["TD_ADMIN_PASSWORD"]}, key=False)[0]


def plugin_names(stack) -> list:
    status, body = api(stack, "GET", "/api/v1/plugins")
    assert status == 200, body
    return [p["name"] for p in body]


def backend_exec(stack, *argv, input_text=None) -> str:
    return stack.compose("exec", "-T", "backend", *argv, input_text=input_text).stdout


def auth_sha(stack) -> str:
    return backend_exec(stack, "sha256sum", "/app/auth_config.py").split()[0]


def break_plugins(stack) -> bytes:
    config = json.loads((stack.dir / "plugins_config.backup.json").read_text())
    config["plugins"][0]["version"] = "1.3.0-beta"
    config["plugins"].append({"name": "problematic-plugin", "version": "0.1.0", "enabled": True})
    data = (json.dumps(config, indent=2) + "\n").encode()
    (stack.dir / "plugins_config.json").write_bytes(data)
    return data


def break_auth(stack) -> None:
    backend_exec(stack, "python3", "-c", "import sys; open('/app/auth_config.py', 'w').write(sys.stdin.read())",
                 input_text=BROKEN_AUTH)
    assert login(stack) == 503


def project_files(stack) -> dict:
    out = {}
    for path in sorted(stack.dir.rglob("*")):
        rel = path.relative_to(stack.dir)
        if path.is_file() and rel.parts[0] not in ("rollbacks", "rollback_history.log", "emergency.log"):
            out[str(rel)] = (hashlib.sha256(path.read_bytes()).hexdigest(), stat.S_IMODE(path.stat().st_mode))
    return out


def container_state(stack):
    """The backend's container ID and start time (a restart changes the time) and the auth file's checksum."""
    cid = stack.compose("ps", "-q", "backend").stdout.strip()
    started = subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", cid], capture_output=True,
                             text=True, check=True).stdout.strip()
    return cid, started, auth_sha(stack)


def clean_kept(stack) -> None:
    for path in stack.dir.glob("*.rollback-*"):
        path.unlink()


@pytest.fixture(scope="module")
def shared(module_stack_factory):
    return module_stack_factory("prt")


def test_check_real_check_idempotent(shared, tmp_path):
    stack = shared
    good_backup = (stack.dir / "plugins_config.backup.json").read_bytes()
    good_auth = backend_exec(stack, "sha256sum", "/app/backup/auth_config.py").split()[0]
    bad_plugins = break_plugins(stack)
    break_auth(stack)
    assert "problematic-plugin" in plugin_names(stack)
    before, state = project_files(stack), container_state(stack)

    # 1. check mode: changes nothing, says what it would do
    proc = rollback(stack, tmp_path, check=True, partial_plugins_disable=["problematic-plugin", "never-installed"])
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert project_files(stack) == before and container_state(stack) == state
    assert "problematic-plugin" in plugin_names(stack) and login(stack) == 503
    assert "Check mode: would DELETE" in proc.stdout and "/problematic-plugin" in proc.stdout
    assert "never-installed not listed: already disabled" in proc.stdout
    lines = summary(proc)
    assert lines[0] == "Partial rollback: check mode, nothing changed", lines
    assert any(line.startswith("plugins: would disable problematic-plugin; configuration would be restored from "
                               "plugins_config.backup.json") for line in lines), lines
    assert any(line.startswith("auth: variables TD_AUTH_CONFIG (names only); would be restored from /app/backup/auth_config.py")
               for line in lines), lines
    assert not (stack.dir / ".rollback.lock").exists()

    # 2. for real
    proc = rollback(stack, tmp_path, partial_plugins_disable=["problematic-plugin", "never-installed"])
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert (stack.dir / "plugins_config.json").read_bytes() == good_backup
    assert sorted(plugin_names(stack)) == sorted(GOOD_PLUGINS)
    kept = sorted(stack.dir.glob("plugins_config.json.rollback-*"))
    # the file before the API touched it, and the one config_restore replaced (after the DELETE)
    assert len(kept) == 2 and kept[0].read_bytes() == bad_plugins, kept
    assert "problematic-plugin" not in kept[1].read_text()
    assert auth_sha(stack) == good_auth and login(stack) == 200 and login(stack, "wrong") == 401
    kept_host = list(stack.dir.glob("auth_config.py.rollback-*"))
    assert len(kept_host) == 1 and kept_host[0].read_text() == BROKEN_AUTH
    assert stat.S_IMODE(kept_host[0].stat().st_mode) == 0o600
    in_container = backend_exec(stack, "sh", "-c", "ls /app/auth_config.py.rollback-*").split()
    assert len(in_container) == 1
    mode = backend_exec(stack, "stat", "-c", "%a %U", "/app/auth_config.py").split()
    assert mode == backend_exec(stack, "stat", "-c", "%a %U", in_container[0]).split()  # owner and mode kept
    assert container_state(stack)[1] != state[1]  # restarted
    lines = summary(proc)
    assert lines[0] == "Partial rollback: succeeded", lines
    text = "\n".join(lines)
    assert "plugins: disabled problematic-plugin through the API; configuration restored from plugins_config.backup.json" in text
    assert "the API lists analytics, notifications, export-csv" in text
    assert "admin login HTTP 200 with a session, wrong password HTTP 401" in text
    assert re.search(r"backend: restarted, healthy after [\d.]+ s", text)
    assert re.search(r"Steps: disable plugins [\d.]+ s, restore plugin configuration [\d.]+ s, "
                     r"restore auth configuration [\d.]+ s, restart backend [\d.]+ s", lines[-1]), lines
    report = json.loads(sorted(stack.dir.glob("rollbacks/*/rollback_report_*.json"))[-1].read_text())
    assert report["type"] == "partial" and report["outcome"] != "FAILED"
    assert str(kept[0]) in json.dumps(report["changes"]) and str(kept_host[0]) in json.dumps(report["changes"])
    md = sorted(stack.dir.glob("rollbacks/*/rollback_report_*.md"))[-1].read_text()
    assert "[x] Plugin System" in md and "[x] Authentication System" in md

    # 3. check mode again: nothing would change
    before, state = project_files(stack), container_state(stack)
    proc = rollback(stack, tmp_path, check=True, partial_plugins_disable=["problematic-plugin"])
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "nothing would change, nothing would restart" in proc.stdout
    assert project_files(stack) == before and container_state(stack) == state

    # 4. again for real: idempotent (and verbose: no secret even then)
    proc = rollback(stack, tmp_path, verbosity=2, partial_plugins_disable=["problematic-plugin"])
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert recap(proc)["changed"] == 0, proc.stdout[-5000:]
    assert project_files(stack) == before and container_state(stack) == state
    assert "backend: not restarted (nothing changed)" in "\n".join(summary(proc))


def test_parts_the_stack_lacks(shared, tmp_path):
    """Not asked for by name: skipped with a one-line reason. Asked for by name: the run fails
    before any change, naming the variable to set."""
    stack = shared
    break_plugins(stack)
    before, state = project_files(stack), container_state(stack)
    lacking = {"partial_plugins_api_path": "/api/v1/no-plugins", "partial_auth_config_path": "/app/no_auth.py"}
    proc = rollback(stack, tmp_path, **lacking)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert re.search(r"Plugins rollback skipped: GET http://127\.0\.0\.1:\d+/api/v1/no-plugins answered HTTP 404: "
                     r"the stack has no plugins API there \(set partial_plugins_api_path\)\.", proc.stdout)
    assert "Auth rollback skipped: there is no /app/no_auth.py or /app/backup/auth_config.py in the backend container " \
           "(set partial_auth_config_path and partial_auth_backup_path)" in proc.stdout
    assert project_files(stack) == before and container_state(stack) == state

    proc = rollback(stack, tmp_path, partial_actions=["plugins", "auth"], **lacking)
    assert proc.returncode != 0
    assert "partial_actions=plugins,auth asks for what the stack lacks (nothing was changed)" in proc.stdout
    assert "set partial_plugins_api_path" in proc.stdout and "set partial_auth_config_path" in proc.stdout
    assert "Partial rollback: FAILED" in proc.stdout
    assert project_files(stack) == before and container_state(stack) == state
    assert not (stack.dir / ".rollback.lock").exists()

    # no plugin configuration on the host at all
    proc = rollback(stack, tmp_path, partial_actions=["plugins"], partial_plugins_config="no_plugins.json")
    assert proc.returncode != 0 and "(set partial_plugins_config)" in proc.stdout
    assert project_files(stack) == before


def test_bad_settings_change_nothing(shared, tmp_path):
    stack = shared
    break_plugins(stack)
    before, state = project_files(stack), container_state(stack)
    proc = rollback(stack, tmp_path, partial_plugins_disable=["a/b"], partial_health_timeout=0,
                    partial_service="nosuch", partial_auth_config_path="relative.py")
    assert proc.returncode != 0
    assert "Bad partial rollback settings (nothing was changed)" in proc.stdout
    for fragment in ("partial_plugins_disable=a/b", "partial_health_timeout=0", "partial_service=nosuch",
                     "partial_auth_config_path=relative.py"):
        assert fragment in proc.stdout, fragment
    assert "Take the rollback lock" not in proc.stdout
    proc = rollback(stack, tmp_path, partial_actions=["plugins", "everything"])
    assert proc.returncode != 0 and "everything" in proc.stdout
    # asked for by name without the secret it needs: names the variable, never a value
    no_secrets = tmp_path / "no-secrets.json"
    no_secrets.write_text(json.dumps({"stack_api_key": "", "stack_admin_password": ""}))
    proc = rollback(stack, tmp_path, secrets_file=no_secrets, partial_actions=["plugins", "auth"])
    assert proc.returncode != 0
    assert "partial_actions names plugins but stack_api_key is not set" in proc.stdout
    assert "partial_actions names auth but stack_admin_password is not set" in proc.stdout
    # not asked for by name: both skipped with their reasons
    proc = rollback(stack, tmp_path, secrets_file=no_secrets, validate_checklist_enabled=False,
                    validate_perf_enabled=False, validate_script_enabled=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Plugins rollback skipped: stack_api_key is not set" in proc.stdout
    assert "Auth rollback skipped: stack_admin_password is not set" in proc.stdout
    assert project_files(stack) == before and container_state(stack) == state
    assert not (stack.dir / ".rollback.lock").exists()


@pytest.mark.parametrize("case", ["backup-not-json", "backup-missing", "backup-empty", "wrong-api-key"])
def test_bad_inputs_fail_before_any_change(shared, tmp_path, case):
    """No plugin is disabled and no file replaced when the backup is bad or the key refused."""
    stack = shared
    break_plugins(stack)
    extra = {"partial_actions": ["plugins"], "partial_plugins_disable": ["problematic-plugin"], "report_dir": str(tmp_path)}
    secrets_file = None
    made = []
    if case == "backup-not-json":
        made.append(stack.dir / "plugins_config.bad.json")
        made[-1].write_text("{\"plugins\": [\n")
        extra["partial_plugins_backup"] = made[-1].name
        expect = r"(?i)json"
    elif case == "backup-missing":
        extra["partial_plugins_backup"] = "plugins_config.json.backup.*"
        expect = r"(?i)no backup|match"
    elif case == "backup-empty":
        made.append(stack.dir / "plugins_config.empty.json")
        made[-1].write_text("")
        extra["partial_plugins_backup"] = made[-1].name
        expect = r"(?i)empty"
    else:
        secrets_file = tmp_path / "wrong-key.json"
        secrets_file.write_text(json.dumps({"stack_api_key": "td-wrong-key-for-the-test",
                                            "stack_admin_password": stack.env["TD_ADMIN_PASSWORD"]}))
        expect = r"refused stack_api_key"
    try:
        before, state = project_files(stack), container_state(stack)
        proc = rollback(stack, tmp_path, secrets_file=secrets_file, **extra)
        assert proc.returncode != 0, proc.stdout[-3000:]
        assert project_files(stack) == before and container_state(stack) == state
        assert "problematic-plugin" in plugin_names(stack)
        assert not (stack.dir / ".rollback.lock").exists()
        report = json.loads(sorted(tmp_path.glob("rollbacks/*/rollback_report_*.json"))[-1].read_text())
        assert report["outcome"] == "FAILED" and re.search(expect, report["failure"]), report["failure"]
        assert "td-wrong-key-for-the-test" not in proc.stdout
    finally:
        for path in made:
            path.unlink(missing_ok=True)


def test_no_secret_in_any_output_or_report(shared):
    """The API key, the admin password and the database password appear in no playbook output
    (verbose runs included), report or history line of this module's runs."""
    env = shared.env
    secrets = [env["TD_API_KEY"], env["TD_ADMIN_PASSWORD"], env["TD_DB_PASSWORD"]]
    assert OUTPUTS
    texts = list(OUTPUTS)
    documents = [p for p in shared.dir.rglob("*") if p.is_file() and (
        "rollbacks" in p.parts or p.name == "rollback_history.log") and p.name != "env_post_rollback"]
    assert documents
    texts += [p.read_text(errors="replace") for p in documents]
    for secret in secrets:
        assert len(secret) >= 8
        for text in texts:
            assert secret not in text
