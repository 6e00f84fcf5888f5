"""health_poll and http_latency on hostile input (issue 10): a clean fail_json before any request,
never a traceback, a hang or a credential in the output. main() runs in this process; the only
server is local_http's, on 127.0.0.1."""
from __future__ import annotations

import json
import time

import pytest
from ansible.module_utils.testing import patch_module_args

from local_http import LocalServer, no_traffic_elsewhere
from module_fuzz import ModuleFuzz

from ansible_collections.taylordash.rollback.plugins.modules import health_poll, http_latency


@pytest.fixture(scope="module")
def server():
    srv = LocalServer()
    yield srv
    srv.close()


@pytest.fixture
def call(capsys):
    """call(module, args) -> the JSON result main() printed (real exit_json/fail_json, so Ansible's
    own masking runs), within a deadline; fails the test on a traceback or a hang."""

    def run(module, args, deadline=10):
        fuzz = ModuleFuzz(module, deadline=deadline)
        original = fuzz.run
        started = time.monotonic()
        with no_traffic_elsewhere() as refused:
            # ModuleFuzz.run stops at exit/fail; replay the stop through the real exit to get the output.
            kind, result = original(args)
        assert not refused, refused
        assert time.monotonic() - started < deadline
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                with no_traffic_elsewhere():
                    module.main()
        out = capsys.readouterr().out
        return kind, json.loads(out), out

    return run


def latency_args(url, **extra):
    args = {"endpoints": [{"name": "a", "url": url}], "samples": 1, "timeout": 2, "request_timeout": 1}
    args.update(extra)
    return args


@pytest.mark.parametrize("module, make", [
    (health_poll, lambda url, **kw: dict(url=url, timeout=1, **kw)),
    (http_latency, latency_args),
])
@pytest.mark.parametrize("url, fragment", [
    ("http://[::1/", "is not a valid URL: Invalid IPv6 URL"),
    ("http://admin:secret@127.0.0.1:99999/", "a port is a number from 1 to 65535"),
    ("http://127.0.0.1:0/", "has port 0; a port is from 1 to 65535"),
    ("http://:80/", "names no host"),
])
def test_invalid_url_fails_cleanly_before_any_request(call, module, make, url, fragment):
    kind, result, out = call(module, make(url))
    assert kind == "fail" and result["failed"] is True
    assert fragment in result["msg"]
    assert "Connection refused" not in result["msg"]
    assert "admin:secret" not in out and ":secret@" not in out


@pytest.mark.parametrize("module, make", [
    (health_poll, lambda url, **kw: dict(url=url, **kw)),
    (http_latency, latency_args),
])
@pytest.mark.parametrize("option, value, fragment", [
    ("timeout", 1e308, "timeout must be at most 86400 seconds, got 1e+308"),
    ("timeout", "nan", "timeout must be a finite number of seconds, got nan"),
    ("timeout", "inf", "timeout must be a finite number of seconds, got inf"),
    ("request_timeout", "-inf", "request_timeout must be a finite number of seconds, got -inf"),
    ("interval", 1e308, "interval must be at most 86400 seconds"),
    ("interval", "nan", "interval must be a finite number of seconds, got nan"),
    ("max_body_bytes", 2 ** 63, "max_body_bytes must be from 0 to 67108864"),
])
def test_time_options_finite_and_in_range(call, server, module, make, option, value, fragment):
    kind, result, out = call(module, make(server.url, **{option: value}), deadline=5)
    assert kind == "fail" and fragment in result["msg"]
    assert "OverflowError" not in out and "NaN" not in out


def test_latency_targets_finite(call, server):
    args = latency_args(server.url)
    args["endpoints"][0].update(max_p50="nan", max_p95="inf")
    kind, result, out = call(http_latency, args)
    assert kind == "fail"
    assert "a: max_p50 must be a finite number of seconds, got nan" in result["msg"]
    assert "a: max_p95 must be a finite number of seconds, got inf" in result["msg"]


def test_health_poll_never_shows_url_credentials(call, server):
    url = server.url.replace("http://", "http://admin:s3cr3t-pw@")
    kind, result, out = call(health_poll, dict(url=url, timeout=1, interval=0.05, status_codes=[204]))
    assert kind == "fail"
    assert "s3cr3t-pw" not in out and "admin" not in out
    assert result["url"] == server.url.replace("http://", "http://********@")
    assert result["msg"].startswith(result["url"] + " not healthy")
    assert result["invocation"]["module_args"]["url"] == result["url"]


def test_http_latency_never_shows_url_credentials(call, server):
    url = server.url.replace("http://", "http://admin:s3cr3t-pw@")
    kind, result, out = call(http_latency, latency_args(url))
    assert kind == "exit", result["msg"]
    assert "s3cr3t-pw" not in out and "admin" not in out
    assert result["endpoints"][0]["url"] == server.url.replace("http://", "http://********@")
    assert result["invocation"]["module_args"]["endpoints"][0]["url"] == result["endpoints"][0]["url"]


def test_url_credentials_are_sent_as_basic_auth(monkeypatch, call, server):
    seen = []
    original = health_poll.probe

    def spy(url, headers=None, **kwargs):
        seen.append((url, dict(headers or {})))
        return original(url, headers=headers, **kwargs)

    monkeypatch.setattr(health_poll, "probe", spy)
    url = server.url.replace("http://", "http://admin:secret@")
    kind, result, out = call(health_poll, dict(url=url, timeout=2, interval=0.01))
    assert kind == "exit" and result["healthy"] is True
    assert seen[0] == (server.url, {"Authorization": "Basic YWRtaW46c2VjcmV0"})
    assert result["request_headers"] == []


def test_short_header_values_do_not_garble_numbers(call, server):
    kind, result, out = call(health_poll, dict(url=server.url, timeout=2, interval=0.01, headers={"X-Flag": "1"}))
    assert kind == "exit"
    assert "********" not in result["msg"] and result["attempts"] == 2
    assert result["invocation"]["module_args"]["headers"] == {"X-Flag": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}


def test_long_header_values_stay_masked(call, server):
    key = "k3y-" + "x" * 20
    kind, result, out = call(health_poll, dict(url=server.url + "?" + key, timeout=2, interval=0.01,
                                               headers={"X-API-Key": key}))
    assert key not in out


@pytest.mark.parametrize("module, args", [
    (health_poll, dict(url="http://127.0.0.1:1/", max_body_bytes="inf", headers={"X-API-Key": "k3y-secret-value"})),
    (health_poll, dict(url="http://127.0.0.1:1/", status_codes=[200, float("inf")])),
    (http_latency, dict(endpoints=[{"name": "a", "url": "http://127.0.0.1:1/", "headers": {"K": "k3y-secret-value"},
                                    "status_codes": ["-inf"]}])),
    (http_latency, dict(endpoints=[{"name": "a", "url": "http://127.0.0.1:1/"}], samples="inf")),
])
def test_infinite_integers_fail_cleanly(call, module, args):
    # ansible-core's int conversion raises OverflowError for infinity. RollbackModule marks a
    # top-level option so that the usual type check names it; build_module reports the rest.
    kind, result, out = call(module, args)
    assert kind == "fail"
    assert ("An argument is out of range: cannot convert Infinity to integer" in result["msg"]
            or "(not a finite number)' cannot be converted to an int" in result["msg"].replace('"', ''))
    assert "k3y-secret-value" not in out
