# -*- coding: utf-8 -*-
# Copyright: (c) 2025, TaylorDash operations team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The validate_p1 output parser, fed with output as validation scripts print it."""
from __future__ import annotations

import pytest

from ansible_collections.taylordash.rollback.plugins.module_utils._validate_output import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    PatternError,
    build_patterns,
    clean_line,
    compute_pass_rate,
    describe_checks,
    first_lines,
    parse_lines,
    parse_output,
    split_output,
    strip_ansi,
)

ESC = "\x1b"

# The reference stack's format, all checks passing.
ALL_PASS = """\
TaylorDash P1 Validation Suite
==================================
Started: 2025-01-15T10:32:01Z

[PASS] backend_health - HTTP 200 version=v1 (0.004s)
[PASS] backend_ready - HTTP 200 (0.003s)
[PASS] api_projects - HTTP 200 count=12 (0.011s)
[PASS] api_auth_login - session token issued (0.045s)
[PASS] api_plugins - HTTP 200 count=3 (0.006s)
[PASS] frontend - HTTP 200 (0.002s)
[PASS] database - accepting connections
[PASS] migrations - head=3f2a1c (expected 3f2a1c)
[PASS] nginx_tls - certificate valid for 89 days

Summary: 9/9 checks passed (100.0%)
"""

# The brief's sample: one failure, 88.9% (below the seed's 89%).
ONE_FAIL = """\
[PASS] backend_health - HTTP 200 version=v1 (0.004s)
[FAIL] api_projects - HTTP 500 (0.003s)
[PASS] frontend
[PASS] api_auth_login - session token issued (0.041s)
[PASS] api_plugins - HTTP 200 count=3 (0.006s)
[PASS] database - accepting connections
[PASS] migrations - head=3f2a1c
[PASS] nginx_tls - certificate valid for 89 days
[PASS] backend_ready - HTTP 200 (0.003s)
Summary: 8/9 checks passed (88.9%)
"""

# Banners, progress chatter and stderr noise interleaved (as a merged stream would show them).
NOISY = """\
+ set -euo pipefail
>>> Checking backend...
[PASS] backend_health - HTTP 200 version=v1 (0.004s)
curl: (7) Failed to connect to localhost port 5174 after 0 ms: Connection refused
[FAIL] frontend - connection refused (0.001s)
    hint: is the frontend container running?
[INFO] Checking database, this can take a while
[PASS] database - accepting connections
----------------------------------
Summary: 2/3 checks passed (66.7%)
Validation finished with errors
"""

# Emoji output, as many hand-written validate_p1.sh scripts print it. Note the warning sign
# printed with and without the emoji variation selector.
EMOJI = """\
\U0001F50D TaylorDash P1 validation
\u2705 Backend health
\u2705 API projects - 12 projects
\u274C Frontend - HTTP 502
\u26A0\uFE0F Auth response time - 0.7s (target < 0.5s)
\u26A0 Plugin list slow - 0.6s
\u23ED\uFE0F Plugins admin - disabled
\U0001F4CA Pass rate: 80.0% (4/5)
"""
EMOJI_PATTERNS = dict(
    check_pattern=r"^\s*(?P<status>\u2705|\u274C|\u26A0\uFE0F?|\u23ED\uFE0F?)\s*(?P<name>.+?)"
                  r"(?:\s+-\s+(?P<detail>.*))?\s*$",
    pass_values=["\u2705"],
    fail_values=["\u274C"],
    warn_values=["\u26A0\uFE0F"],
    skip_values=["\u23ED"],
    summary_pattern=r"Pass rate:\s*(?P<rate>[\d.]+)%\s*\((?P<passed>\d+)/(?P<total>\d+)\)",
)

PASS_COLON = """\
Running P1 checks against http://localhost:3000
PASS: backend_health (0.004s)
PASS: api_projects (0.010s)
FAIL: frontend HTTP 502
SKIP: plugins
3 of 4 checks passed
"""
PASS_COLON_PATTERNS = dict(
    check_pattern=r"^(?P<status>PASS|FAIL|SKIP|WARN):\s+(?P<name>\S+)(?:\s+(?P<detail>.*))?$",
    summary_pattern=r"(?P<passed>\d+) of (?P<total>\d+) checks passed",
)

MISSING_SUMMARY = """\
[PASS] backend_health - HTTP 200
[PASS] frontend - HTTP 200
[FAIL] database - pg_isready: no response
"""

