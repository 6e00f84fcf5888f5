"""The escalate role through tests/integration/escalate_play.yml (a rollback playbook's `always`
section without the rollback) against real receivers: an SMTP server (aiosmtpd, STARTTLS and a
login), an HTTP incident API, a listener that never answers, and ports where nothing listens."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import run_playbook
try:
    from .receivers import HTTPReceiver, SilentListener, SMTPReceiver, free_port, task_seconds
except ImportError:
    from receivers import HTTPReceiver, SilentListener, SMTPReceiver, free_port, task_seconds

pytestmark = pytest.mark.integration

PLAY = Path(__file__).with_name("escalate_play.yml")
PASSWORD = "smtp-Pa55-7f3e9c1d"
TOKEN = "hook-T0ken-4b8a2e6f"
USER = "oncall-robot"
CAUSE = "Move the images back: backend did not answer healthy within 30.2 s"


def run(tmp_path: Path, failure: str | None = CAUSE, check: bool = False, verbosity: int = 0,
        secrets: dict | None = None, json_output: bool = False, **settings) -> tuple:
    """Run the play on a stack directory of its own (tmp_path/stack); secrets go in a 0600 vars file."""
    stack_dir = tmp_path / "stack"
    stack_dir.mkdir(exist_ok=True)
    extra = {"stack_project_dir": str(stack_dir), "stack_compose_project": "escdemo",
             "stack_compose_files": ["docker-compose.yml"], "escalate_test_failure": failure or ""}
    extra.update(settings)
    vars_files = []
    if secrets:
        path = tmp_path / "secrets.json"
        path.write_text(json.dumps(secrets))
        path.chmod(0o600)
        vars_files.append(path)
    started = time.monotonic()
    env = {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"} if json_output else None
    proc = run_playbook(PLAY, extra_vars=extra, check=check, verbosity=verbosity, vars_files=vars_files, env=env,
                        timeout=300)
    return proc, stack_dir, time.monotonic() - started


def mail_settings(smtp: SMTPReceiver, **more) -> dict:
    values = {"escalate_mail_to": ["oncall@example.com"], "escalate_mail_cc": ["lead@example.com"],
              "escalate_mail_host": "127.0.0.1", "escalate_mail_port": smtp.port,
              "escalate_mail_secure": "starttls" if smtp.starttls else "none", "escalate_mail_timeout": 5}
    values.update(more)
    return values


def report_json(stack_dir: Path) -> dict:
    (path,) = sorted(stack_dir.glob("rollbacks/*/rollback_report_*.json"))
    return json.loads(path.read_text())


def report_md(stack_dir: Path) -> str:
    (path,) = sorted(stack_dir.glob("rollbacks/*/rollback_report_*.md"))
    return path.read_text()


def body_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def test_mail_and_webhook_delivered(tmp_path):
    """A failed rollback: one mail over STARTTLS with a login, one call of the incident API with
    the token; both named in the report, the JSON, the history log and emergency.log. The play
    still fails with the rollback's own cause."""
    with SMTPReceiver(login=(USER, PASSWORD), starttls=True) as smtp, HTTPReceiver() as hook:
        proc, stack_dir, _written = run(tmp_path, secrets={"escalate_mail_password": PASSWORD, "escalate_webhook_token": TOKEN},
                                        escalate_mail_username=USER, escalate_webhook_url=hook.url,
                                        **mail_settings(smtp))
        (mail,) = smtp.wait_for(1)
        (call,) = hook.wait_for(1)
    assert proc.returncode != 0
    assert f"Rollback failed: Fail the way the rollback failed: {CAUSE}" in proc.stdout

    assert smtp.logins == [USER] and smtp.tls == [True]
    assert mail["Subject"] == "EMERGENCY: Rollback Failed: immediate rollback of escdemo on localhost"
    assert mail["To"] == "oncall@example.com" and mail["Cc"] == "lead@example.com"
    assert sorted(smtp.envelopes[0][1]) == ["lead@example.com", "oncall@example.com"]
    data = report_json(stack_dir)
    text = body_of(mail)
    assert "EMERGENCY: Rollback failed. Manual intervention required" in text
    assert CAUSE in text and "Step 1: move images back - failed after 1.5 s" in text
    assert f"Report: {data['files']['report']}" in text
    assert mail["X-TaylorDash-Incident"] == data["incident_id"]

    assert call["headers"]["authorization"] == f"Bearer {TOKEN}"
    body = call["json"]
    assert body["severity"] == "critical" and body["title"] == mail["Subject"]
    assert CAUSE in body["failure"] and CAUSE in body["description"]
    assert body["stack"] == {"compose_project": "escdemo", "project_dir": str(stack_dir)}
    assert body["host"] == "localhost" and body["report"] == data["files"]["report"]
    assert body["incident_id"] == data["incident_id"] and body["outcome"] == "FAILED"

    esc = data["escalation"]
    assert esc["channels"]["mail"]["status"] == "sent" and esc["channels"]["webhook"]["status"] == "sent"
    assert esc["channels"]["emergency_log"]["status"] == "written" and esc["escalated"] is True
    md = report_md(stack_dir)
    assert "## Escalation" in md and "escalation: mail sent to oncall@example.com, lead@example.com" in md
    history = (stack_dir / "rollback_history.log").read_text().splitlines()
    assert len(history) == 2 and "outcome=FAILED" in history[0]
    assert f"{data['incident_id']} escalation type=immediate mail=sent webhook=sent emergency_log=written" in history[1]
    (line,) = (stack_dir / "emergency.log").read_text().splitlines()
    assert "EMERGENCY - immediate rollback failed, system may be unstable:" in line
    assert f"incident={data['incident_id']}" in line and "mail=sent webhook=sent" in line and CAUSE in line
    assert json.loads((Path(data["files"]["archive_dir"]) / "escalation" / "escalation.json").read_text()) == esc


