"""Issue 11: rollback_immediate on a compose stack that is not TaylorDash (tests/integration/other_stack):
services api and web of its own images, random ports, no .env, no validation script, no login API,
no frontend, no database. Nothing but the four stack variables is set; the rollback passes, and the
output and the report say what was skipped. The same with a service without health_url, and
--check changes nothing."""
from __future__ import annotations

import json
import re

import pytest

from conftest import REPO, run_playbook, write_inventory

try:  # tests/integration as a package, or as a plain directory on sys.path
    from .other_stack import OtherStack, build_images
except ImportError:
    from other_stack import OtherStack, build_images

pytestmark = pytest.mark.integration

PLAYBOOK = REPO / "playbooks" / "rollback_immediate.yml"
SKIPPED = [
    "P1 script: skipped, no ",
    "login: skipped, stack_admin_password is not set",
    "projects API: skipped, stack_api_key is not set",
    "frontend: skipped, no service named frontend in stack_services; set validate_frontend_service",
    "performance: skipped, none of login, projects API, frontend is checked",
    "database: skipped, no service named postgres in the compose project; set stack_db_service",
    "env copy: skipped, no ",
]


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    stack = OtherStack(tmp_path_factory.mktemp("other-stack"), build_images())
    try:
        stack.deploy("v1")
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    return write_inventory(tmp_path_factory.mktemp("other-inventory"))


def rollback(other, inventory, check=False, **stack_vars):
    proc = run_playbook(PLAYBOOK, extra_vars=other.stack_vars(**stack_vars), inventory=inventory, check=check)
    return proc, proc.stdout + proc.stderr


def report_of(other) -> tuple[str, dict]:
    reports = sorted((other.dir / "rollbacks").glob("*/rollback_report_*.md"))
    assert reports, "no report written"
    md = reports[-1]
    return md.read_text(), json.loads(md.with_suffix(".json").read_text())


def assert_rolled_back(other):
    v1 = {s: other.image_id(f"{other.repos[s]}:v1") for s in ("api", "web")}
    assert other.running_images() == v1
    assert {s: other.image_id(f"{other.repos[s]}:latest") for s in ("api", "web")} == v1
    other.wait_status(200, deadline=5)


def test_four_variables_roll_back_a_bad_deploy_and_say_what_was_skipped(other, inventory):
    other.deploy("v2")
    proc, out = rollback(other, inventory)
    assert proc.returncode == 0, out[-6000:]
    assert_rolled_back(other)
    for line in SKIPPED:
        assert line in out, f"{line!r} not in the output"
    # No settings error about TaylorDash defaults the user never set.
    assert "Invalid validation settings" not in out
    md, data = report_of(other)
    assert data["outcome"] == "SUCCEEDED"
    for line in SKIPPED:
        assert any(s.startswith(line) for s in data["skipped"]), (line, data["skipped"])
        assert line in md
    assert "### Skipped (not part of this stack)" in md
    assert data["files"]["env_copy"] is None
    assert not list((other.dir / "rollbacks").glob("*/env_post_rollback"))
    # Each service kept its bad build under a rollback tag.
    kept_tags = [c["kept_tag"] for c in data["changes"]]
    assert kept_tags and all(re.match(r"rollback-\d{8}T\d{6}Z", tag) for tag in kept_tags)


def test_a_service_without_health_url_is_judged_by_its_containers(other, inventory):
    other.deploy("v2")
    # web has no health_url: its containers must run and be healthy by the image HEALTHCHECK;
    # api keeps its health_url.
    proc, out = rollback(other, inventory, health_urls=("api",))
    assert proc.returncode == 0, out[-6000:]
    assert_rolled_back(other)
    assert "web (no health_url, judged by its containers running and the image HEALTHCHECK)" in out \
        or "no health_url, judged by its containers running and the image HEALTHCHECK" in out, out[-6000:]
    md, data = report_of(other)
    web = [c for c in data["changes"] if c["service"] == "web"][0]
    assert web["healthy"] is True
    assert web["health_check"].startswith("no health_url, judged by its containers")
    assert "health_check: no health_url" in md


def test_no_health_url_at_all_and_no_healthcheck(other, inventory):
    other.deploy("v2")
    proc, out = rollback(other, inventory, health_urls=())
    assert proc.returncode == 0, out[-6000:]
    assert_rolled_back(other)
    assert "api: " in out and "no health_url, judged by its containers running (no HEALTHCHECK in the image)" in out
    _md, data = report_of(other)
    assert {c["service"]: c["healthy"] for c in data["changes"]} == {"api": True, "web": True}


def test_check_mode_changes_nothing(other, inventory):
    other.deploy("v2")
    tree_before = sorted((str(p), p.stat().st_mtime_ns) for p in other.dir.rglob("*"))
    tags_before, running_before = other.tags(), other.running_images()
    proc, out = rollback(other, inventory, check=True)
    assert proc.returncode == 0, out[-6000:]
    assert other.tags() == tags_before
    assert other.running_images() == running_before
    assert sorted((str(p), p.stat().st_mtime_ns) for p in other.dir.rglob("*")) == tree_before
    assert "would be recreated" in out
    assert "frontend: skipped, no service named frontend in stack_services" in out
    other.wait_status(503, deadline=5)


def test_an_explicit_frontend_that_is_missing_fails_before_anything_changes(other, inventory):
    other.deploy("v2")
    tags_before = other.tags()
    proc = run_playbook(PLAYBOOK, extra_vars=dict(other.stack_vars(), validate_frontend_service="frontend",
                                                  validate_perf_api_target=-1),
                        inventory=inventory)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "validate_frontend_service=frontend - no service named frontend in stack_services (api, web)" in out
    assert "validate_perf_api_target=-1" in out
    # Only the broken rules are named.
    assert "validate_min_pass_rate" not in out and "validate_perf_samples" not in out
    assert other.tags() == tags_before


@pytest.mark.parametrize("action,variable", [("restore", "stack_db_service=postgres"),
                                             ("migration", "stack_migration_service=backend")])
def test_a_database_rollback_asked_for_on_a_stack_without_a_database_names_the_variable(other, inventory, action,
                                                                                        variable):
    other.deploy("v1")
    tags_before, running_before = other.tags(), other.running_images()
    proc = run_playbook(REPO / "playbooks" / "rollback_database.yml", inventory=inventory,
                        extra_vars=dict(other.stack_vars(), database_action=action))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{variable} is not a service of the compose project (api, web)" in out, out[-4000:]
    assert "Nothing was changed" in out
    assert other.tags() == tags_before and other.running_images() == running_before


def test_the_validate_playbook_alone_checks_what_fits_and_an_explicit_frontend(other, inventory):
    other.deploy("v1")
    playbook = REPO / "playbooks" / "validate.yml"
    proc = run_playbook(playbook, extra_vars=other.stack_vars(), inventory=inventory)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Validation PASSED" in out and "frontend: skipped, no service named frontend" in out
    # web as the frontend: its health_url is checked and measured (v1 answers 200 on /health).
    proc = run_playbook(playbook, inventory=inventory, extra_vars=dict(
        other.stack_vars(), validate_frontend_service="web", validate_perf_samples=2, validate_perf_warmup=0))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "checklist frontend: ok - HTTP 200" in out and "performance ok frontend" in out, out[-4000:]
    assert "frontend: skipped" not in out
