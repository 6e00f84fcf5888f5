"""The validate role's filters: checklist, performance, failures and the lines shown, from
results shaped as http_latency, validate_p1 and pg_isready return them."""
from __future__ import annotations

from ansible_collections.taylordash.rollback.plugins.filter.validation_checklist import validation_checklist
from ansible_collections.taylordash.rollback.plugins.filter.validation_failures import validation_failures
from ansible_collections.taylordash.rollback.plugins.filter.validation_lines import validation_lines
from ansible_collections.taylordash.rollback.plugins.filter.validation_performance import validation_performance

DESCRIPTIONS = {"auth_login": "Login functionality (a session token is issued)",
                "api_projects": "API endpoints (the projects API returns a list)",
                "frontend": "Frontend accessible", "database": "Database responsive (pg_isready)"}


def endpoint(name, passed=True, **extra):
    ep = {"name": name, "url": "http://127.0.0.1:8080/" + name, "passed": passed, "statuses": {"200": 1},
          "samples": 3, "errors": 0, "latency": {"p50": 0.01, "p95": 0.02, "max": 0.0234}, "max_p95": 0.5,
          "summary": "%s: p50 0.010 s, p95 0.020 s over 3 samples (target 0.5 s)" % name,
          "last_error": None, "problems": []}
    ep.update(extra)
    return ep


HTTP = {"changed": False, "endpoints": [endpoint("auth_login"), endpoint("api_projects", json_length=3),
                                        endpoint("frontend", passed=False, last_error="connection refused")]}
DB_OK = {"rc": 0, "stdout": "/var/run/postgresql:5432 - accepting connections\n", "stderr": ""}


def test_checklist_items_say_what_was_seen():
    items = validation_checklist(HTTP, DB_OK, DESCRIPTIONS)
    assert [i["name"] for i in items] == ["auth_login", "api_projects", "frontend", "database"]
    assert items[0] == {"name": "auth_login", "description": DESCRIPTIONS["auth_login"], "passed": True,
                        "detail": "HTTP 200, session token issued (0.023 s)"}
    assert items[1]["detail"] == "HTTP 200, 3 projects (0.023 s)"
    assert (items[2]["passed"], items[2]["detail"]) == (False, "connection refused")
    assert (items[3]["passed"], items[3]["detail"]) == (True, "accepting connections")


def test_checklist_problems_when_no_last_error():
    items = validation_checklist({"endpoints": [endpoint("frontend", passed=False, problems=["HTTP 503", "slow"])]},
                                 DB_OK, DESCRIPTIONS)
    assert items[0]["detail"] == "HTTP 503; slow"


def test_checklist_when_the_http_checks_did_not_run():
    database = {"rc": 2, "stdout": "", "stderr": "", "msg": "non-zero return code"}
    items = validation_checklist({"failed": True, "msg": "bad url"}, database, DESCRIPTIONS)
    assert items == [
        {"name": "http_checks", "description": "Login, API and frontend checks", "passed": False, "detail": "bad url"},
        {"name": "database", "description": DESCRIPTIONS["database"], "passed": False, "detail": "non-zero return code"}]
    assert validation_checklist({}, {}, {})[1]["detail"] == "pg_isready gave no answer"


def test_database_detail_from_stderr():
    item = validation_checklist(HTTP, {"rc": 2, "stdout": "", "stderr": "pg:5432 - no response\n"}, DESCRIPTIONS)[-1]
    assert (item["passed"], item["detail"]) == (False, "no response")


def test_performance_items():
    items = validation_performance(HTTP)
    assert items[0] == {"endpoint": "auth_login", "url": "http://127.0.0.1:8080/auth_login", "passed": True,
                        "samples": 3, "errors": 0, "p50": 0.01, "p95": 0.02, "max": 0.0234, "target": 0.5,
                        "summary": HTTP["endpoints"][0]["summary"]}
    assert validation_performance({"failed": True, "msg": "x"}) == [] and validation_performance(None) == []


def test_failures_in_order():
    checklist = validation_checklist(HTTP, DB_OK, DESCRIPTIONS)
    perf = validation_performance(HTTP)
    p1 = {"failed": True, "msg": "pass rate below the minimum 89%"}
    assert validation_failures(p1, checklist, perf, HTTP, True) == [
        "validate_p1: pass rate below the minimum 89%",
        "checklist frontend: connection refused",
        "performance " + HTTP["endpoints"][2]["summary"]]


def test_failures_when_nothing_was_measured():
    assert validation_failures({"skipped": True}, [], [], {"failed": True, "msg": "timeout must be more than 0"}) == [
        "performance: timeout must be more than 0"]
    assert validation_failures({"skipped": True}, [], [], {"skipped": True}) == ["performance: not measured"]
    assert validation_failures({"skipped": True}, [], [], {"skipped": True}, performance_enabled=False) == []
    assert validation_failures({"failed": False}, [], validation_performance(
        {"endpoints": [endpoint("frontend")]}), {}, True) == []


def test_lines():
    results = {"passed": False, "duration": 3.412, "script": {"enabled": True, "msg": "9/9 checks passed"},
               "checklist": [{"name": "database", "passed": False, "detail": "no response"}],
               "performance": [{"passed": True, "summary": "frontend: fine"}]}
    assert validation_lines(results) == ["Validation FAILED in 3.412 s", "validate_p1: 9/9 checks passed",
                                         "checklist database: FAILED - no response", "performance ok frontend: fine"]
    results["script"]["enabled"] = False
    assert "validate_p1: 9/9 checks passed" not in validation_lines(results)
