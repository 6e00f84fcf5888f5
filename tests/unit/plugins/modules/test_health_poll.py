"""Unit tests of health_poll's logic: judging answers, latency figures and the deadline-bounded
loop, driven by a simulated clock so nothing waits. Real servers: tests/integration."""
from __future__ import annotations

import re
import socket
import urllib.error

import pytest

from ansible_collections.taylordash.rollback.plugins.module_utils._http_probe import (
    ProbeResult,
    describe_error,
)
from ansible_collections.taylordash.rollback.plugins.module_utils._latency import percentile
from ansible_collections.taylordash.rollback.plugins.modules import health_poll as mod


class FakeTime:
    """A clock that only moves when someone sleeps or a request takes time."""

    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(fake, answers, request_time=0.01):
    """``send`` that returns ProbeResults built from ``answers`` (status or error text);
    the last answer repeats. Records the budget of each request."""
    budgets = []

    def send(budget):
        budgets.append(budget)
        answer = answers[min(len(budgets) - 1, len(answers) - 1)]
        fake.now += request_time
        if isinstance(answer, int):
            return ProbeResult(status=answer, elapsed=request_time, body='{"status": "ready"}')
        return ProbeResult(status=None, elapsed=request_time, error=answer)

    send.budgets = budgets
    return send


def poller(fake, send, **kwargs):
    options = dict(timeout=5.0, interval=0.25, request_timeout=2.0, success_threshold=2,
                   status_codes=[200])
    options.update(kwargs)
    return mod.Poller(send, clock=fake.clock, sleep=fake.sleep, **options)


# --- percentiles -----------------------------------------------------------------------------

@pytest.mark.parametrize("values,pct,expected", [
    ([], 50, None), ([7], 50, 7), ([7], 95, 7), ([1, 2], 50, 1), ([1, 2], 95, 2),
    (list(range(1, 101)), 50, 50), (list(range(1, 101)), 95, 95), (list(range(1, 21)), 95, 19),
])
def test_percentile_nearest_rank(values, pct, expected):
    # health_poll's latency figures use the collection's one percentile (module_utils/_latency)
    assert percentile(values, pct) == expected


def test_latency_figures():
    assert mod.latency_figures([0.3, 0.1, 0.2]) == dict(count=3, min=0.1, p50=0.2, p95=0.3, max=0.3)
    assert mod.latency_figures([]) == dict(count=0, min=None, p50=None, p95=None, max=None)


# --- judging one answer ----------------------------------------------------------------------

def test_judge():
    ok = ProbeResult(status=200, body='{"status": "ready"}')
    assert mod.judge(ok, [200], None) is None
    assert mod.judge(ok, [200], re.compile("ready")) is None
    assert mod.judge(ok, [200], re.compile("degraded")) == "body does not match 'degraded' (status 200)"
    assert mod.judge(ProbeResult(status=500), [200], None) == "status 500 not in [200]"
    assert mod.judge(ProbeResult(status=204), [200, 204], None) is None
    assert mod.judge(ProbeResult(error="timed out"), [200], None) == "timed out"


def test_describe_error_is_short_and_plain():
    refused = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    assert describe_error(refused) == "connection failed: Connection refused"
    assert describe_error(urllib.error.URLError(socket.timeout("timed out"))) == "timed out"
    assert describe_error(socket.timeout("timed out")) == "timed out"
    assert describe_error(ValueError("unknown url type")) == "ValueError: unknown url type"


# --- the loop --------------------------------------------------------------------------------

def test_healthy_at_once():
    fake = FakeTime()
    send = scripted(fake, [200])
    result = poller(fake, send).run()
    assert result["healthy"] is True
    assert result["attempts"] == 2
    assert result["consecutive_successes"] == 2
    # two requests of 0.01 s, started 0.25 s apart
    assert result["elapsed"] == pytest.approx(0.26)
    assert result["first_success_elapsed"] == pytest.approx(0.01)
    assert result["latency"]["count"] == 2
    assert result["last_status"] == 200 and result["last_error"] is None


def test_threshold_one_stops_at_first_success():
    fake = FakeTime()
    result = poller(fake, scripted(fake, [503, 503, 200]), success_threshold=1).run()
    assert result["healthy"] is True
    assert result["attempts"] == 3
    assert result["elapsed"] == pytest.approx(0.51)


def test_failure_resets_the_consecutive_count():
    fake = FakeTime()
    send = scripted(fake, [200, 200, 500, 200, 200, 200], request_time=0.0)
    result = poller(fake, send, success_threshold=3).run()
    assert result["healthy"] is True
    assert result["attempts"] == 6  # 2 successes, reset, then 3 in a row
    assert result["latency"]["count"] == 5


def test_never_healthy_stops_by_the_deadline():
    fake = FakeTime()
    send = scripted(fake, [500])
    result = poller(fake, send, timeout=1.0).run()
    assert result["healthy"] is False
    assert result["attempts"] == 4  # at 0, 0.25, 0.5, 0.75; the next would start at the deadline
    assert result["elapsed"] <= 1.0
    assert result["last_status"] == 500
    assert result["last_error"] == "status 500 not in [200]"
    assert result["latency"]["p50"] is None
    assert all(s <= 0.25 for s in fake.sleeps)


def test_request_budget_never_exceeds_what_is_left():
    fake = FakeTime()
    send = scripted(fake, ["timed out"], request_time=0.4)
    result = poller(fake, send, timeout=1.0, interval=0.25, request_timeout=5.0).run()
    assert result["healthy"] is False
    assert send.budgets[0] == pytest.approx(1.0)
    assert all(b <= 1.0 for b in send.budgets)
    # slow requests: no sleeping, the next one starts at once
    assert fake.sleeps == []
    assert result["elapsed"] <= 1.0 + 0.4


def test_connection_error_reported():
    fake = FakeTime()
    result = poller(fake, scripted(fake, ["connection failed: Connection refused"]), timeout=0.5).run()
    assert result["last_status"] is None
    assert result["last_error"] == "connection failed: Connection refused"


def test_zero_interval_polls_back_to_back():
    fake = FakeTime()
    result = poller(fake, scripted(fake, [503, 200]), interval=0, success_threshold=3).run()
    assert result["healthy"] is True
    assert result["attempts"] == 4
    assert fake.sleeps == []


def _params(**kwargs):
    spec = mod.argument_spec()
    base = dict((name, entry.get("default")) for name, entry in spec.items())
    base.update(kwargs)
    return base


def test_urls_are_checked_each_before_the_first_request():
    problems, targets, _pattern = mod.check_params(_params(urls=["http://127.0.0.1:8000/health", "http://127.0.0.1:3000/"]))
    assert problems == [] and [t.url for t in targets] == ["http://127.0.0.1:8000/health", "http://127.0.0.1:3000/"]
    problems, _targets, _pattern = mod.check_params(_params(urls=["ftp://x/", "http://127.0.0.1:1/"]))
    assert len(problems) == 1 and "ftp://x/" in problems[0]
    problems, _targets, _pattern = mod.check_params(_params(url="http://127.0.0.1:1/", urls=["http://127.0.0.1:2/"]))
    assert any("mutually exclusive" in p for p in problems)
    problems, _targets, _pattern = mod.check_params(_params(urls=[]))
    assert any("urls is empty" in p for p in problems)
