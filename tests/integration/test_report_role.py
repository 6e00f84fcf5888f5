"""The role taylordash.rollback.report, through playbooks/rollback_immediate.yml, on a real
reference stack: a bad deploy rolled back (check mode first, then for real, with -v), then a
rollback that fails (run with ansible-runner the way AWX runs a job template). Each report is
checked field by field against what really happened."""
from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
from types import SimpleNamespace

import pytest

from conftest import REPO, VENV_BIN, ansible_env

try:  # tests/integration as a package, or as a plain directory on sys.path
    from .rollback_env import PlaybookStack, result_of
except ImportError:
    from rollback_env import PlaybookStack, result_of

pytestmark = pytest.mark.integration

PLAYBOOK = "rollback_immediate.yml"
# Fewer samples keep the runs quick. Response times are not what these tests are about (see
# test_validate_role.py), so generous targets keep a loaded machine from failing the rollback.
QUICK = {"validate_perf_samples": 3, "validate_perf_warmup": 0, "validate_perf_api_target": 3,
         "validate_perf_auth_target": 3, "validate_perf_frontend_target": 3}
STEPS = ["retag images", "recreate containers", "poll health", "verify running images"]
COMPONENTS = ["Backend API", "Frontend Application", "Database", "Authentication System", "Plugin System",
              "External Integrations"]


def archives(target):
    root = target.dir / "rollbacks"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def history(target):
    path = target.dir / "rollback_history.log"
    return path.read_text().splitlines() if path.exists() else []


def load_report(archive):
    stamp = archive.name
    md = (archive / f"rollback_report_{stamp}.md").read_text()
    data = json.loads((archive / f"rollback_report_{stamp}.json").read_text())
    return md, data


@pytest.fixture(scope="module")
def rolled_back(module_stack_factory, tmp_path_factory):
    """A stack at v1, a bad v2 deploy, then the rollback: once in check mode, once for real (-v)."""
    stack = module_stack_factory("rep")
    target = PlaybookStack(stack, tmp_path_factory.mktemp("report"))
    ids = {(svc, v): stack.image_id(f"tdref_{svc}:{v}") for svc in ("backend", "frontend") for v in ("v1", "v2")}
    stack.deploy("v2", "unhealthy")
    tree_before = target.tree()
    check = target.run(PLAYBOOK, QUICK, check=True)
    tree_after_check = target.tree()
    real = target.run(PLAYBOOK, QUICK, verbosity=1)
    return SimpleNamespace(target=target, ids=ids, check=check, real=real, tree_before=tree_before,
                           tree_after_check=tree_after_check)


def test_check_mode_writes_nothing_and_shows_the_report(rolled_back):
    proc = rolled_back.check
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert rolled_back.tree_after_check == rolled_back.tree_before
    assert "Check mode: would write " in proc.stdout and "**Outcome:** CHECK_MODE" in proc.stdout
    assert "- [x] Backend API (backend)" in proc.stdout  # what the rollback would change


def test_real_run_writes_one_report(rolled_back):
    proc = rolled_back.real
    assert proc.returncode == 0, proc.stdout[-4000:]
    target = rolled_back.target
    assert len(archives(target)) == 1
    assert len(history(target)) == 1
    assert not (target.dir / ".rollback.lock").exists()