def test_both_channels_down(tmp_path):
    """Nothing listens on the SMTP port or the webhook's: the play ends with the rollback's own
    failure, quickly, and the report says what failed."""
    proc, stack_dir, seconds = run(
        tmp_path, escalate_mail_to=["oncall@example.com"], escalate_mail_host="127.0.0.1",
        escalate_mail_port=free_port(), escalate_mail_secure="none", escalate_mail_timeout=5,
        escalate_webhook_url=f"http://127.0.0.1:{free_port()}/incidents", escalate_webhook_timeout=2,
        escalate_webhook_deadline=12, escalate_webhook_retry_delay=1)
    assert proc.returncode != 0
    assert f"Rollback failed: Fail the way the rollback failed: {CAUSE}" in proc.stdout
    assert "escalation: mail failed: connection refused; webhook failed: connection refused; emergency.log written" in proc.stdout
    esc = report_json(stack_dir)["escalation"]
    assert esc["channels"]["mail"] == {"status": "failed", "detail": "connection refused"}
    assert esc["channels"]["webhook"]["status"] == "failed" and esc["channels"]["webhook"]["attempts"] >= 2
    assert esc["escalated"] is False
    assert "| Mail | failed | connection refused |" in report_md(stack_dir)
    assert "mail=failed webhook=failed" in (stack_dir / "rollback_history.log").read_text()
    assert "mail=failed webhook=failed" in (stack_dir / "emergency.log").read_text()
    # Nothing was paged: a retry must try again, so no incident is remembered.
    assert not (stack_dir / ".escalate_state.json").exists()
    assert seconds < 60


