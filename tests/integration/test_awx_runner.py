"""The playbooks run the way AWX runs them: ansible-runner with a private data directory laid out
as AWX lays it out, against a reference stack.

    <pdd>/project/             the operations project (a copy of examples/project)
    <pdd>/inventory/hosts      the inventory (group taylordash)
    <pdd>/env/extravars        the job template's extra variables and the survey's answers
    <pdd>/env/envvars          environment variables of the job
    <pdd>/env/settings         runner settings (timeouts)
    <pdd>/env/tmp<credential>  each credential's injected extra variables, 0400, marked !unsafe,
                               passed as `-e @file` (AWX's injector for extra_vars)

Checked: status, no secret in any artifact (job events included), the set_stats data AWX stores
as the job's artifacts (the playbook_on_stats event's artifact_data), and that the next node of
the workflow gets them: the escalation node (examples/project/escalate.yml) is run with them as
its extra variables, as AWX passes them.
"""
from __future__ import annotations

import json
import re
import shutil
import stat
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, ansible_env

ansible_runner = pytest.importorskip("ansible_runner")
pytestmark = pytest.mark.integration

SMTP_PASSWORD = "awx-smtp-Pw-3f9a61c2"
# What AWX adds to every job's extra variables.
AWX_VARS = {"awx_job_id": 4242, "awx_user_name": "oncall-anna", "awx_job_template_name": "TaylorDash - Rollback immediate",
            "awx_inventory_name": "TaylorDash", "awx_project_revision": "0123abcd", "awx_execution_node": "awx-1"}
WEBHOOK_TOKEN = "awx-hook-Tk-b07e44d9"


def _unsafe(dumper, value):
    return dumper.represent_scalar("!unsafe", value, style="'")


class _UnsafeDumper(yaml.SafeDumper):
    """Credential extra vars as AWX writes them: every string !unsafe (never templated)."""


_UnsafeDumper.add_representer(str, _unsafe)