def test_report_fields(rolled_back):
    target, ids = rolled_back.target, rolled_back.ids
    archive = archives(target)[0]
    md, r = load_report(archive)
    stamp = archive.name
    assert re.fullmatch(r"\d{8}_\d{6}", stamp)
    # Unique per run (issue 10): the runbook's ROLL-<date>-<HHMM>, plus the seconds and a random part.
    assert re.fullmatch(r"ROLL-%s-%s-[0-9a-f]{4}" % (stamp[:8], stamp[9:15]), r["incident_id"])
    assert r["timestamp"] == "%s-%s-%sT%s:%s:%sZ" % (
        stamp[:4], stamp[4:6], stamp[6:8], stamp[9:11], stamp[11:13], stamp[13:15])
    assert (r["type"], r["outcome"], r["failure"], r["check_mode"]) == ("immediate", "SUCCEEDED", None, False)
    assert r["severity"] is None and r["root_cause"] is None and r["prevention"] is None
    assert "to be set by the incident owner" in md
    assert md.count("To be completed by the incident owner after the post-incident review.") == 2
    # Steps actually taken, with their durations.
    assert [s["step"] for s in r["steps"]] == STEPS
    assert all(isinstance(s["seconds"], float) and 0 < s["seconds"] < 60 for s in r["steps"])
    assert r["steps_seconds"] == pytest.approx(sum(s["seconds"] for s in r["steps"]), abs=0.002)
    assert 0 < r["duration_seconds"] < 120
    # What changed: both application services, nothing else ticked.
    assert r["services_changed"] == ["backend", "frontend"]
    affected = {c["name"]: c["affected"] for c in r["services_affected"]}
    assert list(affected) == COMPONENTS
    assert [name for name, hit in affected.items() if hit] == ["Backend API", "Frontend Application"]
    changes = {c["service"]: c for c in r["changes"]}
    for svc in ("backend", "frontend"):
        assert changes[svc]["image_before"] == ids[(svc, "v2")] and changes[svc]["image_after"] == ids[(svc, "v1")]
        assert changes[svc]["recreated"] is True and re.fullmatch(r"rollback-\d{8}T\d{6}Z", changes[svc]["kept_tag"])
    # State before and after: the image IDs each service really ran.
    rows = {row["item"]: row for row in r["state"]["rows"]}
    for svc in ("backend", "frontend"):
        row = rows[f"{svc} runs image"]
        assert (row["before"], row["after"], row["changed"]) == (ids[(svc, "v2")], ids[(svc, "v1")], True)
    env_row = rows[".env sha256"]
    assert env_row["before"] == env_row["after"] and env_row["changed"] is False and len(env_row["after"]) == 64
    assert rows["docker-compose.yml sha256"]["changed"] is False
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", rows["certificate sha256 fingerprint"]["after"])
    assert "migration revision" not in rows  # the before-snapshot had none (stack_snapshot_migration off)
    # Validation.
    v = r["validation"]
    assert (v["ran"], v["passed"], v["pass_rate"], v["checks_passed"], v["checks_total"]) == (True, True, 100.0, 9, 9)
    assert (v["health_check_passed"], v["performance_restored"], v["authentication_functional"],
            v["user_acceptance_verified"]) == (True, True, True, False)
    assert [c["name"] for c in v["checklist"]] == ["auth_login", "api_projects", "frontend", "database"]
    assert len(v["performance"]) == 3 and all(p["samples"] == 3 for p in v["performance"])
    assert r["files"]["report"] == str(archive / f"rollback_report_{stamp}.md")


def _md_field(md, label):
    match = re.search(r"^\*\*%s:\*\* (.*)$" % re.escape(label), md, re.M)
    assert match, label
    return match.group(1)


def _md_table(md, heading):
    """Rows (lists of cells) of the first table at or after `heading` (a line, or a table's header)."""
    lines = md[md.index(heading):].splitlines()
    rows = []
    for line in lines:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    return rows[2:]  # without header and separator


def test_json_holds_the_markdown_facts(rolled_back):
    md, r = load_report(archives(rolled_back.target)[0])
    assert _md_field(md, "Incident ID") == r["incident_id"]
    assert _md_field(md, "Date") == r["date"]
    assert _md_field(md, "Rollback type") == r["type"]
    assert _md_field(md, "Outcome") == r["outcome"]
    assert _md_field(md, "Started") == r["started_at"]
    assert _md_field(md, "Pass rate").startswith("%.1f%%" % r["validation"]["pass_rate"])
    assert _md_table(md, "## Rollback Actions Taken") == [
        [str(i), s["step"], "%.3f s" % s["seconds"], s.get("status", "ok")] for i, s in enumerate(r["steps"], 1)]
    ticked = re.findall(r"^- \[x\] (.+?)(?: \((.*)\))?$", md.split("## Services Affected", 1)[1].split("##", 1)[0], re.M)
    assert [(name, changed.split(", ")) for name, changed in ticked] == [
        (c["name"], c["changed"]) for c in r["services_affected"] if c["affected"]]
    assert _md_table(md, "## State before and after") == [
        [row["item"], row["before"] or "not recorded", row["after"] or "not recorded",
         "n/a" if row["changed"] is None else ("yes" if row["changed"] else "no")] for row in r["state"]["rows"]]
    checklist = _md_table(md, "**Validation:**")
    assert [(row[1], row[2]) for row in checklist] == [
        ("pass" if c["passed"] else "FAIL", c["detail"]) for c in r["validation"]["checklist"]]
    assert [row[:3] for row in _md_table(md, "| Endpoint |")] == [
        [p["endpoint"], "%.3f s" % p["p50"], "%.3f s" % p["p95"]] for p in r["validation"]["performance"]]


