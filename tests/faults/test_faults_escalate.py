"""Fault matrix, escalation of a failed rollback (playbooks/rollback_immediate.yml with the
escalate role at the end of its `always`) on the shared reference stack. The rollback fails in its
preflight (no :previous image), so it changes nothing and the escalation's receivers are the ones
at fault: real SMTP and HTTP receivers (tests/integration/receivers.py) that are down, hang, fail
or refuse. The cases run side by side, each with its own lock, report directory and incident
state. Each test's docstring is its row of the matrix."""
from __future__ import annotations

import concurrent.futures
import json
import time
from types import SimpleNamespace

import pytest

from .conftest import assert_lock_free, assert_report_names_first_cause, report_of

try:
    from ..integration.receivers import HTTPReceiver, SilentListener, SMTPReceiver, free_port, task_seconds
except ImportError:  # tests/ on sys.path as plain directories
    from integration.receivers import HTTPReceiver, SilentListener, SMTPReceiver, free_port, task_seconds

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PLAYBOOK = "rollback_immediate.yml"
CAUSE = r"not found locally"
MAIL = {"escalate_mail_to": ["oncall@example.com"], "escalate_mail_host": "127.0.0.1",
        "escalate_mail_secure": "none", "escalate_mail_timeout": 3}


def _cases(receivers):
    """name -> escalation settings, given the started receivers."""
    smtp, hook, silent, slow, failing, refusing = receivers
    dead_mail, dead_hook = free_port(), free_port()
    return {
        "both-down": dict(MAIL, escalate_mail_port=dead_mail, escalate_webhook_url=f"http://127.0.0.1:{dead_hook}/x",
                          escalate_webhook_timeout=2, escalate_webhook_deadline=4, escalate_webhook_retry_delay=1),
        "hanging": dict(MAIL, escalate_mail_port=silent.port, escalate_webhook_url=slow.url,
                        escalate_webhook_timeout=3, escalate_webhook_deadline=3),
        "server-error": dict(escalate_webhook_url=failing.url, escalate_webhook_timeout=2,
                             escalate_webhook_deadline=15, escalate_webhook_retry_delay=1),
        "token-refused": dict(MAIL, escalate_mail_port=smtp.port, escalate_webhook_url=refusing.url,
                              escalate_webhook_retry_delay=0),
        "state-corrupt": dict(MAIL, escalate_mail_port=smtp.port, escalate_webhook_url=hook.url),
    }


@pytest.fixture(scope="module")
def runs(fault_stack, tmp_path_factory):
    fs = fault_stack
    fs.reset(running="v1", previous=None)
    before = fs.snapshot()
    with SMTPReceiver() as smtp, HTTPReceiver() as hook, SilentListener() as silent, \
            HTTPReceiver(delay=60) as slow, HTTPReceiver(statuses=[500]) as failing, \
            HTTPReceiver(statuses=[401]) as refusing:
        cases = _cases((smtp, hook, silent, slow, failing, refusing))

        def one(name):
            case = fs.case_dir("escalate-" + name)
            state = case / "escalate_state.json"
            if name == "state-corrupt":
                state.write_text("{ not json \x00")
            lock = fs.dir / f".rollback-esc-{name}.lock"
            started = time.monotonic()
            # The JSON callback gives each task's start and end: the bound of a channel is measured
            # on its own task, not on a whole run slowed by the machine's load.
            proc = fs.run(PLAYBOOK, case, env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
                          stack_lock_path=str(lock), escalate_state_file=str(state), **cases[name])
            return name, SimpleNamespace(proc=proc, case=case, lock=lock, state=state,
                                         seconds=time.monotonic() - started)

        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
            done = dict(pool.map(one, cases))
        receivers = SimpleNamespace(smtp=smtp, hook=hook, silent=silent, slow=slow, failing=failing,
                                    refusing=refusing, mails=list(smtp.messages), calls=list(hook.requests),
                                    failing_calls=list(failing.requests), refusing_calls=list(refusing.requests))
    return SimpleNamespace(runs=done, before=before, after=fs.snapshot(), receivers=receivers)


