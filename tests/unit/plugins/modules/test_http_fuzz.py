"""Property tests (Hypothesis, tests/unit/plugins/modules/module_fuzz.py) of health_poll's and
http_latency's argument handling: every option, values of its type and worse, one at a time; the
module ends in exit_json or fail_json with a msg, never a traceback or a hang.

Generated URLs never leave this machine: their host is 127.0.0.1 (the port of local_http's server,
or an invalid one) or invalid, so the module refuses them before any request; and
``no_traffic_elsewhere`` fails the test if any other host is looked up at all.
"""
from __future__ import annotations

import pytest
from hypothesis import strategies as st

from local_http import LocalServer, no_traffic_elsewhere
from module_fuzz import HOSTILE_TEXT, ModuleFuzz, strategy_for, text_values

from ansible_collections.taylordash.rollback.plugins.modules import health_poll, http_latency

SERVER = None
PORT_MARK = "{port}"


def urls():
    """http(s) URLs on 127.0.0.1 or with an invalid host or port; ``{port}`` is the local server's."""
    scheme = st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "", "http:/", "http:///", "javascript:"])
    userinfo = st.sampled_from(["", "admin:secret@", "admin@", ":@", "a:b:c@", "x@y@", "%00:%ff@", "\u00e9:\u00fc@"])
    host = st.sampled_from(["127.0.0.1", "127.0.0.1", "127.0.0.1", "[::1", "", " ", "300.1.1.1", "b\u00fccher",
                            "a..b", "127.0.0.1\x00", "[zz::1]", ":", "-", "[", "127.0.0.1 "])
    port = st.sampled_from([":" + PORT_MARK, ":" + PORT_MARK, ":0", ":99999", ":65536", ":-1", ":abc", ":",
                            ":1e3", ":\u0661"])
    path = st.one_of(st.sampled_from(["/", "/health", "/../x", "/%00", "/\x00", "", "/?a=b#c", "/" + "x" * 5000]),
                     st.text(max_size=20).map(lambda text: "/" + text.replace("\x00", "")))
    built = st.tuples(scheme, userinfo, host, port, path).map("".join)
    # Text that is not an http URL at all (the harness's hostile list only holds local or invalid URLs).
    other = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=40).filter(lambda t: "://" not in t))
    return st.one_of(built, built, other)


def fill(value):
    """Put the local server's port into generated URLs (the server starts after collection)."""
    if isinstance(value, str):
        return value.replace(PORT_MARK, str(SERVER.port))
    if isinstance(value, list):
        return [fill(item) for item in value]
    if isinstance(value, dict):
        return {key: fill(item) for key, item in value.items()}
    return value


@pytest.fixture(scope="module", autouse=True)
def server():
    global SERVER
    SERVER = LocalServer()
    yield SERVER
    SERVER.close()
    SERVER = None


def check(fuzz, option_and_value, tmp_path):
    name, value = option_and_value
    with no_traffic_elsewhere() as refused:
        kind, result = fuzz.check((name, fill(value)), cwd=tmp_path)
    assert not refused, "a request would have left 127.0.0.1: %r" % refused
    # Credentials given in a URL never come back. (Hostile text of other fields may hold the same
    # characters and is quoted by ansible-core's own messages, such as "value of method must be...".)
    others = ""
    if name == "endpoints" and isinstance(value, list):
        others = repr([{k: v for k, v in ep.items() if k != "url"} for ep in value])
    if name in ("url", "endpoints") and "secret" not in others:
        text = repr(result)
        assert "secret" not in text, "URL credentials in the result: %s" % text[:300]
    return kind, result


HEALTH = ModuleFuzz(
    health_poll,
    base_args={"url": "http://127.0.0.1:%s/health" % PORT_MARK, "timeout": 0.3, "interval": 0.02,
               "request_timeout": 0.2},
    strategies={"url": urls(), "ca_path": st.sampled_from(["", "/nonexistent/ca.pem", "\x00", "../x", "ca.pem"])},
    deadline=10,
)


@HEALTH.given_options(max_examples=60)
def test_health_poll_any_option(option_and_value, tmp_path):
    HEALTH.base_args = fill(HEALTH.base_args)
    check(HEALTH, option_and_value, tmp_path)


def endpoints():
    spec = http_latency.argument_spec()["endpoints"]["options"]
    optional = {name: strategy_for(option) for name, option in spec.items() if name not in ("name", "url")}
    endpoint = st.fixed_dictionaries({"name": text_values(), "url": urls()}, optional=optional)
    return st.one_of(st.lists(endpoint, max_size=3), text_values(), st.none())


LATENCY = ModuleFuzz(
    http_latency,
    base_args={"endpoints": [{"name": "a", "url": "http://127.0.0.1:%s/health" % PORT_MARK}], "samples": 2,
               "timeout": 0.3, "request_timeout": 0.2},
    strategies={"endpoints": endpoints(),
                "ca_path": st.sampled_from(["", "/nonexistent/ca.pem", "\x00", "../x", "ca.pem"])},
    deadline=10,
)


@LATENCY.given_options(max_examples=60)
def test_http_latency_any_option(option_and_value, tmp_path):
    LATENCY.base_args = fill(LATENCY.base_args)
    check(LATENCY, option_and_value, tmp_path)