def test_history_log_line(rolled_back):
    md, r = load_report(archives(rolled_back.target)[0])
    (line,) = history(rolled_back.target)
    archive_name = archives(rolled_back.target)[0].name
    assert line == ("%s %s type=immediate outcome=SUCCEEDED services=backend,frontend pass_rate=100.0 "
                    "report=rollbacks/%s/%s" % (r["timestamp"], r["incident_id"], archive_name,
                                                "rollback_report_%s.md" % archive_name))


def test_archive_holds_the_report_and_the_env_copy(rolled_back):
    target = rolled_back.target
    archive = archives(target)[0]
    names = sorted(p.name for p in archive.iterdir())
    assert names == ["env_post_rollback", f"rollback_report_{archive.name}.json", f"rollback_report_{archive.name}.md"]
    env_copy = archive / "env_post_rollback"
    assert stat.S_IMODE(env_copy.stat().st_mode) == 0o600
    assert env_copy.read_text() == (target.dir / ".env").read_text()
    assert stat.S_IMODE(archive.stat().st_mode) == 0o750


def test_no_secret_in_reports_log_or_output(rolled_back):
    target = rolled_back.target
    md, r = load_report(archives(target)[0])
    texts = [md, json.dumps(r), "\n".join(history(target)), rolled_back.real.stdout, rolled_back.real.stderr,
             rolled_back.check.stdout, rolled_back.check.stderr]
    assert "No config file found; using defaults" in rolled_back.real.stdout  # -v: results of every task shown
    for secret in target.secrets:
        for text in texts:
            assert secret not in text


# --------------------------------------------------------------------------- a failed rollback, via ansible-runner

def runner_dir(tmp_path, target, extravars):
    """A private data dir as AWX prepares one: the example project, an inventory, extra vars
    (the only place the secrets are) and plain environment variables."""
    pdd = tmp_path / "pdd"
    shutil.copytree(REPO / "examples" / "project", pdd / "project", ignore=shutil.ignore_patterns("collections"))
    (pdd / "inventory").mkdir(parents=True)
    shutil.copy(target.inventory, pdd / "inventory" / "hosts.json")
    (pdd / "env").mkdir()
    extra = target.stack.stack_vars(**extravars)
    env = target.stack.env
    extra.update(vault_stack_api_key=env["TD_API_KEY"], vault_stack_admin_password=env["TD_ADMIN_PASSWORD"])
    (pdd / "env" / "extravars").write_text(json.dumps(extra))
    (pdd / "env" / "extravars").chmod(0o600)
    plain = ansible_env()
    (pdd / "env" / "envvars").write_text(json.dumps({k: plain[k] for k in (
        "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_PYTHON_INTERPRETER", "ANSIBLE_NOCOLOR", "ANSIBLE_FORCE_COLOR")}))
    return pdd


@pytest.fixture(scope="module")
def failed_run(rolled_back, tmp_path_factory):
    """After the good rollback: v2 that crashes at start-up, and a "rollback" to v2 itself."""
    target = rolled_back.target
    target.stack.deploy("v2", "crash")
    pdd = runner_dir(tmp_path_factory.mktemp("runner"), target,
                     dict(QUICK, stack_target_tag="v2", immediate_health_timeout=3))
    proc = subprocess.run([str(VENV_BIN / "ansible-runner"), "run", str(pdd), "-p", "rollback-immediate.yml",
                           "--ident", "failed-rollback"], capture_output=True, text=True, timeout=300,
                          env=ansible_env(), check=False)
    return SimpleNamespace(target=target, pdd=pdd, proc=proc, artifacts=pdd / "artifacts" / "failed-rollback")


