"""Filters the roles use instead of Jinja programs: setting_problems, alembic_revisions,
alembic_downgrade_plan, compose_argv, command_timing."""
from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.taylordash.rollback.plugins.filter.alembic_revisions import (
    alembic_downgrade_plan, alembic_revisions)
from ansible_collections.taylordash.rollback.plugins.filter.command_timing import command_timing
from ansible_collections.taylordash.rollback.plugins.filter.compose_argv import compose_argv
from ansible_collections.taylordash.rollback.plugins.filter.setting_problems import setting_problems
from ansible_collections.taylordash.rollback.plugins.filter.step_timeline import step_timeline


@pytest.mark.parametrize("value", [60, 0.1, "2.5", 10 ** 6])
def test_good_seconds(value):
    assert setting_problems({"t": [value, "seconds"]}) == []


@pytest.mark.parametrize("value", [-1, 0, float("nan"), float("inf"), float("-inf"), "1e400", "abc", None, True, [], 10 ** 400])
def test_bad_seconds_are_named_with_their_value(value):
    problems = setting_problems({"immediate_health_timeout": [value, "seconds"]})
    assert len(problems) == 1 and problems[0].startswith("immediate_health_timeout=")
    assert "finite number of seconds above 0" in problems[0]


def test_only_the_broken_rules_are_named_in_order():
    problems = setting_problems({
        "a": [-1, "seconds"], "b": [5, "seconds"], "c": [0, "seconds or zero"], "d": [0, "count"],
        "e": [2.5, "count"], "f": [70000, "port"], "g": ["", "text"], "h": ["../x", "tag"], "i": [None, "optional tag"],
        "j": ["", "optional tag"], "k": ["rollback-1", "optional tag"], "l": [None, "optional seconds"], "m": [[], "list"],
        "n": [-5, "optional seconds"]})
    assert [p.split("=")[0] for p in problems] == ["a", "d", "e", "f", "g", "h", "m", "n"]
    assert problems[0] == "a=-1 - must be a finite number of seconds above 0"
    assert problems[5].startswith("h=../x - must be a Docker tag")


def test_long_values_are_shortened_and_unknown_rules_refused():
    assert len(setting_problems({"x": ["y" * 500, "tag"]})[0]) < 200
    with pytest.raises(AnsibleFilterError, match="unknown rule"):
        setting_problems({"x": [1, "positive"]})
    with pytest.raises(AnsibleFilterError):
        setting_problems([1, 2])


def test_alembic_revisions():
    out = ["INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.", "0004 (head)"]
    assert alembic_revisions(out) == ["0004"]
    assert alembic_revisions("ae1027a6acf (effective head)\n0003\n") == ["ae1027a6acf", "0003"]
    assert alembic_revisions([]) == [] and alembic_revisions(None) == []


def test_alembic_downgrade_plan():
    sql = ["BEGIN;", "-- Running downgrade 0004 -> 0003", "ALTER TABLE x;", "-- Running downgrade 0002 -> ", "COMMIT;"]
    assert alembic_downgrade_plan(sql, "0004") == {
        "steps": [{"from": "0004", "to": "0003"}, {"from": "0002", "to": "base"}], "ends_at": "base"}
    assert alembic_downgrade_plan([], "0003") == {"steps": [], "ends_at": "0003"}


def test_compose_argv():
    assert compose_argv(["ps", "--services"], "/srv/p", "pn", ["a.yml", "/abs/b.yml"]) == [
        "docker", "compose", "--project-directory", "/srv/p", "--project-name", "pn",
        "--file", "/srv/p/a.yml", "--file", "/abs/b.yml", "ps", "--services"]
    assert compose_argv(["stop"], "/srv/p") == ["docker", "compose", "--project-directory", "/srv/p", "stop"]
    for bad in ("ps --services", None):
        with pytest.raises(AnsibleFilterError):
            compose_argv(bad, "/srv/p")
    with pytest.raises(AnsibleFilterError):
        compose_argv(["ps"], "/srv/p", files="a.yml")


def test_command_timing_feeds_step_timeline():
    result = {"changed": True, "start": "2026-11-25 10:00:01.000000", "end": "2026-11-25 10:00:03.500000"}
    stamped = command_timing(result)
    assert stamped["timing"]["seconds"] == 2.5 and "timing" not in result
    loop = command_timing({"results": [result, {"skipped": True}]})
    assert loop["results"][0]["timing"]["seconds"] == 2.5 and loop["results"][1] == {"skipped": True}
    assert command_timing({"skipped": True}) == {"skipped": True}
    start = stamped["timing"]["start"]
    assert step_timeline([["stop writers", stamped]], start)[0]["seconds"] == 2.5
