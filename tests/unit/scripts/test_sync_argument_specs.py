"""scripts/sync-argument-specs.py: every role declares, in a generated section of its argument
spec, exactly the stack_* settings it reads, copied from the stack role."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "sync-argument-specs.py"


def load():
    spec = importlib.util.spec_from_file_location("sync_argument_specs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync = load()


def test_every_role_section_is_up_to_date():
    wanted, errors = sync.plan(ROOT)
    assert not errors, errors
    stale = [str(path.relative_to(ROOT)) for path, (text, new) in wanted.items() if text != new]
    assert not stale, "run scripts/sync-argument-specs.py: %s" % stale
    assert sync.main(["--check", "--root", str(ROOT)]) == 0


def test_each_role_declares_what_it_reads_with_the_stack_definition():
    stack = sync.stack_settings(ROOT / "roles")
    for role in ("immediate", "database", "validate", "report"):
        spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
        options = spec["argument_specs"]["main"]["options"]
        read = sync.names_read(ROOT / "roles" / role) & set(stack)
        assert read, role
        for name in read:
            assert name in options, (role, name)
            assert options[name]["type"] == stack[name]["type"], (role, name)
            assert options[name].get("default") == stack[name].get("default"), (role, name)


@pytest.fixture
def tree(tmp_path):
    """A copy of the roles, to break."""
    shutil.copytree(ROOT / "roles", tmp_path / "roles")
    return tmp_path


def test_a_role_that_reads_an_undeclared_setting_is_out_of_date(tree, capsys):
    tasks = tree / "roles" / "immediate" / "tasks" / "main.yml"
    tasks.write_text(tasks.read_text() + "\n- name: New\n  ansible.builtin.debug:\n    msg: \"{{ stack_db_name }}\"\n")
    assert sync.main(["--check", "--root", str(tree)]) == 1
    assert "roles/immediate/meta/argument_specs.yml" in capsys.readouterr().err
    assert sync.main(["--root", str(tree)]) == 0
    spec = yaml.safe_load((tree / "roles" / "immediate" / "meta" / "argument_specs.yml").read_text())
    assert spec["argument_specs"]["main"]["options"]["stack_db_name"]["default"] == "taylordash"
    # the anchor of the main options still feeds the summary entry point
    assert "stack_db_name" in spec["argument_specs"]["summary"]["options"]
    assert sync.main(["--check", "--root", str(tree)]) == 0


def test_a_hand_edit_of_the_section_is_out_of_date(tree):
    path = tree / "roles" / "database" / "meta" / "argument_specs.yml"
    path.write_text(path.read_text().replace("description: Database name.", "description: Name."))
    assert sync.main(["--check", "--root", str(tree)]) == 1


def test_a_setting_the_stack_role_does_not_have_is_an_error(tree, capsys):
    tasks = tree / "roles" / "report" / "tasks" / "main.yml"
    tasks.write_text(tasks.read_text() + "\n- name: Typo\n  ansible.builtin.debug:\n    msg: \"{{ stack_prject_dir }}\"\n")
    assert sync.main(["--check", "--root", str(tree)]) == 2
    assert "roles/report reads stack_prject_dir" in capsys.readouterr().err


def test_comments_results_and_module_names_are_not_settings(tree):
    role = tree / "roles" / "validate" / "tasks" / "main.yml"
    role.write_text(role.read_text() + "\n# stack_not_a_setting in a comment\n"
                    "- name: Results\n  taylordash.rollback.stack_info:\n    project_dir: \"{{ stack_snapshot.project_dir }}\"\n")
    wanted, errors = sync.plan(tree)
    assert not errors, errors
