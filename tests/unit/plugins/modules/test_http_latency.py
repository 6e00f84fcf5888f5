# -*- coding: utf-8 -*-
# Copyright: (c) 2025, TaylorDash operations team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""taylordash.rollback.http_latency: documentation, arguments, and the sampling loop on a fake clock.

The requests themselves run against the real reference stack in
tests/integration/test_validate_role.py; here a fake ``send`` returns ProbeResults.
"""
from __future__ import annotations

import json

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from ansible_collections.taylordash.rollback.plugins.module_utils._http_probe import ProbeResult
from merged_doc import merged_documentation

from ansible_collections.taylordash.rollback.plugins.modules import http_latency as mod

DOC = merged_documentation(mod)
RETURN = yaml.safe_load(mod.RETURN)
EXAMPLES = yaml.safe_load(mod.EXAMPLES)


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def endpoint(name, **extra):
    ep = dict(name=name, url="http://127.0.0.1:1/%s" % name, method="GET", headers={}, body=None,
              status_codes=[200], body_regex=None, json_type=None, json_key=None, max_p50=None, max_p95=None,
              _pattern=None)
    ep.update(extra)
    return ep


def make_send(clock, script):
    """script: {name: [(status, elapsed), ...]}; records the call order."""
    calls = []
    queues = dict((name, list(items)) for name, items in script.items())

    def send(ep, budget):
        calls.append((ep["name"], budget))
        status, elapsed = queues[ep["name"]].pop(0)
        clock.now += min(elapsed, budget)
        if elapsed > budget:
            return ProbeResult(status=None, elapsed=budget, error="timed out")
        return ProbeResult(status=status, elapsed=elapsed, body="[]")

    return send, calls


def test_documented_options_match_argument_spec(monkeypatch):
    captured = {}

    class Stop(Exception):
        pass

    def fake_module(argument_spec, **kwargs):
        captured.update(kwargs, argument_spec=argument_spec)
        raise Stop()

    monkeypatch.setattr(mod, "build_module", fake_module)
    with pytest.raises(Stop):
        mod.main()
    spec = captured["argument_spec"]
    assert set(spec) == set(DOC["options"])
    for name, entry in spec.items():
        doc = DOC["options"][name]
        assert doc["type"] == entry["type"] and doc.get("default") == entry.get("default"), name
    sub_doc = DOC["options"]["endpoints"]["suboptions"]
    sub_spec = spec["endpoints"]["options"]
    assert set(sub_doc) == set(sub_spec)
    for name, entry in sub_spec.items():
        assert sub_doc[name]["type"] == entry["type"], name
        assert sub_doc[name].get("default") == entry.get("default"), name
        assert sub_doc[name].get("choices") == entry.get("choices"), name
    assert sub_spec["headers"]["no_log"] is True and sub_spec["body"]["no_log"] is True
    assert captured["supports_check_mode"] is True
    assert DOC["author"] == "TaylorDash operations team (@taylordash)"


def test_examples_use_fqcn_and_hide_secrets():
    for task in EXAMPLES:
        assert any(key.startswith("taylordash.rollback.") or key.startswith("ansible.builtin.") for key in task)
        if "taylordash.rollback.http_latency" in task:
            assert task.get("no_log") is True


def test_round_robin_warmup_and_figures():
    clock = FakeClock()
    send, calls = make_send(clock, {"a": [(200, 0.9), (200, 0.1), (200, 0.2)],
                                    "b": [(200, 0.9), (500, 0.05), (200, 0.3)]})
    sampler = mod.Sampler([endpoint("a", max_p95=0.5), endpoint("b")], samples=2, warmup=1, timeout=30,
                          request_timeout=5, interval=0, send=send, clock=clock, sleep=clock.sleep)
    verdicts, deadline_reached, duration = sampler.run()
    assert [name for name, _budget in calls] == ["a", "b", "a", "b", "a", "b"]
    assert not deadline_reached and duration == pytest.approx(2.45)
    a, b = verdicts
    assert a.passed and a.latency["count"] == 2 and a.latency["p95"] == 0.2  # the 0.9 s warm-up is not counted
    assert not b.passed and b.errors == ["HTTP 500 (expected 200)"] and b.statuses == {500: 1, 200: 1}


def test_deadline_stops_sampling_and_fails_the_short_endpoints():
    clock = FakeClock()
    send, calls = make_send(clock, {"slow": [(200, 0.7)] * 10, "fast": [(200, 0.01)] * 10})
    sampler = mod.Sampler([endpoint("slow"), endpoint("fast")], samples=10, warmup=0, timeout=2.0,
                          request_timeout=5, interval=0, send=send, clock=clock, sleep=clock.sleep)
    verdicts, deadline_reached, duration = sampler.run()
    assert deadline_reached and duration <= 2.0 + 1e-9
    slow, fast = verdicts
    # The third request to "slow" was cut by the deadline: neither a sample nor a bad answer.
    assert slow.sampled == 2 and slow.errors == [] and not slow.passed
    assert "only 2 of 10 samples were taken before the time limit was reached" in slow.problems
    assert all(budget <= 5 for _name, budget in calls)


def test_slow_single_request_is_a_bad_answer():
    clock = FakeClock()
    send, _calls = make_send(clock, {"a": [(200, 3.0), (200, 0.1)]})
    sampler = mod.Sampler([endpoint("a")], samples=2, warmup=0, timeout=30, request_timeout=1, interval=0,
                          send=send, clock=clock, sleep=clock.sleep)
    (a,), _reached, _duration = sampler.run()
    assert a.errors == ["timed out"] and a.latency["count"] == 1 and not a.passed


def test_interval_between_rounds():
    clock = FakeClock()
    send, _calls = make_send(clock, {"a": [(200, 0.01)] * 3})
    mod.Sampler([endpoint("a")], samples=3, warmup=0, timeout=30, request_timeout=1, interval=0.5,
                send=send, clock=clock, sleep=clock.sleep).run()
    assert clock.sleeps == [0.5, 0.5]


def _params(**overrides):
    params = dict(endpoints=[dict(endpoint("a"))], samples=10, warmup=0, timeout=60, request_timeout=5,
                  interval=0, validate_certs=True, ca_path=None, max_body_bytes=1024)
    for ep in params["endpoints"]:
        ep.pop("_pattern")
    params.update(overrides)
    return params


def test_check_params():
    problems, prepared = mod.check_params(_params())
    assert problems == [] and prepared[0]["_pattern"] is None
    bad = _params(samples=0, timeout=0, endpoints=[
        dict(endpoint("a", url="ftp://x", body_regex="(", max_p95=0)), dict(endpoint("a"))])
    for ep in bad["endpoints"]:
        ep.pop("_pattern")
    problems, _prepared = mod.check_params(bad)
    assert "timeout must be more than 0 seconds, got 0" in problems
    assert "samples must be at least 1, got 0" in problems
    assert "a: url 'ftp://x' is not an http:// or https:// URL" in problems
    assert "endpoint name a is used twice; names must be unique" in problems
    assert "a: max_p95 must be more than 0 seconds, got 0" in problems
    assert any(p.startswith("a: body_regex '(' is not a valid regular expression") for p in problems)


def test_main_fails_naming_the_endpoint_and_never_returns_secrets(monkeypatch, capsys):
    key = "td-" + "9" * 32
    password = "pw-" + "7" * 16

    def fake_probe(url, method="GET", headers=None, body=None, timeout=5, max_body=0, opener=None):
        assert headers.get("X-API-Key") == key or password in (body or "")
        return ProbeResult(status=200, elapsed=0.7, body='{"session_token": "%s"}' % ("a" * 64))

    monkeypatch.setattr(mod, "probe", fake_probe)
    args = {"samples": 2, "endpoints": [
        {"name": "api_projects", "url": "http://127.0.0.1:1/p", "headers": {"X-API-Key": key},
         "max_p50": 0.5, "max_p95": 0.5},
        {"name": "auth_login", "url": "http://127.0.0.1:1/l", "method": "POST",
         "body": json.dumps({"username": "admin", "password": password}), "json_key": "session_token"},
    ]}
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            mod.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    assert result["failed"] is True and result["failed_endpoints"] == ["api_projects"]
    assert result["msg"] == ("1 of 2 endpoints failed: api_projects: p50 0.700 s, p95 0.700 s over 2 samples "
                             "(target 0.5 s): p50 and p95 over the target")
    assert result["endpoints"][0]["request_headers"] == ["X-API-Key"]
    assert result["endpoints"][1]["passed"] is True and result["endpoints"][1]["json_length"] == 1
    assert key not in out and password not in out and "a" * 64 not in out
    assert set(result) - {"invocation"} <= set(RETURN) | {"changed", "failed"}
