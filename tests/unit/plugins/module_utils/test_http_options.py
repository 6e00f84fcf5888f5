"""module_utils/_http_options, _seconds and _masking: the checks every HTTP module runs before
its first request, and which values are masked."""
from __future__ import annotations

import base64
import math

import pytest

from ansible_collections.taylordash.rollback.plugins.module_utils import _http_options as http
from ansible_collections.taylordash.rollback.plugins.module_utils._masking import (
    PLACEHOLDER,
    mask_secrets_only,
    masked_invocation,
)
from ansible_collections.taylordash.rollback.plugins.module_utils._seconds import (
    finite_or_none,
    seconds_problem,
)


@pytest.mark.parametrize("value, allow_zero, expected", [
    (5, False, None), (0.25, False, None), (86400, False, None), (0, True, None), (None, False, None),
    (0, False, "t must be more than 0 seconds, got 0"),
    (-1.0, False, "t must be more than 0 seconds, got -1"),
    (-1.0, True, "t must not be negative, got -1"),
    (1e308, False, "t must be at most 86400 seconds, got 1e+308"),
    (86400.5, True, "t must be at most 86400 seconds, got 86400.5"),
    (float("nan"), False, "t must be a finite number of seconds, got nan"),
    (float("inf"), True, "t must be a finite number of seconds, got inf"),
    (float("-inf"), False, "t must be a finite number of seconds, got -inf"),
    (10 ** 400, False, "t must be a finite number of seconds, got 1" + "0" * 400),
])
def test_seconds_problem(value, allow_zero, expected):
    assert seconds_problem("t", value, allow_zero=allow_zero) == expected


def test_finite_or_none():
    assert finite_or_none(float("nan")) is None and finite_or_none(float("inf")) is None
    assert finite_or_none(89.0) == 89.0 and finite_or_none("x") == "x"


@pytest.mark.parametrize("url, fragment", [
    ("http://[::1/", "is not a valid URL: Invalid IPv6 URL"),
    ("http://127.0.0.1:99999/", "has an invalid port (Port out of range 0-65535); a port is a number from 1 to 65535"),
    ("http://127.0.0.1:0/", "has port 0; a port is from 1 to 65535"),
    ("http://127.0.0.1:abc/", "has an invalid port"),
    ("http://:80/", "names no host"),
    ("http:///x", "names no host"),
    ("ftp://127.0.0.1/", "is not an http:// or https:// URL"),
    ("127.0.0.1:80", "is not an http:// or https:// URL"),
    ("", "url is empty"),
    ("http://a b/", "white space or control characters"),
    ("http://127.0.0.1\x00/", "white space or control characters"),
    ("http://300.1.1.1/", "invalid IPv4 address 300.1.1.1"),
    ("http://b\u00fccher.example/", "invalid host name"),
    ("http://a..b/", "invalid host name"),
    ("http://[zz::1]/", "is not a valid URL"),
])
def test_parse_url_refuses(url, fragment):
    with pytest.raises(http.UrlError) as err:
        http.parse_url(url)
    assert fragment in str(err.value)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/health", "https://localhost/", "HTTP://backend_1:3000/x?y=1#z",
    "http://[::1]:8080/", "http://example.com.", "https://127.0.0.1",
])
def test_parse_url_accepts(url):
    target = http.parse_url(url)
    assert target.url == url and target.display == url and target.authorization is None


@pytest.mark.parametrize("url", [
    "http://admin:secret@127.0.0.1:99999/", "http://admin:secret@[::1/", "http://admin:secret@:80/",
    "http://admin:secret@127.0.0.1:8080/health",
])
def test_credentials_never_shown(url):
    try:
        target = http.parse_url(url)
        texts = [target.display, target.url]
        assert target.display == "http://********@127.0.0.1:8080/health"
        assert target.url == "http://127.0.0.1:8080/health"
        assert target.authorization == "Basic " + base64.b64encode(b"admin:secret").decode()
    except http.UrlError as exc:
        texts = [str(exc)]
        assert "********@" in str(exc)
    for text in texts:
        assert "secret" not in text and "admin" not in text


