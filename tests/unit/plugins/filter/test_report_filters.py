"""The report role's filters: state rows, effective changes, services changed, components,
validation boxes, incident IDs and the roll-forward commands. Cases follow what the Jinja they
replace did (the report's JSON keeps its shape)."""
from __future__ import annotations

import re

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.taylordash.rollback.plugins.filter.incident_id import incident_id
from ansible_collections.taylordash.rollback.plugins.filter.report_components import report_components
from ansible_collections.taylordash.rollback.plugins.filter.report_effective_changes import report_effective_changes
from ansible_collections.taylordash.rollback.plugins.filter.report_services_changed import report_services_changed
from ansible_collections.taylordash.rollback.plugins.filter.report_state_rows import report_state_rows
from ansible_collections.taylordash.rollback.plugins.filter.report_validation import report_validation
from ansible_collections.taylordash.rollback.plugins.filter.roll_forward import roll_forward

V1, V2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
BEFORE = {
    "services": [{"name": "backend", "running_image_ids": [V2]}, {"name": "frontend", "running_image_ids": [V2]},
                 {"name": "postgres", "running_image_ids": []}],
    "files": {".env": {"exists": True, "sha256": "a" * 64}, "docker-compose.yml": {"exists": True, "sha256": "c" * 64}},
    "certificate": {"path": "/certs/tls.crt", "sha256_fingerprint": "AB:CD"},
    "migration": {"service": "backend", "revision": "0004"},
}
AFTER = {
    "services": [{"name": "backend", "running_image_ids": [V1]}, {"name": "frontend", "running_image_ids": [V2]},
                 {"name": "worker", "running_image_ids": [V1, V2]}],
    "files": {".env": {"exists": False}, "docker-compose.yml": {"exists": True, "sha256": "c" * 64}},
    "certificate": {"path": "/certs/tls.crt", "error": "unreadable"},
    "migration": {"service": "backend", "revision": "0003"},
}


def test_state_rows_compare_both_snapshots():
    rows = {row["item"]: row for row in report_state_rows(BEFORE, AFTER)}
    assert [r["kind"] for r in report_state_rows(BEFORE, AFTER)] == [
        "image", "image", "image", "image", "file", "file", "certificate", "migration"]
    assert rows["backend runs image"] == {"kind": "image", "name": "backend", "item": "backend runs image",
                                          "before": V2, "after": V1, "changed": True}
    assert rows["frontend runs image"]["changed"] is False
    assert (rows["postgres runs image"]["before"], rows["postgres runs image"]["after"],
            rows["postgres runs image"]["changed"]) == ("", None, None)
    assert rows["worker runs image"]["after"] == "%s, %s" % (V1, V2) and rows["worker runs image"]["changed"] is None
    assert (rows[".env sha256"]["before"], rows[".env sha256"]["after"], rows[".env sha256"]["changed"]) == (
        "a" * 64, "missing", True)
    assert rows["docker-compose.yml sha256"]["changed"] is False
    cert = rows["certificate sha256 fingerprint"]
    assert (cert["name"], cert["before"], cert["after"]) == ("/certs/tls.crt", "AB:CD", "unreadable")
    assert (rows["migration revision"]["before"], rows["migration revision"]["after"]) == ("0004", "0003")


def test_state_rows_without_an_after_snapshot():
    rows = report_state_rows(BEFORE, {})
    assert all(row["after"] is None and row["changed"] is None for row in rows)
    assert rows[-1]["item"] == "migration revision"


def test_no_migration_row_without_a_before_revision():
    assert report_state_rows({}, AFTER)[-1]["kind"] == "certificate"
    assert report_state_rows({}, {}) == []


def test_state_rows_reject_a_non_dict():
    with pytest.raises(AnsibleFilterError):
        report_state_rows("nope", {})


@pytest.mark.parametrize("change, counts", [
    ({"service": "a", "changed": False, "recreated": True}, False),   # `changed` decides
    ({"service": "a", "changed": "yes"}, True),
    ({"service": "a", "recreated": False, "retagged": False}, False),
    ({"service": "a", "retagged": True}, True),
    ({"service": "a", "image_before": V1, "image_after": V1}, False),
    ({"service": "a", "image_before": V2, "image_after": V1}, True),
    ({"service": "a", "image_before": V2}, True),                      # no comparison possible: counts
    ({"component": "database", "backup": "/x.sql"}, True),
])
def test_effective_changes(change, counts):
    assert report_effective_changes([change]) == ([change] if counts else [])


