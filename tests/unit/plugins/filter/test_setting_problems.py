"""setting_problems: only the broken rules, each naming the variable and its value - the named
rules (seconds, count, tag, ...) and the dict rules for ranges, formats and run-time choices."""
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
    "off": {},
}
GOOD = {"rate": 89, "timeout": "1.5", "samples": "10", "path": "/api", "service": "frontend", "dir": "/opt",
        "steps": [{"seconds": 0.5}, {"seconds": None}], "off": float("nan")}


def settings(**changes):
    values = dict(GOOD, **changes)
    return {name: [values[name], rule] for name, rule in RULES.items()}


def test_good_settings_have_no_problem():
    assert setting_problems(settings()) == []


@pytest.mark.parametrize("name, value, message", [
    ("rate", 150, "rate=150 - must be a finite number from 0 to 100"),
    ("rate", -0.1, "rate=-0.1 - must be a finite number from 0 to 100"),
    ("rate", "nan", "rate=nan - must be a finite number from 0 to 100"),
    ("timeout", 0, "timeout=0 - must be a finite number more than 0 and at most 86400"),
    ("timeout", -1, "timeout=-1 - must be a finite number more than 0 and at most 86400"),
    ("timeout", "inf", "timeout=inf - must be a finite number more than 0 and at most 86400"),
    ("timeout", 1e308, "timeout=1e+308 - must be a finite number more than 0 and at most 86400"),
    ("timeout", 10 ** 400, None),
    ("timeout", True, "timeout=True - must be a finite number more than 0 and at most 86400"),
    ("samples", 0, "samples=0 - must be a whole number at least 1"),
    ("samples", 2.5, "samples=2.5 - must be a whole number at least 1"),
    ("samples", "ten", "samples=ten - must be a whole number at least 1"),
    ("path", "api", "path=api - must be a path that starts with /"),
    ("path", "/a b", "path=/a b - must be a path that starts with /"),
    ("service", "db", "service=db - must be one of backend, frontend"),
    ("dir", "", "dir= - must not be empty"),
    ("steps", [{"seconds": 1}, {"seconds": -2}], "steps[1].seconds=-2 - must be a finite number at least 0"),
    ("steps", [{"step": "x"}, "garbage"], None),  # missing seconds are null, which is allowed
])
def test_each_broken_rule_names_the_variable_and_its_value(name, value, message):
    problems = setting_problems(settings(**{name: value}))
    if message is None:
        assert (problems == []) if name == "steps" else (len(problems) == 1 and problems[0].startswith(name + "="))
    else:
        assert problems == [message]


def test_only_the_broken_rules_are_named_in_order():
    problems = setting_problems(settings(rate=101, samples=0))
    assert [p.split("=")[0] for p in problems] == ["rate", "samples"]


def test_named_and_dict_rules_together():
    assert setting_problems({"t": [-1, "seconds"], "r": [101, {"type": "float", "max": 100}]}) == [
        "t=-1 - must be a finite number of seconds above 0", "r=101 - must be a finite number at most 100"]


def test_long_values_are_shortened():
    (problem,) = setting_problems({"path": ["x" * 500, RULES["path"]]})
    assert len(problem) < 200


def test_bad_input_is_a_filter_error():
    with pytest.raises(AnsibleFilterError):
        setting_problems([])
    with pytest.raises(AnsibleFilterError, match="unknown type"):
        setting_problems({"x": [1, {"type": "percent"}]})
    with pytest.raises(AnsibleFilterError, match="unknown rule"):
        setting_problems({"x": [1, "positive"]})
    with pytest.raises(AnsibleFilterError):
        setting_problems({"x": 1})