def test_channels_down_after_a_successful_rollback(tmp_path):
    """A successful rollback with escalate_on_success and both receivers down: the play succeeds,
    the report says the notification failed."""
    proc, stack_dir, _written = run(
        tmp_path, failure=None, escalate_on_success=True, escalate_mail_to=["oncall@example.com"],
        escalate_mail_host="127.0.0.1", escalate_mail_port=free_port(), escalate_mail_secure="none",
        escalate_webhook_url=f"http://127.0.0.1:{free_port()}/incidents", escalate_webhook_deadline=2,
        escalate_webhook_timeout=2)
    assert proc.returncode == 0, proc.stdout[-3000:]
    data = report_json(stack_dir)
    assert data["outcome"] == "SUCCEEDED"
    assert data["escalation"]["summary"].startswith("escalation: mail failed: connection refused; webhook failed:")
    assert "NOTICE - immediate rollback SUCCEEDED" in (stack_dir / "emergency.log").read_text()


def test_slow_receivers_are_cut_at_their_timeout(tmp_path):
    """An SMTP server that accepts and never answers, an incident API that answers after 60 s:
    each channel gives up at its timeout (3 s; measured on its own task, with room for a loaded
    machine), and the whole play ends far below the receivers' delay."""
    with SilentListener() as smtp, HTTPReceiver(delay=60) as hook:
        proc, stack_dir, seconds = run(
            tmp_path, json_output=True, escalate_mail_to=["oncall@example.com"], escalate_mail_host="127.0.0.1",
            escalate_mail_port=smtp.port, escalate_mail_secure="none", escalate_mail_timeout=3,
            escalate_webhook_url=hook.url, escalate_webhook_timeout=3, escalate_webhook_deadline=4,
            escalate_webhook_retry_delay=1)
        assert smtp.accepted >= 1 and len(hook.requests) == 1
    assert proc.returncode != 0 and f"Rollback failed: Fail the way the rollback failed: {CAUSE}" in proc.stdout
    esc = report_json(stack_dir)["escalation"]
    assert esc["channels"]["mail"]["status"] == "failed"
    assert esc["channels"]["mail"]["detail"].startswith("no answer within 3 s")
    assert esc["channels"]["webhook"]["status"] == "failed"
    assert esc["channels"]["webhook"]["detail"].startswith("no answer within 3 s")
    mail = task_seconds(proc.stdout, "Mail the on-call recipients")
    webhook = task_seconds(proc.stdout, "Post the incident to the webhook")
    # The mail task stops at 3 s; the webhook's module at its 3 s (the task's backstop is 8 s).
    assert 2.5 < mail < 10 and 2.5 < webhook < 15, (mail, webhook)
    assert seconds < 60, seconds


def test_webhook_retries_within_its_deadline(tmp_path):
    """503, 503, then 202: delivered on the third attempt. A 400 is final: one attempt."""
    with HTTPReceiver(statuses=[503, 503, 202]) as hook:
        _proc, stack_dir, _written = run(tmp_path, escalate_webhook_url=hook.url, escalate_webhook_retry_delay=0,
                                         escalate_webhook_deadline=20, escalate_webhook_timeout=5)
        assert len(hook.wait_for(3)) == 3
    webhook = report_json(stack_dir)["escalation"]["channels"]["webhook"]
    assert webhook["status"] == "sent" and webhook["attempts"] == 3

    other = tmp_path / "second"
    other.mkdir()
    with HTTPReceiver(statuses=[400]) as hook:
        _proc, stack_dir, _written = run(other, escalate_webhook_url=hook.url, escalate_webhook_retry_delay=0)
        assert len(hook.requests) == 1
    webhook = report_json(stack_dir)["escalation"]["channels"]["webhook"]
    assert webhook["status"] == "failed" and webhook["detail"] == "HTTP 400 Bad Request"