CONTRADICTION = """\
[PASS] backend_health - HTTP 200
[FAIL] api_projects - HTTP 500
[PASS] api_auth_login
[PASS] api_plugins
[FAIL] frontend - HTTP 502
[PASS] database
[PASS] migrations
[PASS] nginx_tls
[PASS] backend_ready
Summary: 9/9 checks passed (100%)
"""

NO_RESULTS = """\
Usage: validate_p1.sh [--quick] [--json]
error: unknown option --full
"""

SKIP_WARN = """\
[PASS] backend_health - HTTP 200
[WARN] api_projects - HTTP 200 but 0.8s (target < 0.5s)
[SKIP] api_plugins - plugin system disabled
[SKIP] nginx_tls - no certificate configured
[FAIL] frontend - HTTP 502
[PASS] database
Summary: 3/4 checks passed (75.0%)
"""

CRLF = "[PASS] backend_health - HTTP 200\r\n[FAIL] frontend - HTTP 502\r\n[PASS] database\r\nSummary: 2/3 checks passed (66.7%)\r\n"

ANSI = (
    "%(e)s[1m=== TaylorDash validation ===%(e)s[0m\n"
    "%(e)s[32m[PASS]%(e)s[0m backend_health - HTTP 200\n"
    "[%(e)s[0;31mFAIL%(e)s[0m] frontend - %(e)s[33mHTTP 502%(e)s[0m\n"
    "%(e)s[1;32m[PASS]%(e)s[0m%(e)s[K database\n"
    "%(e)s]0;validate_p1%(e)s\\%(e)s[1mSummary: 2/3 checks passed (66.7%%)%(e)s[0m\n"
) % {"e": ESC}

DUPLICATES = """\
[PASS] backend_health - first probe
[FAIL] backend_health - second probe timed out
[PASS] frontend
Summary: 2/3 checks passed (66.7%)
"""

ZERO_OF_ZERO = """\
No checks enabled for profile 'none'
Summary: 0/0 checks passed (0%)
"""

RATE_WRONG = """\
[PASS] a
[FAIL] b
Summary: 1/2 checks passed (100%)
"""

RATE_TRUNCATED = """\
[PASS] a
[PASS] b
[FAIL] c
Summary: 2/3 checks passed (66%)
"""

TWO_SUMMARIES = """\
[PASS] a
[FAIL] b
Summary: 2/2 checks passed (100%)
Summary: 1/2 checks passed (50%)
"""

UNKNOWN_STATUS = """\
[PASS] backend_health
[ERROR] database - connection refused
[INFO] done
[PASS] frontend
Summary: 2/3 checks passed (66.7%)
"""

LOWERCASE = """\
[pass] backend_health
[Fail] frontend
summary: 1/2 checks passed (50.0%)
"""

PROGRESS = "checking backend...\r[PASS] backend_health - HTTP 200\n[....]\r[FAIL] frontend - HTTP 502\nSummary: 1/2 checks passed (50%)\n"

SUMMARY_ONLY = """\
Summary: 8/9 checks passed (88.9%)
"""

IMPOSSIBLE = """\
[PASS] a
Summary: 3/2 checks passed
"""

NAMES = """\
  [PASS] api/v1:projects.list-all - 12 rows
\t[PASS] frontend.index_html
[FAIL] auth/login - HTTP 401 - bad credentials - admin
Summary: 2/3 checks passed
"""

SINGULAR = """\
[PASS] only_check
Summary: 1/1 check passed (100%)
"""

