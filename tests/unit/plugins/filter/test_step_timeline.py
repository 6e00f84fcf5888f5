"""step_timeline: step durations from registered results (stamped, unstamped, loops, skipped)."""
from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.taylordash.rollback.plugins.filter.step_timeline import step_timeline

T0 = "2026-11-25T10:00:00+00:00"


def stamp(start, end, **extra):
    return dict(timing=dict(start="2026-11-25T10:00:%06.3f+00:00" % start,
                            end="2026-11-25T10:00:%06.3f+00:00" % end, seconds=end - start), **extra)


def test_stamped_steps_count_from_the_previous_end():
    steps = [["lock", stamp(0.5, 1.0)], ["retag", {"results": [stamp(1.2, 1.5), stamp(1.6, 2.0)]}]]
    assert step_timeline(steps, T0) == [
        {"step": "lock", "seconds": 1.0, "status": "ok"},
        {"step": "retag", "seconds": 1.0, "status": "ok"},
    ]


def test_unstamped_step_ends_when_the_next_stamped_one_starts():
    steps = [["retag", stamp(0.0, 1.0)], ["compose", {"changed": True}], ["health", stamp(4.0, 5.5)]]
    assert [s["seconds"] for s in step_timeline(steps, T0)] == [1.0, 3.0, 1.5]


def test_skipped_and_not_run_and_failed():
    steps = [["retag", stamp(0.0, 1.0, failed=True)], ["compose", {"skipped": True}], ["health", {}]]
    assert step_timeline(steps, T0) == [
        {"step": "retag", "seconds": 1.0, "status": "failed"},
        {"step": "compose", "seconds": 0.0, "status": "skipped"},
        {"step": "health", "seconds": None, "status": "not run"},
    ]


def test_a_failed_item_fails_the_loop_step():
    steps = [["health", {"results": [stamp(0.0, 1.0), stamp(1.0, 2.0, failed=True)]}]]
    assert step_timeline(steps, T0)[0]["status"] == "failed"


@pytest.mark.parametrize("steps", ["x", [["only-a-name"]], [[1, 2, 3]]])
def test_bad_input_is_a_filter_error(steps):
    with pytest.raises(AnsibleFilterError):
        step_timeline(steps, T0)


def test_bad_start_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="ISO 8601"):
        step_timeline([["a", stamp(0, 1)]], "yesterday")