def test_failed_rollback_is_reported(failed_run):
    target, proc = failed_run.target, failed_run.proc
    assert proc.returncode != 0, proc.stdout[-4000:]
    assert (failed_run.artifacts / "status").read_text() == "failed"
    assert not (target.dir / ".rollback.lock").exists()  # the lock was released
    assert "Rollback failed: Wait until each rolled-back service answers healthy: " in proc.stdout
    latest = archives(target)[-1]
    assert len(archives(target)) == 2
    md, r = load_report(latest)
    assert r["outcome"] == "FAILED" and _md_field(md, "Outcome") == "FAILED"
    assert r["failure"].startswith("Wait until each rolled-back service answers healthy: ")
    assert "/health/ready not healthy" in r["failure"], r["failure"]
    assert "> **The rollback FAILED:** " + r["failure"] in md
    # Retag and recreate ran; health did not pass, and nothing after it ran.
    assert [s["step"] for s in r["steps"] if s.get("status", "ok") == "ok"] == STEPS[:2]
    assert all(s["status"] in ("failed", "not run") for s in r["steps"][2:])
    assert r["validation"]["ran"] is False and "The validation did not run (the rollback failed before it)." in md
    # The escalation of the failed run adds its own line after the report's (roles/escalate).
    lines = [line for line in history(target) if " escalation type=" not in line]
    assert len(lines) == 2 and " outcome=FAILED " in lines[1] and lines[1].endswith(
        "report=rollbacks/%s/rollback_report_%s.md" % (latest.name, latest.name))
    # AWX workflows branch on the stats the report publishes.
    stats = [json.loads(p.read_text()) for p in (failed_run.artifacts / "job_events").glob("*.json")]
    stats = [e for e in stats if e.get("event") == "playbook_on_stats"]
    assert stats and stats[0]["event_data"]["artifact_data"]["rollback_outcome"] == "FAILED"
    assert stats[0]["event_data"]["artifact_data"]["rollback_incident_id"] == r["incident_id"]


def test_no_secret_in_runner_artifacts(failed_run):
    target = failed_run.target
    files = [p for p in failed_run.artifacts.rglob("*") if p.is_file()]
    assert any(p.parent.name == "job_events" for p in files)
    latest = archives(target)[-1]
    files += [p for p in latest.rglob("*") if p.is_file() and p.name != "env_post_rollback"] + [target.dir / "rollback_history.log"]
    for path in files:
        text = path.read_text(errors="replace")
        for secret in target.secrets:
            assert secret not in text, path
    for secret in target.secrets:
        assert secret not in failed_run.proc.stdout and secret not in failed_run.proc.stderr


@pytest.fixture(scope="module")
def failed_after_retag(failed_run):
    """After the runner run: v1 deployed with the crash fault (v1 ignores it), so :previous is the
    v2 build that crashes. The rollback moves :latest to it, keeping v1 under rollback-<ts>, and
    fails at the health step."""
    target = failed_run.target
    target.stack.deploy("v1", "crash")
    proc = target.run(PLAYBOOK, dict(QUICK, immediate_health_timeout=3))
    return SimpleNamespace(target=target, proc=proc)


def test_failed_rollback_names_what_it_changed_and_how_to_roll_forward(failed_after_retag):
    """Issue 10, item 7: the retag happened before the health step failed. The report lists the
    changes, the tags that keep the replaced images, and the commands that undo the retag."""
    assert failed_after_retag.proc.returncode != 0
    md, r = load_report(archives(failed_after_retag.target)[-1])
    assert r["outcome"] == "FAILED" and r["failure"].startswith("Wait until each rolled-back service answers healthy: ")
    changes = {c["service"]: c for c in r["changes"]}
    assert sorted(changes) == ["backend", "frontend"], r["changes"]
    forward = {f["service"]: f for f in r["roll_forward"]}
    assert sorted(forward) == ["backend", "frontend"], r["roll_forward"]
    for svc, change in changes.items():
        assert re.fullmatch(r"rollback-\d{8}T\d{6}Z", change["kept_tag"]) and change["retagged"] is True
        image = change["image"]
        command = "docker tag %s:%s %s:latest" % (image, change["kept_tag"], image)
        assert forward[svc]["command"] == command
        assert "replaced image kept as `%s:%s`" % (image, change["kept_tag"]) in md
        assert "`%s`" % command in md
    assert "### To roll forward" in md


