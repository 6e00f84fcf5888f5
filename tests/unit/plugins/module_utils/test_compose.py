"""Parsers of plugins/module_utils/_compose.py and stack_info, on output captured from
docker compose 2.40 against the reference stack (secrets and paths redacted)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.taylordash.rollback.plugins.module_utils._compose import (
    compose_args, parse_config, parse_ps)

FIXTURES = Path(__file__).parent / "fixtures" / "compose"


def test_compose_args_selects_one_project():
    assert compose_args("/opt/td", "taylordash", ["docker-compose.yml", "/etc/extra.yml"]) == [
        "compose", "--project-directory", "/opt/td", "--project-name", "taylordash",
        "--file", "/opt/td/docker-compose.yml", "--file", "/etc/extra.yml"]
    assert compose_args("/opt/td") == ["compose", "--project-directory", "/opt/td"]


def test_parse_config_captured():
    config = parse_config((FIXTURES / "config.json").read_text())
    assert config["name"] == "tddev"
    assert sorted(config["services"]) == ["backend", "frontend", "nginx", "postgres"]
    assert config["services"]["backend"]["image"] == "tddev_backend:latest"
    assert config["services"]["backend"]["network_mode"] == "host"


@pytest.mark.parametrize("text", ['{"name": "x"}', '[]', '{"services": []}'])
def test_parse_config_rejects_non_projects(text):
    with pytest.raises(ValueError):
        parse_config(text)


def test_parse_ps_json_lines_captured():
    rows = parse_ps((FIXTURES / "ps.jsonl").read_text())
    assert sorted(r["Service"] for r in rows) == ["backend", "frontend", "nginx", "postgres"]
    assert all(r["State"] == "running" for r in rows)


def test_parse_ps_old_list_format_and_empty():
    rows = [{"ID": "abc", "Service": "backend", "State": "exited"}]
    assert parse_ps(json.dumps(rows)) == rows
    assert parse_ps("") == [] and parse_ps("\n") == []
    with pytest.raises(ValueError):
        parse_ps('["not a dict"]')
    with pytest.raises(ValueError):
        parse_ps("not json")