def private_data_dir(root: Path, stack, survey: dict, extra: dict | None = None) -> Path:
    pdd = root
    shutil.copytree(REPO / "examples" / "project", pdd / "project", ignore=shutil.ignore_patterns("collections"))
    (pdd / "inventory").mkdir(parents=True)
    (pdd / "inventory" / "hosts").write_text(json.dumps({"all": {"children": {"taylordash": {"hosts": {
        "localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}}))
    env_dir = pdd / "env"
    env_dir.mkdir()
    # The job template's extra variables (the stack model, a short latency sample with targets a
    # loaded CI machine meets: this file tests the AWX way of running, not the response times).
    template_vars = stack.stack_vars(validate_perf_samples=3, validate_perf_warmup=0, validate_perf_api_target=5,
                                     validate_perf_auth_target=5, validate_perf_frontend_target=5)
    (env_dir / "extravars").write_text(json.dumps({**AWX_VARS, **template_vars, **survey, **(extra or {})}))
    plain = ansible_env()
    (env_dir / "envvars").write_text(json.dumps({k: plain[k] for k in (
        "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_PYTHON_INTERPRETER", "ANSIBLE_NOCOLOR", "ANSIBLE_FORCE_COLOR", "PATH")}))
    (env_dir / "settings").write_text(json.dumps({"idle_timeout": 0, "job_timeout": 400, "pexpect_timeout": 5}))
    return pdd


def credential_files(pdd: Path, stack) -> list:
    """Each credential type's extra_vars injector (extensions/awx/awx_objects.yml) rendered with
    a credential's inputs, one file each, as AWX writes them."""
    env = stack.env
    loader = type("Loader", (yaml.SafeLoader,), {})
    loader.add_constructor("!unsafe", lambda ld, node: ld.construct_scalar(node))
    types = yaml.load((REPO / "extensions" / "awx" / "awx_objects.yml").read_text(),  # noqa: S506 - SafeLoader
                      Loader=loader)["taylordash_awx_credential_types"]
    inputs = {
        "api": {"api_key": env["TD_API_KEY"]},
        "admin": {"username": env["TD_ADMIN_USERNAME"], "password": env["TD_ADMIN_PASSWORD"]},
        # Mail and webhook off (no recipients, no URL): their secrets are there, unused.
        "smtp": {"host": "127.0.0.1", "port": "2525", "username": "robot", "password": SMTP_PASSWORD},
        "webhook": {"url": "", "token": WEBHOOK_TOKEN},
    }
    args = []
    for ctype in types:
        given = inputs[ctype["key"]]
        values = {var: re.sub(r"{{\s*(\w+)\s*}}", lambda m: given.get(m.group(1), ""), template)
                  for var, template in ctype["injectors"]["extra_vars"].items()}
        path = pdd / "env" / f"tmp{ctype['key']}cred"
        path.write_text(yaml.dump(values, Dumper=_UnsafeDumper))
        path.chmod(stat.S_IRUSR)
        args += ["-e", f"@{path}"]
    return args


def run(pdd: Path, stack, playbook: str, ident: str):
    return ansible_runner.run(private_data_dir=str(pdd), playbook=playbook, ident=ident,
                              cmdline=" ".join(credential_files(pdd, stack)), quiet=True)


def secrets_of(stack) -> list:
    env = stack.env
    return [env["TD_API_KEY"], env["TD_ADMIN_PASSWORD"], env["TD_DB_PASSWORD"], SMTP_PASSWORD, WEBHOOK_TOKEN]


def artifacts(pdd: Path, ident: str) -> dict:
    """What AWX stores as the job's artifacts: the stats event's artifact_data."""
    events = [json.loads(p.read_text()) for p in (pdd / "artifacts" / ident / "job_events").glob("*.json")]
    (stats,) = [e for e in events if e.get("event") == "playbook_on_stats"]
    return stats["event_data"].get("artifact_data", {})


def assert_no_secret(pdd: Path, ident: str, stack):
    files = [p for p in (pdd / "artifacts" / ident).rglob("*") if p.is_file()]
    assert len(list((pdd / "artifacts" / ident / "job_events").iterdir())) > 20
    for path in files:
        text = path.read_text(errors="replace")
        for secret in secrets_of(stack):
            assert secret not in text, f"a secret is in {path.relative_to(pdd)}"


@pytest.fixture(scope="module")
def stack(module_stack_factory):
    """A stack at v1 after a bad v2 deploy (5xx on half of the requests)."""
    stack = module_stack_factory("awx")
    stack.deploy("v2", "errors", "--error-rate", "0.5")
    return stack


SURVEY = {"stack_target_tag": "previous", "report_severity": "High", "report_description": "v2 returns 5xx"}


def test_rollback_job_and_the_workflow_handoff(stack, tmp_path):
    pdd = private_data_dir(tmp_path / "job", stack, SURVEY)
    result = run(pdd, stack, "rollback-immediate.yml", "rollback")
    stdout = (pdd / "artifacts" / "rollback" / "stdout").read_text()
    assert (result.status, result.rc) == ("successful", 0), stdout[-4000:]
    assert stack.container_image_id("backend") == stack.image_id("tdref_backend:v1")
    assert_no_secret(pdd, "rollback", stack)

    data = artifacts(pdd, "rollback")
    assert data["rollback_outcome"] == "SUCCEEDED" and data["rollback_type"] == "immediate"
    assert float(data["rollback_pass_rate"]) >= 89
    report = Path(data["rollback_report_path"])
    assert report.is_file() and report.is_relative_to(stack.dir)
    text = report.read_text()
    assert data["rollback_incident_id"] in text and "High" in text
    assert "oncall-anna (AWX job 4242)" in text  # the operator, from AWX's own extra variables

    # The next node of a workflow gets the artifacts as extra variables: the escalation node pages
    # with them (emergency.log here) and fails, so the workflow ends failed.
    pdd2 = private_data_dir(tmp_path / "escalate", stack, {}, extra=data)
    result = run(pdd2, stack, "escalate.yml", "escalate")
    assert result.status == "failed"
    line = (stack.dir / "emergency.log").read_text().splitlines()[-1]
    assert f"incident={data['rollback_incident_id']}" in line and str(report) in line
    assert_no_secret(pdd2, "escalate", stack)


def test_failed_rollback_job_still_carries_the_report(stack, tmp_path):
    pdd = private_data_dir(tmp_path / "job", stack, dict(SURVEY, stack_target_tag="no-such-tag"))
    result = run(pdd, stack, "rollback-immediate.yml", "failed")
    assert (result.status, result.rc) == ("failed", 2), (pdd / "artifacts" / "failed" / "stdout").read_text()[-4000:]
    data = artifacts(pdd, "failed")
    assert data["rollback_outcome"] == "FAILED"
    assert Path(data["rollback_report_path"]).is_file()
    assert_no_secret(pdd, "failed", stack)
