"""escalation_reason and escalation_state, on what ansible-core 2.19, community.general.mail and
ansible.builtin.uri really returned against dead, hanging and failing receivers."""
from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.taylordash.rollback.plugins.filter.escalation_reason import escalation_reason
from ansible_collections.taylordash.rollback.plugins.filter.escalation_state import FORMAT, escalation_state


@pytest.mark.parametrize("result, timeout, expected", [
    # community.general.mail, nothing listening (the module's exception, as 2.19 reports it)
    ({"failed": True, "msg": "Task failed: Module failed: [Errno 111] Connection refused"}, 20, "connection refused"),
    # a task stopped by its `timeout` keyword
    ({"failed": True, "msg": "Task failed: Timed out after 2 second(s).", "timedout": {"period": 2}}, None,
     "no answer within 2 s (the task was stopped)"),
    ({"failed": True, "msg": "Task failed: Timed out after 8 second(s).", "timedout": {"period": 8}}, 3,
     "no answer within 3 s (the task was stopped)"),
    ({"failed": True, "msg": "Task failed: Timed out after 3 second(s)."}, 3, "no answer within 3 s (the task was stopped)"),
    # ansible.builtin.uri
    ({"failed": True, "status": -1, "msg": "Status code was -1 and not [200]: Request failed: "
      "<urlopen error [Errno 111] Connection refused>"}, 10, "connection refused"),
    ({"failed": True, "status": -1, "msg": "Status code was -1 and not [200]: Connection failure: timed out"}, 2,
     "no answer within 2 s (timed out)"),
    ({"failed": True, "status": 503, "msg": "Status code was 503 and not [200, 202]: HTTP Error 503: Service Unavailable"},
     10, "HTTP 503 Service Unavailable"),
    ({"failed": True, "status": 401, "msg": "Status code was 401 and not [200]: HTTP Error 401: Unauthorized"}, 10,
     "HTTP 401 Unauthorized"),
    ({"failed": True, "status": 418, "msg": "Status code was 418"}, 10, "HTTP 418"),
    ({"failed": True, "msg": "Unable to Connect 127.0.0.1:25: Connection unexpectedly closed"}, 5,
     "Unable to Connect 127.0.0.1:25: Connection unexpectedly closed"),
    ({"failed": True}, None, "failed"),
])
def test_reasons_from_real_results(result, timeout, expected):
    assert escalation_reason(result, timeout=timeout) == expected


def test_no_failure_no_reason():
    assert escalation_reason({"failed": False, "status": 202}) == ""
    assert escalation_reason(None) == ""


def test_a_plain_message():
    assert escalation_reason("Task failed: Module failed: [Errno 113] No route to host") == "no route to host"


def test_secrets_are_masked_wherever_they_appear():
    result = {"failed": True, "msg": "Authentication to smtp:587 failed for user x with pw hunter2-secret (token tk-9)"}
    reason = escalation_reason(result, secrets=["hunter2-secret", "tk-9", ""])
    assert "hunter2-secret" not in reason and "tk-9" not in reason and reason.count("********") == 2


def test_a_secret_is_masked_before_the_reason_is_lower_cased():
    reason = escalation_reason({"failed": True, "msg": "[Errno 13] Denied For Hunter2-SECRET"}, secrets=["Hunter2-SECRET"])
    assert reason == "denied for ********"


def test_long_messages_are_cut():
    assert len(escalation_reason({"failed": True, "msg": "x" * 5000})) == 240


@settings(max_examples=200, deadline=None)
@given(secret=st.text(min_size=4, max_size=40).filter(lambda s: s.strip() == s and "*" not in s),
       before=st.text(max_size=300), after=st.text(max_size=300), status=st.sampled_from([-1, 0, 401, 500]))
def test_property_a_secret_never_comes_back(secret, before, after, status):
    """Whatever the message around it, a secret given to the filter is never in its answer."""
    result = {"failed": True, "status": status, "msg": before + secret + after}
    reason = escalation_reason(result, secrets=[secret], timeout=5)
    assert secret not in reason
    assert len(reason) <= 240


def _slurped(text: str) -> dict:
    return {"content": base64.b64encode(text.encode()).decode(), "encoding": "base64"}


def test_state_round_trip():
    data = {"format": FORMAT, "incidents": {"k1": {"incident_id": "ROLL-1", "channels": {"mail": 1795654079.25}}}}
    assert escalation_state(_slurped(json.dumps(data))) == data
    assert escalation_state(json.dumps(data)) == data


@pytest.mark.parametrize("value", [
    {"failed": True, "msg": "file not found"},  # slurp of a missing file (failed_when: false)
    {}, None, "", "{ not json \x00", "[]", "null", _slurped("garbage"), {"content": "!!not base64!!"},
    json.dumps({"incidents": []}),
])
def test_state_missing_or_corrupt_is_empty(value):
    assert escalation_state(value) == {"format": FORMAT, "incidents": {}}


def test_state_drops_entries_of_the_wrong_shape():
    data = {"incidents": {"a": "x", "b": {"channels": []}, "c": {"channels": {"mail": "soon", "webhook": -1}},
                          "d": {"incident_id": 7, "channels": {"mail": 10, "webhook": float("nan"), "x": True}}}}
    assert escalation_state(json.dumps(data))["incidents"] == {"d": {"incident_id": None, "channels": {"mail": 10.0}}}