CASES = [
    # id, output, pattern options, expected values
    ("all_pass", ALL_PASS, {}, dict(
        passed=9, failed=0, skipped=0, warnings=0, total=9, pass_rate=100.0, failed_checks=[],
        summary={"passed": 9, "total": 9, "rate": 100.0, "line": "Summary: 9/9 checks passed (100.0%)"},
        problems=[], unrecognized=[])),
    ("one_fail", ONE_FAIL, {}, dict(
        passed=8, failed=1, total=9, pass_rate=88.9, failed_checks=["api_projects"], problems=[])),
    ("noisy", NOISY, {}, dict(
        passed=2, failed=1, total=3, pass_rate=66.7, failed_checks=["frontend"], problems=[], unrecognized=[])),
    ("emoji", EMOJI, EMOJI_PATTERNS, dict(
        passed=4, failed=1, skipped=1, warnings=2, total=5, pass_rate=80.0, failed_checks=["Frontend"],
        warning_checks=["Auth response time", "Plugin list slow"], skipped_checks=["Plugins admin"],
        summary={"passed": 4, "total": 5, "rate": 80.0,
                 "line": "\U0001F4CA Pass rate: 80.0% (4/5)"},
        problems=[], unrecognized=[])),
    ("pass_colon", PASS_COLON, PASS_COLON_PATTERNS, dict(
        passed=2, failed=1, skipped=1, total=3, failed_checks=["frontend"], skipped_checks=["plugins"],
        problems=["summary says 3/4 but the check lines show 2/3; 1 check printed FAIL: frontend"])),
    ("missing_summary", MISSING_SUMMARY, {}, dict(
        passed=2, failed=1, total=3, pass_rate=66.7, summary=None, problems=[])),
    ("contradiction", CONTRADICTION, {}, dict(
        passed=7, failed=2, total=9, failed_checks=["api_projects", "frontend"],
        problems=["summary says 9/9 but the check lines show 7/9; 2 checks printed FAIL: api_projects, frontend"])),
    ("no_results", NO_RESULTS, {}, dict(
        passed=0, failed=0, total=0, pass_rate=None, checks=[], summary=None, problems=[])),
    ("skip_warn", SKIP_WARN, {}, dict(
        passed=3, failed=1, skipped=2, warnings=1, total=4, pass_rate=75.0,
        warning_checks=["api_projects"], skipped_checks=["api_plugins", "nginx_tls"], problems=[])),
    ("crlf", CRLF, {}, dict(
        passed=2, failed=1, total=3, failed_checks=["frontend"],
        checks=[{"name": "backend_health", "status": PASS, "detail": "HTTP 200"},
                {"name": "frontend", "status": FAIL, "detail": "HTTP 502"},
                {"name": "database", "status": PASS, "detail": None}],
        summary={"passed": 2, "total": 3, "rate": 66.7, "line": "Summary: 2/3 checks passed (66.7%)"},
        problems=[])),
    ("ansi", ANSI, {}, dict(
        passed=2, failed=1, total=3, failed_checks=["frontend"],
        checks=[{"name": "backend_health", "status": PASS, "detail": "HTTP 200"},
                {"name": "frontend", "status": FAIL, "detail": "HTTP 502"},
                {"name": "database", "status": PASS, "detail": None}],
        summary={"passed": 2, "total": 3, "rate": 66.7, "line": "Summary: 2/3 checks passed (66.7%)"},
        problems=[])),
    ("duplicates", DUPLICATES, {}, dict(
        passed=2, failed=1, total=3, failed_checks=["backend_health"], duplicates=["backend_health"], problems=[])),
    ("zero_of_zero", ZERO_OF_ZERO, {}, dict(
        passed=0, failed=0, total=0, pass_rate=None, checks=[],
        summary={"passed": 0, "total": 0, "rate": 0.0, "line": "Summary: 0/0 checks passed (0%)"},
        problems=[])),
    ("rate_wrong", RATE_WRONG, {}, dict(
        passed=1, failed=1, pass_rate=50.0,
        problems=["summary says 1/2 checks passed but gives a rate of 100% (expected 50%)"])),
    ("rate_truncated", RATE_TRUNCATED, {}, dict(passed=2, failed=1, pass_rate=66.7, problems=[])),
    ("two_summaries", TWO_SUMMARIES, {}, dict(
        passed=1, failed=1, summary={"passed": 1, "total": 2, "rate": 50.0,
                                     "line": "Summary: 1/2 checks passed (50%)"},
        problems=["the output has 2 summary lines that disagree: 2/2, 1/2"])),
    ("unknown_status", UNKNOWN_STATUS, {}, dict(
        passed=2, failed=0, total=2, problems=["summary says 2/3 but the check lines show 2/2 (no check printed FAIL)"],
        unrecognized=[
            {"line_no": 2, "status": "ERROR", "name": "database", "line": "[ERROR] database - connection refused"},
            {"line_no": 3, "status": "INFO", "name": "done", "line": "[INFO] done"}])),
    ("lowercase", LOWERCASE, {}, dict(passed=1, failed=1, total=2, failed_checks=["frontend"], problems=[])),
    ("progress_cr", PROGRESS, {}, dict(
        passed=1, failed=1, failed_checks=["frontend"], problems=[], unrecognized=[])),
    ("summary_only", SUMMARY_ONLY, {}, dict(
        total=0, pass_rate=None,
        problems=["summary says 8/9 but the check lines show 0/0 "
                  "(no check line was recognised; check_pattern may not match this output)"])),
    ("impossible_summary", IMPOSSIBLE, {}, dict(
        problems=["summary says 3/2: more checks passed than ran",
                  "summary says 3/2 but the check lines show 1/1 (no check printed FAIL)"])),
    ("names_and_details", NAMES, {}, dict(
        passed=2, failed=1,
        checks=[{"name": "api/v1:projects.list-all", "status": PASS, "detail": "12 rows"},
                {"name": "frontend.index_html", "status": PASS, "detail": None},
                {"name": "auth/login", "status": FAIL, "detail": "HTTP 401 - bad credentials - admin"}],
        summary={"passed": 2, "total": 3, "rate": None, "line": "Summary: 2/3 checks passed"},
        problems=[])),
    ("singular_check", SINGULAR, {}, dict(passed=1, total=1, pass_rate=100.0, problems=[])),
    ("empty", "", {}, dict(total=0, pass_rate=None, checks=[], summary=None, problems=[])),
]


