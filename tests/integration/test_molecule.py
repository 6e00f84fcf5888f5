"""The Molecule drills of extensions/molecule as pytest items, the layout the Ansible dev tools
document: pytest-ansible's ``molecule_scenario`` fixture parametrizes this test with every
scenario git knows (``**/molecule/*/molecule.yml``; ids ``extensions-<scenario>``), and
``MoleculeScenario.test()`` runs ``molecule test -s <scenario>``. ``scripts/test.sh molecule`` runs this file; the integration stage
leaves it out, so each drill runs once.

    pytest tests/integration/test_molecule.py -k reference_stack     # one drill

Each drill brings up its own reference stack on fixed ports of its own (24100-24299) and reads the
collection from pytest-ansible's tree (no prerun install), so drills run side by side (-n 2).
pytest-ansible 26 marks running Molecule through pytest as deprecated (a DeprecationWarning).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from pytest_ansible.molecule import MoleculeScenario

from conftest import COLLECTIONS_ROOT, REPO, VENV_BIN, WARM_START

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_integration(molecule_scenario: MoleculeScenario, monkeypatch) -> None:
    # molecule starts ansible-playbook by name, and the drills' plays use this collection from
    # pytest-ansible's tree and the community ones from the virtualenv.
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS_ROOT))
    monkeypatch.setenv("ANSIBLE_PYTHON_INTERPRETER", str(VENV_BIN / "python"))
    # The module payloads and compiled templates of earlier runs reused, as in every other test.
    for name, value in WARM_START.items():
        monkeypatch.setenv(name, value)
    # pytest-ansible starts molecule in the directory holding molecule/ (extensions/). Molecule 26
    # reads a collection's scenarios, their shared extensions/molecule/config.yml (inventory) and
    # MOLECULE_PROJECT_DIRECTORY (the drills find stack/stackctl by it) only when started beside
    # galaxy.yml: run it from the collection root.
    if Path(molecule_scenario.parent_directory).name == "extensions":
        molecule_scenario.parent_directory = REPO
    proc = molecule_scenario.test()
    assert proc.returncode == 0, f"molecule test -s {molecule_scenario.name} failed (rc={proc.returncode})"