def test_credentials_become_basic_auth_unless_authorization_is_given():
    target = http.parse_url("http://us%40er:p%3Ass@127.0.0.1/")
    assert base64.b64decode(target.authorization.split()[1]) == b"us@er:p:ss"
    assert http.request_headers({"X": 1}, target) == {"X": "1", "Authorization": target.authorization}
    assert http.request_headers({"authorization": "Bearer t"}, target) == {"authorization": "Bearer t"}
    assert http.request_headers({"A": None}, http.parse_url("http://127.0.0.1/")) == {"A": ""}


def test_request_problems_collects_everything():
    problems, target, pattern = http.request_problems(
        dict(url="http://x:99999/", status_codes=[200, 999], headers={"Bad Name": "v", "X": "a\nb", "Y": [1]},
             body_regex="("), prefix="ep: ")
    assert target is None and pattern is None
    assert problems[0].startswith("ep: url 'http://x:99999/' has an invalid port")
    assert "ep: status_codes must be HTTP status codes from 100 to 599, got 999" in problems
    assert "ep: headers: 'Bad Name' is not a valid header name" in problems
    assert "ep: headers: the value of X contains a line break or control character" in problems
    assert "ep: headers: the value of Y must be a string, not a list" in problems
    assert any(p.startswith("ep: body_regex '(' is not a valid regular expression") for p in problems)
    assert "a\nb" not in " ".join(problems)
    assert http.request_problems(dict(url="http://127.0.0.1/", status_codes=[]))[0] == [
        "status_codes must list at least one status code"]


def test_client_problems():
    assert http.client_problems(dict(timeout=60, request_timeout=5, max_body_bytes=0)) == []
    assert http.client_problems(dict(timeout=float("nan"), request_timeout=1e308, max_body_bytes=2 ** 63)) == [
        "timeout must be a finite number of seconds, got nan",
        "request_timeout must be at most 86400 seconds, got 1e+308",
        "max_body_bytes must be from 0 to 67108864, got 9223372036854775808",
    ]


def test_one_argument_spec_for_the_shared_options():
    spec = http.http_argument_spec()
    assert set(spec) == set(http.client_argument_spec()) | set(http.request_argument_spec())
    assert spec["headers"]["no_log"] is True and spec["body"]["no_log"] is True
    assert spec["max_body_bytes"]["default"] == 1048576 and spec["timeout"]["default"] == 60
    # a fresh dict each call: a module updating its copy changes no other module's spec
    http.client_argument_spec()["timeout"]["default"] = 1
    assert http.client_argument_spec()["timeout"]["default"] == 60


class FakeModule:
    def __init__(self, values):
        self.no_log_values = set(values)


def test_mask_secrets_only_keeps_long_values():
    module = FakeModule({"1", "abc", "s3cr3t", "1234"})
    mask_secrets_only(module)
    assert module.no_log_values == {"s3cr3t", "1234"}


def test_masked_invocation_hides_every_no_log_value():
    spec = dict(env=dict(type="dict", no_log=True), body=dict(type="str", no_log=True), n=dict(type="float"),
                endpoints=dict(type="list", elements="dict", options=dict(headers=dict(type="dict", no_log=True))))
    params = dict(env={"A": "1", "B": "long-secret"}, body="x", n=float("nan"),
                  endpoints=[{"headers": {"K": "v"}}], url="http://u:p@h/")
    invocation = masked_invocation(spec, params, replace=dict(url="http://********@h/"))
    args = invocation["module_args"]
    assert args["env"] == {"A": PLACEHOLDER, "B": PLACEHOLDER} and args["body"] == PLACEHOLDER
    assert args["endpoints"] == [{"headers": {"K": PLACEHOLDER}}]
    assert args["n"] == "nan" and args["url"] == "http://********@h/"
    assert params["env"]["A"] == "1" and math.isnan(params["n"])  # the module's own params untouched


@pytest.mark.parametrize("url, shown", [
    ("admin:secret@127.0.0.1:1/", "********@127.0.0.1:1/"),
    ("http:/admin:secret@127.0.0.1/", "http:/********@127.0.0.1/"),
    ("javascript:admin:secret@x", "********@x"),
    ("http://a@b:secret@127.0.0.1/x@y", "http://********@127.0.0.1/x@y"),
    ("http://127.0.0.1/path@x", "http://127.0.0.1/path@x"),
])
def test_display_url_masks_credentials_in_any_form(url, shown):
    # found by the property test: a URL without a scheme kept its credentials in the message
    assert http.display_url(url) == shown
