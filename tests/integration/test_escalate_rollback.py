"""End to end: rollback_immediate on a reference stack whose :previous build is itself broken
(never healthy), run by ansible-runner the way AWX runs a job template, with the SMTP password and
the webhook token only in the extra vars. The rollback fails, the escalation reaches a real SMTP
server and a real incident API, the report records it, and no secret appears in the job events,
the output or the stack directory."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from conftest import REPO, VENV_BIN, ansible_env, write_inventory

try:  # tests/integration as a package, or as a plain directory on sys.path
    from .receivers import HTTPReceiver, SMTPReceiver
except ImportError:
    from receivers import HTTPReceiver, SMTPReceiver

pytestmark = pytest.mark.integration

PASSWORD = "e2e-smtp-Pw-91c2f0aa"
TOKEN = "e2e-hook-Tk-5d7e3b21"


@pytest.fixture
def broken_previous(stack_factory):
    """A stack whose :previous is the v2 build that never answers healthy, and :latest the good v1."""
    stack = stack_factory("esc", version=None)
    stack.ctl("up", "--dir", str(stack.dir), "--version", "v2", "--wait", "0")
    stack.ctl("fault", "--dir", str(stack.dir), "unhealthy")
    stack.deploy("v1", "unhealthy")  # .env keeps the fault; the good build ignores it
    return stack


def test_failed_rollback_escalates_to_mail_and_webhook(broken_previous, tmp_path):
    stack = broken_previous
    with SMTPReceiver(login=("robot", PASSWORD), starttls=True) as smtp, HTTPReceiver() as hook:
        pdd = tmp_path / "pdd"
        shutil.copytree(REPO / "examples" / "project", pdd / "project", ignore=shutil.ignore_patterns("collections"))
        (pdd / "inventory").mkdir(parents=True)
        shutil.copy(write_inventory(tmp_path), pdd / "inventory" / "hosts.json")
        (pdd / "env").mkdir()
        env = stack.env
        extra = stack.stack_vars(
            validate_perf_samples=3, validate_perf_warmup=0, immediate_health_timeout=3,
            vault_stack_api_key=env["TD_API_KEY"], vault_stack_admin_password=env["TD_ADMIN_PASSWORD"],
            escalate_mail_to=["oncall@example.com"], escalate_mail_host="127.0.0.1", escalate_mail_port=smtp.port,
            escalate_mail_username="robot", escalate_mail_password=PASSWORD, escalate_mail_timeout=10,
            escalate_webhook_url=hook.url, escalate_webhook_token=TOKEN)
        (pdd / "env" / "extravars").write_text(json.dumps(extra))
        (pdd / "env" / "extravars").chmod(0o600)
        plain = ansible_env()
        (pdd / "env" / "envvars").write_text(json.dumps({k: plain[k] for k in (
            "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_PYTHON_INTERPRETER", "ANSIBLE_NOCOLOR", "ANSIBLE_FORCE_COLOR")}))
        proc = subprocess.run([str(VENV_BIN / "ansible-runner"), "run", str(pdd), "-p", "rollback-immediate.yml",
                               "--ident", "escalated"], capture_output=True, text=True, timeout=400,
                              env=ansible_env(), check=False)
        (mail,) = smtp.wait_for(1)
        (call,) = hook.wait_for(1)

    artifacts = pdd / "artifacts" / "escalated"
    assert proc.returncode != 0, proc.stdout[-4000:]
    assert (artifacts / "status").read_text() == "failed"
    assert "Rollback failed: Wait until each rolled-back service answers healthy: " in proc.stdout
    assert not (stack.dir / ".rollback.lock").exists()

    (report,) = sorted(stack.dir.glob("rollbacks/*/rollback_report_*.json"))
    data = json.loads(report.read_text())
    assert data["outcome"] == "FAILED" and data["type"] == "immediate"
    cause = data["failure"]
    assert cause.startswith("Wait until each rolled-back service answers healthy: ")

    assert smtp.logins == ["robot"] and smtp.tls == [True]
    assert mail["Subject"] == f"EMERGENCY: Rollback Failed: immediate rollback of {stack.name} on localhost"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert cause in text and data["files"]["report"] in text and "Step 1: retag images" in text

    assert call["headers"]["authorization"] == f"Bearer {TOKEN}"
    body = call["json"]
    assert body["failure"] == cause and body["severity"] == "critical" and body["stack"]["compose_project"] == stack.name
    assert body["report"] == data["files"]["report"] and body["incident_id"] == data["incident_id"]

    esc = data["escalation"]
    assert (esc["channels"]["mail"]["status"], esc["channels"]["webhook"]["status"]) == ("sent", "sent")
    assert "## Escalation" in report.with_suffix(".md").read_text()
    assert "escalation type=immediate mail=sent webhook=sent" in (stack.dir / "rollback_history.log").read_text()
    assert f"incident={data['incident_id']}" in (stack.dir / "emergency.log").read_text()

    # The secrets reached the receivers, and nothing else: not the job events, the output, the stack directory.
    seen = [proc.stdout, proc.stderr]
    seen += [p.read_text(errors="replace") for p in artifacts.rglob("*") if p.is_file()]
    seen += [p.read_text(errors="replace") for p in stack.dir.rglob("*") if p.is_file() and p.stat().st_size < 10**6]
    assert len(list((artifacts / "job_events").iterdir())) > 20
    for text in seen:
        assert PASSWORD not in text and TOKEN not in text