def test_secrets_never_shown(tmp_path):
    """The SMTP password and the webhook token reach the receivers but appear nowhere else: not in
    the output at -vvv, not in the report, its JSON, the history, emergency.log or the state file -
    neither when delivered nor when the receivers are down."""
    secrets = {"escalate_mail_password": PASSWORD, "escalate_webhook_token": TOKEN}
    with SMTPReceiver(login=(USER, PASSWORD), starttls=True) as smtp, HTTPReceiver() as hook:
        proc, stack_dir, _written = run(tmp_path, verbosity=3, secrets=secrets, escalate_mail_username=USER,
                                        escalate_webhook_url=hook.url, **mail_settings(smtp))
        smtp.wait_for(1)
        hook.wait_for(1)
    assert smtp.logins == [USER]
    down = tmp_path / "down"
    down.mkdir()
    proc_down, down_dir, _written = run(down, verbosity=3, secrets=secrets, escalate_mail_username=USER,
                                        escalate_mail_to=["oncall@example.com"], escalate_mail_host="127.0.0.1",
                                        escalate_mail_port=free_port(), escalate_webhook_url=f"http://127.0.0.1:{free_port()}/x",
                                        escalate_webhook_deadline=2, escalate_webhook_timeout=2)
    for text in (proc.stdout, proc.stderr, proc_down.stdout, proc_down.stderr):
        assert PASSWORD not in text and TOKEN not in text
    files = [p for d in (stack_dir, down_dir) for p in d.rglob("*") if p.is_file()]
    assert len(files) >= 10
    for path in files:
        content = path.read_text(errors="replace")
        assert PASSWORD not in content and TOKEN not in content, path


def test_a_retried_play_does_not_page_twice(tmp_path):
    """The same failure again within escalate_dedup_window (other durations in the message): no
    second mail or webhook call; the report names the first incident; emergency.log gets its
    line. Another cause is another incident; escalate_dedup_window=0 pages every time."""
    with SMTPReceiver() as smtp, HTTPReceiver() as hook:
        settings = dict(mail_settings(smtp), escalate_webhook_url=hook.url)
        run(tmp_path, **settings)
        smtp.wait_for(1)
        hook.wait_for(1)
        first = report_json(tmp_path / "stack")["incident_id"]
        for old in (tmp_path / "stack" / "rollbacks").iterdir():
            old.rename(old.with_name("first_" + old.name))
        proc, stack_dir, _written = run(tmp_path, failure=CAUSE.replace("30.2", "31.7"), **settings)
        assert len(smtp.messages) == 1 and len(hook.requests) == 1
        assert proc.returncode != 0
        (second,) = list((stack_dir / "rollbacks").glob("2*/rollback_report_*.json"))
        esc = json.loads(second.read_text())["escalation"]
        assert esc["duplicate_of"] == first
        assert esc["channels"]["mail"]["status"] == "duplicate"
        assert esc["channels"]["mail"]["detail"].startswith(f"already paged for incident {first}")
        assert len((stack_dir / "emergency.log").read_text().splitlines()) == 2

        run(tmp_path, failure="Release the rollback lock: permission denied", **settings)
        assert len(smtp.wait_for(2)) == 2 and len(hook.wait_for(2)) == 2
        run(tmp_path, escalate_dedup_window=0, **settings)
        assert len(smtp.wait_for(3)) == 3 and len(hook.wait_for(3)) == 3


def test_pagerduty_events_v2_body(tmp_path):
    """escalate_webhook_format=pagerduty: an Events v2 trigger with the token as routing_key, the
    incident key as dedup_key, and the payload fields PagerDuty requires; no Authorization header."""
    with HTTPReceiver(statuses=[202]) as hook:
        _proc, stack_dir, _written = run(tmp_path, secrets={"escalate_webhook_token": TOKEN}, escalate_webhook_url=hook.url,
                                         escalate_webhook_format="pagerduty", escalate_severity="error")
        (call,) = hook.wait_for(1)
    body = call["json"]
    data = report_json(stack_dir)
    assert "authorization" not in call["headers"]
    assert body["routing_key"] == TOKEN and body["event_action"] == "trigger"
    assert body["dedup_key"] == data["escalation"]["dedup_key"] and len(body["dedup_key"]) <= 255
    payload = body["payload"]
    assert set(payload) >= {"summary", "source", "severity"}
    assert payload["severity"] == "error" and payload["source"] == "localhost"
    assert payload["summary"].startswith("EMERGENCY: Rollback Failed: immediate rollback of escdemo") and len(payload["summary"]) <= 1024
    assert CAUSE in payload["summary"]
    assert payload["component"] == "escdemo" and payload["custom_details"]["report"] == data["files"]["report"]
    assert payload["custom_details"]["incident_id"] == data["incident_id"]
    assert data["escalation"]["channels"]["webhook"]["format"] == "pagerduty"


