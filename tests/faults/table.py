"""Print the fault matrix: one row per test of tests/faults, from its docstring
("Fault: <fault> -> Outcome: <expected outcome>"). Reads the files (ast), runs nothing.

    python tests/faults/table.py            # Markdown table: fault -> outcome
    python tests/faults/table.py --json     # [{test, fault, outcome}, ...]
"""
from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROW = re.compile(r"Fault:\s*(?P<fault>.+?)\s*->\s*Outcome:\s*(?P<outcome>.+)", re.S)


def rows() -> list:
    out = []
    # the rollback paths in the order of the runbook: images, database, validation; then any newer
    order = ["test_faults_immediate.py", "test_faults_database.py", "test_faults_validation.py",
             "test_faults_config.py", "test_faults_complete.py", "test_faults_blue_green.py",
             "test_faults_emergency.py", "test_faults_escalate.py", "test_faults_watchdog.py"]
    files = sorted(HERE.glob("test_faults_*.py"), key=lambda p: (order.index(p.name) if p.name in order else 99, p.name))
    for path in files:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                doc = " ".join((ast.get_docstring(node) or "").split())
                match = ROW.search(doc)
                if not match:
                    raise SystemExit(f"{path.name}::{node.name}: docstring lacks 'Fault: ... -> Outcome: ...'")
                out.append({"test": f"tests/faults/{path.name}::{node.name}",
                            "fault": match["fault"], "outcome": match["outcome"]})
    return out


def main(argv: list) -> int:
    table = rows()
    if "--json" in argv:
        print(json.dumps(table, indent=2))
        return 0
    print("| fault | outcome | test |")
    print("| --- | --- | --- |")
    for row in table:
        print(f"| {row['fault']} | {row['outcome']} | `{row['test'].split('::')[-1]}` |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
