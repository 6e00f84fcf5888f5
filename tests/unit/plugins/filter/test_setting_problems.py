"""setting_problems: only the broken rules, each naming the variable and its value."""
from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.taylordash.rollback.plugins.filter.setting_problems import setting_problems

RULES = {
    "rate": {"type": "float", "min": 0, "max": 100},
    "timeout": {"type": "float", "above": 0, "max": 86400},
    "samples": {"type": "int", "min": 1},
    "path": {"pattern": "/\\S*", "hint": "a path that starts with /"},
    "service": {"choices": ["backend", "frontend"]},
    "dir": {"nonempty": True},
    "steps": {"each": "seconds", "type": "float", "min": 0, "null_ok": True},
}
GOOD = {"rate": 89, "timeout": "1.5", "samples": "10", "path": "/api", "service": "frontend", "dir": "/opt",
        "steps": [{"seconds": 0.5}, {"seconds": None}], "unchecked": float("nan")}


def test_good_settings_have_no_problem():
    assert setting_problems(GOOD, RULES) == []


@pytest.mark.parametrize("name, value, message", [
    ("rate", 150, "rate must be a finite number from 0 to 100 (is 150)"),
    ("rate", -0.1, "rate must be a finite number from 0 to 100 (is -0.1)"),
    ("rate", "nan", "rate must be a finite number from 0 to 100 (is 'nan')"),
    ("timeout", 0, "timeout must be a finite number more than 0 and at most 86400 (is 0)"),
    ("timeout", -1, "timeout must be a finite number more than 0 and at most 86400 (is -1)"),
    ("timeout", "inf", "timeout must be a finite number more than 0 and at most 86400 (is 'inf')"),
    ("timeout", 1e308, "timeout must be a finite number more than 0 and at most 86400 (is 1e+308)"),
    ("timeout", True, "timeout must be a finite number more than 0 and at most 86400 (is True)"),
    ("samples", 0, "samples must be a whole number at least 1 (is 0)"),
    ("samples", 2.5, "samples must be a whole number at least 1 (is 2.5)"),
    ("samples", "ten", "samples must be a whole number at least 1 (is 'ten')"),
    ("path", "api", "path must be a path that starts with / (is 'api')"),
    ("path", "/a b", "path must be a path that starts with / (is '/a b')"),
    ("service", "db", "service must be one of backend, frontend (is 'db')"),
    ("dir", "", "dir must not be empty (is '')"),
    ("steps", [{"seconds": 1}, {"seconds": -2}], "steps[1].seconds must be a finite number at least 0 (is -2)"),
])
def test_each_broken_rule_names_the_variable_and_its_value(name, value, message):
    assert setting_problems(dict(GOOD, **{name: value}), RULES) == [message]


def test_only_the_broken_rules_are_named():
    problems = setting_problems(dict(GOOD, rate=101, samples=0), RULES)
    assert len(problems) == 2 and problems[0].startswith("rate ") and problems[1].startswith("samples ")


def test_long_values_are_shortened():
    (problem,) = setting_problems({"path": "x" * 500}, RULES)
    assert len(problem) < 200 and problem.endswith("...)")


def test_a_missing_setting_or_rule_is_skipped():
    assert setting_problems({"other": 1}, RULES) == [] and setting_problems({"rate": 1}, {"rate": {}}) == []


def test_bad_input_is_a_filter_error():
    with pytest.raises(AnsibleFilterError):
        setting_problems([], RULES)
