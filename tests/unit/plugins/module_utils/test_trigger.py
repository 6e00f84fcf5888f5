"""The decision matrix (_trigger.decide), the sampler's helpers and the baseline file, without a
network: figures are built by hand; sample() runs against a local server of this process."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.taylordash.rollback.plugins.module_utils import _trigger as t


def figures(**targets):
    out = {"settings": {"interval": 1.0}, "sampled_s": 5.0, "targets": {}, "overall": {}}
    total = errors = refused = 0
    for name, fig in targets.items():
        fig = dict({"kind": "request", "requests": 50, "errors": 0, "refused": 0, "error_rate": 0.0,
                    "p50_ms": 10.0, "p95_ms": 20.0, "consecutive_failures": 0, "unavailable_s": 0.0,
                    "longest_down_s": 0.0, "last_problem": None}, **fig)
        out["targets"][name] = fig
        if fig["kind"] == "request":
            total += fig["requests"]
            errors += fig["errors"]
            refused += fig["refused"]
    answered = total - refused
    out["overall"] = {"requests": total, "errors": errors, "refused": refused,
                      "error_rate": round(100.0 * errors / answered, 2) if answered else None}
    return out


BASE = {"version": 1, "targets": {"api": {"p50_ms": 100.0, "p95_ms": 200.0}}}


def triggers(verdict):
    return sorted((r["trigger"], r["target"]) for r in verdict["reasons"])


def test_good_figures_do_not_trigger():
    verdict = t.decide(figures(health={"kind": "health", "requests": 5}, api={}), baseline=BASE)
    assert verdict == {"rollback": False, "reasons": [], "figures": verdict["figures"]}


def test_unavailable_after_n_consecutive_failed_checks():
    fig = figures(health={"kind": "health", "consecutive_failures": 3, "unavailable_s": 2.0, "last_problem": "HTTP 503"})
    verdict = t.decide(fig, failures=3)
    assert verdict["rollback"] and triggers(verdict) == [("unavailable", "health")]
    assert "HTTP 503" in verdict["reasons"][0]["detail"]
    assert not t.decide(fig, failures=4)["rollback"]


def test_refused_request_target_is_unavailable_after_failures_x_interval():
    assert triggers(t.decide(figures(api={"refused": 50, "longest_down_s": 3.0, "error_rate": None}))) == [("unavailable", "api")]
    assert not t.decide(figures(api={"refused": 20, "longest_down_s": 2.5, "error_rate": 0.0}))["rollback"]


def test_error_rate_above_limit():
    verdict = t.decide(figures(api={"errors": 15, "error_rate": 30.0}))
    assert triggers(verdict) == [("error_rate", "api")]
    assert verdict["reasons"][0]["value"] == 30.0 and verdict["reasons"][0]["threshold"] == 5.0
    assert not t.decide(figures(api={"errors": 2, "error_rate": 4.0}))["rollback"]


def test_overall_error_rate_when_no_single_target_crosses():
    fig = figures(a={"errors": 2, "error_rate": 4.0}, b={"errors": 2, "error_rate": 4.0})
    fig["overall"]["error_rate"] = 6.0
    assert triggers(t.decide(fig)) == [("error_rate", "overall")]


def test_p95_degradation_needs_a_shift_and_the_floor():
    # twice the baseline, p50 up too: fires
    assert triggers(t.decide(figures(api={"p50_ms": 250.0, "p95_ms": 400.0}), baseline=BASE)) == [("p95_degradation", "api")]
    # 1.2x: does not
    assert not t.decide(figures(api={"p50_ms": 120.0, "p95_ms": 240.0}), baseline=BASE)["rollback"]
    # a tail blip (p50 unchanged): does not
    assert not t.decide(figures(api={"p50_ms": 100.0, "p95_ms": 900.0}), baseline=BASE)["rollback"]
    # a few-ms baseline doubling on noise: below the floor
    tiny = {"version": 1, "targets": {"api": {"p50_ms": 2.0, "p95_ms": 4.0}}}
    assert not t.decide(figures(api={"p50_ms": 5.0, "p95_ms": 9.0}), baseline=tiny)["rollback"]
    # no baseline: never
    assert not t.decide(figures(api={"p50_ms": 250.0, "p95_ms": 400.0}))["rollback"]


# Figures of the reference stack (tests/integration rollback_trigger's targets, 10 s windows at
# 10 requests/s, 2026-11-26, host load average 6): v1's baseline, three later windows of the same
# good v1, and the bad v2 `--fault slow --delay 0.042` (the baseline p95 of the API: twice as slow).
REAL_BASE = {"version": 1, "targets": {"auth_login": {"p50_ms": 19.3, "p95_ms": 40.3},
                                       "api_projects": {"p50_ms": 14.8, "p95_ms": 42.3},
                                       "frontend": {"p50_ms": 2.2, "p95_ms": 6.2}}}
REAL_GOOD = [
    {"auth_login": (29.2, 74.9), "api_projects": (28.8, 108.2), "frontend": (4.9, 16.0)},
    {"auth_login": (26.1, 127.1), "api_projects": (19.4, 65.3), "frontend": (3.3, 10.0)},
    {"auth_login": (25.4, 56.4), "api_projects": (18.1, 65.7), "frontend": (3.0, 9.0)},
]
REAL_SLOW_2X = {"auth_login": (87.3, 321.4), "api_projects": (69.5, 257.7), "frontend": (1.8, 21.2)}


def real(window):
    return figures(**{name: {"requests": 33, "p50_ms": p50, "p95_ms": p95} for name, (p50, p95) in window.items()})


@pytest.mark.parametrize("window", REAL_GOOD)
def test_real_good_windows_of_a_busy_host_do_not_fire(window):
    """The same good build on a busy host: p95s 1.5-3x the baseline (a tail of slow answers), the
    p50s up by less than half the baseline p95: no shift, no trigger (the old 100 ms floor was not
    what kept them quiet: the p50 guard is)."""
    assert not t.decide(real(window), baseline=REAL_BASE)["rollback"]


def test_real_slow_2x_fires_on_a_fast_stack():
    """2x on a stack whose baseline p95 is 40 ms fires; so does 2x on a quiet host, where the shift is
    only ~20 ms (p95 17-24 ms -> 37-45 ms), which the old absolute floor of 100 ms never let fire."""
    verdict = t.decide(real(REAL_SLOW_2X), baseline=REAL_BASE)
    assert ("p95_degradation", "api_projects") in triggers(verdict)
    quiet_base = {"version": 1, "targets": {"api": {"p50_ms": 9.0, "p95_ms": 21.0}}}
    # quiet host (bench/watchdog, load 1.4): baseline p95 17-24 ms, 2x 37-45 ms; every answer + 21 ms
    assert triggers(t.decide(figures(api={"p50_ms": 30.0, "p95_ms": 41.0}), baseline=quiet_base)) == [("p95_degradation", "api")]
    assert not t.decide(figures(api={"p50_ms": 30.0, "p95_ms": 41.0}), baseline=quiet_base, p95_min_increase_ms=100)["rollback"]
    # 1.2x on the same stack: every answer + 4 ms
    assert not t.decide(figures(api={"p50_ms": 13.0, "p95_ms": 25.5}), baseline=quiet_base)["rollback"]


def test_p50_shift_needed_scales_with_the_baseline():
    assert t.p50_shift_needed(20.0) == 10.0
    assert t.p50_shift_needed(200.0) == 100.0
    assert t.p50_shift_needed(2.0) == 5.0          # the small absolute floor: half of 10 ms
    assert t.p50_shift_needed(200.0, p95_degradation_max=100) == 200.0
    assert t.p50_shift_needed(None, None, None) == 0.0


def test_latency_needs_twenty_good_answers():
    few = figures(api={"requests": 12, "p50_ms": 900.0, "p95_ms": 1500.0})
    assert not t.decide(few)["rollback"]
    assert t.decide(few, min_latency_samples=10)["rollback"]


def test_p95_absolute():
    verdict = t.decide(figures(api={"p50_ms": 900.0, "p95_ms": 1500.0}))
    assert triggers(verdict) == [("p95_absolute", "api")]
    assert not t.decide(figures(api={"p50_ms": 900.0, "p95_ms": 1500.0}), p95_absolute_max_ms=None)["rollback"]
    assert not t.decide(figures(api={"p50_ms": 50.0, "p95_ms": 1500.0}))["rollback"]


def test_baseline_file(tmp_path):
    path = tmp_path / "b.json"
    doc = t.make_baseline(figures(api={}, health={"kind": "health"}), images={"backend": "sha256:1"}, stack="td")
    assert set(doc["targets"]) == {"api"} and doc["images"] == {"backend": "sha256:1"} and doc["version"] == 1
    path.write_text(json.dumps(doc))
    assert t.load_baseline(str(path))["targets"]["api"]["p95_ms"] == 20.0
    path.write_text("{nope")
    with pytest.raises(t.TriggerError, match="not valid JSON.*playbooks/baseline.yml"):
        t.load_baseline(str(path))
    path.write_text(json.dumps({"version": 9, "targets": {}}))
    with pytest.raises(t.TriggerError, match="version 9"):
        t.load_baseline(str(path))
    with pytest.raises(t.TriggerError, match="cannot read"):
        t.load_baseline(str(tmp_path / "missing.json"))


def test_display_url_hides_secrets():
    assert t.display_url("http://u:pw@127.0.0.1:8/x?token=s#f") == "http://127.0.0.1:8/x"


def test_wilson_lower_bound():
    assert t.wilson_lower(0, 0) == 0.0
    assert t.wilson_lower(6, 20) > 0.05      # 30 % of 20: surely above 5 %
    assert t.wilson_lower(1, 20) < 0.05      # 5 % of 20: not sure


def test_normalize_targets_rejects_bad_ones():
    for bad, text in (([], "non-empty"), ([{"name": "a", "url": "ftp://x/"}], "http"),
                      ([{"name": "a", "url": "http://h/", "kind": "x"}], "kind"),
                      ([{"name": "a", "url": "http://h/"}, {"name": "a", "url": "http://h/"}], "twice")):
        with pytest.raises(t.TriggerError, match=text):
            t.normalize_targets(bad)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        status = 503 if self.path.startswith("/bad") else (500 if self.path.startswith("/err") else 200)
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_sample_stops_early_on_failed_health_checks(server):
    fig = t.sample([{"name": "h", "url": server + "/bad", "kind": "health"}], window=10, interval=0.1, failures=3)
    assert fig["stopped_early"] and fig["sampled_s"] < 2
    assert fig["targets"]["h"]["consecutive_failures"] == 3
    assert t.decide(fig)["rollback"]


def test_sample_stops_early_on_errors_and_hides_headers(server):
    fig = t.sample([{"name": "e", "url": server + "/err", "headers": {"X-API-Key": "sekret-key"}}],
                   window=10, rate=50, failures=3)
    assert fig["stopped_early"] and fig["targets"]["e"]["error_rate"] == 100.0
    assert "sekret-key" not in json.dumps(fig)


def test_sample_good_runs_the_window(server):
    fig = t.sample([{"name": "h", "url": server + "/ok", "kind": "health"}, {"name": "r", "url": server + "/ok"}],
                   window=0.6, interval=0.2, rate=20)
    assert not fig["stopped_early"] and 0.5 <= fig["sampled_s"] < 2
    assert fig["targets"]["r"]["requests"] >= 5 and fig["targets"]["r"]["errors"] == 0
    assert not t.decide(fig)["rollback"]


def test_sample_counts_refused_as_unavailability():
    fig = t.sample([{"name": "r", "url": "http://127.0.0.1:9/"}], window=5, interval=0.2, failures=3, rate=20)
    assert fig["stopped_early"] and fig["targets"]["r"]["refused"] > 0 and fig["targets"]["r"]["errors"] == 0
    assert [r["trigger"] for r in t.decide(fig)["reasons"]] == ["unavailable"]


def test_sample_carries_a_run_of_failed_checks_over_from_the_window_before(server):
    """N consecutive failed health checks across a window boundary: 2 carried + 1 failed now fire at once."""
    fig = t.sample([{"name": "h", "url": server + "/bad", "kind": "health"}], window=10, interval=0.1, failures=3,
                   carry={"h": 2})
    assert fig["stopped_early"] and fig["sampled_s"] < 1
    health = fig["targets"]["h"]
    assert health["requests"] == 1 and health["carried_failures"] == 2 and health["consecutive_failures"] == 3
    assert [r["trigger"] for r in t.decide(fig)["reasons"]] == ["unavailable"]
    # a check that passes ends the carried run: nothing fires
    fig = t.sample([{"name": "h", "url": server + "/ok", "kind": "health"}], window=0.35, interval=0.1, failures=3,
                   carry={"h": 2})
    assert fig["targets"]["h"]["failing_now"] == 0 and fig["targets"]["h"]["consecutive_failures"] == 2
    assert not t.decide(fig)["rollback"]
    # only health targets, only whole numbers above 0, only known names are carried
    fig = t.sample([{"name": "h", "url": server + "/ok", "kind": "health"}, {"name": "r", "url": server + "/ok"}],
                   window=0.25, interval=0.1, rate=20, carry={"r": 5, "h": True, "x": 3})
    assert fig["targets"]["h"]["carried_failures"] == 0 and fig["targets"]["r"]["carried_failures"] == 0


def test_carry_over_takes_the_runs_still_going_on_unless_the_verdict_fired():
    fig = figures(h={"kind": "health", "failing_now": 2, "consecutive_failures": 2}, g={"kind": "health", "failing_now": 0},
                  api={"failing_now": 4})
    assert t.carry_over(t.decide(fig)) == {"h": 2}
    fired = figures(h={"kind": "health", "failing_now": 3, "consecutive_failures": 3})
    assert t.carry_over(t.decide(fired)) == {}
    assert t.carry_over(None) == {} and t.carry_over({"rollback": False}) == {}


num = st.one_of(st.none(), st.floats(min_value=0, max_value=1e6, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(requests=st.integers(0, 10000), errors=st.integers(0, 10000), p50=num, p95=num, base50=num, base95=num,
       run=st.integers(0, 50), down=st.floats(0, 1e4, allow_nan=False))
def test_decide_is_total_and_consistent(requests, errors, p50, p95, base50, base95, run, down):
    """Any figures: decide returns rollback == bool(reasons), every reason names a known trigger and
    has a detail sentence, and figures with no errors, no failures and fast answers never fire."""
    errors = min(errors, requests)
    fig = figures(h={"kind": "health", "consecutive_failures": run, "unavailable_s": down},
                  api={"requests": requests, "errors": errors, "error_rate": (100.0 * errors / requests) if requests else None,
                       "p50_ms": p50, "p95_ms": p95, "longest_down_s": down})
    base = {"version": 1, "targets": {"api": {"p50_ms": base50, "p95_ms": base95}}}
    verdict = t.decide(fig, baseline=base)
    assert verdict["rollback"] == bool(verdict["reasons"])
    for reason in verdict["reasons"]:
        assert reason["trigger"] in t.TRIGGERS and reason["detail"].strip()
        assert json.dumps(reason)
    if errors == 0 and run < 3 and down < 3 and (p95 is None or p95 <= 100):
        assert not verdict["rollback"], verdict["reasons"]