def test_effective_changes_of_nothing():
    assert report_effective_changes(None) == [] and report_effective_changes([]) == []
    with pytest.raises(AnsibleFilterError):
        report_effective_changes("backend")


def test_services_changed_from_rows_then_changes():
    rows = report_state_rows(BEFORE, AFTER)
    changes = [{"service": "frontend"}, {"component": "database"}, {"service": "backend"}, {}]
    assert report_services_changed(rows, changes) == ["backend", "frontend", "database", "unnamed"]


COMPONENTS = [{"name": "Backend API", "services": ["backend"]}, {"name": "Database", "services": ["postgres"]},
              {"name": "Plugin System", "services": []}]


def test_components_ticked_and_others_listed():
    view = report_components(COMPONENTS, ["backend", "worker"], [{"component": "Database", "rows_after": 3}])
    assert view == [
        {"name": "Backend API", "services": ["backend"], "affected": True, "changed": ["backend"]},
        {"name": "Database", "services": ["postgres"], "affected": True, "changed": ["Database"]},
        {"name": "Plugin System", "services": [], "affected": False, "changed": []},
        {"name": "Other: worker", "services": ["worker"], "affected": True, "changed": ["worker"]},
    ]


def test_components_by_service_of_a_change():
    view = report_components(COMPONENTS, [], [{"service": "postgres", "component": "database"}])
    assert view[1]["changed"] == ["postgres"] and view[1]["affected"]


RESULTS = {
    "passed": True, "pass_rate": 100.0, "min_pass_rate": 89.0, "checks_passed": 9, "checks_total": 9,
    "failed_checks": [], "health_passed": True, "performance_passed": True, "auth_passed": True,
    "script": {"msg": "9/9 checks passed (100.0%)"},
    "checklist": [{"name": "auth_login", "passed": True, "detail": "HTTP 200, session token issued (0.010 s)"}],
    "performance": [{"summary": "auth_login: ok"}, {"summary": "frontend: ok"}],
    "failures": [], "started_at": "2026-11-26T11:16:15.123456+00:00", "duration": 2.5,
}


def test_validation_boxes():
    v = report_validation(RESULTS)
    assert (v["ran"], v["passed"], v["pass_rate"], v["health_check_detail"]) == (True, True, 100.0, "9/9 checks passed (100.0%)")
    assert v["performance_detail"] == "auth_login: ok; frontend: ok"
    assert v["authentication_detail"] == "HTTP 200, session token issued (0.010 s)"
    assert v["user_acceptance_verified"] is False and v["duration"] == 2.5
    assert v["started_at"] == "2026-11-26T11:16:15.123456+00:00"


def test_validation_boxes_when_little_was_checked():
    v = report_validation({"passed": False})
    assert (v["health_check_detail"], v["performance_detail"], v["authentication_detail"]) == (
        "not run", "not measured", "not checked")


def test_validation_that_did_not_run():
    for value in ({}, None):
        v = report_validation(value)
        assert v["ran"] is False and v["passed"] is None and v["checklist"] == []
        assert v["health_check_detail"] == "validation did not run"


def test_incident_ids_are_readable_and_unique_within_one_second():
    ids = {incident_id("20261125221503") for dummy in range(50)}
    assert all(re.fullmatch(r"ROLL-20261125-221503-[0-9a-f]{4}", i) for i in ids)
    assert len(ids) > 40  # 65536 suffixes: 50 draws practically never repeat
    assert incident_id("20261125221503", suffix="web1") == "ROLL-20261125-221503-web1"


@pytest.mark.parametrize("clock, suffix", [("2026-11-25", None), ("202611252215", None), ("20261125221503", "a b"),
                                           ("20261125221503", "../x")])
def test_incident_id_rejects_bad_input(clock, suffix):
    with pytest.raises(AnsibleFilterError):
        incident_id(clock, suffix=suffix)


def test_roll_forward_names_the_kept_images_only():
    changes = [
        {"service": "backend", "image": "td_backend", "kept_tag": "rollback-20261125T221503Z", "retagged": True},
        {"service": "frontend", "image": "td_frontend", "kept_tag": "rollback-20261125T221503Z", "retagged": False},
        {"service": "worker", "image": "td_worker", "kept_tag": None, "retagged": True},
        {"component": "database", "changed": True},
    ]
    assert roll_forward(changes, "latest") == [{
        "service": "backend", "image": "td_backend", "kept_tag": "rollback-20261125T221503Z",
        "command": "docker tag td_backend:rollback-20261125T221503Z td_backend:latest"}]
    assert roll_forward(changes[:1], "stable")[0]["command"].endswith(" td_backend:stable")
    assert roll_forward(None) == []
