"""The Event-Driven Ansible event source extensions/eda/plugins/event_source/rollback_trigger.py,
loaded the way ansible-rulebook loads it (its file run as a script from the collection tree), run with a fake queue
against a real HTTP server on 127.0.0.1 whose health, errors and delay each test sets. Also: both
rulebooks parse and validate with ansible-rulebook's own parser and schema."""
from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import COLLECTIONS_ROOT, REPO

SOURCE = COLLECTIONS_ROOT / "ansible_collections" / "taylordash" / "rollback" / "extensions" / "eda" / "plugins" / "event_source" / "rollback_trigger.py"
RULEBOOKS = REPO / "extensions" / "eda" / "rulebooks"
KEY = "k3y-" + "s3cr3t-0123456789"


class Stack:
    """A stand-in stack on 127.0.0.1: /health answers ``health``; /api answers 500 for every
    ``error_every``-th request (0: never) after ``delay`` seconds; every API key received is kept."""

    def __init__(self):
        self.health = 200
        self.error_every = 0
        self.delay = 0.0
        self.keys = []
        self.count = 0
        self.lock = threading.Lock()
        stack = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's hook name)
                if self.path.startswith("/health"):
                    status = stack.health
                else:
                    with stack.lock:
                        stack.count += 1
                        stack.keys.append(self.headers.get("X-API-Key"))
                        failing = stack.error_every and stack.count % stack.error_every == 0
                    if stack.delay:
                        time.sleep(stack.delay)
                    status = 500 if failing else 200
                body = b"[]"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeQueue:
    def __init__(self):
        self.events = []

    async def put(self, event):
        self.events.append(event)


@pytest.fixture(scope="module")
def source():
    """The plugin's globals, as ansible-rulebook's ``runpy.run_path`` makes them. runpy itself cannot
    be used in this process: the collection loader's path hook claims every path under the tree."""
    namespace = {"__file__": str(SOURCE), "__name__": "<run_path>"}
    exec(compile(SOURCE.read_text(), str(SOURCE), "exec"), namespace)  # noqa: S102 (the plugin file itself)
    return namespace


@pytest.fixture
def stack():
    server = Stack()
    yield server
    server.close()


def run(source, args, deadline=30.0):
    queue = FakeQueue()
    asyncio.run(asyncio.wait_for(source["main"](queue, args), deadline))
    return queue.events


def args_for(stack, **more):
    args = dict(stack="shop", health_urls={"backend": stack.url + "/health"}, api_url=stack.url,
                api_paths=["/api/items"], api_key_env="TD_TEST_TRIGGER_KEY", window=1.5, interval=0.2, rate=20,
                pause=0.05, max_windows=1, timeout=1)
    args.update(more)
    return args


def test_a_healthy_stack_gives_a_verdict_without_rollback_and_never_a_secret(source, stack, monkeypatch):
    monkeypatch.setenv("TD_TEST_TRIGGER_KEY", KEY)
    events = run(source, args_for(stack, max_windows=2))
    assert [e["rollback_trigger"]["window"] for e in events] == [1, 2]
    verdict = events[0]["rollback_trigger"]
    assert verdict["stack"] == "shop"
    assert verdict["rollback"] is False and verdict["reasons"] == []
    assert verdict["baseline_used"] is False
    figures = verdict["figures"]
    assert figures["targets"]["backend"]["consecutive_failures"] == 0
    assert figures["targets"]["api /api/items"]["requests"] >= 10
    assert figures["targets"]["api /api/items"]["error_rate"] == 0
    # The key went to the API, and nowhere into the events.
    assert set(stack.keys) == {KEY}
    assert KEY not in json.dumps(events)
    # ...and out of the environment the rulebook's playbooks inherit.
    assert "TD_TEST_TRIGGER_KEY" not in os.environ


def test_an_unhealthy_service_fires_unavailable_early(source, stack):
    stack.health = 503
    started = time.monotonic()
    events = run(source, args_for(stack, window=10, api_url=None))
    assert time.monotonic() - started < 5, "the sampling did not stop once the verdict was certain"
    verdict = events[0]["rollback_trigger"]
    assert verdict["rollback"] is True
    assert [r["trigger"] for r in verdict["reasons"]] == ["unavailable"]
    assert verdict["reasons"][0]["target"] == "backend"
    assert verdict["figures"]["stopped_early"] is True


def test_consecutive_failures_are_counted_across_windows(source, stack):
    """Windows of 0.5 s hold 3 checks at 0.2 s: 5 consecutive failures fire only when the run of the window
    before is carried over the pause; a check that passes in between starts the count again."""
    stack.health = 503
    events = run(source, args_for(stack, api_url=None, window=0.5, failures=5, max_windows=3))
    verdicts = [e["rollback_trigger"] for e in events]
    assert verdicts[0]["rollback"] is False
    assert verdicts[0]["figures"]["targets"]["backend"]["failing_now"] >= 2
    fired = [v for v in verdicts if v["rollback"]]
    assert fired, [v["figures"]["targets"]["backend"] for v in verdicts]
    health = fired[0]["figures"]["targets"]["backend"]
    assert health["carried_failures"] > 0 and health["consecutive_failures"] == 5
    assert fired[0]["reasons"][0]["trigger"] == "unavailable" and fired[0]["reasons"][0]["value"] == 5
    # after the verdict fired, the count starts from its first failed check again
    if verdicts[-1] is not fired[0]:
        assert verdicts[verdicts.index(fired[0]) + 1]["figures"]["targets"]["backend"]["carried_failures"] == 0
    # healthy again: a passing check ends any run, nothing fires
    stack.health = 200
    healthy = run(source, args_for(stack, api_url=None, window=0.5, failures=5, max_windows=2))
    assert not any(e["rollback_trigger"]["rollback"] for e in healthy)