@pytest.mark.parametrize("output, options, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse_captured_output(output, options, expected):
    result = parse_output(output, build_patterns(**options)).as_dict()
    for key, value in expected.items():
        assert result[key] == value, key


@pytest.mark.parametrize("output, options, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_counts_are_consistent(output, options, expected):
    result = parse_output(output, build_patterns(**options))
    assert result.total == result.passed + result.failed
    assert result.passed >= result.warnings
    assert len(result.checks) == result.passed + result.failed + result.skipped
    if result.total:
        assert result.pass_rate == pytest.approx(100.0 * result.passed / result.total)
    else:
        assert result.pass_rate is None and not result.has_results


def test_pass_rate_is_not_rounded_before_comparison():
    result = parse_output(ONE_FAIL)
    assert result.pass_rate == pytest.approx(88.888, abs=1e-3)
    assert result.pass_rate < 89
    assert result.as_dict()["pass_rate"] == 88.9


def test_parse_lines_accepts_lines_with_endings_and_default_patterns():
    lines = ["[PASS] a\n", "[FAIL] b\r\n", "Summary: 1/2 checks passed (50%)\n"]
    result = parse_lines(lines)
    assert (result.passed, result.failed, result.problems) == (1, 1, [])
    assert [c.line_no for c in result.checks] == [1, 2]


def test_summary_line_is_never_a_check():
    patterns = build_patterns(check_pattern=r"^(?P<status>\w+):?\s+(?P<name>\S+)",
                              pass_values=["Summary", "ok"])
    result = parse_output("ok backend\nSummary: 1/1 checks passed\n", patterns)
    assert [c.name for c in result.checks] == ["backend"]
    assert result.summary["total"] == 1


def test_detail_group_is_optional_in_custom_pattern():
    patterns = build_patterns(check_pattern=r"^(?P<status>OK|KO) (?P<name>\S+)", pass_values=["ok"],
                              fail_values=["ko"])
    result = parse_output("OK a trailing text\nKO b\n", patterns)
    assert [c.as_dict() for c in result.checks] == [
        {"name": "a", "status": PASS, "detail": None}, {"name": "b", "status": FAIL, "detail": None}]


def test_empty_name_is_unrecognised():
    patterns = build_patterns(check_pattern=r"^(?P<status>PASS|FAIL):(?P<name>.*)$")
    result = parse_output("PASS:\nPASS: a\n", patterns)
    assert [c.name for c in result.checks] == ["a"]
    assert result.unrecognized[0]["line"] == "PASS:"


@pytest.mark.parametrize("status, expected", [
    ("PASS", PASS), ("pass", PASS), (" Pass ", PASS), ("FAIL", FAIL), ("skip", SKIP), ("Warn", WARN),
    ("ERROR", None), ("", None)])
def test_classify_default_values(status, expected):
    assert build_patterns().classify(status) == expected


def test_classify_ignores_emoji_variation_selectors():
    patterns = build_patterns(**EMOJI_PATTERNS)
    assert patterns.classify("\u26A0") == WARN
    assert patterns.classify("\u26A0\uFE0F") == WARN
    assert patterns.classify("\u23ED\uFE0F") == SKIP
    assert patterns.classify("\u2705\uFE0E") == PASS
    assert patterns.classify("\u274C") == FAIL


@pytest.mark.parametrize("options, message", [
    (dict(check_pattern="([PASS"), "check_pattern is not a valid regular expression"),
    (dict(check_pattern=r"^(?P<status>\w+)"), "check_pattern must define the named group(s) name"),
    (dict(check_pattern=r"^(?P<state>\w+) (?P<check>\w+)"), "must define the named group(s) status, name"),
    (dict(check_pattern=r"^(?P<status>\w+) (?P<name>\w+) (?P<extra>.*)"), "unsupported named group(s) extra"),
    (dict(summary_pattern=r"(?P<passed>\d+) passed"), "summary_pattern must define the named group(s) total"),
    (dict(summary_pattern=r"(?P<passed>\d+"), "summary_pattern is not a valid regular expression"),
    (dict(pass_values=["OK"], fail_values=["ok"]), "status 'ok' is listed in both pass_values and fail_values"),
    (dict(warn_values=["pass"]), "listed in both pass_values and warn_values"),
    (dict(pass_values=[]), "pass_values and fail_values must each list at least one status"),
    (dict(fail_values=[" "]), "fail_values contains an empty status string"),
])
def test_bad_patterns_are_explained(options, message):
    with pytest.raises(PatternError) as excinfo:
        build_patterns(**options)
    assert message in str(excinfo.value)


def test_empty_skip_and_warn_lists_are_allowed():
    patterns = build_patterns(skip_values=[], warn_values=[])
    result = parse_output("[PASS] a\n[SKIP] b\n", patterns)
    assert result.passed == 1 and result.unrecognized[0]["status"] == "SKIP"


@pytest.mark.parametrize("raw, clean", [
    ("%s[32m[PASS]%s[0m a" % (ESC, ESC), "[PASS] a"),
    ("[%s[1;31mFAIL%s[m] b" % (ESC, ESC), "[FAIL] b"),
    ("%s]8;;http://x%s\\link%s]8;;%s\\ text" % (ESC, ESC, ESC, ESC), "link text"),
    ("%s]0;title\x07[PASS] t" % ESC, "[PASS] t"),
    ("%s(B[PASS] charset" % ESC, "[PASS] charset"),
    ("%s[1m[PASS]%s(B%s[m sgr0" % (ESC, ESC, ESC), "[PASS] sgr0"),
    ("bell\x07 and nul\x00", "bell and nul"),
    ("tab\tkept", "tab\tkept"),
])
def test_strip_ansi(raw, clean):
    assert strip_ansi(raw) == clean


@pytest.mark.parametrize("raw, clean", [
    ("[PASS] a\r\n", "[PASS] a"),
    ("[PASS] a\r", "[PASS] a"),
    ("50%\r75%\r[PASS] a", "[PASS] a"),
    ("\ufeff[PASS] a", "[PASS] a"),
])
def test_clean_line(raw, clean):
    assert clean_line(raw) == clean


@pytest.mark.parametrize("text, lines", [
    ("", []), ("a", ["a"]), ("a\n", ["a"]), ("a\nb", ["a", "b"]), ("a\n\nb\n", ["a", "", "b"]),
    ("a\r\nb\r\n", ["a\r", "b\r"]),
])
def test_split_output(text, lines):
    assert split_output(text) == lines


def test_compute_pass_rate_never_invents_a_rate():
    assert compute_pass_rate(0, 0) is None
    assert compute_pass_rate(0, 3) == 0.0
    assert compute_pass_rate(3, 3) == 100.0


def test_first_lines_skips_blank_and_shortens():
    lines = ["", "  ", "%s[1mbanner%s[0m" % (ESC, ESC), "x" * 300] + ["l%d" % i for i in range(20)]
    head = first_lines(lines, count=4, width=50)
    assert head[0] == "banner"
    assert len(head[1]) == 50 and head[1].endswith("...")
    assert head[2:] == ["l0", "l1"]


def test_describe_checks_is_bounded():
    result = parse_output("".join("[PASS] c%d\n" % i for i in range(30)))
    text = describe_checks(result.checks, limit=3)
    assert text == "c0 PASS, c1 PASS, c2 PASS, and 27 more"
