"""add_failure and failure_chain: the first failure of a run stays its cause."""
from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.taylordash.rollback.plugins.filter.add_failure import add_failure
from ansible_collections.taylordash.rollback.plugins.filter.failure_chain import failure_chain

RESTORE = {"name": "Restore the verified backup in one transaction"}
CAUSE = ("Restore the verified backup in one transaction: division by zero. "
         "The database is as it was: the restore is all or nothing.")


class Task:
    """ansible_failed_task may come as an object with a name."""
    name = "Release the rollback lock"


def test_a_result_becomes_task_and_message():
    assert add_failure([], {"failed": True, "msg": "division by zero.\n  The database is as it was"}, RESTORE) == [
        "Restore the verified backup in one transaction: division by zero. The database is as it was"]


def test_a_failed_loop_names_each_failed_item():
    result = {"failed": True, "msg": "One or more items failed",
              "results": [{"failed": False, "msg": "ok"}, {"failed": True, "msg": "backend: 503"},
                          {"failed": True, "msg": "frontend: timeout"}]}
    assert add_failure([], result, {"name": "Poll health"}) == ["Poll health: backend: 503; frontend: timeout"]


def test_later_failures_follow_the_cause():
    failures = add_failure([], CAUSE)
    failures = add_failure(failures, {"failed": True, "msg": "backend did not answer healthy within 60 s"},
                           {"name": "Fail when a restarted writer is not healthy"})
    failures = add_failure(failures, {"failed": True, "msg": "lock file is gone"}, Task())
    assert failures[0] == CAUSE
    assert failure_chain(failures) == (
        CAUSE[:-1] + "; then: Fail when a restarted writer is not healthy: backend did not answer healthy within 60 s"
        "; then: Release the rollback lock: lock file is gone")


def test_a_rescue_that_fails_again_with_the_cause_adds_nothing():
    failures = add_failure([], CAUSE)
    again = add_failure(failures, {"failed": True, "msg": CAUSE}, {"name": "Stop the data restoration and name the safety dump"})
    assert again == [CAUSE]
    # ... nor does a playbook that hands over a failure it already has.
    assert add_failure(again, CAUSE) == [CAUSE]


def test_empty_messages_are_ignored():
    assert add_failure(None, "") == [] and add_failure([], None) == []
    assert failure_chain([]) == "" and failure_chain(None) == ""


def test_a_result_without_a_task_or_message():
    assert add_failure([], {"failed": True}) == ["a task: failed"]


def test_bad_input_is_a_filter_error():
    with pytest.raises(AnsibleFilterError):
        add_failure("cause", "later")


def test_chain_keeps_the_last_full_stop_only():
    assert failure_chain(["Nothing was changed.", "Lock gone."]) == "Nothing was changed; then: Lock gone."
    assert failure_chain(["Nothing was changed. No safety dump was taken."]) == \
        "Nothing was changed. No safety dump was taken."
