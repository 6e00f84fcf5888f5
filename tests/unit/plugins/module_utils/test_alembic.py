"""The alembic output parsers, fed what alembic 1.x prints."""
from __future__ import annotations

import pytest

from ansible_collections.taylordash.rollback.plugins.module_utils._alembic import (
    current_revision, current_revisions, downgrade_steps)

CURRENT = "INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\n0003 (head)\n"
HEADS = "ae10 (head)\nbf21 (head)\n"
SQL = """BEGIN;
-- Running downgrade 0004 -> 0003
DROP TABLE x;
-- Running downgrade 0003 -> 0002
-- Running downgrade 0001 ->
COMMIT;
"""


def test_current_revision():
    assert current_revision(CURRENT) == "0003"
    assert current_revision("0003\n") == "0003"
    assert current_revision(HEADS) == "bf21"
    assert current_revision("") is None
    assert current_revision("INFO  [alembic] nothing\n") is None


def test_current_revisions_one_per_head():
    assert current_revisions(CURRENT) == ["0003"]
    assert current_revisions(HEADS) == ["ae10", "bf21"]
    assert current_revisions("") == []
    assert current_revisions("0003 is here\n") == []  # not a revision line


def test_downgrade_steps():
    assert downgrade_steps(SQL) == [("0004", "0003"), ("0003", "0002"), ("0001", "base")]
    assert downgrade_steps("BEGIN;\nCOMMIT;\n") == []


# The cases stack_info's revision parsing was tested with.
@pytest.mark.parametrize("output,revision", [
    ("0003 (head)\n", "0003"),
    ("0002\n", "0002"),
    ("INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\n0004 (head)\n", "0004"),
    ("ae1027a6acf (head)", "ae1027a6acf"),
    ("", None),
    ("INFO  [alembic.runtime.migration] Will assume transactional DDL.\n", None),
])
def test_current_revision_cases_of_stack_info(output, revision):
    assert current_revision(output) == revision
