"""validation_plan (issue 11): each check runs when the stack has what it needs, is skipped with a
reason otherwise, and is a problem naming the variable when it was asked for explicitly."""
from __future__ import annotations

import pytest

from ansible_collections.taylordash.rollback.plugins.filter.validation_plan import validation_plan

TAYLORDASH = {
    "script_enabled": True, "script": None, "script_default": "/opt/td/ops/validate_p1.sh", "script_exists": True,
    "checklist_enabled": True, "perf_enabled": True, "login_path": None, "projects_path": None,
    "admin_password_set": True, "api_key_set": True, "frontend_service": None,
    "services": [{"name": "backend", "health_url": "http://127.0.0.1:3000/health/ready"},
                 {"name": "frontend", "health_url": "http://127.0.0.1:5174"}],
    "database_check": None, "db_service": "postgres", "compose_services": ["backend", "frontend", "postgres"],
}
OTHER = dict(TAYLORDASH, script_exists=False, admin_password_set=False, api_key_set=False,
             services=[{"name": "api", "health_url": "http://127.0.0.1:8000/health"}, {"name": "web"}],
             compose_services=["api", "web"])


def test_the_taylordash_stack_runs_everything():
    plan = validation_plan(TAYLORDASH)
    assert plan["script"] == "/opt/td/ops/validate_p1.sh"
    assert (plan["login_path"], plan["projects_path"]) == ("/api/v1/auth/login", "/api/v1/projects")
    assert plan["frontend_url"] == "http://127.0.0.1:5174" and plan["database"] is True
    assert plan["checklist_endpoints"] == plan["perf_endpoints"] == ["auth_login", "api_projects", "frontend"]
    assert plan["skipped"] == [] and plan["problems"] == []


def test_another_stack_skips_what_it_lacks_with_a_reason_each():
    plan = validation_plan(OTHER)
    assert plan["problems"] == []
    assert plan["script"] is None and not plan["database"] and plan["checklist_endpoints"] == []
    assert plan["skipped"] == [
        "P1 script: skipped, no /opt/td/ops/validate_p1.sh; set validate_script to run a validation script",
        "login: skipped, stack_admin_password is not set; set it (and validate_login_path) to check the login",
        "projects API: skipped, stack_api_key is not set; set it (and validate_projects_path) to check the projects API",
        "frontend: skipped, no service named frontend in stack_services; set validate_frontend_service",
        "performance: skipped, none of login, projects API, frontend is checked",
        "database: skipped, no service named postgres in the compose project; set stack_db_service",
    ]


@pytest.mark.parametrize("explicit,problem", [
    ({"script": "/srv/check.sh"}, "validate_script=/srv/check.sh - no such file on the target host"),
    ({"login_path": "/login"}, "validate_login_path=/login - stack_admin_password is empty"),
    ({"projects_path": "/items"}, "validate_projects_path=/items - stack_api_key is empty"),
    ({"frontend_service": "frontend"},
     "validate_frontend_service=frontend - no service named frontend in stack_services (api, web); "
     "set validate_frontend_service to one of them"),
    ({"frontend_service": "web"}, "validate_frontend_service=web - service web has no health_url"),
    ({"database_check": True}, "validate_database_check=true - stack_db_service=postgres is not a service"),
])
def test_an_explicit_setting_the_stack_cannot_honour_is_a_problem(explicit, problem):
    plan = validation_plan(dict(OTHER, **explicit))
    assert len(plan["problems"]) == 1 and problem in plan["problems"][0], plan["problems"]


def test_the_frontend_by_another_name_and_the_switches():
    plan = validation_plan(dict(OTHER, frontend_service="api"))
    assert plan["frontend_url"] == "http://127.0.0.1:8000/health" and plan["perf_endpoints"] == ["frontend"]
    off = validation_plan(dict(TAYLORDASH, script_enabled=False, checklist_enabled=False, perf_enabled=False))
    assert off["script"] is None and off["checklist_endpoints"] == [] and off["perf_endpoints"] == []
    assert not off["database"]
    assert off["skipped"] == ["P1 script: skipped, validate_script_enabled is false",
                              "performance: skipped, validate_perf_enabled is false",
                              "checklist: skipped, validate_checklist_enabled is false"]


def test_unknown_compose_services_leave_pg_isready_to_answer():
    assert validation_plan(dict(OTHER, compose_services=None))["database"] is True
    assert validation_plan(dict(TAYLORDASH, database_check=False))["database"] is False
