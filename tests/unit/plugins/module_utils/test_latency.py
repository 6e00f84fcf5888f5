# -*- coding: utf-8 -*-
# Copyright: (c) 2025, TaylorDash operations team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""module_utils/_latency: percentiles, answer checks and the verdict per endpoint."""
from __future__ import annotations

import json
import re

import pytest

from ansible_collections.taylordash.rollback.plugins.module_utils._latency import (
    EndpointVerdict,
    judge_answer,
    latency_figures,
    percentile,
    target_text,
)


@pytest.mark.parametrize("values, pct, expected", [
    ([], 50, None),
    ([0.3], 50, 0.3),
    ([0.3], 95, 0.3),
    ([1, 2], 50, 1),
    ([1, 2], 95, 2),
    (list(range(1, 11)), 50, 5),      # nearest rank: ceil(0.5 * 10) = 5th
    (list(range(1, 11)), 95, 10),     # ceil(9.5) = 10th: with 10 samples p95 is the slowest
    (list(range(1, 21)), 95, 19),
    (list(range(1, 101)), 95, 95),
    (list(range(1, 101)), 100, 100),
    (list(range(1, 4)), 0, 1),
])
def test_percentile_nearest_rank(values, pct, expected):
    assert percentile(values, pct) == expected


def test_latency_figures():
    assert latency_figures([]) == dict(count=0, min=None, p50=None, p95=None, max=None, mean=None)
    figures = latency_figures([0.0123456789, 0.3, 0.1, 0.2])
    assert figures == dict(count=4, min=0.012346, p50=0.1, p95=0.3, max=0.3, mean=round(0.6123456789 / 4, 6))


TOKEN = "f" * 64


@pytest.mark.parametrize("kwargs, problem, length", [
    (dict(status=None, error="connection failed: Connection refused"), "connection failed: Connection refused", None),
    (dict(status=None, error=None), "no answer", None),
    (dict(status=500), "HTTP 500 (expected 200)", None),
    (dict(status=200, body='{"session_token": "%s"}' % TOKEN, json_key="session_token"), None, 1),
    (dict(status=200, body='{"session_token": ""}', json_key="session_token"),
     "HTTP 200 but the answer has no session_token", None),
    (dict(status=200, body='{"error": "x"}', json_key="session_token"), "HTTP 200 but the answer has no session_token", None),
    (dict(status=200, body='[1, 2]', json_key="session_token"),
     "HTTP 200 but the answer is a list, not an object with session_token", None),
    (dict(status=200, body='[{"id": 1}, {"id": 2}, {"id": 3}]', json_type="list"), None, 3),
    (dict(status=200, body='{"projects": []}', json_type="list"), "HTTP 200 but the answer is an object, not a JSON list", None),
    (dict(status=200, body='null', json_type="object"), "HTTP 200 but the answer is null, not a JSON object", None),
    (dict(status=200, body='<html>', json_type="list"), "HTTP 200 but the body is not JSON", None),
    (dict(status=200, body='[1', truncated=True, json_type="list"),
     "HTTP 200 but the body is larger than max_body_bytes; cannot check its JSON", None),
    (dict(status=200, body='<html>TaylorDash</html>', pattern="TaylorDash"), None, None),
    (dict(status=200, body='<html>nginx</html>', pattern="TaylorDash"),
     "HTTP 200 but the body does not match 'TaylorDash'", None),
    (dict(status=204, status_codes=[200, 204]), None, None),
])
def test_judge_answer(kwargs, problem, length):
    args = dict(status=None, body="", truncated=False, error=None, status_codes=[200])
    pattern = kwargs.pop("pattern", None)
    args.update(kwargs)
    got = judge_answer(args["status"], args["body"], args["truncated"], args["error"], args["status_codes"],
                       args.get("json_type"), args.get("json_key"), re.compile(pattern) if pattern else None)
    assert got == (problem, length)


def test_problems_never_quote_the_body():
    body = json.dumps({"session_token": "", "echo": TOKEN})
    for json_key, json_type in (("session_token", None), (None, "list")):
        problem, _length = judge_answer(200, body, False, None, [200], json_type, json_key)
        assert problem and TOKEN not in problem


def test_target_text():
    assert target_text(0.5, 0.5) == "target 0.5 s"
    assert target_text(0.3, 0.5) == "targets p50 0.3 s, p95 0.5 s"
    assert target_text(None, 1.0) == "target p95 1 s"
    assert target_text(None, None) == "no target"


def test_verdict_within_target():
    v = EndpointVerdict("frontend", 3, [0.002, 0.001, 0.003], [], {200: 3}, None, None, 1.0, 1.0)
    assert v.passed and v.within_target and v.problems == []
    assert v.describe() == "frontend: p50 0.002 s, p95 0.003 s over 3 samples (target 1 s)"
    d = v.as_dict()
    assert d["statuses"] == {"200": 3} and d["latency"]["p95"] == 0.003 and d["samples"] == 3


def test_verdict_over_target_names_figures_and_target():
    v = EndpointVerdict("api_projects", 3, [0.712, 0.745, 0.701], [], {200: 3}, None, 3, 0.5, 0.5)
    assert not v.passed and v.over_target == ["p50", "p95"]
    assert v.describe() == ("api_projects: p50 0.712 s, p95 0.745 s over 3 samples (target 0.5 s): "
                            "p50 and p95 over the target")
    v = EndpointVerdict("auth_login", 10, [0.1] * 9 + [0.9], [], {200: 10}, None, None, 0.5, 0.5)
    assert v.over_target == ["p95"] and v.describe().endswith(": p95 over the target")


def test_verdict_errors_and_missing_samples():
    v = EndpointVerdict("api_projects", 10, [0.01] * 6, ["HTTP 500 (expected 200)"] * 2, {200: 6, 500: 2},
                        "HTTP 500 (expected 200)", 3, 0.5, 0.5, deadline_reached=True)
    assert not v.passed and v.within_target
    assert v.problems == ["2 of 8 answers were bad (last: HTTP 500 (expected 200))",
                          "only 8 of 10 samples were taken before the time limit was reached"]
    nothing = EndpointVerdict("x", 1, [], ["timed out"], {"none": 1}, "timed out", None)
    assert not nothing.passed and not nothing.within_target
    assert nothing.describe() == "x: p50 n/a, p95 n/a over 0 samples: 1 of 1 answers were bad (last: timed out)"