def _failed_as_before(fs, runs, name):
    """The rollback's own result stands: the play fails naming the missing image, nothing changed,
    the lock is free, the report names the first cause. Returns the run and its escalation record."""
    run = runs.runs[name]
    assert run.proc.returncode != 0, run.proc.stdout[-3000:]
    assert "Rollback failed: " in run.proc.stdout and "not found locally" in run.proc.stdout
    assert runs.after == runs.before, "tags, containers or files changed"
    assert_lock_free(fs, run.lock)
    assert_report_names_first_cause(run.case, CAUSE)
    data, md = report_of(run.case)
    assert "## Escalation" in md and data["escalation"]["summary"] in md
    history = (run.case / "rollback_history.log").read_text().splitlines()
    assert "outcome=FAILED" in history[0] and " escalation type=immediate " in history[1]
    return run, data["escalation"]


def test_smtp_and_webhook_down(fault_stack, runs):
    """Fault: SMTP server and incident API down (nothing listens on their ports) -> Outcome: the
    rollback's failure stands and is the play's failure; the report, its JSON and the history log
    say "mail failed: connection refused" and "webhook failed: connection refused"; emergency.log
    written; nothing remembered as paged, so a retry pages; bounded by the webhook deadline."""
    run, esc = _failed_as_before(fault_stack, runs, "both-down")
    assert esc["summary"].startswith("escalation: mail failed: connection refused; webhook failed: connection refused")
    assert "mail=failed webhook=failed" in (run.case / "emergency.log").read_text()
    assert not run.state.exists()
    assert run.seconds < 120


def test_receivers_hang(fault_stack, runs):
    """Fault: SMTP server accepts and never answers, incident API answers after 60 s -> Outcome:
    each channel is cut at its timeout (3 s): the report says "no answer within 3 s" for both; the
    mail task and the webhook task each end within 3 s plus the task's own overhead (measured; the
    webhook task's backstop is 8 s),
    far below the receivers' 60 s; the rollback's failure stands."""
    run, esc = _failed_as_before(fault_stack, runs, "hanging")
    assert esc["channels"]["mail"]["detail"].startswith("no answer within 3 s")
    assert esc["channels"]["webhook"]["detail"].startswith("no answer within 3 s")
    assert runs.receivers.silent.accepted >= 1
    mail = task_seconds(run.proc.stdout, "Mail the on-call recipients")
    webhook = task_seconds(run.proc.stdout, "Post the incident to the webhook")
    assert 2.5 < mail < 10 and 2.5 < webhook < 15, (mail, webhook)


def test_webhook_server_error(fault_stack, runs):
    """Fault: incident API answers 500 every time -> Outcome: retried until a next attempt would
    not end within escalate_webhook_deadline (15 s); recorded as "webhook failed: HTTP 500 Internal
    Server Error" with the number of attempts; the rollback's failure stands."""
    run, esc = _failed_as_before(fault_stack, runs, "server-error")
    webhook = esc["channels"]["webhook"]
    assert webhook["status"] == "failed" and webhook["detail"] == "HTTP 500 Internal Server Error"
    assert webhook["attempts"] >= 2 and len(runs.receivers.failing_calls) == webhook["attempts"]
    calls = runs.receivers.failing_calls
    assert calls[-1]["time"] - calls[0]["time"] < 15
    assert task_seconds(run.proc.stdout, "Post the incident to the webhook") < 15 + 5


def test_webhook_token_refused(fault_stack, runs):
    """Fault: incident API refuses the token (401) -> Outcome: not retried (one call); recorded as
    "webhook failed: HTTP 401 Unauthorized"; the mail is still sent (channels are independent) and
    remembered for dedup; the rollback's failure stands."""
    run, esc = _failed_as_before(fault_stack, runs, "token-refused")
    assert esc["channels"]["webhook"] == {"status": "failed", "detail": "HTTP 401 Unauthorized", "attempts": 1,
                                          "format": "generic"}
    assert esc["channels"]["mail"]["status"] == "sent" and len(runs.receivers.refusing_calls) == 1
    state = json.loads(run.state.read_text())
    assert list(state["incidents"][esc["dedup_key"]]["channels"]) == ["mail"]


def test_dedup_state_corrupt(fault_stack, runs):
    """Fault: incident state file corrupt (not JSON) -> Outcome: read as empty: the failure pages
    (mail and webhook delivered) and the file is rewritten as valid state with this incident."""
    run, esc = _failed_as_before(fault_stack, runs, "state-corrupt")
    assert esc["channels"]["mail"]["status"] == "sent" and esc["channels"]["webhook"]["status"] == "sent"
    state = json.loads(run.state.read_text())
    assert state["incidents"][esc["dedup_key"]]["incident_id"] == esc["incident_id"]
    assert any(c["json"]["dedup_key"] == esc["dedup_key"] for c in runs.receivers.calls)