def test_errors_fire_the_error_rate_trigger(source, stack):
    stack.error_every = 2
    verdict = run(source, args_for(stack, health_urls={}))[0]["rollback_trigger"]
    assert verdict["rollback"] is True
    assert "error_rate" in [r["trigger"] for r in verdict["reasons"]]


def test_a_slow_api_against_its_baseline_fires_p95_degradation(source, stack, tmp_path):
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"version": 1, "recorded_at": "2026-11-26T00:00:00+00:00", "images": {},
                                    "overall": {}, "targets": {"api /api/items": {"p95_ms": 5.0}}}))
    stack.delay = 0.25
    # the p95 triggers judge a target only on 20 good answers or more (_trigger.decide)
    verdict = run(source, args_for(stack, baseline=str(baseline), window=3, rate=20, concurrency=8))[0]["rollback_trigger"]
    assert verdict["baseline_used"] is True
    assert verdict["rollback"] is True
    assert [r["trigger"] for r in verdict["reasons"]] == ["p95_degradation"]


def test_emit_rollback_puts_only_verdicts_that_roll_back(source, stack):
    assert run(source, args_for(stack, emit="rollback", max_windows=2, api_url=None)) == []
    stack.health = 503
    events = run(source, args_for(stack, emit="rollback", api_url=None))
    assert len(events) == 1 and events[0]["rollback_trigger"]["rollback"] is True


@pytest.mark.parametrize("override, message", [
    ({"windw": 3}, "unknown argument(s) windw"),
    ({"window": 0}, "window=0.0 must be above 0"),
    ({"pause": "soon"}, "pause='soon' must be a number"),
    ({"failures": 1.5}, "failures=1.5 must be a whole number"),
    ({"emit": "some"}, "emit='some' must be all or rollback"),
    ({"health_urls": {}, "api_url": None}, "nothing to sample; set health_urls, api_url or targets"),
    ({"health_urls": ["ftp://127.0.0.1/x"]}, "not an http:// or https:// URL"),
    ({"baseline": "/nonexistent/baseline.json"}, "baseline=/nonexistent/baseline.json - cannot read the baseline"),
])
def test_wrong_settings_stop_the_source_at_its_start_naming_the_argument(source, stack, override, message):
    with pytest.raises(ValueError) as caught:
        run(source, args_for(stack, **override))
    assert message in str(caught.value)
    assert stack.count == 0


def test_the_rulebooks_parse_and_validate_with_ansible_rulebook():
    import yaml
    from ansible_rulebook.rules_parser import parse_rule_sets
    from ansible_rulebook.validators import Validate

    for path in sorted(RULEBOOKS.glob("*.yml")):
        data = yaml.safe_load(path.read_text())
        Validate.rulebook(data)
        rulesets = parse_rule_sets(data)
        assert rulesets, path
        sources = [s.source_name for r in rulesets for s in r.sources]
        assert sources == ["taylordash.rollback.rollback_trigger"], (path, sources)
        rule = rulesets[0].rules[0]
        assert rule.throttle is not None and rule.throttle.once_within, path
        assert rule.throttle.group_by_attributes == ["event.rollback_trigger.stack"]


# Any arguments at all: the source either accepts them or refuses them with a ValueError naming the
# problem - never another exception, never the API key in the message.
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 10 ** 6), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=20), st.lists(st.text(max_size=10), max_size=3),
                    st.dictionaries(st.text(max_size=8), st.text(max_size=30), max_size=3))
_NAMES = st.sampled_from(["stack", "health_urls", "api_url", "api_paths", "api_key_env", "api_key_header", "targets",
                          "window", "pause", "interval", "failures", "rate", "concurrency", "timeout", "error_rate_max",
                          "p95_degradation_max", "p95_absolute_max_ms", "emit", "max_windows", "ca_file", "unknown"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=st.dictionaries(_NAMES, _VALUES, max_size=8))
def test_any_arguments_are_accepted_or_refused_by_name_without_the_key(source, monkeypatch, args):
    monkeypatch.setenv("TD_PROP_KEY", KEY)
    args = dict(args, api_key_env="TD_PROP_KEY") if "api_key_env" in args else args
    try:
        conf, targets = source["settings"](args)
    except ValueError as exc:
        assert str(exc).startswith("rollback_trigger: ")
        assert KEY not in str(exc)
    else:
        assert targets and conf["window"] > 0 and conf["emit"] in ("all", "rollback")
