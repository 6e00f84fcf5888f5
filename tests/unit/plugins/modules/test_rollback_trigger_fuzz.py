"""Property tests (Hypothesis, module_fuzz.py) of rollback_trigger's argument handling: every
option, values of its type and worse, one at a time; the module ends in exit_json or fail_json with
a msg, never a traceback or a hang, and never returns the API key, a header value or a body.

Generated URLs never leave this machine: their host is 127.0.0.1 (port 9, where nothing listens,
or an invalid port) or invalid, so the module refuses them before any request; and
``no_traffic_elsewhere`` fails the test if any other host is looked up at all.
"""
from __future__ import annotations

from hypothesis import strategies as st

from local_http import no_traffic_elsewhere
from module_fuzz import ModuleFuzz, strategy_for, text_values

from ansible_collections.taylordash.rollback.plugins.modules import rollback_trigger

URL = "http://127.0.0.1:9/health"
SECRET = "fuzz-secret-value-1234"


def urls():
    scheme = st.sampled_from(["http://", "https://", "ftp://", "", "http:/"])
    userinfo = st.sampled_from(["", "admin:secret@", ":@"])
    host = st.sampled_from(["127.0.0.1", "127.0.0.1", "[::1", "", "300.1.1.1", "a..b", "127.0.0.1\x00"])
    port = st.sampled_from([":9", ":9", ":0", ":99999", ":abc", ""])
    path = st.sampled_from(["/", "/health", "/%00", "", "/?token=secret#x"])
    return st.one_of(st.tuples(scheme, userinfo, host, port, path).map("".join), text_values())


def targets():
    spec = rollback_trigger.TARGET_OPTIONS
    optional = {name: strategy_for(option) for name, option in spec.items() if name not in ("name", "url", "headers", "body")}
    optional["headers"] = st.sampled_from([{"X-API-Key": SECRET}, {"bad name": SECRET}, {"X": "a\nb"}, None])
    optional["body"] = st.sampled_from([SECRET, None, ""])
    target = st.fixed_dictionaries({"name": text_values(), "url": urls()}, optional=optional)
    return st.one_of(st.lists(target, max_size=3), text_values(), st.none())


FUZZ = ModuleFuzz(
    rollback_trigger,
    base_args={"targets": [{"name": "h", "url": URL, "kind": "health"}, {"name": "r", "url": URL}],
               "window": 0.3, "interval": 0.1, "rate": 20, "request_timeout": 0.2, "api_key": SECRET},
    strategies={"targets": targets(),
                "baseline": st.sampled_from(["", "/nonexistent/b.json", "\x00", "../x", "b.json"]),
                "ca_path": st.sampled_from(["", "/nonexistent/ca.pem", "\x00", "../x", "ca.pem"])},
    deadline=15,
)


@FUZZ.given_options(max_examples=80)
def test_rollback_trigger_any_option(option_and_value, tmp_path):
    with no_traffic_elsewhere() as refused:
        kind, result = FUZZ.check(option_and_value, cwd=tmp_path)
    assert not refused, "a request would have left 127.0.0.1: %r" % refused
    text = repr(result)
    assert SECRET not in text, text[:400]
    if kind == "exit":
        assert result["changed"] is False
        assert result["rollback"] == bool(result["reasons"])