def test_success_is_quiet_unless_asked(tmp_path):
    """A successful rollback sends nothing by default; with escalate_on_success an info mail."""
    with SMTPReceiver() as smtp, HTTPReceiver() as hook:
        proc, stack_dir, _written = run(tmp_path, failure=None, escalate_webhook_url=hook.url, **mail_settings(smtp))
        assert proc.returncode == 0
        assert "escalation: nothing to escalate" in proc.stdout
        assert not smtp.messages and not hook.requests and not (stack_dir / "emergency.log").exists()
        assert "escalation" not in report_json(stack_dir)

        other = tmp_path / "notify"
        other.mkdir()
        proc, stack_dir, _written = run(other, failure=None, escalate_on_success=True, escalate_webhook_url=hook.url,
                                        **mail_settings(smtp))
        (mail,) = smtp.wait_for(1)
        (call,) = hook.wait_for(1)
    assert proc.returncode == 0
    assert mail["Subject"] == "Rollback Succeeded: immediate rollback of escdemo on localhost"
    assert call["json"]["severity"] == "info" and call["json"]["failure"] is None


def test_check_mode_sends_and_writes_nothing(tmp_path):
    """--check: no mail, no webhook call, no file; the output says what would be sent."""
    with SMTPReceiver() as smtp, HTTPReceiver() as hook:
        proc, stack_dir, _written = run(tmp_path, check=True, escalate_webhook_url=hook.url, **mail_settings(smtp))
        assert not smtp.messages and not hook.requests
    assert "mail would be sent (check mode); webhook would be sent (check mode)" in proc.stdout
    assert list(stack_dir.iterdir()) == []


@pytest.mark.parametrize("settings, expected", [
    ({"escalate_mail_to": ["oncall"], "escalate_mail_port": 70000},
     ["escalate_mail_port=70000 - must be a port number from 1 to 65535",
      "escalate_mail_to=['oncall'] - must be mail addresses"]),
    ({"escalate_webhook_url": "ftp://example.com/x", "escalate_webhook_timeout": 20, "escalate_webhook_deadline": 5},
     ["escalate_webhook_url=ftp://example.com/x - ", "escalate_webhook_deadline=5 - must be a whole number at least 20"]),
    ({"escalate_webhook_url": "http://127.0.0.1:9/v2/enqueue", "escalate_webhook_format": "pagerduty"},
     ["escalate_webhook_token is empty - PagerDuty Events v2 needs the integration's routing key"]),
    ({"escalate_mail_to": ["a@example.com"], "escalate_mail_password": PASSWORD},
     ["escalate_mail_password is set but escalate_mail_username is empty"]),
    ({"escalate_mail_secure": "tls"}, ["escalate_mail_secure", "starttls, ssl, none"]),
])
def test_broken_settings_stop_the_run_before_it_starts(tmp_path, settings, expected):
    """The preflight names only the broken rules (a secret by its name only); nothing is written."""
    proc, stack_dir, _written = run(tmp_path, **settings)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    for text in expected:
        assert text in out, out[-3000:]
    assert PASSWORD not in out
    assert "escalate_mail_host" not in out.split("Invalid escalation settings", 1)[-1].split("\n")[0]
    assert list(stack_dir.iterdir()) == []