def test_reports_of_the_same_second_get_archives_of_their_own(tmp_path):
    """Three hosts of one play share a report directory and report in the same second: three
    archives (the later ones named <second>_<microseconds>), three history lines, no file shared."""
    play = tmp_path / "report.yml"
    play.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.import_role:\n        name: taylordash.rollback.report\n")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("".join(
        f"h{i} ansible_connection=local ansible_python_interpreter={VENV_BIN / 'python'}\n" for i in range(3)))
    report_dir = tmp_path / "reports"
    report_dir.mkdir()
    extra = {"report_type": "immediate", "report_dir": str(report_dir), "report_archive_env": False,
             "stack_project_dir": str(tmp_path), "stack_compose_project": "tdsame",
             "report_state_after": {"services": []}}
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(play), "-e", json.dumps(extra)],
                          capture_output=True, text=True, env=ansible_env(), timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    dirs = sorted(p for p in (report_dir / "rollbacks").iterdir())
    assert len(dirs) == 3, dirs
    for archive in dirs:
        md, data = load_report(archive)
        assert data["files"]["report"] == str(archive / f"rollback_report_{archive.name}.md")
    assert sorted(load_report(d)[1]["host"] for d in dirs) == ["h0", "h1", "h2"]
    assert any("_" in d.name[9:] for d in dirs)  # at least one took the <second>_<microseconds> name
    lines = (report_dir / "rollback_history.log").read_text().splitlines()
    assert sorted(line.split("report=")[1] for line in lines) == sorted(
        f"rollbacks/{d.name}/rollback_report_{d.name}.md" for d in dirs)


@pytest.mark.parametrize("case", ["listed_present", "listed_absent", "not_listed"])
def test_env_copy_decided_from_the_after_snapshot(case, tmp_path):
    """Issue 15: with report_archive_env left at null, the after-snapshot (its files, by path) says
    whether the .env exists; the file is looked for only when the snapshot does not list it. The
    report says the same as when it was always looked for."""
    project = tmp_path / "project"
    project.mkdir()
    env_file = project / ".env"
    if case != "listed_absent":
        env_file.write_text("TD_SECRET=not-in-any-output\n")
    after = {"services": []}
    if case != "not_listed":
        after["files"] = {".env": {"path": str(env_file), "exists": env_file.exists()},
                          "docker-compose.yml": {"path": str(project / "docker-compose.yml"), "exists": False}}
    play = tmp_path / "report.yml"
    play.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.import_role:\n        name: taylordash.rollback.report\n")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"h0 ansible_connection=local ansible_python_interpreter={VENV_BIN / 'python'}\n")
    extra = {"report_type": "immediate", "report_dir": str(project), "stack_project_dir": str(project),
             "stack_compose_project": "tdenv", "report_state_after": after}
    env = dict(ansible_env(), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(play), "-e", json.dumps(extra)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    looked = result_of(proc.stdout, "Look for the .env to archive (the snapshot does not say whether it exists)")
    assert looked.get("skipped", False) is (case != "not_listed")
    [archive] = sorted(p for p in (project / "rollbacks").iterdir())
    md, data = load_report(archive)
    line = "env copy: skipped, no %s; set report_env_file to archive another file" % env_file
    if case == "listed_absent":
        assert data["files"]["env_copy"] is None and not (archive / "env_post_rollback").exists()
        assert line in data["skipped"]
    else:
        assert data["files"]["env_copy"] == str(archive / "env_post_rollback")
        assert (archive / "env_post_rollback").read_text() == env_file.read_text()
        assert line not in data["skipped"]
    assert "not-in-any-output" not in proc.stdout + md
